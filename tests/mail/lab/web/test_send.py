"""
Tests for L{twisted_netlab.mail.lab.web.send}: Mailpit's send request made
into a message that the stdlib parses back as asked (addresses, Bcc in the
envelope only, bodies, attachments byte for byte, inline parts, headers,
tags), and a one-line error for each kind of bad field.
"""

from __future__ import annotations

import base64
import copy
import email
import json
import re
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from tests.mail.lab.web.swagger import (
    body_schema,
    load_mailpit_swagger,
    schema_problems,
)
from twisted_netlab.mail.lab.web.send import (
    ComposedMessage,
    SendRequestInvalid,
    message_from_send_json,
    message_from_send_request,
)

PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9"
    "awAAAABJRU5ErkJggg=="
)
BINARY = bytes(range(256)) * 40
WHEN = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def full_request() -> dict[str, Any]:
    """
    A request with every field, as the swagger's example has them.
    """
    return {
        "From": {"Email": "john@example.com", "Name": "Doe, John"},
        "To": [{"Email": "jane@example.com", "Name": "Jäne"}],
        "Cc": [{"Email": "manager@example.com", "Name": "Manager"}],
        "Bcc": ["jack@example.com"],
        "ReplyTo": [{"Email": "secretary@example.com", "Name": "Secretary"}],
        "Subject": "Mailpit message via the HTTP API ✓",
        "Text": "Mailpit is awesome!\n.leading dot\n",
        "HTML": (
            '<div><p>Mailpit is <b>awesome</b>!</p><img src="cid:mailpit-logo"></div>'
        ),
        "Attachments": [
            {
                "Content": base64.b64encode(PNG).decode(),
                "Filename": "mailpit.png",
                "ContentID": "mailpit-logo",
            },
            {
                "Content": base64.b64encode(BINARY).decode(),
                "Filename": "data.bin",
                "ContentType": "application/x-netlab",
            },
        ],
        "Headers": {"X-IP": "1.2.3.4"},
        "Tags": ["Tag 1", "Tag 2", "Tag 1"],
    }


def parsed(composed: ComposedMessage) -> EmailMessage:
    """
    The message parsed back by the stdlib (line ends as Python's own).
    """
    raw = composed.raw.replace(b"\r\n", b"\n")
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


class ComposeTestCase(SynchronousTestCase):
    def compose(self, request: Any) -> ComposedMessage:
        return message_from_send_request(request, date=WHEN, message_id="<1@x.test>")

    def test_request_fits_swagger(self) -> None:
        """
        The request used here fits the send body's schema in Mailpit's
        swagger.json, so the tests speak the API's own shape.
        """
        schema = body_schema(load_mailpit_swagger(), "/api/v1/send", "post")
        self.assertEqual(
            schema_problems(
                load_mailpit_swagger(), schema, full_request(), all_properties=False
            ),
            [],
        )

    def test_full_request(self) -> None:
        """
        Every field lands where it should: From, To, Cc, Reply-To with
        their names, the subject, Date and Message-ID, the extra header,
        X-Tags; Bcc only in the envelope; the text, the HTML with its
        inline image (multipart/related) and the attachment byte for byte.
        """
        composed = self.compose(full_request())
        self.assertEqual(composed.sender, "john@example.com")
        self.assertEqual(
            composed.recipients,
            ("jane@example.com", "manager@example.com", "jack@example.com"),
        )
        self.assertEqual(composed.tags, ("Tag 1", "Tag 2"))
        self.assertNotIn(b"jack@", composed.raw)
        self.assertNotIn(b"\n", composed.raw.replace(b"\r\n", b""))
        message = parsed(composed)
        self.assertEqual(str(message["From"]), '"Doe, John" <john@example.com>')
        self.assertEqual(str(message["To"]), "Jäne <jane@example.com>")
        self.assertEqual(str(message["Cc"]), "Manager <manager@example.com>")
        self.assertEqual(str(message["Reply-To"]), "Secretary <secretary@example.com>")
        self.assertEqual(message["Subject"], "Mailpit message via the HTTP API ✓")
        self.assertEqual(message["Message-ID"], "<1@x.test>")
        self.assertEqual(message["Date"].datetime, WHEN)
        self.assertEqual(message["X-IP"], "1.2.3.4")
        self.assertEqual(message["X-Tags"], "Tag 1, Tag 2")
        self.assertIsNone(message["Bcc"])
        self.assertEqual(message.get_content_type(), "multipart/mixed")
        text = message.get_body(("plain",))
        html = message.get_body(("html",))
        assert text is not None and html is not None
        self.assertEqual(text.get_content(), "Mailpit is awesome!\n.leading dot\n")
        self.assertIn("<b>awesome</b>", html.get_content())
        related = [
            p for p in message.walk() if p.get_content_type() == "multipart/related"
        ]
        self.assertEqual(len(related), 1)
        [logo] = [p for p in message.walk() if p.get("Content-ID") == "<mailpit-logo>"]
        self.assertEqual(logo.get_content_type(), "image/png")
        self.assertEqual(logo.get_content_disposition(), "inline")
        self.assertEqual(logo.get_content(), PNG)
        [attachment] = list(message.iter_attachments())
        self.assertEqual(attachment.get_filename(), "data.bin")
        self.assertEqual(attachment.get_content_type(), "application/x-netlab")
        self.assertEqual(attachment.get_content(), BINARY)

    def test_minimal_request(self) -> None:
        """
        From, To and Subject alone give a text/plain message with an empty
        body; an HTML body alone is text/html.
        """
        minimal = {
            "From": {"Email": "a@example.org"},
            "To": [{"Email": "b@example.org"}],
            "Subject": "s",
        }
        message = parsed(self.compose(minimal))
        self.assertEqual(message.get_content_type(), "text/plain")
        self.assertEqual(message.get_content(), "\n")
        self.assertEqual(str(message["From"]), "a@example.org")
        html_only = dict(minimal, HTML="<p>x</p>")
        self.assertEqual(
            parsed(self.compose(html_only)).get_content_type(), "text/html"
        )

    def test_bcc_only(self) -> None:
        """
        Bcc alone is enough recipients, and appears nowhere in the headers.
        """
        composed = self.compose(
            {
                "From": {"Email": "a@example.org"},
                "Bcc": ["h@example.org"],
                "Subject": "s",
            }
        )
        self.assertEqual(composed.recipients, ("h@example.org",))
        self.assertNotIn(b"h@example.org", composed.raw)
        self.assertIsNone(parsed(composed)["To"])

    def test_go_json_rules(self) -> None:
        """
        As Go's encoding/json reads Mailpit's struct: field names match
        without regard to case, unknown fields and nulls are ignored.
        """
        composed = self.compose(
            {
                "from": {"email": "a@example.org", "name": None},
                "TO": [{"EMAIL": "b@example.org"}],
                "subject": "s",
                "Cc": None,
                "Attachments": None,
                "Unknown": {"anything": 1},
            }
        )
        self.assertEqual(composed.recipients, ("b@example.org",))
        self.assertEqual(parsed(composed)["Subject"], "s")

    def test_attachment_content_forms(self) -> None:
        """
        Content may be a data URL (the part after the comma is the base64)
        and may be wrapped in lines; without ContentType the type is sniffed
        from the bytes (PNG), else the file name, else text or binary.
        """
        request = {
            "From": {"Email": "a@example.org"},
            "To": [{"Email": "b@example.org"}],
            "Subject": "s",
            "Attachments": [
                {
                    "Content": "data:image/png;base64,"
                    + base64.b64encode(PNG).decode(),
                    "Filename": "named-wrongly.txt",
                },
                {
                    "Content": base64.encodebytes(BINARY).decode(),
                    "Filename": "report.pdf",
                },
                {
                    "Content": base64.b64encode("héllo\n".encode()).decode(),
                    "Filename": "x",
                },
                {
                    "Content": base64.b64encode(b"\x00\x01\x02").decode(),
                    "Filename": "y",
                },
            ],
        }
        parts = list(parsed(self.compose(request)).iter_attachments())
        self.assertEqual(
            [p.get_content_type() for p in parts],
            ["image/png", "application/pdf", "text/plain", "application/octet-stream"],
        )
        self.assertEqual(parts[0].get_content(), PNG)
        self.assertEqual(parts[1].get_content(), BINARY)
        self.assertEqual(parts[2].get_content(), "héllo\n")

    def test_message_attachment(self) -> None:
        """
        A message/rfc822 attachment is not base64-encoded (RFC 2046) and
        comes back as the message it was.
        """
        inner = b"From: x@example.org\r\nSubject: inner\r\n\r\nbody\r\n"
        request = {
            "From": {"Email": "a@example.org"},
            "To": [{"Email": "b@example.org"}],
            "Subject": "s",
            "Attachments": [
                {
                    "Content": base64.b64encode(inner).decode(),
                    "Filename": "fwd.eml",
                    "ContentType": "message/rfc822",
                }
            ],
        }
        composed = self.compose(request)
        self.assertIn(b"Subject: inner", composed.raw)
        [part] = list(parsed(composed).iter_attachments())
        self.assertEqual(part.get_content_type(), "message/rfc822")
        self.assertEqual(part.get_content()["Subject"], "inner")

    def test_message_id_header(self) -> None:
        """
        A Message-ID in Headers replaces the generated one.
        """
        request = full_request()
        request["Headers"] = {"Message-ID": "<mine@example.com>"}
        self.assertEqual(
            parsed(self.compose(request))["Message-ID"], "<mine@example.com>"
        )

    def test_json(self) -> None:
        """
        The body as it comes: JSON in UTF-8 (bytes or text) gives the same
        message (but for the generated boundaries).
        """
        expected = self.compose(full_request())
        for data in (json.dumps(full_request()), json.dumps(full_request()).encode()):
            composed = message_from_send_json(data, date=WHEN, message_id="<1@x.test>")
            self.assertEqual(
                (composed.sender, composed.recipients, composed.tags),
                (expected.sender, expected.recipients, expected.tags),
            )
            self.assertEqual(
                re.sub(rb"=+\d+==", b"B", composed.raw),
                re.sub(rb"=+\d+==", b"B", expected.raw),
            )


class BadRequestTestCase(SynchronousTestCase):
    def error(self, request: Any) -> str:
        with self.assertRaises(SendRequestInvalid) as caught:
            message_from_send_request(request)
        text = str(caught.exception)
        self.assertNotIn("\n", text)
        return text

    def changed(self, **fields: Any) -> dict[str, Any]:
        request = copy.deepcopy(full_request())
        for name, value in fields.items():
            if value is ...:
                del request[name]
            else:
                request[name] = value
        return request

    def test_required(self) -> None:
        """
        From (and its Email), a Subject and a recipient are required.
        """
        self.assertEqual(self.error(self.changed(From=...)), "From is required")
        self.assertEqual(
            self.error(self.changed(From={"Name": "x"})), "From.Email is required"
        )
        self.assertEqual(self.error(self.changed(Subject="")), "Subject is required")
        self.assertEqual(
            self.error(self.changed(To=[], Cc=..., Bcc=None)),
            "no recipients: give To, Cc or Bcc",
        )
        self.assertEqual(
            self.error(self.changed(To=[{"Name": "x"}])), "To[0].Email is required"
        )

    def test_wrong_types(self) -> None:
        """
        A field of the wrong JSON type is named with what it should be.
        """
        cases = {
            "the request body must be an object, not an array": [],
            "From must be an object, not a string": self.changed(From="a@example.org"),
            "Subject must be a string, not a number": self.changed(Subject=5),
            "To must be an array, not an object": self.changed(To={"Email": "b@x.org"}),
            "Cc[0] must be an object, not a string": self.changed(Cc=["c@example.org"]),
            "Bcc[0] must be a string, not an object": self.changed(
                Bcc=[{"Email": "c@example.org"}]
            ),
            "Text must be a string, not a boolean": self.changed(Text=True),
            "Tags[1] must be a string, not a number": self.changed(Tags=["a", 1]),
            "Headers must be an object, not an array": self.changed(Headers=["X: y"]),
            "Headers['X-IP'] must be a string, not a number": self.changed(
                Headers={"X-IP": 1}
            ),
            "Attachments[0] must be an object, not a string": self.changed(
                Attachments=["aGk="]
            ),
        }
        for expected, request in cases.items():
            self.assertEqual(self.error(request), expected)

    def test_bad_addresses(self) -> None:
        """
        Each address field says which address is bad, as Mailpit does.
        """
        self.assertEqual(
            self.error(self.changed(From={"Email": "john"})),
            "invalid From address: 'john'",
        )
        self.assertEqual(
            self.error(self.changed(To=[{"Email": "jane@"}])),
            "invalid To address: 'jane@'",
        )
        self.assertEqual(
            self.error(self.changed(Bcc=["a@b.c, d@e.f"])),
            "invalid Bcc address: 'a@b.c, d@e.f'",
        )
        self.assertEqual(
            self.error(self.changed(ReplyTo=[{"Email": "x y"}])),
            "invalid Reply-To address: 'x y'",
        )

    def test_header_injection(self) -> None:
        """
        No field can add a header line: a line break in a name, subject,
        header value, tag or file name is refused.
        """
        for request in [
            self.changed(From={"Email": "a@example.org", "Name": "x\r\nBcc: y@z.org"}),
            self.changed(Subject="hi\nBcc: y@z.org"),
            self.changed(Headers={"X-A": "1\r\nBcc: y@z.org"}),
            self.changed(Tags=["a\nb"]),
            self.changed(
                Attachments=[{"Content": "aGk=", "Filename": 'a"\r\nX-Evil: 1'}]
            ),
        ]:
            self.assertIn("must not contain a line break", self.error(request))

    def test_restricted_headers(self) -> None:
        """
        Headers may not replace what the request's own fields set (any
        case), nor X-Tags when there are Tags, nor the MIME structure's
        headers; a bad header name is refused.
        """
        for name in (
            "to",
            "From",
            "BCC",
            "Reply-To",
            "Date",
            "Subject",
            "MIME-Version",
        ):
            self.assertEqual(
                self.error(self.changed(Headers={name: "x"})),
                f'cannot overwrite header: "{name}"',
            )
        self.assertEqual(
            self.error(self.changed(Headers={"X-Tags": "x"})),
            'cannot overwrite header: "X-Tags"',
        )
        self.assertIn(
            "structure", self.error(self.changed(Headers={"Content-Language": "de"}))
        )
        self.assertIn(
            "is not a header name", self.error(self.changed(Headers={"A B": "x"}))
        )
        without_tags = self.changed(Tags=..., Headers={"X-Tags": "from header"})
        message = parsed(message_from_send_request(without_tags))
        self.assertEqual(message["X-Tags"], "from header")

    def test_bad_attachments(self) -> None:
        """
        Bad base64, a missing file name and a content type that is not
        type/subtype are refused, naming the attachment.
        """
        self.assertEqual(
            self.error(
                self.changed(Attachments=[{"Content": "not base64!", "Filename": "a"}])
            ),
            "Attachments[0].Content of 'a' is not valid base64",
        )
        self.assertEqual(
            self.error(self.changed(Attachments=[{"Content": "aGk"}])),
            "Attachments[0].Filename is required",
        )
        self.assertEqual(
            self.error(
                self.changed(
                    Attachments=[
                        {"Content": "aGk=", "Filename": "a", "ContentType": "png"}
                    ]
                )
            ),
            "Attachments[0].ContentType 'png' is not a MIME type (type/subtype)",
        )

    def test_bad_json(self) -> None:
        """
        A body that is not JSON, or not UTF-8, is one clear error.
        """
        for data, expected in [
            (b"{", "the request body is not JSON: "),
            (b"\xff\xfe\xfd", "the request body is not"),
            (b"[1]", "the request body must be an object, not an array"),
        ]:
            with self.assertRaises(SendRequestInvalid) as caught:
                message_from_send_json(data)
            self.assertTrue(
                str(caught.exception).startswith(expected), caught.exception
            )
