"""
Tests for L{twisted_netlab.mail.lab.imap.server}: the real C{IMAP4Server}
conversation, driven over in-memory transports, where it spans the command
families: bounds and bad input, flags, expunge, copy, append and search
together, Twisted's own client, the realm, and the argument syntax.
The families' own tests are in test_auth, test_mailboxes, test_fetch and
test_updates; the extensions' in test_extensions.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.mail import imap4
from twisted.test import iosim

from tests.mail.lab.imaptesting import (
    MULTIPART,
    PASSWORD,
    SIMPLE,
    USER,
    ServerFixture,
)
from twisted_netlab.mail.lab.imap.account import LabRealm
from twisted_netlab.mail.lab.imap.server import LabIMAPFactory


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
