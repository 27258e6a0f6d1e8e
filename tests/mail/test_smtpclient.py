"""
Tests for L{twisted_netlab.mail.smtpclient}: every protocol decision of the
ESMTP client, driven line by line over a L{StringTransport}.
"""

from __future__ import annotations

import base64
import re
from email.message import EmailMessage

from OpenSSL import SSL
from service_identity.exceptions import VerificationError
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import directlyProvides

from twisted_netlab.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    ServerRefused,
    TLSFailed,
)
from twisted_netlab.mail.compose import Draft, compose
from twisted_netlab.mail.outgoing import Envelope, SendResult, message_bytes
from twisted_netlab.mail.smtpclient import MessageSenderFactory

TLS_OPTIONS = object()
PLAIN = b"AUTH PLAIN " + base64.b64encode(b"\0alice\0s3cret")


class TLSStringTransport(StringTransport):
    """
    A StringTransport on which STARTTLS pretends to succeed: it records the
    TLS options and provides ISSLTransport from then on.
    """

    tls_options: object = None

    def startTLS(self, options: object) -> None:
        self.tls_options = options
        directlyProvides(self, ISSLTransport)


def simple_message(text: str = "Hello\n", **fields: object) -> EmailMessage:
    draft = Draft(
        sender="a@example.org",
        to=["b@example.org", "c@example.org"],
        subject="s",
        text=text,
        **fields,  # type: ignore[arg-type]
    )
    return compose(draft, message_id="<1@example.org>")


class Session:
    """
    One client connection, with the test playing the server.
    """

    def __init__(
        self,
        *,
        tls: str = "starttls",
        username: str | None = None,
        password: str | None = None,
        allow_plaintext_auth: bool = False,
        message: EmailMessage | bytes | None = None,
        recipients: tuple[str, ...] = ("b@example.org", "c@example.org"),
    ) -> None:
        self.tls = tls
        self.clock = Clock()
        self.transcript: list[str] = []
        self.message = simple_message() if message is None else message
        self.factory = MessageSenderFactory(
            reactor=self.clock,
            server="mail.example:587",
            host="mail.example",
            tls=tls,
            starttls_options=TLS_OPTIONS if tls == "starttls" else None,
            username=username,
            password=password,
            allow_plaintext_auth=allow_plaintext_auth,
            timeout=30,
            local_hostname="client.example",
            message=self.message,
            envelope=Envelope("a@example.org", recipients),
            transcript=self.transcript.append,
        )
        self.protocol = self.factory.buildProtocol(None)
        self.transport = TLSStringTransport()
        if tls == "implicit":
            directlyProvides(self.transport, ISSLTransport)
        self.protocol.makeConnection(self.transport)

    def say(self, *lines: str | bytes) -> list[bytes]:
        """
        Send the server's C{lines}; return the client's lines in answer.
        """
        self.transport.clear()
        for line in lines:
            data = line.encode() if isinstance(line, str) else line
            self.protocol.dataReceived(data + b"\r\n")
        while self.transport.producer is not None:  # the message data
            self.transport.producer.resumeProducing()
        return self.transport.value().split(b"\r\n")[:-1]

    def data(self) -> bytes:
        """
        Everything the client wrote since the last L{say}.
        """
        return self.transport.value()

    def close(self, reason: Exception | None = None) -> None:
        self.protocol.connectionLost(Failure(reason or ConnectionDone()))

    def start(self, *capabilities: str, offer_starttls: bool = True) -> list[bytes]:
        """
        Greet and answer EHLO with C{capabilities} (and STARTTLS first, if
        the session requires it and C{offer_starttls}; then EHLO again);
        return the client's next lines.
        """
        assert self.say("220 mail.example ESMTP") == [b"EHLO client.example"]
        if self.tls == "starttls" and offer_starttls:
            assert self.ehlo("STARTTLS", *capabilities) == [b"STARTTLS"]
            assert self.say("220 2.0.0 go ahead") == [b"EHLO client.example"]
        return self.ehlo(*capabilities)

    def ehlo(self, *capabilities: str) -> list[bytes]:
        lines = ["250-mail.example", *(f"250-{c}" for c in capabilities)]
        lines[-1] = "250 " + lines[-1][4:]
        return self.say(*lines)

    def deliver(self, *capabilities: str) -> list[bytes]:
        """
        Run the session until the message data is sent and return the
        client's lines for the data.
        """
        assert self.start(*capabilities)[0].startswith(b"MAIL FROM:")
        for _ in self.factory.envelope.recipients:
            assert self.say("250 2.1.5 OK")[0].startswith(b"RCPT TO:")
        assert self.say("250 2.1.5 OK") == [b"DATA"]
        return self.say("354 go ahead")

    def result(self, testcase: SynchronousTestCase) -> SendResult:
        result: SendResult = testcase.successResultOf(self.factory.deferred)
        return result

    def failure(self, testcase: SynchronousTestCase, kind: type[Exception]) -> str:
        failure = testcase.failureResultOf(self.factory.deferred, kind)
        return str(failure.value)


class STARTTLSTestCase(SynchronousTestCase):
    def test_starttls_first(self) -> None:
        """
        With STARTTLS required and offered, the client starts TLS with the
        factory's options before anything else, then says EHLO again.
        """
        session = Session()
        self.assertEqual(
            session.say("220 mail.example ESMTP"), [b"EHLO client.example"]
        )
        self.assertEqual(
            session.say("250-mail.example", "250-AUTH PLAIN", "250 STARTTLS"),
            [b"STARTTLS"],
        )
        self.assertIsNone(session.transport.tls_options)
        self.assertEqual(session.say("220 2.0.0 Ready"), [b"EHLO client.example"])
        self.assertIs(session.transport.tls_options, TLS_OPTIONS)
        self.assertEqual(
            session.say("250-mail.example", "250 8BITMIME"),
            [b"MAIL FROM:<a@example.org>"],
        )

    def test_starttls_missing(self) -> None:
        """
        With STARTTLS required and not offered, the client quits without
        sending the message: L{TLSFailed}.
        """
        session = Session()
        self.assertEqual(
            session.start("AUTH PLAIN", "8BITMIME", offer_starttls=False), [b"QUIT"]
        )
        session.say("221 bye")
        self.assertTrue(session.transport.disconnecting)
        session.close()
        message = session.failure(self, TLSFailed)
        self.assertEqual(
            message,
            "mail.example:587 does not offer STARTTLS; refusing to go on without TLS",
        )

    def test_starttls_refused(self) -> None:
        """
        A refused STARTTLS command is L{TLSFailed} with the server's reply.
        """
        session = Session()
        session.say("220 mail.example ESMTP")
        session.say("250-mail.example", "250 STARTTLS")
        self.assertEqual(session.say("454 4.7.0 TLS not available"), [b"QUIT"])
        session.close()
        self.assertIn(
            "refused STARTTLS: 454 4.7.0 TLS not available",
            session.failure(self, TLSFailed),
        )

    def test_implicit_tls(self) -> None:
        """
        On an implicit TLS connection the client does not ask for STARTTLS
        even when offered, and logs in at once.
        """
        session = Session(tls="implicit", username="alice", password="s3cret")
        self.assertEqual(session.start("STARTTLS", "AUTH PLAIN"), [PLAIN])

    def test_tls_none_does_not_start_tls(self) -> None:
        """
        With C{tls="none"} (an explicit choice) the client sends the message
        without TLS, even when the server offers STARTTLS.
        """
        session = Session(tls="none")
        answer = session.start("STARTTLS")
        self.assertTrue(answer[0].startswith(b"MAIL FROM:<a@example.org>"))
        self.assertIsNone(session.transport.tls_options)

    def test_helo_fallback_only_without_tls_or_login(self) -> None:
        """
        An old server refusing EHLO gets HELO only when neither TLS nor a
        login is needed; otherwise the client gives up: L{ServerRefused}.
        """
        plain = Session(tls="none")
        plain.say("220 old.example SMTP")
        self.assertEqual(plain.say("502 what?"), [b"HELO client.example"])
        self.assertTrue(plain.say("250 hello")[0].startswith(b"MAIL FROM:"))

        secure = Session()
        secure.say("220 old.example SMTP")
        self.assertEqual(secure.say("502 what?"), [b"QUIT"])
        secure.close()
        self.assertIn("refused EHLO", secure.failure(self, ServerRefused))

    def test_certificate_not_trusted(self) -> None:
        """
        A handshake failing on the certificate ends in L{TLSFailed} saying so.
        """
        session = Session()
        session.start("STARTTLS")
        session.close(SSL.Error([("SSL routines", "", "certificate verify failed")]))
        message = session.failure(self, TLSFailed)
        self.assertIn(
            "TLS with mail.example:587 failed: certificate verify failed", message
        )
        self.assertIn("not trusted", message)

    def test_certificate_for_another_name(self) -> None:
        """
        A certificate that does not name the host is L{TLSFailed}.
        """
        session = Session()
        session.start("STARTTLS")
        session.close(VerificationError(errors=[]))
        self.assertEqual(
            session.failure(self, TLSFailed),
            "the certificate of mail.example:587 is not valid for mail.example",
        )


class AuthenticationTestCase(SynchronousTestCase):
    def test_plain(self) -> None:
        """
        AUTH PLAIN (RFC 4616, no authorization identity) is sent after TLS,
        then the mail transaction starts.
        """
        session = Session(username="alice", password="s3cret")
        self.assertEqual(session.start("AUTH PLAIN LOGIN"), [PLAIN])
        answer = session.say("235 2.7.0 Authentication successful")
        self.assertTrue(answer[0].startswith(b"MAIL FROM:<a@example.org>"))

    def test_login(self) -> None:
        """
        With only AUTH LOGIN offered, user name and password answer the two
        challenges, base64-encoded.
        """
        session = Session(username="alice", password="s3cret")
        self.assertEqual(session.start("AUTH LOGIN"), [b"AUTH LOGIN"])
        self.assertEqual(session.say("334 VXNlcm5hbWU6"), [base64.b64encode(b"alice")])
        self.assertEqual(session.say("334 UGFzc3dvcmQ6"), [base64.b64encode(b"s3cret")])
        self.assertTrue(session.say("235 ok")[0].startswith(b"MAIL FROM:"))

    def test_rejected(self) -> None:
        """
        A rejected login is tried once, then the client quits:
        L{AuthenticationFailed} with the server's reply.
        """
        session = Session(username="alice", password="s3cret")
        session.start("AUTH PLAIN")
        self.assertEqual(
            session.say("535 5.7.8 Authentication credentials invalid"), [b"QUIT"]
        )
        session.close()
        self.assertEqual(
            session.failure(self, AuthenticationFailed),
            "mail.example:587 rejected the login of alice: "
            "535 5.7.8 Authentication credentials invalid",
        )

    def test_no_common_mechanism(self) -> None:
        """
        A server offering no login method the client has (or none at all) is
        L{AuthenticationFailed} naming what it offers.
        """
        for offered, expected in [
            (("AUTH CRAM-MD5 XOAUTH2",), "CRAM-MD5 XOAUTH2"),
            ((), "none"),
        ]:
            session = Session(username="alice", password="s3cret")
            self.assertEqual(session.start(*offered, "8BITMIME"), [b"QUIT"])
            session.close()
            message = session.failure(self, AuthenticationFailed)
            self.assertTrue(message.endswith(f"it offers: {expected}"), message)

    def test_no_password_in_plaintext(self) -> None:
        """
        Without TLS the password is not sent, even when the server offers
        AUTH, unless plaintext authentication was allowed explicitly.
        """
        session = Session(tls="none", username="alice", password="s3cret")
        self.assertEqual(session.start("AUTH PLAIN LOGIN"), [b"QUIT"])
        session.close()
        self.assertEqual(
            session.failure(self, AuthenticationFailed),
            "refusing to send the password without TLS",
        )
        allowed = Session(
            tls="none", username="alice", password="s3cret", allow_plaintext_auth=True
        )
        self.assertEqual(allowed.start("AUTH PLAIN LOGIN"), [PLAIN])


class TransactionTestCase(SynchronousTestCase):
    def test_delivered(self) -> None:
        """
        Every recipient accepted and the data accepted: all accepted, with
        the final reply; the result comes once the connection is closed after
        QUIT.
        """
        session = Session()
        answer = session.start("8BITMIME")
        self.assertEqual(answer, [b"MAIL FROM:<a@example.org>"])
        self.assertEqual(session.say("250 OK"), [b"RCPT TO:<b@example.org>"])
        self.assertEqual(session.say("250 2.1.5 OK b"), [b"RCPT TO:<c@example.org>"])
        self.assertEqual(session.say("250 2.1.5 OK c"), [b"DATA"])
        session.say("354 go ahead")
        assert isinstance(session.message, EmailMessage)
        self.assertEqual(session.data(), message_bytes(session.message) + b".\r\n")
        self.assertEqual(session.say("250 2.0.0 queued as 1234"), [b"QUIT"])
        self.assertNoResult(session.factory.deferred)
        session.say("221 bye")
        session.close()
        result = session.result(self)
        self.assertTrue(result.all_accepted)
        self.assertEqual(result.reply, "250 2.0.0 queued as 1234")
        self.assertEqual(
            [(r.address, r.accepted, r.code, r.text) for r in result.recipients],
            [
                ("b@example.org", True, 250, "2.1.5 OK b"),
                ("c@example.org", True, 250, "2.1.5 OK c"),
            ],
        )

    def test_some_refused(self) -> None:
        """
        A refused recipient is reported with the server's code and text; the
        others still get the message: some refused, not all.
        """
        session = Session(
            recipients=("b@example.org", "nobody@example.org", "c@example.org")
        )
        session.start()
        session.say("250 OK")
        self.assertEqual(session.say("250 OK"), [b"RCPT TO:<nobody@example.org>"])
        self.assertEqual(
            session.say("550 5.1.1 <nobody@example.org>: no such user"),
            [b"RCPT TO:<c@example.org>"],
        )
        self.assertEqual(session.say("250 OK"), [b"DATA"])
        session.say("354 go ahead")
        session.say("250 queued")
        session.close()
        result = session.result(self)
        self.assertFalse(result.all_accepted)
        self.assertFalse(result.all_refused)
        [refused] = result.refused
        self.assertEqual(
            (refused.address, refused.code, refused.text, refused.temporary),
            (
                "nobody@example.org",
                550,
                "5.1.1 <nobody@example.org>: no such user",
                False,
            ),
        )
        self.assertEqual(len(result.accepted), 2)

    def test_all_refused(self) -> None:
        """
        When every recipient is refused no data is sent: all refused, with
        each recipient's own reply.
        """
        session = Session()
        session.start()
        session.say("250 OK")
        session.say("450 4.2.1 try later")
        self.assertEqual(session.say("550 5.1.1 unknown"), [b"QUIT"])
        session.close()
        result = session.result(self)
        self.assertTrue(result.all_refused)
        self.assertEqual(result.reply, "")
        self.assertEqual(
            [(r.code, r.temporary) for r in result.recipients],
            [(450, True), (550, False)],
        )

    def test_message_refused_after_data(self) -> None:
        """
        A 552 after the data refuses the message for every recipient that had
        been accepted, with that code and text.
        """
        session = Session()
        session.deliver()
        self.assertEqual(
            session.say("552 5.3.4 Message size exceeds fixed limit"), [b"QUIT"]
        )
        session.close()
        result = session.result(self)
        self.assertTrue(result.all_refused)
        self.assertEqual(
            {(r.code, r.text) for r in result.recipients},
            {(552, "5.3.4 Message size exceeds fixed limit")},
        )

    def test_data_command_refused(self) -> None:
        """
        A refused DATA command refuses the message for every recipient.
        """
        session = Session()
        session.start()
        session.say("250 OK")
        session.say("250 OK")
        self.assertEqual(session.say("250 OK"), [b"DATA"])
        self.assertEqual(session.say("554 5.5.1 no valid recipients"), [b"QUIT"])
        session.close()
        self.assertEqual({r.code for r in session.result(self).recipients}, {554})

    def test_sender_refused(self) -> None:
        """
        A refused MAIL FROM is L{ServerRefused} naming the sender.
        """
        session = Session()
        session.start()
        self.assertEqual(session.say("553 5.7.1 Sender address rejected"), [b"QUIT"])
        session.close()
        self.assertEqual(
            session.failure(self, ServerRefused),
            "mail.example:587 refused the sender <a@example.org>: "
            "553 5.7.1 Sender address rejected",
        )

    def test_dot_stuffing_at_chunk_boundary(self) -> None:
        """
        Lines starting with a dot are stuffed wherever they are, even where
        the data is cut into chunks (Twisted stuffs each chunk alone and
        would miss one starting a chunk); the server unstuffs them back to
        the message exactly.
        """
        for pad in range(80):
            text = "x" * pad + "\n" + ".\n.hidden\n" * 2000
            message = simple_message(text)
            data = message_bytes(message)
            stuffed = re.sub(rb"(?m)^\.", b"..", data)
            if stuffed[16384 - 2 : 16384 + 1] == b"\r\n.":
                break
        else:
            self.fail("no padding puts a dot at the chunk boundary")
        session = Session(message=message)
        session.deliver()
        wire = session.data()
        self.assertTrue(wire.endswith(b"\r\n.\r\n"))
        body = wire[: -len(b".\r\n")]
        self.assertNotIn(b"\r\n.\r\n", body)
        self.assertEqual(re.sub(rb"(?m)^\.\.", b".", body), data)

    def test_bare_line_feeds_become_crlf(self) -> None:
        """
        Whatever line ends the message has, it is sent with CRLF only.
        """
        message = EmailMessage()
        message["From"] = "a@example.org"
        message.set_payload("one\ntwo\rthree\r\n")
        session = Session(message=message)
        session.deliver()
        self.assertIn(b"\r\n\r\none\r\ntwo\r\nthree\r\n.\r\n", session.data())
        self.assertNotIn(b"\n", session.data().replace(b"\r\n", b""))


class EncodingTestCase(SynchronousTestCase):
    def test_smtputf8(self) -> None:
        """
        A non-ASCII address is sent, as UTF-8, with SMTPUTF8 when the server
        offers it; the header is written as UTF-8 too.
        """
        message = compose(
            Draft(sender="a@example.org", to=["Jörg <jörg@example.org>"], text="x")
        )
        session = Session(message=message, recipients=("jörg@example.org",))
        answer = session.start("8BITMIME", "SMTPUTF8")
        self.assertEqual(
            answer[0].split()[:3], [b"MAIL", b"FROM:<a@example.org>", b"SMTPUTF8"]
        )
        self.assertEqual(session.say("250 OK"), ["RCPT TO:<jörg@example.org>".encode()])
        session.say("250 OK")
        session.say("354 go ahead")
        self.assertIn("To: Jörg <jörg@example.org>\r\n".encode(), session.data())

    def test_smtputf8_missing(self) -> None:
        """
        A non-ASCII address the server cannot take (no SMTPUTF8) stops the
        send before MAIL FROM: L{ServerRefused} naming the address.
        """
        message = compose(
            Draft(sender="a@example.org", to=["jörg@example.org"], text="x")
        )
        session = Session(message=message, recipients=("jörg@example.org",))
        self.assertEqual(session.start("8BITMIME"), [b"QUIT"])
        session.close()
        self.assertEqual(
            session.failure(self, ServerRefused),
            "mail.example:587 does not support SMTPUTF8, which the non-ASCII "
            "address jörg@example.org needs",
        )

    def test_eight_bit_mime(self) -> None:
        """
        8-bit text goes as it is, with BODY=8BITMIME, when the server offers
        8BITMIME.
        """
        session = Session(message=simple_message("Grüße\n"))
        self.assertIn(b" BODY=8BITMIME", session.start("8BITMIME")[0])
        for _ in range(3):
            session.say("250 OK")
        session.say("354 go ahead")
        self.assertIn("Grüße\r\n".encode(), session.data())

    def test_seven_bit_fallback(self) -> None:
        """
        Without 8BITMIME, 8-bit text is re-encoded: the data is ASCII, no
        BODY parameter, and it decodes to the same text.
        """
        session = Session(message=simple_message("Grüße\n"))
        self.assertEqual(session.start(), [b"MAIL FROM:<a@example.org>"])
        for _ in range(3):
            session.say("250 OK")
        session.say("354 go ahead")
        data = session.data()
        self.assertTrue(data.isascii())
        self.assertIn(b"Content-Transfer-Encoding: base64", data)
        self.assertIn(base64.b64encode("Grüße\n".encode()), data)

    def test_size(self) -> None:
        """
        The size is declared when the server announces a limit, and a
        message over the limit is not sent: L{ServerRefused}.
        """
        session = Session()
        assert isinstance(session.message, EmailMessage)
        size = len(message_bytes(session.message))
        self.assertEqual(
            session.start(f"SIZE {size}"), [b"MAIL FROM:<a@example.org> SIZE=%d" % size]
        )
        over = Session()
        self.assertEqual(over.start(f"SIZE {size - 1}"), [b"QUIT"])
        over.close()
        self.assertEqual(
            over.failure(self, ServerRefused),
            f"the message is {size} bytes; mail.example:587 accepts at most {size - 1}",
        )


class StoredBytesTestCase(SynchronousTestCase):
    """
    Stored message bytes (the mail lab's release and forwarding) are sent
    unchanged: never re-serialized, re-encoded or stripped of Bcc.
    """

    RAW = (
        b"Received: from x by y; Mon, 1 Dec 2026 10:00:00 +0000\r\n"
        b"From: a@example.org\r\nBcc: hidden@example.org\r\n"
        b"Subject:   odd   spacing\r\n\r\n.dot\r\nline\r\n"
    )

    def test_unchanged(self) -> None:
        """
        What the server gets, once unstuffed, is exactly the stored bytes:
        odd spacing, the Bcc header and a line starting with a dot included.
        """
        session = Session(message=self.RAW)
        session.deliver("8BITMIME")
        wire = session.data()
        self.assertTrue(wire.endswith(b"\r\n.\r\n"))
        self.assertIn(b"\r\n..dot\r\n", wire)
        self.assertEqual(re.sub(rb"(?m)^\.\.", b".", wire[:-3]), self.RAW)

    def test_bare_line_feeds(self) -> None:
        """
        Only line ends change: a bare LF becomes CRLF, as SMTP requires.
        """
        session = Session(message=self.RAW.replace(b"\r\n", b"\n"))
        session.deliver()
        self.assertEqual(session.data()[:-3], self.RAW.replace(b"\n.", b"\n.."))

    def test_eight_bit_needs_8bitmime(self) -> None:
        """
        8-bit stored bytes go with BODY=8BITMIME; without 8BITMIME they are
        not re-encoded but refused before MAIL FROM: L{ServerRefused}.
        """
        raw = "From: a@example.org\r\n\r\nGrüße\r\n".encode()
        session = Session(message=raw)
        self.assertEqual(
            session.start("8BITMIME"),
            [b"MAIL FROM:<a@example.org> BODY=8BITMIME"],
        )
        refused = Session(message=raw)
        self.assertEqual(refused.start(), [b"QUIT"])
        refused.close()
        self.assertEqual(
            refused.failure(self, ServerRefused),
            "the message has 8-bit content and mail.example:587 does not support "
            "8BITMIME (stored bytes are sent unchanged)",
        )

    def test_eight_bit_headers_get_smtputf8(self) -> None:
        """
        8-bit headers get SMTPUTF8 where the server offers it, and go with
        8BITMIME alone where it does not; 8-bit in the body alone never
        asks for SMTPUTF8.
        """
        raw = "From: a@example.org\r\nSubject: Grüße\r\n\r\nx\r\n".encode()
        offered = Session(message=raw)
        self.assertEqual(
            offered.start("8BITMIME", "SMTPUTF8")[0].split()[2:],
            [b"SMTPUTF8", b"BODY=8BITMIME"],
        )
        plain = Session(message=raw)
        self.assertEqual(
            plain.start("8BITMIME")[0], b"MAIL FROM:<a@example.org> BODY=8BITMIME"
        )
        body_only = Session(message="From: a@example.org\r\n\r\nü\r\n".encode())
        self.assertEqual(
            body_only.start("8BITMIME", "SMTPUTF8")[0],
            b"MAIL FROM:<a@example.org> BODY=8BITMIME",
        )

    def test_size(self) -> None:
        """
        The declared size is the size of the stored bytes.
        """
        session = Session(message=self.RAW)
        self.assertEqual(
            session.start("SIZE 1000")[0],
            b"MAIL FROM:<a@example.org> SIZE=%d" % len(self.RAW),
        )


class FailureTestCase(SynchronousTestCase):
    def test_timeout_before_greeting(self) -> None:
        """
        No greeting within the timeout: the connection is aborted,
        L{ConnectionFailed} with a hint about implicit TLS.
        """
        session = Session()
        session.clock.advance(29)
        self.assertFalse(session.transport.disconnecting)
        session.clock.advance(1)
        self.assertTrue(session.transport.disconnecting)
        session.close(ConnectionLost())
        self.assertEqual(
            session.failure(self, ConnectionFailed),
            "no answer from mail.example:587 within 30 seconds "
            "(if it expects TLS from the first byte, use implicit TLS)",
        )

    def test_timeout_each_step(self) -> None:
        """
        The timeout restarts with every reply and fires when one is missing
        mid-session (no hint then).
        """
        session = Session()
        session.clock.advance(20)
        session.say("220 mail.example ESMTP")
        session.clock.advance(20)
        self.assertFalse(session.transport.disconnecting)
        session.say("250-mail.example", "250 STARTTLS")
        session.clock.advance(30)
        self.assertTrue(session.transport.disconnecting)
        session.close(ConnectionLost())
        self.assertEqual(
            session.failure(self, ConnectionFailed),
            "no answer from mail.example:587 within 30 seconds",
        )

    def test_not_smtp(self) -> None:
        """
        A peer that does not speak SMTP is L{ConnectionFailed}.
        """
        session = Session()
        session.say("SSH-2.0-OpenSSH_9.2")
        self.assertTrue(session.transport.disconnecting)
        session.close()
        self.assertIn("does not speak SMTP", session.failure(self, ConnectionFailed))

    def test_greeting_refused(self) -> None:
        """
        A 554 greeting is L{ConnectionFailed} with the server's text.
        """
        session = Session()
        session.say("554 5.7.1 go away")
        session.close()
        self.assertEqual(
            session.failure(self, ConnectionFailed),
            "mail.example:587 refused the session: 554 5.7.1 go away",
        )

    def test_connection_dropped(self) -> None:
        """
        A connection closed mid-session is L{ConnectionFailed}.
        """
        session = Session()
        session.say("220 mail.example ESMTP")
        session.close(ConnectionLost("Connection reset by peer"))
        self.assertIn(
            "mail.example:587 closed the connection unexpectedly",
            session.failure(self, ConnectionFailed),
        )

    def test_dropped_after_acceptance(self) -> None:
        """
        Once the server has accepted the message, a connection dropped
        before QUIT is answered does not lose the result.
        """
        session = Session()
        session.deliver()
        session.say("250 queued")
        session.close(ConnectionLost())
        self.assertTrue(session.result(self).all_accepted)

    def test_cancel(self) -> None:
        """
        Cancelling the Deferred aborts the connection.
        """
        session = Session()
        session.say("220 mail.example ESMTP")
        session.factory.deferred.cancel()
        self.assertTrue(session.transport.disconnecting)
        session.close(ConnectionLost())
        self.failureResultOf(session.factory.deferred)


class TranscriptTestCase(SynchronousTestCase):
    def test_plain_masked(self) -> None:
        """
        The transcript shows the conversation but not the AUTH PLAIN
        credentials.
        """
        session = Session(username="alice", password="s3cret")
        session.start("AUTH PLAIN")
        session.say("235 ok")
        self.assertIn("C: AUTH PLAIN ********", session.transcript)
        self.assertIn("C: MAIL FROM:<a@example.org>", session.transcript)
        self.assertIn("S: 235 ok", session.transcript)
        self.assertIn("-- starting TLS", session.transcript)
        joined = "\n".join(session.transcript)
        self.assertNotIn(PLAIN.split()[-1].decode(), joined)
        self.assertNotIn("s3cret", joined)

    def test_login_masked(self) -> None:
        """
        Both AUTH LOGIN answers (user name and password) are masked; lines
        after a successful login are shown again.
        """
        session = Session(username="alice", password="s3cret")
        session.start("AUTH LOGIN")
        session.say("334 VXNlcm5hbWU6")
        session.say("334 UGFzc3dvcmQ6")
        session.say("235 ok")
        index = session.transcript.index("C: AUTH LOGIN")
        self.assertEqual(
            session.transcript[index:],
            [
                "C: AUTH LOGIN",
                "S: 334 VXNlcm5hbWU6",
                "C: ********",
                "S: 334 UGFzc3dvcmQ6",
                "C: ********",
                "S: 235 ok",
                "C: MAIL FROM:<a@example.org>",
            ],
        )

    def test_no_credentials_kept(self) -> None:
        """
        Twisted's line log (which would hold the AUTH lines) stays empty.
        """
        session = Session(username="alice", password="s3cret")
        session.start("AUTH PLAIN")
        self.assertEqual(session.protocol.log.str(), b"")
