"""
Tests for L{twisted_netlab.transport}: the write-through transport against a
fake socket, then the reactor wrapper that hands it to ports and connectors.
"""

from __future__ import annotations

import os
import random
import socket
from errno import EAGAIN, ECONNRESET, EPIPE
from typing import Any

from twisted.internet import error, tcp
from twisted.internet.interfaces import (
    IHalfCloseableProtocol,
    IReactorFDSet,
    IReactorTCP,
)
from twisted.internet.posixbase import _DisconnectSelectableMixin
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from twisted_netlab.transport import (
    SWITCH,
    WriteThroughServer,
    enabled,
    write_through_reactor,
)


class FakeSocket:
    """
    A non-blocking socket's sending side: C{send} takes a random part of what
    it is given, or raises C{EAGAIN}, at random, or fails once C{fail} is
    set.  C{wire} is every byte it took, in order.
    """

    def __init__(self, rng: random.Random | None = None, *, accept: str = "random"):
        self.rng = rng or random.Random(0)
        #: "random", "all" or "none" (always EAGAIN)
        self.accept = accept
        self.wire = bytearray()
        self.fail = False
        self.failures = 0
        self.incoming: list[bytes] = []
        self.shut: list[int] = []
        self.closed = False

    def send(self, data: bytes | memoryview) -> int:
        if self.closed:
            raise OSError(9, "closed")
        if self.fail:
            self.failures += 1
            raise OSError(ECONNRESET if self.failures == 1 else EPIPE, "reset")
        if self.accept == "none":
            raise BlockingIOError(EAGAIN, "would block")
        if self.accept == "all":
            n = len(data)
        else:
            roll = self.rng.random()
            if roll < 0.15:
                raise BlockingIOError(EAGAIN, "would block")
            n = len(data) if roll < 0.6 else self.rng.randint(0, len(data))
        self.wire += bytes(data[:n])
        return n

    def recv(self, size: int) -> bytes:
        if self.incoming:
            return self.incoming.pop(0)
        raise BlockingIOError(EAGAIN, "would block")

    def setblocking(self, flag: bool) -> None:
        pass

    def fileno(self) -> int:
        return 99

    def shutdown(self, how: int) -> None:
        self.shut.append(how)

    def close(self) -> None:
        self.closed = True

    def setsockopt(self, *args: object) -> None:
        pass

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 7)

    def getpeername(self) -> tuple[str, int]:
        return ("127.0.0.1", 40000)


@implementer(IReactorFDSet)
class FakeReactor(_DisconnectSelectableMixin, MemoryReactorClock):
    """
    A memory reactor that also drives one descriptor's reads and writes the
    way Twisted's poll reactors do (L{iterate}).
    """

    def step(self, selectable: Any, *, read: bool = False) -> None:
        """
        One reactor iteration for C{selectable}: a read event if asked for
        and it is reading, then a write event if it is writing; a result is
        handled by C{_disconnectSelectable}, as Twisted's reactors do.
        """
        if read and selectable in self.readers:
            why = selectable.doRead()
            if why:
                self._disconnectSelectable(selectable, why, True)
        if selectable in self.writers:
            why = selectable.doWrite()
            if why:
                self._disconnectSelectable(selectable, why, False)
        self.advance(0)


class Recorder(Protocol):
    """
    Records C{connectionLost} calls; C{on_data}, if set, is called from
    C{dataReceived}.
    """

    def __init__(self) -> None:
        self.lost: list[Failure] = []
        self.on_data: Any = None
        self.on_made: Any = None
        self.on_lost: Any = None

    def connectionMade(self) -> None:
        if self.on_made:
            self.on_made()

    def dataReceived(self, data: bytes) -> None:
        if self.on_data:
            self.on_data(data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.lost.append(reason)
        if self.on_lost:
            self.on_lost()


@implementer(IHalfCloseableProtocol)
class HalfCloseRecorder(Recorder):
    def __init__(self) -> None:
        super().__init__()
        self.write_lost = 0

    def readConnectionLost(self) -> None:
        pass

    def writeConnectionLost(self) -> None:
        self.write_lost += 1


def connect(
    cls: type = WriteThroughServer,
    sock: FakeSocket | None = None,
    protocol: Recorder | None = None,
) -> tuple[Any, FakeSocket, Recorder, FakeReactor]:
    """
    A server connection of class C{cls} over a fake socket, its protocol
    connected.
    """
    reactor = FakeReactor()
    sock = sock or FakeSocket()
    protocol = protocol or Recorder()
    transport = cls(sock, protocol, ("127.0.0.1", 40000), None, 1, reactor)
    protocol.makeConnection(transport)
    return transport, sock, protocol, reactor


class Producer:
    """
    A producer that records what it is told.  As a pull producer it writes
    C{chunks} one per C{resumeProducing}, then unregisters.
    """

    def __init__(self, transport: Any = None, chunks: list[bytes] | None = None):
        self.transport = transport
        self.chunks = list(chunks or [])
        self.calls: list[str] = []
        self.paused = False
        self.written: list[bytes] = []

    def pauseProducing(self) -> None:
        self.calls.append("pause")
        self.paused = True

    def resumeProducing(self) -> None:
        self.calls.append("resume")
        self.paused = False
        if self.transport is not None:
            if self.chunks:
                chunk = self.chunks.pop(0)
                self.written.append(chunk)
                self.transport.write(chunk)
            else:
                self.transport.unregisterProducer()

    def stopProducing(self) -> None:
        self.calls.append("stop")


class WriteThroughTests(SynchronousTestCase):
    """
    The focused situations, each against Twisted's own C{tcp.Server} too
    where the two must agree.
    """

    def test_write_goes_out_at_once(self) -> None:
        """
        With nothing buffered, C{write} puts the bytes on the socket before it
        returns, and asks the reactor for no write event.
        """
        transport, sock, _, reactor = connect(sock=FakeSocket(accept="all"))
        transport.write(b"hello\n")
        self.assertEqual(bytes(sock.wire), b"hello\n")
        self.assertNotIn(transport, reactor.writers)

    def test_twisted_transport_writes_later(self) -> None:
        """
        Twisted's own transport, for contrast: the bytes wait for a write
        event.  (If Twisted changes this, the transport may be unneeded.)
        """
        transport, sock, _, reactor = connect(tcp.Server, FakeSocket(accept="all"))
        transport.write(b"hello\n")
        self.assertEqual(bytes(sock.wire), b"")
        self.assertIn(transport, reactor.writers)

    def test_partial_send_keeps_order(self) -> None:
        """
        What a partial send leaves behind is buffered, and a later write goes
        behind it, not ahead of it (the 2011 branch's first bug), even when
        the socket would now take the new bytes.
        """
        sock = FakeSocket(accept="all")
        transport, sock, _, reactor = connect(sock=sock)
        sock.accept = "none"
        transport.write(b"first ")
        self.assertIn(transport, reactor.writers)
        sock.accept = "all"
        transport.write(b"second")
        self.assertEqual(bytes(sock.wire), b"")
        reactor.step(transport)
        self.assertEqual(bytes(sock.wire), b"first second")
        self.assertNotIn(transport, reactor.writers)

    def test_partial_send_left_in_data_buffer(self) -> None:
        """
        Bytes that Twisted's C{doWrite} left in C{dataBuffer[offset:]} (with
        C{_tempDataBuffer} empty) also hold later writes back.
        """
        transport, sock, _, reactor = connect(sock=FakeSocket(accept="none"))
        transport.write(b"abcdef")
        sock.accept = "random"
        sock.rng = random.Random(1)
        while not (0 < transport.offset < len(transport.dataBuffer)):
            transport.dataBuffer, transport.offset = b"", 0
            sock.wire.clear()
            transport._tempDataBuffer, transport._tempDataLen = [b"abcdef"], 6
            transport.doWrite()
        self.assertEqual(transport._tempDataBuffer, [])
        before = bytes(sock.wire)
        sock.accept = "all"
        transport.write(b"ghi")
        self.assertEqual(bytes(sock.wire), before)
        reactor.step(transport)
        self.assertEqual(bytes(sock.wire), b"abcdefghi")

    def test_send_error_reported_once_by_reactor(self) -> None:
        """
        A failing send is not raised from C{write} and not dropped (the 2011
        branch's second bug): the next write event reports it, and the
        protocol's C{connectionLost} is called once, with L{ConnectionLost}.
        """
        transport, sock, protocol, reactor = connect(sock=FakeSocket(accept="all"))
        sock.fail = True
        transport.write(b"doomed")
        transport.write(b"also doomed")
        self.assertEqual(protocol.lost, [])
        self.assertIn(transport, reactor.writers)
        reactor.step(transport)
        reactor.step(transport)
        self.assertEqual(len(protocol.lost), 1)
        protocol.lost[0].trap(error.ConnectionLost)
        self.assertEqual(sock.failures, 1)

    def test_lose_connection_after_writes(self) -> None:
        """
        C{loseConnection} after writes sends them all, then shuts the socket
        down and reports L{ConnectionDone}.
        """
        transport, sock, protocol, reactor = connect(sock=FakeSocket(accept="all"))
        transport.write(b"one ")
        sock.accept = "none"
        transport.write(b"two ")
        transport.loseConnection()
        transport.write(b"three")
        sock.accept = "all"
        reactor.step(transport)
        self.assertEqual(bytes(sock.wire), b"one two three")
        self.assertEqual(len(protocol.lost), 1)
        protocol.lost[0].trap(error.ConnectionDone)
        self.assertTrue(sock.closed)

    def test_half_close(self) -> None:
        """
        C{loseWriteConnection} sends what is written before it, then shuts
        the write side down and tells the protocol; later writes are dropped,
        and the connection stays open.
        """
        protocol = HalfCloseRecorder()
        transport, sock, _, reactor = connect(
            sock=FakeSocket(accept="none"), protocol=protocol
        )
        transport.write(b"before")
        transport.loseWriteConnection()
        transport.write(b" still before")
        sock.accept = "all"
        reactor.step(transport)
        transport.write(b"after")
        reactor.step(transport)
        self.assertEqual(bytes(sock.wire), b"before still before")
        self.assertEqual(sock.shut, [1])
        self.assertEqual(protocol.write_lost, 1)
        self.assertEqual(protocol.lost, [])

    def test_half_close_with_nothing_buffered(self) -> None:
        """
        After a write that went out at once, C{loseWriteConnection} still
        shuts the write side down and later writes are dropped.
        """
        protocol = HalfCloseRecorder()
        transport, sock, _, reactor = connect(
            sock=FakeSocket(accept="all"), protocol=protocol
        )
        transport.write(b"sent")
        transport.loseWriteConnection()
        reactor.step(transport)
        transport.write(b"dropped")
        self.assertEqual((bytes(sock.wire), sock.shut), (b"sent", [1]))

    def test_abort_drops_later_writes(self) -> None:
        """
        After C{abortConnection}, nothing more reaches the socket (not even a
        write with nothing buffered), and the protocol learns
        L{ConnectionAborted} once.
        """
        transport, sock, protocol, reactor = connect(sock=FakeSocket(accept="all"))
        transport.write(b"sent")
        transport.abortConnection()
        transport.write(b"never")
        reactor.step(transport)
        reactor.advance(0)
        self.assertEqual(bytes(sock.wire), b"sent")
        self.assertEqual(len(protocol.lost), 1)
        protocol.lost[0].trap(error.ConnectionAborted)

    def test_write_from_connection_made_and_lost(self) -> None:
        """
        A write from C{connectionMade} goes out at once; one from
        C{connectionLost} is dropped without an error.
        """
        protocol = Recorder()
        holder: list[Any] = []
        protocol.on_made = lambda: holder[0].write(b"greeting\n") if holder else None
        sock = FakeSocket(accept="all")
        reactor = FakeReactor()
        transport = WriteThroughServer(
            sock,  # type: ignore[arg-type]
            protocol,
            ("127.0.0.1", 1),
            None,  # type: ignore[arg-type]
            1,
            reactor,
        )
        holder.append(transport)
        protocol.makeConnection(transport)
        protocol.on_lost = lambda: transport.write(b"too late")
        transport.loseConnection()
        reactor.step(transport)
        self.assertEqual(bytes(sock.wire), b"greeting\n")
        self.assertEqual(len(protocol.lost), 1)

    def test_write_from_data_received(self) -> None:
        """
        Writes made while the protocol handles a read go out at once, each
        its own send, in order.
        """
        sends: list[bytes] = []
        sock = FakeSocket(accept="all")
        original = sock.send

        def send(data: Any) -> int:
            sends.append(bytes(data))
            return original(data)

        sock.send = send  # type: ignore[method-assign]
        transport, sock, protocol, reactor = connect(sock=sock)

        def on_data(data: bytes) -> None:
            transport.write(b"a:" + data)
            transport.writeSequence([b"b:", data])

        protocol.on_data = on_data
        sock.incoming.append(b"x")
        reactor.step(transport, read=True)
        self.assertEqual(sends, [b"a:x", b"b:x"])
        self.assertNotIn(transport, reactor.writers)

    def test_write_sequence(self) -> None:
        """
        C{writeSequence} sends its parts in order, and refuses text as
        Twisted's does.
        """
        transport, sock, _, _ = connect(sock=FakeSocket(accept="all"))
        transport.writeSequence(iter([b"a", b"", b"bc"]))
        self.assertEqual(bytes(sock.wire), b"abc")
        self.assertRaises(TypeError, transport.writeSequence, [b"a", "b"])
        self.assertRaises(TypeError, transport.write, "text")

    def test_pull_producer_is_driven(self) -> None:
        """
        A pull producer gets a C{resumeProducing} after each of its writes is
        sent, until it unregisters, as with Twisted's transport.
        """
        for cls in (WriteThroughServer, tcp.Server):
            transport, sock, _, reactor = connect(cls, FakeSocket(accept="all"))
            producer = Producer(transport, [b"1", b"2", b"3"])
            transport.registerProducer(producer, False)
            for _ in range(10):
                reactor.step(transport)
            self.assertEqual(bytes(sock.wire), b"123", cls)
            self.assertIsNone(transport.producer)

    def test_streaming_producer_thresholds(self) -> None:
        """
        A streaming producer is paused when more than C{bufferSize} bytes are
        buffered and resumed when the buffer has drained, exactly as with
        Twisted's transport; bytes the socket took at once are not buffered.
        """
        results = []
        for cls in (WriteThroughServer, tcp.Server):
            transport, sock, _, reactor = connect(cls, FakeSocket(accept="none"))
            producer = Producer()
            transport.registerProducer(producer, True)
            transport.write(b"x" * transport.bufferSize)
            calls = [list(producer.calls)]
            transport.write(b"y")
            calls.append(list(producer.calls))
            sock.accept = "all"
            reactor.step(transport)
            calls.append(list(producer.calls))
            results.append(calls)
        self.assertEqual(results[0], results[1])
        self.assertEqual(results[0], [[], ["pause"], ["pause", "resume"]])

    def test_streaming_producer_not_paused_when_sent(self) -> None:
        """
        When the socket takes everything at once, nothing is buffered and the
        producer is never paused.
        """
        transport, _, _, _ = connect(sock=FakeSocket(accept="all"))
        producer = Producer()
        transport.registerProducer(producer, True)
        transport.write(b"x" * (transport.bufferSize * 2))
        self.assertEqual(producer.calls, [])


def _run_script(cls: type, seed: int) -> tuple[bytes, bytes, list[Failure], bool, bool]:
    """
    A random interleaving of writes, writeSequences, producers, reads whose
    C{dataReceived} writes, reactor iterations, closes, half-closes, aborts
    and socket failures, on a connection of class C{cls}; then the
    connection is closed and the reactor run until it is gone.

    Returns the bytes accepted by the transport (written while it was
    connected and not half-closed), the bytes on the wire, the protocol's
    C{connectionLost} reasons, whether the socket failed, and whether the
    connection was aborted.
    """
    rng = random.Random(seed)
    sock = FakeSocket(rng)
    protocol = HalfCloseRecorder()
    transport, sock, protocol, reactor = connect(cls, sock, protocol)  # type: ignore[assignment]
    accepted = bytearray()
    failed = aborted = False

    def write(data: bytes) -> None:
        if transport.connected and not transport._writeDisconnected:
            accepted.extend(data)
        transport.write(data)

    def write_sequence(parts: list[bytes]) -> None:
        if transport.connected and not transport._writeDisconnected:
            accepted.extend(b"".join(parts))
        transport.writeSequence(parts)

    def chunk() -> bytes:
        size = rng.choice([0, 1, 5, 100, 2000, 70_000])
        return bytes([rng.randrange(256)]) * size + str(rng.random()).encode()

    class Scripted(Producer):
        def resumeProducing(self) -> None:
            self.calls.append("resume")
            self.paused = False
            if not streaming_ and self.chunks:
                write(self.chunks.pop(0))
            elif not streaming_:
                transport.unregisterProducer()

    def on_data(data: bytes) -> None:
        write(data)
        write(data[::-1])

    protocol.on_data = on_data
    producer: Scripted | None = None
    streaming_ = False
    for _ in range(rng.randint(1, 40)):
        roll = rng.random()
        if roll < 0.25:
            write(chunk())
        elif roll < 0.35:
            write_sequence([chunk() for _ in range(rng.randint(0, 4))])
        elif roll < 0.55:
            reactor.step(transport)
        elif roll < 0.65:
            sock.incoming.append(chunk() or b"z")
            reactor.step(transport, read=True)
        elif roll < 0.72:
            if producer is None and transport.producer is None:
                streaming_ = rng.random() < 0.5
                producer = Scripted(chunks=[chunk() for _ in range(3)])
                if transport.connected:
                    transport.registerProducer(producer, streaming_)
            elif producer is not None:
                if streaming_ and not producer.paused and transport.producer:
                    write(chunk())
                elif transport.producer is producer:
                    transport.unregisterProducer()
                    producer = None
                else:
                    producer = None
        elif roll < 0.78:
            transport.loseConnection()
        elif roll < 0.82:
            # (Twisted's loseWriteConnection on a closed transport would
            # register it with the reactor again: a protocol must not.)
            if transport.connected:
                transport.loseWriteConnection()
        elif roll < 0.85:
            if transport.connected:
                aborted = True
            transport.abortConnection()
        elif roll < 0.88:
            sock.fail = failed = True
    if transport.producer is not None:
        transport.unregisterProducer()
    transport.loseConnection()
    for _ in range(200):
        reactor.step(transport)
        if protocol.lost and transport not in reactor.writers:
            break
    reactor.advance(0)
    return bytes(accepted), bytes(sock.wire), protocol.lost, failed, aborted


class RandomInterleavingTests(SynchronousTestCase):
    """
    Thousands of random interleavings, on the write-through transport and,
    to check the checks, on Twisted's own.
    """

    def check(self, cls: type, seeds: range) -> None:
        clean = 0
        for seed in seeds:
            accepted, wire, lost, failed, aborted = _run_script(cls, seed)
            where = f"{cls.__name__} seed={seed}"
            self.assertTrue(accepted.startswith(wire), where)
            self.assertEqual(len(lost), 1, where)
            if not failed and not aborted:
                clean += 1
                self.assertEqual(wire, accepted, where)
                lost[0].trap(error.ConnectionDone)
            elif failed and not aborted and len(wire) < len(accepted):
                lost[0].trap(error.ConnectionLost, error.ConnectionDone)
        self.assertGreater(clean, len(seeds) // 3)

    def test_write_through(self) -> None:
        """
        The bytes on the wire are the bytes accepted, in order, all of them
        unless the socket failed or the connection was aborted (then a
        prefix), and C{connectionLost} is called exactly once.
        """
        self.check(WriteThroughServer, range(4000))

    def test_twisted_transport(self) -> None:
        """
        The same checks hold for Twisted's own transport (so they check what
        Twisted promises, no more).
        """
        self.check(tcp.Server, range(300))


class ReactorTests(SynchronousTestCase):
    """
    L{write_through_reactor} and the switch.
    """

    def setUp(self) -> None:
        self.addCleanup(os.environ.pop, SWITCH, None)

    def test_switch(self) -> None:
        """
        The transport is on unless C{NETLAB_WRITE_THROUGH} is 0, no, off or
        false.
        """
        os.environ.pop(SWITCH, None)
        self.assertTrue(enabled())
        for off in ("0", "no", "OFF", "false"):
            os.environ[SWITCH] = off
            self.assertFalse(enabled())
        os.environ[SWITCH] = "1"
        self.assertTrue(enabled())

    def test_memory_reactor_unwrapped(self) -> None:
        """
        A reactor that is not one of Twisted's POSIX reactors comes back as
        it is.
        """
        reactor = MemoryReactorClock()
        self.assertIs(write_through_reactor(reactor), reactor)

    def test_wraps_real_reactor(self) -> None:
        """
        A POSIX reactor is wrapped, once; the wrapper provides the reactor's
        interfaces and passes everything else through.  With the switch off
        it is not wrapped, unless forced.
        """
        from twisted.internet import reactor

        wrapped = write_through_reactor(reactor)
        self.assertIsNot(wrapped, reactor)
        self.assertIs(write_through_reactor(wrapped), wrapped)
        self.assertTrue(IReactorTCP.providedBy(wrapped))
        self.assertIs(wrapped.callLater.__self__, reactor)
        os.environ[SWITCH] = "0"
        self.assertIs(write_through_reactor(reactor), reactor)
        self.assertIsNot(write_through_reactor(reactor, force=True), reactor)

    def test_adopt_unsupported_family(self) -> None:
        """
        Adopting a port of a family that is not a stream socket family fails
        as Twisted's reactor does.
        """
        from twisted.internet import reactor

        wrapped = write_through_reactor(reactor, force=True)
        self.assertRaises(
            error.UnsupportedAddressFamily,
            wrapped.adoptStreamPort,
            0,
            socket.AF_PACKET if hasattr(socket, "AF_PACKET") else 12345,
            None,
        )
