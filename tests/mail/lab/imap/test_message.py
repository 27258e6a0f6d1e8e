"""
Tests for L{twisted_netlab.mail.lab.imap.message}: MIME parts located in the raw
bytes, sections, and the IMAP wire forms.
"""

from __future__ import annotations

import email

from twisted.trial.unittest import SynchronousTestCase

from tests.mail.lab.imaptesting import MULTIPART
from twisted_netlab.mail.lab.imap.message import (
    Atom,
    MessagePart,
    Section,
    format_internal_date,
    imap_string,
    serialize,
    to_crlf,
)


class MessagePartTests(SynchronousTestCase):
    def test_parts_agree_with_email_package(self) -> None:
        """
        The parts found in the raw bytes have the types and bodies the stdlib
        email package finds.
        """
        top = MessagePart(MULTIPART)
        parsed = email.message_from_bytes(MULTIPART)
        self.assertEqual(len(top.children), len(parsed.get_payload()))
        for mine, theirs in zip(top.children, parsed.get_payload(), strict=True):
            self.assertEqual("/".join(mine.content_type), theirs.get_content_type())
            if not theirs.is_multipart():
                self.assertEqual(mine.body, theirs.get_payload().encode())

    def test_no_blank_line(self) -> None:
        """
        A message without a blank line is all header and an empty body; one
        starting with a blank line has an empty header.
        """
        only_header = MessagePart(b"Subject: x\r\n")
        self.assertEqual(
            (only_header.header_bytes, only_header.body), (b"Subject: x\r\n", b"")
        )
        only_body = MessagePart(b"\r\nbody")
        self.assertEqual((only_body.header_bytes, only_body.body), (b"\r\n", b"body"))
        self.assertEqual(only_body.content_type, ("text", "plain"))

    def test_unclosed_multipart_and_digest(self) -> None:
        """
        A multipart without its closing delimiter ends at the end of the
        message; parts of a digest default to message/rfc822.
        """
        data = (
            b'Content-Type: multipart/digest; boundary="b"\r\n\r\n'
            b"--b\r\n\r\nSubject: one\r\n\r\n1\r\n--b\r\n\r\nSubject: two\r\n\r\n2\r\n"
        )
        top = MessagePart(data)
        self.assertEqual(len(top.children), 2)
        self.assertEqual(top.children[1].content_type, ("message", "rfc822"))
        self.assertEqual(top.children[1].encapsulated.header("subject"), "two")  # type: ignore[union-attr]
        self.assertEqual(top.children[1].body, b"Subject: two\r\n\r\n2\r\n")

    def test_nesting_is_bounded(self) -> None:
        """
        Deeply nested multiparts stop being split at a fixed depth instead of
        recursing without end.
        """
        data = b""
        for level in range(100):
            data += (
                b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n'
                % (level, level)
            )
        part = MessagePart(data + b"\r\nleaf")
        depth = 0
        while part.children:
            part = part.children[0]
            depth += 1
        self.assertLess(depth, 40)
        self.assertIsInstance(serialize(MessagePart(data).body_structure()), bytes)

    def test_sections(self) -> None:
        """
        Section labels and missing parts.
        """
        top = MessagePart(MULTIPART)
        self.assertEqual(Section((2, 0), "HEADER").label(), b"[3.1.HEADER]")
        self.assertEqual(
            Section((), "HEADER.FIELDS", (b"FROM", b"TO")).label(),
            b"[HEADER.FIELDS (FROM TO)]",
        )
        self.assertRaises(IndexError, Section((7,)).extract, top)
        self.assertRaises(IndexError, Section((), "MIME").extract, top)
        self.assertRaises(IndexError, Section((0,), "HEADER").extract, top)

    def test_header_fields_with_continuation(self) -> None:
        """
        HEADER.FIELDS keeps a field's continuation lines.
        """
        part = MessagePart(b"Subject: a\r\n  b\r\nX-Y: z\r\n\r\nbody")
        self.assertEqual(part.header_fields([b"subject"]), b"Subject: a\r\n  b\r\n\r\n")
        self.assertEqual(
            part.header_fields([b"subject"], negate=True), b"X-Y: z\r\n\r\n"
        )


class WireFormTests(SynchronousTestCase):
    def test_strings(self) -> None:
        """
        NIL, quoted strings with escapes, and literals for 8-bit or CR/LF.
        """
        self.assertEqual(imap_string(None), b"NIL")
        self.assertEqual(imap_string('say "hi" \\'), b'"say \\"hi\\" \\\\"')
        self.assertEqual(imap_string(b"a\r\nb"), b"{4}\r\na\r\nb")
        self.assertEqual(imap_string("é"), b"{2}\r\n\xc3\xa9")
        self.assertEqual(
            serialize([Atom(b"\\Seen"), 3, None, ["x"]]), b'(\\Seen 3 NIL ("x"))'
        )

    def test_crlf_and_date(self) -> None:
        """
        Bare LFs become CRLF (CRLF stays); internal dates are IMAP date-times.
        """
        self.assertEqual(to_crlf(b"a\nb\r\nc\n"), b"a\r\nb\r\nc\r\n")
        data = b"a\r\n"
        self.assertIs(to_crlf(data), data)
        self.assertEqual(format_internal_date(0), b'"01-Jan-1970 00:00:00 +0000"')
