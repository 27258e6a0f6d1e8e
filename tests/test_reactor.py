"""
L{twisted_netlab.reactor}: netlab's epoll reactor handles reads, writes,
hang-ups and errors as Twisted's does (errors still logged with the
selectable's log prefix), and the plugins install it by default unless
C{--reactor} or C{NETLAB_LEAN_REACTOR=0} says otherwise.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import error
from twisted.internet.abstract import FileDescriptor
from twisted.python import log
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.twistd import twistd
from twisted_netlab.reactor import SWITCH, NetlabEPollReactor, enabled


class Peer(FileDescriptor):
    """
    One end of a socket pair, read and written by the reactor under test.
    """

    def __init__(self, sock: socket.socket, reactor: Any, fail: bool = False):
        super().__init__(reactor)
        self.socket = sock
        self.fail = fail
        self.received = b""
        self.lost: list[Failure] = []
        sock.setblocking(False)

    def fileno(self) -> int:
        return self.socket.fileno()

    def logPrefix(self) -> str:
        return "PeerUnderTest,7"

    def doRead(self) -> Any:
        data = self.socket.recv(65536)
        if self.fail:
            raise RuntimeError("doRead failed on purpose")
        if not data:
            return error.ConnectionDone()
        self.received += data
        return None

    def writeSomeData(self, data: bytes) -> int:
        return self.socket.send(data)

    def connectionLost(self, reason: Failure) -> None:
        self.lost.append(reason)
        self.reactor.removeReader(self)
        self.reactor.removeWriter(self)


class NetlabEPollReactorTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = NetlabEPollReactor()
        self.addCleanup(self.reactor._poller.close)
        self.ours, self.theirs = socket.socketpair()
        self.addCleanup(self.ours.close)
        self.addCleanup(self.theirs.close)

    def iterate(self, times: int = 3) -> None:
        for _ in range(times):
            self.reactor.doIteration(0.05)

    def test_reads_and_writes(self) -> None:
        """
        Bytes the other end sends reach C{doRead}; bytes written are sent by
        C{doWrite} when the reactor reports the socket writable.
        """
        peer = Peer(self.ours, self.reactor)
        self.reactor.addReader(peer)
        self.theirs.sendall(b"ping")
        self.iterate()
        self.assertEqual(peer.received, b"ping")
        peer.connected = 1
        peer.write(b"pong")
        self.iterate()
        self.assertEqual(self.theirs.recv(100), b"pong")
        self.assertEqual(peer.lost, [])

    def test_hang_up(self) -> None:
        """
        The other end closing is a clean C{ConnectionDone}, reported once.
        """
        peer = Peer(self.ours, self.reactor)
        self.reactor.addReader(peer)
        self.theirs.close()
        self.iterate()
        self.assertEqual(len(peer.lost), 1)
        peer.lost[0].trap(error.ConnectionDone)

    def test_error_logged_with_prefix(self) -> None:
        """
        An exception raised by C{doRead} is logged (as Twisted's loop logs
        it), its legacy log event's system the selectable's log prefix, and
        the selectable is disconnected with it.
        """
        events: list[dict[str, Any]] = []
        log.addObserver(events.append)
        self.addCleanup(log.removeObserver, events.append)
        peer = Peer(self.ours, self.reactor, fail=True)
        self.reactor.addReader(peer)
        self.theirs.sendall(b"boom")
        self.iterate()
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        [logged] = [e for e in events if e.get("isError")]
        self.assertEqual(logged["system"], "PeerUnderTest,7")
        self.assertEqual(len(peer.lost), 1)
        peer.lost[0].trap(RuntimeError)

    def test_lost_descriptor(self) -> None:
        """
        A selectable whose C{fileno()} is -1 is disconnected with
        C{ConnectionFdescWentAway}, as Twisted's loop does.
        """
        peer = Peer(self.ours, self.reactor)
        self.reactor.addReader(peer)
        self.theirs.sendall(b"x")
        peer.fileno = lambda: -1  # type: ignore[method-assign]
        self.reactor.doIteration(0.05)
        self.assertEqual(len(peer.lost), 1)
        peer.lost[0].trap(error.ConnectionFdescWentAway)

    def test_switch(self) -> None:
        """
        C{NETLAB_LEAN_REACTOR} turns it off with 0, no, off or false.
        """
        import os

        old = os.environ.get(SWITCH)
        self.addCleanup(
            lambda: (
                os.environ.pop(SWITCH, None)
                if old is None
                else os.environ.__setitem__(SWITCH, old)
            )
        )
        for value, expected in [("0", False), ("off", False), ("1", True)]:
            os.environ[SWITCH] = value
            self.assertEqual(enabled(), expected, value)


class PluginReactorTests(SynchronousTestCase):
    def run_echo(self, *before: str, env: dict[str, str] | None = None) -> str:
        with twistd(
            *before, "netlab-echo", "--listen", "tcp:0:interface=127.0.0.1", env=env
        ) as server:
            with socket.create_connection(("127.0.0.1", server.ports[0])) as s:
                s.sendall(b"hi\n")
                self.assertEqual(s.recv(100), b"S:hi\n")
            return server.log

    def test_plugin_default(self) -> None:
        """
        C{twistd netlab-echo} runs on L{NetlabEPollReactor} and serves.
        """
        self.assertIn(
            "reactor class: twisted_netlab.reactor.NetlabEPollReactor",
            self.run_echo(),
        )

    def test_reactor_option_wins(self) -> None:
        """
        C{--reactor=epoll} keeps Twisted's own epoll reactor, and
        C{--reactor=netlab-epoll} names ours as a twistd reactor plugin.
        """
        self.assertIn(
            "reactor class: twisted.internet.epollreactor.EPollReactor",
            self.run_echo("--reactor=epoll"),
        )
        self.assertIn(
            "reactor class: twisted_netlab.reactor.NetlabEPollReactor",
            self.run_echo("--reactor=netlab-epoll"),
        )

    def test_switched_off(self) -> None:
        """
        With C{NETLAB_LEAN_REACTOR=0} the plugins keep Twisted's default.
        """
        self.assertIn(
            "reactor class: twisted.internet.epollreactor.EPollReactor",
            self.run_echo(env={SWITCH: "0"}),
        )
