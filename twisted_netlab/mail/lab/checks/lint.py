"""
The lint: the defects of a message I{as sent}, those that real providers
reject or junk mail for, and that no test inbox shows.

The message as sent is the stored bytes without the lab's own
C{Received:} line: the first header field, when it is a C{Received:}
that says C{(netlab mail lab)} (L{lab_received_length}).  Line numbers
count from there.  Lines, line ends and header bytes are read from the
raw bytes (parsing hides them); addresses, dates and the MIME structure
are parsed with the stdlib's C{email} package and then checked against
the raw bytes of each part.

Each finding has a stable C{Code} with one severity (L{SEVERITIES}):
C{error} for what breaks a MUST of the RFCs or is refused by large
receivers whoever sends it; C{warning} for what risks the junk folder,
or is required only of senders the lab cannot recognise (the bulk-sender
rules apply from a sending volume).  docs/checks.rst lists them.
"""

from __future__ import annotations

import binascii
import calendar
import codecs
import email.header
import email.message
import email.parser
import email.policy
import email.utils
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool

from twisted_netlab.mail.lab.checks.context import Arrival, CheckContext, CheckError

ERROR = "error"
WARNING = "warning"

#: Every code the lint reports, with its one severity.
SEVERITIES = {
    "bare-lf": ERROR,
    "bare-cr": ERROR,
    "line-too-long": ERROR,
    "header-syntax": ERROR,
    "missing-from": ERROR,
    "missing-date": ERROR,
    "missing-message-id": ERROR,
    "duplicate-header": ERROR,
    "non-ascii-header": ERROR,
    "bad-date": ERROR,
    "bad-address": ERROR,
    "bad-message-id": ERROR,
    "mime-boundary": ERROR,
    "bad-transfer-encoding": ERROR,
    "charset-mismatch": ERROR,
    "no-text-part": WARNING,
    "list-unsubscribe-missing": WARNING,
    "list-unsubscribe-post-missing": WARNING,
}

#: RFC 5321 4.5.3.1.6 and RFC 5322 2.1.1: octets in a line, CRLF excluded.
MAX_LINE = 998
#: Fields that may appear at most once: RFC 5322 3.6's table, and the
#: MIME fields of RFC 2045 (two Content-Types leave receivers guessing).
ONCE = [
    "Date",
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Bcc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "Subject",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
]
#: Fields whose value is addresses (RFC 5322 3.6.2, 3.6.3, 3.6.6).
ADDRESS_FIELDS = [
    "From",
    "Sender",
    "Reply-To",
    "To",
    "Cc",
    "Bcc",
    "Resent-From",
    "Resent-Sender",
    "Resent-To",
    "Resent-Cc",
    "Resent-Bcc",
]
_MAILBOX_LISTS = {"from", "resent-from"}
_SINGLE_MAILBOX = {"sender", "resent-sender"}
_MAY_BE_EMPTY = {"bcc", "resent-bcc"}

_FIELD = re.compile(rb"^([\x21-\x39\x3b-\x7e]+):")
_LAB_MARK = b" (netlab mail lab) with "
_ENCODINGS = ("7bit", "8bit", "binary", "quoted-printable", "base64")
_BCHARS = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")
_QP_BAD = re.compile(r"=(?![0-9A-Fa-f]{2}|\r?\n|\Z)|[^\t\r\n\x20-\x7e]")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}")

_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_QUOTED = r'"(?:[^"\\\r\n]|\\.)*"'
_MSG_ID = re.compile(
    rf"<(?:{_DOT_ATOM}|{_QUOTED})@(?:{_DOT_ATOM}|\[[\x21-\x5a\x5e-\x7e]*\])>"
)

_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
_MONTHS = [
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
    "nov",
    "dec",
]
_OBS_ZONES = {"ut", "gmt", "est", "edt", "cst", "cdt", "mst", "mdt", "pst", "pdt"}
_DATE = re.compile(
    r"(?:(?P<dow>[A-Za-z]+) ?, ?)?(?P<day>\d{1,2}) (?P<month>[A-Za-z]+) "
    r"(?P<year>\d{2,4}) (?P<hour>\d{2}) ?: ?(?P<minute>\d{2})"
    r"(?: ?: ?(?P<second>\d{2}))? (?P<zone>[+-]\d{4}|[A-Za-z]{1,3})"
)
_EXAMPLE_DATE = "Mon, 1 Jan 2024 10:00:00 +0000"


@dataclass(frozen=True)
class Finding:
    """
    One defect: its stable C{code}, what is wrong (C{message}) and where
    (a header field, a line or a MIME part).
    """

    code: str
    message: str
    where: str

    @property
    def severity(self) -> str:
        return SEVERITIES[self.code]

    def to_json(self) -> dict[str, str]:
        return {
            "Code": self.code,
            "Severity": self.severity,
            "Message": self.message,
            "Where": self.where,
        }


def check(raw: bytes, context: CheckContext) -> Deferred[dict[str, Any]]:
    """
    The check's entry point (see L{twisted_netlab.mail.lab.checks}): the
    lint answer, computed in a thread of the reactor's pool.
    """
    reactor = context.reactor
    return deferToThreadPool(
        reactor, reactor.getThreadPool(), _guarded, raw, context.arrival
    )


def _guarded(raw: bytes, arrival: Arrival) -> dict[str, Any]:
    try:
        return lint(raw, arrival)
    except Exception as e:  # a bug: say so in one line, keep the traceback
        raise CheckError(
            f"the lint check failed on this message: {type(e).__name__}: {e}"
        ) from e


def lint(raw: bytes, arrival: Arrival | None = None) -> dict[str, Any]:
    """
    The lint answer for the stored message C{raw}: C{Errors}, C{Warnings}
    and C{Findings} (each C{Code}, C{Severity}, C{Message}, C{Where}).
    """
    found = findings(raw, arrival or Arrival())
    return {
        "Errors": sum(1 for f in found if f.severity == ERROR),
        "Warnings": sum(1 for f in found if f.severity == WARNING),
        "Findings": [f.to_json() for f in found],
    }


def lab_received_length(raw: bytes) -> int:
    """
    How many bytes at the start of C{raw} are the lab's own C{Received:}
    field (with its CRLF): the one smtp.py prepends to each copy, folded
    over two or three lines, naming C{(netlab mail lab)}.  0 when the first
    field is anything else.
    """
    if not raw.startswith(b"Received: from "):
        return 0
    end = 0
    while True:
        end = raw.find(b"\r\n", end)
        if end < 0:
            return 0
        if raw[end + 2 : end + 3] not in (b" ", b"\t"):
            break
        end += 2
    return end + 2 if _LAB_MARK in raw[:end] else 0


@dataclass
class _Line:
    number: int
    content: bytes  # without its line end
    bare_lf: bool


@dataclass
class _Field:
    name: str
    raw: bytes  # the field's lines, unfolded (line ends dropped)
    line: int

    @property
    def value(self) -> bytes:
        return self.raw.split(b":", 1)[1].strip()

    def text(self) -> str:
        return self.value.decode("utf-8", "replace")

    def where(self) -> str:
        return f"header {self.name}, line {self.line}"


def _lines(text: bytes, first: int = 1) -> list[_Line]:
    """
    The lines of C{text}, numbered from C{first}.
    """
    pieces = text.split(b"\n")
    lines = []
    for index, piece in enumerate(pieces):
        last = index == len(pieces) - 1
        if last and not piece:
            break
        crlf = piece.endswith(b"\r")
        lines.append(
            _Line(index + first, piece[:-1] if crlf else piece, not crlf and not last)
        )
    return lines


def _header_lines(sent: bytes) -> tuple[list[_Line], int]:
    """
    The lines of the header, up to and with the empty line that ends it,
    and where the body starts.
    """
    lines: list[_Line] = []
    position = 0
    while position < len(sent):
        end = sent.find(b"\n", position)
        piece = sent[position:] if end < 0 else sent[position:end]
        position = len(sent) if end < 0 else end + 1
        crlf = piece.endswith(b"\r")
        line = _Line(
            len(lines) + 1, piece[:-1] if crlf else piece, not crlf and end >= 0
        )
        lines.append(line)
        if not line.content:
            break
    return lines, position


_LONG = re.compile(rb"[^\n]{%d}" % (MAX_LINE + 1))


def _body_lines(body: bytes, first: int) -> list[_Line]:
    """
    The body's lines when one of them may be a defect, else none: counting
    line ends and looking for a long run is much cheaper than splitting.
    """
    crlf = body.count(b"\r\n")
    if (
        body.count(b"\n") == crlf
        and body.count(b"\r") == crlf
        and not _LONG.search(body)
    ):
        return []
    return _lines(body, first)


def findings(raw: bytes, arrival: Arrival) -> list[Finding]:
    """
    Every defect of C{raw} as sent (see the module's docstring), in the
    order of the message.
    """
    sent = raw[lab_received_length(raw) :]
    header_lines, body_start = _header_lines(sent)
    found: list[Finding] = []
    found.extend(_line_findings("header", header_lines))
    found.extend(
        _line_findings("body", _body_lines(sent[body_start:], len(header_lines) + 1))
    )
    ended = bool(header_lines) and not header_lines[-1].content
    fields, header_found = _fields(header_lines[:-1] if ended else header_lines)
    found.extend(header_found)
    found.extend(_header_findings(fields, arrival))
    found.extend(_mime_findings(sent, arrival))
    found.extend(_bulk_findings(fields))
    return found


# lines


def _line_findings(section: str, lines: list[_Line]) -> Iterator[Finding]:
    bare = [line for line in lines if line.bare_lf]
    if bare:
        yield Finding(
            "bare-lf",
            f"{_count(bare, section)} in LF without CR; SMTP wants CRLF, and "
            "receivers that guard against SMTP smuggling refuse bare LF",
            _at(section, bare),
        )
    cr = [line for line in lines if b"\r" in line.content]
    if cr:
        yield Finding(
            "bare-cr",
            f"{_count(cr, section, 'hold', 'holds')} a CR that is not followed "
            "by LF (RFC 5322 2.3 forbids it)",
            _at(section, cr),
        )
    long = [line for line in lines if len(line.content) > MAX_LINE]
    if long:
        longest = max(long, key=lambda line: len(line.content))
        yield Finding(
            "line-too-long",
            f"{_count(long, section, 'are', 'is')} over {MAX_LINE} octets (RFC "
            f"5322 2.1.1); the longest has {len(longest.content):,} (line "
            f"{longest.number}): use quoted-printable or base64",
            _at(section, long),
        )


def _count(
    lines: list[_Line], section: str, plural: str = "end", singular: str = "ends"
) -> str:
    if len(lines) == 1:
        return f"1 line of the {section} {singular}"
    return f"{len(lines)} lines of the {section} {plural}"


def _at(section: str, lines: list[_Line]) -> str:
    where = f"{section}, line {lines[0].number}"
    if len(lines) > 1:
        where += f" (and {len(lines) - 1} more)"
    return where


# header fields


def _fields(lines: list[_Line]) -> tuple[list[_Field], list[Finding]]:
    fields: list[_Field] = []
    problems: list[Finding] = []
    for line in lines:
        if line.content[:1] in (b" ", b"\t"):
            if not fields:
                problems.append(
                    Finding(
                        "header-syntax",
                        "the message starts with a folded line, which continues "
                        "no field (receivers drop it)",
                        f"header, line {line.number}",
                    )
                )
                continue
            fields[-1].raw += line.content
            continue
        match = _FIELD.match(line.content)
        if match is None:
            shown = line.content[:40].decode("ascii", "replace")
            problems.append(
                Finding(
                    "header-syntax",
                    f"{shown!r} is not a header field (Name: value); receivers "
                    "take it and all that follows as the body",
                    f"header, line {line.number}",
                )
            )
            break
        fields.append(_Field(match.group(1).decode("ascii"), line.content, line.number))
    return fields, problems


def _header_findings(fields: list[_Field], arrival: Arrival) -> Iterator[Finding]:
    by_name: dict[str, list[_Field]] = {}
    for field in fields:
        by_name.setdefault(field.name.lower(), []).append(field)
    for field in fields:
        if max(field.raw) < 0x80:
            continue
        if not arrival.smtputf8:
            yield Finding(
                "non-ascii-header",
                f"{field.name} holds raw 8-bit bytes, but the message was not "
                "sent with SMTPUTF8: encode it (RFC 2047 encoded words)",
                field.where(),
            )
        else:
            try:
                field.raw.decode("utf-8")
            except UnicodeDecodeError:
                yield Finding(
                    "non-ascii-header",
                    f"{field.name} holds 8-bit bytes that are not UTF-8 "
                    "(RFC 6532 allows only UTF-8)",
                    field.where(),
                )
    for name, code, why in (
        ("From", "missing-from", "RFC 5322 3.6 requires it"),
        ("Date", "missing-date", "RFC 5322 3.6 requires it"),
        (
            "Message-ID",
            "missing-message-id",
            "RFC 5322 3.6.4 asks for one, and Gmail refuses mail without it",
        ),
    ):
        if name.lower() not in by_name:
            yield Finding(code, f"the message has no {name}: field ({why})", "header")
    for name in ONCE:
        seen = by_name.get(name.lower(), [])
        if len(seen) > 1:
            yield Finding(
                "duplicate-header",
                f"{name} appears {len(seen)} times; it may appear once "
                "(RFC 5322 3.6, RFC 2045)",
                f"header {name}, lines " + ", ".join(str(f.line) for f in seen),
            )
    for field in by_name.get("date", []):
        problem = date_problem(field.text())
        if problem:
            yield Finding("bad-date", problem, field.where())
    for name in ADDRESS_FIELDS:
        for field in by_name.get(name.lower(), []):
            problem = address_problem(name, field.text(), arrival.smtputf8)
            if problem:
                yield Finding("bad-address", problem, field.where())
    senders = by_name.get("sender", [])
    for field in by_name.get("from", []):
        if not senders and _mailbox_count(field.text()) > 1:
            yield Finding(
                "bad-address",
                "From has several addresses and there is no Sender: field "
                "(RFC 5322 3.6.2)",
                field.where(),
            )
    for field in by_name.get("message-id", []):
        value = _strip_comments(field.text()).strip()
        if not _MSG_ID.fullmatch(value):
            yield Finding(
                "bad-message-id",
                f"{value!r} is not a message id such as <unique@your.domain> "
                "(RFC 5322 3.6.4)",
                field.where(),
            )


def _strip_comments(text: str) -> str:
    out: list[str] = []
    depth = 0
    escaped = False
    quoted = False
    for char in text:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(char)
            continue
        if char == "\\":
            escaped = True
            if depth == 0:
                out.append(char)
            continue
        if char == '"' and depth == 0:
            quoted = not quoted
        elif not quoted and char == "(":
            depth += 1
            continue
        elif not quoted and char == ")" and depth:
            depth -= 1
            out.append(" ")
            continue
        if depth == 0:
            out.append(char)
    return "".join(out)


def date_problem(value: str) -> str | None:
    """
    Why C{value} is not an RFC 5322 date-time (section 3.3, or the
    obsolete forms of 4.3 that receivers must still read), or L{None}.
    """
    text = " ".join(_strip_comments(value).split())
    match = _DATE.fullmatch(text)
    bad = f"{value!r} is not an RFC 5322 date such as {_EXAMPLE_DATE!r}"
    if match is None:
        return bad
    parts = match.groupdict()
    month_name = parts["month"].lower()
    if month_name not in _MONTHS:
        return f"{bad}: {parts['month']!r} is not a month"
    month = _MONTHS.index(month_name) + 1
    year = int(parts["year"])
    if len(parts["year"]) == 2:
        year += 2000 if year < 50 else 1900
    elif len(parts["year"]) == 3:
        year += 1900
    day = int(parts["day"])
    if year < 1900:
        return f"{bad}: the year is before 1900"
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return f"{bad}: {parts['month']} {year} has no day {day}"
    if int(parts["hour"]) > 23 or int(parts["minute"]) > 59:
        return f"{bad}: {parts['hour']}:{parts['minute']} is not a time"
    if parts["second"] is not None and int(parts["second"]) > 60:
        return f"{bad}: second {parts['second']} is out of range"
    zone = parts["zone"]
    if zone[0] in "+-":
        if int(zone[3:]) > 59:
            return f"{bad}: the zone {zone} has more than 59 minutes"
    elif zone.lower() not in _OBS_ZONES and not (
        len(zone) == 1 and zone.lower() != "j"
    ):
        return f"{bad}: {zone!r} is not a time zone (use +hhmm)"
    if parts["dow"] is not None:
        dow = parts["dow"].lower()
        if dow not in _DAYS:
            return f"{bad}: {parts['dow']!r} is not a day of the week"
        actual = _DAYS[calendar.weekday(year, month, day)]
        if dow != actual:
            return (
                f"{value!r}: {day} {parts['month']} {year} is a "
                f"{actual.title()}, not a {dow.title()} (RFC 5322 3.3)"
            )
    return None


def _address_header(name: str, value: str) -> Any:
    return email.policy.default.header_factory(name, value)


def _mailbox_count(value: str) -> int:
    try:
        return len(_address_header("To", value).addresses)
    except Exception:
        return 0


def address_problem(name: str, value: str, smtputf8: bool = False) -> str | None:
    """
    Why C{value} is not a valid value of the address field C{name} by
    RFC 5322 (its obsolete syntax of section 4 accepted), or L{None}.
    """
    try:
        header = _address_header(name, value)
    except Exception:  # the stdlib's parser has crashes on some bad input
        return f"{name}: {value!r} does not parse as addresses (RFC 5322 3.4)"
    for defect in header.defects:
        kind = type(defect).__name__
        if kind == "ObsoleteHeaderDefect":
            continue
        if kind == "NonASCIILocalPartDefect" and smtputf8:
            continue
        return f"{name}: {value!r} is not an RFC 5322 address list: {defect}"
    lowered = name.lower()
    groups = [g for g in header.groups if g.display_name is not None]
    if not header.addresses and not groups and lowered not in _MAY_BE_EMPTY:
        return f"{name}: has no address"
    if lowered in _MAILBOX_LISTS and groups:
        return f"{name}: a group is not allowed here, only mailboxes (RFC 5322 3.6.2)"
    if lowered in _SINGLE_MAILBOX and (len(header.addresses) != 1 or groups):
        return f"{name}: must be exactly one mailbox (RFC 5322 3.6.2)"
    for address in header.addresses:
        if not address.domain or not address.username:
            return f"{name}: {str(address)!r} is not local-part@domain"
    return None


# MIME


def _parts(
    message: email.message.Message, number: str = ""
) -> Iterator[tuple[str, email.message.Message]]:
    yield number, message
    if message.is_multipart():
        for index, part in enumerate(message.get_payload(), 1):
            if isinstance(part, email.message.Message):
                yield from _parts(part, f"{number}.{index}" if number else str(index))


def _part_where(number: str, part: email.message.Message) -> str:
    kind = part.get_content_type()
    return f"part {number} ({kind})" if number else f"message ({kind})"


def _mime_findings(sent: bytes, arrival: Arrival) -> Iterator[Finding]:
    message = email.parser.BytesParser(policy=email.policy.compat32).parsebytes(sent)
    html = plain = False
    for number, part in _parts(message):
        where = _part_where(number, part)
        if number and not arrival.smtputf8:
            for name, value in part.items():
                if isinstance(value, email.header.Header):
                    yield Finding(
                        "non-ascii-header",
                        f"{name} of part {number} holds raw 8-bit bytes: encode "
                        "it (RFC 2047, RFC 2231 for file names)",
                        f"part {number} header {name}",
                    )
        encoding = str(part.get("Content-Transfer-Encoding", "7bit")).strip().lower()
        if part.get_content_maintype() == "multipart":
            yield from _multipart_findings(part, where, encoding)
            continue
        if part.get_content_maintype() == "message" and part.is_multipart():
            continue
        if encoding not in _ENCODINGS:
            yield Finding(
                "bad-transfer-encoding",
                f"Content-Transfer-Encoding {encoding!r} is not one of "
                + ", ".join(_ENCODINGS),
                where,
            )
            continue
        broken = list(_encoding_findings(part, where, encoding))
        yield from broken
        if part.get_content_maintype() == "text":
            if not broken:  # the decoded bytes mean nothing then
                yield from _charset_findings(part, where)
            attached = str(part.get("Content-Disposition", "")).lower()
            if not attached.startswith("attachment"):
                kind = part.get_content_subtype()
                html = html or kind == "html"
                plain = plain or kind == "plain"
    if html and not plain:
        yield Finding(
            "no-text-part",
            "the message has HTML and no text/plain alternative: spam filters "
            "score it, and text-only readers see nothing",
            "message",
        )


def _multipart_findings(
    part: email.message.Message, where: str, encoding: str
) -> Iterator[Finding]:
    boundary = part.get_param("boundary")
    if encoding not in ("7bit", "8bit", "binary"):
        yield Finding(
            "bad-transfer-encoding",
            f"a multipart is encoded {encoding}; only 7bit, 8bit or binary are "
            "allowed (RFC 2045 6.4)",
            where,
        )
    if not boundary:
        yield Finding(
            "mime-boundary",
            f"{part.get_content_type()} has no boundary parameter",
            where,
        )
        return
    text = email.utils.collapse_rfc2231_value(boundary)
    if not _BCHARS.fullmatch(text):
        yield Finding(
            "mime-boundary",
            f"the boundary {text!r} is not 1 to 70 of RFC 2046's characters",
            where,
        )
    for defect in part.defects:
        kind = type(defect).__name__
        if kind == "StartBoundaryNotFoundDefect":
            yield Finding(
                "mime-boundary",
                f"no line starts with --{text}: the multipart has no part",
                where,
            )
        elif kind == "CloseBoundaryNotFoundDefect":
            yield Finding(
                "mime-boundary",
                f"the closing delimiter --{text}-- is missing",
                where,
            )


def _encoding_findings(
    part: email.message.Message, where: str, encoding: str
) -> Iterator[Finding]:
    if encoding in ("7bit", "8bit", "binary"):
        body = part.get_payload(decode=True)
        if not isinstance(body, bytes):
            return
        if encoding == "7bit" and body and max(body) >= 0x80:
            yield Finding(
                "bad-transfer-encoding",
                "8-bit bytes in a part that is 7bit (the default when "
                "Content-Transfer-Encoding is absent): declare 8bit, or use "
                "quoted-printable or base64",
                where,
            )
        elif encoding != "binary" and b"\x00" in body:
            yield Finding(
                "bad-transfer-encoding",
                f"a NUL byte in a part that is {encoding} (RFC 2045 2.7, 2.8)",
                where,
            )
        return
    payload = part.get_payload()
    if not isinstance(payload, str):
        return
    if encoding == "base64":
        compact = "".join(payload.split())
        if not _BASE64.fullmatch(compact) or len(compact) % 4:
            yield Finding(
                "bad-transfer-encoding",
                "the base64 is broken: characters outside its alphabet, or "
                "padding that does not make whole groups of 4",
                where,
            )
        else:
            try:
                binascii.a2b_base64(compact.encode("ascii"), strict_mode=True)
            except binascii.Error as e:
                yield Finding(
                    "bad-transfer-encoding", f"the base64 is broken: {e}", where
                )
        return
    bad = _QP_BAD.search(payload)
    if bad:
        number = payload.count("\n", 0, bad.start()) + 1
        yield Finding(
            "bad-transfer-encoding",
            f"quoted-printable line {number} of the part has {bad.group(0)!r}: "
            "'=' must start =XX (two hex digits) or end a line, and other "
            "bytes must be printable ASCII (RFC 2045 6.7)",
            where,
        )


def _charset_findings(part: email.message.Message, where: str) -> Iterator[Finding]:
    body = part.get_payload(decode=True)
    if not isinstance(body, bytes):
        return
    declared = part.get_param("charset")
    charset = (
        email.utils.collapse_rfc2231_value(declared).strip().lower()
        if declared
        else "us-ascii"
    )
    try:
        codec = codecs.lookup(charset)
    except LookupError:
        yield Finding("charset-mismatch", f"unknown charset {charset!r}", where)
        return
    if codec.name == "ascii" or charset in ("us-ascii", "ascii"):
        if body and max(body) >= 0x80:
            offset = next(i for i, b in enumerate(body) if b >= 0x80)
            yield Finding(
                "charset-mismatch",
                f"byte 0x{body[offset]:02X} at offset {offset} is not US-ASCII, "
                "the charset"
                + (" declared" if declared else " of a text part without one"),
                where,
            )
        return
    try:
        body.decode(codec.name)
    except UnicodeDecodeError as e:
        yield Finding(
            "charset-mismatch",
            f"byte 0x{body[e.start]:02X} at offset {e.start} is not valid "
            f"{charset}, the declared charset",
            where,
        )


# bulk mail


def _bulk_findings(fields: list[_Field]) -> Iterator[Finding]:
    named: dict[str, _Field] = {}
    for field in fields:
        named.setdefault(field.name.lower(), field)
    precedence = named.get("precedence")
    if "list-id" in named:
        why = "List-Id"
    elif precedence is not None and precedence.text().lower() in ("bulk", "list"):
        why = f"Precedence: {precedence.text()}"
    else:
        return
    unsubscribe = named.get("list-unsubscribe")
    if unsubscribe is None:
        yield Finding(
            "list-unsubscribe-missing",
            f"the message looks like bulk mail ({why}) and has no "
            "List-Unsubscribe: Gmail and Yahoo require one of bulk senders "
            "since 2024",
            "header",
        )
        return
    post = named.get("list-unsubscribe-post")
    https = re.search(r"<\s*https://", unsubscribe.text(), re.IGNORECASE)
    if post is None or post.text() != "List-Unsubscribe=One-Click" or not https:
        missing = []
        if post is None:
            missing.append(
                "there is no List-Unsubscribe-Post: List-Unsubscribe=One-Click"
            )
        elif post.text() != "List-Unsubscribe=One-Click":
            missing.append(
                f"List-Unsubscribe-Post is {post.text()!r}, not "
                "'List-Unsubscribe=One-Click'"
            )
        if not https:
            missing.append("List-Unsubscribe has no https: URI")
        yield Finding(
            "list-unsubscribe-post-missing",
            f"the message looks like bulk mail ({why}) but offers no one-click "
            f"unsubscribe (RFC 8058): {'; and '.join(missing)}",
            unsubscribe.where(),
        )
