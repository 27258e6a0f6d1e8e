"""
Tests for L{twisted_netlab.mail.compose}.
"""

from __future__ import annotations

import email
import os
import shutil
import tempfile
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.errors import UsageProblem
from twisted_netlab.mail.compose import Draft, compose, parse_address

DATE = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def reparse(message: EmailMessage) -> EmailMessage:
    """
    The message as a mail reader sees it: serialized for SMTP, parsed again
    with local line ends.
    """
    data = message.as_bytes().replace(b"\r\n", b"\n")
    parsed = email.message_from_bytes(data, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


class ComposeTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)

    def file(self, name: str, data: bytes) -> str:
        path = self.directory / name
        path.write_bytes(data)
        return str(path)

    def test_plain_text(self) -> None:
        """
        A draft with only text gives a single text/plain message with From,
        To, Cc, Subject, Date and Message-ID headers.
        """
        draft = Draft(
            sender="a@example.org",
            to=["b@example.org"],
            cc=["c@example.org"],
            subject="Hello",
            text="Hi there\n",
        )
        message = reparse(compose(draft, date=DATE, message_id="<x@example.org>"))
        self.assertEqual(message.get_content_type(), "text/plain")
        self.assertEqual(message["From"], "a@example.org")
        self.assertEqual(message["To"], "b@example.org")
        self.assertEqual(message["Cc"], "c@example.org")
        self.assertEqual(message["Subject"], "Hello")
        self.assertEqual(message["Date"], "Mon, 06 May 2024 07:08:09 +0000")
        self.assertEqual(message["Message-ID"], "<x@example.org>")
        self.assertEqual(message.get_content(), "Hi there\n")

    def test_html_alternative(self) -> None:
        """
        Text and HTML make a multipart/alternative, text first.
        """
        draft = Draft(
            sender="a@example.org",
            to=["b@example.org"],
            text="plain",
            html="<b>rich</b>",
        )
        message = reparse(compose(draft))
        self.assertEqual(message.get_content_type(), "multipart/alternative")
        parts = list(message.iter_parts())
        self.assertEqual(
            [p.get_content_type() for p in parts], ["text/plain", "text/html"]
        )
        self.assertEqual(parts[0].get_content(), "plain\n")
        self.assertEqual(parts[1].get_content(), "<b>rich</b>\n")

    def test_html_only(self) -> None:
        """
        HTML without text is a single text/html part.
        """
        message = reparse(compose(Draft(sender="a@example.org", html="<p>x</p>")))
        self.assertEqual(message.get_content_type(), "text/html")

    def test_attachments_typed_and_intact(self) -> None:
        """
        Attachments are typed from their names by mimetypes, octet-stream
        when unknown or compressed; their bytes arrive exactly.
        """
        blob = bytes(range(256)) * 40
        paths = [
            self.file("report.pdf", blob),
            self.file("notes.txt", b"line one\r\n.line two\nno newline"),
            self.file("data.weird-extension", blob[::-1]),
            self.file("archive.tar.gz", blob[:100]),
            self.file("mail.eml", b"From: x@example.org\r\n\r\nbody\r\n"),
        ]
        draft = Draft(
            sender="a@example.org",
            to=["b@example.org"],
            text="see attached",
            attachments=paths,
        )
        message = reparse(compose(draft))
        self.assertEqual(message.get_content_type(), "multipart/mixed")
        body, *attachments = message.iter_parts()
        self.assertEqual(body.get_content(), "see attached\n")
        self.assertEqual(
            [(a.get_filename(), a.get_content_type()) for a in attachments],
            [
                ("report.pdf", "application/pdf"),
                ("notes.txt", "text/plain"),
                ("data.weird-extension", "application/octet-stream"),
                ("archive.tar.gz", "application/octet-stream"),
                ("mail.eml", "application/octet-stream"),
            ],
        )
        for part, path in zip(attachments, paths, strict=True):
            self.assertEqual(part.get_payload(decode=True), Path(path).read_bytes())

    def test_non_ascii_file_name(self) -> None:
        """
        A non-ASCII file name is written as an RFC 2231 parameter and
        read back unchanged.
        """
        path = self.file("Bücher.bin", b"\x00\x01")
        message = compose(Draft(sender="a@example.org", attachments=[path]))
        raw = message.as_bytes()
        self.assertIn(b"filename*=utf-8''B%C3%BCcher.bin", raw)
        [attachment] = reparse(message).iter_attachments()
        self.assertEqual(attachment.get_filename(), "Bücher.bin")

    def test_bcc_not_in_headers(self) -> None:
        """
        Bcc recipients are in L{Draft.recipients} but nowhere in the message.
        """
        draft = Draft(
            sender="a@example.org",
            to=["b@example.org"],
            bcc=["Secret Person <hidden@example.org>"],
            text="x",
        )
        message = compose(draft)
        self.assertNotIn("Bcc", message)
        self.assertNotIn(b"hidden", message.as_bytes())
        self.assertIn("hidden@example.org", draft.recipients())

    def test_recipients(self) -> None:
        """
        The envelope recipients are To, Cc, Bcc in order, addresses only,
        each once.
        """
        draft = Draft(
            sender="a@example.org",
            to=["Bee <b@example.org>", "c@example.org"],
            cc=["b@example.org", "d@example.org"],
            bcc=["e@example.org", "c@example.org"],
        )
        self.assertEqual(
            draft.recipients(),
            ["b@example.org", "c@example.org", "d@example.org", "e@example.org"],
        )
        self.assertEqual(
            Draft(sender="Me <a@example.org>").envelope_sender(), "a@example.org"
        )

    def test_non_ascii_subject_and_names(self) -> None:
        """
        Non-ASCII subjects and display names are RFC 2047 encoded: the header
        bytes are ASCII and decode to the original text.
        """
        draft = Draft(
            sender="Jörg Müller <j@example.org>",
            to=["Zoë Ünal <z@example.org>"],
            subject="Grüße aus München — a subject long enough to need folding, really",
            text="x",
        )
        message = compose(draft)
        head = message.as_bytes().split(b"\r\n\r\n")[0]
        self.assertTrue(head.isascii())
        self.assertIn(b"=?utf-8?", head)
        parsed = reparse(message)
        self.assertEqual(parsed["Subject"], draft.subject)
        self.assertEqual(parsed["From"].addresses[0].display_name, "Jörg Müller")
        self.assertEqual(parsed["To"].addresses[0].display_name, "Zoë Ünal")

    def test_eight_bit_text(self) -> None:
        """
        Non-ASCII text is sent as 8-bit UTF-8, not re-encoded.
        """
        message = compose(Draft(sender="a@example.org", text="Grüße ✓\n"))
        self.assertEqual(message["Content-Transfer-Encoding"], "8bit")
        self.assertIn("Grüße ✓\r\n".encode(), message.as_bytes())

    def test_message_id_domain(self) -> None:
        """
        The generated Message-ID is in the sender's domain, IDNA-encoded
        when the domain is not ASCII; each message gets a new one.
        """
        first = compose(Draft(sender="a@example.org"))["Message-ID"]
        second = compose(Draft(sender="a@example.org"))["Message-ID"]
        self.assertTrue(first.endswith("@example.org>"))
        self.assertNotEqual(first, second)
        idn = compose(Draft(sender="a@bücher.example"))["Message-ID"]
        self.assertTrue(idn.endswith("@xn--bcher-kva.example>"), idn)

    def test_default_date_is_now(self) -> None:
        """
        Without a date, the Date header is the current time.
        """
        before = datetime.now(UTC).replace(microsecond=0)
        message = reparse(compose(Draft(sender="a@example.org")))
        after = datetime.now(UTC)
        self.assertTrue(before <= message["Date"].datetime <= after)

    def test_extra_headers(self) -> None:
        """
        Extra headers are added as given; a Date or Message-ID among them
        replaces the generated one.
        """
        draft = Draft(
            sender="a@example.org",
            headers=[
                ("Reply-To", "r@example.org"),
                ("X-Tag", "Wert äöü"),
                ("Message-ID", "<mine@example.org>"),
                ("Date", "Tue, 01 Jan 2030 00:00:00 +0000"),
            ],
        )
        parsed = reparse(compose(draft))
        self.assertEqual(parsed["Reply-To"], "r@example.org")
        self.assertEqual(parsed["X-Tag"], "Wert äöü")
        self.assertEqual(parsed.get_all("Message-ID"), ["<mine@example.org>"])
        self.assertEqual(parsed.get_all("Date"), ["Tue, 01 Jan 2030 00:00:00 +0000"])

    def test_refused_extra_headers(self) -> None:
        """
        An extra header may not be a Bcc (it would be visible), one that has
        its own option, a MIME structure header, or have a bad name.
        """
        for name in [
            "Bcc",
            "bcc",
            "From",
            "To",
            "Subject",
            "Content-Type",
            "MIME-Version",
            "Bad Name",
            "X:Y",
            "",
            "Ünicode",
        ]:
            with self.assertRaises(UsageProblem, msg=name):
                compose(
                    Draft(sender="a@example.org", headers=[(name, "x@example.org")])
                )

    def test_line_break_in_header(self) -> None:
        """
        A line break in a subject or header value is a usage problem, not a
        header injection.
        """
        with self.assertRaises(UsageProblem):
            compose(Draft(sender="a@example.org", subject="a\r\nBcc: x@example.org"))
        with self.assertRaises(UsageProblem):
            compose(
                Draft(
                    sender="a@example.org", headers=[("X-A", "1\nBcc: x@example.org")]
                )
            )

    def test_bad_addresses(self) -> None:
        """
        Anything but exactly one address with a domain is refused, including
        attempts to smuggle SMTP commands or parameters.
        """
        for text in [
            "alice",
            "a@b.example, c@d.example",
            "a@b.example\r\nRCPT TO:<x@y.example>",
            "a@b.example> SIZE=1",
            "a@",
            "@b.example",
            "",
            "a@b@c",
        ]:
            with self.assertRaises(UsageProblem, msg=text):
                parse_address(text)
            with self.assertRaises(UsageProblem, msg=text):
                compose(Draft(sender="a@example.org", to=[text]))
            with self.assertRaises(UsageProblem, msg=text):
                Draft(sender="a@example.org", bcc=[text]).recipients()

    def test_non_ascii_local_part(self) -> None:
        """
        A non-ASCII local part is an address (it needs SMTPUTF8 to be sent).
        """
        address = parse_address("Jörg <jörg@bücher.example>")
        self.assertEqual(address.addr_spec, "jörg@bücher.example")
        self.assertEqual(address.display_name, "Jörg")

    def test_unreadable_attachment(self) -> None:
        """
        An attachment that is missing or a directory is a usage problem
        naming the file.
        """
        missing = str(self.directory / "missing.pdf")
        for path in [missing, tempfile.gettempdir()]:
            with self.assertRaises(UsageProblem) as caught:
                compose(Draft(sender="a@example.org", attachments=[path]))
            self.assertIn(path, str(caught.exception))
        if os.getuid() != 0:  # root reads anything
            locked = self.file("locked.txt", b"x")
            os.chmod(locked, 0)
            self.assertRaises(
                UsageProblem,
                compose,
                Draft(sender="a@example.org", attachments=[locked]),
            )

    def test_same_draft_same_bytes(self) -> None:
        """
        The same draft, date and Message-ID give the same bytes: the
        multipart boundaries come from the content, not from chance.
        """
        path = self.file("a.bin", b"\x00" * 10)
        draft = Draft(
            sender="a@example.org", text="t", html="<p>h</p>", attachments=[path]
        )
        first = compose(draft, date=DATE, message_id="<1@example.org>").as_bytes()
        second = compose(draft, date=DATE, message_id="<1@example.org>").as_bytes()
        self.assertEqual(first, second)
        self.assertIn(b'boundary="=_netlab_', first)
        other = compose(
            Draft(
                sender="a@example.org",
                text="other",
                html="<p>h</p>",
                attachments=[path],
            ),
            date=DATE,
            message_id="<1@example.org>",
        )
        self.assertNotEqual(
            other.get_boundary(), reparse(compose(draft)).get_boundary()
        )

    def test_parts_without_mime_version(self) -> None:
        """
        MIME-Version is in the top-level header only.
        """
        path = self.file("a.bin", b"x")
        raw = compose(
            Draft(sender="a@example.org", text="t", html="h", attachments=[path])
        ).as_bytes()
        self.assertEqual(raw.count(b"MIME-Version"), 1)
