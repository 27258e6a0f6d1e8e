"""
Tests for L{twisted_netlab.mail.lab.imap.syntax}: the pieces of the IMAP
command grammar the lab's server reads itself.
"""

from __future__ import annotations

import contextlib

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.imap.syntax import (
    IMAPSyntaxError,
    Literal,
    LiteralAnnouncement,
    Quoted,
    is_atom,
    literal_at_end,
    parse_sequence_set,
    quote,
    read_quoted,
    sequence_text,
    tokenize,
)


class QuotedStringTests(SynchronousTestCase):
    def test_escapes(self) -> None:
        """
        C{\\"} and C{\\\\} inside a quoted string stand for C{"} and C{\\};
        the string ends at the first unescaped quote, one space after it is
        skipped.
        """
        self.assertEqual(read_quoted(b'"foo \\"bar\\"" rest'), (b'foo "bar"', b"rest"))
        self.assertEqual(read_quoted(b'"a\\\\" "b"'), (b"a\\", b'"b"'))
        self.assertEqual(read_quoted(b'""'), (b"", b""))

    def test_bad(self) -> None:
        """
        An unterminated string, or a backslash before anything but C{"} or
        C{\\}, is a syntax error.
        """
        for line in (b'"abc', b'"a\\b"', b'"ends with \\', b'"a\r\nb"', b"abc"):
            self.assertRaises(IMAPSyntaxError, read_quoted, line)

    def test_quote_round_trip(self) -> None:
        """
        What L{quote} makes, L{read_quoted} takes back; 8-bit data becomes
        a literal.
        """
        for value in (b"plain", b'foo "bar"', b"back\\slash", b'\\"', b""):
            self.assertEqual(read_quoted(quote(value)), (value, b""))
        self.assertEqual(quote(b"caf\xc3\xa9"), b"{5}\r\ncaf\xc3\xa9")


class LiteralTests(SynchronousTestCase):
    def test_announcements(self) -> None:
        """
        C{{n}} and LITERAL+'s C{{n+}} at the end of a line are literals;
        anything else is not.
        """
        self.assertEqual(
            literal_at_end(b"SUBJECT {7}"), LiteralAnnouncement(b"SUBJECT ", 7, True)
        )
        self.assertEqual(literal_at_end(b"{12+}"), LiteralAnnouncement(b"", 12, False))
        for line in (b"{7} x", b"{-1}", b"{a}", b'"{7}"', b"{7++}"):
            self.assertIsNone(literal_at_end(line), line)


class SequenceSetTests(SynchronousTestCase):
    def test_star_star(self) -> None:
        """
        C{*:*} is the last message, as C{*} is; other sets parse as usual.
        """
        self.assertEqual(list(parse_sequence_set(b"*:*", 5)), [5])
        self.assertEqual(list(parse_sequence_set(b"1:2,*:*", 5)), [1, 2, 5])
        self.assertEqual(list(parse_sequence_set(b"3:*", 5)), [3, 4, 5])

    def test_bad(self) -> None:
        """
        Empty parts, zero, and other characters are refused.
        """
        for text in (b"", b"1,,2", b"0", b"1:0", b"a", b"1:2)", b"-1"):
            self.assertRaises(IMAPSyntaxError, parse_sequence_set, text)

    def test_written_compactly(self) -> None:
        """
        Ascending numbers are written as runs (C{1:3,5}), and read back as
        the same numbers.
        """
        self.assertEqual(sequence_text([1, 2, 3, 5, 7, 8]), b"1:3,5,7:8")
        self.assertEqual(sequence_text([4]), b"4")
        self.assertEqual(sequence_text([]), b"")
        ids = [2, 3, 4, 9, 11, 12]
        self.assertEqual(list(parse_sequence_set(sequence_text(ids))), ids)


class TokenizeTests(SynchronousTestCase):
    def test_tokens(self) -> None:
        """
        Atoms, quoted strings (escapes read), literals between pieces, and
        nested parentheses.
        """
        tokens = tokenize(
            [b'OR (SEEN 1:3) SUBJECT "a \\"b\\"" CHARSET ', Literal(b"x y"), b" ALL"]
        )
        expected = [b"OR", [b"SEEN", b"1:3"], b"SUBJECT", b'a "b"']
        expected.extend([b"CHARSET", b"x y", b"ALL"])
        self.assertEqual(tokens, expected)
        self.assertIsInstance(tokens[3], Quoted)
        self.assertIsInstance(tokens[5], Literal)

    def test_is_atom(self) -> None:
        """
        An atom matches its name in any case; a quoted string or a literal
        with the same text, or a list, does not.
        """
        self.assertTrue(is_atom(b"return", b"RETURN"))
        self.assertFalse(is_atom(b"RETURNS", b"RETURN"))
        self.assertFalse(is_atom(Quoted(b"RETURN"), b"RETURN"))
        self.assertFalse(is_atom(Literal(b"RETURN"), b"RETURN"))
        self.assertFalse(is_atom([b"RETURN"], b"RETURN"))

    def test_unbalanced(self) -> None:
        """
        Unbalanced parentheses and bad quoted strings are syntax errors.
        """
        for line in (b"(SEEN", b"SEEN)", b'"open', b"((a)"):
            self.assertRaises(IMAPSyntaxError, tokenize, [line])


class PropertyTests(SynchronousTestCase):
    """
    Properties over arbitrary input (Hypothesis).
    """

    @given(st.binary(max_size=200))
    @settings(max_examples=300, deadline=None)
    def test_quote_round_trip(self, value: bytes) -> None:
        """
        Whatever the bytes, L{quote} gives a quoted string that
        L{read_quoted} reads back exactly, or a literal of exactly them.
        """
        quoted = quote(value)
        if quoted.startswith(b"{"):
            self.assertEqual(quoted, b"{%d}\r\n%s" % (len(value), value))
        else:
            self.assertEqual(read_quoted(quoted + b" rest"), (value, b"rest"))

    @given(
        st.lists(st.one_of(st.binary(max_size=40), st.binary(max_size=10).map(Literal)))
    )
    @settings(max_examples=300, deadline=None)
    def test_tokenize_total(self, pieces: list[bytes]) -> None:
        """
        The tokenizer either parses or raises L{IMAPSyntaxError}: no other
        exception, whatever the input.
        """
        with contextlib.suppress(IMAPSyntaxError):
            tokenize(pieces)

    @given(st.binary(max_size=30))
    @settings(max_examples=300, deadline=None)
    def test_sequence_set_total(self, text: bytes) -> None:
        """
        A sequence set parses or raises L{IMAPSyntaxError}, nothing else.
        """
        with contextlib.suppress(IMAPSyntaxError):
            parse_sequence_set(text, 10)
