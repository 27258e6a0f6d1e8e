"""
L{twisted_netlab.transport} on real sockets, in the test's reactor
(pytest-twisted): listeners made by L{twisted_netlab.endpoints.parse_endpoint}
for C{tcp:}, C{tcp6:}, C{unix:} and C{ssl:}, TLS (endpoint and STARTTLS)
with the standard library's C{ssl} as the peer, and the client side.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import socket
import ssl
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, threads
from twisted.internet.endpoints import (
    HostnameEndpoint,
    UNIXClientEndpoint,
    connectProtocol,
)
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import PrivateCertificate
from twisted.python.failure import Failure

from tests.certs import ServerCertificate, make_server_certificate
from twisted_netlab import EchoFactory
from twisted_netlab.endpoints import parse_endpoint
from twisted_netlab.transport import (
    SWITCH,
    WriteThroughClient,
    WriteThroughPort,
    WriteThroughServer,
    WriteThroughUNIXClient,
    WriteThroughUNIXPort,
    WriteThroughUNIXServer,
    _BelowTLS,
    write_through_reactor,
)

#: enough lines to fill the socket buffers both ways, so that writes are
#: partial and the echo server's backpressure pauses and resumes it
PAYLOAD = b"".join(
    b"%d %s\n" % (i, hashlib.sha256(b"%d" % i).hexdigest().encode() * 8)
    for i in range(6000)
)

SMALL = PAYLOAD[: PAYLOAD.index(b"\n", 100_000) + 1]


def expected_echo(payload: bytes) -> bytes:
    return b"".join(b"S:" + line + b"\n" for line in payload.split(b"\n")[:-1])


def _blocking_exchange(
    connect: Any, payload: bytes, context: ssl.SSLContext | None = None
) -> bytes:
    """
    In a thread: connect, send C{payload} while reading (as fast as the
    server answers), half-close, and read to the end.
    """
    import selectors

    raw = connect()
    sock: Any = (
        context.wrap_socket(raw, server_hostname="localhost") if context else raw
    )
    sock.setblocking(False)
    received = bytearray()
    view = memoryview(payload)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    shut = False
    while True:
        for _, events in sel.select(timeout=30):
            if events & selectors.EVENT_READ:
                try:
                    data = sock.recv(65536)
                except (ssl.SSLWantReadError, BlockingIOError):
                    data = None
                if data == b"":
                    sock.close()
                    return bytes(received)
                if data:
                    received += data
                    if context and len(received) >= len(expected_echo(payload)):
                        sock.close()
                        return bytes(received)
            if events & selectors.EVENT_WRITE and view:
                with contextlib.suppress(ssl.SSLWantWriteError, BlockingIOError):
                    view = view[sock.send(view[:65536]) :]
        if not view and not shut:
            shut = True
            sel.modify(sock, selectors.EVENT_READ)
            if not context:
                sock.shutdown(socket.SHUT_WR)


class Recorder(Protocol):
    """
    Remembers its transport for the test to look at, and echoes nothing.
    """

    def __init__(self) -> None:
        self.made: defer.Deferred[Any] = defer.Deferred()

    def connectionMade(self) -> None:
        self.made.callback(self.transport)


@pytest_twisted.ensureDeferred
async def test_tcp_listener_echoes_through_write_through() -> None:
    """
    A C{tcp:} listener from parse_endpoint is a L{WriteThroughPort}, its
    connections L{WriteThroughServer}s, and netlab-echo answers 1.8 MB sent
    while reading (writes partial, backpressure engaged) byte for byte.
    """
    endpoint = parse_endpoint(reactor, "tcp:0:interface=127.0.0.1")
    factory = EchoFactory()
    port: Any = await endpoint.listen(factory)
    try:
        assert isinstance(port, WriteThroughPort)
        assert port.transport is WriteThroughServer
        number = port.getHost().port
        received = await threads.deferToThread(
            _blocking_exchange,
            lambda: socket.create_connection(("127.0.0.1", number)),
            PAYLOAD,
        )
        assert received == expected_echo(PAYLOAD)
    finally:
        await defer.maybeDeferred(port.stopListening)


@pytest_twisted.ensureDeferred
async def test_tcp6_listener() -> None:
    """
    A C{tcp6:} listener is write-through as well.
    """
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        port: Any = await parse_endpoint(reactor, r"tcp6:0:interface=\:\:1").listen(
            EchoFactory()
        )
    except Exception as e:  # no ::1 configured (some containers)
        pytest.skip(f"cannot listen on ::1: {e}")
    try:
        assert isinstance(port, WriteThroughPort)
        number = port.getHost().port
        received = await threads.deferToThread(
            _blocking_exchange,
            lambda: socket.create_connection(("::1", number)),
            SMALL,
        )
        assert received == expected_echo(SMALL)
    finally:
        await defer.maybeDeferred(port.stopListening)


@pytest_twisted.ensureDeferred
async def test_unix_listener_and_client(tmp_path: Path) -> None:
    """
    A C{unix:} listener is a L{WriteThroughUNIXPort}; a UNIX client endpoint
    on the wrapped reactor makes a L{WriteThroughUNIXClient}; the echo is
    exact.
    """
    path = tmp_path / "echo.sock"
    port: Any = await parse_endpoint(reactor, f"unix:{path}").listen(EchoFactory())
    try:
        assert isinstance(port, WriteThroughUNIXPort)

        def connect() -> socket.socket:
            s = socket.socket(socket.AF_UNIX)
            s.connect(str(path))
            return s

        received = await threads.deferToThread(_blocking_exchange, connect, PAYLOAD)
        assert received == expected_echo(PAYLOAD)

        client = Recorder()
        await connectProtocol(
            UNIXClientEndpoint(write_through_reactor(reactor), str(path)), client
        )
        transport = await client.made
        assert isinstance(transport, WriteThroughUNIXClient)
        transport.loseConnection()
    finally:
        await defer.maybeDeferred(port.stopListening)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> ServerCertificate:
    return make_server_certificate(tmp_path_factory.mktemp("certs"))


def _client_context(certificate: ServerCertificate) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(certificate.ca))
    return context


@pytest_twisted.ensureDeferred
async def test_ssl_listener_with_stdlib_client(certificate: ServerCertificate) -> None:
    """
    An C{ssl:} listener: Twisted's TLS layer over a L{WriteThroughServer};
    the standard library's verified TLS client gets an exact echo of 1.8 MB.
    """
    port: Any = await parse_endpoint(
        reactor,
        f"ssl:0:interface=127.0.0.1:privateKey={certificate.key}"
        f":certKey={certificate.cert}",
    ).listen(EchoFactory())
    try:
        assert isinstance(port, WriteThroughPort)
        number = port.getHost().port
        received = await threads.deferToThread(
            _blocking_exchange,
            lambda: socket.create_connection(("127.0.0.1", number)),
            PAYLOAD,
            _client_context(certificate),
        )
        assert received == expected_echo(PAYLOAD)
    finally:
        await defer.maybeDeferred(port.stopListening)


class StartTLSEcho(Protocol):
    """
    Answers C{STARTTLS} with C{GO}, starts TLS, then echoes everything.
    """

    def __init__(self, options: Any) -> None:
        self.options = options
        self.tls = False
        self.transports: list[Any] = []
        self.bases: list[type] = []

    def dataReceived(self, data: bytes) -> None:
        if not self.tls:
            assert data == b"STARTTLS\n"
            self.transport.write(b"GO\n")  # type: ignore[union-attr]
            self.transport.startTLS(self.options)  # type: ignore[union-attr]
            self.tls = True
            self.transports.append(self.transport)
            # what Twisted's TLS layer writes its ciphertext with
            self.bases.append(self.transport.protocol.transport._base)  # type: ignore[union-attr]
        else:
            self.transport.write(data)  # type: ignore[union-attr]


def _starttls_exchange(number: int, context: ssl.SSLContext, payload: bytes) -> bytes:
    raw = socket.create_connection(("127.0.0.1", number))
    raw.sendall(b"STARTTLS\n")
    assert raw.recv(3) == b"GO\n"
    sock = context.wrap_socket(raw, server_hostname="localhost")
    received = bytearray()
    sock.settimeout(30)
    for start in range(0, len(payload), 16384):
        sock.sendall(payload[start : start + 16384])
        while len(received) < start + min(16384, len(payload) - start):
            received += sock.recv(65536)
    sock.close()
    return bytes(received)


@pytest_twisted.ensureDeferred
async def test_starttls_over_write_through(certificate: ServerCertificate) -> None:
    """
    C{startTLS} on a L{WriteThroughServer}: the TLS layer's ciphertext goes
    through the write-through writes, and the stdlib client reads back
    exactly what it sent, under TLS.
    """
    pem = certificate.key.read_text() + certificate.cert.read_text()
    options = PrivateCertificate.loadPEM(pem).options()
    protocols: list[StartTLSEcho] = []

    def build() -> StartTLSEcho:
        protocols.append(StartTLSEcho(options))
        return protocols[-1]

    port: Any = await parse_endpoint(reactor, "tcp:0:interface=127.0.0.1").listen(
        Factory.forProtocol(build)
    )
    try:
        payload = os.urandom(300_000)
        received = await threads.deferToThread(
            _starttls_exchange,
            port.getHost().port,
            _client_context(certificate),
            payload,
        )
        assert received == payload
        transport = protocols[0].transports[0]
        assert isinstance(transport, WriteThroughServer)
        assert transport.TLS
        # the TLS layer writes its ciphertext through the write-through writes
        assert protocols[0].bases == [_BelowTLS]
    finally:
        await defer.maybeDeferred(port.stopListening)


@pytest_twisted.ensureDeferred
async def test_tcp_client_is_write_through() -> None:
    """
    C{HostnameEndpoint} (what C{netlab send} and C{netlab fetch} connect
    with) on the wrapped reactor makes L{WriteThroughClient} connections, and
    they carry bytes both ways.
    """
    port: Any = await parse_endpoint(reactor, "tcp:0:interface=127.0.0.1").listen(
        EchoFactory()
    )

    class Client(Protocol):
        def __init__(self) -> None:
            self.received = b""
            self.done: defer.Deferred[bytes] = defer.Deferred()

        def connectionMade(self) -> None:
            self.transport.write(b"ping\n")  # type: ignore[union-attr]

        def dataReceived(self, data: bytes) -> None:
            self.received += data
            if self.received.endswith(b"\n"):
                self.transport.loseConnection()  # type: ignore[union-attr]

        def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
            self.done.callback(self.received)

    try:
        client = Client()
        await connectProtocol(
            HostnameEndpoint(
                write_through_reactor(reactor), "127.0.0.1", port.getHost().port
            ),
            client,
        )
        assert isinstance(client.transport, WriteThroughClient)
        assert await client.done == b"S:ping\n"
    finally:
        await defer.maybeDeferred(port.stopListening)


@pytest_twisted.ensureDeferred
async def test_tcp_connections_have_no_delay() -> None:
    """
    Both ends of a write-through TCP connection, server and client, have
    C{TCP_NODELAY}: with Nagle's algorithm on, the last part of a reply
    written in several sends (an SMTP EHLO reply, an IMAP SELECT) waited for
    the peer's delayed ACK, about 40 ms a reply.  Twisted's own transport has
    it off, as before.
    """
    server = Recorder()
    port: Any = await parse_endpoint(reactor, "tcp:0:interface=127.0.0.1").listen(
        Factory.forProtocol(lambda: server)
    )
    try:
        client = Recorder()
        await connectProtocol(
            HostnameEndpoint(
                write_through_reactor(reactor), "127.0.0.1", port.getHost().port
            ),
            client,
        )
        server_transport = await server.made
        client_transport = await client.made
        assert isinstance(server_transport, WriteThroughServer)
        assert isinstance(client_transport, WriteThroughClient)
        for transport in (server_transport, client_transport):
            handle = transport.getHandle()
            assert handle.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        client_transport.loseConnection()
        plain = Recorder()
        await connectProtocol(
            HostnameEndpoint(reactor, "127.0.0.1", port.getHost().port), plain
        )
        plain_transport = await plain.made
        assert not plain_transport.getHandle().getsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY
        )
        plain_transport.loseConnection()
    finally:
        await defer.maybeDeferred(port.stopListening)


@pytest_twisted.ensureDeferred
async def test_adopted_port_is_write_through() -> None:
    """
    A listening socket adopted through the wrapped reactor (as C{systemd:}
    endpoints and worker processes do) serves write-through connections.
    """
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(5)
    listener.setblocking(False)
    try:
        port = write_through_reactor(reactor).adoptStreamPort(
            listener.fileno(), socket.AF_INET, EchoFactory()
        )
    finally:
        listener.close()
    try:
        assert isinstance(port, WriteThroughPort)
        number = port.getHost().port
        received = await threads.deferToThread(
            _blocking_exchange,
            lambda: socket.create_connection(("127.0.0.1", number)),
            b"adopted\n",
        )
        assert received == b"S:adopted\n"
    finally:
        await defer.maybeDeferred(port.stopListening)


@pytest_twisted.ensureDeferred
async def test_switch_off_gives_twisted_transport(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """
    With C{NETLAB_WRITE_THROUGH=0}, parse_endpoint's listeners are Twisted's
    own ports and transports.
    """
    from twisted.internet import tcp

    monkeypatch.setenv(SWITCH, "0")
    port: Any = await parse_endpoint(reactor, "tcp:0:interface=127.0.0.1").listen(
        EchoFactory()
    )
    try:
        assert type(port) is tcp.Port
        assert port.transport is tcp.Server
    finally:
        await defer.maybeDeferred(port.stopListening)


def test_unix_server_class() -> None:
    """
    The UNIX listener's connections are L{WriteThroughUNIXServer}s.
    """
    assert WriteThroughUNIXPort.transport is WriteThroughUNIXServer


class SendsDescriptor(Protocol):
    """
    Sends a file descriptor, then a byte (which carries it), then closes.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def connectionMade(self) -> None:
        self.transport.sendFileDescriptor(self.fd)  # type: ignore[union-attr]
        self.transport.write(b"x")  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


def _receive_descriptor(path: str) -> tuple[bytes, list[int]]:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(path)
        data, fds, _, _ = socket.recv_fds(s, 16, 4)
        return data, fds


@pytest_twisted.ensureDeferred
async def test_unix_send_file_descriptor(tmp_path: Path) -> None:
    """
    A file descriptor queued with C{sendFileDescriptor} still leaves with
    the next byte written (the write-through path leaves it to Twisted's
    C{sendmsg}).
    """
    path = tmp_path / "fd.sock"
    read_end, write_end = os.pipe()
    try:
        port: Any = await parse_endpoint(reactor, f"unix:{path}").listen(
            Factory.forProtocol(lambda: SendsDescriptor(write_end))
        )
        try:
            data, fds = await threads.deferToThread(_receive_descriptor, str(path))
        finally:
            await defer.maybeDeferred(port.stopListening)
        assert data == b"x"
        assert len(fds) == 1
        os.write(fds[0], b"through the passed descriptor")
        os.close(fds[0])
        assert os.read(read_end, 100) == b"through the passed descriptor"
    finally:
        os.close(read_end)
        os.close(write_end)
