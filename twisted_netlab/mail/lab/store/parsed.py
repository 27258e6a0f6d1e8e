"""
A parsed view of a stored message: what a person (or a test) reads in it.

L{parse_message} turns a message's bytes into a L{ParsedMessage} with the
stdlib C{email} package: addresses, the subject and every header decoded
(RFC 2047 encoded words, any charset), the Date and Message-ID, the text
and HTML bodies decoded from quoted-printable or base64 into text, and the
attachments and inline parts (L{Part}) with their part IDs, which number the
MIME tree as IMAP sections do (C{1}, C{2}, C{2.1}, ...).

The view never changes the message: C{raw} is the bytes as stored.
"""

from __future__ import annotations

import datetime
import email.errors
import email.header
import email.policy
import email.utils
import html
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from functools import cached_property

_PARSER = BytesParser(policy=email.policy.compat32)
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]*>", re.I | re.S)
_SPACE = re.compile(r"\s+")
_MAX_DEPTH = 32
SNIPPET_LENGTH = 250


@dataclass(frozen=True)
class Address:
    """
    One mailbox of an address header: C{"Ann <ann@example.test>"} is
    C{Address(name="Ann", address="ann@example.test")}.
    """

    name: str
    address: str

    def __str__(self) -> str:
        return email.utils.formataddr((self.name, self.address))


@dataclass(frozen=True)
class Part:
    """
    An attachment or inline part of a message.

    @ivar part_id: its place in the MIME tree (C{"2"}, C{"1.2"}), as IMAP
        numbers sections.
    @ivar file_name: its decoded file name (empty if it has none).
    @ivar content_type: its media type, lowercased (C{"image/png"}).
    @ivar content_id: its Content-ID without angle brackets (or empty).
    @ivar size: the size of its decoded content, in bytes.
    @ivar content: its decoded content.
    """

    part_id: str
    file_name: str
    content_type: str
    content_id: str
    size: int
    content: bytes = field(repr=False)


def decode_header_value(value: str | email.header.Header | None) -> str:
    """
    A header value as text: unfolded, RFC 2047 encoded words decoded (an
    unknown charset or a broken word is kept as it is).
    """
    if value is None:
        return ""
    text = _FOLD.sub("", str(value))
    if "=?" not in text:
        return text.strip()
    try:
        return str(email.header.make_header(email.header.decode_header(text))).strip()
    except (UnicodeError, LookupError, ValueError, email.errors.HeaderParseError):
        return text.strip()


def _header_text(value: object) -> str:
    # compat32 hands back a Header object for undecodable 8-bit values.
    if isinstance(value, email.header.Header):
        chunks = []
        for chunk, charset in email.header.decode_header(value):
            if isinstance(chunk, bytes):
                chunks.append(_decode_bytes(chunk, charset))
            else:
                chunks.append(chunk)
        return "".join(chunks)
    return str(value)


def _decode_bytes(data: bytes, charset: str | None) -> str:
    for candidate in (charset, "utf-8"):
        if not candidate:
            continue
        try:
            return data.decode(candidate)
        except (LookupError, UnicodeDecodeError):
            continue
    return data.decode("latin-1")


def html_to_text(markup: str) -> str:
    """
    The visible text of an HTML body (tags, scripts and styles removed,
    entities decoded, white space collapsed): what search matches in HTML.
    """
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", markup))).strip()


class ParsedMessage:
    """
    A stored message, parsed. Cheap to make; each part of the view is
    computed the first time it is asked for.

    @ivar raw: the message's bytes as stored.
    """

    def __init__(self, raw: bytes) -> None:
        self.raw = raw
        try:
            self._message: Message = _PARSER.parsebytes(raw)
        except (email.errors.MessageError, ValueError, TypeError):
            self._message = _PARSER.parsebytes(b"\r\n")

    # --- headers ---------------------------------------------------------------

    @cached_property
    def headers(self) -> tuple[tuple[str, str], ...]:
        """
        Every header field, in order, as (name, decoded value).
        """
        return tuple(
            (name, decode_header_value(_header_text(value)))
            for name, value in self._message.items()
        )

    def header(self, name: str) -> str:
        """
        The decoded value of the first C{name} header (empty if none).
        """
        value = self._message.get(name)
        return "" if value is None else decode_header_value(_header_text(value))

    def header_values(self, name: str) -> list[str]:
        """
        The decoded values of every C{name} header, in order.
        """
        return [
            decode_header_value(_header_text(v))
            for v in self._message.get_all(name) or []
        ]

    def addresses(self, name: str) -> tuple[Address, ...]:
        """
        The mailboxes of every C{name} header (To, Cc, ...), names decoded.
        """
        values = [
            _FOLD.sub("", _header_text(v)) for v in self._message.get_all(name) or []
        ]
        result = []
        for display, address in email.utils.getaddresses(values):
            if not address and not display:
                continue
            result.append(Address(decode_header_value(display), address))
        return tuple(result)

    @cached_property
    def from_(self) -> Address | None:
        """The first From mailbox (None if there is none)."""
        found = self.addresses("from")
        return found[0] if found else None

    @cached_property
    def to(self) -> tuple[Address, ...]:
        return self.addresses("to")

    @cached_property
    def cc(self) -> tuple[Address, ...]:
        return self.addresses("cc")

    @cached_property
    def bcc(self) -> tuple[Address, ...]:
        return self.addresses("bcc")

    @cached_property
    def reply_to(self) -> tuple[Address, ...]:
        return self.addresses("reply-to")

    @cached_property
    def subject(self) -> str:
        """The decoded subject."""
        return self.header("subject")

    @cached_property
    def message_id(self) -> str:
        """The Message-ID, without its angle brackets."""
        return self.header("message-id").strip().strip("<>").strip()

    @cached_property
    def return_path(self) -> str:
        return self.header("return-path").strip().strip("<>").strip()

    @cached_property
    def date(self) -> datetime.datetime | None:
        """The Date header as an aware datetime (None if missing or bad)."""
        value = self.header("date")
        if not value:
            return None
        try:
            moment = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=datetime.UTC)
        return moment

    # --- bodies and parts -----------------------------------------------------

    @cached_property
    def _walked(self) -> tuple[str, str, tuple[Part, ...], tuple[Part, ...]]:
        texts: list[str] = []
        htmls: list[str] = []
        attachments: list[Part] = []
        inline: list[Part] = []
        self._walk(self._message, "", texts, htmls, attachments, inline, 0)
        return "\n".join(texts), "\n".join(htmls), tuple(attachments), tuple(inline)

    def _walk(
        self,
        part: Message,
        part_id: str,
        texts: list[str],
        htmls: list[str],
        attachments: list[Part],
        inline: list[Part],
        depth: int,
    ) -> None:
        if depth > _MAX_DEPTH:
            return
        if part.is_multipart() and part.get_content_maintype() == "multipart":
            children = part.get_payload()
            if not isinstance(children, list):
                return
            alternative = part.get_content_subtype() == "alternative"
            for index, child in enumerate(children, 1):
                child_id = f"{part_id}.{index}" if part_id else str(index)
                if alternative and _is_body_text(child):
                    # Alternatives are one body: keep one text and one HTML.
                    kind = child.get_content_subtype()
                    if (kind == "plain" and texts) or (kind == "html" and htmls):
                        continue
                self._walk(
                    child, child_id, texts, htmls, attachments, inline, depth + 1
                )
            return
        own_id = part_id or "1"
        maintype = part.get_content_maintype()
        disposition = (part.get_content_disposition() or "").lower()
        file_name = decode_header_value(_param_text(part.get_filename()))
        if maintype == "text" and disposition != "attachment" and not file_name:
            payload = _payload(part)
            text = _decode_bytes(payload, part.get_content_charset())
            if part.get_content_subtype() == "html":
                htmls.append(text)
                return
            if part.get_content_subtype() in ("plain", ""):
                texts.append(text)
                return
        payload = _payload(part)
        content_id = decode_header_value(part.get("content-id")).strip().strip("<>")
        entry = Part(
            part_id=own_id,
            file_name=file_name,
            content_type=part.get_content_type(),
            content_id=content_id,
            size=len(payload),
            content=payload,
        )
        if disposition == "inline" or (disposition != "attachment" and content_id):
            inline.append(entry)
        else:
            attachments.append(entry)

    @property
    def text(self) -> str:
        """The text/plain body, decoded (parts of several joined)."""
        return self._walked[0]

    @property
    def html(self) -> str:
        """The text/html body, decoded."""
        return self._walked[1]

    @property
    def attachments(self) -> tuple[Part, ...]:
        return self._walked[2]

    @property
    def inline(self) -> tuple[Part, ...]:
        return self._walked[3]

    def part(self, part_id: str) -> Part | None:
        """The attachment or inline part C{part_id}, or None."""
        for entry in (*self.attachments, *self.inline):
            if entry.part_id == part_id:
                return entry
        return None

    @cached_property
    def snippet(self) -> str:
        """Up to 250 characters of the body's text, white space collapsed."""
        source = self.text or html_to_text(self.html)
        text = _SPACE.sub(" ", source).strip()
        if len(text) > SNIPPET_LENGTH:
            return text[: SNIPPET_LENGTH - 3].rstrip() + "..."
        return text

    @property
    def size(self) -> int:
        return len(self.raw)


def _is_body_text(part: Message) -> bool:
    return (
        part.get_content_maintype() == "text"
        and part.get_content_subtype() in ("plain", "html")
        and (part.get_content_disposition() or "") != "attachment"
        and not part.get_filename()
    )


def _param_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):  # an RFC 2231 (charset, language, value)
        return email.utils.collapse_rfc2231_value(value)
    return str(value)


def _payload(part: Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except (ValueError, TypeError, AssertionError):
        payload = None
    if isinstance(payload, bytes):
        return payload
    raw = part.get_payload()
    if isinstance(raw, list):
        return b"".join(p.as_bytes() for p in raw if isinstance(p, Message))
    if isinstance(raw, str):
        return raw.encode("utf-8", "surrogateescape")
    return b""


def parse_message(raw: bytes) -> ParsedMessage:
    """
    The parsed view of a message's bytes.
    """
    return ParsedMessage(raw)


__all__ = [
    "Address",
    "ParsedMessage",
    "Part",
    "decode_header_value",
    "html_to_text",
    "parse_message",
]
