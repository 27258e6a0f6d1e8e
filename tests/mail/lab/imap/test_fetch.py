"""
Tests for L{twisted_netlab.mail.lab.imap.fetch}: FETCH items, sections,
partial fetches and C{\\Seen}, over the real C{IMAP4Server} conversation.
"""

from __future__ import annotations

import os

from tests.mail.lab.imaptesting import (
    MULTIPART,
    SIMPLE,
    USER,
    ServerFixture,
)
from twisted_netlab.mail.lab.imap import fetch
from twisted_netlab.mail.lab.store.maildir import MailStore


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


class FlagFetchTests(ServerFixture):
    """
    FETCH of UIDs, FLAGS and MODSEQ only, rendered from the folder's flag
    words (L{fetch.FlagFetchResponder}): the same bytes as the general
    responder, for every shape of the request and session.
    """

    def setUp(self) -> None:
        super().setUp()
        for n in range(5):
            self.store.deliver(USER, SIMPLE + b"%d\r\n" % n)
        self.select()
        folder = self.store.folder(USER)
        folder.set_flags({2: ["\\Seen", "$Label"], 4: ["\\Flagged", "Work"]})
        for n in range(3):
            self.store.deliver(USER, SIMPLE + b"late %d\r\n" % n)
        # Another session expunges message 3: this one has not been told.
        other, _ = self.connect()
        self.select(server=other)
        self.command(b"d UID STORE 3 +FLAGS (\\Deleted)", other)
        self.command(b"e EXPUNGE", other)
        self.used: list[int] = []
        start = fetch.FlagFetchResponder.start

        def counted(responder: fetch.FlagFetchResponder) -> None:
            self.used.append(1)
            start(responder)

        self.patch(fetch.FlagFetchResponder, "start", counted)

    def both(self, line: bytes) -> tuple[bytes, bytes]:
        """C{line}'s answer from the flag-word responder and from the other."""
        fast = self.command(line)
        self.assertEqual(len(self.used), 1, line)
        self.used.clear()
        self.patch(fetch, "_flags_only", lambda request: False)
        slow = self.command(line)
        self.assertEqual(self.used, [], line)
        self.patch(fetch, "_flags_only", fetch_flags_only)
        return fast, slow

    def check(self, *lines: bytes) -> None:
        for line in lines:
            fast, slow = self.both(line)
            self.assertEqual(fast, slow, line)
            self.assertIn(b" FETCH (", fast, line)
            self.assertTrue(fast.endswith(b" OK FETCH completed\r\n"), fast)

    REQUESTS = (
        b"f FETCH 1:* FLAGS",
        b"f FETCH 1:* (UID FLAGS)",
        b"f FETCH 1:* (FLAGS UID)",
        b"f FETCH 2,4:5,1 (FLAGS)",
        b"f FETCH 3:* (FLAGS FLAGS)",
        b"f UID FETCH 1:* (FLAGS)",
        b"f UID FETCH 2:6 (UID)",
        b"f UID FETCH 1:4294967295 (UID FLAGS)",
    )

    def test_plain(self) -> None:
        """Without extensions: \\Recent and keywords, gone messages left out."""
        fast, _ = self.both(b"f FETCH 1:* (UID FLAGS)")
        self.assertNotIn(b"UID 3 ", fast)
        self.assertIn(b"FLAGS (\\Seen $Label \\Recent)", fast)
        self.check(*self.REQUESTS)

    def test_condstore(self) -> None:
        """With CONDSTORE: MODSEQ with every FLAGS, and CHANGEDSINCE."""
        self.command(b"c ENABLE CONDSTORE")
        self.check(
            *self.REQUESTS,
            b"f FETCH 1:* (MODSEQ)",
            b"f UID FETCH 1:* (FLAGS MODSEQ)",
            b"f FETCH 1:* (UID FLAGS) (CHANGEDSINCE 3)",
            b"f UID FETCH 1:* (FLAGS) (CHANGEDSINCE 1)",
        )

    def test_rev2(self) -> None:
        """Under IMAP4rev2: no \\Recent."""
        self.command(b"c ENABLE IMAP4rev2")
        fast, _ = self.both(b"f FETCH 1:* FLAGS")
        self.assertNotIn(b"\\Recent", fast)
        self.check(*self.REQUESTS)

    def test_many(self) -> None:
        """More messages than one run of flag words, and a keyword defined
        by another process meanwhile."""
        folder = self.store.folder(USER)
        for n in range(fetch._FLAG_RUN + 10):
            folder.deliver(b"Subject: %d\r\n\r\n" % n, ["\\Seen"] if n % 3 else [])
        self.command(b"n NOOP")
        MailStore(self.store.root).folder(USER).set_flags({9: ["Elsewhere"]})
        self.assertIn(b"FLAGS (Elsewhere \\Recent)", self.command(b"n NOOP"))
        self.check(b"f FETCH 1:* (FLAGS)", b"f UID FETCH 100:3000 (UID FLAGS)")
        fast, _ = self.both(b"f UID FETCH 9 FLAGS")
        self.assertIn(b"Elsewhere", fast)


fetch_flags_only = fetch._flags_only
