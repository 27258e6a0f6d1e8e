"""
The body of Mailpit's C{POST /api/v1/send}, turned into a message:
L{message_from_send_json} and L{message_from_send_request}.

The body is Mailpit's C{SendRequest} (swagger.json, server/apiv1/send.go):
C{From} C{{Email, Name}} (required), C{To}, C{Cc} and C{ReplyTo} lists of
C{{Email, Name}}, C{Bcc} a list of addresses, C{Subject}, C{Text},
C{HTML}, C{Attachments} C{[{Content (base64), Filename, ContentType?,
ContentID?}]}, C{Headers} C{{name: value}} and C{Tags}.  As in Mailpit
(Go's encoding/json): field names match case-insensitively, unknown fields
and nulls are ignored, a field of the wrong type is an error; From, a
Subject and at least one recipient are required (enmime's rules); an
attachment's content may be a data URL (C{data:image/png;base64,...}) and
its type is sniffed from its bytes when not given; an attachment with a
ContentID is inline, related to the HTML; Tags become an C{X-Tags} header;
Headers may not replace To, From, Cc, Bcc, Reply-To, Date, Subject,
Content-Type, MIME-Version (nor X-Tags when Tags are given).  Bcc goes into
the envelope only, never into the headers.  Unlike Mailpit, an HTML body
alone makes a text/html message (Mailpit adds an empty text/plain part),
and Content-* headers are refused too (the MIME structure sets them).

Every problem is a L{SendRequestInvalid} with a one-line C{str()}, which
the route answers as 400 C{{"Error": ...}}.  The message is built by the
project's L{twisted_netlab.mail.compose} on the stdlib's C{email}.

How it is meant to be hooked in (the C{/api/v1/send} resource)::

    try:
        composed = message_from_send_json(request.content.read())
    except SendRequestInvalid as e:
        -> 400 {"Error": str(e)}
    # store composed.raw for composed.recipients as if received, with an
    # envelope saying it came from the API (MAIL FROM composed.sender), apply
    # composed.tags (also in its X-Tags header), feed the webhook and the
    # forwarder as for SMTP mail; answer {"ID": the new message's ID}.
"""

from __future__ import annotations

import base64
import binascii
import json
import mimetypes
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from typing import Any

from twisted_netlab.errors import EXIT_USAGE, NetlabError, UsageProblem
from twisted_netlab.mail.compose import Draft, compose, parse_address
from twisted_netlab.mail.outgoing import message_bytes

#: Headers the request's Headers may not set (as in Mailpit; compared
#: without regard to case).
RESTRICTED_HEADERS = (
    "To",
    "From",
    "Cc",
    "Bcc",
    "Reply-To",
    "Date",
    "Subject",
    "Content-Type",
    "Mime-Version",
)

_JSON_TYPES = {
    str: "a string",
    bool: "a boolean",
    int: "a number",
    float: "a number",
    list: "an array",
    dict: "an object",
}
_CONTENT_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*\Z")
#: Magic numbers of the types Go's http.DetectContentType knows best.
_SIGNATURES = (
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"%PDF-", "application/pdf"),
    (b"PK\x03\x04", "application/zip"),
    (b"\x1f\x8b\x08", "application/x-gzip"),
    (b"BM", "image/bmp"),
)


class SendRequestInvalid(NetlabError):
    """
    A send request that cannot be made into a message: the HTTP API
    answers it with 400 and C{{"Error": str(error)}}.
    """

    exit_code = EXIT_USAGE


@dataclass(frozen=True)
class ComposedMessage:
    """
    A message made from a send request.

    @ivar raw: the message's bytes, lines ended by CRLF, without Bcc.
    @ivar sender: the envelope sender (From's address).
    @ivar recipients: To, Cc and Bcc addresses, each once, in that order.
    @ivar tags: the request's Tags, each once, in order.
    """

    raw: bytes
    sender: str
    recipients: tuple[str, ...]
    tags: tuple[str, ...]


def _type_name(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


def _field(body: Mapping[str, Any], name: str) -> Any:
    """
    C{body[name]}, matched as Go's encoding/json does: exactly, or else
    without regard to case; L{None} when absent.
    """
    if name in body:
        return body[name]
    lower = name.lower()
    return next((v for k, v in body.items() if k.lower() == lower), None)


def _string(value: Any, where: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise SendRequestInvalid(f"{where} must be a string, not {_type_name(value)}")
    return value


def _one_line(value: str, where: str) -> str:
    if "\r" in value or "\n" in value:
        raise SendRequestInvalid(f"{where} must not contain a line break")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise SendRequestInvalid(f"{where} must be an array, not {_type_name(value)}")
    return value


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SendRequestInvalid(f"{where} must be an object, not {_type_name(value)}")
    return value


def _address(email: str, name: str, field: str) -> Address:
    """
    One address of the request: C{email} checked, C{name} as its display
    name.
    """
    try:
        parsed = parse_address(email)
    except UsageProblem:
        raise SendRequestInvalid(f"invalid {field} address: {email!r}") from None
    return Address(
        display_name=name or parsed.display_name,
        username=parsed.username,
        domain=parsed.domain,
    )


def _named_addresses(value: Any, field: str) -> list[Address]:
    """
    A list of C{{Email, Name}} objects (To, Cc, ReplyTo).
    """
    addresses = []
    for index, item in enumerate(_list(value, field)):
        where = f"{field}[{index}]"
        entry = _object(item, where)
        email = _string(_field(entry, "Email"), f"{where}.Email")
        if not email:
            raise SendRequestInvalid(f"{where}.Email is required")
        name = _one_line(
            _string(_field(entry, "Name"), f"{where}.Name"), f"{where}.Name"
        )
        addresses.append(_address(email, name, field))
    return addresses


def _sniff(data: bytes, filename: str) -> str:
    """
    An attachment's type when the request gives none: from its first
    bytes (as Go's http.DetectContentType), else its file name, else text
    or binary.
    """
    for signature, content_type in _SIGNATURES:
        if data.startswith(signature):
            return content_type
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    guessed, encoding = mimetypes.guess_type(filename)
    if guessed is not None and encoding is None:
        return guessed
    try:
        text = data[:512].decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at 512 bytes is still text.
        try:
            text = data[:508].decode("utf-8")
        except UnicodeDecodeError:
            return "application/octet-stream"
    if any(ord(c) < 32 and c not in "\t\r\n\f" for c in text):
        return "application/octet-stream"
    return "text/plain"


@dataclass(frozen=True)
class _Attachment:
    filename: str
    data: bytes
    content_type: str
    content_id: str


def _attachments(value: Any) -> list[_Attachment]:
    found = []
    for index, item in enumerate(_list(value, "Attachments")):
        where = f"Attachments[{index}]"
        entry = _object(item, where)
        filename = _string(_field(entry, "Filename"), f"{where}.Filename")
        if not filename:
            raise SendRequestInvalid(f"{where}.Filename is required")
        _one_line(filename, f"{where}.Filename")
        content = _string(_field(entry, "Content"), f"{where}.Content")
        # A data URL (what a browser's readAsDataURL gives): the base64
        # comes after the last comma, as Mailpit takes it.
        encoded = content.rsplit(",", 1)[-1].replace("\r", "").replace("\n", "")
        try:
            data = base64.b64decode(encoded, validate=True)
        except (binascii.Error, ValueError):
            raise SendRequestInvalid(
                f"{where}.Content of {filename!r} is not valid base64"
            ) from None
        content_type = _string(_field(entry, "ContentType"), f"{where}.ContentType")
        if content_type and not _CONTENT_TYPE.match(content_type):
            raise SendRequestInvalid(
                f"{where}.ContentType {content_type!r} is not a MIME type "
                "(type/subtype)"
            )
        content_id = _string(_field(entry, "ContentID"), f"{where}.ContentID")
        content_id = _one_line(content_id, f"{where}.ContentID").strip("<>")
        found.append(
            _Attachment(
                filename,
                data,
                content_type.lower() or _sniff(data, filename),
                content_id,
            )
        )
    return found


def _headers(value: Any, restricted: tuple[str, ...]) -> list[tuple[str, str]]:
    if value is None:
        return []
    headers = []
    forbidden = {name.lower() for name in restricted}
    for name, text in _object(value, "Headers").items():
        if name.lower() in forbidden:
            raise SendRequestInvalid(f'cannot overwrite header: "{name}"')
        if not name or not all(33 <= ord(c) <= 126 and c != ":" for c in name):
            raise SendRequestInvalid(f"Headers: {name!r} is not a header name")
        if name.lower().startswith("content-"):
            raise SendRequestInvalid(
                f'cannot set header "{name}": the message\'s structure sets it'
            )
        where = f"Headers[{name!r}]"
        headers.append((name, _one_line(_string(text, where), where)))
    return headers


def _tags(value: Any) -> list[str]:
    tags: dict[str, None] = {}
    for index, item in enumerate(_list(value, "Tags")):
        where = f"Tags[{index}]"
        tag = _one_line(_string(item, where), where).strip()
        if tag:
            tags.setdefault(tag, None)
    return list(tags)


def _attach(message: EmailMessage, attachment: _Attachment) -> None:
    maintype, subtype = attachment.content_type.split("/", 1)
    options: dict[str, Any] = {"filename": attachment.filename}
    if maintype == "message":
        # RFC 2046: no base64 for message/*; keep the bytes as 8-bit lines
        # where they are lines, else send them as opaque data.
        if b"\0" in attachment.data or any(
            len(line) > 998 for line in attachment.data.splitlines()
        ):
            maintype, subtype = "application", "octet-stream"
        else:
            options["cte"] = "8bit"
    elif maintype == "text":
        options["params"] = {"charset": "utf-8"}
    if attachment.content_id:
        options["cid"] = f"<{attachment.content_id}>"
        options["disposition"] = "inline"
        html = message.get_body(("html",))
        if html is not None:
            html.add_related(attachment.data, maintype, subtype, **options)
            return
    message.add_attachment(attachment.data, maintype, subtype, **options)


def message_from_send_request(
    body: Any, *, date: datetime | None = None, message_id: str | None = None
) -> ComposedMessage:
    """
    The message a parsed C{POST /api/v1/send} body describes.

    @param date: its Date (default: now); C{message_id}: its Message-ID
        (default: a new one in the sender's domain; a C{Message-ID} in the
        request's Headers wins).
    @raise SendRequestInvalid: for the first field that is missing, of the
        wrong type or invalid, naming it.
    """
    request = _object(body, "the request body")
    sender_field = _field(request, "From")
    if sender_field is None:
        raise SendRequestInvalid("From is required")
    sender_entry = _object(sender_field, "From")
    sender_email = _string(_field(sender_entry, "Email"), "From.Email")
    if not sender_email:
        raise SendRequestInvalid("From.Email is required")
    sender_name = _one_line(
        _string(_field(sender_entry, "Name"), "From.Name"), "From.Name"
    )
    sender = _address(sender_email, sender_name, "From")
    to = _named_addresses(_field(request, "To"), "To")
    cc = _named_addresses(_field(request, "Cc"), "Cc")
    bcc = []
    for index, item in enumerate(_list(_field(request, "Bcc"), "Bcc")):
        email = _string(item, f"Bcc[{index}]")
        bcc.append(_address(email, "", "Bcc"))
    reply_to = _named_addresses(_field(request, "ReplyTo"), "Reply-To")
    subject = _one_line(_string(_field(request, "Subject"), "Subject"), "Subject")
    if not subject:
        raise SendRequestInvalid("Subject is required")
    if not (to or cc or bcc):
        raise SendRequestInvalid("no recipients: give To, Cc or Bcc")
    text = _string(_field(request, "Text"), "Text")
    html = _string(_field(request, "HTML"), "HTML")
    attachments = _attachments(_field(request, "Attachments"))
    tags = _tags(_field(request, "Tags"))
    restricted = RESTRICTED_HEADERS + (("X-Tags",) if tags else ())
    extra = _headers(_field(request, "Headers"), restricted)
    if reply_to:
        extra.insert(0, ("Reply-To", ", ".join(str(a) for a in reply_to)))
    if tags:
        extra.append(("X-Tags", ", ".join(tags)))

    draft = Draft(
        sender=str(sender),
        to=[str(a) for a in to],
        cc=[str(a) for a in cc],
        subject=subject,
        text=text if text or not html else None,
        html=html or None,
        headers=extra,
    )
    try:
        message = compose(draft, date=date, message_id=message_id)
    except UsageProblem as e:
        raise SendRequestInvalid(str(e)) from None
    for attachment in attachments:
        _attach(message, attachment)
    for part in message.walk() if attachments else ():
        if part is not message:  # the stdlib repeats it in parts it makes
            del part["MIME-Version"]
        if part.is_multipart():
            # compose() named the boundaries after what they enclosed then;
            # let the generator pick ones that occur nowhere in the parts now.
            part.del_param("boundary")
    recipients = dict.fromkeys(a.addr_spec for a in (*to, *cc, *bcc))
    return ComposedMessage(
        raw=message_bytes(message),
        sender=sender.addr_spec,
        recipients=tuple(recipients),
        tags=tuple(tags),
    )


def message_from_send_json(
    data: bytes | str, *, date: datetime | None = None, message_id: str | None = None
) -> ComposedMessage:
    """
    L{message_from_send_request} for the request body as it came (JSON).

    @raise SendRequestInvalid: not JSON, not an object, or a bad field.
    """
    try:
        body = json.loads(data)
    except UnicodeDecodeError:
        raise SendRequestInvalid("the request body is not UTF-8") from None
    except json.JSONDecodeError as e:
        raise SendRequestInvalid(
            f"the request body is not JSON: {e.msg} at line {e.lineno} column {e.colno}"
        ) from None
    return message_from_send_request(body, date=date, message_id=message_id)


__all__ = [
    "RESTRICTED_HEADERS",
    "ComposedMessage",
    "SendRequestInvalid",
    "message_from_send_json",
    "message_from_send_request",
]
