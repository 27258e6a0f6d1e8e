"""
Tests for L{twisted_netlab.mail.lab.faults.hooks}: the SMTP and IMAP
listeners' hooks at each stage (in memory, with a L{Clock}).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.mail.lab.imaptesting import SIMPLE, USER, ServerFixture
from tests.mail.lab.smtp.test_server import (
    MESSAGE,
    TLS,
    Deliveries,
    Session,
    shared_users,
)
from twisted_netlab.mail.lab.faults import (
    Faults,
)
from twisted_netlab.mail.lab.smtp.server import LabSMTPFactory


class SMTPFaultTests(SynchronousTestCase):
    """
    The SMTP listener's hooks: each stage, each action.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.faults = Faults(reactor=self.clock)
        self.deliveries = Deliveries()

    def session(self, *specs: str, peer: Any = None, **kwargs: Any) -> Session:
        for spec in specs:
            self.faults.add(spec)
        factory = LabSMTPFactory(
            users=shared_users(),
            domains=["example.test", "other.test"],
            deliver=self.deliveries,
            tls=TLS,
            hostname="mail.example.test",
            reactor=self.clock,
            faults=self.faults,
            **kwargs,
        )
        return Session(factory, peer)

    def transaction(self, s: Session, *recipients: bytes) -> list[int]:
        codes = [s.code(b"EHLO client.test"), s.code(b"MAIL FROM:<a@remote.test>")]
        codes += [s.code(b"RCPT TO:<" + r + b">") for r in recipients]
        codes.append(s.code(b"DATA"))
        if codes[-1] == 354:
            codes.append(int(s.send(*MESSAGE, b".")[:3]))
        return codes

    def test_connect_reply(self) -> None:
        """
        smtp.connect:reply answers instead of the greeting and closes.
        """
        s = self.session("smtp.connect:reply=421")
        self.assertTrue(s.greeting.startswith(b"421 4.3.0 "), s.greeting)
        self.assertTrue(s.closed)

    def test_connect_drop(self) -> None:
        """
        smtp.connect:drop closes before any greeting; drop=abort resets.
        """
        s = self.session("smtp.connect:drop:times=1")
        self.assertEqual(s.greeting, b"")
        self.assertTrue(s.closed)
        self.assertFalse(s.transport.disconnected)
        s = self.session("smtp.connect:drop=abort")
        self.assertEqual(s.greeting, b"")
        self.assertTrue(s.transport.disconnected)

    def test_connect_delay(self) -> None:
        """
        smtp.connect:delay holds the greeting back for that long.
        """
        s = self.session("smtp.connect:delay=3")
        self.assertEqual(s.greeting, b"")
        self.clock.advance(3)
        self.assertTrue(s.take().startswith(b"220 mail.example.test"))

    def test_ehlo(self) -> None:
        """
        smtp.ehlo faults EHLO and HELO alike; the next attempt is served.
        """
        s = self.session("smtp.ehlo:reply=554 5.7.1 Not you:times=2")
        self.assertEqual(s.send(b"EHLO client.test"), b"554 5.7.1 Not you\r\n")
        self.assertEqual(s.code(b"HELO client.test"), 554)
        self.assertEqual(s.code(b"EHLO client.test"), 250)

    def test_auth(self) -> None:
        """
        smtp.auth answers AUTH, matching the user named by AUTH PLAIN.
        """
        s = self.session("auth:reply=454:user=alice@*", allow_plaintext_auth=True)
        s.code(b"EHLO client.test")
        self.assertEqual(s.login(), 454)
        self.assertEqual(s.login(b"bob@example.test", b"bob-pw"), 235)

    def test_mail(self) -> None:
        """
        smtp.mail answers MAIL FROM; matching by sender.
        """
        s = self.session("mail:reply=451:from=*@slow.test")
        s.code(b"EHLO client.test")
        self.assertEqual(s.code(b"MAIL FROM:<x@slow.test>"), 451)
        self.assertEqual(s.code(b"MAIL FROM:<x@fast.test>"), 250)

    def test_rcpt_affects_only_that_recipient(self) -> None:
        """
        A RCPT fault refuses the recipient it matches; the others of the
        same message are accepted and get the message.
        """
        s = self.session("rcpt:reply=550 5.1.1 No such user:to=bob@*")
        codes = self.transaction(s, b"alice@example.test", b"bob@example.test")
        self.assertEqual(codes, [250, 250, 250, 550, 354, 250])
        self.assertEqual(
            [address for address, _ in self.deliveries.stored], ["alice@example.test"]
        )

    def test_data(self) -> None:
        """
        smtp.data answers DATA; the transaction is over (MAIL starts anew).
        """
        s = self.session("data:reply=452:times=1")
        codes = self.transaction(s, b"alice@example.test")
        self.assertEqual(codes, [250, 250, 250, 452])
        self.assertEqual(s.code(b"RCPT TO:<alice@example.test>"), 503)
        self.assertEqual(
            self.transaction(s, b"alice@example.test"), [250, 250, 250, 354, 250]
        )

    def test_message_stores_nothing(self) -> None:
        """
        smtp.message answers after the final dot, and nothing is stored; the
        next message on the same connection is stored.
        """
        s = self.session("message:reply=451:times=1")
        self.assertEqual(
            self.transaction(s, b"alice@example.test"), [250, 250, 250, 354, 451]
        )
        self.assertEqual(self.deliveries.stored, [])
        self.assertEqual(
            self.transaction(s, b"alice@example.test"), [250, 250, 250, 354, 250]
        )
        self.assertEqual(len(self.deliveries.stored), 1)

    def test_message_drop_stores_nothing(self) -> None:
        """
        smtp.message:drop closes at the final dot, storing nothing.
        """
        s = self.session("message:drop=abort")
        s.code(b"EHLO client.test")
        s.code(b"MAIL FROM:<a@remote.test>")
        s.code(b"RCPT TO:<alice@example.test>")
        s.code(b"DATA")
        self.assertEqual(s.send(*MESSAGE, b"."), b"")
        self.assertTrue(s.transport.disconnected)
        self.assertEqual(self.deliveries.stored, [])

    def test_bdat_message_stores_nothing(self) -> None:
        """
        A message sent with BDAT (CHUNKING) is faulted at the message stage
        after its last chunk, with its envelope: nothing is stored; the
        next one is.
        """
        s = self.session("message:reply=554 5.7.1 Not today:to=alice@*:times=1")
        for expected in (554, 250):
            s.code(b"EHLO client.test")
            s.code(b"MAIL FROM:<a@remote.test>")
            s.code(b"RCPT TO:<alice@example.test>")
            s.protocol.dataReceived(
                b"BDAT 27 LAST\r\nSubject: chunked\r\n\r\nhello\r\n"
            )
            self.assertEqual(int(s.take()[:3]), expected)
        self.assertEqual(len(self.deliveries.stored), 1)

    def test_message_matches_recipients(self) -> None:
        """
        At the message stage to= matches any of the message's recipients.
        """
        s = self.session("message:reply=554:to=bob@*")
        self.assertEqual(
            self.transaction(s, b"alice@example.test"), [250, 250, 250, 354, 250]
        )
        self.assertEqual(
            self.transaction(s, b"alice@example.test", b"bob@example.test")[-1], 554
        )

    def test_refused_commands_not_faulted(self) -> None:
        """
        A command the server refuses anyway gets its usual answer, not the
        fault: MAIL before EHLO, RCPT before MAIL, DATA before RCPT, bad
        syntax, EHLO without a name.
        """
        s = self.session(
            "ehlo:reply=421",
            "mail:reply=421",
            "rcpt:reply=421",
            "data:reply=421",
        )
        self.assertEqual(s.code(b"MAIL FROM:<a@remote.test>"), 503)
        self.assertEqual(s.code(b"EHLO"), 501)
        self.faults.clear()
        self.faults.add("mail:reply=421")
        self.faults.add("rcpt:reply=421")
        self.faults.add("data:reply=421")
        s.code(b"EHLO client.test")
        self.assertEqual(s.code(b"RCPT TO:<alice@example.test>"), 503)
        self.assertEqual(s.code(b"DATA"), 503)
        self.assertEqual(s.code(b"MAIL FRM:<a@remote.test>"), 501)
        self.assertFalse(s.closed)
        self.assertEqual([h.hits for h in self.faults], [0, 0, 0])

    def test_421_closes(self) -> None:
        """
        A 421 reply closes the connection, as RFC 5321 says it does.
        """
        s = self.session("mail:reply=421")
        s.code(b"EHLO client.test")
        self.assertEqual(s.code(b"MAIL FROM:<a@remote.test>"), 421)
        self.assertTrue(s.closed)

    def test_delay_reply(self) -> None:
        """
        delay holds the reply of its stage (and what follows) back.
        """
        s = self.session("rcpt:delay=5")
        s.code(b"EHLO client.test")
        s.code(b"MAIL FROM:<a@remote.test>")
        self.assertEqual(s.send(b"RCPT TO:<alice@example.test>", b"NOOP"), b"")
        self.clock.advance(4)
        self.assertEqual(s.take(), b"")
        self.clock.advance(1)
        self.assertEqual(s.take().count(b"250 "), 2)

    def test_throttle_session(self) -> None:
        """
        throttle slows the rest of the session to that many bytes/s.
        """
        s = self.session("ehlo:throttle=50")
        first = s.send(b"EHLO client.test")
        self.assertEqual(len(first), 5)
        self.clock.pump([0.1] * 10)
        self.assertEqual(len(s.take()), 50)
        self.clock.pump([0.1] * 100)
        s.take()
        reply = s.send(b"NOOP")
        self.assertEqual(len(reply), 5)
        self.clock.pump([0.1] * 10)
        whole = reply + s.take()
        self.assertTrue(whole.startswith(b"250 ") and whole.endswith(b"OK\r\n"))

    def test_client_match(self) -> None:
        """
        client= selects by the connection's peer address.
        """
        self.faults.add("smtp.connect:drop:client=192.0.2.0/24")
        far = self.session(peer=IPv4Address("TCP", "192.0.2.10", 1000))
        near = self.session(peer=IPv6Address("TCP", "::1", 1000))
        self.assertTrue(far.closed)
        self.assertTrue(near.greeting.startswith(b"220"))

    def test_serves_others_after_drop(self) -> None:
        """
        After a dropped connection the server goes on serving new ones.
        """
        self.faults.add("mail:drop=abort:times=1")
        s = self.session()
        s.code(b"EHLO client.test")
        s.send(b"MAIL FROM:<a@remote.test>")
        self.assertTrue(s.transport.disconnected)
        again = self.session()
        self.assertEqual(
            self.transaction(again, b"alice@example.test"), [250, 250, 250, 354, 250]
        )


class IMAPFaultTests(ServerFixture):
    """
    The IMAP listener's hooks.
    """

    def setUp(self) -> None:
        super().setUp()
        self.faults = Faults(reactor=self.clock)
        self.factory.faults = self.faults
        for _ in range(3):
            self.store.deliver(USER, SIMPLE)

    def reconnect(self, *specs: str) -> bytes:
        for spec in specs:
            self.faults.add(spec)
        self.server, self.transport = self.connect()
        value = self.transport.value()
        self.transport.clear()
        return value

    def test_connect(self) -> None:
        """
        imap.connect:reply=BYE greets with BYE and closes; drop closes at
        once.
        """
        self.assertEqual(
            self.reconnect("imap.connect:reply=BYE busy:times=1"), b"* BYE busy\r\n"
        )
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.reconnect("imap.connect:drop=abort"), b"")
        self.assertTrue(self.transport.disconnected)

    def test_login(self) -> None:
        """
        imap.login answers LOGIN (matching the user it names) and
        AUTHENTICATE with NO, BAD or BYE.
        """
        self.faults.add("login:reply=NO [UNAVAILABLE] later:user=alice@*:times=1")
        response = self.command(b'l1 LOGIN "' + USER.encode() + b'" "x"')
        self.assertEqual(response, b"l1 NO [UNAVAILABLE] later\r\n")
        self.faults.add("login:reply=BAD:times=1")
        self.assertTrue(self.command(b"a1 AUTHENTICATE PLAIN").startswith(b"a1 BAD"))
        self.faults.add("login:reply=BYE bye")
        self.assertEqual(self.command(b"a2 AUTHENTICATE PLAIN"), b"* BYE bye\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_select(self) -> None:
        """
        imap.select answers SELECT and EXAMINE; the user is the logged-in
        one.
        """
        self.login()
        self.faults.add("select:reply=NO [INUSE] busy:user=" + USER)
        self.assertEqual(self.command(b"s1 SELECT INBOX"), b"s1 NO [INUSE] busy\r\n")
        self.assertEqual(self.command(b"s2 EXAMINE INBOX"), b"s2 NO [INUSE] busy\r\n")

    def test_fetch_drop_in_literal(self) -> None:
        """
        imap.fetch:drop:after-bytes=N lets N bytes of the FETCH out, in the
        middle of a message's literal, then closes; UID FETCH is FETCH.
        """
        self.select()
        self.faults.add("fetch:drop:after-bytes=60")
        response = self.command(b"f1 UID FETCH 1:* (BODY.PEEK[])")
        self.assertEqual(len(response), 60)
        self.assertIn(b"{", response)
        self.assertNotIn(b"f1 OK", response)
        self.assertTrue(self.transport.disconnecting)

    def test_fetch_delay(self) -> None:
        """
        imap.fetch:delay holds the FETCH's answer back.
        """
        self.select()
        self.faults.add("fetch:delay=2")
        self.assertEqual(self.command(b"f1 FETCH 1 (UID)"), b"")
        self.clock.advance(2)
        self.assertIn(b"f1 OK", self.transport.value())

    def test_append(self) -> None:
        """
        imap.append answers APPEND before the literal is asked for; nothing
        is stored.
        """
        self.login()
        self.faults.add("append:reply=NO [OVERQUOTA] full")
        response = self.command(b"a1 APPEND INBOX {10}")
        self.assertEqual(response, b"a1 NO [OVERQUOTA] full\r\n")
        self.assertEqual(len(self.store.messages(USER, "INBOX")), 3)

    def test_append_with_literal_plus(self) -> None:
        """
        An APPEND refused while its literal is on the way unasked (LITERAL+):
        the literal's octets are skipped, never read as commands, and the
        session goes on.
        """
        self.login()
        self.faults.add("append:reply=NO full")
        response = self.send(
            b"a1 APPEND INBOX {17+}\r\nb1 DELETE INBOX\r\n\r\nn1 NOOP\r\n"
        )
        self.assertEqual(response, b"a1 NO full\r\nn1 OK NOOP completed\r\n")
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(len(self.store.messages(USER, "INBOX")), 3)

    def test_named_command(self) -> None:
        """
        imap.NAME faults that command only, in whatever state it is valid.
        """
        self.faults.add("imap.noop:reply=BAD nope")
        self.assertEqual(self.command(b"n1 NOOP"), b"n1 BAD nope\r\n")
        self.assertIn(b"c1 OK", self.command(b"c1 CAPABILITY"))

    def test_unknown_command_untouched(self) -> None:
        """
        A command the server would refuse anyway (not valid in this state)
        is not faulted: the client sees the server's usual answer.
        """
        self.faults.add("fetch:reply=NO faulted")
        response = self.command(b"f1 FETCH 1 (UID)")
        self.assertNotIn(b"faulted", response)
        self.assertIn(b"f1 BAD", response)

    def test_connect_delay(self) -> None:
        """
        imap.connect:delay holds the greeting back.
        """
        self.assertEqual(self.reconnect("imap.connect:delay=1.5"), b"")
        self.clock.advance(1.5)
        self.assertTrue(self.transport.value().startswith(b"* OK"))

    def test_throttle(self) -> None:
        """
        A throttled IMAP session gets its answers at that many bytes/s.
        """
        self.login()
        self.faults.add("imap.select:throttle=100")
        first = self.command(b"s1 SELECT INBOX")
        self.assertEqual(len(first), 10)
        self.clock.pump([0.1] * 100)
        self.assertIn(b"s1 OK [READ-WRITE]", self.transport.value())
