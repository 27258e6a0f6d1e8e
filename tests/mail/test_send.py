"""
Tests for L{twisted_netlab.mail.send}: serialization, the envelope, and
L{send_message} on a memory reactor.
"""

from __future__ import annotations

import email
import shutil
import subprocess
import sys
import tempfile
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from unittest import mock

from twisted.internet import error
from twisted.internet.address import IPv4Address
from twisted.internet.defer import CancelledError
from twisted.internet.interfaces import IHostnameResolver, IResolutionReceiver
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from tests.certs import make_server_certificate
from twisted_netlab.errors import ConnectionFailed, TLSFailed, UsageProblem
from twisted_netlab.mail import send as send_module
from twisted_netlab.mail.compose import Draft, compose
from twisted_netlab.mail.outgoing import header_block, raw_message_bytes
from twisted_netlab.mail.send import (
    Envelope,
    SendResult,
    envelope_of,
    message_bytes,
    needs_smtputf8,
    send_message,
)
from twisted_netlab.mail.tls import client_tls_options


def message_with_bcc() -> EmailMessage:
    message = compose(Draft(sender="a@example.org", to=["b@example.org"], text="hi"))
    message["Bcc"] = "hidden@example.org"
    message["Resent-Bcc"] = "also-hidden@example.org"
    return message


class MessageBytesTestCase(SynchronousTestCase):
    def test_bcc_removed(self) -> None:
        """
        Bcc and Resent-Bcc are not transmitted; the caller's message keeps
        them.
        """
        message = message_with_bcc()
        data = message_bytes(message)
        self.assertNotIn(b"hidden", data)
        self.assertEqual(message["Bcc"], "hidden@example.org")
        self.assertEqual(message["Resent-Bcc"], "also-hidden@example.org")

    def test_crlf(self) -> None:
        """
        Every line ends with CRLF, whatever the message's own line ends.
        """
        message = EmailMessage()
        message["From"] = "a@example.org"
        message.set_payload("one\ntwo\rthree\r\n")
        data = message_bytes(message)
        self.assertTrue(data.endswith(b"\r\n\r\none\r\ntwo\r\nthree\r\n"))
        self.assertNotIn(b"\n", data.replace(b"\r\n", b""))
        self.assertNotIn(b"\r", data.replace(b"\r\n", b""))

    def test_smtputf8(self) -> None:
        """
        With a non-ASCII address, headers are written as UTF-8 (RFC 6532):
        the stdlib's ASCII-only policy would garble the address.
        """
        message = compose(Draft(sender="a@example.org", to=["Jörg <jörg@example.org>"]))
        self.assertIn(
            "To: Jörg <jörg@example.org>\r\n".encode(), message_bytes(message)
        )
        ascii_only = message_bytes(message, smtputf8=False)
        self.assertNotIn("jörg".encode(), ascii_only)

    def test_seven_bit(self) -> None:
        """
        With C{eight_bit=False}, 8-bit text parts are re-encoded to base64.
        """
        message = compose(Draft(sender="a@example.org", text="Grüße\n"))
        self.assertFalse(message_bytes(message).isascii())
        data = message_bytes(message, eight_bit=False)
        self.assertTrue(data.isascii())
        parsed = email.message_from_bytes(data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        self.assertEqual(parsed.get_content().replace("\r\n", "\n"), "Grüße\n")


class RawMessageBytesTestCase(SynchronousTestCase):
    def test_crlf_unchanged(self) -> None:
        """
        Bytes whose lines end in CRLF are returned as they are; other line
        ends become CRLF and nothing else changes.
        """
        raw = b"Bcc: x@example.org\r\nSubject:  a\r\n\r\n.b\r\nc"
        self.assertEqual(raw_message_bytes(raw), raw)
        self.assertEqual(
            raw_message_bytes(b"A: 1\nB: 2\r\rbody\n"), b"A: 1\r\nB: 2\r\n\r\nbody\r\n"
        )

    def test_header_block(self) -> None:
        """
        The header section ends at the first empty line, whatever the line
        ends; a CRLF is never read as two line ends.
        """
        self.assertEqual(
            header_block(b"A: 1\r\nB: 2\r\n\r\nx\r\n\r\n"), b"A: 1\r\nB: 2"
        )
        self.assertEqual(header_block(b"A: 1\nB: 2\n\nx"), b"A: 1\nB: 2")
        self.assertEqual(header_block(b"A: 1\r\nB: 2\r\n"), b"A: 1\r\nB: 2\r\n")
        self.assertEqual(header_block(b"\r\nbody"), b"")

    def test_needs_smtputf8_bytes(self) -> None:
        """
        For bytes, only the envelope decides: their headers are not parsed.
        """
        raw = "To: zoë@example.org\r\n\r\nx".encode()
        self.assertIsNone(needs_smtputf8(raw))
        self.assertEqual(
            needs_smtputf8(raw, Envelope("ü@example.org", ("b@example.org",))),
            "ü@example.org",
        )


class EnvelopeTestCase(SynchronousTestCase):
    def test_from_headers(self) -> None:
        """
        By default the envelope comes from From and To, Cc, Bcc.
        """
        message = compose(
            Draft(
                sender="A <a@example.org>",
                to=["B <b@example.org>"],
                cc=["c@example.org"],
            )
        )
        message["Bcc"] = "d@example.org, b@example.org"
        self.assertEqual(
            envelope_of(message),
            Envelope(
                "a@example.org", ("b@example.org", "c@example.org", "d@example.org")
            ),
        )

    def test_sender_header(self) -> None:
        """
        A Sender header is the envelope sender before From.
        """
        message = compose(Draft(sender="a@example.org", to=["b@example.org"]))
        message["Sender"] = "secretary@example.org"
        self.assertEqual(envelope_of(message).sender, "secretary@example.org")

    def test_explicit(self) -> None:
        """
        An explicit sender and recipients replace the headers' addresses.
        """
        message = compose(Draft(sender="a@example.org", to=["b@example.org"]))
        envelope = envelope_of(
            message, "bounce@example.org", ["x@example.org", "X <y@example.org>"]
        )
        self.assertEqual(
            envelope, Envelope("bounce@example.org", ("x@example.org", "y@example.org"))
        )

    def test_problems(self) -> None:
        """
        No recipient, no sender or a malformed address is L{UsageProblem}.
        """
        no_one = compose(Draft(sender="a@example.org"))
        self.assertRaises(UsageProblem, envelope_of, no_one)
        no_sender = EmailMessage()
        no_sender["To"] = "b@example.org"
        self.assertRaises(UsageProblem, envelope_of, no_sender)
        self.assertRaises(
            UsageProblem, envelope_of, no_one, None, ["b@example.org>\r\nDATA"]
        )

    def test_from_bytes(self) -> None:
        """
        For message bytes, the envelope comes from their headers the same
        way, unless given.
        """
        raw = (
            b"From: A <a@example.org>\r\nTo: b@example.org\r\n"
            b"Bcc: c@example.org\r\n\r\nbody\r\n"
        )
        self.assertEqual(
            envelope_of(raw),
            Envelope("a@example.org", ("b@example.org", "c@example.org")),
        )
        self.assertEqual(
            envelope_of(raw, "s@example.org", ["d@example.org"]),
            Envelope("s@example.org", ("d@example.org",)),
        )
        self.assertRaises(UsageProblem, envelope_of, b"Subject: x\r\n\r\n")

    def test_needs_smtputf8(self) -> None:
        """
        The first non-ASCII address of the envelope or the address headers
        is found; ASCII-only messages need no SMTPUTF8 even with non-ASCII
        display names.
        """
        plain = compose(
            Draft(sender="Jörg <a@example.org>", to=["Zoë <b@example.org>"])
        )
        self.assertIsNone(needs_smtputf8(plain, envelope_of(plain)))
        self.assertEqual(
            needs_smtputf8(plain, Envelope("a@example.org", ("ü@example.org",))),
            "ü@example.org",
        )
        header = compose(Draft(sender="a@example.org", cc=["zoë@example.org"]))
        self.assertEqual(needs_smtputf8(header), "zoë@example.org")


@implementer(IHostnameResolver)
class NoSuchHost:
    """
    A resolver for which no name exists.
    """

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Any = None,
        transportSemantics: str = "TCP",
    ) -> Any:
        resolutionReceiver.resolutionBegan(None)  # type: ignore[arg-type]
        resolutionReceiver.resolutionComplete()


class SendMessageTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.message = compose(
            Draft(sender="a@example.org", to=["b@example.org"], subject="s", text="hi")
        )

    def send(self, **options: Any) -> Any:
        options.setdefault("host", "mail.example")
        return send_message(self.reactor, self.message, **options)

    def connected(self, deferred: Any) -> tuple[Any, StringTransport]:
        """
        Complete the memory reactor's connection attempt; return the
        protocol the factory built and its transport.
        """
        self.reactor.advance(0)
        wrapper = self.reactor.tcpClients[-1][2]
        protocol = wrapper.buildProtocol(IPv4Address("TCP", "127.0.0.1", 587))
        assert protocol is not None
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.assertNoResult(deferred)
        return protocol, transport

    def test_usage_problems(self) -> None:
        """
        Bad arguments fail the Deferred with L{UsageProblem} before any
        connection is tried: an unknown TLS mode, half a login, a password
        without TLS unless allowed, a timeout not above zero.
        """
        problems: list[dict[str, Any]] = [
            {"tls": "sometimes"},
            {"username": "alice"},
            {"password": "secret"},
            {"tls": "none", "username": "alice", "password": "secret"},
            {"timeout": 0},
        ]
        for options in problems:
            failure = self.failureResultOf(self.send(**options), UsageProblem)
            self.assertNotIn("\n", str(failure.value))
        self.assertEqual(self.reactor.tcpClients, [])

    def test_plaintext_auth_allowed(self) -> None:
        """
        With C{allow_plaintext_auth=True}, C{tls="none"} with a login
        connects.
        """
        self.send(
            tls="none", username="alice", password="secret", allow_plaintext_auth=True
        )
        self.reactor.advance(0)
        self.assertEqual(len(self.reactor.tcpClients), 1)

    def test_tls_support_missing(self) -> None:
        """
        Without pyOpenSSL the send fails with L{TLSFailed} instead of going
        on without TLS as twisted.mail would.
        """
        with mock.patch.dict(sys.modules, {"OpenSSL": None}):
            failure = self.failureResultOf(self.send(), TLSFailed)
        self.assertIn("TLS support is missing", str(failure.value))
        self.assertEqual(self.reactor.tcpClients, [])

    def test_tls_options(self) -> None:
        """
        TLS settings come from C{client_tls_options} for the host, with the
        CA file and verification choice given.
        """
        calls = []
        directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, directory)
        ca = str(make_server_certificate(directory).ca)

        def options(host: str, **kwargs: Any) -> object:
            calls.append((host, kwargs))
            return client_tls_options(host, **kwargs)

        self.patch(send_module, "client_tls_options", options)
        self.send(cafile=ca)
        self.send(tls="implicit", verify=False)
        self.send(tls="none")
        self.assertEqual(
            calls,
            [
                ("mail.example", {"cafile": ca, "verify": True}),
                ("mail.example", {"cafile": None, "verify": False}),
            ],
        )

    def test_default_ports(self) -> None:
        """
        The port defaults by TLS mode: 587, 465, 25; the timeout is the
        connection attempt's timeout.
        """
        for tls in ["starttls", "implicit", "none"]:
            self.send(tls=tls, timeout=7)
        self.send(port=2525)
        self.reactor.advance(0)
        self.assertEqual(
            [(port, timeout) for _, port, _, timeout, _ in self.reactor.tcpClients],
            [(587, 7), (465, 7), (25, 7), (2525, 30)],
        )

    def test_connection_errors(self) -> None:
        """
        Refused and timed-out connections are L{ConnectionFailed} with one
        line saying which.
        """
        for reason, expected in [
            (error.ConnectionRefusedError(), "mail.example:587 refused the connection"),
            (
                error.TimeoutError(),
                "no connection to mail.example:587 within 30 seconds",
            ),
            (
                error.NoRouteError(),
                "cannot connect to mail.example:587: No route to host",
            ),
        ]:
            self.reactor.tcpClients.clear()
            deferred = self.send()
            self.reactor.advance(0)
            connector = self.reactor.connectors[-1]
            self.reactor.tcpClients[0][2].clientConnectionFailed(
                connector, Failure(reason)
            )
            self.reactor.advance(1)  # HostnameEndpoint's next-attempt delay
            failure = self.failureResultOf(deferred, ConnectionFailed)
            self.assertTrue(str(failure.value).startswith(expected), str(failure.value))

    def test_unknown_host(self) -> None:
        """
        A name that does not resolve is L{ConnectionFailed} naming it.
        """
        self.reactor.installNameResolver(NoSuchHost())
        failure = self.failureResultOf(
            self.send(host="nowhere.invalid"), ConnectionFailed
        )
        self.assertEqual(
            str(failure.value),
            "cannot find the host nowhere.invalid (DNS lookup failed)",
        )

    def test_session(self) -> None:
        """
        Once connected, the Deferred fires with the session's result after
        the connection is closed.
        """
        deferred = self.send(port=2525, local_hostname="me.example")
        protocol, transport = self.connected(deferred)
        replies = [
            b"220 mail.example",
            b"250-mail.example\r\n250 STARTTLS",
            b"220 go ahead",
            b"250 mail.example",
            b"250 OK",
            b"250 OK",
            b"354 go on",
            b"250 queued",
            b"221 bye",
        ]
        transport.startTLS = lambda options: None  # type: ignore[attr-defined]
        for reply in replies:
            protocol.dataReceived(reply + b"\r\n")
            while transport.producer is not None:
                transport.producer.resumeProducing()
        self.assertIn(b"EHLO me.example\r\n", transport.value())
        self.assertNoResult(deferred)
        protocol.connectionLost(Failure(error.ConnectionDone()))
        result = self.successResultOf(deferred)
        self.assertIsInstance(result, SendResult)
        self.assertTrue(result.all_accepted)
        self.assertEqual(result.reply, "250 queued")

    def test_implicit_tls_first_byte(self) -> None:
        """
        With implicit TLS the first bytes written are a TLS handshake, not
        waiting for an SMTP greeting.
        """
        deferred = self.send(tls="implicit")
        _, transport = self.connected(deferred)
        self.assertEqual(transport.value()[:1], b"\x16")  # TLS handshake record

    def test_cancel(self) -> None:
        """
        Cancelling while connecting or during the session stops it.
        """
        connecting = self.send()
        self.reactor.advance(0)
        connecting.cancel()
        self.failureResultOf(connecting, CancelledError)
        self.assertTrue(self.reactor.connectors[-1].stoppedConnecting)

        session = self.send()
        _, transport = self.connected(session)
        session.cancel()
        self.assertTrue(transport.disconnecting)
        self.failureResultOf(session, CancelledError)


class ImportTestCase(SynchronousTestCase):
    def test_no_global_reactor(self) -> None:
        """
        Importing the send API (and compose) does not install the global
        reactor; twisted.mail.smtp, which does, is loaded only to send.
        """
        code = (
            "import sys, twisted_netlab.mail.send, twisted_netlab.mail.compose\n"
            "assert 'twisted.internet.reactor' not in sys.modules\n"
            "assert 'twisted.mail.smtp' not in sys.modules\n"
        )
        subprocess.run([sys.executable, "-c", code], check=True)
