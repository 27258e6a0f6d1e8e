"""
Tests for L{twisted_netlab.mail.lab.store.parsed}: the parsed view of a message.
"""

from __future__ import annotations

import base64
import datetime

from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.store.parsed import (
    Address,
    decode_header_value,
    parse_message,
)

MIXED = (
    b"""\
From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <jurgen@example.test>
To: Ann <ann@example.test>, bob@example.test
Cc: =?iso-8859-1?q?Ren=E9?= <rene@example.test>
Bcc: hidden@example.test
Reply-To: replies@example.test
Subject: =?utf-8?b?R3LDvMOfZSBhdXMgS8O2bG4=?=
Date: Tue, 01 Dec 2026 08:00:00 +0100
Message-ID: <abc.123@example.test>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="outer"

--outer
Content-Type: multipart/alternative; boundary="alt"

--alt
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Gr=FC=DFe, caf=E9 au lait and a soft=
 line break
--alt
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: base64

"""
    + base64.encodebytes("<p>Hello <b>wörld</b> &amp; all</p>".encode())
    + b"""
--alt--
--outer
Content-Type: image/png
Content-Disposition: inline
Content-ID: <logo@example.test>
Content-Transfer-Encoding: base64

iVBORw0KGgo=
--outer
Content-Type: application/pdf; name="report.pdf"
Content-Disposition: attachment; filename*=utf-8''r%C3%A9sum%C3%A9.pdf
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--outer--
"""
)


class ParsedMessageTests(SynchronousTestCase):
    """
    L{parse_message} decodes what a reader sees.
    """

    def setUp(self) -> None:
        self.parsed = parse_message(MIXED.replace(b"\n", b"\r\n"))

    def test_addresses(self) -> None:
        """
        From, To, Cc, Bcc and Reply-To become addresses, encoded-word names
        decoded (UTF-8 and ISO-8859-1).
        """
        p = self.parsed
        self.assertEqual(p.from_, Address("Jürgen Müller", "jurgen@example.test"))
        self.assertEqual(
            p.to,
            (Address("Ann", "ann@example.test"), Address("", "bob@example.test")),
        )
        self.assertEqual(p.cc, (Address("René", "rene@example.test"),))
        self.assertEqual(p.bcc, (Address("", "hidden@example.test"),))
        self.assertEqual(p.reply_to, (Address("", "replies@example.test"),))

    def test_subject_date_message_id(self) -> None:
        """
        The subject is decoded (base64 encoded word), the Date is an aware
        datetime, the Message-ID loses its angle brackets.
        """
        p = self.parsed
        self.assertEqual(p.subject, "Grüße aus Köln")
        self.assertEqual(
            p.date,
            datetime.datetime(2026, 12, 1, 7, 0, tzinfo=datetime.UTC),
        )
        self.assertEqual(p.message_id, "abc.123@example.test")

    def test_bodies(self) -> None:
        """
        The text body is decoded from quoted-printable and ISO-8859-1 (soft
        line break joined); the HTML body from base64 and UTF-8.
        """
        self.assertEqual(
            self.parsed.text.strip(), "Grüße, café au lait and a soft line break"
        )
        self.assertIn("<b>wörld</b>", self.parsed.html)

    def test_parts(self) -> None:
        """
        The inline image and the attachment have IMAP-style part IDs, file
        names (RFC 2231 decoded), content types, Content-ID and decoded size.
        """
        (inline,) = self.parsed.inline
        (attachment,) = self.parsed.attachments
        self.assertEqual(
            (inline.part_id, inline.content_type, inline.content_id, inline.size),
            ("2", "image/png", "logo@example.test", 8),
        )
        self.assertEqual(
            (attachment.part_id, attachment.file_name, attachment.content_type),
            ("3", "résumé.pdf", "application/pdf"),
        )
        self.assertEqual(attachment.content, b"%PDF-1.4\n")
        self.assertEqual(attachment.size, 9)
        self.assertIs(self.parsed.part("3"), attachment)
        self.assertIsNone(self.parsed.part("1"))

    def test_headers_in_order(self) -> None:
        """
        Every header, in order, decoded.
        """
        names = [name for name, _ in self.parsed.headers]
        self.assertEqual(names[:4], ["From", "To", "Cc", "Bcc"])
        self.assertIn(("Subject", "Grüße aus Köln"), self.parsed.headers)

    def test_snippet(self) -> None:
        """
        The snippet is the text body with white space collapsed, at most
        250 characters.
        """
        self.assertEqual(
            self.parsed.snippet, "Grüße, café au lait and a soft line break"
        )
        long = parse_message(b"Subject: x\r\n\r\n" + b"word " * 200)
        self.assertEqual(len(long.snippet), 250)
        self.assertTrue(long.snippet.endswith("..."))

    def test_html_only_snippet(self) -> None:
        """
        Without a text body, the snippet is the HTML's visible text.
        """
        parsed = parse_message(
            b"Content-Type: text/html\r\n\r\n<style>p{}</style><p>Hi &amp; bye</p>"
        )
        self.assertEqual(parsed.snippet, "Hi & bye")

    def test_raw_is_untouched(self) -> None:
        """
        C{raw} is the bytes given; C{size} their length.
        """
        data = MIXED.replace(b"\n", b"\r\n")
        self.assertEqual(self.parsed.raw, data)
        self.assertEqual(self.parsed.size, len(data))

    def test_broken_input(self) -> None:
        """
        Garbage, a bad charset and a broken encoded word still parse: the
        undecodable text is kept as it is.
        """
        parsed = parse_message(
            b"Subject: =?x-unknown?q?abc?=\r\nContent-Type: text/plain; "
            b"charset=x-nonsense\r\n\r\n\xff\xfe body"
        )
        self.assertEqual(parsed.subject, "=?x-unknown?q?abc?=")
        self.assertIn("body", parsed.text)
        self.assertEqual(parse_message(b"").subject, "")
        self.assertEqual(decode_header_value(None), "")

    def test_attached_message(self) -> None:
        """
        An attached message (message/rfc822) is an attachment, not a body.
        """
        parsed = parse_message(
            b"Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\n"
            b"Content-Type: text/plain\r\n\r\nouter\r\n--b\r\n"
            b"Content-Type: message/rfc822\r\n\r\nSubject: inner\r\n\r\ninner body\r\n"
            b"--b--\r\n"
        )
        self.assertEqual(parsed.text.strip(), "outer")
        (attached,) = parsed.attachments
        self.assertEqual(attached.content_type, "message/rfc822")
        self.assertIn(b"inner body", attached.content)
