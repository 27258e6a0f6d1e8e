"""
Tests for L{twisted_netlab.hello}.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.test.iosim import connectedServerAndClient
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab import HelloFactory, HelloProtocol
from twisted_netlab.hello import DEFAULT_GREETING


def connect(factory: HelloFactory, peer: object | None = None) -> StringTransport:
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 48908))
    assert protocol is not None
    transport = StringTransport(
        peerAddress=peer or IPv4Address("TCP", "127.0.0.1", 48908)
    )
    protocol.makeConnection(transport)
    return transport


class HelloProtocolTests(SynchronousTestCase):
    def test_default_greeting_then_close(self) -> None:
        """
        On connect the client gets exactly the course page's greeting, CRLF
        included, and the server closes the connection.
        """
        transport = connect(HelloFactory())
        self.assertEqual(transport.value(), b"Hello Client! I am a HelloHandler\r\n")
        self.assertEqual(DEFAULT_GREETING, b"Hello Client! I am a HelloHandler\r\n")
        self.assertTrue(transport.disconnecting)

    def test_configured_greeting(self) -> None:
        """
        The factory's C{greeting} is written byte for byte.
        """
        greeting = "Grüß dich\n".encode()
        transport = connect(HelloFactory(greeting=greeting))
        self.assertEqual(transport.value(), greeting)

    def test_greeting_must_be_bytes(self) -> None:
        """
        A text greeting is a programming error, reported at construction.
        """
        self.assertRaises(TypeError, HelloFactory, greeting="hello")

    def test_logs_client_address(self) -> None:
        """
        Every connection is logged as C{Serving client: host:port}, like the
        seed's print, through twisted.logger.
        """
        with capturedLogs() as events:
            connect(HelloFactory(), IPv4Address("TCP", "192.0.2.7", 5555))
        messages = [e["log_format"].format(**e) for e in events if "address" in e]
        self.assertEqual(messages, ["Serving client: 192.0.2.7:5555"])

    def test_in_memory_client(self) -> None:
        """
        A client connected through iosim receives the greeting and sees the
        connection end.
        """
        from twisted.internet.protocol import Protocol

        received: list[bytes] = []

        class Client(Protocol):
            lost = False

            def dataReceived(self, data: bytes) -> None:
                received.append(data)

            def connectionLost(self, reason: object = None) -> None:
                Client.lost = True

        server = HelloFactory().buildProtocol(None)
        assert isinstance(server, HelloProtocol)
        _, _, pump = connectedServerAndClient(lambda: server, Client)
        pump.flush()
        self.assertEqual(b"".join(received), DEFAULT_GREETING)
        self.assertTrue(Client.lost)
