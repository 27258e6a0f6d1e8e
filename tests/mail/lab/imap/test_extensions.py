"""
Tests for the IMAP extensions the lab's server serves (L{LabIMAPServer}):
UIDPLUS, MOVE, UNSELECT, LITERAL+, ENABLE, ID, SASL-IR, SPECIAL-USE,
ESEARCH, CONDSTORE, and keywords; driven over in-memory transports.
"""

from __future__ import annotations

import base64
import re

from tests.mail.lab.imaptesting import MULTIPART, PASSWORD, SIMPLE, USER, ServerFixture
from twisted_netlab.mail.lab.store.maildir import MailStore

FLAGGED = b"Subject: flagged\r\n\r\nbody\r\n"


def untagged(response: bytes, kind: bytes) -> list[bytes]:
    """The untagged responses of C{kind} (C{FETCH}, C{ESEARCH}...)."""
    return [
        line
        for line in response.split(b"\r\n")
        if line.startswith(b"* ") and kind in line.split(b" (", 1)[0]
    ]


class CapabilityTests(ServerFixture):
    def test_announced(self) -> None:
        """
        CAPABILITY names IMAP4rev1 first and every extension served.
        """
        response = self.command(b"a CAPABILITY")
        line = response.split(b"\r\n")[0].split()
        self.assertEqual(line[:3], [b"*", b"CAPABILITY", b"IMAP4rev1"])
        for name in (
            b"LITERAL+",
            b"SASL-IR",
            b"ID",
            b"ENABLE",
            b"UNSELECT",
            b"UIDPLUS",
            b"MOVE",
            b"SPECIAL-USE",
            b"ESEARCH",
            b"CONDSTORE",
            b"IDLE",
            b"NAMESPACE",
            b"SEARCHRES",
            b"BINARY",
            b"LIST-EXTENDED",
            b"LIST-STATUS",
            b"UTF8=ACCEPT",
        ):
            self.assertIn(name, line)


class SessionExtensionTests(ServerFixture):
    def test_enable(self) -> None:
        """
        ENABLE CONDSTORE answers ENABLED CONDSTORE once; unknown names are
        ignored; before login it is not available.
        """
        self.assertIn(b"x BAD", self.command(b"x ENABLE CONDSTORE"))
        self.login()
        self.assertEqual(
            self.command(b"a ENABLE CONDSTORE X-UNKNOWN"),
            b"* ENABLED CONDSTORE\r\na OK ENABLE completed\r\n",
        )
        self.assertEqual(
            self.command(b"b ENABLE CONDSTORE"),
            b"* ENABLED\r\nb OK ENABLE completed\r\n",
        )

    def test_id(self) -> None:
        """
        ID, with NIL or with fields, in any state, gets the server's ID;
        anything else is BAD.
        """
        response = self.command(b'a ID ("name" "imaplib" "version" "3")')
        self.assertEqual(
            response,
            b'* ID ("name" "netlab mail lab" "vendor" "netlab")\r\n'
            b"a OK ID completed\r\n",
        )
        self.assertIn(b"b OK", self.command(b"b ID NIL"))
        self.assertIn(b"c BAD", self.command(b'c ID ("odd")'))
        self.assertIn(b"d BAD", self.command(b"d ID"))

    def test_sasl_ir(self) -> None:
        """
        AUTHENTICATE PLAIN with the initial response on the command line
        logs in with no continuation; a bad one is refused.
        """
        bad = base64.b64encode(b"\0" + USER.encode() + b"\0wrong")
        self.assertIn(
            b"a NO Authentication failed",
            self.command(b"a AUTHENTICATE PLAIN " + bad),
        )
        good = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD)
        self.assertEqual(
            self.command(b"b AUTHENTICATE PLAIN " + good),
            b"b OK Authentication successful\r\n",
        )

    def test_literal_plus(self) -> None:
        """
        Non-synchronizing literals (C{{n+}}) get no continuation request, in
        LOGIN and in APPEND; one over the limit closes the connection
        rather than reading its bytes as commands.
        """
        user = USER.encode()
        response = self.send(
            b"a LOGIN {%d+}\r\n%s {%d+}\r\n%s\r\n"
            % (len(user), user, len(PASSWORD), PASSWORD)
        )
        self.assertEqual(response, b"a OK LOGIN succeeded\r\n")
        response = self.send(b"b APPEND INBOX {%d+}\r\n%s\r\n" % (len(SIMPLE), SIMPLE))
        self.assertNotIn(b"+ ", response)
        self.assertIn(b"b OK [APPENDUID", response)
        self.assertEqual(self.store.messages(USER), [SIMPLE])
        response = self.send(b"c APPEND INBOX {20000+}\r\nc2 LOGOUT\r\n")
        self.assertIn(b"* BYE [TOOBIG]", response)
        self.assertNotIn(b"c2", response)
        self.assertTrue(self.transport.disconnecting)

    def test_unselect(self) -> None:
        """
        UNSELECT leaves the mailbox without expunging C{\\\\Deleted}
        messages (CLOSE would).
        """
        self.store.deliver(USER, SIMPLE)
        self.select()
        self.command(b"a STORE 1 +FLAGS.SILENT (\\Deleted)")
        self.assertEqual(self.command(b"b UNSELECT"), b"b OK UNSELECT completed\r\n")
        self.assertEqual(len(self.store.messages(USER)), 1)
        self.assertIn(b"c BAD", self.command(b"c FETCH 1 FLAGS"))

    def test_special_use(self) -> None:
        """
        LIST marks Sent, Drafts, Trash and Junk with their SPECIAL-USE
        attributes.
        """
        self.login()
        for name in (b"Sent", b"Drafts", b"Trash", b"Junk", b"Other"):
            self.command(b"c CREATE " + name)
        listed = self.command(b'a LIST "" *')
        self.assertIn(b'* LIST (\\HasNoChildren \\Sent) "." "Sent"', listed)
        self.assertIn(b'* LIST (\\HasNoChildren \\Drafts) "." "Drafts"', listed)
        self.assertIn(b'* LIST (\\HasNoChildren \\Trash) "." "Trash"', listed)
        self.assertIn(b'* LIST (\\HasNoChildren \\Junk) "." "Junk"', listed)
        self.assertIn(b'* LIST (\\HasNoChildren) "." "Other"', listed)


class UIDPlusMoveTests(ServerFixture):
    def setUp(self) -> None:
        super().setUp()
        for _ in range(4):
            self.store.deliver(USER, SIMPLE)
        self.select()
        self.command(b"c CREATE Archive")
        self.validity = self.store.folder(USER, "Archive").uidvalidity

    def test_uid_expunge(self) -> None:
        """
        UID EXPUNGE removes only the C{\\\\Deleted} messages among the UIDs
        given.
        """
        self.command(b"a STORE 1:3 +FLAGS.SILENT (\\Deleted)")
        self.assertEqual(
            self.command(b"b UID EXPUNGE 2:4"),
            b"* 2 EXPUNGE\r\n* 2 EXPUNGE\r\nb OK EXPUNGE completed\r\n",
        )
        self.assertEqual(self.store.folder(USER).uids(), [1, 4])
        self.assertIn(b"d BAD", self.command(b"d UID EXPUNGE"))

    def test_move(self) -> None:
        """
        MOVE copies with COPYUID (untagged, first), then expunges the
        originals; UID MOVE takes UIDs; a missing target is NO [TRYCREATE]
        and moves nothing.
        """
        self.assertEqual(
            self.command(b"a MOVE 2:3 Archive"),
            b"* OK [COPYUID %d 2:3 1:2] Moved\r\n"
            b"* 2 EXPUNGE\r\n* 2 EXPUNGE\r\n"
            b"a OK MOVE completed\r\n" % (self.validity,),
        )
        self.assertEqual(self.store.folder(USER).uids(), [1, 4])
        self.assertEqual(self.store.folder(USER, "Archive").uids(), [1, 2])
        self.assertEqual(
            self.command(b"b UID MOVE 4 Archive"),
            b"* OK [COPYUID %d 4 3] Moved\r\n* 2 EXPUNGE\r\nb OK MOVE completed\r\n"
            % (self.validity,),
        )
        self.assertIn(b"c NO [TRYCREATE]", self.command(b"c MOVE 1 Missing"))
        self.assertEqual(self.store.folder(USER).uids(), [1])
        self.assertEqual(self.command(b"d MOVE 9 Archive"), b"d OK MOVE completed\r\n")


class ESearchTests(ServerFixture):
    def setUp(self) -> None:
        super().setUp()
        for _ in range(5):
            self.store.deliver(USER, SIMPLE)
        self.select()
        self.command(b"a STORE 2,4 +FLAGS.SILENT (\\Seen)")

    def test_return_options(self) -> None:
        """
        SEARCH RETURN gives one ESEARCH response with the options asked for
        (ALL when none), tagged, with UID for UID SEARCH.
        """
        self.assertEqual(
            self.command(b"b SEARCH RETURN (MIN MAX COUNT) UNSEEN"),
            b'* ESEARCH (TAG "b") MIN 1 MAX 5 COUNT 3\r\nb OK SEARCH completed\r\n',
        )
        self.assertEqual(
            self.command(b"c UID SEARCH RETURN () NOT 3"),
            b'* ESEARCH (TAG "c") UID ALL 1:2,4:5\r\nc OK SEARCH completed\r\n',
        )
        self.assertEqual(
            self.command(b"d SEARCH RETURN (COUNT MIN) SUBJECT nothing"),
            b'* ESEARCH (TAG "d") COUNT 0\r\nd OK SEARCH completed\r\n',
        )
        self.assertIn(b"e BAD", self.command(b"e SEARCH RETURN (BOGUS) ALL"))
        self.assertIn(b"f BAD", self.command(b"f SEARCH RETURN ALL"))


class KeywordTests(ServerFixture):
    def test_append_store_search_fetch(self) -> None:
        """
        Keywords given in APPEND and STORE are kept (not silently dropped),
        shown in FETCH FLAGS and in FLAGS once new, found by SEARCH KEYWORD
        and UNKEYWORD, and still there after a restart.
        """
        self.select()
        self.command(b"a APPEND INBOX (abc $Forwarded \\Flagged) {%d}" % len(FLAGGED))
        response = self.send(FLAGGED + b"\r\n")
        self.assertIn(b"a OK [APPENDUID", response)
        self.assertIn(b"* FLAGS (", response)
        self.assertIn(b"\\Deleted abc $Forwarded)", response)
        self.store.deliver(USER, SIMPLE)
        self.command(b"n NOOP")
        self.assertEqual(
            self.command(b"b FETCH 1 FLAGS"),
            b"* 1 FETCH (FLAGS (\\Flagged abc $Forwarded))\r\nb OK FETCH completed\r\n",
        )
        response = self.command(b"c STORE 2 +FLAGS ($Junk)")
        self.assertIn(b"* 2 FETCH (FLAGS ($Junk \\Recent))", response)
        self.assertIn(b"* FLAGS (", response)
        self.assertEqual(
            self.command(b"d SEARCH KEYWORD $forwarded"),
            b"* SEARCH 1\r\nd OK SEARCH completed\r\n",
        )
        self.assertEqual(
            self.command(b"e SEARCH UNKEYWORD $Junk"),
            b"* SEARCH 1\r\ne OK SEARCH completed\r\n",
        )
        restarted = MailStore(self.root).folder(USER)
        self.assertEqual(restarted.entry(1).flags, ("\\Flagged", "abc", "$Forwarded"))
        self.assertEqual(restarted.entry(2).flags, ("$Junk",))

    def test_limit(self) -> None:
        """
        When a mailbox holds 26 keywords, PERMANENTFLAGS loses C{\\\\*} and
        a new keyword gets NO [LIMIT].
        """
        self.store.deliver(USER, SIMPLE)
        folder = self.store.folder(USER)
        folder.set_flags({1: [f"k{i}" for i in range(26)]})
        response = self.select()
        self.assertNotIn(b"\\*", response)
        self.assertIn(b"a NO [LIMIT]", self.command(b"a STORE 1 +FLAGS (more)"))
        self.assertIn(b"b OK", self.command(b"b STORE 1 -FLAGS (k3)"))


class CondstoreTests(ServerFixture):
    def setUp(self) -> None:
        super().setUp()
        for _ in range(3):
            self.store.deliver(USER, SIMPLE)
        self.folder = self.store.folder(USER)

    def modseqs(self, response: bytes) -> dict[int, int]:
        return {
            int(m.group(1)): int(m.group(2))
            for m in re.finditer(rb"\* (\d+) FETCH \(.*?MODSEQ \((\d+)\)", response)
        }

    def test_select_condstore_and_fetch(self) -> None:
        """
        SELECT (CONDSTORE) reports HIGHESTMODSEQ; FETCH MODSEQ gives each
        message's; FETCH CHANGEDSINCE only those changed after.
        """
        self.login()
        response = self.command(b"s SELECT INBOX (CONDSTORE)")
        highest = self.folder.highest_modseq()
        self.assertIn(b"* OK [HIGHESTMODSEQ %d]" % (highest,), response)
        values = self.modseqs(self.command(b"a FETCH 1:* (MODSEQ)"))
        self.assertEqual(values, {n: self.folder.modseq(n) for n in (1, 2, 3)})
        self.command(b"b STORE 2 +FLAGS.SILENT (\\Seen)")
        response = self.command(b"c UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % highest)
        self.assertEqual(
            response,
            b"* 2 FETCH (UID 2 FLAGS (\\Seen \\Recent) MODSEQ (%d))\r\n"
            b"c OK FETCH completed\r\n" % (self.folder.modseq(2),),
        )
        self.assertGreater(self.folder.modseq(2), highest)
        self.assertIn(b"d BAD", self.command(b"d SELECT INBOX (BOGUS)"))

    def test_store_unchangedsince(self) -> None:
        """
        STORE (UNCHANGEDSINCE n) changes the messages not changed since and
        names the others in [MODIFIED]; the FETCH responses carry MODSEQ,
        even with .SILENT.
        """
        self.select()
        before = self.folder.highest_modseq()
        self.command(b"a STORE 2 +FLAGS.SILENT (\\Flagged)")
        response = self.command(
            b"b STORE 1:3 (UNCHANGEDSINCE %d) +FLAGS.SILENT (\\Seen)" % (before,)
        )
        self.assertIn(b"b OK [MODIFIED 2] Conditional STORE failed", response)
        self.assertEqual(set(self.modseqs(response)), {1, 3})
        self.assertEqual(self.folder.entry(2).flags, ("\\Flagged",))
        self.assertEqual(self.folder.entry(1).flags, ("\\Seen",))
        response = self.command(b"c UID STORE 1:3 (UNCHANGEDSINCE 1) FLAGS ()")
        self.assertIn(b"c OK [MODIFIED 1:3]", response)

    def test_search_modseq(self) -> None:
        """
        SEARCH MODSEQ finds messages changed at or after a MODSEQ and adds
        the highest MODSEQ found.
        """
        self.select()
        self.command(b"a STORE 3 +FLAGS.SILENT (\\Seen)")
        value = self.folder.modseq(3)
        self.assertEqual(
            self.command(b"b SEARCH MODSEQ %d" % (value,)),
            b"* SEARCH 3 (MODSEQ %d)\r\nb OK SEARCH completed\r\n" % (value,),
        )
        self.assertEqual(
            self.command(b'c SEARCH MODSEQ "/flags/\\\\draft" all %d' % (value + 1,)),
            b"* SEARCH\r\nc OK SEARCH completed\r\n",
        )
        self.assertEqual(
            self.command(b"d SEARCH RETURN (COUNT) MODSEQ 1"),
            b'* ESEARCH (TAG "d") COUNT 3 MODSEQ %d\r\nd OK SEARCH completed\r\n'
            % (value,),
        )

    def test_unsolicited_fetch_has_modseq(self) -> None:
        """
        With CONDSTORE on, a flag change made by another session is reported
        with UID and MODSEQ; STATUS gives HIGHESTMODSEQ.
        """
        self.select()
        self.command(b"e ENABLE CONDSTORE")
        other, _ = self.connect()
        self.select(server=other)
        self.transport.clear()
        self.command(b"a STORE 1 +FLAGS.SILENT (\\Answered)", other)
        response = self.transport.value()
        self.assertIn(
            b"* 1 FETCH (FLAGS (\\Answered \\Recent) UID 1 MODSEQ (%d))"
            % (self.folder.modseq(1),),
            response,
        )
        self.assertIn(
            b'* STATUS "INBOX" (HIGHESTMODSEQ %d)' % (self.folder.highest_modseq(),),
            self.command(b"c STATUS INBOX (HIGHESTMODSEQ)", other),
        )


class BadExtensionInputTests(ServerFixture):
    """
    Malformed uses of the new commands and arguments get BAD or NO, never
    a server error, and the session goes on.
    """

    def test_garbage(self) -> None:
        """
        Each malformed command gets a tagged BAD or NO (no "Server error"),
        and NOOP still works after all of them.
        """
        self.store.deliver(USER, SIMPLE)
        self.select()
        for line in (
            b"a MOVE",
            b"a MOVE 1",
            b"a UID MOVE x INBOX",
            b"a UID EXPUNGE",
            b"a UID EXPUNGE 1 2",
            b"a UID BOGUS 1",
            b"a STORE 1 (UNCHANGEDSINCE x) FLAGS ()",
            b"a STORE 1 (UNCHANGEDSINCE 1 FLAGS ()",
            b"a STORE 1 (FOO 1) FLAGS ()",
            b"a FETCH 1 (MODSEQ",
            b"a FETCH 1 ()",
            b"a FETCH 1 (FLAGS) (CHANGEDSINCE)",
            b"a FETCH *:*:* FLAGS",
            b"a SEARCH",
            b"a SEARCH RETURN",
            b"a SEARCH RETURN (MIN",
            b"a SEARCH CHARSET",
            b"a SEARCH CHARSET KOI8-X ALL",
            b"a SEARCH MODSEQ",
            b"a SEARCH MODSEQ x",
            b'a SEARCH SUBJECT "open',
            b"a SEARCH (ALL",
            b"a SEARCH ALL)",
            b"a ENABLE",
            b"a ID (",
            b"a ID x",
            b"a SELECT INBOX (CONDSTORE",
            b"a SELECT INBOX CONDSTORE",
            b'a CREATE "a\\x"',
            b"a CREATE {5",
            b"a APPEND INBOX (\\Seen) {3+",
            b"a STATUS INBOX (BOGUS)",
            b"a UNSELECT extra",
        ):
            response = self.command(line)
            self.assertRegex(
                response.split(b"\r\n")[-2], rb"^a (BAD|NO) ", msg=repr(line)
            )
            self.assertNotIn(b"Server error", response, line)
            if b"UNSELECT" not in line:
                self.assertIn(b"OK", self.command(b"z NOOP"), line)
        self.assertEqual(self.command(b"z NOOP"), b"z OK NOOP completed\r\n")


class IMAP4rev2Tests(ServerFixture):
    """
    ENABLE IMAP4rev2 switches the session to RFC 9051's forms.
    """

    def setUp(self) -> None:
        super().setUp()
        self.store.deliver(USER, SIMPLE)
        self.store.deliver(USER, SIMPLE)
        self.login()

    def test_announced_next_to_rev1(self) -> None:
        """
        CAPABILITY names IMAP4rev1 then IMAP4rev2.
        """
        line = self.command(b"a CAPABILITY").split(b"\r\n")[0].split()
        self.assertEqual(line[2:4], [b"IMAP4rev1", b"IMAP4rev2"])

    def test_rev2_forms(self) -> None:
        """
        Once enabled: SELECT sends no RECENT, FLAGS carry no C{\\\\Recent},
        SEARCH answers with ESEARCH, a second SELECT says [CLOSED].
        """
        self.assertEqual(
            self.command(b"a ENABLE IMAP4rev2"),
            b"* ENABLED IMAP4rev2\r\na OK ENABLE completed\r\n",
        )
        selected = self.command(b"b SELECT INBOX")
        self.assertNotIn(b"RECENT", selected)
        self.assertEqual(
            self.command(b"c FETCH 1 FLAGS"),
            b"* 1 FETCH (FLAGS ())\r\nc OK FETCH completed\r\n",
        )
        self.assertEqual(
            self.command(b"d SEARCH ALL"),
            b'* ESEARCH (TAG "d") ALL 1:2\r\nd OK SEARCH completed\r\n',
        )
        self.assertEqual(
            self.command(b"e UID SEARCH NOT ALL"),
            b'* ESEARCH (TAG "e") UID\r\ne OK SEARCH completed\r\n',
        )
        self.assertIn(b"* OK [CLOSED]", self.command(b"f EXAMINE INBOX"))
        self.store.deliver(USER, SIMPLE)
        self.assertNotIn(b"RECENT", self.command(b"g NOOP"))

    def test_utf8_names(self) -> None:
        """
        Once enabled, mailbox names are UTF-8 both ways (no modified
        UTF-7); before, the same bytes are refused.
        """
        self.assertIn(b"a NO", self.command(b'a CREATE "Entw\xc3\xbcrfe"'))
        self.command(b"b ENABLE IMAP4rev2")
        self.assertIn(b"c OK", self.command(b'c CREATE "Entw\xc3\xbcrfe"'))
        self.assertIn("Entwürfe", self.store.mailboxes(USER))
        self.assertIn(
            b'* LIST (\\HasNoChildren) "." {9}\r\nEntw\xc3\xbcrfe\r\n',
            self.command(b'd LIST "" *'),
        )
        self.assertIn(b"e OK", self.command(b"e SELECT {9+}\r\nEntw\xc3\xbcrfe"))


class SearchResTests(ServerFixture):
    """
    SEARCHRES (RFC 5182): C{SEARCH RETURN (SAVE)} and C{$}.
    """

    def setUp(self) -> None:
        super().setUp()
        for _ in range(4):
            self.store.deliver(USER, SIMPLE)
        self.select()
        self.command(b"a STORE 2:3 +FLAGS.SILENT (\\Flagged)")

    def test_save_and_use(self) -> None:
        """
        SAVE alone answers only OK; C{$} then stands for what was found in
        FETCH, SEARCH, UID SEARCH UID, STORE, COPY and UID EXPUNGE.
        """
        self.assertEqual(
            self.command(b"b SEARCH RETURN (SAVE) FLAGGED"),
            b"b OK SEARCH completed\r\n",
        )
        self.assertEqual(
            self.command(b"c FETCH $ (UID)"),
            b"* 2 FETCH (UID 2)\r\n* 3 FETCH (UID 3)\r\nc OK FETCH completed\r\n",
        )
        self.assertEqual(
            self.command(b"d SEARCH NOT $"),
            b"* SEARCH 1 4\r\nd OK SEARCH completed\r\n",
        )
        self.assertEqual(
            self.command(b"e UID SEARCH UID $"),
            b"* SEARCH 2 3\r\ne OK SEARCH completed\r\n",
        )
        self.command(b"f CREATE Archive")
        self.assertIn(b"[COPYUID", self.command(b"g COPY $ Archive"))
        self.command(b"h STORE $ +FLAGS.SILENT (\\Deleted)")
        self.assertIn(b"i OK", self.command(b"i UID EXPUNGE $"))
        self.assertEqual(self.store.folder(USER).uids(), [1, 4])
        self.assertEqual(self.command(b"j FETCH $ (UID)"), b"j OK FETCH completed\r\n")

    def test_save_min_max(self) -> None:
        """
        SAVE with MIN and MAX (and no ALL or COUNT) keeps only those two,
        and the ESEARCH response still comes.
        """
        self.command(b"b STORE 4 +FLAGS.SILENT (\\Flagged)")
        self.assertEqual(
            self.command(b"c SEARCH RETURN (SAVE MIN MAX) FLAGGED"),
            b'* ESEARCH (TAG "c") MIN 2 MAX 4\r\nc OK SEARCH completed\r\n',
        )
        self.assertEqual(
            self.command(b"d SEARCH $"), b"* SEARCH 2 4\r\nd OK SEARCH completed\r\n"
        )


class ListExtendedTests(ServerFixture):
    """
    LIST-EXTENDED (RFC 5258) and LIST-STATUS (RFC 5819).
    """

    def setUp(self) -> None:
        super().setUp()
        self.store.deliver(USER, SIMPLE)
        self.login()
        for name in (b"Sent", b"Work", b"Work.Old"):
            self.command(b"c CREATE " + name)
        self.command(b"s SUBSCRIBE Work")

    def test_selection_and_return(self) -> None:
        """
        (SUBSCRIBED) lists subscribed mailboxes with C{\\\\Subscribed};
        (SPECIAL-USE) only those with a special use; several patterns
        are merged; RETURN (SUBSCRIBED) marks without filtering.
        """
        self.assertEqual(
            self.command(b'a LIST (SUBSCRIBED) "" *'),
            b'* LIST (\\HasChildren \\Subscribed) "." "Work"\r\n'
            b"a OK LIST completed\r\n",
        )
        self.assertEqual(
            self.command(b'b LIST (SPECIAL-USE) "" *'),
            b'* LIST (\\HasNoChildren \\Sent) "." "Sent"\r\nb OK LIST completed\r\n',
        )
        response = self.command(b'c LIST "" (INBOX "Work.*") RETURN (SUBSCRIBED)')
        self.assertEqual(
            response,
            b'* LIST (\\HasNoChildren) "." "INBOX"\r\n'
            b'* LIST (\\HasNoChildren) "." "Work.Old"\r\n'
            b"c OK LIST completed\r\n",
        )

    def test_status(self) -> None:
        """
        RETURN (STATUS (...)) follows each selectable mailbox's LIST line
        with its STATUS.
        """
        response = self.command(b'a LIST "" % RETURN (STATUS (MESSAGES UIDNEXT))')
        self.assertIn(
            b'* LIST (\\HasNoChildren) "." "INBOX"\r\n'
            b'* STATUS "INBOX" (MESSAGES 1 UIDNEXT 2)\r\n',
            response,
        )
        self.assertIn(b'* STATUS "Work" (MESSAGES 0 UIDNEXT 1)', response)

    def test_bad(self) -> None:
        """
        Unknown options, a missing pattern or a misplaced RETURN are BAD.
        """
        for line in (
            b'a LIST (RECURSIVEMATCH) "" *',
            b'a LIST ""',
            b'a LIST "" * RETURN',
            b'a LIST "" * RETURN (BOGUS)',
            b'a LIST "" * RETURN (STATUS)',
            b'a LIST "" () ',
        ):
            self.assertIn(b"a BAD", self.command(line), line)


class BinaryTests(ServerFixture):
    """
    BINARY (RFC 3516): parts with their transfer encoding undone.
    """

    def setUp(self) -> None:
        super().setUp()
        self.store.deliver(USER, MULTIPART)
        self.select()

    def test_decoded_parts(self) -> None:
        """
        BINARY.PEEK decodes quoted-printable and base64 (a literal8 when
        the result holds NUL), BINARY.SIZE gives the decoded size, partial
        ranges slice the decoded bytes, a missing part is NIL; none of it
        sets C{\\\\Seen} but BINARY[] (the whole message) does.
        """
        response = self.command(b"a FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[4])")
        self.assertEqual(
            response,
            b"* 1 FETCH (BINARY[1] {21}\r\nHello \xc3\xa9\r\nsecond line"
            b" BINARY.SIZE[4] 4)\r\na OK FETCH completed\r\n",
        )
        self.assertEqual(
            self.command(
                b"b FETCH 1 (BINARY.PEEK[4] BINARY.PEEK[1]<6.2> BINARY.PEEK[9])"
            ),
            b"* 1 FETCH (BINARY[4] ~{4}\r\n\x00\x01\x02\x03"
            b" BINARY[1]<6> {2}\r\n\xc3\xa9 BINARY[9] NIL)\r\nb OK FETCH completed\r\n",
        )
        self.assertEqual(self.store.folder(USER).entry(1).flags, ())
        response = self.command(b"c FETCH 1 (BINARY[])")
        self.assertIn(b"BINARY[] {%d}\r\n" % len(MULTIPART), response)
        self.assertIn(b"FLAGS (\\Seen", response)

    def test_unknown_encoding_and_bad_syntax(self) -> None:
        """
        A part in an unknown transfer encoding gets NO [UNKNOWN-CTE];
        sections other than part numbers are BAD.
        """
        self.store.deliver(
            USER,
            b"Content-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 x\r\n",
        )
        self.command(b"n NOOP")
        self.assertIn(
            b"a NO [UNKNOWN-CTE]", self.command(b"a FETCH 2 (BINARY.PEEK[1] UID)")
        )
        self.command(b"c APPEND INBOX ~{3}")
        self.assertIn(b"c OK [APPENDUID", self.send(b"a\x00b\r\n"))
        self.assertEqual(self.store.messages(USER)[-1], b"a\x00b")
        for line in (
            b"b FETCH 1 BINARY[HEADER]",
            b"b FETCH 1 BINARY[0]",
            b"b FETCH 1 BINARY.SIZE[1]<0.5>",
            b"b FETCH 1 BINARY[1]<5>",
        ):
            self.assertIn(b"b BAD", self.command(line), line)


class LiteralLimitTests(ServerFixture):
    def test_endless_literals(self) -> None:
        """
        A command that keeps announcing literals past the line limit is cut
        off with BYE: memory stays bounded.
        """
        self.login()
        self.command(b"s SELECT INBOX")
        chunk = b"x" * 1000
        data = b"a SEARCH " + b"".join(
            b"SUBJECT {%d+}\r\n%s " % (len(chunk), chunk) for _ in range(3)
        )
        response = self.send(data + b"SUBJECT {1000+}\r\n" + chunk + b"\r\n")
        self.assertIn(b"* BYE Command too long", response)
        self.assertTrue(self.transport.disconnecting)


class UTF8AcceptTests(ServerFixture):
    """
    UTF8=ACCEPT (RFC 6855): UTF-8 names and strings once enabled.
    """

    def test_enabled(self) -> None:
        """
        After ENABLE UTF8=ACCEPT, mailbox names are UTF-8, SEARCH with a
        CHARSET is BAD (strings are UTF-8 already, and match), and APPEND
        takes the C{UTF8 (~{n})} data item; before, that item is BAD.
        """
        self.store.deliver(USER, b"Subject: =?utf-8?q?caf=C3=A9?=\r\n\r\nx\r\n")
        self.login()
        self.command(b"a APPEND INBOX UTF8 (~{3}")
        self.assertIn(b"a BAD", self.transport.value())
        self.assertEqual(
            self.command(b"b ENABLE UTF8=ACCEPT"),
            b"* ENABLED UTF8=ACCEPT\r\nb OK ENABLE completed\r\n",
        )
        self.assertIn(b"c OK", self.command(b'c CREATE "Gr\xc3\xbc\xc3\x9fe"'))
        self.assertIn("Grüße", self.store.mailboxes(USER))
        self.command(b"d SELECT INBOX")
        self.assertIn(b"e BAD", self.command(b"e SEARCH CHARSET UTF-8 ALL"))
        self.assertEqual(
            self.command(b'f SEARCH SUBJECT "caf\xc3\xa9"'),
            b"* SEARCH 1\r\nf OK SEARCH completed\r\n",
        )
        message = "Subject: Grüße\r\n\r\nhi\r\n".encode()
        self.command(b"g APPEND INBOX UTF8 (~{%d+}\r\n%s)" % (len(message), message))
        self.assertIn(b"g OK [APPENDUID", self.transport.value())
        self.assertEqual(self.store.messages(USER)[-1], message)

    def test_refused_command_with_literal_plus(self) -> None:
        """
        A command refused before reading its non-synchronizing literals has
        their octets (and the rest of its line) dropped, not read as
        commands; the next command is answered normally.
        """
        self.login()
        response = self.send(
            b'a RENAME "bad/name" {8+}\r\nb NOOP\r\n {5+}\r\nc BAD\r\nd NOOP\r\n'
        )
        self.assertEqual(
            response.split(b"\r\n")[1:],
            [b"d OK NOOP completed", b""],
        )
        self.assertTrue(response.startswith(b"a NO "), response)
        response = self.send(b"e BOGUS {3+}\r\nabc\r\nf NOOP\r\n")
        self.assertEqual(
            response, b"e BAD Unsupported command\r\nf OK NOOP completed\r\n"
        )
