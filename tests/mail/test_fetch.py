"""
Tests for L{twisted_netlab.mail.fetch}: the IMAP session against scripted
server answers, in memory (C{StringTransport}, C{Clock}).

Each test plays the server: it checks the lines the client sent and feeds
back what a server would answer, literals, odd untagged responses, NO and
BAD included.
"""

from __future__ import annotations

import gc
from collections.abc import Coroutine
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from OpenSSL import SSL
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import ConnectionDone
from twisted.internet.interfaces import IStreamClientEndpoint, ITLSTransport
from twisted.internet.testing import (
    MemoryReactorClock,
    StringTransportWithDisconnection,
)
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from twisted_netlab.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    ServerRefused,
    TLSFailed,
    UsageProblem,
)
from twisted_netlab.mail.fetch import (
    BadResponse,
    FetchedMessage,
    IMAPSession,
    Mailbox,
    MailboxStatus,
    SearchQuery,
    open_session,
    uid_set,
)

T = TypeVar("T")

CAPS = b"IMAP4rev1 LITERAL+"
GREETING = b"* OK [CAPABILITY " + CAPS + b"] ready\r\n"


@implementer(ITLSTransport)
class FakeTransport(StringTransportWithDisconnection):  # type: ignore[misc]
    """
    An in-memory transport that can "start TLS": it records the options.
    """

    tls_options: Any = None

    def startTLS(self, contextFactory: Any, normal: bool = True) -> None:
        self.tls_options = contextFactory


@implementer(IStreamClientEndpoint)
class FakeEndpoint:
    """
    Connects whatever protocol it is given to a L{FakeTransport}.
    """

    def __init__(self, transport: FakeTransport) -> None:
        self.transport = transport

    def connect(self, factory: Any) -> Deferred[Any]:
        protocol = factory.buildProtocol(None)
        self.transport.protocol = protocol
        protocol.makeConnection(self.transport)
        return succeed(protocol)


class Server:
    """
    The server's side of the conversation, played by a test.
    """

    def __init__(self, transport: FakeTransport) -> None:
        self.transport = transport

    @property
    def protocol(self) -> Any:
        return self.transport.protocol

    def received(self) -> list[bytes]:
        """
        The lines the client sent since the last call.
        """
        data = self.transport.value()
        self.transport.clear()
        return data.split(b"\r\n")[:-1] if data else []

    def send(self, data: bytes) -> None:
        self.protocol.dataReceived(data)


class SessionTestCase(SynchronousTestCase):
    """
    Helpers to open a session against a scripted server.
    """

    def setUp(self) -> None:
        self.clock = MemoryReactorClock()
        self.transport = FakeTransport()
        self.server = Server(self.transport)
        self.trace: list[str] = []

    def run_(self, coroutine: Coroutine[Any, Any, T]) -> Deferred[T]:
        return Deferred.fromCoroutine(coroutine)

    def start(
        self, tls: str = "implicit", greeting: bytes = GREETING, options: Any = None
    ) -> Deferred[IMAPSession]:
        d = self.run_(
            open_session(
                self.clock,
                FakeEndpoint(self.transport),
                host="imap.example",
                tls=tls,
                tls_options=options,
                timeout=30,
                trace=self.trace.append,
            )
        )
        if greeting:
            self.server.send(greeting)
        return d

    def session(self, tls: str = "implicit", greeting: bytes = GREETING) -> IMAPSession:
        return self.successResultOf(self.start(tls, greeting))

    def selected(self, exists: int = 3) -> IMAPSession:
        session = self.session()
        d = self.run_(session.select("INBOX"))
        self.server.received()
        self.server.send(
            b"* %d EXISTS\r\n* OK [UIDVALIDITY 42] ok\r\n"
            b"0001 OK [READ-ONLY] done\r\n" % exists
        )
        self.successResultOf(d)
        return session


class ConnectTests(SessionTestCase):
    def test_greeting(self) -> None:
        """
        The session is ready once the server greets; an implicit TLS session
        counts as secure, and the capabilities of the greeting are used
        without asking again.
        """
        session = self.session()
        self.assertTrue(session.secure)
        caps = self.successResultOf(self.run_(session.capabilities()))
        self.assertIn(b"LITERAL+", caps)
        self.assertEqual(self.server.received(), [])

    def test_refusing_greeting(self) -> None:
        """
        A BYE greeting is a connection failure quoting the server.
        """
        d = self.start(greeting=b"* BYE Too many connections\r\n")
        error = self.failureResultOf(d, ConnectionFailed).value
        self.assertEqual(
            str(error), "imap.example refused the session: BYE Too many connections"
        )
        self.assertFalse(self.transport.connected)

    def test_no_greeting_times_out(self) -> None:
        """
        A server that never greets is given up on after the timeout.
        """
        d = self.start(greeting=b"")
        self.clock.advance(29)
        self.assertNoResult(d)
        self.clock.advance(1)
        error = self.failureResultOf(d, ConnectionFailed).value
        self.assertEqual(str(error), "no answer from imap.example within 30 seconds")

    def test_tls_failure_explained(self) -> None:
        """
        A TLS handshake failure (here, before the greeting) is a
        L{TLSFailed} with OpenSSL's reason.
        """
        d = self.start(greeting=b"")
        reason = SSL.Error([("SSL routines", "", "certificate verify failed")])
        self.transport.protocol.connectionLost(Failure(reason))
        error = self.failureResultOf(d, TLSFailed).value
        self.assertEqual(
            str(error), "TLS with imap.example failed: certificate verify failed"
        )

    def test_plaintext_on_tls_port_hint(self) -> None:
        """
        Talking TLS to a plaintext port fails with a hint to use STARTTLS.
        """
        d = self.start(greeting=b"")
        reason = SSL.Error([("SSL routines", "", "wrong version number")])
        self.transport.protocol.connectionLost(Failure(reason))
        self.assertIn("try --tls starttls", str(self.failureResultOf(d).value))


class StartTLSTests(SessionTestCase):
    greeting = b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] hi\r\n"

    def test_starttls_with_given_options(self) -> None:
        """
        With C{tls="starttls"} the client sends STARTTLS, starts TLS with
        exactly the (verifying) options it was given, asks for the
        capabilities again, and only then is the session ready and secure.
        """
        options = object()
        d = self.start("starttls", self.greeting, options)
        self.assertEqual(self.server.received(), [b"0001 STARTTLS"])
        self.assertIsNone(self.transport.tls_options)
        self.server.send(b"0001 OK Begin TLS negotiation now\r\n")
        self.assertIs(self.transport.tls_options, options)
        self.assertEqual(self.server.received(), [b"0002 CAPABILITY"])
        self.assertNoResult(d)
        self.server.send(b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n0002 OK done\r\n")
        session = self.successResultOf(d)
        self.assertTrue(session.secure)

    def test_starttls_not_offered(self) -> None:
        """
        No STARTTLS in the capabilities: TLSFailed, the connection is
        dropped, and nothing else (no LOGIN) is ever sent.
        """
        d = self.start("starttls", b"* OK [CAPABILITY IMAP4rev1] hi\r\n", object())
        error = self.failureResultOf(d, TLSFailed).value
        self.assertIn("imap.example does not offer STARTTLS", str(error))
        self.assertEqual(self.server.received(), [])
        self.assertFalse(self.transport.connected)

    def test_starttls_refused(self) -> None:
        """
        A NO to STARTTLS is a TLSFailed quoting the server.
        """
        d = self.start("starttls", self.greeting, object())
        self.server.received()
        self.server.send(b"0001 NO [UNAVAILABLE] TLS is broken today\r\n")
        error = self.failureResultOf(d, TLSFailed).value
        self.assertEqual(
            str(error),
            "imap.example refused STARTTLS: [UNAVAILABLE] TLS is broken today",
        )
        self.assertFalse(self.transport.connected)

    def test_no_plaintext_injection(self) -> None:
        """
        Plaintext that follows the STARTTLS answer in the same packet (a man
        in the middle injecting commands' answers) is not trusted: TLSFailed,
        and TLS is not even started.
        """
        d = self.start("starttls", self.greeting, object())
        self.server.received()
        self.server.send(b"0001 OK go ahead\r\n* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n")
        self.failureResultOf(d, TLSFailed)
        self.assertIsNone(self.transport.tls_options)
        self.assertFalse(self.transport.connected)


class LoginTests(SessionTestCase):
    def test_login(self) -> None:
        """
        LOGIN with the name and password as IMAP atoms or quoted strings.
        """
        session = self.session()
        d = self.run_(session.login("alice", 'pa"ss\\word'))
        self.assertEqual(
            self.server.received(), [b'0001 LOGIN alice "pa\\"ss\\\\word"']
        )
        self.server.send(b"0001 OK [CAPABILITY IMAP4rev1] Logged in\r\n")
        self.successResultOf(d)

    def test_login_literal(self) -> None:
        """
        A password beyond printable ASCII goes as a UTF-8 literal, sent once
        the server asks for it.
        """
        session = self.session()
        d = self.run_(session.login("alice", "pässwörd"))
        self.assertEqual(self.server.received(), [b"0001 LOGIN alice {10}"])
        self.server.send(b"+ go ahead\r\n")
        self.assertEqual(self.server.received(), ["pässwörd".encode()])
        self.server.send(b"0001 OK Logged in\r\n")
        self.successResultOf(d)

    def test_trace_masks_password(self) -> None:
        """
        The protocol trace shows the LOGIN command but not the password.
        """
        session = self.session()
        d = self.run_(session.login("alice", "s3cret"))
        self.server.send(b"0001 OK Logged in\r\n")
        self.successResultOf(d)
        self.assertIn("C: 0001 LOGIN alice ****", self.trace)
        self.assertIn("S: 0001 OK Logged in", self.trace)
        self.assertFalse([line for line in self.trace if "cret" in line])

    def test_trace_masks_literal_password(self) -> None:
        """
        A password sent as a literal is not in the trace either.
        """
        session = self.session()
        d = self.run_(session.login("bob", "sécret"))
        self.server.send(b"+ go ahead\r\n0001 OK Logged in\r\n")
        self.successResultOf(d)
        self.assertIn("C: 0001 LOGIN bob ****", self.trace)
        self.assertIn("C: [7 more octets]", self.trace)
        self.assertFalse([line for line in self.trace if "cret" in line])

    def test_rejected(self) -> None:
        """
        A NO to LOGIN is an AuthenticationFailed quoting the server.
        """
        session = self.session()
        d = self.run_(session.login("alice", "wrong"))
        self.server.send(b"0001 NO [AUTHENTICATIONFAILED] Authentication failed.\r\n")
        error = self.failureResultOf(d, AuthenticationFailed).value
        self.assertEqual(
            str(error),
            "imap.example rejected the login of 'alice': "
            "[AUTHENTICATIONFAILED] Authentication failed.",
        )

    def test_no_plaintext_login(self) -> None:
        """
        Without TLS, LOGIN is refused unless plaintext is explicitly allowed,
        and then it is sent.
        """
        session = self.session("none")
        self.assertFalse(session.secure)
        d = self.run_(session.login("alice", "secret"))
        self.failureResultOf(d, AuthenticationFailed)
        self.assertEqual(self.server.received(), [])
        d = self.run_(session.login("alice", "secret", allow_plaintext=True))
        self.assertEqual(self.server.received(), [b"0001 LOGIN alice secret"])

    def test_logindisabled(self) -> None:
        """
        A server announcing LOGINDISABLED gets no LOGIN, even when
        plaintext was allowed.
        """
        session = self.session(
            "none", b"* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] hi\r\n"
        )
        d = self.run_(session.login("alice", "secret", allow_plaintext=True))
        error = self.failureResultOf(d, AuthenticationFailed).value
        self.assertIn("does not allow LOGIN without TLS", str(error))
        self.assertEqual(self.server.received(), [])

    def test_capabilities_asked_when_not_in_greeting(self) -> None:
        """
        A greeting without capabilities makes the client ask for them before
        deciding how to log in.
        """
        session = self.session(greeting=b"* OK hello\r\n")
        d = self.run_(session.login("alice", "secret"))
        self.assertEqual(self.server.received(), [b"0001 CAPABILITY"])
        self.server.send(b"* CAPABILITY IMAP4rev1 LOGINDISABLED\r\n0001 OK\r\n")
        self.failureResultOf(d, AuthenticationFailed)

    def test_preauth(self) -> None:
        """
        After a PREAUTH greeting there is nothing to log in to.
        """
        session = self.session(greeting=b"* PREAUTH welcome back\r\n")
        self.successResultOf(self.run_(session.login("alice", "secret")))
        self.assertEqual(self.server.received(), [])


class MailboxTests(SessionTestCase):
    def test_list(self) -> None:
        """
        LIST answers become L{Mailbox}es: flags, delimiter (NIL is None),
        names decoded from modified UTF-7, quoted or sent as literals; an
        untagged EXISTS in the middle is ignored.
        """
        session = self.session()
        d = self.run_(session.list_mailboxes())
        self.assertEqual(self.server.received(), [b'0001 LIST "" "*"'])
        self.server.send(
            b'* LIST (\\HasNoChildren) "." INBOX\r\n'
            b"* 4 EXISTS\r\n"
            b'* LIST (\\HasChildren \\Noselect) "/" "Entw&APw-rfe"\r\n'
            b'* LIST () "." "Sent \\"Items\\""\r\n'
            b"* LIST (\\Marked) NIL {8}\r\nA (b) [c\r\n"
            b"* OK still here\r\n"
            b"0001 OK LIST completed\r\n"
        )
        self.assertEqual(
            self.successResultOf(d),
            [
                Mailbox("INBOX", ".", ("\\HasNoChildren",)),
                Mailbox("Entwürfe", "/", ("\\HasChildren", "\\Noselect")),
                Mailbox('Sent "Items"', ".", ()),
                Mailbox("A (b) [c", None, ("\\Marked",)),
            ],
        )

    def test_list_pattern_encoded(self) -> None:
        """
        The pattern goes in modified UTF-7.
        """
        session = self.session()
        self.run_(session.list_mailboxes("Entwürfe/%"))
        self.assertEqual(self.server.received(), [b'0001 LIST "" "Entw&APw-rfe/%"'])

    def test_malformed_list(self) -> None:
        """
        An unparseable answer ends in L{BadResponse}, not a traceback.
        """
        session = self.session()
        d = self.run_(session.list_mailboxes())
        self.server.send(b'* LIST (\\Noselect "." INBOX\r\n0001 OK done\r\n')
        self.failureResultOf(d, BadResponse)

    def test_status(self) -> None:
        """
        STATUS asks for the five counters and returns them.
        """
        session = self.session()
        d = self.run_(session.status("Entwürfe"))
        self.assertEqual(
            self.server.received(),
            [b"0001 STATUS Entw&APw-rfe (MESSAGES RECENT UNSEEN UIDVALIDITY UIDNEXT)"],
        )
        self.server.send(
            b"* STATUS Entw&APw-rfe (MESSAGES 3 RECENT 1 UNSEEN 2 UIDVALIDITY 7"
            b" UIDNEXT 9)\r\n0001 OK done\r\n"
        )
        self.assertEqual(
            self.successResultOf(d), MailboxStatus("Entwürfe", 3, 1, 2, 7, 9)
        )

    def test_status_no_such_mailbox(self) -> None:
        """
        A NO to STATUS is a L{ServerRefused} naming the mailbox.
        """
        session = self.session()
        d = self.run_(session.status("Nope"))
        self.server.send(b"0001 NO [NONEXISTENT] Mailbox doesn't exist: Nope\r\n")
        error = self.failureResultOf(d, ServerRefused).value
        self.assertEqual(
            str(error),
            "no status for mailbox 'Nope': [NONEXISTENT] Mailbox doesn't exist: Nope",
        )

    def test_examine_by_default(self) -> None:
        """
        A mailbox is opened with EXAMINE (read-only) unless asked otherwise;
        EXISTS, UIDVALIDITY and UIDNEXT are taken from the answer, wherever
        they come.
        """
        session = self.session()
        d = self.run_(session.select("INBOX"))
        self.assertEqual(self.server.received(), [b"0001 EXAMINE INBOX"])
        self.server.send(
            b"* OK [UIDNEXT 12] predicted\r\n"
            b"* FLAGS (\\Seen \\Deleted)\r\n"
            b"* 11 EXISTS\r\n"
            b"* 0 RECENT\r\n"
            b"* OK [UIDVALIDITY 1234] UIDs valid\r\n"
            b"0001 OK [READ-ONLY] EXAMINE completed\r\n"
        )
        selected = self.successResultOf(d)
        self.assertEqual(
            (selected.exists, selected.uidvalidity, selected.uidnext), (11, 1234, 12)
        )
        self.assertTrue(selected.read_only)
        self.assertIs(session.selected, selected)

    def test_select_read_write(self) -> None:
        """
        C{read_only=False} sends SELECT.
        """
        session = self.session()
        d = self.run_(session.select("INBOX", read_only=False))
        self.assertEqual(self.server.received(), [b"0001 SELECT INBOX"])
        self.server.send(b"* OK [UIDVALIDITY 5] x\r\n0001 OK [READ-WRITE] done\r\n")
        self.assertFalse(self.successResultOf(d).read_only)

    def test_no_such_mailbox(self) -> None:
        """
        A NO to EXAMINE is a L{ServerRefused} naming the mailbox; nothing
        stays selected.
        """
        session = self.selected()
        d = self.run_(session.select("Nope"))
        self.server.send(b"0002 NO [NONEXISTENT] Mailbox doesn't exist: Nope\r\n")
        error = self.failureResultOf(d, ServerRefused).value
        self.assertEqual(
            str(error),
            "cannot open mailbox 'Nope': [NONEXISTENT] Mailbox doesn't exist: Nope",
        )
        self.assertIsNone(session.selected)


class SearchTests(SessionTestCase):
    def test_criteria(self) -> None:
        """
        Criteria are validated, dates put in IMAP form, strings quoted, and
        the answer (over several SEARCH lines, with an EXPUNGE between them)
        becomes a sorted list of UIDs.
        """
        session = self.selected()
        d = self.run_(session.search(["UNSEEN", 'from "Jane Doe"', "SINCE 2024-05-01"]))
        self.assertEqual(
            self.server.received(),
            [b'0002 UID SEARCH UNSEEN FROM "Jane Doe" SINCE 1-May-2024'],
        )
        self.server.send(
            b"* SEARCH 9 3\r\n* 1 EXPUNGE\r\n* SEARCH 4\r\n0002 OK done\r\n"
        )
        self.assertEqual(self.successResultOf(d), [3, 4, 9])

    def test_min_uid(self) -> None:
        """
        C{min_uid} limits the search to UIDs from there on; the highest UID,
        which a server returns for C{N:*} even below N, is dropped.
        """
        session = self.selected()
        d = self.run_(session.search(min_uid=5))
        self.assertEqual(self.server.received(), [b"0002 UID SEARCH UID 5:* ALL"])
        self.server.send(b"* SEARCH 4\r\n0002 OK done\r\n")
        self.assertEqual(self.successResultOf(d), [])

    def test_non_ascii(self) -> None:
        """
        A non-ASCII string goes as a UTF-8 literal with CHARSET UTF-8.
        """
        session = self.selected()
        d = self.run_(session.search('SUBJECT "Grüße" NOT SEEN'))
        self.assertEqual(
            self.server.received(), [b"0002 UID SEARCH CHARSET UTF-8 SUBJECT {7}"]
        )
        self.server.send(b"+ OK\r\n")
        self.assertEqual(self.server.received(), ["Grüße NOT SEEN".encode()])
        self.server.send(b"* SEARCH 2\r\n0002 OK done\r\n")
        self.assertEqual(self.successResultOf(d), [2])

    def test_bad_answer(self) -> None:
        """
        A BAD (or NO) to the search is a L{ServerRefused}.
        """
        session = self.selected()
        d = self.run_(session.search("ALL"))
        self.server.send(b"0002 BAD [BADCHARSET] Unknown charset\r\n")
        error = self.failureResultOf(d, ServerRefused).value
        self.assertEqual(
            str(error), "imap.example refused the search: [BADCHARSET] Unknown charset"
        )

    def test_long_answer(self) -> None:
        """
        A SEARCH line far longer than LineReceiver's default limit (5,000
        UIDs) is read whole.
        """
        session = self.selected()
        d = self.run_(session.search())
        uids = list(range(1, 5001))
        self.server.send(
            b"* SEARCH " + b" ".join(b"%d" % u for u in uids) + b"\r\n0002 OK done\r\n"
        )
        self.assertEqual(self.successResultOf(d), uids)

    def test_needs_selected_mailbox(self) -> None:
        """
        Searching before selecting is a usage problem, found locally.
        """
        session = self.session()
        self.failureResultOf(self.run_(session.search()), UsageProblem)
        self.assertEqual(self.server.received(), [])


class SearchQueryTests(SynchronousTestCase):
    def wire(self, *criteria: str) -> bytes:
        from twisted_netlab.mail.imapclient import command_lines

        return b"\n".join(command_lines(SearchQuery.parse(criteria).command_args()))

    def test_combinations(self) -> None:
        """
        OR, NOT and parentheses combine keys; several criteria all apply.
        """
        self.assertEqual(
            self.wire("OR (FROM alice SUBJECT report) NOT SEEN", "BEFORE 1-jan-2025"),
            b"OR (FROM alice SUBJECT report) NOT SEEN BEFORE 1-Jan-2025",
        )
        self.assertEqual(self.wire(), b"ALL")
        self.assertEqual(self.wire("to 'x@example.org'"), b"TO x@example.org")

    def test_errors(self) -> None:
        """
        Unknown keys, missing or bad values and unbalanced parentheses are
        L{UsageProblem}s saying what is wrong.
        """
        cases = {
            "FROMM alice": "unknown search key 'FROMM'",
            "FROM": "FROM needs a value",
            "SINCE yesterday": "SINCE needs a date like 2024-05-31 or 31-May-2024",
            "SINCE 2024-02-30": "SINCE needs a date",
            "(UNSEEN": "a ')' is missing",
            "UNSEEN)": "a '(' is missing",
            "()": "empty parentheses",
            "OR UNSEEN": "a search key is missing at the end",
            'SUBJECT "open': "unclosed quote",
        }
        for text, message in cases.items():
            error = self.assertRaises(UsageProblem, SearchQuery.parse, text)
            self.assertIn(message, str(error), text)


class FetchTests(SessionTestCase):
    def test_summaries(self) -> None:
        """
        Summaries come from one UID FETCH of flags, size and a few header
        fields; encoded words are decoded, the date parsed; an unsolicited
        flag change for another message and data split across FETCH
        answers for one message are handled.
        """
        session = self.selected()
        d = self.run_(session.fetch_summaries([2, 1]))
        self.assertEqual(
            self.server.received(),
            [
                b"0002 UID FETCH 1:2 (UID FLAGS RFC822.SIZE "
                b"BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)])"
            ],
        )
        headers = (
            b"From: =?utf-8?b?SsO2cmc=?= <j@example.org>\r\n"
            b"To: alice@example.org\r\n"
            b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?= aus\r\n  Bayern\r\n"
            b"Date: Mon, 01 Jan 2024 10:00:00 +0100\r\n\r\n"
        )
        self.server.send(
            b"* 1 FETCH (UID 1 FLAGS (\\Seen) RFC822.SIZE 120 "
            b"BODY[HEADER.FIELDS (FROM TO SUBJECT DATE)] {%d}\r\n"
            % len(headers)
            + headers
            + b")\r\n"
            b"* 3 FETCH (FLAGS (\\Deleted))\r\n"
            b"* 2 FETCH (UID 2 RFC822.SIZE 7)\r\n"
            b'* 2 FETCH (FLAGS () BODY[HEADER.FIELDS (FROM TO SUBJECT DATE)] "")\r\n'
            b"0002 OK done\r\n"
        )
        first, second = self.successResultOf(d)
        self.assertEqual(first.uid, 1)
        self.assertEqual(first.flags, ("\\Seen",))
        self.assertEqual(first.size, 120)
        self.assertEqual(first.sender, "Jörg <j@example.org>")
        self.assertEqual(first.recipients, "alice@example.org")
        self.assertEqual(first.subject, "Grüße aus Bayern")
        self.assertEqual(
            first.date, datetime(2024, 1, 1, 10, tzinfo=timezone(timedelta(hours=1)))
        )
        self.assertEqual((second.uid, second.size, second.subject), (2, 7, ""))
        self.assertIsNone(second.date)

    def test_malformed_headers(self) -> None:
        """
        Malformed or raw 8-bit header fields still give a summary: raw UTF-8
        is shown as text, an unreadable date is None, nothing raises.
        """
        session = self.selected()
        d = self.run_(session.fetch_summaries([1]))
        headers = (
            b'From: "unterminated <x@y\r\n'
            b"To: =?utf-8?q?broken\r\n"
            b"Subject: Gr\xc3\xbc\xc3\x9fe \xff\r\n"
            b"Date: yesterday\r\n\r\n"
        )
        self.server.send(
            b"* 1 FETCH (UID 1 FLAGS () RFC822.SIZE 9 BODY[HEADER.FIELDS "
            b"(FROM TO SUBJECT DATE)] {%d}\r\n"
            % len(headers)
            + headers
            + b")\r\n0002 OK done\r\n"
        )
        [summary] = self.successResultOf(d)
        self.assertEqual(summary.subject, "Grüße \ufffd")
        self.assertIn("unterminated", summary.sender)
        self.assertIn("broken", summary.recipients)
        self.assertIsNone(summary.date)

    def test_messages_byte_for_byte(self) -> None:
        """
        Whole messages come back exactly as sent in the literal (CRLF,
        8-bit, NUL, parentheses, braces, a line like a literal marker),
        even when the answer arrives one byte at a time.
        """
        session = self.selected()
        body = b"Subject: x\r\n\r\n(a) {3}\r\n\xff\x00 end)\r\n{12}\r\n\r\n"
        d = self.run_(session.fetch_messages([7]))
        self.assertEqual(
            self.server.received(), [b"0002 UID FETCH 7 (UID RFC822.SIZE)"]
        )
        self.server.send(b"* 1 FETCH (UID 7 RFC822.SIZE %d)\r\n0002 OK\r\n" % len(body))
        self.assertEqual(
            self.server.received(), [b"0003 UID FETCH 7 (UID FLAGS BODY.PEEK[])"]
        )
        answer = (
            b"* 1 FETCH (UID 7 FLAGS (\\Seen) BODY[] {%d}\r\n" % len(body)
            + body
            + b")\r\n0003 OK done\r\n"
        )
        for i in range(len(answer)):
            self.server.send(answer[i : i + 1])
        self.assertEqual(
            self.successResultOf(d), [FetchedMessage(7, ("\\Seen",), body)]
        )

    def test_batches_pipelined(self) -> None:
        """
        Messages are fetched in batches over UID ranges, bounded by count
        and size; each batch is asked for before the one before it is
        handed over (the server sends it meanwhile), and messages gone
        meanwhile are skipped.
        """
        session = self.selected()
        sizes = {1: 10, 2: 10, 3: 10, 5: 100, 6: 10}
        batches: list[list[int]] = []
        sent_before: list[list[bytes]] = []

        async def consume() -> None:
            async for batch in session.iter_messages(
                [6, 5, 4, 3, 2, 1], sizes=sizes, batch_messages=3, batch_bytes=50
            ):
                sent_before.append(self.server.received())
                batches.append([m.uid for m in batch])

        d = self.run_(consume())
        self.assertEqual(
            self.server.received(), [b"0002 UID FETCH 1:3 (UID FLAGS BODY.PEEK[])"]
        )

        def answer(tag: bytes, uids: list[int]) -> None:
            self.server.send(
                b"".join(
                    b"* %d FETCH (UID %d BODY[] {2}\r\nhi)\r\n" % (u, u) for u in uids
                )
                + tag
                + b" OK done\r\n"
            )

        answer(b"0002", [1, 2])  # 3 is gone meanwhile
        answer(b"0003", [5])
        answer(b"0004", [6])
        self.successResultOf(d)
        self.assertEqual(batches, [[1, 2], [5], [6]])
        self.assertEqual(
            sent_before,
            [
                [b"0003 UID FETCH 5 (UID FLAGS BODY.PEEK[])"],
                [b"0004 UID FETCH 6 (UID FLAGS BODY.PEEK[])"],
                [],
            ],
        )

    def test_stop_early(self) -> None:
        """
        A caller that stops after the first batch leaves no failure behind
        for the batch already asked for.
        """
        session = self.selected()

        async def first(session: IMAPSession) -> list[int]:
            async for batch in session.iter_messages(
                [1, 2], sizes={1: 1, 2: 1}, batch_messages=1
            ):
                return [m.uid for m in batch]
            return []

        d = self.run_(first(session))
        self.server.send(b"* 1 FETCH (UID 1 BODY[] {1}\r\nx)\r\n0002 OK\r\n")
        self.assertEqual(self.successResultOf(d), [1])
        session.close()
        closed = session.protocol.failure
        gc.collect()
        unhandled = [
            o
            for o in gc.get_objects()
            if isinstance(o, Deferred)
            and getattr(getattr(o, "result", None), "value", None) is closed
        ]
        self.assertEqual(unhandled, [])

    def test_fetch_refused(self) -> None:
        """
        A NO to FETCH is a L{ServerRefused}.
        """
        session = self.selected()
        d = self.run_(session.fetch_summaries([1]))
        self.server.send(b"0002 NO Some messages could not be fetched\r\n")
        self.failureResultOf(d, ServerRefused)

    def test_no_body(self) -> None:
        """
        A FETCH answer without the body asked for is a L{BadResponse}.
        """
        session = self.selected()
        d = self.run_(session.fetch_messages([1]))
        self.server.send(b"* 1 FETCH (UID 1 RFC822.SIZE 2)\r\n0002 OK\r\n")
        self.server.send(b"* 1 FETCH (UID 1 FLAGS ())\r\n0003 OK\r\n")
        self.failureResultOf(d, BadResponse)

    def test_mark_seen(self) -> None:
        """
        Marking seen is one silent UID STORE, on a mailbox opened for
        writing only.
        """
        session = self.session()
        self.run_(session.select("INBOX", read_only=False))
        self.server.send(b"* OK [UIDVALIDITY 5] x\r\n0001 OK [READ-WRITE] done\r\n")
        self.server.received()
        d = self.run_(session.mark_seen([1, 2, 3, 7]))
        self.assertEqual(
            self.server.received(), [b"0002 UID STORE 1:3,7 +FLAGS.SILENT (\\Seen)"]
        )
        self.server.send(b"* 1 FETCH (FLAGS (\\Seen))\r\n0002 OK done\r\n")
        self.successResultOf(d)

    def test_mark_seen_read_only(self) -> None:
        """
        Marking seen in a mailbox opened read-only is refused locally.
        """
        session = self.selected()
        self.failureResultOf(self.run_(session.mark_seen([1])), UsageProblem)
        self.assertEqual(self.server.received(), [])

    def test_uid_set(self) -> None:
        """
        UIDs are sent as compact ranges, in order, without repeats.
        """
        self.assertEqual(uid_set([5, 1, 2, 3, 9, 10, 3]), b"1:3,5,9:10")
        self.assertEqual(uid_set([4]), b"4")


class EndingTests(SessionTestCase):
    def test_timeout_while_waiting(self) -> None:
        """
        A command the server does not answer within the timeout fails the
        session with a clear message; the connection is dropped.
        """
        session = self.selected()
        d = self.run_(session.search())
        self.clock.advance(30)
        error = self.failureResultOf(d, ConnectionFailed).value
        self.assertEqual(str(error), "no answer from imap.example within 30 seconds")
        self.assertFalse(self.transport.connected)

    def test_slow_answer_is_not_a_timeout(self) -> None:
        """
        The timeout counts from the last data received: a long answer that
        keeps coming is waited for.
        """
        session = self.selected()
        d = self.run_(session.fetch_messages([1]))
        self.server.send(b"* 1 FETCH (UID 1 RFC822.SIZE 4)\r\n0002 OK\r\n")
        self.server.send(b"* 1 FETCH (UID 1 BODY[] {4}\r\nab")
        self.clock.advance(20)
        self.server.send(b"cd")
        self.clock.advance(20)
        self.server.send(b")\r\n0003 OK done\r\n")
        self.assertEqual([m.data for m in self.successResultOf(d)], [b"abcd"])

    def test_idle_is_not_a_timeout(self) -> None:
        """
        Between commands, the server owes nothing: a quiet session stays.
        """
        self.selected()
        self.clock.advance(3600)
        self.assertTrue(self.transport.connected)

    def test_bye_quoted(self) -> None:
        """
        When the server says BYE and hangs up in the middle of a command,
        the failure quotes it; later calls fail the same way.
        """
        session = self.selected()
        d = self.run_(session.search())
        self.server.send(b"* BYE Server shutting down\r\n")
        self.transport.loseConnection()
        error = self.failureResultOf(d, ConnectionFailed).value
        self.assertEqual(
            str(error), "imap.example closed the connection: Server shutting down"
        )
        self.failureResultOf(self.run_(session.search()), ConnectionFailed)

    def test_unknown_tag(self) -> None:
        """
        A tagged answer to no command is a L{BadResponse} ending the session.
        """
        session = self.selected()
        d = self.run_(session.search())
        self.server.send(b"9999 OK what?\r\n")
        self.failureResultOf(d, BadResponse)
        self.assertFalse(self.transport.connected)

    def test_logout(self) -> None:
        """
        Logout says LOGOUT and closes the connection; closing afterwards is
        harmless.
        """
        session = self.selected()
        d = self.run_(session.logout())
        self.assertEqual(self.server.received(), [b"0002 LOGOUT"])
        self.server.send(b"* BYE Logging out\r\n0002 OK done\r\n")
        self.successResultOf(d)
        self.assertFalse(self.transport.connected)
        session.close()

    def test_close(self) -> None:
        """
        Closing drops the connection; whatever was waiting fails.
        """
        session = self.selected()
        d = self.run_(session.search())
        session.close()
        self.assertFalse(self.transport.connected)
        self.failureResultOf(d, ConnectionFailed)

    def test_closed_cleanly(self) -> None:
        """
        A connection closed without BYE is a plain "closed the connection".
        """
        session = self.selected()
        d = self.run_(session.search())
        self.transport.protocol.connectionLost(Failure(ConnectionDone()))
        error = self.failureResultOf(d, ConnectionFailed).value
        self.assertEqual(str(error), "imap.example closed the connection")
        del session
