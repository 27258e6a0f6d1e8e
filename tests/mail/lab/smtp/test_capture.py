"""
Tests for L{twisted_netlab.mail.lab.smtp}'s capture rules and SMTP features:
catch-all routing, one copy per mailbox, the envelope, the recipient limit,
PIPELINING, ENHANCEDSTATUSCODES, SMTPUTF8 and CHUNKING (BDAT), one
conversation at a time over an in-memory transport.
"""

from __future__ import annotations

from twisted.internet.address import UNIXAddress
from twisted.internet.defer import Deferred

from tests.mail.lab.smtp.test_server import MESSAGE, STORED_BODY, SMTPTestCase
from twisted_netlab.mail.lab.store.maildir import Envelope

CATCH_ALL = "catch@example.test"


class CatchAllTests(SMTPTestCase):
    def test_every_domain_accepted(self) -> None:
        """
        With a catch-all, recipients at any domain, unknown users of a local
        domain and addresses the lab could not name a user by are accepted,
        and all go to the catch-all's INBOX; a lab user's mail goes to its
        own INBOX.
        """
        s = self.session(catch_all=CATCH_ALL)
        s.send(b"EHLO client.test", b"MAIL FROM:<app@sender.test>")
        for rcpt in (
            b"someone@anywhere.example",
            b"nobody@example.test",
            b'"odd local"@example.test',
            b"Bob@Example.TEST",
        ):
            self.assertEqual(s.code(b"RCPT TO:<" + rcpt + b">"), 250, rcpt)
        s.send(b"DATA")
        reply = s.send(*MESSAGE, b".")
        self.assertTrue(reply.startswith(b"250 2.0.0 Message stored"), reply)
        self.assertEqual(
            [address for address, _ in self.deliveries.stored],
            [CATCH_ALL, "bob@example.test"],
        )

    def test_without_catch_all_relaying_is_refused(self) -> None:
        """
        Without a catch-all, other domains still get 550 (no open relay).
        """
        s = self.session()
        s.send(b"EHLO client.test", b"MAIL FROM:<app@sender.test>")
        reply = s.send(b"RCPT TO:<someone@anywhere.example>")
        self.assertTrue(reply.startswith(b"550 5.7.1 Relaying denied"), reply)

    def test_one_copy_per_mailbox(self) -> None:
        """
        Recipients that map to the same mailbox (the catch-all, or a user
        named twice in any case) give one stored copy each mailbox, in one
        call to deliver, whose Received: header names no single recipient.
        """
        s = self.session(catch_all=CATCH_ALL)
        s.send(b"EHLO client.test", b"MAIL FROM:<app@sender.test>")
        s.send(
            b"RCPT TO:<a@anywhere.example>",
            b"RCPT TO:<b@elsewhere.example>",
            b"RCPT TO:<alice@example.test>",
            b"RCPT TO:<ALICE@example.test>",
            b"RCPT TO:<carol@other.test>",
            b"DATA",
        )
        reply = s.send(*MESSAGE, b".")
        self.assertEqual(reply, b"250 2.0.0 Message stored as UID 1 2 3\r\n")
        self.assertEqual(self.deliveries.calls, 1)
        stored = dict(self.deliveries.stored)
        self.assertEqual(
            list(stored), [CATCH_ALL, "alice@example.test", "carol@other.test"]
        )
        for address, data in stored.items():
            header = data.partition(b"\r\n" + STORED_BODY[:5])[0]
            self.assertEqual(data.count(b"Received:"), 1)
            self.assertTrue(data.endswith(STORED_BODY))
            if address == "carol@other.test":
                self.assertIn(b"\tfor <carol@other.test>; ", header)
            else:
                self.assertNotIn(b"for <", header)

    def test_envelope(self) -> None:
        """
        The delivery gets the envelope: MAIL FROM, every RCPT TO as given
        (the Bcc ones too), the client's IP address, TLS, the AUTH user and
        the time.
        """
        s = self.session(catch_all=CATCH_ALL)
        s.starttls()
        s.login()
        s.send(
            b"MAIL FROM:<App@Sender.test>",
            b"RCPT TO:<to@anywhere.example>",
            b"RCPT TO:<bcc@hidden.example>",
            b"DATA",
        )
        s.send(*MESSAGE, b".")
        [envelope] = self.deliveries.envelopes
        self.assertIsInstance(envelope, Envelope)
        self.assertEqual(envelope.mail_from, "App@Sender.test")
        self.assertEqual(
            envelope.rcpt_to, ("to@anywhere.example", "bcc@hidden.example")
        )
        self.assertEqual(envelope.client, "127.0.0.1")
        self.assertTrue(envelope.tls)
        self.assertEqual(envelope.auth_user, "alice@example.test")
        self.assertGreater(envelope.received, 1.7e9)
        self.assertEqual((envelope.helo, envelope.smtputf8), ("client.test", False))

    def test_envelope_helo_after_starttls(self) -> None:
        """
        The envelope's HELO name is the one given after STARTTLS, which
        forgets the one before (RFC 3207), and HELO counts as EHLO does.
        """
        s = self.session(catch_all=CATCH_ALL)
        self.assertEqual(s.code(b"EHLO before.test"), 250)
        self.assertEqual(s.code(b"STARTTLS"), 220)
        self.assertEqual(s.code(b"EHLO after.test"), 250)
        s.send(b"MAIL FROM:<a@b.example>", b"RCPT TO:<x@y.example>", b"DATA")
        s.send(*MESSAGE, b".")
        plain = self.session(catch_all=CATCH_ALL)
        plain.send(b"HELO old.style.test", b"MAIL FROM:<a@b.example>")
        plain.send(b"RCPT TO:<x@y.example>", b"DATA")
        plain.send(*MESSAGE, b".")
        self.assertEqual(
            [e.helo for e in self.deliveries.envelopes],
            ["after.test", "old.style.test"],
        )

    def test_envelope_plain_null_sender_unix(self) -> None:
        """
        Without TLS or AUTH, the envelope says so; the null reverse path is
        the empty string; a UNIX-socket client is "unix".
        """
        s = self.session(catch_all=CATCH_ALL, peer=UNIXAddress(None))
        s.send(b"EHLO client.test", b"MAIL FROM:<>", b"RCPT TO:<x@y.example>")
        s.send(b"DATA")
        s.send(*MESSAGE, b".")
        [envelope] = self.deliveries.envelopes
        self.assertEqual(
            (envelope.mail_from, envelope.client, envelope.tls, envelope.auth_user),
            ("", "unix", False, None),
        )

    def test_max_recipients(self) -> None:
        """
        Past max_recipients RCPT TO commands, more get 452 4.5.3 (RFC 5321
        4.5.3.1.8); the message still goes to the accepted ones.
        """
        s = self.session(catch_all=CATCH_ALL, max_recipients=3)
        s.send(b"EHLO client.test", b"MAIL FROM:<app@sender.test>")
        replies = s.send(*[b"RCPT TO:<r%d@x.example>" % n for n in range(3)])
        self.assertEqual(replies.count(b"250 2.1.5 "), 3)
        self.assertEqual(
            s.send(b"RCPT TO:<r4@x.example>"), b"452 4.5.3 Too many recipients\r\n"
        )
        s.send(b"DATA")
        self.assertTrue(s.send(*MESSAGE, b".").startswith(b"250 "))
        self.assertEqual(len(self.deliveries.envelopes[0].rcpt_to), 3)

    def test_failed_delivery_is_one_451(self) -> None:
        """
        When the store fails, the client gets one 451 for the message, and
        nothing was kept (the store's delivery is all or nothing).
        """
        self.deliveries.error = OSError(28, "No space left on device")
        s = self.session(catch_all=CATCH_ALL)
        s.send(b"EHLO client.test", b"MAIL FROM:<app@sender.test>")
        s.send(b"RCPT TO:<alice@example.test>", b"RCPT TO:<x@y.example>", b"DATA")
        reply = s.send(*MESSAGE, b".")
        self.assertTrue(reply.startswith(b"451 4.3.0 "), reply)
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)


class PipeliningTests(SMTPTestCase):
    def test_advertised(self) -> None:
        """
        EHLO offers PIPELINING, ENHANCEDSTATUSCODES, SMTPUTF8 and CHUNKING.
        """
        reply = self.session().send(b"EHLO client.test")
        offered = [line[4:] for line in reply.splitlines()]
        for name in (b"PIPELINING", b"ENHANCEDSTATUSCODES", b"SMTPUTF8", b"CHUNKING"):
            self.assertIn(name, offered)

    def test_pipelined_transaction(self) -> None:
        """
        A whole transaction in one write (RFC 2920) gets its replies in
        order, one for each command.
        """
        s = self.session()
        s.send(b"EHLO client.test")
        reply = s.send(
            b"MAIL FROM:<x@remote.test>",
            b"RCPT TO:<alice@example.test>",
            b"RCPT TO:<nobody@example.test>",
            b"RCPT TO:<bob@example.test>",
            b"DATA",
            *MESSAGE,
            b".",
            b"MAIL FROM:<y@remote.test>",
            b"RCPT TO:<bob@example.test>",
            b"DATA",
            b"second",
            b".",
            b"QUIT",
        )
        codes = b" ".join(line[:3] for line in reply.splitlines())
        self.assertEqual(codes, b"250 250 550 250 354 250 250 250 354 250 221")
        self.assertEqual(len(self.deliveries.stored), 3)

    def test_commands_wait_for_the_stored_reply(self) -> None:
        """
        While a message is being stored, what was pipelined after it is not
        read: its replies come after the 250 of the message, and the
        transport is paused until then.
        """
        pending: Deferred[dict[str, int]] = Deferred()
        self.deliveries.result = pending
        s = self.session()
        s.send(b"EHLO client.test")
        reply = s.send(
            b"MAIL FROM:<x@remote.test>",
            b"RCPT TO:<alice@example.test>",
            b"DATA",
            *MESSAGE,
            b".",
            b"NOOP",
            b"QUIT",
        )
        self.assertEqual(
            [line[:3] for line in reply.splitlines()], [b"250"] * 2 + [b"354"]
        )
        self.assertEqual(s.transport.producerState, "paused")
        self.assertFalse(s.closed)
        pending.callback({"alice@example.test": 9})
        self.assertEqual(
            s.take(),
            b"250 2.0.0 Message stored as UID 9\r\n250 2.0.0 OK\r\n"
            b"221 2.0.0 See you later\r\n",
        )
        self.assertEqual(s.transport.producerState, "producing")
        self.assertTrue(s.closed)


class EnhancedStatusCodeTests(SMTPTestCase):
    def test_every_reply_has_a_code(self) -> None:
        """
        Every 2xx, 4xx and 5xx reply but the greeting and the EHLO/HELO
        answers carries an RFC 3463 code, on every line (RFC 2034).
        """
        s = self.session(max_recipients=1)
        self.assertNotRegex(s.greeting, rb"^220 \d\.")
        self.assertNotRegex(s.send(b"EHLO client.test"), rb"^250[ -]\d\.")
        replies = s.send(
            b"NOOP",
            b"VRFY alice",
            b"RCPT TO:<alice@example.test>",
            b"MAIL FROM:<x@remote.test>",
            b"MAIL FROM:<x@remote.test>",
            b"RCPT TO:<nobody@example.test>",
            b"RCPT TO:<someone@else.example>",
            b"RCPT TO:<bad",
            b"RCPT TO:<alice@example.test>",
            b"RCPT TO:<bob@example.test>",
            b"BOGUS",
            b"AUTH PLAIN",
            b"RSET",
            b"MAIL FROM:<x@remote.test> SIZE=999999999999",
            b"DATA",
            b"HELP",
            b"QUIT",
        )
        lines = replies.splitlines()
        self.assertEqual(len(lines), 17)
        for line in lines:
            self.assertRegex(line, rb"^([245])\d\d \1\.\d{1,3}\.\d{1,3} ")
        self.assertRegex(lines[7], rb"^501 5\.5\.4 ")
        self.assertRegex(lines[8], rb"^250 2\.1\.5 ")
        self.assertRegex(lines[9], rb"^452 4\.5\.3 ")

    def test_helo_reply_is_plain(self) -> None:
        """
        The HELO answer is exempt, like EHLO's.
        """
        reply = self.session().send(b"HELO client.test")
        self.assertTrue(reply.startswith(b"250 mail.example.test Hello"), reply)


class SMTPUTF8Tests(SMTPTestCase):
    def test_utf8_addresses_with_smtputf8(self) -> None:
        """
        With the SMTPUTF8 parameter, UTF-8 addresses are accepted (to the
        catch-all), the message is stored as sent, and the envelope keeps
        the addresses as text.
        """
        s = self.session(catch_all=CATCH_ALL)
        s.send(b"EHLO client.test")
        sender = "jos\u00e9@ejemplo.example".encode()
        rcpt = "\u7528\u6237@\u4f8b\u5b50.example".encode()
        self.assertEqual(s.code(b"MAIL FROM:<" + sender + b"> SMTPUTF8"), 250)
        self.assertEqual(s.code(b"RCPT TO:<" + rcpt + b">"), 250)
        s.send(b"DATA")
        subject = "Subject: \u00bfqu\u00e9 tal?".encode()
        reply = s.send(subject, b"", b"hola", b".")
        self.assertTrue(reply.startswith(b"250 "), reply)
        [(address, data)] = self.deliveries.stored
        self.assertEqual(address, CATCH_ALL)
        self.assertIn(b" with UTF8SMTP", data)
        self.assertTrue(data.endswith(subject + b"\r\n\r\nhola\r\n"))
        [envelope] = self.deliveries.envelopes
        self.assertEqual(envelope.mail_from, sender.decode())
        self.assertEqual(envelope.rcpt_to, (rcpt.decode(),))
        self.assertTrue(envelope.smtputf8)

    def test_utf8_addresses_without_smtputf8(self) -> None:
        """
        Without the SMTPUTF8 parameter, a non-ASCII address gets 553 5.6.7.
        """
        s = self.session(catch_all=CATCH_ALL)
        s.send(b"EHLO client.test")
        reply = s.send("MAIL FROM:<jos\u00e9@x.example>".encode())
        self.assertTrue(reply.startswith(b"553 5.6.7 "), reply)
        s.send(b"MAIL FROM:<a@x.example>")
        reply = s.send("RCPT TO:<jos\u00e9@x.example>".encode())
        self.assertTrue(reply.startswith(b"553 5.6.7 "), reply)

    def test_smtputf8_ends_with_the_transaction(self) -> None:
        """
        SMTPUTF8 applies to its own transaction only.
        """
        s = self.session(catch_all=CATCH_ALL)
        s.send(b"EHLO client.test", b"MAIL FROM:<a@x.example> SMTPUTF8", b"RSET")
        s.send(b"MAIL FROM:<a@x.example>")
        reply = s.send("RCPT TO:<jos\u00e9@x.example>".encode())
        self.assertTrue(reply.startswith(b"553 "), reply)


class ChunkingTests(SMTPTestCase):
    def transaction(self, s: object) -> None:
        s.send(  # type: ignore[attr-defined]
            b"EHLO client.test",
            b"MAIL FROM:<x@remote.test>",
            b"RCPT TO:<alice@example.test>",
        )

    def test_chunks(self) -> None:
        """
        BDAT chunks are stored byte for byte (no dot-unstuffing, bare LF
        kept), each chunk acknowledged, the message stored at LAST; command
        words inside a chunk are message bytes.
        """
        s = self.session()
        self.transaction(s)
        first = b"Subject: chunks\r\n\r\n.QUIT\r\nRSET\r\n"
        second = b"..DATA\nlast line\r\n"
        reply = s.send(b"BDAT %d" % len(first))
        self.assertEqual(reply, b"")
        s.protocol.dataReceived(first)
        self.assertEqual(s.take(), b"250 2.0.0 %d octets received\r\n" % len(first))
        s.protocol.dataReceived(b"BDAT %d LAST\r\n" % len(second) + second)
        self.assertEqual(s.take(), b"250 2.0.0 Message stored as UID 1\r\n")
        [(_, data)] = self.deliveries.stored
        self.assertTrue(data.endswith(b"\r\n" + first + second), data)
        self.assertFalse(s.closed)
        self.assertEqual(s.code(b"NOOP"), 250)

    def test_chunk_split_across_reads(self) -> None:
        """
        A chunk that arrives in pieces, with the next command in the same
        read as its end, is counted exactly.
        """
        s = self.session()
        self.transaction(s)
        body = b"Subject: x\r\n\r\nMAIL FROM:<evil@x>\r\n"
        wire = b"BDAT %d LAST\r\n" % len(body) + body + b"NOOP\r\n"
        for byte in range(len(wire)):
            s.protocol.dataReceived(wire[byte : byte + 1])
        self.assertEqual(
            s.take(), b"250 2.0.0 Message stored as UID 1\r\n250 2.0.0 OK\r\n"
        )
        self.assertTrue(self.deliveries.stored[0][1].endswith(b"\r\n" + body))

    def test_bdat_0_last(self) -> None:
        """
        C{BDAT 0 LAST} ends a message sent in earlier chunks.
        """
        s = self.session()
        self.transaction(s)
        s.protocol.dataReceived(b"BDAT 5\r\nhello")
        s.take()
        self.assertEqual(
            s.send(b"BDAT 0 LAST"), b"250 2.0.0 Message stored as UID 1\r\n"
        )
        self.assertTrue(self.deliveries.stored[0][1].endswith(b"\r\nhello"))

    def test_refused_chunk_is_not_read_as_commands(self) -> None:
        """
        A BDAT without a transaction gets 503, and its bytes are read and
        dropped: none of them runs as a command.
        """
        s = self.session()
        s.send(b"EHLO client.test")
        chunk = b"MAIL FROM:<x@y>\r\nRCPT TO:<alice@example.test>\r\nQUIT\r\n"
        s.protocol.dataReceived(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        reply = s.take()
        self.assertEqual(reply.splitlines(), [reply.splitlines()[0]])
        self.assertTrue(reply.startswith(b"503 5.5.1 "), reply)
        self.assertFalse(s.closed)
        self.assertIsNone(s.protocol._from)
        self.assertEqual(self.deliveries.stored, [])

    def test_too_big(self) -> None:
        """
        A message over the size limit in chunks gets 552 at the chunk that
        passes it, all its bytes are still read, and nothing is stored.
        """
        s = self.session(max_message_size=10)
        self.transaction(s)
        s.protocol.dataReceived(b"BDAT 8\r\n12345678")
        self.assertTrue(s.take().startswith(b"250 "))
        s.protocol.dataReceived(b"BDAT 8 LAST\r\nQUIT\r\n78")
        self.assertTrue(s.take().startswith(b"552 5.3.4 "))
        self.assertFalse(s.closed)
        self.assertEqual(self.deliveries.stored, [])
        self.assertEqual(s.code(b"NOOP"), 250)

    def test_bad_bdat_closes(self) -> None:
        """
        A BDAT whose size cannot be read gets 501 and the connection is
        closed: what follows cannot be told apart from message bytes.
        """
        s = self.session()
        self.transaction(s)
        reply = s.send(b"BDAT lots", b"RSET")
        self.assertTrue(reply.startswith(b"501 5.5.4 "), reply)
        self.assertEqual(len(reply.splitlines()), 1)
        self.assertTrue(s.closed)

    def test_data_after_bdat(self) -> None:
        """
        DATA in the middle of a BDAT transaction is refused (RFC 3030); RSET
        ends the transaction.
        """
        s = self.session()
        self.transaction(s)
        s.protocol.dataReceived(b"BDAT 3\r\nabc")
        s.take()
        self.assertEqual(s.code(b"DATA"), 503)
        self.assertEqual(s.code(b"RSET"), 250)
        s.protocol.dataReceived(b"BDAT 1 LAST\r\nx")
        self.assertTrue(s.take().startswith(b"503 "))
        self.assertEqual(self.deliveries.stored, [])
