"""
Tests for L{twisted_netlab.mail.lab.imap.server}: the real C{IMAP4Server}
conversation, driven over in-memory transports.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from typing import Any

from twisted.internet.interfaces import ISSLTransport, ITLSTransport
from twisted.internet.testing import StringTransport
from twisted.mail import imap4
from twisted.test import iosim
from zope.interface import directlyProvides, implementer

from tests.mail.lab.imaptesting import (
    MULTIPART,
    PASSWORD,
    SIMPLE,
    USER,
    ServerFixture,
)
from twisted_netlab.mail.lab.imap.account import LabRealm
from twisted_netlab.mail.lab.imap.server import LabIMAPFactory


@implementer(ITLSTransport)
class TLSStringTransport(StringTransport):  # type: ignore[misc]
    """
    A L{StringTransport} that can start TLS: it records the context and
    then claims to be an SSL transport.
    """

    tls_context: object | None = None

    def startTLS(self, contextFactory: object) -> None:
        self.tls_context = contextFactory
        directlyProvides(self, ISSLTransport, ITLSTransport)


SERVER_TLS = object()


def capabilities(response: bytes) -> set[bytes]:
    match = re.search(rb"CAPABILITY ([^\]\r]*)", response)
    assert match is not None, response
    return set(match.group(1).split())


class STARTTLSPolicyTests(ServerFixture):
    """
    With STARTTLS configured and plaintext not allowed, logging in needs TLS.
    """

    tls = SERVER_TLS
    allow_plaintext_auth = False

    def connect(self) -> Any:
        server = self.factory.buildProtocol(None)
        transport = TLSStringTransport()
        server.makeConnection(transport)
        self.addCleanup(self._disconnect, server, transport)
        return server, transport

    def test_greeting_before_tls(self) -> None:
        """
        Before TLS the server offers STARTTLS and says LOGINDISABLED, with no
        AUTH= mechanism.
        """
        caps = capabilities(self.greeting)
        self.assertIn(b"STARTTLS", caps)
        self.assertIn(b"LOGINDISABLED", caps)
        self.assertFalse([c for c in caps if c.startswith(b"AUTH=")])
        self.assertEqual(capabilities(self.command(b"a CAPABILITY")), caps)

    def test_login_refused_before_tls(self) -> None:
        """
        LOGIN with the right password is refused before TLS, and the session
        stays unauthenticated.
        """
        response = self.command(b'a LOGIN "' + USER.encode() + b'" "' + PASSWORD + b'"')
        self.assertEqual(
            response, b"a NO [PRIVACYREQUIRED] LOGIN is disabled until STARTTLS\r\n"
        )
        self.assertIn(b"b BAD", self.command(b"b SELECT INBOX"))

    def test_authenticate_refused_before_tls(self) -> None:
        """
        AUTHENTICATE (which Twisted allows any time) is refused before TLS,
        without a challenge.
        """
        response = self.command(b"a AUTHENTICATE PLAIN")
        self.assertEqual(
            response,
            b"a NO [PRIVACYREQUIRED] AUTHENTICATE is disabled until STARTTLS\r\n",
        )
        self.assertEqual(self.server.state, "unauth")

    def test_starttls_then_login(self) -> None:
        """
        After STARTTLS the capabilities offer AUTH=PLAIN and AUTH=LOGIN, no
        STARTTLS or LOGINDISABLED, and LOGIN succeeds.
        """
        self.assertEqual(
            self.command(b"a STARTTLS"), b"a OK Begin TLS negotiation now\r\n"
        )
        self.assertIs(getattr(self.transport, "tls_context", None), SERVER_TLS)
        caps = capabilities(self.command(b"b CAPABILITY"))
        self.assertIn(b"AUTH=PLAIN", caps)
        self.assertIn(b"AUTH=LOGIN", caps)
        self.assertNotIn(b"STARTTLS", caps)
        self.assertNotIn(b"LOGINDISABLED", caps)
        self.assertIn(b"c NO", self.command(b"c STARTTLS"))
        self.login()

    def test_authenticate_plain_after_tls(self) -> None:
        """
        AUTHENTICATE PLAIN works after STARTTLS; a wrong password is refused.
        """
        self.command(b"a STARTTLS")
        self.assertEqual(self.command(b"b AUTHENTICATE PLAIN"), b"+ \r\n")
        bad = base64.b64encode(b"\0" + USER.encode() + b"\0wrong")
        self.assertIn(b"b NO Authentication failed", self.send(bad + b"\r\n"))
        self.command(b"c AUTHENTICATE PLAIN")
        good = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD)
        self.assertEqual(
            self.send(good + b"\r\n"), b"c OK Authentication successful\r\n"
        )
        self.assertEqual(self.server.state, "auth")

    def test_commands_pipelined_after_starttls_dropped(self) -> None:
        """
        Commands sent in the same packet after STARTTLS, in plaintext, are
        discarded, not run inside the TLS session.
        """
        response = self.send(
            b"a STARTTLS\r\nb LOGIN " + USER.encode() + b" " + PASSWORD + b"\r\n"
        )
        self.assertEqual(response, b"a OK Begin TLS negotiation now\r\n")
        self.assertEqual(self.server.state, "unauth")


class NoTLSPolicyTests(ServerFixture):
    """
    Without TLS configured and without plaintext allowed, nobody can log in
    (Twisted's own server would allow LOGIN here).
    """

    tls = None
    allow_plaintext_auth = False

    def test_login_disabled(self) -> None:
        """
        LOGINDISABLED is advertised, no STARTTLS, and LOGIN is refused.
        """
        caps = capabilities(self.greeting)
        self.assertIn(b"LOGINDISABLED", caps)
        self.assertNotIn(b"STARTTLS", caps)
        self.assertIn(
            b"a NO [PRIVACYREQUIRED]", self.command(b"a LOGIN " + USER.encode() + b" x")
        )
        self.assertIn(b"b NO TLS not available", self.command(b"b STARTTLS"))


class ImplicitTLSPolicyTests(ServerFixture):
    """
    Behind implicit TLS, logging in is allowed at once.
    """

    tls = None
    allow_plaintext_auth = False
    implicit_tls = True

    def test_login_allowed(self) -> None:
        """
        No LOGINDISABLED or STARTTLS; AUTH=PLAIN is offered and LOGIN works.
        """
        caps = capabilities(self.greeting)
        self.assertNotIn(b"LOGINDISABLED", caps)
        self.assertNotIn(b"STARTTLS", caps)
        self.assertIn(b"AUTH=PLAIN", caps)
        self.login()


class PlaintextAllowedTests(ServerFixture):
    """
    With C{allow_plaintext_auth}, LOGIN works without TLS.
    """

    def test_login(self) -> None:
        """
        A right password logs in; a wrong one gets NO.
        """
        self.assertIn(b"AUTH=PLAIN", capabilities(self.greeting))
        self.assertEqual(
            self.command(b"a LOGIN " + USER.encode() + b" wrong"),
            b"a NO LOGIN failed\r\n",
        )
        self.login()


def listing(root: Any) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, f), root)
        for d, dirs, files in os.walk(root)
        for f in dirs + files
    )


class MailboxNameTests(ServerFixture):
    """
    Mailbox names can never leave the user's Maildir.
    """

    BAD_NAMES = [
        b'"../x"',
        b'"a/b"',
        b'"/etc/passwd"',
        b"..",
        b'"a..b"',
        b'".hidden"',
        b"&Jjo",
        b"&AGE-",
        b"&Jjo!-",
        b'"caf\xc3\xa9"',
    ]

    def test_bad_names_refused_everywhere(self) -> None:
        """
        Every command taking a mailbox name answers NO to names with C{/},
        C{..}, empty levels or malformed modified UTF-7, and nothing is
        created anywhere.
        """
        self.login()
        self.command(b"a CREATE Good")
        before = listing(self.root)
        commands = [
            b"CREATE %s",
            b"DELETE %s",
            b"RENAME Good %s",
            b"RENAME %s Other",
            b"SUBSCRIBE %s",
            b"STATUS %s (MESSAGES)",
            b"EXAMINE %s",
            b"SELECT %s",
            b"APPEND %s {5}",
        ]
        for name in self.BAD_NAMES:
            for command in commands:
                response = self.command(b"t " + command % name)
                self.assertTrue(
                    response.startswith(b"t NO "), (command % name, response)
                )
        self.command(b"s SELECT INBOX")
        self.store.deliver(USER, SIMPLE)
        self.command(b"n NOOP")
        for name in self.BAD_NAMES:
            response = self.command(b"t COPY 1 " + name)
            self.assertTrue(response.startswith(b"t NO "), (name, response))
        self.assertEqual(
            listing(self.root),
            [
                p
                for p in listing(self.root)
                if p in before or "/new/" in p or "/cur/" in p or "uidlist" in p
            ],
        )
        self.assertEqual(self.store.mailboxes(USER), ["INBOX", "Good"])

    def test_bad_name_as_literal(self) -> None:
        """
        A bad name sent as a literal is refused too.
        """
        self.login()
        self.assertEqual(
            self.command(b"a CREATE {4}"), b"+ Ready for 4 octets of text\r\n"
        )
        self.assertTrue(self.command(b"../x").startswith(b"a NO Illegal mailbox name"))
        self.assertEqual(self.store.mailboxes(USER), ["INBOX"])

    def test_non_ascii_names(self) -> None:
        """
        Canonical modified UTF-7 names work, stored as such on disk.
        """
        self.login()
        self.assertEqual(
            self.command(b"a CREATE Entw&APw-rfe"), b"a OK Mailbox created\r\n"
        )
        self.assertIn(b'"Entw&APw-rfe"', self.command(b'b LIST "" *'))
        self.assertTrue((self.root / USER / ".Entw&APw-rfe" / "cur").is_dir())

    def test_list_patterns_do_not_escape(self) -> None:
        """
        LIST patterns with C{..} or C{/} match nothing outside the Maildir.
        """
        self.login()
        for pattern in [b'"../*"', b'"/*"', b'"*/../*"']:
            self.assertEqual(
                self.command(b'a LIST "" ' + pattern), b"a OK LIST completed\r\n"
            )


class BoundsTests(ServerFixture):
    """
    Bad input gets a protocol error or a closed connection; the server stays
    usable and nothing half-written becomes visible.
    """

    def assertStillServing(self) -> None:
        self.assertEqual(self.command(b"z NOOP"), b"z OK NOOP completed\r\n")

    def test_negative_literals(self) -> None:
        """
        Negative literal sizes are refused with BAD, no continuation.
        """
        self.assertEqual(
            self.command(b"a LOGIN {-5}"),
            b"a BAD Illegal syntax: Negative literal size\r\n",
        )
        self.login()
        self.assertIn(b"b BAD", self.command(b"b APPEND INBOX {-1}"))
        self.assertIn(b"c BAD", self.command(b"c APPEND INBOX {abc}"))
        self.assertIn(b"d BAD", self.command(b"d APPEND INBOX {5"))
        self.assertStillServing()
        self.assertEqual(self.store.messages(USER), [])

    def test_oversize_append_refused_before_data(self) -> None:
        """
        An APPEND literal over the size limit gets NO [TOOBIG] and no
        continuation request.
        """
        self.login()
        response = self.command(b"a APPEND INBOX {10001}")
        self.assertNotIn(b"+", response)
        self.assertIn(b"[TOOBIG]", response)
        self.assertStillServing()

    def test_oversize_string_literal(self) -> None:
        """
        A string literal over Twisted's 4096 bytes is refused.
        """
        self.assertIn(
            b"a BAD Illegal syntax: Literal too long", self.command(b"a LOGIN {5000}")
        )
        self.assertStillServing()

    def test_oversize_line_closes(self) -> None:
        """
        A line longer than the limit gets a BYE and the connection closes.
        """
        response = self.send(b"a NOOP " + b"x" * 3000)
        self.assertEqual(response, b"* BYE Line too long: the limit is 2048 bytes\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_garbage(self) -> None:
        """
        Garbage commands, 8-bit bytes and empty lines get BAD, and the
        connection goes on.
        """
        self.assertEqual(self.command(b"\xff\xfe \x00\x01"), b"* BAD Invalid tag\r\n")
        self.assertEqual(self.command(b"a FOO bar"), b"a BAD Unsupported command\r\n")
        self.assertEqual(self.command(b"a"), b"a BAD Missing command\r\n")
        self.assertEqual(self.command(b""), b"* BAD Null command\r\n")
        self.assertEqual(self.command(b"a __CLASS__"), b"a BAD Unsupported command\r\n")
        self.assertStillServing()
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_commands_out_of_state(self) -> None:
        """
        Commands not allowed in the current state get BAD.
        """
        self.assertEqual(
            self.command(b"a SELECT INBOX"), b"a BAD Unsupported command\r\n"
        )
        self.assertEqual(
            self.command(b"b FETCH 1 FLAGS"), b"b BAD Unsupported command\r\n"
        )
        self.login()
        self.assertEqual(
            self.command(b"c FETCH 1 FLAGS"), b"c BAD Unsupported command\r\n"
        )
        self.assertEqual(self.command(b"d EXPUNGE"), b"d BAD Unsupported command\r\n")
        self.assertIn(b"e BAD", self.command(b"e LOGIN a b"))
        self.assertStillServing()

    def test_bad_fetch_and_search(self) -> None:
        """
        Malformed FETCH items and search keys get BAD without an error logged.
        """
        self.store.deliver(USER, SIMPLE)
        self.select()
        self.assertIn(b"a BAD", self.command(b"a FETCH 1 (BODY[XYZ])"))
        self.assertIn(b"b BAD", self.command(b"b FETCH 1 (BODY[]<1>)"))
        self.assertIn(b"c BAD", self.command(b"c SEARCH FOO"))
        self.assertIn(b"d BAD", self.command(b"d SEARCH ((("))
        self.assertIn(b"e BAD", self.command(b"e FETCH x:y FLAGS"))
        self.assertIn(b"f BAD", self.command(b"f STORE 1 FOO (\\Seen)"))
        self.assertIn(b"g NO [BADCHARSET", self.command(b"g SEARCH CHARSET KOI8-R ALL"))
        self.assertStillServing()
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_fuzzer_crashes(self) -> None:
        """
        The inputs the parser fuzzer found crashing the server (a sequence
        set with a non-ASCII byte in SEARCH and UID SEARCH, a STATUS list
        with mismatched parentheses or a nested list) get BAD, with no error
        logged.
        """
        self.store.deliver(USER, SIMPLE)
        self.select()
        self.assertIn(b"a BAD", self.command(b"a SEARCH 6\xff"))
        self.assertIn(b"b BAD", self.command(b"b UID SEARCH UID 1:\xff"))
        self.assertIn(b"c BAD", self.command(b"c STATUS INBOX (()"))
        self.assertIn(b"d BAD", self.command(b"d STATUS INBOX (BODY[])"))
        # Not tags: refused untagged, never run ("* IDLE" started an IDLE).
        for bad in (b"* IDLE", b"+ NOOP", b"t( NOOP", b"\xff NOOP"):
            self.assertEqual(self.command(bad), b"* BAD Invalid tag\r\n")
        self.assertIn(b"e OK", self.command(b"e NOOP"))
        self.assertStillServing()
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_disconnect_mid_append(self) -> None:
        """
        A client that disconnects in the middle of an APPEND literal leaves
        nothing behind: no message, no temporary file; the server serves the
        next connection.
        """
        self.select()
        self.assertEqual(
            self.command(b"a APPEND INBOX {100}"), b"+ Ready for 100 octets of data\r\n"
        )
        self.send(b"Subject: half\r\n\r\n" + b"x" * 30)
        from twisted.internet.error import ConnectionLost
        from twisted.python.failure import Failure

        self.server.connectionLost(Failure(ConnectionLost()))
        self.transport.disconnecting = True
        self.assertEqual(self.store.messages(USER), [])
        self.assertEqual(os.listdir(self.root / USER / "tmp"), [])
        server, _ = self.connect()
        self.login(server)
        self.assertIn(b"* 0 EXISTS", self.command(b"b SELECT INBOX", server))

    def test_too_many_queued_commands(self) -> None:
        """
        A client piling up commands behind a FETCH that it does not read is
        disconnected instead of growing the queue without bound.
        """
        for _ in range(3):
            self.store.deliver(USER, SIMPLE)
        self.select()
        # Make the FETCH pause at its first write: the client does not read.
        original_write = self.transport.writeSequence

        def pausing_write(data: Any) -> None:
            original_write(data)
            if self.transport.producer is not None:
                self.transport.producer.pauseProducing()

        self.transport.writeSequence = pausing_write  # type: ignore[method-assign]
        self.command(b"a FETCH 1:* BODY.PEEK[]")
        self.assertIsNotNone(self.server.blocked)
        self.send(b"b NOOP\r\n" * 1001)
        self.assertIn(b"* BYE Too many commands sent ahead", self.transport.value())
        self.assertTrue(self.transport.disconnecting)

    def test_login_timeout(self) -> None:
        """
        A connection idle for the login timeout gets a BYE and is closed.
        """
        self.clock.advance(self.factory.login_timeout - 1)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1)
        self.assertIn(b"* BYE", self.transport.value())
        self.assertTrue(self.transport.disconnecting)

    def test_idle_timeout_after_login(self) -> None:
        """
        After login, the longer idle timeout applies.
        """
        self.login()
        self.clock.advance(self.factory.login_timeout + 1)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(self.factory.idle_timeout)
        self.assertTrue(self.transport.disconnecting)


class SelectTests(ServerFixture):
    """
    SELECT and EXAMINE.
    """

    def test_select_response(self) -> None:
        """
        SELECT reports FLAGS, PERMANENTFLAGS (with C{\\*}: keywords are
        kept), EXISTS, RECENT, UNSEEN, UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ.
        """
        self.store.deliver(USER, SIMPLE)
        self.store.deliver(USER, SIMPLE)
        self.store.folder(USER).set_flags({1: ["\\Seen"]})
        response = self.select()
        validity = self.store.folder(USER).uidvalidity
        self.assertEqual(
            response,
            b"* FLAGS (\\Draft \\Flagged \\Answered \\Seen \\Deleted)\r\n"
            b"* OK [PERMANENTFLAGS (\\Draft \\Flagged \\Answered \\Seen \\Deleted"
            b" \\*)] Flags kept\r\n"
            b"* 2 EXISTS\r\n"
            b"* 1 RECENT\r\n"
            b"* OK [UNSEEN 2] First unseen\r\n"
            b"* OK [UIDVALIDITY %d] UIDs valid\r\n"
            b"* OK [UIDNEXT 3] Predicted next UID\r\n"
            b"* OK [HIGHESTMODSEQ %d] Highest\r\n"
            b"s1 OK [READ-WRITE] SELECT completed\r\n"
            % (validity, self.store.folder(USER).highest_modseq()),
        )

    def test_recent_once(self) -> None:
        """
        A message is \\Recent in the first session that selects the mailbox
        read-write, and not in the next one; EXAMINE does not claim it.
        """
        self.store.deliver(USER, SIMPLE)
        examiner, _ = self.connect()
        self.login(examiner)
        self.assertIn(b"* 1 RECENT", self.command(b"e EXAMINE INBOX", examiner))
        self.assertIn(b"* 1 RECENT", self.select())
        self.assertIn(b"FLAGS (\\Recent)", self.command(b"f FETCH 1 FLAGS"))
        other, _ = self.connect()
        self.assertIn(b"* 0 RECENT", self.select(server=other))

    def test_examine_is_read_only(self) -> None:
        """
        EXAMINE gives a read-only mailbox: STORE, EXPUNGE and implicit
        \\Seen change nothing.
        """
        self.store.deliver(USER, SIMPLE)
        self.login()
        self.assertIn(b"[READ-ONLY]", self.command(b"a EXAMINE INBOX"))
        self.assertIn(b"b NO", self.command(b"b STORE 1 +FLAGS (\\Deleted)"))
        self.assertIn(b"c NO", self.command(b"c EXPUNGE"))
        response = self.command(b"d FETCH 1 BODY[]")
        self.assertNotIn(b"FLAGS", response)
        self.assertEqual(self.store.folder(USER).entry(1).flags, ())
        self.assertEqual(os.listdir(self.root / USER / "cur"), [])

    def test_select_missing(self) -> None:
        """
        Selecting a missing mailbox answers NO [NONEXISTENT]; creating one
        that exists NO [ALREADYEXISTS] (RFC 9051's response codes).
        """
        self.login()
        self.assertEqual(
            self.command(b"a SELECT Nope"), b"a NO [NONEXISTENT] No such mailbox\r\n"
        )
        self.command(b"b CREATE Here")
        self.assertIn(b"c NO [ALREADYEXISTS]", self.command(b"c CREATE Here"))
        self.assertIn(b"d NO [NONEXISTENT]", self.command(b"d DELETE Nope"))


class FetchTests(ServerFixture):
    """
    FETCH: byte-exact bodies, sections, partial fetches, \\Seen.
    """

    def setUp(self) -> None:
        super().setUp()
        self.store.deliver(USER, MULTIPART)
        self.store.deliver(USER, SIMPLE)
        self.select()

    def fetch(self, line: bytes) -> bytes:
        response = self.command(b"f FETCH " + line)
        self.assertTrue(response.endswith(b"f OK FETCH completed\r\n"), response)
        return response[: -len(b"f OK FETCH completed\r\n")]

    def test_body_peek_exact(self) -> None:
        """
        BODY.PEEK[] is the stored message byte for byte and sets no flag.
        """
        self.assertEqual(
            self.fetch(b"1 BODY.PEEK[]"),
            b"* 1 FETCH (BODY[] {%d}\r\n%s)\r\n" % (len(MULTIPART), MULTIPART),
        )
        self.assertEqual(self.store.folder(USER).entry(1).flags, ())

    def test_body_sets_seen(self) -> None:
        """
        BODY[] on a read-write mailbox sets \\Seen (persisted) and the
        response says so with FLAGS.
        """
        response = self.fetch(b"2 BODY[]")
        self.assertEqual(
            response,
            b"* 2 FETCH (BODY[] {%d}\r\n%s FLAGS (\\Seen \\Recent))\r\n"
            % (len(SIMPLE), SIMPLE),
        )
        self.assertEqual(self.store.folder(USER).entry(2).flags, ("\\Seen",))
        self.assertNotIn(b"FLAGS", self.fetch(b"2 BODY[TEXT]"))

    def test_partial(self) -> None:
        """
        C{BODY[]<start.length>} sends that slice, labelled C{<start>}; past
        the end it is empty.
        """
        self.assertEqual(
            self.fetch(b"2 BODY.PEEK[]<6.10>"),
            b"* 2 FETCH (BODY[]<6> {10}\r\n%s)\r\n" % (SIMPLE[6:16],),
        )
        self.assertEqual(
            self.fetch(b"2 BODY.PEEK[TEXT]<5.100>"),
            b"* 2 FETCH (BODY[TEXT]<5> {7}\r\ntext.\r\n)\r\n",
        )
        self.assertEqual(
            self.fetch(b"2 BODY.PEEK[]<5000.10>"),
            b"* 2 FETCH (BODY[]<5000> {0}\r\n)\r\n",
        )

    def test_sections(self) -> None:
        """
        Sections of parts, of nested multiparts and of an attached message.
        """
        expected = {
            b"HEADER": MULTIPART[: MULTIPART.index(b"\r\n\r\n") + 4],
            b"TEXT": MULTIPART[MULTIPART.index(b"\r\n\r\n") + 4 :],
            b"1": b"Hello =C3=A9\r\nsecond line",
            b"1.MIME": b"Content-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n\r\n",
            b"2.1": b"plain",
            b"2.2": b"<p>html</p>",
            b"2.2.MIME": b"Content-Type: text/html\r\n\r\n",
            b"3": b"From: dave@example.test\r\nSubject: forwarded\r\n\r\ninner body",
            b"3.HEADER": b"From: dave@example.test\r\nSubject: forwarded\r\n\r\n",
            b"3.TEXT": b"inner body",
            b"3.1": b"inner body",
            b"4": b"AAECAw==",
            b"HEADER.FIELDS (SUBJECT MESSAGE-ID)": b"Subject: a multipart\r\n"
            b"Message-ID: <m1@example.test>\r\n\r\n",
        }
        for section, data in expected.items():
            self.assertEqual(
                self.fetch(b"1 BODY.PEEK[" + section + b"]"),
                b"* 1 FETCH (BODY[%s] {%d}\r\n%s)\r\n" % (section, len(data), data),
            )
        not_fields = self.fetch(b"1 BODY.PEEK[HEADER.FIELDS.NOT (FROM TO CC DATE)]")
        self.assertIn(b"Subject: a multipart\r\n", not_fields)
        self.assertNotIn(b"From:", not_fields)
        self.assertEqual(self.fetch(b"1 BODY.PEEK[9]"), b"* 1 FETCH (BODY[9] NIL)\r\n")

    def test_bodystructure_and_envelope(self) -> None:
        """
        BODYSTRUCTURE and ENVELOPE of a nested multipart message.
        """
        response = self.fetch(b"1 (ENVELOPE BODYSTRUCTURE)")
        self.assertEqual(
            response,
            b'* 1 FETCH (ENVELOPE ("Mon, 02 Mar 2026 10:00:00 +0100" "a multipart" '
            b'(("Bob Example" NIL "bob" "example.test")) '
            b'(("Bob Example" NIL "bob" "example.test")) '
            b'(("Bob Example" NIL "bob" "example.test")) '
            b'(("Alice" NIL "alice" "netlab.test") (NIL NIL "carol" "example.test")) '
            b'(("=?utf-8?q?J=C3=B6rg?=" NIL "joerg" "example.test")) NIL NIL '
            b'"<m1@example.test>") '
            b'BODYSTRUCTURE (("text" "plain" ("charset" "utf-8") NIL NIL '
            b'"quoted-printable" 25 2 NIL NIL NIL NIL)'
            b'(("text" "plain" NIL NIL NIL "7bit" 5 1 NIL NIL NIL NIL)'
            b'("text" "html" NIL NIL NIL "7bit" 11 1 NIL NIL NIL NIL) '
            b'"alternative" ("boundary" "inner") NIL NIL NIL)'
            b'("message" "rfc822" NIL NIL NIL "7bit" 57 '
            b'(NIL "forwarded" ((NIL NIL "dave" "example.test")) '
            b'((NIL NIL "dave" "example.test")) ((NIL NIL "dave" "example.test")) '
            b"NIL NIL NIL NIL NIL) "
            b'("text" "plain" NIL NIL NIL "7bit" 10 1 NIL NIL NIL NIL) 4 NIL '
            b'("attachment" ("filename" "fwd.eml")) NIL NIL)'
            b'("application" "octet-stream" ("name" "data.bin") NIL NIL "base64" 8 '
            b'NIL ("attachment" ("filename" "data.bin")) NIL NIL) '
            b'"mixed" ("boundary" "outer") NIL NIL NIL))\r\n',
        )
        self.assertEqual(
            self.fetch(b"2 BODY"),
            b'* 2 FETCH (BODY ("text" "plain" NIL NIL NIL "7bit" 12 1))\r\n',
        )

    def test_fast_items_and_uid(self) -> None:
        """
        UID FETCH includes the UID; sizes and internal dates are reported.
        """
        response = self.command(b"u UID FETCH 1:* (FLAGS RFC822.SIZE)")
        self.assertEqual(
            response,
            b"* 1 FETCH (UID 1 FLAGS (\\Recent) RFC822.SIZE %d)\r\n"
            b"* 2 FETCH (UID 2 FLAGS (\\Recent) RFC822.SIZE %d)\r\n"
            b"u OK FETCH completed\r\n" % (len(MULTIPART), len(SIMPLE)),
        )
        self.assertRegex(
            self.fetch(b"1 INTERNALDATE"),
            rb"^\* 1 FETCH \(INTERNALDATE "
            rb'"\d\d-[A-Z][a-z]{2}-\d{4} \d\d:\d\d:\d\d \+0000"\)',
        )

    def test_uid_range_beyond_last(self) -> None:
        """
        C{UID FETCH n:*} with n above the highest UID still returns the last
        message (RFC 3501); a huge UID range is no problem.
        """
        self.assertEqual(
            self.command(b"u UID FETCH 50:* (FLAGS)"),
            b"* 2 FETCH (UID 2 FLAGS (\\Recent))\r\nu OK FETCH completed\r\n",
        )
        response = self.command(b"v UID FETCH 1:4294967295 (UID)")
        self.assertEqual(response.count(b"* "), 2)

    def test_lf_message_served_with_crlf(self) -> None:
        """
        A message stored with bare LFs by another program is served with
        CRLFs, and its RFC822.SIZE counts them.
        """
        self.store.deliver(USER, b"Subject: lf\n\nline\n")
        self.command(b"n NOOP")
        self.assertEqual(
            self.fetch(b"3 (RFC822.SIZE BODY.PEEK[])"),
            b"* 3 FETCH (RFC822.SIZE 21 BODY[] {21}\r\n"
            b"Subject: lf\r\n\r\nline\r\n)\r\n",
        )

    def test_gone_message_skipped(self) -> None:
        """
        A message whose file another program deleted is left out of the
        FETCH, which still completes.
        """
        for name in os.listdir(self.root / USER / "cur"):
            if (self.root / USER / "cur" / name).read_bytes() == SIMPLE:
                os.unlink(self.root / USER / "cur" / name)
        self.assertEqual(self.fetch(b"2 BODY.PEEK[]"), b"")
        self.assertIn(b"* 2 EXPUNGE", self.command(b"n NOOP"))

    def test_rfc822_items(self) -> None:
        """
        RFC822, RFC822.HEADER and RFC822.TEXT; RFC822 sets \\Seen.
        """
        header, _, text = SIMPLE.partition(b"\r\n\r\n")
        self.assertEqual(
            self.fetch(b"2 (RFC822.HEADER RFC822.TEXT)"),
            b"* 2 FETCH (RFC822.HEADER {%d}\r\n%s\r\n\r\n RFC822.TEXT {%d}\r\n%s"
            b" FLAGS (\\Seen \\Recent))\r\n"
            % (len(header) + 4, header, len(text), text),
        )


class StoreExpungeCopyTests(ServerFixture):
    """
    STORE, EXPUNGE, COPY, APPEND and SEARCH.
    """

    def setUp(self) -> None:
        super().setUp()
        for body in (SIMPLE, MULTIPART, SIMPLE):
            self.store.deliver(USER, body)
        self.select()

    def test_store_flags(self) -> None:
        """
        +FLAGS, -FLAGS, FLAGS and .SILENT; flags persist in the file names.
        """
        self.assertEqual(
            self.command(b"a STORE 1:2 +FLAGS (\\Flagged \\Seen)"),
            b"* 1 FETCH (FLAGS (\\Flagged \\Seen \\Recent))\r\n"
            b"* 2 FETCH (FLAGS (\\Flagged \\Seen \\Recent))\r\n"
            b"a OK STORE completed\r\n",
        )
        self.assertEqual(
            self.command(b"b UID STORE 2 -FLAGS (\\Flagged)"),
            b"* 2 FETCH (FLAGS (\\Seen \\Recent) UID 2)\r\nb OK STORE completed\r\n",
        )
        self.assertEqual(
            self.command(b"c STORE 3 FLAGS.SILENT (\\Answered)"),
            b"c OK STORE completed\r\n",
        )
        folder = self.store.folder(USER)
        self.assertEqual(
            [folder.entry(u).flags for u in (1, 2, 3)],
            [("\\Flagged", "\\Seen"), ("\\Seen",), ("\\Answered",)],
        )
        names = sorted(os.listdir(self.root / USER / "cur"))
        self.assertEqual(sorted(n.rsplit(",", 1)[1] for n in names), ["FS", "R", "S"])

    def test_expunge(self) -> None:
        """
        EXPUNGE removes \\Deleted messages with correct sequence numbers; the
        others keep their UIDs.
        """
        self.command(b"a STORE 1:2 +FLAGS.SILENT (\\Deleted)")
        self.assertEqual(
            self.command(b"b EXPUNGE"),
            b"* 1 EXPUNGE\r\n* 1 EXPUNGE\r\nb OK EXPUNGE completed\r\n",
        )
        self.assertEqual(
            self.command(b"c FETCH 1:* UID"),
            b"* 1 FETCH (UID 3)\r\nc OK FETCH completed\r\n",
        )
        self.assertEqual(self.store.messages(USER), [SIMPLE])

    def test_close_expunges(self) -> None:
        """
        CLOSE removes \\Deleted messages silently and leaves the selected
        state; after EXAMINE it removes nothing.
        """
        self.command(b"a STORE 1 +FLAGS.SILENT (\\Deleted)")
        self.assertEqual(self.command(b"b CLOSE"), b"b OK CLOSE completed\r\n")
        self.assertEqual(self.server.state, "auth")
        self.assertEqual(self.store.folder(USER).uids(), [2, 3])
        self.store.folder(USER).set_flags({2: ["\\Deleted"]})
        self.command(b"c EXAMINE INBOX")
        self.assertEqual(self.command(b"d CLOSE"), b"d OK CLOSE completed\r\n")
        self.assertEqual(self.store.folder(USER).uids(), [2, 3])

    def test_expunge_by_other_session_told_at_noop(self) -> None:
        """
        Another session's EXPUNGE is reported at this session's next NOOP,
        not in the middle of other commands.
        """
        other, _ = self.connect()
        self.select(server=other)
        self.transport.clear()
        self.command(b"a STORE 2 +FLAGS.SILENT (\\Deleted)", other)
        self.assertEqual(
            self.transport.value(), b"* 2 FETCH (FLAGS (\\Deleted \\Recent))\r\n"
        )
        self.assertEqual(
            self.command(b"b EXPUNGE", other),
            b"* 2 EXPUNGE\r\nb OK EXPUNGE completed\r\n",
        )
        self.assertEqual(
            self.command(b"c FETCH 1:* UID"),
            b"* 1 FETCH (UID 1)\r\n* 3 FETCH (UID 3)\r\nc OK FETCH completed\r\n",
        )
        self.assertEqual(
            self.command(b"d NOOP"), b"* 2 EXPUNGE\r\nd OK NOOP completed\r\n"
        )
        self.assertEqual(
            self.command(b"e FETCH 2 UID"),
            b"* 2 FETCH (UID 3)\r\ne OK FETCH completed\r\n",
        )

    def test_copy(self) -> None:
        """
        COPY keeps the bytes and the flags and names the new UIDs (UIDPLUS's
        COPYUID); a missing target gets NO [TRYCREATE].
        """
        self.command(b"a CREATE Archive")
        validity = self.store.folder(USER, "Archive").uidvalidity
        self.command(b"b STORE 2 +FLAGS.SILENT (\\Flagged)")
        self.assertEqual(
            self.command(b"c COPY 2:3 Archive"),
            b"c OK [COPYUID %d 2:3 1:2] COPY completed\r\n" % (validity,),
        )
        self.assertEqual(self.store.messages(USER, "Archive"), [MULTIPART, SIMPLE])
        self.assertEqual(
            self.store.folder(USER, "Archive").entry(1).flags, ("\\Flagged",)
        )
        self.assertEqual(
            self.command(b"d UID COPY 1 Archive"),
            b"d OK [COPYUID %d 1 3] COPY completed\r\n" % (validity,),
        )
        self.assertIn(b"e NO [TRYCREATE]", self.command(b"e COPY 1 Missing"))

    def test_append(self) -> None:
        """
        APPEND stores the literal byte for byte with its flags and date; the
        selected mailbox reports the new message (not \\Recent: it was
        stored with flags, in C{cur/}).
        """
        data = b"Subject: appended\r\n\r\nhi\r\n"
        self.assertEqual(
            self.command(
                b'a APPEND INBOX (\\Seen \\Draft) "05-Jan-2026 12:30:00 +0100" {%d}'
                % len(data)
            ),
            b"+ Ready for %d octets of data\r\n" % len(data),
        )
        self.assertEqual(
            self.send(data + b"\r\n"),
            b"* 4 EXISTS\r\n* 3 RECENT\r\na OK [APPENDUID %d 4] APPEND completed\r\n"
            % (self.store.folder(USER).uidvalidity,),
        )
        folder = self.store.folder(USER)
        self.assertEqual(folder.read(4), data)
        self.assertEqual(folder.entry(4).flags, ("\\Draft", "\\Seen"))
        self.assertEqual(
            self.command(b"b FETCH 4 INTERNALDATE"),
            b'* 4 FETCH (INTERNALDATE "05-Jan-2026 11:30:00 +0000")\r\n'
            b"b OK FETCH completed\r\n",
        )

    def test_append_elsewhere_and_errors(self) -> None:
        """
        APPEND to another mailbox does not report EXISTS for the selected
        one; a missing mailbox gets NO [TRYCREATE]; a bad date BAD.
        """
        self.command(b"a CREATE Sent")
        self.command(b"b APPEND Sent {3}")
        self.assertEqual(
            self.send(b"x\r\n\r\n"),
            b"b OK [APPENDUID %d 1] APPEND completed\r\n"
            % (self.store.folder(USER, "Sent").uidvalidity,),
        )
        self.assertEqual(self.store.messages(USER, "Sent"), [b"x\r\n"])
        self.assertEqual(
            self.command(b"c APPEND Nope {2}"),
            b"+ Ready for 2 octets of data\r\n",
        )
        self.assertEqual(self.send(b"hi\r\n"), b"c NO [TRYCREATE] No such mailbox\r\n")
        self.command(b'd APPEND INBOX "99-Foo-2026 12:30:00 +0100" {2}')
        self.assertIn(b"d BAD APPEND failed: bad date-time", self.send(b"hi\r\n"))

    def test_search(self) -> None:
        """
        SEARCH and UID SEARCH with flags, headers, text, sizes and logic.
        """
        self.command(b"a STORE 1 +FLAGS.SILENT (\\Seen)")
        cases = {
            b"ALL": b"1 2 3",
            b"SEEN": b"1",
            b"UNSEEN": b"2 3",
            b"SUBJECT multipart": b"2",
            b"FROM bob": b"1 2 3",
            b'CC "j\xc3\xb6rg"': b"2",
            b"TO carol": b"2",
            b"BODY html": b"2",
            b"TEXT Just": b"1 3",
            b"HEADER Message-ID m1@": b"2",
            b"LARGER 500": b"2",
            b"SMALLER 500": b"1 3",
            b"NOT SEEN": b"2 3",
            b"OR SEEN SUBJECT multipart": b"1 2",
            b"(SEEN) 1:2": b"1",
            b"2:*": b"2 3",
            b"UID 3": b"3",
            b"RECENT": b"1 2 3",
            b"SENTON 2-Mar-2026": b"2",
            b"SENTBEFORE 1-Jan-2026": b"",
            b"SINCE 1-Jan-2000": b"1 2 3",
            b"BEFORE 1-Jan-2000": b"",
        }
        for query, expected in cases.items():
            response = self.command(b"s SEARCH " + query)
            self.assertEqual(
                response,
                b"* SEARCH"
                + (b" " + expected if expected else b"")
                + b"\r\ns OK SEARCH completed\r\n",
                query,
            )
        self.command(b"b STORE 1 +FLAGS.SILENT (\\Deleted)")
        self.command(b"c EXPUNGE")
        self.assertEqual(
            self.command(b"d UID SEARCH SUBJECT simple"),
            b"* SEARCH 3\r\nd OK SEARCH completed\r\n",
        )


class MailboxManagementTests(ServerFixture):
    """
    CREATE, DELETE, RENAME, LIST, LSUB, SUBSCRIBE, STATUS, NAMESPACE.
    """

    def setUp(self) -> None:
        super().setUp()
        self.login()

    def test_list(self) -> None:
        """
        LIST with C{*} and C{%}; superiors that are not mailboxes are
        C{\\Noselect}; LIST "" "" gives the delimiter.
        """
        self.command(b"a CREATE Archive.2024")
        self.command(b"b CREATE Sent")
        (self.root / USER / ".Only.Child" / "cur").mkdir(parents=True)
        self.assertEqual(
            self.command(b'c LIST "" *'),
            b'* LIST (\\HasNoChildren) "." "INBOX"\r\n'
            b'* LIST (\\HasChildren) "." "Archive"\r\n'
            b'* LIST (\\HasNoChildren) "." "Archive.2024"\r\n'
            b'* LIST (\\Noselect \\HasChildren) "." "Only"\r\n'
            b'* LIST (\\HasNoChildren) "." "Only.Child"\r\n'
            b'* LIST (\\HasNoChildren \\Sent) "." "Sent"\r\n'
            b"c OK LIST completed\r\n",
        )
        self.assertEqual(
            self.command(b'd LIST "Archive." %'),
            b'* LIST (\\HasNoChildren) "." "Archive.2024"\r\nd OK LIST completed\r\n',
        )
        self.assertEqual(
            self.command(b'e LIST "" ""'),
            b'* LIST (\\Noselect) "." ""\r\ne OK LIST completed\r\n',
        )
        self.assertIn(b'"INBOX"', self.command(b'f LIST "" inbox'))

    def test_create_delete_rename(self) -> None:
        """
        Mailboxes can be created, renamed (with inferiors) and deleted; INBOX
        cannot be deleted or renamed; deleting a parent with children is NO.
        """
        self.assertEqual(
            self.command(b"a CREATE Work.Project"), b"a OK Mailbox created\r\n"
        )
        self.assertIn(b"b NO", self.command(b"b CREATE Work"))
        self.assertIn(b"c NO", self.command(b"c DELETE Work"))
        self.assertIn(b"d NO", self.command(b"d DELETE INBOX"))
        self.assertIn(b"e NO", self.command(b"e RENAME INBOX Other"))
        self.assertEqual(
            self.command(b"f RENAME Work Play"), b"f OK Mailbox renamed\r\n"
        )
        self.assertEqual(self.store.mailboxes(USER), ["INBOX", "Play", "Play.Project"])
        self.assertEqual(
            self.command(b"g DELETE Play.Project"), b"g OK Mailbox deleted\r\n"
        )
        self.assertIn(b"h NO", self.command(b"h DELETE Play.Project"))
        self.assertEqual(
            self.command(b"i CREATE Trailing."), b"i OK Mailbox created\r\n"
        )
        self.assertIn("Trailing", self.store.mailboxes(USER))

    def test_subscriptions(self) -> None:
        """
        LSUB lists subscribed mailboxes only; a missing mailbox cannot be
        subscribed to.
        """
        self.command(b"a CREATE Sent")
        self.command(b"b CREATE Junk")
        self.assertEqual(self.command(b"c SUBSCRIBE Sent"), b"c OK Subscribed\r\n")
        self.assertEqual(
            self.command(b'd LSUB "" *'),
            b'* LSUB (\\HasNoChildren \\Sent) "." "Sent"\r\nd OK LSUB completed\r\n',
        )
        self.command(b"e UNSUBSCRIBE Sent")
        self.assertEqual(self.command(b'f LSUB "" *'), b"f OK LSUB completed\r\n")
        self.assertIn(b"g NO", self.command(b"g SUBSCRIBE Missing"))

    def test_status(self) -> None:
        """
        STATUS counts messages, recent, unseen and tells UIDNEXT/UIDVALIDITY
        without changing anything.
        """
        self.store.deliver(USER, SIMPLE)
        self.store.deliver(USER, SIMPLE)
        self.store.folder(USER).set_flags({1: ["\\Seen"]})
        validity = self.store.folder(USER).uidvalidity
        self.assertEqual(
            self.command(
                b"a STATUS INBOX (MESSAGES RECENT UNSEEN UIDNEXT UIDVALIDITY)"
            ),
            b'* STATUS "INBOX" (MESSAGES 2 RECENT 1 UNSEEN 1 UIDNEXT 3 '
            b"UIDVALIDITY %d)\r\n"
            b"a OK STATUS completed\r\n" % validity,
        )
        self.assertIn(b"b BAD", self.command(b"b STATUS INBOX (FOO)"))
        self.assertIn(b"c NO", self.command(b"c STATUS Nope (MESSAGES)"))
        self.assertEqual(len(os.listdir(self.root / USER / "new")), 1)

    def test_namespace(self) -> None:
        """
        One personal namespace with the C{.} delimiter.
        """
        self.assertEqual(
            self.command(b"a NAMESPACE"),
            b'* NAMESPACE (("" ".")) NIL NIL\r\na OK NAMESPACE command completed\r\n',
        )


class IdleTests(ServerFixture):
    """
    IDLE and the other ways changes reach a session.
    """

    def setUp(self) -> None:
        super().setUp()
        self.store.deliver(USER, SIMPLE)
        self.select()

    def test_idle_push_on_delivery(self) -> None:
        """
        A delivery through the store reaches a session in IDLE at once.
        """
        self.assertEqual(self.command(b"i IDLE"), b"+ idling\r\n")
        self.transport.clear()
        self.store.deliver(USER, MULTIPART)
        self.assertEqual(self.transport.value(), b"* 2 EXISTS\r\n* 2 RECENT\r\n")
        self.assertEqual(self.command(b"DONE"), b"i OK IDLE terminated\r\n")
        self.assertIn(b"FLAGS (\\Recent)", self.command(b"f FETCH 2 FLAGS"))

    def test_idle_sees_other_sessions(self) -> None:
        """
        Flag changes and expunges by another session reach a session in IDLE.
        """
        other, _ = self.connect()
        self.select(server=other)
        self.command(b"i IDLE")
        self.transport.clear()
        self.command(b"a STORE 1 +FLAGS (\\Deleted)", other)
        self.assertEqual(
            self.transport.value(), b"* 1 FETCH (FLAGS (\\Deleted \\Recent))\r\n"
        )
        self.transport.clear()
        self.command(b"b EXPUNGE", other)
        self.assertEqual(self.transport.value(), b"* 1 EXPUNGE\r\n")
        self.assertEqual(self.command(b"done"), b"i OK IDLE terminated\r\n")

    def test_idle_polls_for_other_processes(self) -> None:
        """
        A file dropped into the Maildir by another program reaches a session
        in IDLE at the next poll.
        """
        import mailbox

        self.command(b"i IDLE")
        self.transport.clear()
        mailbox.Maildir(self.root / USER, create=False).add(SIMPLE)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(self.factory.poll_interval)
        self.assertEqual(self.transport.value(), b"* 2 EXISTS\r\n* 2 RECENT\r\n")
        self.command(b"DONE")
        self.assertIsNone(self.server._poll_call)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_recent_claimed_by_one_session(self) -> None:
        """
        A message delivered while two sessions have the mailbox selected is
        \\Recent in only one of them.
        """
        other, other_transport = self.connect()
        self.select(server=other)
        self.transport.clear()
        other_transport.clear()
        self.store.deliver(USER, SIMPLE)
        self.assertEqual(
            sorted([self.transport.value(), other_transport.value()]),
            [b"* 2 EXISTS\r\n* 0 RECENT\r\n", b"* 2 EXISTS\r\n* 2 RECENT\r\n"],
        )

    def test_idle_needs_done(self) -> None:
        """
        Anything but DONE ends IDLE with BAD.
        """
        self.command(b"i IDLE")
        self.assertEqual(
            self.command(b"x NOOP"), b"i BAD IDLE ended: expected DONE\r\n"
        )
        self.assertEqual(self.command(b"y NOOP"), b"y OK NOOP completed\r\n")

    def test_delivery_from_another_thread(self) -> None:
        """
        A delivery in another thread reaches the session through
        C{callFromThread}, in the reactor thread.
        """
        calls: list[Any] = []

        class FakeReactor:
            def callFromThread(self, f: Any, *args: Any) -> None:
                calls.append((f, args))

        self.server.account.reactor = FakeReactor()  # type: ignore[union-attr]
        self.transport.clear()
        thread = threading.Thread(target=self.store.deliver, args=(USER, MULTIPART))
        thread.start()
        thread.join()
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(len(calls), 1)
        f, args = calls[0]
        f(*args)
        self.assertEqual(self.transport.value(), b"* 2 EXISTS\r\n* 2 RECENT\r\n")

    def test_exists_during_fetch_waits(self) -> None:
        """
        EXISTS for a delivery made while a FETCH is being sent comes before
        the FETCH's tagged OK, not inside a FETCH response.
        """
        paused: list[bool] = []
        original = self.transport.writeSequence

        def write_and_pause(data: Any) -> None:
            original(data)
            if not paused:
                paused.append(True)
                self.transport.producer.pauseProducing()  # type: ignore[union-attr]

        self.transport.writeSequence = write_and_pause  # type: ignore[method-assign]
        self.transport.clear()
        self.server.dataReceived(b"f FETCH 1 BODY.PEEK[]\r\n")
        self.store.deliver(USER, SIMPLE)
        self.assertNotIn(b"EXISTS", self.transport.value())
        self.transport.producer.resumeProducing()  # type: ignore[union-attr]
        self.assertTrue(
            self.transport.value().endswith(
                b"* 2 EXISTS\r\n* 2 RECENT\r\nf OK FETCH completed\r\n"
            )
        )


class IMAP4ClientRoundTripTests(ServerFixture):
    """
    Twisted's own C{IMAP4Client} against the server, in memory.
    """

    def test_round_trip(self) -> None:
        """
        Log in, list, select, fetch a message and its flags, store a flag,
        all through C{IMAP4Client}.
        """
        self.store.deliver(USER, MULTIPART)
        factory = LabIMAPFactory(
            portal=self.portal, tls=None, allow_plaintext_auth=True, reactor=self.clock
        )
        client = imap4.IMAP4Client()
        server = factory.buildProtocol(None)
        pump = iosim.connect(
            server, iosim.makeFakeServer(server), client, iosim.makeFakeClient(client)
        )
        pump.flush()
        d = client.login(USER.encode(), PASSWORD)
        pump.flush()
        self.successResultOf(d)
        d = client.list("", "*")
        pump.flush()
        self.assertEqual(
            self.successResultOf(d), [(("\\HasNoChildren",), ".", "INBOX")]
        )
        d = client.select("INBOX")
        pump.flush()
        selected = self.successResultOf(d)
        self.assertEqual(selected["EXISTS"], 1)
        self.assertEqual(selected["UIDVALIDITY"], self.store.folder(USER).uidvalidity)
        d = client.fetchSpecific("1", peek=True)
        pump.flush()
        self.assertEqual(self.successResultOf(d)[1][0][-1], MULTIPART.decode())
        d = client.addFlags("1", ["\\Answered"], silent=False)
        pump.flush()
        self.assertIn("\\Answered", self.successResultOf(d)[1]["FLAGS"])
        self.assertEqual(self.store.folder(USER).entry(1).flags, ("\\Answered",))
        d = client.logout()
        pump.flush()
        self.successResultOf(d)


class RealmTests(ServerFixture):
    """
    L{LabRealm} gives IMAP accounts only.
    """

    def test_other_interfaces(self) -> None:
        """
        Asking the realm for anything but an IMAP account fails.
        """
        realm = LabRealm(self.store)
        self.assertRaises(
            NotImplementedError, realm.requestAvatar, b"x@y", None, object
        )

    def test_new_user_gets_maildir(self) -> None:
        """
        Logging in creates the user's Maildir if it is missing.
        """
        realm = LabRealm(self.store)
        iface, _, logout = realm.requestAvatar(b"new@netlab.test", None, imap4.IAccount)
        self.assertIs(iface, imap4.IAccount)
        self.assertTrue(self.store.has_user("new@netlab.test"))
        logout()


UTF8_SUBJECT = (
    b"From: bob@example.test\r\nSubject: =?utf-8?q?caf=C3=A9_au_lait?=\r\n\r\nbody\r\n"
)


class ClientSyntaxTests(ServerFixture):
    """
    Regressions of the command syntax real clients send: literals inside
    SEARCH, quoted strings with escapes, C{*:*}.
    """

    def setUp(self) -> None:
        super().setUp()
        for body in (SIMPLE, UTF8_SUBJECT, SIMPLE):
            self.store.deliver(USER, body)
        self.login()

    def test_search_literal(self) -> None:
        """
        C{UID SEARCH CHARSET UTF-8 SUBJECT {6}} gets a continuation request,
        the literal's bytes are the search string (not a new command), and
        the search matches by them.
        """
        self.command(b"s SELECT INBOX")
        self.assertEqual(
            self.command(b"a UID SEARCH CHARSET UTF-8 SUBJECT {5}"),
            b"+ Ready for 5 octets of text\r\n",
        )
        self.assertEqual(
            self.send(b"caf\xc3\xa9\r\n"), b"* SEARCH 2\r\na OK SEARCH completed\r\n"
        )
        self.assertEqual(
            self.send(b"b SEARCH OR SUBJECT {6}\r\n"),
            b"+ Ready for 6 octets of text\r\n",
        )
        self.assertEqual(
            self.send(b"simple SUBJECT {3+}\r\nlai UNSEEN\r\n"),
            b"* SEARCH 1 2 3\r\nb OK SEARCH completed\r\n",
        )
        self.assertEqual(self.command(b"c NOOP"), b"c OK NOOP completed\r\n")

    def test_quoted_escapes(self) -> None:
        """
        CREATE, LIST, SELECT, RENAME, STATUS and DELETE take quoted names with
        C{\\"} escapes; LIST quotes the name so that it can be sent back.
        """
        self.assertEqual(
            self.command(b'a CREATE "foo \\"bar\\""'), b"a OK Mailbox created\r\n"
        )
        self.assertEqual(self.store.mailboxes(USER), ["INBOX", 'foo "bar"'])
        listed = self.command(b'b LIST "" "foo \\"bar\\""')
        self.assertEqual(
            listed,
            b'* LIST (\\HasNoChildren) "." "foo \\"bar\\""\r\nb OK LIST completed\r\n',
        )
        self.assertIn(b"c OK", self.command(b'c SELECT "foo \\"bar\\""'))
        self.assertIn(
            b'* STATUS "foo \\"bar\\"" (MESSAGES 0)',
            self.command(b'd STATUS "foo \\"bar\\"" (MESSAGES)'),
        )
        self.assertIn(b"e OK", self.command(b'e RENAME "foo \\"bar\\"" "x \\"y\\""'))
        self.assertIn(b"f OK", self.command(b'f DELETE "x \\"y\\""'))
        self.assertEqual(self.store.mailboxes(USER), ["INBOX"])
        self.assertIn(b"g BAD", self.command(b'g CREATE "bad \\q"'))
        self.assertIn(b"h BAD", self.command(b'h CREATE "open'))

    def test_backslash_names(self) -> None:
        """
        A name with a backslash (sent escaped) is created, listed escaped,
        and selected again from the listed form.
        """
        self.assertIn(b"a OK", self.command(b'a CREATE "foo\\\\bar"'))
        self.assertEqual(self.store.mailboxes(USER), ["INBOX", "foo\\bar"])
        self.assertIn(b'"." "foo\\\\bar"\r\n', self.command(b'b LIST "" foo*'))
        self.assertIn(b"c OK [READ-WRITE]", self.command(b'c SELECT "foo\\\\bar"'))

    def test_literal_name_selectable_from_list(self) -> None:
        """
        A mailbox created with a literal holding C{"} is listed in a form
        that, copied into SELECT, selects it.
        """
        self.command(b"a CREATE {7}")
        self.assertEqual(self.send(b'a"b c"d\r\n'), b"a OK Mailbox created\r\n")
        listed = self.command(b'b LIST "" *')
        line = next(x for x in listed.split(b"\r\n") if b"INBOX" not in x)
        name = line.split(b'"." ', 1)[1]
        self.assertEqual(name, b'"a\\"b c\\"d"')
        self.assertIn(b"c OK [READ-WRITE]", self.command(b"c SELECT " + name))

    def test_fetch_star_star(self) -> None:
        """
        C{FETCH *:*} and C{UID FETCH *:*} fetch the last message.
        """
        self.command(b"s SELECT INBOX")
        self.assertEqual(
            self.command(b"a FETCH *:* (UID)"),
            b"* 3 FETCH (UID 3)\r\na OK FETCH completed\r\n",
        )
        self.assertEqual(
            self.command(b"b UID FETCH *:* (FLAGS)"),
            b"* 3 FETCH (UID 3 FLAGS (\\Recent))\r\nb OK FETCH completed\r\n",
        )
