"""
Tests for L{twisted_netlab.echo}.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IHalfCloseableProtocol, IPushProducer
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab import EchoFactory, EchoProtocol

PEER = IPv4Address("TCP", "127.0.0.1", 40000)


def make_factory(**kwargs: object) -> EchoFactory:
    kwargs.setdefault("reactor", Clock())
    return EchoFactory(**kwargs)  # type: ignore[arg-type]


def connect(factory: EchoFactory) -> tuple[Protocol, StringTransport]:
    protocol = factory.buildProtocol(PEER)
    assert protocol is not None
    transport = StringTransport(peerAddress=PEER)
    protocol.makeConnection(transport)
    return protocol, transport


class EchoLineTests(SynchronousTestCase):
    def echo(self, *chunks: bytes, **kwargs: object) -> bytes:
        protocol, transport = connect(make_factory(**kwargs))
        for chunk in chunks:
            protocol.dataReceived(chunk)
        return transport.value()

    def test_prefix_and_line(self) -> None:
        """
        A line comes back with C{S:} in front and its C{\\n} kept.
        """
        self.assertEqual(self.echo(b"Hi\n"), b"S:Hi\n")

    def test_crlf_kept(self) -> None:
        """
        C{\\r\\n} lines come back with C{\\r\\n}, C{\\n} lines with C{\\n},
        even mixed in one chunk.
        """
        self.assertEqual(self.echo(b"a\r\nb\nc\r\n"), b"S:a\r\nS:b\nS:c\r\n")

    def test_any_bytes(self) -> None:
        """
        UTF-8, Latin-1 and NUL bytes come back unchanged.
        """
        line = "Süßes Tiramisù".encode() + b" \xe4\xf6\xfc \x00\x01\xff\r\n"
        self.assertEqual(self.echo(line), b"S:" + line)

    def test_empty_lines(self) -> None:
        """
        An empty line is a line: it gets an answer of just the prefix.
        """
        self.assertEqual(self.echo(b"\n\r\n"), b"S:\nS:\r\n")

    def test_split_across_reads(self) -> None:
        """
        A line arriving in pieces is answered once, when its terminator arrives.
        """
        protocol, transport = connect(make_factory())
        protocol.dataReceived(b"hel")
        self.assertEqual(transport.value(), b"")
        protocol.dataReceived(b"lo\r")
        self.assertEqual(transport.value(), b"")
        protocol.dataReceived(b"\nwor")
        self.assertEqual(transport.value(), b"S:hello\r\n")
        protocol.dataReceived(b"ld\n")
        self.assertEqual(transport.value(), b"S:hello\r\nS:world\n")

    def test_many_lines_in_order(self) -> None:
        """
        Many lines in one read are answered in order, each with the prefix.
        """
        lines = [b"line %d\n" % i for i in range(1000)]
        self.assertEqual(self.echo(b"".join(lines)), b"".join(b"S:" + x for x in lines))

    def test_custom_and_empty_prefix(self) -> None:
        """
        The factory's prefix is used; an empty prefix makes a plain echo.
        """
        self.assertEqual(self.echo(b"a\nb\n", prefix=b">> "), b">> a\n>> b\n")
        self.assertEqual(self.echo(b"a\nb\n", prefix=b""), b"a\nb\n")


class HalfCloseTests(SynchronousTestCase):
    def test_provides_half_close(self) -> None:
        """
        The protocol asks for half-close notifications.
        """
        self.assertTrue(IHalfCloseableProtocol.implementedBy(EchoProtocol))

    def test_last_line_without_newline(self) -> None:
        """
        When the client half-closes, an unterminated last line is answered as
        it is (like the seed: C{S:abc} without newline), then the connection
        closes.
        """
        protocol, transport = connect(make_factory())
        protocol.dataReceived(b"one\nabc")
        protocol.readConnectionLost()  # type: ignore[attr-defined]
        self.assertEqual(transport.value(), b"S:one\nS:abc")
        self.assertTrue(transport.disconnecting)

    def test_half_close_without_partial_line(self) -> None:
        """
        With nothing pending, a half-close just closes.
        """
        protocol, transport = connect(make_factory())
        protocol.dataReceived(b"one\n")
        protocol.readConnectionLost()  # type: ignore[attr-defined]
        self.assertEqual(transport.value(), b"S:one\n")
        self.assertTrue(transport.disconnecting)


class LineLengthTests(SynchronousTestCase):
    def test_line_at_limit(self) -> None:
        """
        A line of exactly C{max_line_length} bytes (terminator not counted)
        is echoed, with C{\\n} or C{\\r\\n}.
        """
        protocol, transport = connect(make_factory(max_line_length=10))
        protocol.dataReceived(b"0123456789\n0123456789\r\n")
        self.assertEqual(transport.value(), b"S:0123456789\nS:0123456789\r\n")
        self.assertFalse(transport.disconnecting)

    def test_line_over_limit(self) -> None:
        """
        A complete line one byte over the limit gets one ERROR line and the
        connection closes; lines before it in the same read are answered.
        """
        protocol, transport = connect(make_factory(max_line_length=10))
        protocol.dataReceived(b"ok\n01234567890\nlater\n")
        self.assertEqual(
            transport.value(),
            b"S:ok\nERROR line too long: the limit is 10 bytes; closing\r\n",
        )
        self.assertTrue(transport.disconnecting)

    def test_unterminated_line_over_limit(self) -> None:
        """
        A line growing past the limit without a newline is refused as soon
        as it is too long, so nothing buffers without bound.
        """
        protocol, transport = connect(make_factory(max_line_length=10))
        protocol.dataReceived(b"x" * 8)
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"x" * 4)
        self.assertTrue(transport.value().startswith(b"ERROR line too long"))
        self.assertTrue(transport.disconnecting)
        self.assertEqual(protocol._partial, b"")  # type: ignore[attr-defined]

    def test_pending_cr_may_complete_crlf(self) -> None:
        """
        A partial line of limit + 1 bytes ending in CR is kept: the next byte
        may make it a CRLF line of exactly the limit.
        """
        protocol, transport = connect(make_factory(max_line_length=3))
        protocol.dataReceived(b"abc\r")
        self.assertFalse(transport.disconnecting)
        protocol.dataReceived(b"\n")
        self.assertEqual(transport.value(), b"S:abc\r\n")

    def test_nothing_after_error(self) -> None:
        """
        Data arriving after the ERROR line is ignored, not echoed.
        """
        protocol, transport = connect(make_factory(max_line_length=3))
        protocol.dataReceived(b"abcdef\n")
        before = transport.value()
        protocol.dataReceived(b"more\n")
        self.assertEqual(transport.value(), before)

    def test_logged(self) -> None:
        """
        Closing a connection for a long line is logged with the peer.
        """
        with capturedLogs() as events:
            protocol, _ = connect(make_factory(max_line_length=3))
            protocol.dataReceived(b"abcdef\n")
        self.assertIn("127.0.0.1:40000", [e.get("peer") for e in events])


class BackpressureTests(SynchronousTestCase):
    def test_registered_as_streaming_producer(self) -> None:
        """
        The protocol is its transport's streaming producer, so the transport
        pauses it when replies pile up.
        """
        protocol, transport = connect(make_factory())
        self.assertTrue(IPushProducer.providedBy(protocol))
        self.assertIs(transport.producer, protocol)
        self.assertTrue(transport.streaming)

    def test_pause_stops_reading(self) -> None:
        """
        Pausing the protocol pauses the transport (it stops reading from the
        client); resuming resumes it.
        """
        protocol, transport = connect(make_factory())
        protocol.pauseProducing()  # type: ignore[attr-defined]
        self.assertEqual(transport.producerState, "paused")
        protocol.resumeProducing()  # type: ignore[attr-defined]
        self.assertEqual(transport.producerState, "producing")


class IdleTimeoutTests(SynchronousTestCase):
    def test_idle_connection_closed(self) -> None:
        """
        A connection silent for C{idle_timeout} seconds is aborted and logged.
        """
        clock = Clock()
        _protocol, transport = connect(make_factory(idle_timeout=10, reactor=clock))
        clock.advance(9.9)
        self.assertFalse(transport.disconnecting)
        with capturedLogs() as events:
            clock.advance(0.2)
        self.assertTrue(transport.disconnected)
        self.assertTrue(any(e.get("timeout") == 10 for e in events))

    def test_data_resets_timeout(self) -> None:
        """
        Any data restarts the idle timer.
        """
        clock = Clock()
        protocol, transport = connect(make_factory(idle_timeout=10, reactor=clock))
        clock.advance(8)
        protocol.dataReceived(b"x")
        clock.advance(8)
        self.assertFalse(transport.disconnecting)
        clock.advance(3)
        self.assertTrue(transport.disconnecting)

    def test_zero_means_never(self) -> None:
        """
        C{idle_timeout=0} schedules nothing.
        """
        clock = Clock()
        connect(make_factory(idle_timeout=0, reactor=clock))
        self.assertEqual(clock.getDelayedCalls(), [])

    def test_timer_cancelled_on_close(self) -> None:
        """
        A closed connection leaves no timer behind.
        """
        clock = Clock()
        protocol, _ = connect(make_factory(idle_timeout=10, reactor=clock))
        protocol.connectionLost(Failure(ConnectionError()))
        self.assertEqual(clock.getDelayedCalls(), [])


class MaxConnectionsTests(SynchronousTestCase):
    def test_limit(self) -> None:
        """
        Past C{max_connections}, a new connection is aborted at once and
        logged; those already open keep working, and closing one makes room.
        """
        factory = make_factory(max_connections=2)
        first, first_t = connect(factory)
        second, _second_t = connect(factory)
        self.assertEqual(factory.connection_count, 2)
        with capturedLogs() as events:
            _, third_t = connect(factory)
        self.assertTrue(third_t.disconnected)
        self.assertEqual(third_t.value(), b"")
        self.assertTrue(any("Refusing" in e.get("log_format", "") for e in events))
        first.dataReceived(b"still here\n")
        self.assertEqual(first_t.value(), b"S:still here\n")
        self.assertFalse(first_t.disconnecting)
        second.connectionLost(Failure(ConnectionError()))
        self.assertEqual(factory.connection_count, 1)
        fourth, fourth_t = connect(factory)
        fourth.dataReceived(b"in\n")
        self.assertEqual(fourth_t.value(), b"S:in\n")


class FactoryArgumentTests(SynchronousTestCase):
    def test_bad_arguments(self) -> None:
        """
        Nonsense settings are refused when the factory is made.
        """
        self.assertRaises(TypeError, make_factory, prefix="S:")
        self.assertRaises(ValueError, make_factory, prefix=b"a\nb")
        self.assertRaises(ValueError, make_factory, max_line_length=0)
        self.assertRaises(ValueError, make_factory, idle_timeout=-1)
        self.assertRaises(ValueError, make_factory, max_connections=0)

    def test_defaults(self) -> None:
        """
        The defaults are the issue's: C{S:}, 65536 bytes, 300 s, 10000.
        """
        factory = make_factory()
        self.assertEqual(
            (
                factory.prefix,
                factory.max_line_length,
                factory.idle_timeout,
                factory.max_connections,
            ),
            (b"S:", 65536, 300.0, 10000),
        )
