"""
A TCP and UNIX transport that writes at once, and how listeners and clients
get it.

Twisted's transports (L{twisted.internet.abstract.FileDescriptor}) never send
in C{write}: they append the bytes to a list and ask the reactor to watch the
socket for writability.  The next reactor iteration reports it writable,
C{doWrite} sends, and the watch is removed again.  For a server answering one
request at a time that is two C{epoll_ctl} calls and one more reactor event
per reply (Twisted issue #5303, open since 2011).  asyncio's transports send
at once when nothing is waiting, and that is what this module does.

Design
======

The classes here subclass Twisted's own connection classes (C{tcp.Server},
C{tcp.Client}, C{unix.Server}, C{unix.Client}) and change only C{write} and
C{writeSequence}; everything else (reading, C{doWrite}, closing, half-close,
abort, producers, TLS) is Twisted's code, working on Twisted's own buffers.

- A write goes to the socket at once only when nothing is buffered: both
  C{_tempDataBuffer} and C{dataBuffer} are empty (Twisted's C{doWrite}
  empties C{dataBuffer} once all of it is sent, so what a partial send left
  in C{dataBuffer[offset:]} holds later writes back), the connection is
  connected and not closing, half-closing or aborting, no write error is
  pending, no file descriptor waits to be sent with the next byte (UNIX
  C{sendFileDescriptor}), and no pull producer is registered.  Otherwise it
  is handed to C{FileDescriptor.write}, unchanged.  So bytes leave in the order written,
  each once: new bytes can never overtake bytes an earlier partial send left
  behind (the first bug of Twisted's 2011 C{synchronous-write-5303} branch).
- Whatever the socket does not take (a partial send, C{EAGAIN}) is buffered
  with C{FileDescriptor.write}, exactly as Twisted would have buffered the
  whole write, and Twisted's C{doWrite} sends it.  Only buffered bytes count
  towards a streaming producer's pause threshold (C{bufferSize}), as before.
- A send that fails (C{ECONNRESET}, C{EPIPE}...) is not dropped (the 2011
  branch's second bug) and not reported from inside C{write}, which may be
  running inside the protocol's own C{dataReceived}.  The error is kept, the
  bytes are buffered and the reactor is asked for a write event; C{doWrite}
  then returns the error, and the reactor loses the connection through its
  normal path: C{connectionLost} is called once, with C{ConnectionLost}.
- Pull producers are left to Twisted: their next C{resumeProducing} comes from
  C{doWrite}, and writing their data at once would leave nobody to ask for
  more.
- C{startTLS} (STARTTLS in SMTP and IMAP) puts Twisted's TLS protocol between
  the application and this transport; its ciphertext is written through
  here too.  TLS endpoints (C{ssl:}) wrap the application's factory in
  C{TLSMemoryBIOFactory} over this transport, as Twisted's reactor does.

Policy
======

Each write is sent at once when nothing is buffered.  Collecting the writes
made while the protocol handles one read into one send at the end of the
read was measured too: it served fewer echo replies per second in every
scenario and cost more CPU per reply in three of four (docs/benchmarks.rst,
"The write-through transport"), so it is not kept.

Nagle
=====

Writing at once needs C{TCP_NODELAY}, which asyncio sets on every TCP
transport for the same reason.  With Nagle's algorithm on, the kernel holds
a small segment back while an earlier one is unacknowledged; a reply written
in several sends (an SMTP C{EHLO} reply, an IMAP C{SELECT}: untagged lines,
then the tagged one) then waits for the peer's delayed ACK, about 40 ms on
Linux, before its last part leaves.  Twisted's own transport never meets
this because it sends everything written in one iteration with one
C{send}.  Measured on loopback with imaplib against the lab: C{SELECT} took
44 ms with write-through and Nagle, 0.9 ms with Twisted's transport, and
0.9 ms with write-through and C{TCP_NODELAY}.  So every TCP connection these
classes make, server or client, has C{TCP_NODELAY} set.

Getting it
==========

L{write_through_reactor} wraps a reactor: its C{listenTCP}, C{listenSSL},
C{listenUNIX}, C{connectTCP}, C{connectSSL}, C{connectUNIX} and
C{adoptStreamPort} use these classes, and everything else is the reactor's
own.  Any Twisted endpoint built on it (C{serverFromString},
C{HostnameEndpoint}...) gets the transport.  C{twisted_netlab.endpoints}
does this for every listener the plugins create, and the C{netlab} command
for its clients.  Setting C{NETLAB_WRITE_THROUGH=0} in the environment turns
it off, for comparison.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Sequence
from contextlib import suppress
from errno import EINTR, ENOBUFS, EWOULDBLOCK
from typing import Any

from twisted.internet import main, tcp, unix
from twisted.internet.abstract import FileDescriptor
from twisted.internet.interfaces import IProtocol, IReactorFDSet
from twisted.internet.posixbase import PosixReactorBase
from zope.interface import directlyProvides, providedBy

from twisted_netlab.switches import switched_on

__all__ = [
    "WriteThroughClient",
    "WriteThroughConnector",
    "WriteThroughPort",
    "WriteThroughServer",
    "WriteThroughUNIXClient",
    "WriteThroughUNIXConnector",
    "WriteThroughUNIXPort",
    "WriteThroughUNIXServer",
    "enabled",
    "write_through_reactor",
]

#: The environment variable that turns the transport off when it is C{0},
#: C{no}, C{off} or C{false}.
SWITCH = "NETLAB_WRITE_THROUGH"

_RETRY = (EWOULDBLOCK, ENOBUFS, EINTR)


def enabled() -> bool:
    """
    Whether the write-through transport is on (it is unless
    C{NETLAB_WRITE_THROUGH} says otherwise).
    """
    return switched_on(SWITCH)


def _write(self: Any, data: bytes) -> None:
    """
    Write C{data} on connection C{self}, below any TLS layer: to the socket at
    once when nothing is buffered, else (and whatever the socket does not
    take) through Twisted's buffer.
    """
    if (
        not self._tempDataBuffer
        and not self.dataBuffer
        and type(data) is bytes
        and data
        and self.connected
        and not self.disconnecting
        and not self._writeDisconnecting
        and not self._aborting
        and self._write_error is None
        and not self._sendmsgQueue
        and (self.producer is None or self.streamingProducer)
    ):
        try:
            sent = self.socket.send(data)
        except OSError as e:
            if e.args[0] not in _RETRY:
                # Kept for doWrite, which the reactor asks and reports it.
                self._write_error = main.CONNECTION_LOST
            sent = 0
        if sent == len(data):
            return
        data = data[sent:]
    FileDescriptor.write(self, data)


def _write_sequence(self: Any, iovec: Iterable[bytes]) -> None:
    """
    L{_write} for a sequence of byte strings.
    """
    iovec = list(iovec)
    for data in iovec:
        if not isinstance(data, bytes):
            raise TypeError("Data must be bytes")
    if iovec:
        _write(self, b"".join(iovec))


class _BelowTLS(FileDescriptor):
    """
    What Twisted's C{startTLS} calls to write the TLS layer's ciphertext (its
    C{bypass} class): the write-through writes, FileDescriptor's rest.
    """

    write = _write
    writeSequence = _write_sequence


class _WriteThrough:
    """
    Mixed in before one of Twisted's connection classes: see the module
    docstring.
    """

    # Set by the connection classes this is mixed into.
    TLS: bool
    connected: int
    protocol: Any

    #: a failed send's error, which C{doWrite} returns to the reactor
    _write_error: Exception | None = None

    def write(self, data: bytes) -> None:
        """
        Write C{data}, through TLS if it was started, at once when nothing is
        buffered.
        """
        self_: Any = self
        # The common case first, inline (it is L{_write}'s test and send):
        # plain bytes with nothing buffered, on an open connection.
        if (
            not self_._tempDataBuffer
            and not self_.dataBuffer
            and type(data) is bytes
            and data
            and not self.TLS
            and self.connected
            and not self_.disconnecting
            and not self_._writeDisconnecting
            and not self_._aborting
            and self._write_error is None
            and not self_._sendmsgQueue
            and (self_.producer is None or self_.streamingProducer)
        ):
            try:
                sent = self_.socket.send(data)
            except OSError as e:
                if e.args[0] not in _RETRY:
                    self._write_error = main.CONNECTION_LOST
                sent = 0
            if sent == len(data):
                return
            FileDescriptor.write(self_, data[sent:])
        elif self.TLS:
            if self.connected:
                self.protocol.write(data)
        else:
            _write(self, data)

    def writeSequence(self, iovec: Iterable[bytes]) -> None:
        """
        Write the byte strings of C{iovec}, as L{write} would their join.
        """
        if self.TLS:
            if self.connected:
                self.protocol.writeSequence(iovec)
        else:
            _write_sequence(self, iovec)

    def startTLS(self, ctx: Any, normal: bool = True) -> None:
        """
        Start TLS (see L{twisted.internet.interfaces.ITLSTransport}), its
        ciphertext written through as well.
        """
        from twisted.internet._newtls import startTLS

        startTLS(self, ctx, normal, _BelowTLS)

    def doWrite(self) -> Any:
        """
        Report a failed send to the reactor, or send what is buffered.
        """
        if self._write_error is not None:
            return self._write_error
        return super().doWrite()  # type: ignore[misc]


def _no_delay(sock: socket.socket) -> socket.socket:
    """
    Turn Nagle's algorithm off on C{sock} (C{TCP_NODELAY}), as asyncio does
    for its TCP transports: see "Nagle" in the module docstring.
    """
    with suppress(OSError):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


class WriteThroughServer(_WriteThrough, tcp.Server):
    """
    A server TCP connection that writes at once when nothing is buffered,
    with C{TCP_NODELAY}.
    """

    def __init__(
        self,
        sock: socket.socket,
        protocol: IProtocol,
        client: tuple[object, ...],
        server: tcp.Port,
        sessionno: int,
        reactor: IReactorFDSet,
    ) -> None:
        super().__init__(_no_delay(sock), protocol, client, server, sessionno, reactor)

    #: file descriptors to send with the next bytes: only UNIX sockets have
    #: them (their sendFileDescriptor); while any wait, Twisted's buffered
    #: path sends
    _sendmsgQueue: Sequence[int] = ()


class WriteThroughClient(_WriteThrough, tcp.Client):
    """
    A client TCP connection that writes at once when nothing is buffered,
    with C{TCP_NODELAY}.
    """

    def createInternetSocket(self) -> socket.socket:
        """
        The connection's socket, Nagle's algorithm off.
        """
        return _no_delay(super().createInternetSocket())

    #: file descriptors to send with the next bytes: only UNIX sockets have
    #: them (their sendFileDescriptor); while any wait, Twisted's buffered
    #: path sends
    _sendmsgQueue: Sequence[int] = ()


class WriteThroughUNIXServer(_WriteThrough, unix.Server):
    """
    A server UNIX connection that writes at once when nothing is buffered.
    """


class WriteThroughUNIXClient(_WriteThrough, unix.Client):
    """
    A client UNIX connection that writes at once when nothing is buffered.
    """


class WriteThroughPort(tcp.Port):
    """
    A TCP listening port whose connections are L{WriteThroughServer}s.
    """

    transport = WriteThroughServer


class WriteThroughUNIXPort(unix.Port):
    """
    A UNIX listening port whose connections are L{WriteThroughUNIXServer}s.
    """

    transport = WriteThroughUNIXServer


class WriteThroughConnector(tcp.Connector):
    """
    A TCP connector whose connections are L{WriteThroughClient}s.
    """

    def _makeTransport(self) -> WriteThroughClient:
        return WriteThroughClient(
            self.host, self.port, self.bindAddress, self, self.reactor
        )


class WriteThroughUNIXConnector(unix.Connector):
    """
    A UNIX connector whose connections are L{WriteThroughUNIXClient}s.
    """

    def _makeTransport(self) -> Any:
        return WriteThroughUNIXClient(self.address, self, self.reactor)


class _WriteThroughReactor:
    """
    A reactor whose TCP, TLS and UNIX stream ports and connections use the
    write-through transport; every other attribute is the wrapped reactor's.
    """

    def __init__(self, reactor: PosixReactorBase) -> None:
        self._reactor = reactor
        directlyProvides(self, providedBy(reactor))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._reactor, name)

    def __repr__(self) -> str:
        return f"<write-through {self._reactor!r}>"

    def listenTCP(
        self, port: int, factory: Any, backlog: int = 50, interface: str = ""
    ) -> WriteThroughPort:
        p = WriteThroughPort(port, factory, backlog, interface, self._reactor)
        p.startListening()
        return p

    def connectTCP(
        self,
        host: str,
        port: int,
        factory: Any,
        timeout: float = 30.0,
        bindAddress: Any = None,
    ) -> WriteThroughConnector:
        c = WriteThroughConnector(
            host, port, factory, timeout, bindAddress, self._reactor
        )
        c.connect()
        return c

    def listenSSL(
        self,
        port: int,
        factory: Any,
        contextFactory: Any,
        backlog: int = 50,
        interface: str = "",
    ) -> WriteThroughPort:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        p = self.listenTCP(
            port,
            TLSMemoryBIOFactory(contextFactory, False, factory),
            backlog,
            interface,
        )
        p._type = "TLS"
        return p

    def connectSSL(
        self,
        host: str,
        port: int,
        factory: Any,
        contextFactory: Any,
        timeout: float = 30.0,
        bindAddress: Any = None,
    ) -> WriteThroughConnector:
        from twisted.protocols.tls import TLSMemoryBIOFactory

        return self.connectTCP(
            host,
            port,
            TLSMemoryBIOFactory(contextFactory, True, factory),
            timeout,
            bindAddress,
        )

    def listenUNIX(
        self,
        address: Any,
        factory: Any,
        backlog: int = 50,
        mode: int = 0o666,
        wantPID: int = 0,
    ) -> WriteThroughUNIXPort:
        p = WriteThroughUNIXPort(
            address, factory, backlog, mode, self._reactor, wantPID
        )
        p.startListening()
        return p

    def connectUNIX(
        self, address: str, factory: Any, timeout: float = 30, checkPID: int = 0
    ) -> WriteThroughUNIXConnector:
        c = WriteThroughUNIXConnector(
            address, factory, timeout, self._reactor, checkPID
        )
        c.connect()
        return c

    def adoptStreamPort(
        self, fileDescriptor: int, addressFamily: Any, factory: Any
    ) -> Any:
        from twisted.internet import error

        if addressFamily == socket.AF_UNIX:
            p: Any = WriteThroughUNIXPort._fromListeningDescriptor(
                self._reactor, fileDescriptor, factory
            )
        elif addressFamily in (socket.AF_INET, socket.AF_INET6):
            p = WriteThroughPort._fromListeningDescriptor(
                self._reactor, fileDescriptor, addressFamily, factory
            )
        else:
            raise error.UnsupportedAddressFamily(addressFamily)
        p.startListening()
        return p


def write_through_reactor(reactor: Any, *, force: bool = False) -> Any:
    """
    C{reactor}, wrapped so that the stream ports and connections made through
    it (directly or by any endpoint given it) use the write-through transport.

    The reactor comes back unwrapped when the transport is off
    (C{NETLAB_WRITE_THROUGH=0}, unless C{force}), when it is already wrapped,
    and when it is not one of Twisted's POSIX reactors (a C{MemoryReactor} in
    a test, say), whose ports these classes could not be.
    """
    if isinstance(reactor, _WriteThroughReactor):
        return reactor
    if not (force or enabled()):
        return reactor
    if not isinstance(reactor, PosixReactorBase) or not IReactorFDSet.providedBy(
        reactor
    ):
        return reactor
    return _WriteThroughReactor(reactor)
