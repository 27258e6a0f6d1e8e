"""
The line echo server (the course page's ``EchoHandler``): every line comes back
with a prefix, byte for byte, its terminator included.

Unlike the textbook C{LineReceiver} echo, it keeps its memory bounded against
abusive clients: lines have a maximum length, a client that does not read its
replies is not read from either (the protocol is its transport's producer), idle
connections time out and the factory caps the number of connections.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.interfaces import (
    IAddress,
    IHalfCloseableProtocol,
    IPushProducer,
    IReactorTime,
)
from twisted.internet.protocol import Protocol, ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_netlab.addresses import describe_address

DEFAULT_PREFIX = b"S:"
DEFAULT_MAX_LINE_LENGTH = 65536
DEFAULT_IDLE_TIMEOUT = 300.0
DEFAULT_MAX_CONNECTIONS = 10000

_NL = b"\n"
_CR = 0x0D


def _first_long_line(data: bytes, complete: int, limit: int) -> int:
    """
    Return the offset of the first line in C{data} longer than C{limit} bytes
    (terminator not counted), or -1.

    C{data[:complete]} holds complete lines; the rest is a partial line, which
    may still turn out to end in CRLF, so it is allowed one byte more if that
    byte is a CR.
    """
    start = 0
    while start < complete:
        end = data.index(_NL, start)
        length = end - start
        if length > limit and not (length == limit + 1 and data[end - 1] == _CR):
            return start
        start = end + 1
    rest = len(data) - complete
    if rest > limit + 1 or (rest == limit + 1 and data[-1] != _CR):
        return complete
    return -1


@implementer(IHalfCloseableProtocol, IPushProducer)
class EchoProtocol(Protocol, TimeoutMixin):
    """
    Echo every line with the factory's prefix.

    A line is everything up to and including C{\\n}; it is answered exactly as
    received (C{\\r\\n} stays C{\\r\\n}, any byte value passes). When the client
    half-closes, a last line without terminator is answered too, then the
    connection closes.

    The protocol registers itself as its transport's streaming producer: when
    replies pile up in the transport's buffer because the client is not reading
    them, the transport pauses the protocol, which stops reading from the client.
    """

    factory: EchoFactory
    transport: Any
    _partial = b""
    _closing = False

    def connectionMade(self) -> None:
        self.factory.connection_count += 1
        self.callLater = self.factory.reactor.callLater  # type: ignore[assignment]
        self.transport.registerProducer(self, True)
        if self.factory.idle_timeout:
            self.setTimeout(self.factory.idle_timeout)

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        if self.timeOut is not None:
            self.resetTimeout()
        if self._partial:
            data = self._partial + data
        factory = self.factory
        if len(data) > factory.max_line_length:
            bad = _first_long_line(data, data.rfind(_NL) + 1, factory.max_line_length)
            if bad >= 0:
                self._echo(data[:bad])
                self._refuse_long_line()
                return
        last = len(data) - 1
        if data.find(_NL) == last >= 0:
            # The common case, one whole line: one copy, one write.
            self.transport.write(factory.prefix + data)
            if self._partial:
                self._partial = b""
            return
        complete = data.rfind(_NL) + 1
        if complete:
            self._echo(data[:complete] if complete <= last else data)
            self._partial = data[complete:]
        else:
            self._partial = data

    def _echo(self, lines: bytes) -> None:
        """
        Write C{lines}, which is empty or ends with a newline, one reply per line.
        """
        if not lines:
            return
        prefix = self.factory.prefix
        if prefix:
            body = lines[:-1].replace(_NL, self.factory._newline_prefix)
            self.transport.write(prefix + body + _NL)
        else:
            self.transport.write(lines)

    def _refuse_long_line(self) -> None:
        limit = self.factory.max_line_length
        self.factory.log.info(
            "Closing {peer}: line longer than {limit} bytes",
            peer=describe_address(self.transport.getPeer()),
            limit=limit,
        )
        self.transport.write(
            b"ERROR line too long: the limit is %d bytes; closing\r\n" % (limit,)
        )
        self._stop()

    def _stop(self) -> None:
        self._closing = True
        self._partial = b""
        self.setTimeout(None)
        self.transport.loseConnection()

    def readConnectionLost(self) -> None:
        """
        The client sent EOF: answer its unterminated last line, then close.
        """
        if not self._closing:
            if self._partial:
                self.transport.write(self.factory.prefix + self._partial)
            self._stop()

    def writeConnectionLost(self) -> None:
        self._stop()

    def timeoutConnection(self) -> None:
        self.factory.log.info(
            "Closing {peer}: idle for {timeout} seconds",
            peer=describe_address(self.transport.getPeer()),
            timeout=self.factory.idle_timeout,
        )
        self._closing = True
        self._partial = b""
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)
        self._partial = b""
        self.factory.connection_count -= 1

    # IPushProducer: the transport pauses us when its write buffer is full.
    def pauseProducing(self) -> None:
        self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        self.transport.resumeProducing()

    def stopProducing(self) -> None:
        self._closing = True


class _RefuseConnection(Protocol):
    """
    Close a connection accepted past the factory's connection limit at once.
    """

    def connectionMade(self) -> None:
        self.transport.abortConnection()  # type: ignore[union-attr]


class EchoFactory(ServerFactory[Protocol]):
    """
    Build L{EchoProtocol}s and hold their settings.

    @param prefix: bytes put in front of every echoed line.
    @param max_line_length: the longest line accepted, its terminator not
        counted; a longer line gets one C{ERROR} line and the connection closes.
    @param idle_timeout: seconds without data after which a connection is
        closed; C{0} or L{None} never times out.
    @param max_connections: connections served at once; past it a new
        connection is closed at once (and logged), the others are unaffected.
    @param reactor: schedules the idle timeouts; the global reactor by default.
    """

    protocol = EchoProtocol
    log = Logger()

    def __init__(
        self,
        *,
        prefix: bytes = DEFAULT_PREFIX,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        idle_timeout: float | None = DEFAULT_IDLE_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        reactor: IReactorTime | None = None,
    ) -> None:
        if not isinstance(prefix, bytes):
            raise TypeError(f"prefix must be bytes, not {type(prefix).__name__}")
        if _NL in prefix:
            raise ValueError("prefix must not contain a newline")
        if max_line_length < 1:
            raise ValueError("max_line_length must be at least 1")
        if idle_timeout is not None and idle_timeout < 0:
            raise ValueError("idle_timeout must not be negative")
        if max_connections < 1:
            raise ValueError("max_connections must be at least 1")
        if reactor is None:
            from twisted.internet import reactor as _reactor

            reactor = _reactor
        self.prefix = prefix
        self._newline_prefix = _NL + prefix
        self.max_line_length = max_line_length
        self.idle_timeout = idle_timeout or None
        self.max_connections = max_connections
        self.reactor: IReactorTime = reactor
        self.connection_count = 0

    def buildProtocol(self, addr: IAddress | None) -> Protocol | None:
        if self.connection_count >= self.max_connections:
            self.log.warn(
                "Refusing {peer}: {count} connections open, the limit",
                peer=describe_address(addr) if addr else "?",
                count=self.connection_count,
            )
            refused = _RefuseConnection()
            refused.factory = self
            return refused
        return super().buildProtocol(addr)


__all__ = ["EchoFactory", "EchoProtocol"]
