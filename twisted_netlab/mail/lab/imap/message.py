"""
A stored message as IMAP serves it: MIME parts located in the raw bytes,
sections (C{BODY[1.2.MIME]} ...), C{BODYSTRUCTURE} and C{ENVELOPE}.

Headers are parsed with the stdlib C{email} package; the bytes of every
section are cut from the message as stored, never re-serialized, so that
C{BODY[]} is the message byte for byte (with CRLF line ends: a message stored
with bare LFs, as some Maildir programs write them, is served with CRLFs).
"""

from __future__ import annotations

import email.policy
import email.utils
import re
import time
from collections.abc import Iterable, Sequence
from email.message import Message
from email.parser import BytesHeaderParser
from functools import cached_property
from io import BytesIO
from typing import Any, Union

_HEADER_PARSER = BytesHeaderParser(policy=email.policy.compat32)
_BARE_LF = re.compile(rb"(?<!\r)\n")
_FOLD = re.compile(r"\r?\n(?=[ \t])")
_BLANK_LINE = re.compile(rb"\r?\n\r?\n")
_MAX_DEPTH = 32
_MONTHS = [
    "Jan",
    "Feb",
    "Mar",
    "Apr",
    "May",
    "Jun",
    "Jul",
    "Aug",
    "Sep",
    "Oct",
    "Nov",
    "Dec",
]


def to_crlf(data: bytes) -> bytes:
    """
    C{data} with every bare LF made CRLF (unchanged if it has none).
    """
    if b"\n" not in data or data.count(b"\n") == data.count(b"\r\n"):
        return data
    return _BARE_LF.sub(b"\r\n", data)


# An IMAP data item: NIL, a number, a string (quoted or literal), or a list.
IMAPValue = Union[None, int, bytes, str, "Atom", Sequence["IMAPValue"]]


class Atom(bytes):
    """
    Bytes sent as they are (an atom such as C{NIL} or C{\\Seen}).
    """


def imap_string(value: bytes | str | None) -> bytes:
    """
    C{value} as an IMAP string: C{NIL}, a quoted string, or a literal when
    it holds 8-bit bytes, CR, LF or NUL.
    """
    if value is None:
        return b"NIL"
    if isinstance(value, str):
        value = value.encode("utf-8", "surrogateescape")
    if any(b >= 0x80 or b in (0, 10, 13) for b in value):
        return b"{%d}\r\n%s" % (len(value), value)
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


class Juxtaposed(list[Any]):
    """
    Items written one after the other without spaces or parentheses: the
    parts of a multipart in C{BODYSTRUCTURE} (RFC 3501's C{1*body}).
    """


def serialize(value: IMAPValue) -> bytes:
    """
    An IMAP data item's wire form.
    """
    if isinstance(value, Atom):
        return bytes(value)
    if value is None or isinstance(value, (bytes, str)):
        return imap_string(value)
    if isinstance(value, int):
        return b"%d" % (value,)
    if isinstance(value, Juxtaposed):
        return b"".join(serialize(item) for item in value)
    return b"(" + b" ".join(serialize(item) for item in value) + b")"


def format_internal_date(timestamp: float) -> bytes:
    """
    An IMAP C{date-time} (C{"17-Jul-1996 02:44:25 +0000"}) in UTC.
    """
    t = time.gmtime(timestamp)
    return b'"%02d-%s-%04d %02d:%02d:%02d +0000"' % (
        t.tm_mday,
        _MONTHS[t.tm_mon - 1].encode(),
        t.tm_year,
        t.tm_hour,
        t.tm_min,
        t.tm_sec,
    )


def _unfold(value: str) -> str:
    return _FOLD.sub("", value)


class MessagePart:
    """
    One MIME entity of a message: C{data[start:end]}, header then body.

    @ivar body_start: where the body begins (after the blank line).
    """

    def __init__(
        self,
        data: bytes,
        start: int = 0,
        end: int | None = None,
        *,
        default_type: str = "text/plain",
        depth: int = 0,
    ) -> None:
        self.data = data
        self.start = start
        self.end = len(data) if end is None else end
        self.default_type = default_type
        self.depth = depth
        self.body_start = self._find_body_start()

    def _find_body_start(self) -> int:
        data, start, end = self.data, self.start, self.end
        if data.startswith(b"\r\n", start) and start + 2 <= end:
            return start + 2
        if data.startswith(b"\n", start) and start + 1 <= end:
            return start + 1
        match = _BLANK_LINE.search(data, start, end)
        return match.end() if match else end

    # --- raw sections --------------------------------------------------------

    @property
    def raw(self) -> bytes:
        """The whole entity: header and body."""
        return self.data[self.start : self.end]

    @property
    def header_bytes(self) -> bytes:
        """The header, blank line included."""
        return self.data[self.start : self.body_start]

    @property
    def body(self) -> bytes:
        """The body (C{TEXT})."""
        return self.data[self.body_start : self.end]

    def header_fields(self, names: Iterable[bytes], *, negate: bool = False) -> bytes:
        """
        The header lines (with their continuation lines) of the fields named
        C{names}, or of all others if C{negate}, then a blank line.
        """
        wanted = {n.lower() for n in names}
        out = []
        current: list[bytes] = []
        keep = False
        for line in self.header_bytes.splitlines(keepends=True):
            if line in (b"\r\n", b"\n"):
                break
            if line[:1] in (b" ", b"\t") and current:
                current.append(line)
                continue
            if current and keep:
                out.extend(current)
            name = line.split(b":", 1)[0].strip().lower()
            keep = (name in wanted) != negate
            current = [line]
        if current and keep:
            out.extend(current)
        return b"".join(out) + b"\r\n"

    # --- parsed headers ------------------------------------------------------

    @cached_property
    def headers(self) -> Message:
        """The header, parsed by the stdlib's C{email} package."""
        return _HEADER_PARSER.parsebytes(self.header_bytes)

    def header(self, name: str) -> str | None:
        """One field's unfolded value, or L{None}."""
        value = self.headers.get(name)
        if value is None:
            return None
        return _unfold(str(value))

    @cached_property
    def content_type(self) -> tuple[str, str]:
        """(type, subtype), lowercased, with RFC 2045's default."""
        message = self.headers
        if message.get("content-type") is None:
            full = self.default_type
        else:
            message.set_default_type(self.default_type)
            full = message.get_content_type()
        maintype, _, subtype = full.partition("/")
        return maintype, subtype

    def _params(self, header: str) -> list[tuple[str, str]]:
        params = self.headers.get_params(header=header) or []
        result = []
        for name, value in params[1:]:
            if isinstance(value, tuple):
                value = email.utils.collapse_rfc2231_value(value)
            result.append((name, _unfold(str(value))))
        return result

    @cached_property
    def children(self) -> list[MessagePart]:
        """The parts of a multipart entity (none otherwise)."""
        maintype, subtype = self.content_type
        if maintype != "multipart" or self.depth >= _MAX_DEPTH:
            return []
        boundary = self.headers.get_boundary()
        if not boundary:
            return []
        delimiter = re.compile(
            rb"(?:^|\r?\n)--"
            + re.escape(boundary.encode("utf-8", "surrogateescape"))
            + rb"(--)?[ \t]*(?:\r?\n|$)",
            re.MULTILINE,
        )
        default = "message/rfc822" if subtype == "digest" else "text/plain"
        parts = []
        part_start: int | None = None
        for match in delimiter.finditer(self.data, self.body_start, self.end):
            if part_start is not None:
                parts.append(
                    MessagePart(
                        self.data,
                        part_start,
                        match.start(),
                        default_type=default,
                        depth=self.depth + 1,
                    )
                )
            if match.group(1):
                part_start = None
                break
            part_start = match.end()
        if part_start is not None:
            parts.append(
                MessagePart(
                    self.data,
                    part_start,
                    self.end,
                    default_type=default,
                    depth=self.depth + 1,
                )
            )
        return parts

    @cached_property
    def encapsulated(self) -> MessagePart | None:
        """The message inside a C{message/rfc822} entity (else L{None})."""
        if self.content_type != ("message", "rfc822") or self.depth >= _MAX_DEPTH:
            return None
        return MessagePart(self.data, self.body_start, self.end, depth=self.depth + 1)

    def subpart(self, index: int, *, top: bool = False) -> MessagePart:
        """
        Part C{index} (from 0) in IMAP's numbering: of a multipart, its
        parts; of a C{message/rfc822} part, the parts of the message inside;
        of anything else, part 0 is the entity itself.

        @raise IndexError: no such part.
        """
        entity: MessagePart = self
        if not top and entity.encapsulated is not None:
            entity = entity.encapsulated
        if entity.children:
            if 0 <= index < len(entity.children):
                return entity.children[index]
            raise IndexError(index)
        if index == 0:
            return entity
        raise IndexError(index)

    # --- BODYSTRUCTURE and ENVELOPE --------------------------------------------

    def body_structure(self, *, extended: bool = True) -> list[IMAPValue]:
        """
        This entity's C{BODYSTRUCTURE} (C{BODY} without extension data).
        """
        maintype, subtype = self.content_type
        if self.children:
            parts = Juxtaposed(
                child.body_structure(extended=extended) for child in self.children
            )
            structure: list[IMAPValue] = [parts, subtype]
            if extended:
                structure.extend(
                    [self._param_list("content-type"), *self._extension_data()]
                )
            return structure
        body = self.body
        structure = [
            maintype,
            subtype,
            self._param_list("content-type"),
            self.header("content-id"),
            self.header("content-description"),
            (self.header("content-transfer-encoding") or "7bit").strip().lower(),
            len(body),
        ]
        if self.encapsulated is not None:
            inner = self.encapsulated
            structure.extend(
                [inner.envelope(), inner.body_structure(extended=extended)]
            )
        if maintype == "text" or self.encapsulated is not None:
            structure.append(_line_count(body))
        if extended:
            structure.append(self.header("content-md5"))
            structure.extend(self._extension_data())
        return structure

    def _param_list(self, header: str) -> IMAPValue:
        params = self._params(header)
        if not params:
            return None
        return [item for pair in params for item in pair]

    def _extension_data(self) -> list[IMAPValue]:
        disposition_value = self.header("content-disposition")
        disposition: IMAPValue = None
        if disposition_value:
            kind = disposition_value.split(";", 1)[0].strip().lower()
            disposition = [kind, self._param_list("content-disposition")]
        language_value = self.header("content-language")
        language: IMAPValue = None
        if language_value:
            tags = [t.strip() for t in language_value.split(",") if t.strip()]
            language = tags[0] if len(tags) == 1 else tags
        return [disposition, language, self.header("content-location")]

    def envelope(self) -> list[IMAPValue]:
        """
        This (message) entity's C{ENVELOPE}.
        """
        from_ = self._addresses("from")
        return [
            self.header("date"),
            self.header("subject"),
            from_,
            self._addresses("sender") or from_,
            self._addresses("reply-to") or from_,
            self._addresses("to"),
            self._addresses("cc"),
            self._addresses("bcc"),
            self.header("in-reply-to"),
            self.header("message-id"),
        ]

    def _addresses(self, name: str) -> IMAPValue:
        values = self.headers.get_all(name)
        if not values:
            return None
        result: list[IMAPValue] = []
        for display, address in email.utils.getaddresses(
            [_unfold(str(v)) for v in values]
        ):
            if not display and not address:
                continue
            mailbox, at, host = address.rpartition("@")
            if not at:
                mailbox, host = address, ""
            result.append([display or None, None, mailbox or None, host or None])
        return result or None


def _line_count(body: bytes) -> int:
    count = body.count(b"\n")
    if body and not body.endswith(b"\n"):
        count += 1
    return count


class Section:
    """
    A C{BODY[...]} section, resolved against a message.

    @ivar part: the part path, numbered from 0 (C{BODY[1.2]} is C{(0, 1)}).
    @ivar kind: C{""} (the part or the whole message), C{"HEADER"},
        C{"HEADER.FIELDS"}, C{"HEADER.FIELDS.NOT"}, C{"TEXT"} or C{"MIME"}.
    @ivar fields: the field names of C{HEADER.FIELDS[.NOT]}.
    """

    def __init__(
        self, part: Sequence[int] = (), kind: str = "", fields: Sequence[bytes] = ()
    ) -> None:
        self.part = tuple(part)
        self.kind = kind
        self.fields = tuple(fields)

    def label(self) -> bytes:
        """The section as it is named in the FETCH response."""
        text = ".".join(str(p + 1) for p in self.part).encode()
        if self.kind:
            text = text + b"." + self.kind.encode() if text else self.kind.encode()
        if self.fields:
            text += b" (" + b" ".join(self.fields) + b")"
        return b"[" + text + b"]"

    def extract(self, message: MessagePart) -> bytes:
        """
        The section's bytes in C{message}.

        @raise IndexError: the message has no such part.
        """
        entity = message
        for depth, index in enumerate(self.part):
            entity = entity.subpart(index, top=depth == 0)
        if self.kind == "MIME":
            if not self.part:
                raise IndexError("MIME needs a part number")
            return entity.header_bytes
        if self.kind in ("HEADER", "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT"):
            if self.part:
                if entity.encapsulated is None:
                    raise IndexError("not a message/rfc822 part")
                entity = entity.encapsulated
            if self.kind == "TEXT":
                return entity.body
            if self.kind == "HEADER":
                return entity.header_bytes
            return entity.header_fields(
                self.fields, negate=self.kind == "HEADER.FIELDS.NOT"
            )
        if not self.part:
            return entity.raw
        return entity.body


def body_file(data: bytes) -> BytesIO:
    """A file over C{data}, for Twisted's C{getBodyFile}."""
    return BytesIO(data)


__all__ = [
    "Atom",
    "MessagePart",
    "Section",
    "format_internal_date",
    "imap_string",
    "serialize",
    "to_crlf",
]
