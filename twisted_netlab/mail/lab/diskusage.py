"""
How much disk the lab's state takes: L{DiskUsage}, Mailpit's
C{DatabaseSize} (which is its SQLite file's size; here every file of the
state directory: the Maildirs, their UID lists and the search index).

The directory is walked in a thread, at most once every L{MAX_AGE} seconds
however often it is asked (requests that come meanwhile share the walk
under way, or the figure just made), so asking costs no request more than
the reactor's time to hand the work over.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool

#: A figure this young (seconds) is given again without a new walk.
MAX_AGE = 1.0


def directory_size(root: Path) -> int:
    """The bytes of every regular file under C{root} (links not followed)."""
    total = 0
    stack = [str(root)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False):
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    continue
    return total


class DiskUsage:
    """
    The size of C{root}, measured in the reactor's thread pool.
    """

    def __init__(self, root: Path, reactor: Any, *, max_age: float = MAX_AGE) -> None:
        self.root = root
        self.reactor = reactor
        self.max_age = max_age
        self._measured: tuple[float, int] | None = None
        self._walking: list[Deferred[int]] | None = None

    def size(self) -> Deferred[int]:
        """The directory's size in bytes, at most L{max_age} seconds old."""
        now = self.reactor.seconds()
        if self._measured is not None and now - self._measured[0] < self.max_age:
            return succeed(self._measured[1])
        if not IReactorThreads.providedBy(self.reactor):
            self._measured = (now, directory_size(self.root))
            return succeed(self._measured[1])
        waiting: Deferred[int] = Deferred()
        if self._walking is not None:
            self._walking.append(waiting)
            return waiting
        self._walking = [waiting]
        walk = deferToThreadPool(
            self.reactor, self.reactor.getThreadPool(), directory_size, self.root
        )

        def done(result: Any) -> None:
            waiters, self._walking = self._walking or [], None
            if isinstance(result, int):
                self._measured = (now, result)
            for d in waiters:
                d.callback(result if isinstance(result, int) else 0)

        walk.addBoth(done)
        return waiting
