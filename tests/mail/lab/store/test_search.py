"""
Tests for L{twisted_netlab.mail.lab.store.search}: the one matcher over decoded
text and Mailpit's search language.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.mail.lab.imaptesting import USER, ServerFixture
from twisted_netlab.mail.lab.store import search
from twisted_netlab.mail.lab.store.parsed import ParsedMessage
from twisted_netlab.mail.lab.store.search import (
    FactsCache,
    QueryError,
    SearchFacts,
    parse_query,
)

ENCODED = (
    b"From: =?utf-8?q?J=C3=BCrgen?= <jurgen@example.test>\r\n"
    b"To: ann@example.test\r\n"
    b"Cc: carl@example.test\r\n"
    b"Bcc: secret@example.test\r\n"
    b"Subject: =?iso-8859-1?q?Caf=E9_cr=E8me?=\r\n"
    b"Message-ID: <id-1@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain; charset=koi8-r\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n"
    + __import__("base64").encodebytes("Привет, мир".encode("koi8-r"))
    + b"--b\r\nContent-Type: text/html; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\n"
    b"<p>na=C3=AFve <b>split</b>word</p>\r\n"
    b"--b\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Disposition: attachment; filename=invoice.bin\r\n\r\nxyz\r\n--b--\r\n"
)
PLAIN = (
    b"From: Bob <bob@example.test>\r\nTo: ann@example.test\r\n"
    b"Subject: plain hello\r\n\r\nnothing special\r\n"
)


@dataclass
class Stored:
    """A candidate message for the matcher."""

    data: bytes
    flags: tuple[str, ...] = ()
    received: float = 0.0
    envelope: Any = None
    mailbox: str = "ann@example.test"
    facts: SearchFacts = field(init=False)

    def __post_init__(self) -> None:
        self.facts = SearchFacts.from_parsed(ParsedMessage(self.data))


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    rcpt_to: tuple[str, ...]


class MatcherTests(SynchronousTestCase):
    """
    The query nodes match decoded text, whatever the transfer encoding or
    charset.
    """

    def setUp(self) -> None:
        self.encoded = Stored(
            ENCODED,
            flags=("\\Seen",),
            received=datetime.datetime(2026, 5, 1, 12, tzinfo=datetime.UTC).timestamp(),
            envelope=Envelope(
                "bounce@sender.test", ("ann@example.test", "zed@bcc.test")
            ),
        )
        self.plain = Stored(
            PLAIN,
            received=datetime.datetime(2026, 6, 1, tzinfo=datetime.UTC).timestamp(),
        )

    def found(self, query: str) -> list[str]:
        q = parse_query(query)
        return [
            name
            for name, m in (("encoded", self.encoded), ("plain", self.plain))
            if q.matches(m)
        ]

    def test_decoded_words(self) -> None:
        """
        Free words match the encoded-word subject and sender's name, a base64
        KOI8-R body, a quoted-printable HTML body (its visible text too), and
        attachment names; case does not matter.
        """
        self.assertEqual(self.found("café"), ["encoded"])
        self.assertEqual(self.found("CRÈME"), ["encoded"])
        self.assertEqual(self.found("jürgen"), ["encoded"])
        self.assertEqual(self.found("привет"), ["encoded"])
        self.assertEqual(self.found("naïve"), ["encoded"])
        self.assertEqual(self.found('"split word"'), ["encoded"])
        self.assertEqual(self.found("invoice"), ["encoded"])
        self.assertEqual(self.found("hello"), ["plain"])
        self.assertEqual(self.found("hello special"), ["plain"])
        self.assertEqual(self.found("hello café"), [])

    def test_raw_encodings_do_not_match(self) -> None:
        """
        What only the raw encoding has (a base64 run, =E9) is not found.
        """
        self.assertEqual(self.found("Caf=E9"), [])
        self.assertEqual(self.found("8NLJ"), [])

    def test_phrases(self) -> None:
        """
        A quoted phrase must occur as a whole.
        """
        self.assertEqual(self.found('"plain hello"'), ["plain"])
        self.assertEqual(self.found('"hello plain"'), [])

    def test_address_fields(self) -> None:
        """
        from:, to:, cc:, bcc: match their headers; from: and to: also the
        SMTP envelope (so a Bcc recipient is found with to:).
        """
        self.assertEqual(self.found("from:jurgen"), ["encoded"])
        self.assertEqual(self.found("from:Jürgen"), ["encoded"])
        self.assertEqual(self.found("from:bounce@sender.test"), ["encoded"])
        self.assertEqual(self.found("to:ann@example.test"), ["encoded", "plain"])
        self.assertEqual(self.found("to:zed@bcc.test"), ["encoded"])
        self.assertEqual(self.found("cc:carl"), ["encoded"])
        self.assertEqual(self.found("cc:zed"), [])
        self.assertEqual(self.found("bcc:secret"), ["encoded"])
        self.assertEqual(self.found('from:"Bob <bob@"'), ["plain"])

    def test_bcc_from_the_envelope(self) -> None:
        """
        bcc: also finds envelope recipients that To, Cc and Bcc do not
        name (Mailpit adds them to Bcc), and never one that To names.
        """
        self.assertEqual(self.found("bcc:zed@bcc.test"), ["encoded"])
        self.assertEqual(self.found("bcc:ann@example.test"), [])
        self.assertEqual(self.found("-bcc:zed"), ["plain"])
        self.assertEqual(
            search.envelope_only(self.encoded.facts, self.encoded.envelope),
            ("zed@bcc.test",),
        )
        shouted = Envelope("x@y.test", ("ANN@example.test", "Zed@BCC.test"))
        self.assertEqual(
            search.envelope_only(self.encoded.facts, shouted), ("Zed@BCC.test",)
        )
        self.assertEqual(search.envelope_only(self.plain.facts, None), ())

    def test_tags(self) -> None:
        """
        tag:NAME is the keyword (any case; a space is the keyword's ~),
        -tag: its absence, is:tagged / is:untagged any keyword.
        """
        self.encoded.flags = ("\\Seen", "Urgent", "Needs~review")
        self.assertEqual(self.found("tag:urgent"), ["encoded"])
        self.assertEqual(self.found('tag:"needs review"'), ["encoded"])
        self.assertEqual(self.found("-tag:Urgent"), ["plain"])
        self.assertEqual(self.found("tag:urg"), [])
        self.assertEqual(self.found("is:tagged"), ["encoded"])
        self.assertEqual(self.found("is:untagged"), ["plain"])
        self.assertEqual(self.found("tag:\\Seen"), [])

    def test_subject_and_message_id(self) -> None:
        """
        subject: looks at the decoded subject only; message-id: is exact,
        with or without angle brackets.
        """
        self.assertEqual(self.found("subject:crème"), ["encoded"])
        self.assertEqual(self.found("subject:special"), [])
        self.assertEqual(self.found("message-id:id-1@example.test"), ["encoded"])
        self.assertEqual(self.found("message-id:<id-1@example.test>"), ["encoded"])
        self.assertEqual(self.found("message-id:id-1"), [])

    def test_flags_attachments_dates_sizes(self) -> None:
        """
        is:read/is:unread read \\Seen; has:attachment; before:/after: the
        received time; larger:/smaller: the size.
        """
        self.assertEqual(self.found("is:read"), ["encoded"])
        self.assertEqual(self.found("is:unread"), ["plain"])
        self.assertEqual(self.found("has:attachment"), ["encoded"])
        self.assertEqual(self.found("before:2026-05-02"), ["encoded"])
        self.assertEqual(self.found("after:2026-05-02"), ["plain"])
        self.assertEqual(self.found("after:2026-05-01T12:00:00Z"), ["encoded", "plain"])
        self.assertEqual(self.found("after:2026-05-01T12:00:01Z"), ["plain"])
        self.assertEqual(self.found(f"larger:{len(PLAIN)}"), ["encoded"])
        self.assertEqual(self.found(f"smaller:{len(ENCODED)}"), ["plain"])
        self.assertEqual(self.found("larger:1M"), [])

    def test_negation(self) -> None:
        """
        A leading - negates any term.
        """
        self.assertEqual(self.found("-café"), ["plain"])
        self.assertEqual(self.found("-is:read"), ["plain"])
        self.assertEqual(self.found('-"plain hello"'), ["encoded"])
        self.assertEqual(self.found("to:ann -from:bob"), ["encoded"])

    def test_mailbox_and_empty(self) -> None:
        """
        mailbox: filters by lab mailbox; an empty query matches all.
        """
        self.assertEqual(self.found("mailbox:ANN@example.test"), ["encoded", "plain"])
        self.assertEqual(self.found("mailbox:bob@example.test"), [])
        self.assertEqual(self.found("   "), ["encoded", "plain"])

    def test_unknown_prefix_is_a_word(self) -> None:
        """
        A colon in a word that is not one of ours (a URL) is part of the word.
        """
        self.assertEqual(parse_query("http://x"), search.Words("http://x"))

    def test_bad_queries(self) -> None:
        """
        A query that cannot be parsed raises L{QueryError} with one line.
        """
        for query in [
            '"unterminated',
            'subject:"open',
            "is:bogus",
            "has:nothing",
            "before:yesterday",
            "after:2024-13-01",
            "larger:big",
            "smaller:",
            "from:",
            "-",
            'a"b',
        ]:
            with self.subTest(query=query):
                e = self.assertRaises(QueryError, parse_query, query)
                self.assertTrue(str(e))
                self.assertNotIn("\n", str(e))

    def test_imap_nodes(self) -> None:
        """
        The nodes IMAP SEARCH builds: HEADER (empty needle: present),
        BODY (body only) and TEXT (headers and body), all decoded.
        """
        m = self.encoded
        self.assertTrue(search.HeaderContains("subject", "café").matches(m))
        self.assertTrue(search.HeaderContains("message-id", "").matches(m))
        self.assertFalse(search.HeaderContains("x-missing", "").matches(m))
        self.assertTrue(search.BodyContains("мир").matches(m))
        self.assertFalse(search.BodyContains("café").matches(m))
        self.assertTrue(search.TextContains("café").matches(m))
        self.assertTrue(search.TextContains("мир").matches(m))


class FactsCacheTests(SynchronousTestCase):
    """
    L{FactsCache} parses each message once and stays within its budget.
    """

    def test_parses_once(self) -> None:
        """
        A second lookup of the same key does not load the message again.
        """
        cache = FactsCache()
        loads: list[int] = []

        def load() -> bytes:
            loads.append(1)
            return PLAIN

        first = cache.get("k", load)
        self.assertIs(cache.get("k", load), first)
        self.assertEqual(len(loads), 1)

    def test_bounded(self) -> None:
        """
        Past C{max_chars}, the least recently used facts are dropped.
        """
        cache = FactsCache(max_chars=5000)
        for i in range(100):
            cache.get(i, lambda: PLAIN)
        self.assertLessEqual(cache.chars, 5000)
        self.assertLess(len(cache), 100)
        self.assertGreater(len(cache), 0)
        cache.clear()
        self.assertEqual((len(cache), cache.chars), (0, 0))

    def test_huge_message_not_kept(self) -> None:
        """
        A message larger than an eighth of the budget is matched, not kept.
        """
        cache = FactsCache(max_chars=8000)
        facts = cache.get("big", lambda: PLAIN + b"x" * 5000)
        self.assertIn("xxxx", facts.body_folded)
        self.assertEqual(len(cache), 0)


class IMAPSearchTests(ServerFixture):
    """
    The IMAP server's SEARCH text keys use the same decoded matcher.
    """

    def setUp(self) -> None:
        super().setUp()
        self.store.deliver(USER, ENCODED)
        self.store.deliver(USER, PLAIN)
        self.select()

    def test_decoded_keys(self) -> None:
        """
        SUBJECT, FROM, HEADER, BODY and TEXT find encoded words, base64
        KOI8-R bodies and quoted-printable HTML by their decoded text, and
        no longer by their raw encoding.
        """
        cases = {
            b'CHARSET UTF-8 SUBJECT "caf\xc3\xa9"': b"1",
            b'CHARSET UTF-8 FROM "j\xc3\xbcrgen"': b"1",
            b"HEADER Subject hello": b"2",
            b'CHARSET UTF-8 BODY "\xd0\xbc\xd0\xb8\xd1\x80"': b"1",
            b'CHARSET UTF-8 BODY "na\xc3\xafve"': b"1",
            b'CHARSET UTF-8 TEXT "cr\xc3\xa8me"': b"1",
            b"TEXT special": b"2",
            b"BODY =E9": b"",
            b"TEXT 8NLJ": b"",
            b'HEADER X-Missing ""': b"",
        }
        for query, expected in cases.items():
            self.assertEqual(
                self.command(b"s SEARCH " + query),
                b"* SEARCH"
                + (b" " + expected if expected else b"")
                + b"\r\ns OK SEARCH completed\r\n",
                query,
            )
