"""
Composing a message with the standard library's C{email} package.

L{compose} turns a L{Draft} into an C{email.message.EmailMessage}: a text
body and optionally an HTML alternative, attachments typed by C{mimetypes},
To and Cc (Bcc never appears in the headers: L{Draft.recipients} is where
those addresses go), extra headers, Date and Message-ID.  The stdlib does the
encoding: non-ASCII subjects and display names become RFC 2047 words,
non-ASCII file names RFC 2231 parameters.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.errors import NonASCIILocalPartDefect
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from os import PathLike
from pathlib import Path

from twisted_netlab.errors import UsageProblem

#: Headers compose() writes from the draft's fields; an extra header may not.
_OWN_HEADERS = frozenset({"from", "to", "cc", "bcc", "subject", "mime-version"})


def parse_address(text: str) -> Address:
    """
    Parse one address: C{user@example.org} or C{Display Name <user@example.org>}.
    A non-ASCII local part is allowed (it needs an SMTPUTF8 server).

    @raise UsageProblem: C{text} is not exactly one address with a domain.
    """
    problem = UsageProblem(f"not an email address: {text!r}")
    if "\r" in text or "\n" in text:
        raise problem
    try:
        header = policy.SMTPUTF8.header_factory("To", text)
        addresses = header.addresses
        defects = [
            d for d in header.defects if not isinstance(d, NonASCIILocalPartDefect)
        ]
    except Exception:  # the parser raises IndexError on 'a@'
        raise problem from None
    if defects or len(addresses) != 1 or not addresses[0].domain:
        raise problem
    address: Address = addresses[0]
    return address


def _field_name(name: str) -> str:
    """
    Check an extra header's name (RFC 5322 field-name) and that compose does
    not write that header itself.
    """
    if not name or not all(33 <= ord(c) <= 126 and c != ":" for c in name):
        raise UsageProblem(f"bad header name {name!r}")
    lower = name.lower()
    if lower in _OWN_HEADERS or lower.startswith("content-"):
        raise UsageProblem(
            f"header {name} is set by its own option or by the message's "
            "structure, not as an extra header"
        )
    return name


@dataclass(frozen=True)
class Draft:
    """
    What a message is made of: the input of L{compose}.

    Addresses are C{user@example.org} or C{Name <user@example.org>}.

    @ivar text: the plain text body; with C{html} as well the message is
        C{multipart/alternative}; with neither, the body is empty.
    @ivar attachments: files attached as they are, typed by their names.
    @ivar headers: extra C{(name, value)} headers, e.g. C{("Reply-To", ...)};
        a C{Date} or C{Message-ID} here replaces the generated one.
    """

    sender: str
    to: Sequence[str] = ()
    subject: str = ""
    text: str | None = None
    html: str | None = None
    cc: Sequence[str] = ()
    bcc: Sequence[str] = ()
    attachments: Sequence[str | PathLike[str]] = ()
    headers: Sequence[tuple[str, str]] = ()

    def envelope_sender(self) -> str:
        """
        The sender's address, for C{MAIL FROM}.
        """
        return parse_address(self.sender).addr_spec

    def recipients(self) -> list[str]:
        """
        Everyone the message goes to, for C{RCPT TO}: the addresses of To, Cc
        and Bcc, each once, in that order.

        @raise UsageProblem: an address is malformed.
        """
        seen: dict[str, None] = {}
        for text in (*self.to, *self.cc, *self.bcc):
            seen.setdefault(parse_address(text).addr_spec, None)
        return list(seen)


def _read_attachment(path: str | PathLike[str]) -> tuple[str, bytes, str, str]:
    """
    The file name, content and MIME type of an attachment.

    A compressed file (C{.gz}, ...) and anything C{mimetypes} does not know
    is C{application/octet-stream}; so is C{message/*}, which must not be
    base64-encoded (RFC 2046) while the bytes must arrive as they are.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise UsageProblem(f"cannot read attachment {path}: {e.strerror}") from None
    content_type, encoding = mimetypes.guess_type(Path(path).name)
    if (
        content_type is None
        or encoding is not None
        or content_type.startswith("message/")
    ):
        content_type = "application/octet-stream"
    maintype, subtype = content_type.split("/", 1)
    return Path(path).name, data, maintype, subtype


def _message_id_domain(sender: Address) -> str:
    try:
        return sender.domain.encode("idna").decode("ascii")
    except UnicodeError:
        return "localhost"


def _fix_boundaries(message: EmailMessage) -> None:
    """
    Name every multipart boundary after a digest of what it encloses.

    The stdlib picks random boundaries; named this way, the same draft always
    gives the same bytes (apart from Date and Message-ID), so what
    C{netlab send --dry-run} prints is what a real send delivers.  A boundary
    cannot occur in the parts its digest was computed from.
    """
    multiparts = [part for part in message.walk() if part.is_multipart()]
    for part in reversed(multiparts):  # innermost first: parents digest them
        digest = hashlib.sha256()
        for child in part.iter_parts():
            digest.update(child.as_bytes(policy=policy.SMTPUTF8))
        part.set_boundary(f"=_netlab_{digest.hexdigest()[:32]}")


def compose(
    draft: Draft, *, date: datetime | None = None, message_id: str | None = None
) -> EmailMessage:
    """
    Build the message described by C{draft}.

    @param date: the Date header (default: now, local time zone).
    @param message_id: the Message-ID (default: a new one in the sender's
        domain).
    @raise UsageProblem: a malformed address or header, or an attachment that
        cannot be read.
    """
    sender = parse_address(draft.sender)
    message = EmailMessage(policy=policy.SMTP)
    try:
        message["From"] = sender
        if draft.to:
            message["To"] = [parse_address(a) for a in draft.to]
        if draft.cc:
            message["Cc"] = [parse_address(a) for a in draft.cc]
        if draft.subject:
            message["Subject"] = draft.subject
        extra = [(_field_name(name), value) for name, value in draft.headers]
        given = {name.lower() for name, _ in extra}
        if "date" not in given:
            message["Date"] = format_datetime(date or datetime.now().astimezone())
        if "message-id" not in given:
            message["Message-ID"] = message_id or make_msgid(
                domain=_message_id_domain(sender)
            )
        for name, value in extra:
            message[name] = value
    except ValueError as e:  # a line break in a value, a second Date, ...
        raise UsageProblem(f"bad header: {e}") from None

    if draft.text is None and draft.html is not None:
        message.set_content(draft.html, subtype="html")
    else:
        message.set_content(draft.text or "")
        if draft.html is not None:
            message.add_alternative(draft.html, subtype="html")
    for path in draft.attachments:
        filename, data, maintype, subtype = _read_attachment(path)
        message.add_attachment(data, maintype, subtype, filename=filename)
    for part in message.walk():
        if part is not message:  # the stdlib repeats it in parts it creates
            del part["MIME-Version"]
    _fix_boundaries(message)
    return message


__all__ = ["Draft", "compose", "parse_address"]
