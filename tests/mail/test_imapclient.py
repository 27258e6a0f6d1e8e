"""
Tests for L{twisted_netlab.mail.imapclient}'s reading of FETCH answers: the
answers of a whole-mailbox fetch, read without the general parser, come out
exactly as the general parser gives them, and every other shape still goes
through it.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail import imapclient
from twisted_netlab.mail.imapclient import BadResponse, fetch_items

BODY = b"Subject: x\r\n\r\n) {3}\r\nabc ) BODY[] \r\n"


def literal(data: bytes) -> bytes:
    return b"{%d}\r\n%s" % (len(data), data)


class FetchItemsTests(SynchronousTestCase):
    def general(self, lines: list[bytes]) -> dict[int, dict[str, object]]:
        """
        C{fetch_items} with the common answers' shortcut turned off.
        """
        common = imapclient._common_fetch
        imapclient._common_fetch = lambda line: None
        try:
            return fetch_items(lines)
        finally:
            imapclient._common_fetch = common

    def test_common_answers(self) -> None:
        """
        C{UID n RFC822.SIZE s} and C{UID n BODY[] {s}...} answers (a body
        that looks like IMAP syntax included) give what the general parser
        gives, merged per message number.
        """
        lines = [
            b"1 FETCH (UID 7 RFC822.SIZE 1234)",
            b"2 FETCH (UID 9 RFC822.SIZE 5)",
            b"1 FETCH (UID 7 BODY[] " + literal(BODY) + b")",
            b"2 FETCH (UID 9 BODY[] " + literal(b"") + b")",
        ]
        expected = {
            7: {"UID": b"7", "RFC822.SIZE": b"1234", "BODY[]": BODY},
            9: {"UID": b"9", "RFC822.SIZE": b"5", "BODY[]": b""},
        }
        self.assertEqual(self.general(lines), expected)
        self.assertEqual(fetch_items(lines), expected)
        self.assertIsNotNone(imapclient._common_fetch(lines[0]))
        self.assertIsNotNone(imapclient._common_fetch(lines[2]))

    def test_other_shapes(self) -> None:
        """
        Other orders, other items, more after the literal, lower case: the
        general parser reads them, with the same result it always gives.
        """
        lines = [
            b"3 FETCH (BODY[] " + literal(BODY) + b" UID 4)",
            b"5 FETCH (UID 6 BODY[] " + literal(BODY) + b" FLAGS (\\Seen))",
            b"7 fetch (uid 8 rfc822.size 10)",
            b"9 FETCH (UID 10 RFC822.SIZE 11 FLAGS ())",
            b"11 FETCH (UID 12 BODY[] {99}\r\nshort)",
            b"13 FETCH (FLAGS (\\Seen))",
        ]
        for line in lines:
            self.assertIsNone(imapclient._common_fetch(line), line)
        good = lines[:4]
        self.assertEqual(fetch_items(good), self.general(good))
        self.assertEqual(fetch_items(good)[6]["FLAGS"], [b"\\Seen"])
        self.assertEqual(fetch_items(good)[8]["RFC822.SIZE"], b"10")
        self.assertRaises(BadResponse, fetch_items, [lines[4]])
