"""
Tests for L{twisted_netlab.mail.lab.faults.shaping}: the transport that
delays, throttles and cuts (in memory, with a L{Clock}).
"""

from __future__ import annotations

from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from twisted_netlab.mail.lab.faults import (
    ShapedTransport,
)


@implementer(IPushProducer)
class Producer:
    paused = False
    stopped = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        self.stopped = True


class ShapedTransportTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.real = StringTransport()
        self.shaped = ShapedTransport(self.real, self.clock)

    def test_unshaped_passes_through(self) -> None:
        """
        Until it is told to shape, writes go straight through; other
        attributes are the real transport's.
        """
        self.shaped.write(b"abc")
        self.shaped.writeSequence([b"d", b"e"])
        self.assertEqual(self.real.value(), b"abcde")
        self.assertEqual(self.shaped.getPeer(), self.real.getPeer())

    def test_hold(self) -> None:
        """
        hold(N) keeps what is written back for N seconds, then sends it; a
        close asked for meanwhile happens after it.
        """
        self.shaped.hold(2)
        self.shaped.write(b"250 OK\r\n")
        self.shaped.loseConnection()
        self.clock.advance(1.9)
        self.assertEqual(self.real.value(), b"")
        self.assertFalse(self.real.disconnecting)
        self.clock.advance(0.1)
        self.assertEqual(self.real.value(), b"250 OK\r\n")
        self.assertTrue(self.real.disconnecting)

    def test_throttle(self) -> None:
        """
        throttle(R) sends R bytes per second, in tenths of a second.
        """
        self.shaped.throttle(100)
        self.shaped.write(b"x" * 35)
        self.assertEqual(len(self.real.value()), 10)
        self.shaped.write(b"y")
        self.assertEqual(len(self.real.value()), 10)
        self.clock.advance(0.1)
        self.assertEqual(len(self.real.value()), 20)
        self.clock.pump([0.1] * 10)
        self.assertEqual(self.real.value(), b"x" * 35 + b"y")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cut_after(self) -> None:
        """
        cut_after(N) lets N more bytes out, then closes (or aborts); more
        writes are dropped.
        """
        self.shaped.write(b"before ")
        self.shaped.cut_after(5, abort=True)
        self.shaped.write(b"abc")
        self.shaped.write(b"defgh")
        self.shaped.write(b"more")
        self.assertEqual(self.real.value(), b"before abcde")
        self.assertTrue(self.real.disconnected)

    def test_cut_clean(self) -> None:
        """
        A clean cut closes without an abort.
        """
        self.shaped.cut_after(0, abort=False)
        self.assertTrue(self.real.disconnecting)
        self.assertFalse(self.real.disconnected)

    def test_producer_paused_when_full(self) -> None:
        """
        A streaming producer is paused while too much is held, resumed once
        it has gone out, and paused while the real transport asks.
        """
        producer = Producer()
        self.shaped.registerProducer(producer, True)
        gate = self.real.producer
        assert gate is not None
        self.shaped.throttle(1_000_000)
        self.shaped.write(b"x" * 200_000)
        self.assertTrue(producer.paused)
        self.clock.pump([0.1] * 2)
        self.assertFalse(producer.paused)
        gate.pauseProducing()
        self.assertTrue(producer.paused)
        gate.resumeProducing()
        self.assertFalse(producer.paused)
        gate.stopProducing()
        self.assertTrue(producer.stopped)
        self.shaped.unregisterProducer()
        self.assertIsNone(self.real.producer)

    def test_pausing_reads_passes_through(self) -> None:
        """
        pauseProducing and resumeProducing on the shaped transport pause and
        resume reading from the connection, as on the real one (a protocol
        holding back pipelined commands uses them).
        """
        self.shaped.pauseProducing()
        self.assertEqual(self.real.producerState, "paused")
        self.shaped.resumeProducing()
        self.assertEqual(self.real.producerState, "producing")
