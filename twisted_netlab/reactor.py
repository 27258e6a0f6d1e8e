"""
An epoll reactor without the per-event logging context, and how the plugins
get it.

Twisted's C{EPollReactor.doPoll} runs every ready descriptor's C{doRead} or
C{doWrite} inside C{log.callWithLogger(selectable, ...)}, which pushes a new
legacy logging context (a dict holding the selectable's C{logPrefix()}) and
pops it again: four more Python calls, a dict merge and a C{try}/C{finally}
for every event, whatever the protocol does.  For a server whose replies are
short that is a good part of the work: measured with the echo benchmark
(C{python -m benchmarks --only echo --experiment lean-reactor}, 2026-12-01,
3 rounds), an epoll loop calling the descriptors directly served 1.41x the
replies per second at 100 connections x 10 lines in flight and 1.24x at
1,000 x 1, at 0.70x and 0.80x the server CPU per reply; at 1 x 1 and
10 x 64 x 1 KiB, 1.14x and 1.10x.  docs/benchmarks.rst has the figures.

L{NetlabEPollReactor} is Twisted's C{EPollReactor} with only that changed:

- C{doPoll} calls C{_doReadOrWrite} for each event directly;
- an exception a selectable raises is still logged, as Twisted's loop logs it
  (C{log.err}), and still with the selectable's log prefix: the context is
  made only then, when there is something to log;
- what a protocol logs with the legacy C{twisted.python.log.msg} while
  handling an event carries the system C{-} instead of its log prefix.
  C{twisted.logger.Logger} events (what this package logs with) never used
  that context, and are unchanged.

Everything else (timers, threads, signals, wakers, C{IReactorFDSet}) is
Twisted's, unchanged.

Getting it
==========

- The plugins (C{twistd netlab-echo}, C{netlab-hello}, C{netlab-mail},
  C{netlab}) install it when their options are parsed, unless a reactor is
  installed already (C{twistd --reactor=NAME} picks another one), epoll is
  missing (not Linux), or C{NETLAB_LEAN_REACTOR=0} is set (for comparison).
  C{--workers N} processes use it under the same rules.
- It is also a twistd reactor plugin: C{twistd --reactor=netlab-epoll ...}
  for any application, and C{twistd --help-reactors} lists it.
- Embedders call L{install} before anything imports
  C{twisted.internet.reactor}, as with Twisted's own C{epollreactor.install}.
"""

from __future__ import annotations

import errno
import select
import sys
from typing import Any

from twisted.internet import epollreactor
from twisted.internet.main import CONNECTION_DONE, CONNECTION_LOST, installReactor
from twisted.internet.posixbase import _NO_FILEDESC
from twisted.python import failure, log

from twisted_netlab.switches import switched_on

__all__ = ["SWITCH", "NetlabEPollReactor", "enabled", "install", "install_default"]

#: The environment variable that keeps Twisted's own default reactor for the
#: plugins when it is C{0}, C{no}, C{off} or C{false}.
SWITCH = "NETLAB_LEAN_REACTOR"


class NetlabEPollReactor(epollreactor.EPollReactor):
    """
    Twisted's epoll reactor, each ready descriptor called directly instead of
    inside a new legacy logging context (see the module docstring).
    """

    def doPoll(self, timeout: float | None) -> None:
        """
        Wait up to C{timeout} seconds (forever for L{None}) for events, then
        handle each.
        """
        if timeout is None:
            timeout = -1
        try:
            events = self._poller.poll(timeout, len(self._selectables))
        except OSError as e:
            if e.errno == errno.EINTR:
                return
            raise
        handle = self._doReadOrWrite
        selectables = self._selectables
        for fd, event in events:
            selectable = selectables.get(fd)
            if selectable is not None:
                handle(selectable, fd, event)

    doIteration = doPoll

    def _doReadOrWrite(self, selectable: Any, fd: int, event: int) -> None:
        """
        Twisted's C{_PollLikeMixin._doReadOrWrite}: read, write or
        disconnect C{selectable}; what it raises is logged with its log
        prefix and disconnects it.
        """
        why: Any = None
        in_read = False
        if event & self._POLL_DISCONNECTED and not (event & self._POLL_IN):
            # A hang-up with nothing left to read: a clean close if it was
            # being read (perhaps a half-close), else an error.
            if fd in self._reads:
                in_read = True
                why = CONNECTION_DONE
            else:
                why = CONNECTION_LOST
        else:
            try:
                if selectable.fileno() == -1:
                    why = _NO_FILEDESC
                else:
                    if event & self._POLL_IN:
                        why = selectable.doRead()
                        in_read = True
                    if not why and event & self._POLL_OUT:
                        why = selectable.doWrite()
                        in_read = False
            except BaseException:
                why = sys.exc_info()[1]
                log.callWithLogger(selectable, log.err, failure.Failure())
        if why:
            self._disconnectSelectable(selectable, why, in_read)


def enabled() -> bool:
    """
    Whether the plugins install L{NetlabEPollReactor} (unless
    C{NETLAB_LEAN_REACTOR} says otherwise).
    """
    return switched_on(SWITCH)


def install() -> NetlabEPollReactor:
    """
    Install L{NetlabEPollReactor} as the global reactor.

    @raise twisted.internet.error.ReactorAlreadyInstalledError: a reactor is
        installed already.
    """
    reactor = NetlabEPollReactor()
    installReactor(reactor)
    return reactor


def install_default() -> bool:
    """
    Install L{NetlabEPollReactor} if nothing has installed a reactor yet,
    epoll is available and L{enabled}; say whether it was installed.
    """
    if "twisted.internet.reactor" in sys.modules or not enabled():
        return False
    if not hasattr(select, "epoll"):
        return False
    install()
    return True
