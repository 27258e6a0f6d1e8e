"""
More than one core: C{--workers N} for C{twistd netlab-echo} and C{twistd
netlab-hello}.

The twistd process (the parent) opens every listening socket and never
accepts on them.  It starts N worker processes (C{python -m
twisted_netlab.workers}) that inherit the sockets and adopt them with
C{IReactorSocket.adoptStreamPort}, so the kernel hands each new connection to
one of them.  The parent logs what the workers print, restarts a worker that
dies (and logs it), and on SIGTERM stops every worker before it exits.

C{--max-connections} keeps meaning the whole server: each worker gets an
equal share of it (the first C{max % N} workers one more), so together they
never serve more.  A worker at its share refuses a new connection even if
another has room; the kernel spreads new connections over the workers
waiting in C{accept}, not by their load.

Beyond one machine, put several such servers behind an ordinary TCP load
balancer (HAProxy, IPVS); there is no balancer here.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import sys
from collections.abc import Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, protocol, tcp
from twisted.internet.error import ProcessExitedAlready
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_netlab.endpoints import StartupError, _print_without_traceback
from twisted_netlab.transport import WriteThroughUNIXPort

#: the plugins that take --workers, and their tap modules
TAPS = {
    "netlab-echo": "twisted_netlab.tap.echo",
    "netlab-hello": "twisted_netlab.tap.hello",
}
#: a worker that dies sooner than this after starting is restarted only after
#: this long, so that one that cannot start does not spin
RESTART_DELAY = 1.0
#: how long stopping waits for workers to end on SIGTERM before SIGKILL
STOP_TIMEOUT = 10.0


def shares(total: int, workers: int) -> list[int]:
    """
    C{total} split into C{workers} shares as equal as can be, the larger
    first; every share is at least 1.
    """
    base, extra = divmod(total, workers)
    return [max(1, base + (1 if i < extra else 0)) for i in range(workers)]


class _Worker(protocol.ProcessProtocol):
    """
    One worker process: its output goes to the parent's log, its end to the
    pool.
    """

    def __init__(self, pool: WorkerPool, index: int) -> None:
        self.pool = pool
        self.index = index
        self.ended: defer.Deferred[None] = defer.Deferred()
        self._partial = b""

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        *lines, self._partial = (self._partial + data).split(b"\n")
        for line in lines:
            self.pool.log.info(
                "worker {index}: {line}",
                index=self.index,
                line=line.decode("utf-8", "replace"),
            )

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)
        self.pool._ended(self, reason)


class WorkerPool(Service):
    """
    Own the listening sockets of C{descriptions}; keep C{workers} worker
    processes serving them with plugin C{plugin}, each started with
    C{options(index)} (its plugin options, without C{--listen}).
    """

    log = Logger()

    def __init__(
        self,
        plugin: str,
        reactor: Any,
        descriptions: Sequence[str],
        workers: int,
        options: Any,
    ) -> None:
        self.plugin = plugin
        self.reactor = reactor
        self.descriptions = list(descriptions)
        self.workers = workers
        self.options = options
        self.ports: list[Any] = []
        #: index -> (worker, process, its start time, its pid)
        self.running_workers: dict[int, tuple[_Worker, Any, float, int]] = {}
        self._stopping = False

    def privilegedStartService(self) -> None:
        from twisted_netlab.endpoints import parse_endpoint

        for description in self.descriptions:
            results: list[Any] = []
            endpoint = parse_endpoint(self.reactor, description)
            endpoint.listen(protocol.Factory()).addBoth(results.append)
            result = results[0] if results else None
            if isinstance(result, Failure) or result is None:
                error = StartupError(
                    f"{self.plugin}: cannot listen on {description!r}: "
                    f"{result.value if result is not None else 'not at once'}"
                )
                _print_without_traceback(error)
                raise error from None
            # The parent never accepts: the workers do.
            result.stopReading()
            self.ports.append(result)
        super().privilegedStartService()

    def startService(self) -> None:
        super().startService()
        for index in range(self.workers):
            self._spawn(index)

    def _listeners(self) -> list[tuple[int, int, str]]:
        return [
            (port.fileno(), port.socket.family, description)
            for port, description in zip(self.ports, self.descriptions, strict=True)
        ]

    def _spawn(self, index: int) -> None:
        listeners = self._listeners()
        spec = {
            "plugin": self.plugin,
            "index": index,
            "options": self.options(index),
            "listeners": listeners,
        }
        child_fds: dict[int, Any] = {0: "w", 1: "r", 2: "r"}
        for fd, _, _ in listeners:
            child_fds[fd] = fd
        worker = _Worker(self, index)
        process = self.reactor.spawnProcess(
            worker,
            sys.executable,
            [sys.executable, "-m", "twisted_netlab.workers", json.dumps(spec)],
            env=os.environ.copy(),
            childFDs=child_fds,
        )
        self.running_workers[index] = (
            worker,
            process,
            self.reactor.seconds(),
            process.pid,
        )
        self.log.info(
            "worker {index} started (pid {pid})", index=index, pid=process.pid
        )

    def _ended(self, worker: _Worker, reason: Failure) -> None:
        entry = self.running_workers.get(worker.index)
        if entry is None or entry[0] is not worker:
            return
        del self.running_workers[worker.index]
        if self._stopping:
            return
        lived = self.reactor.seconds() - entry[2]
        delay = 0 if lived >= RESTART_DELAY else RESTART_DELAY
        self.log.warn(
            "worker {index} (pid {pid}) ended: {reason}; restarting",
            index=worker.index,
            pid=entry[3],
            reason=reason.getErrorMessage(),
        )
        self.reactor.callLater(delay, self._restart, worker.index)

    def _restart(self, index: int) -> None:
        if not self._stopping and index not in self.running_workers:
            self._spawn(index)

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        self._stopping = True
        waiting = []
        for worker, process, _, _ in list(self.running_workers.values()):
            waiting.append(worker.ended)
            with contextlib.suppress(ProcessExitedAlready):
                process.signalProcess("TERM")
        timer = self.reactor.callLater(STOP_TIMEOUT, self._kill)
        done = defer.gatherResults(waiting)

        def finished(_: object) -> defer.Deferred[Any]:
            if timer.active():
                timer.cancel()
            return defer.gatherResults(
                [defer.maybeDeferred(port.stopListening) for port in self.ports]
            )

        return done.addBoth(finished).addCallback(lambda _: None)

    def _kill(self) -> None:
        for _, process, _, _ in list(self.running_workers.values()):
            with contextlib.suppress(ProcessExitedAlready):
                process.signalProcess("KILL")


class _WorkerUNIXPort(WriteThroughUNIXPort):
    """
    A UNIX listening socket adopted by a worker: stopping it leaves the
    socket's file to the parent, which owns it.
    """

    def connectionLost(self, reason: Failure) -> None:
        tcp.Port.connectionLost(self, reason)


def _serve(spec: dict[str, Any]) -> None:
    """
    A worker: build the plugin's factory from its options, adopt the
    inherited listening sockets, run until SIGTERM.
    """
    import importlib

    from twisted.internet import epollreactor

    from twisted_netlab.reactor import install_default

    if not install_default():
        epollreactor.install()
    from twisted.internet import reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from twisted_netlab.transport import write_through_reactor

    globalLogBeginner.beginLoggingTo(
        [textFileLogObserver(sys.stdout, timeFormat="")], redirectStandardIO=False
    )
    module = importlib.import_module(TAPS[spec["plugin"]])
    config = module.Options()
    config.parseOptions(spec["options"])
    factory = module.make_factory(config, reactor)
    wrapped = write_through_reactor(reactor)
    for fd, family, description in spec["listeners"]:
        serving: Any = factory
        if description.startswith("ssl:"):
            from twisted.internet.endpoints import serverFromString
            from twisted.protocols.tls import TLSMemoryBIOFactory

            endpoint = serverFromString(reactor, description)
            serving = TLSMemoryBIOFactory(
                endpoint._sslContextFactory,
                False,
                factory,
            )
        if family == socket.AF_UNIX:
            port: Any = _WorkerUNIXPort._fromListeningDescriptor(reactor, fd, serving)
            port.startListening()
        else:
            wrapped.adoptStreamPort(fd, socket.AddressFamily(family), serving)
        os.close(fd)  # the port took a copy
    # ^C reaches the whole process group; the parent stops the workers.
    reactor.callWhenRunning(signal.signal, signal.SIGINT, signal.SIG_IGN)
    reactor.run()


if __name__ == "__main__":
    _serve(json.loads(sys.argv[1]))
