"""
An experiment, not a server anyone should run: C{twistd netlab-echo} on an
epoll reactor whose event loop calls each ready descriptor directly instead
of through C{log.callWithLogger} (which sets the legacy log's "system"
context for every event).  It measures that per-event cost, to decide
whether a reactor of our own would be worth it.

``python netlab_echo_lean_reactor.py PORT BACKLOG`` (plain TCP only).
"""

from __future__ import annotations

import errno
import sys
from typing import Any

from twisted.internet import epollreactor


class LeanEPollReactor(epollreactor.EPollReactor):
    """
    EPollReactor.doPoll without callWithLogger (errors still logged, by
    C{_doReadOrWrite}).
    """

    def doPoll(self, timeout: Any) -> None:
        if timeout is None:
            timeout = -1
        try:
            events = self._poller.poll(timeout, len(self._selectables))
        except OSError as err:
            if err.errno == errno.EINTR:
                return
            raise
        drdw = self._doReadOrWrite
        selectables = self._selectables
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is not None:
                drdw(selectable, fd, event)

    doIteration = doPoll


if __name__ == "__main__":
    from twisted.internet.main import installReactor

    installReactor(LeanEPollReactor())
    from twisted.scripts.twistd import run

    port, backlog = sys.argv[1], sys.argv[2]
    sys.argv = [
        "twistd",
        "--nodaemon",
        "--pidfile=",
        "--logfile=-",
        "netlab-echo",
        f"--listen=tcp:{port}:interface=127.0.0.1:backlog={backlog}",
        "--idle-timeout=0",
        "--max-connections=20000",
    ]
    run()
