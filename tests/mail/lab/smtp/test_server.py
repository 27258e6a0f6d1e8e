"""
Tests for L{twisted_netlab.mail.lab.smtp.server}: the lab's SMTP rules, one
conversation at a time over an in-memory transport.
"""

from __future__ import annotations

import atexit
import base64
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import ISSLTransport, ITLSTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import alsoProvides, implementer

from tests.scratch import fresh_path
from twisted_netlab.mail.lab.smtp.server import MAX_RECIPIENTS, LabSMTPFactory
from twisted_netlab.mail.lab.store.maildir import Envelope
from twisted_netlab.mail.lab.users import UsersFile

# One users file for every test: hashing passwords is deliberately slow.
_USERS: UsersFile | None = None
TLS = object()  # stands for server TLS options; the fake transport keeps it


def shared_users() -> UsersFile:
    """
    One users file for all the tests of this module (removed at exit).
    """
    global _USERS
    if _USERS is None:
        directory = tempfile.mkdtemp(prefix="netlab-test-users-")
        atexit.register(shutil.rmtree, directory, True)
        _USERS = UsersFile(Path(directory) / "users")
        _USERS.add("alice@example.test", "alice-pw")
        _USERS.add("bob@example.test", "bob-pw")
        _USERS.add("carol@other.test", "carol-pw")
    return _USERS


@implementer(ITLSTransport)
class TLSCapableTransport(StringTransport):  # type: ignore[misc]
    """
    A string transport that can "start TLS": it records the options and
    from then on provides L{ISSLTransport}.
    """

    tls_options: object = None

    def startTLS(self, contextFactory: object, normal: bool = True) -> None:
        self.tls_options = contextFactory
        alsoProvides(self, ISSLTransport)


def b64(text: bytes) -> bytes:
    return base64.b64encode(text)


class Deliveries:
    """
    A C{deliver} callable that records what it stores (one copy per mailbox
    address, its Received: header first), the envelopes, and what the client
    had been told when it was called.
    """

    def __init__(self) -> None:
        self.stored: list[tuple[str, bytes]] = []
        self.envelopes: list[Envelope] = []
        self.calls = 0
        self.replies_at_delivery: list[bytes] = []
        self.transport: StringTransport | None = None
        self.result: Any = None
        self.error: Exception | None = None

    def __call__(
        self, message: bytes, copies: Mapping[str, bytes], envelope: Envelope
    ) -> Any:
        if self.transport is not None:
            self.replies_at_delivery.append(self.transport.value())
        if self.error is not None:
            raise self.error
        self.calls += 1
        self.envelopes.append(envelope)
        uids = {}
        for address, header in copies.items():
            self.stored.append((address, header + message))
            uids[address] = len(self.stored)
        return uids if self.result is None else self.result


class Session:
    """
    One client connection to a L{LabSMTPFactory}.
    """

    def __init__(
        self,
        factory: LabSMTPFactory,
        peer: Any = None,
        tls_capable: bool = True,
    ) -> None:
        if peer is None:
            peer = IPv4Address("TCP", "127.0.0.1", 40000)
        transport_class = TLSCapableTransport if tls_capable else StringTransport
        self.transport: Any = transport_class(
            hostAddress=IPv4Address("TCP", "127.0.0.1", 2525), peerAddress=peer
        )
        self.protocol = factory.buildProtocol(peer)
        self.protocol.makeConnection(self.transport)
        self.greeting = self.take()

    def take(self) -> bytes:
        value = self.transport.value()
        self.transport.clear()
        return value

    def send(self, *lines: bytes) -> bytes:
        """
        Send lines (CRLF added) in one write; return everything replied.
        """
        self.protocol.dataReceived(b"".join(line + b"\r\n" for line in lines))
        return self.take()

    def code(self, *lines: bytes) -> int:
        """
        Send lines; return the code of the last reply line.
        """
        replies = self.send(*lines).splitlines()
        return int(replies[-1][:3])

    def starttls(self) -> None:
        assert self.code(b"EHLO client.test") == 250
        assert self.code(b"STARTTLS") == 220
        assert self.code(b"EHLO client.test") == 250

    def login(
        self, user: bytes = b"alice@example.test", pw: bytes = b"alice-pw"
    ) -> int:
        return self.code(b"AUTH PLAIN " + b64(b"\0" + user + b"\0" + pw))

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)


MESSAGE = [
    b"From: sender@remote.test",
    b"To: alice@example.test",
    b"Subject: hello",
    b"",
    b"Hello Alice.",
    b"..a line that began with a dot",
    b"",
]
STORED_BODY = (
    b"From: sender@remote.test\r\nTo: alice@example.test\r\nSubject: hello\r\n"
    b"\r\nHello Alice.\r\n.a line that began with a dot\r\n\r\n"
)


def split_received(data: bytes) -> tuple[bytes, bytes]:
    """
    Split a stored message into the lab's Received: header (without its
    final CRLF) and what follows it.
    """
    end = data.index(b"\r\n", data.index(b"\r\n\tfor <") + 2)
    return data[:end], data[end + 2 :]


class SMTPTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.users = shared_users()
        self.deliveries = Deliveries()

    def factory(self, **kwargs: Any) -> LabSMTPFactory:
        settings: dict[str, Any] = {
            "users": self.users,
            "domains": ["example.test", "Other.TEST"],
            "deliver": self.deliveries,
            "tls": TLS,
            "hostname": "mail.example.test",
            "reactor": Clock(),
        }
        settings.update(kwargs)
        return LabSMTPFactory(**settings)

    def session(self, **kwargs: Any) -> Session:
        peer = kwargs.pop("peer", None)
        tls_capable = kwargs.pop("tls_capable", True)
        s = Session(self.factory(**kwargs), peer, tls_capable)
        self.deliveries.transport = s.transport
        return s

    def send_message(
        self,
        s: Session,
        to: bytes = b"alice@example.test",
        lines: list[bytes] = MESSAGE,
    ) -> bytes:
        assert s.code(b"MAIL FROM:<sender@remote.test>") == 250
        assert s.code(b"RCPT TO:<" + to + b">") == 250
        assert s.code(b"DATA") == 354
        return s.send(*lines, b".")


class GreetingAndExtensionTests(SMTPTestCase):
    def test_greeting(self) -> None:
        """
        The server greets with 220 and its host name.
        """
        self.assertEqual(
            self.session().greeting, b"220 mail.example.test ESMTP netlab mail lab\r\n"
        )

    def test_extensions_before_tls(self) -> None:
        """
        Before TLS, EHLO offers SIZE (with the limit), 8BITMIME and STARTTLS,
        and no AUTH.
        """
        reply = self.session(max_message_size=12345).send(b"EHLO client.test")
        lines = reply.splitlines()
        self.assertTrue(lines[0].startswith(b"250-mail.example.test Hello"))
        self.assertIn(b"250-SIZE 12345", lines)
        self.assertIn(b"STARTTLS", [line[4:] for line in lines])
        self.assertIn(b"8BITMIME", [line[4:] for line in lines])
        self.assertNotIn(b"AUTH", reply)

    def test_extensions_after_tls(self) -> None:
        """
        After STARTTLS (with the lab's TLS options), EHLO offers AUTH PLAIN
        and LOGIN and no more STARTTLS.
        """
        s = self.session()
        s.send(b"EHLO client.test")
        self.assertEqual(
            s.send(b"STARTTLS"), b"220 2.0.0 Begin TLS negotiation now\r\n"
        )
        self.assertIs(s.transport.tls_options, TLS)
        reply = s.send(b"EHLO client.test")
        self.assertIn(b"AUTH PLAIN LOGIN", reply)
        self.assertNotIn(b"STARTTLS", reply)
        self.assertEqual(s.code(b"STARTTLS"), 503)

    def test_no_starttls_without_certificate(self) -> None:
        """
        Without TLS options there is no STARTTLS (454 if asked) and no AUTH.
        """
        s = self.session(tls=None)
        reply = s.send(b"EHLO client.test")
        self.assertNotIn(b"STARTTLS", reply)
        self.assertNotIn(b"AUTH", reply)
        self.assertEqual(s.code(b"STARTTLS"), 454)

    def test_implicit_tls(self) -> None:
        """
        Behind implicit TLS (C{--smtps}) AUTH is offered at once, and
        STARTTLS is not.
        """
        s = self.session(implicit_tls=True)
        reply = s.send(b"EHLO client.test")
        self.assertIn(b"AUTH PLAIN LOGIN", reply)
        self.assertNotIn(b"STARTTLS", reply)
        self.assertEqual(s.login(), 235)


class RecipientTests(SMTPTestCase):
    def test_relay_refused(self) -> None:
        """
        Mail for a domain that is not local is refused with 550, even after
        AUTH: the lab never relays.
        """
        s = self.session()
        s.starttls()
        self.assertEqual(s.login(), 235)
        s.send(b"MAIL FROM:<alice@example.test>")
        reply = s.send(b"RCPT TO:<someone@elsewhere.test>")
        self.assertTrue(reply.startswith(b"550 "), reply)
        self.assertIn(b"Relaying denied", reply)
        self.assertEqual(s.code(b"DATA"), 503)
        self.assertEqual(self.deliveries.stored, [])

    def test_unknown_user(self) -> None:
        """
        Mail for an unknown user of a local domain is refused with 550.
        """
        s = self.session()
        s.send(b"EHLO client.test", b"MAIL FROM:<x@remote.test>")
        reply = s.send(b"RCPT TO:<nobody@example.test>")
        self.assertEqual(reply, b"550 5.1.1 No such user here\r\n")
        # A user of another local domain is not a user of this one.
        self.assertEqual(s.code(b"RCPT TO:<carol@example.test>"), 550)
        self.assertEqual(s.code(b"RCPT TO:<carol@other.test>"), 250)

    def test_address_without_domain(self) -> None:
        """
        An address without a domain is not a local user.
        """
        s = self.session()
        s.send(b"EHLO client.test", b"MAIL FROM:<x@remote.test>")
        self.assertEqual(s.code(b"RCPT TO:<alice>"), 550)

    def test_recipient_case(self) -> None:
        """
        Addresses are matched without regard to case, and stored under the
        lowercased address.
        """
        s = self.session()
        s.send(b"EHLO client.test")
        self.assertTrue(self.send_message(s, b"Alice@EXAMPLE.test").startswith(b"250"))
        self.assertEqual(self.deliveries.stored[0][0], "alice@example.test")

    def test_new_user_seen(self) -> None:
        """
        A user added to the users file while the server runs receives mail.
        """
        users = UsersFile(fresh_path(self) / "users")
        s = self.session(users=users)
        s.send(b"EHLO client.test", b"MAIL FROM:<x@remote.test>")
        self.assertEqual(s.code(b"RCPT TO:<dave@example.test>"), 550)
        UsersFile(users.path).add("dave@example.test", "pw")
        self.assertEqual(s.code(b"RCPT TO:<dave@example.test>"), 250)

    def test_too_many_recipients(self) -> None:
        """
        Past MAX_RECIPIENTS recipients, more get 452.
        """
        s = self.session()
        s.send(b"EHLO client.test", b"MAIL FROM:<x@remote.test>")
        replies = s.send(*[b"RCPT TO:<alice@example.test>"] * MAX_RECIPIENTS)
        self.assertEqual(replies.count(b"250 "), MAX_RECIPIENTS)
        self.assertEqual(s.code(b"RCPT TO:<bob@example.test>"), 452)


class DeliveryTests(SMTPTestCase):
    def test_stored_bytes(self) -> None:
        """
        The stored message is the lab's Received: header followed by the
        message exactly as sent, dot-unstuffed, with CRLF line ends.
        """
        s = self.session()
        s.send(b"EHLO client.test")
        reply = self.send_message(s)
        self.assertEqual(reply, b"250 2.0.0 Message stored as UID 1\r\n")
        [(address, data)] = self.deliveries.stored
        self.assertEqual(address, "alice@example.test")
        header, body = split_received(data)
        self.assertRegex(
            header,
            rb"^Received: from client.test \(\[127.0.0.1\]\)\r\n"
            rb"\tby mail.example.test \(netlab mail lab\) with ESMTP\r\n"
            rb"\tfor <alice@example.test>; [A-Z][a-z][a-z], \d\d? [A-Z][a-z][a-z] "
            rb"\d{4} \d\d:\d\d:\d\d [-+]0000$",
        )
        self.assertEqual(body, STORED_BODY)

    def test_received_header_names_tls_and_auth(self) -> None:
        """
        The Received: header says ESMTPSA for mail sent over TLS after AUTH
        (RFC 3848), and stays one header at the top.
        """
        s = self.session()
        s.starttls()
        s.login()
        self.send_message(s)
        data = self.deliveries.stored[0][1]
        self.assertIn(b" with ESMTPSA\r\n\tfor", data.split(b"\r\n\r\n")[0])
        self.assertEqual(data.count(b"Received:"), 1)

    def test_headerless_message(self) -> None:
        """
        A message that starts with a body line is stored with an empty header
        section, so its first line does not become part of Received:.
        """
        s = self.session()
        s.send(b"EHLO client.test")
        self.send_message(s, lines=[b"just a body line"])
        _, body = split_received(self.deliveries.stored[0][1])
        self.assertEqual(body, b"\r\njust a body line\r\n")

    def test_on_disk_before_250(self) -> None:
        """
        The message is stored before the 250 reply to DATA is sent: when
        C{deliver} runs, the client has been told nothing about the message.
        """
        s = self.session()
        s.send(b"EHLO client.test", b"MAIL FROM:<x@remote.test>")
        s.send(b"RCPT TO:<alice@example.test>", b"DATA")
        s.send(*MESSAGE)
        s.protocol.dataReceived(b".\r\n")
        self.assertEqual(self.deliveries.replies_at_delivery, [b""])
        self.assertEqual(s.take(), b"250 2.0.0 Message stored as UID 1\r\n")

    def test_250_waits_for_deferred_delivery(self) -> None:
        """
        A C{deliver} that returns a Deferred gets its 250 only when that
        Deferred fires.
        """
        pending: Deferred[dict[str, int]] = Deferred()
        self.deliveries.result = pending
        s = self.session()
        s.send(b"EHLO client.test")
        self.assertEqual(self.send_message(s), b"")
        pending.callback({"alice@example.test": 7})
        self.assertEqual(s.take(), b"250 2.0.0 Message stored as UID 7\r\n")

    def test_delivery_failure(self) -> None:
        """
        When storing fails (a full disk), the client gets 451 (try again
        later), the failure is logged, and the session goes on.
        """
        self.deliveries.error = OSError(28, "No space left on device")
        s = self.session()
        s.send(b"EHLO client.test")
        reply = self.send_message(s)
        self.assertTrue(reply.startswith(b"451 "), reply)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.deliveries.error = None
        self.assertTrue(self.send_message(s).startswith(b"250 "))

    def test_several_recipients(self) -> None:
        """
        A message for several users is stored once for each, with its own
        Received: header, before one 250.
        """
        s = self.session()
        s.send(b"EHLO client.test", b"MAIL FROM:<x@remote.test>")
        s.send(b"RCPT TO:<alice@example.test>", b"RCPT TO:<carol@other.test>")
        s.send(b"DATA")
        reply = s.send(*MESSAGE, b".")
        self.assertEqual(reply, b"250 2.0.0 Message stored as UID 1 2\r\n")
        self.assertEqual(
            [a for a, _ in self.deliveries.stored],
            ["alice@example.test", "carol@other.test"],
        )
        for address, data in self.deliveries.stored:
            header, body = split_received(data)
            self.assertIn(b"\tfor <" + address.encode() + b">; ", header)
            self.assertEqual(body, STORED_BODY)

    def test_two_messages_in_one_session(self) -> None:
        """
        After one message the session can send another.
        """
        s = self.session()
        s.send(b"EHLO client.test")
        self.send_message(s)
        self.send_message(s, lines=[b"Subject: second", b"", b"2"])
        self.assertEqual(len(self.deliveries.stored), 2)
        _, body = split_received(self.deliveries.stored[1][1])
        self.assertEqual(body, b"Subject: second\r\n\r\n2\r\n")


class SizeTests(SMTPTestCase):
    def test_declared_size_too_big(self) -> None:
        """
        MAIL FROM with SIZE above the limit gets 552 at once.
        """
        s = self.session(max_message_size=1000)
        s.send(b"EHLO client.test")
        reply = s.send(b"MAIL FROM:<x@remote.test> SIZE=1001")
        self.assertEqual(
            reply, b"552 5.3.4 Message too big: the limit is 1000 bytes\r\n"
        )
        self.assertEqual(s.code(b"MAIL FROM:<x@remote.test> SIZE=1000"), 250)

    def test_oversize_data_refused(self) -> None:
        """
        A message that grows past the limit while it arrives gets 552 after
        the final dot and nothing is stored; the session goes on.
        """
        s = self.session(max_message_size=1000)
        s.send(b"EHLO client.test")
        reply = self.send_message(s, lines=[b"Subject: big", b""] + [b"x" * 98] * 20)
        self.assertTrue(reply.startswith(b"552 5.3.4 Message too big"), reply)
        self.assertEqual(self.deliveries.stored, [])
        self.assertTrue(self.send_message(s).startswith(b"250"))

    def test_oversize_data_not_buffered(self) -> None:
        """
        Once past the limit, the rest of the message is not kept in memory.
        """
        s = self.session(max_message_size=1000)
        s.send(
            b"EHLO client.test",
            b"MAIL FROM:<x@remote.test>",
            b"RCPT TO:<alice@example.test>",
            b"DATA",
        )
        s.send(*[b"y" * 500] * 3)
        body = s.protocol.transaction
        self.assertIsNone(body._lines)
        s.send(*[b"z" * 500] * 100)
        self.assertIsNone(body._lines)
        self.assertTrue(s.send(b".").startswith(b"552"))

    def test_exactly_at_limit(self) -> None:
        """
        A message of exactly the limit (CRLF line ends counted) is accepted.
        """
        s = self.session(max_message_size=100)
        s.send(b"EHLO client.test")
        reply = self.send_message(s, lines=[b"S: " + b"a" * 45, b"b" * 48])
        self.assertTrue(reply.startswith(b"250"), reply)

    def test_bad_parameters(self) -> None:
        """
        A malformed SIZE or BODY is 501 (BINARYMIME is not offered); an
        unknown parameter is 555; SMTPUTF8 is taken.
        """
        s = self.session()
        s.send(b"EHLO client.test")
        self.assertEqual(s.code(b"MAIL FROM:<x@remote.test> SIZE=lots"), 501)
        self.assertEqual(s.code(b"MAIL FROM:<x@remote.test> BODY=BINARYMIME"), 501)
        self.assertEqual(s.code(b"MAIL FROM:<x@remote.test> MT-PRIORITY=3"), 555)
        self.assertEqual(s.code(b"MAIL FROM:<x@remote.test> SMTPUTF8"), 250)
        s.send(b"RSET")
        self.assertEqual(
            s.code(b"MAIL FROM:<x@remote.test> BODY=8BITMIME SIZE=10"), 250
        )


class AuthTests(SMTPTestCase):
    def test_auth_before_tls_refused(self) -> None:
        """
        AUTH over a plaintext connection is refused with 538 and logs no one
        in, even with the right password.
        """
        s = self.session()
        s.send(b"EHLO client.test")
        reply = s.send(b"AUTH PLAIN " + b64(b"\0alice@example.test\0alice-pw"))
        self.assertTrue(reply.startswith(b"538 "), reply)
        self.assertFalse(s.protocol.authenticated)

    def test_plain_after_tls(self) -> None:
        """
        AUTH PLAIN after STARTTLS logs the user in with 235; a second AUTH
        is 503.
        """
        s = self.session()
        s.starttls()
        self.assertEqual(
            s.send(b"AUTH PLAIN " + b64(b"\0Alice@example.test\0alice-pw")),
            b"235 2.7.0 Authentication successful.\r\n",
        )
        self.assertEqual(s.protocol.delivery.sender, "alice@example.test")
        self.assertEqual(s.login(), 503)

    def test_plain_without_initial_response(self) -> None:
        """
        AUTH PLAIN may send its credentials after an empty 334 challenge.
        """
        s = self.session()
        s.starttls()
        self.assertEqual(s.send(b"AUTH PLAIN"), b"334 \r\n")
        self.assertEqual(s.code(b64(b"\0bob@example.test\0bob-pw")), 235)

    def test_login(self) -> None:
        """
        AUTH LOGIN asks Username: and Password: (base64) and logs in.
        """
        s = self.session()
        s.starttls()
        self.assertEqual(s.send(b"AUTH LOGIN"), b"334 " + b64(b"Username:") + b"\r\n")
        self.assertEqual(
            s.send(b64(b"bob@example.test")), b"334 " + b64(b"Password:") + b"\r\n"
        )
        self.assertEqual(s.code(b64(b"bob-pw")), 235)

    def test_login_with_initial_response(self) -> None:
        """
        AUTH LOGIN may give the user name on the AUTH line.
        """
        s = self.session()
        s.starttls()
        self.assertEqual(
            s.send(b"AUTH LOGIN " + b64(b"bob@example.test")),
            b"334 " + b64(b"Password:") + b"\r\n",
        )
        self.assertEqual(s.code(b64(b"bob-pw")), 235)

    def test_wrong_password(self) -> None:
        """
        A wrong password or unknown user is 535; after three failures the
        connection is closed.
        """
        s = self.session()
        s.starttls()
        self.assertEqual(s.login(pw=b"wrong"), 535)
        self.assertEqual(s.login(user=b"nobody@example.test"), 535)
        self.assertFalse(s.closed)
        reply = s.send(b"AUTH PLAIN " + b64(b"\0alice@example.test\0nope"))
        self.assertTrue(
            reply.endswith(b"421 4.7.0 Too many failed authentication attempts\r\n"),
            reply,
        )
        self.assertTrue(s.closed)

    def test_malformed_auth(self) -> None:
        """
        AUTH with no mechanism is 501, an unknown mechanism 504, a PLAIN
        response of the wrong shape 501, a cancelled exchange 501; the
        session goes on in command mode.
        """
        s = self.session()
        s.starttls()
        self.assertEqual(s.code(b"AUTH"), 501)
        self.assertEqual(s.code(b"AUTH CRAM-MD5"), 504)
        self.assertEqual(s.code(b"AUTH PLAIN " + b64(b"no-nul-bytes")), 501)
        self.assertEqual(s.code(b"AUTH PLAIN ="), 501)
        s.send(b"AUTH LOGIN")
        self.assertEqual(s.code(b"*"), 501)
        self.assertEqual(s.code(b"NOOP"), 250)
        self.assertEqual(s.login(), 235)

    def test_auth_during_transaction(self) -> None:
        """
        AUTH after MAIL FROM is 503.
        """
        s = self.session()
        s.starttls()
        s.send(b"MAIL FROM:<x@remote.test>")
        self.assertEqual(s.login(), 503)

    def test_plaintext_allowed_on_loopback_when_flagged(self) -> None:
        """
        With allow_plaintext_auth, a loopback client (IPv4, IPv6 or a UNIX
        socket) is offered AUTH without TLS and may use it.
        """
        for peer in [
            IPv4Address("TCP", "127.0.0.1", 5000),
            IPv4Address("TCP", "127.5.6.7", 5000),
            IPv6Address("TCP", "::1", 5000),
            IPv6Address("TCP", "::ffff:127.0.0.1", 5000),
            UNIXAddress(None),
        ]:
            s = self.session(allow_plaintext_auth=True, peer=peer)
            self.assertIn(b"AUTH PLAIN LOGIN", s.send(b"EHLO client.test"), peer)
            self.assertEqual(s.login(), 235, peer)

    def test_plaintext_refused_off_loopback_even_when_flagged(self) -> None:
        """
        allow_plaintext_auth never applies to a client that is not on
        loopback.
        """
        s = self.session(
            allow_plaintext_auth=True, peer=IPv4Address("TCP", "192.0.2.1", 5000)
        )
        self.assertNotIn(b"AUTH", s.send(b"EHLO client.test"))
        self.assertEqual(s.login(), 538)

    def test_plaintext_refused_without_flag(self) -> None:
        """
        Without allow_plaintext_auth even a loopback client must use TLS.
        """
        s = self.session()
        self.assertNotIn(b"AUTH", s.send(b"EHLO client.test"))
        self.assertEqual(s.login(), 538)


class RequireAuthTests(SMTPTestCase):
    def test_mail_refused_before_tls(self) -> None:
        """
        With require_auth, MAIL before TLS is 530 asking for STARTTLS.
        """
        s = self.session(require_auth=True)
        s.send(b"EHLO client.test")
        self.assertEqual(
            s.send(b"MAIL FROM:<x@remote.test>"),
            b"530 5.7.0 Must issue a STARTTLS command first\r\n",
        )

    def test_mail_refused_before_auth(self) -> None:
        """
        With require_auth, MAIL after TLS but before AUTH is 530, even for
        a local recipient; after AUTH the message is accepted.
        """
        s = self.session(require_auth=True)
        s.starttls()
        self.assertEqual(
            s.send(b"MAIL FROM:<x@remote.test>"),
            b"530 5.7.0 Authentication required\r\n",
        )
        self.assertEqual(s.code(b"RCPT TO:<alice@example.test>"), 503)
        self.assertEqual(s.login(), 235)
        self.assertTrue(self.send_message(s).startswith(b"250"))
        self.assertEqual(len(self.deliveries.stored), 1)

    def test_without_require_auth(self) -> None:
        """
        Without require_auth, local mail needs no AUTH (as an MX would).
        """
        s = self.session()
        s.send(b"EHLO client.test")
        self.assertTrue(self.send_message(s).startswith(b"250"))


class BadInputTests(SMTPTestCase):
    def test_garbage_commands(self) -> None:
        """
        Unknown commands, empty lines and binary junk get 500 and the
        session goes on.
        """
        s = self.session()
        self.assertEqual(s.code(b"FOO bar"), 500)
        self.assertEqual(s.code(b""), 500)
        self.assertEqual(s.code(b"\x00\xff\xfe garbage \x80"), 500)
        self.assertEqual(s.code(b"EHLO client.test"), 250)
        self.assertFalse(s.closed)

    def test_out_of_order(self) -> None:
        """
        Commands out of order get 503: MAIL before EHLO, RCPT before MAIL,
        DATA before RCPT, a second MAIL.
        """
        s = self.session()
        self.assertEqual(s.code(b"MAIL FROM:<x@remote.test>"), 503)
        s.send(b"EHLO client.test")
        self.assertEqual(s.code(b"RCPT TO:<alice@example.test>"), 503)
        self.assertEqual(s.code(b"DATA"), 503)
        s.send(b"MAIL FROM:<x@remote.test>")
        self.assertEqual(s.code(b"MAIL FROM:<y@remote.test>"), 503)
        self.assertEqual(s.code(b"DATA"), 503)
        self.assertEqual(s.code(b"RSET"), 250)
        self.assertEqual(s.code(b"HELO"), 501)
        self.assertEqual(s.code(b"EHLO"), 501)

    def test_bad_addresses(self) -> None:
        """
        Malformed paths get 501 or 553.
        """
        s = self.session()
        s.send(b"EHLO client.test")
        self.assertEqual(s.code(b"MAIL FROM:"), 501)
        self.assertEqual(s.code(b"MAIL FROM:<a@b@c>"), 553)
        s.send(b"MAIL FROM:<>")
        self.assertEqual(s.code(b"RCPT TO:<>"), 501)
        self.assertEqual(s.code(b'RCPT TO:<"a b"@example.test>'), 550)

    def test_noop_vrfy_quit(self) -> None:
        """
        NOOP is 250, VRFY 252 (no user enumeration), QUIT 221 and a close.
        """
        s = self.session()
        self.assertEqual(s.code(b"NOOP"), 250)
        self.assertEqual(s.code(b"VRFY alice@example.test"), 252)
        self.assertEqual(s.code(b"QUIT"), 221)
        self.assertTrue(s.closed)

    def test_oversize_command_line(self) -> None:
        """
        A line longer than the protocol's limit gets 500 and the connection
        is closed; nothing is buffered without bound.
        """
        s = self.session()
        s.protocol.dataReceived(b"EHLO " + b"x" * 20000)
        self.assertEqual(
            s.take(), b"500 5.5.6 Line too long; closing the connection\r\n"
        )
        self.assertTrue(s.closed)
        self.assertEqual(s.protocol._buffer, b"")

    def test_oversize_line_in_data(self) -> None:
        """
        An oversize line inside DATA discards the message (nothing stored)
        and closes the connection.
        """
        s = self.session()
        s.send(
            b"EHLO client.test",
            b"MAIL FROM:<x@remote.test>",
            b"RCPT TO:<alice@example.test>",
            b"DATA",
        )
        s.protocol.dataReceived(b"Subject: x\r\n\r\n" + b"y" * 20000 + b"\r\n.\r\n")
        self.assertTrue(s.take().startswith(b"500 5.5.6 Line too long"))
        self.assertTrue(s.closed)
        s.protocol.connectionLost(Exception("gone"))
        self.assertEqual(self.deliveries.stored, [])

    def test_disconnect_mid_data(self) -> None:
        """
        A client that disconnects in the middle of DATA leaves nothing stored.
        """
        s = self.session()
        s.send(
            b"EHLO client.test",
            b"MAIL FROM:<x@remote.test>",
            b"RCPT TO:<alice@example.test>",
            b"DATA",
        )
        s.send(*MESSAGE)
        s.protocol.connectionLost(Exception("connection lost"))
        self.assertEqual(self.deliveries.stored, [])
        self.assertIsNone(s.protocol.transaction._lines)

    def test_starttls_injection(self) -> None:
        """
        Commands sent in plaintext right behind STARTTLS (before the TLS
        handshake) are dropped, not run as if they came over TLS.
        """
        s = self.session()
        s.send(b"EHLO client.test")
        reply = s.send(
            b"STARTTLS", b"MAIL FROM:<x@remote.test>", b"RCPT TO:<alice@example.test>"
        )
        self.assertEqual(reply, b"220 2.0.0 Begin TLS negotiation now\r\n")
        self.assertIsNone(s.protocol._from)
        s.protocol.dataReceived(b"EHLO client.test\r\n")
        self.assertTrue(s.take().startswith(b"250"))

    def test_starttls_resets_session(self) -> None:
        """
        After STARTTLS the client must say EHLO again and start over.
        """
        s = self.session()
        s.send(b"EHLO client.test", b"MAIL FROM:<x@remote.test>")
        s.send(b"STARTTLS")
        self.assertEqual(s.code(b"RCPT TO:<alice@example.test>"), 503)
        self.assertEqual(s.code(b"MAIL FROM:<x@remote.test>"), 503)

    def test_starttls_forgets_plaintext_auth(self) -> None:
        """
        A login made in plaintext (allowed on loopback) is forgotten by
        STARTTLS, as RFC 3207 asks.
        """
        s = self.session(allow_plaintext_auth=True, require_auth=True)
        s.send(b"EHLO client.test")
        self.assertEqual(s.login(), 235)
        s.starttls()
        self.assertFalse(s.protocol.authenticated)
        self.assertIsNone(s.protocol.delivery.sender)
        self.assertEqual(s.code(b"MAIL FROM:<x@remote.test>"), 530)

    def test_idle_timeout(self) -> None:
        """
        A silent client is told 421 and disconnected after the timeout.
        """
        clock = Clock()
        s = self.session(reactor=clock, timeout=60)
        clock.advance(59)
        self.assertFalse(s.closed)
        clock.advance(2)
        self.assertTrue(s.take().startswith(b"421 "))
        self.assertTrue(s.closed)
