"""
L{ShapedTransport}: the transport put in front of a connection's own to
delay its output, throttle it or cut it after some bytes, with a streaming
producer paused while it holds too much.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IPushProducer
from zope.interface import directlyProvides, implementer, providedBy

#: Seconds between two writes of a throttled session.
THROTTLE_TICK = 0.1
#: Bytes a shaped transport holds before it pauses its producer.
_HIGH_WATER = 64 * 1024


def shaped_transport(protocol: Any, reactor: Any) -> ShapedTransport:
    """
    C{protocol}'s transport, made a L{ShapedTransport} if it isn't yet.
    """
    transport = protocol.transport
    if not isinstance(transport, ShapedTransport):
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        transport = ShapedTransport(transport, reactor)
        protocol.transport = transport
    return transport


@implementer(IPushProducer)
class _ProducerGate:
    """
    What a L{ShapedTransport} registers with the real transport for a
    streaming producer: the producer runs only while neither the real
    transport nor the shaped one holds too much.
    """

    def __init__(self, shaped: ShapedTransport) -> None:
        self.shaped = shaped

    def pauseProducing(self) -> None:
        self.shaped._paused_by_transport = True
        self.shaped._update_producer()

    def resumeProducing(self) -> None:
        self.shaped._paused_by_transport = False
        self.shaped._update_producer()

    def stopProducing(self) -> None:
        producer = self.shaped._producer
        if producer is not None:
            producer.stopProducing()


class ShapedTransport:
    """
    A transport in front of a connection's own, that holds output back
    (L{hold}), sends it at a set rate (L{throttle}) or closes the connection
    after some more bytes (L{cut_after}).  Everything else is the real
    transport's (C{pauseProducing} pauses reading, as ever); a producer
    writing to it is paused while it holds too much.
    """

    def __init__(self, transport: Any, reactor: Any) -> None:
        self._transport = transport
        self._reactor = reactor
        self._buffer = bytearray()
        self._held_until = 0.0
        self._rate: int | None = None
        self._call: IDelayedCall | None = None
        self._cut: int | None = None
        self._cut_abort = False
        self._closing = False
        self._producer: Any = None
        self._paused_by_me = False
        self._paused_by_transport = False
        directlyProvides(self, providedBy(transport))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    # -- shaping ----------------------------------------------------------

    def hold(self, seconds: float) -> None:
        """
        Send nothing for C{seconds} from now.
        """
        self._held_until = max(self._held_until, self._reactor.seconds() + seconds)
        self._schedule(seconds)

    def throttle(self, rate: int) -> None:
        """
        From now on, send at most C{rate} bytes per second.
        """
        self._rate = rate
        self._pump()

    def cut_after(self, count: int, abort: bool) -> None:
        """
        Close the connection once C{count} more bytes were written.
        """
        self._cut = count
        self._cut_abort = abort
        if count == 0:
            self._close_now()

    # -- ITransport ---------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._cut is None and not self._buffer and self._unshaped():
            self._transport.write(data)
            return
        if self._cut is not None:
            if self._cut < 0:
                return
            if len(data) >= self._cut:
                data = data[: self._cut]
                self._buffer += data
                self._cut = -1
                self._pump()
                return
            self._cut -= len(data)
        self._buffer += data
        self._pump()

    def writeSequence(self, data: Sequence[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        self._closing = True
        self._pump()

    def abortConnection(self) -> None:
        self._cancel()
        self._buffer.clear()
        self._transport.abortConnection()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._producer = producer
        if streaming:
            self._transport.registerProducer(_ProducerGate(self), True)
        else:
            self._transport.registerProducer(producer, False)

    def unregisterProducer(self) -> None:
        self._producer = None
        self._paused_by_me = self._paused_by_transport = False
        self._transport.unregisterProducer()

    # -- inside -------------------------------------------------------------

    def _unshaped(self) -> bool:
        return self._rate is None and self._reactor.seconds() >= self._held_until

    def _schedule(self, seconds: float) -> None:
        if self._call is not None and self._call.active():
            if self._call.getTime() <= self._reactor.seconds() + seconds:
                self._call.cancel()
            else:
                return
        self._call = self._reactor.callLater(seconds, self._tick)

    def _cancel(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _tick(self) -> None:
        self._call = None
        self._pump()

    def _pump(self) -> None:
        if getattr(self._transport, "disconnected", False):
            self._cancel()
            self._buffer.clear()
            return
        now = self._reactor.seconds()
        if now < self._held_until:
            self._schedule(self._held_until - now)
            return
        if self._rate is not None and self._call is not None and self._call.active():
            return  # this tenth of a second's bytes went out already
        if self._buffer:
            if self._rate is None:
                chunk = bytes(self._buffer)
                self._buffer.clear()
            else:
                size = max(1, int(self._rate * THROTTLE_TICK))
                chunk = bytes(self._buffer[:size])
                del self._buffer[:size]
            self._transport.write(chunk)
            if self._rate is not None:
                self._schedule(THROTTLE_TICK)
        self._update_producer()
        if not self._buffer:
            if self._cut == -1:
                self._close_now()
            elif self._closing:
                self._transport.loseConnection()

    def _close_now(self) -> None:
        self._cancel()
        if self._producer is not None:
            producer, self._producer = self._producer, None
            producer.stopProducing()
            self._transport.unregisterProducer()
        if self._cut_abort:
            self._transport.abortConnection()
        else:
            self._transport.loseConnection()

    def _update_producer(self) -> None:
        producer = self._producer
        if producer is None:
            return
        full = len(self._buffer) > _HIGH_WATER
        should_pause = full or self._paused_by_transport
        if should_pause and not self._paused_by_me:
            self._paused_by_me = True
            producer.pauseProducing()
        elif not should_pause and self._paused_by_me:
            self._paused_by_me = False
            producer.resumeProducing()
