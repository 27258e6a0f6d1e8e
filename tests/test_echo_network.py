"""
L{twisted_netlab.echo} on real loopback sockets, in the test's reactor
(pytest-twisted).
"""

from __future__ import annotations

import os

import pytest_twisted
from twisted.internet import defer, reactor
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.interfaces import IHalfCloseableProtocol
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_netlab import EchoFactory


@implementer(IHalfCloseableProtocol)
class Client(Protocol):
    """
    Send C{payload}, optionally half-close, collect everything until the
    server closes.
    """

    def __init__(self, payload: bytes, half_close: bool) -> None:
        self.payload = payload
        self.half_close = half_close
        self.received: list[bytes] = []
        self.done: defer.Deferred[bytes] = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.payload)  # type: ignore[union-attr]
        if self.half_close:
            self.transport.loseWriteConnection()  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.received.append(data)
        if not self.half_close and b"".join(self.received).count(
            b"\n"
        ) == self.payload.count(b"\n"):
            self.transport.loseConnection()  # type: ignore[union-attr]

    def readConnectionLost(self) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]

    def writeConnectionLost(self) -> None:
        pass

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self.done.callback(b"".join(self.received))


async def listen(factory: EchoFactory) -> tuple[int, object]:
    port = await TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1").listen(factory)
    return port.getHost().port, port


async def exchange(port: int, payload: bytes, half_close: bool = False) -> bytes:
    client = Client(payload, half_close)
    await TCP4ClientEndpoint(reactor, "127.0.0.1", port).connect(
        Factory.forProtocol(lambda: client)
    )
    return await client.done


@pytest_twisted.ensureDeferred
async def test_200_concurrent_clients_no_cross_talk() -> None:
    """
    200 clients at once, each with its own random payload of many lines,
    each get exactly their own lines back.
    """
    port, listening = await listen(EchoFactory(reactor=reactor))
    try:
        payloads = [
            b"".join(
                b"%d-%d-%s\n" % (i, n, os.urandom(16).hex().encode()) for n in range(50)
            )
            for i in range(200)
        ]
        results = await defer.gatherResults(
            [defer.Deferred.fromCoroutine(exchange(port, p)) for p in payloads]
        )
        for payload, result in zip(payloads, results, strict=True):
            expected = b"".join(
                b"S:" + line for line in payload.splitlines(keepends=True)
            )
            assert result == expected
    finally:
        await listening.stopListening()  # type: ignore[attr-defined]


@pytest_twisted.ensureDeferred
async def test_half_close_over_tcp() -> None:
    """
    Over real TCP, a client that half-closes after an unterminated line gets
    it answered, then the server closes.
    """
    port, listening = await listen(EchoFactory(reactor=reactor))
    try:
        assert await exchange(port, b"one\r\nabc", half_close=True) == b"S:one\r\nS:abc"
    finally:
        await listening.stopListening()  # type: ignore[attr-defined]


@pytest_twisted.ensureDeferred
async def test_binary_payload_over_tcp() -> None:
    """
    Every byte value survives the trip, in lines of all lengths.
    """
    port, listening = await listen(EchoFactory(reactor=reactor))
    try:
        data = bytes(range(256)).replace(b"\n", b"") * 300
        lines = [data[i : i + (i % 997) + 1] + b"\n" for i in range(0, len(data), 500)]
        result = await exchange(port, b"".join(lines))
        assert result == b"".join(b"S:" + line for line in lines)
    finally:
        await listening.stopListening()  # type: ignore[attr-defined]
