"""
The JSON of messages in Mailpit's shapes (C{MessageSummary} and C{Message}
in its C{swagger.json}), with the fields of our own: C{Mailbox} in both,
C{Envelope} in the detail.  Every route that shows a message (lists,
searches, waits, the event stream, the webhook, the message itself) uses
these.

As Mailpit does, C{Bcc} also lists the envelope recipients that To, Cc and
Bcc do not name (software such as Laravel leaves Bcc out of the headers):
a view, the stored bytes are not changed.  C{Tags} are the message's IMAP
keywords (L{twisted_netlab.mail.lab.store.tags}); C{Username} is the login
of the SMTP session (or of the HTTP send request) it came by.
"""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Iterable
from typing import Any

from twisted_netlab.mail.lab.store.catalog import Entry
from twisted_netlab.mail.lab.store.parsed import Address, ParsedMessage
from twisted_netlab.mail.lab.store.search import SearchFacts, envelope_only
from twisted_netlab.mail.lab.store.tags import tags_of
from twisted_netlab.mail.lab.web.unsubscribe import list_unsubscribe


def when(timestamp: float) -> str:
    """
    A time as Mailpit writes it: UTC, to the millisecond (C{...T12:00:00.000Z}).
    """
    return (
        datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _address(value: Address | None) -> dict[str, str]:
    if value is None:
        return {"Name": "", "Address": ""}
    return {"Name": value.name, "Address": value.address}


def _addresses(values: Iterable[Address]) -> list[dict[str, str]]:
    return [_address(v) for v in values]


def bcc(message: SearchFacts | ParsedMessage, envelope: Any) -> list[dict[str, str]]:
    """
    The Bcc a message shows: its Bcc header's addresses, then the envelope
    recipients its To, Cc and Bcc do not name.
    """
    extra = envelope_only(message, envelope)
    return _addresses(message.bcc) + [{"Name": "", "Address": a} for a in extra]


def username(envelope: Any) -> str:
    """Mailpit's C{Username}: the login the message came with, or empty."""
    return (envelope.auth_user or "") if envelope is not None else ""


def summary(entry: Entry) -> dict[str, Any]:
    """
    The JSON of a message in a list (Mailpit's C{MessageSummary}, plus
    C{Mailbox}).
    """
    facts = entry.facts
    envelope = entry.envelope
    flags = entry.flags
    return {
        "ID": entry.id,
        "MessageID": facts.message_id,
        "Read": "\\Seen" in flags,
        "From": _address(facts.from_),
        "To": _addresses(facts.to),
        "Cc": _addresses(facts.cc),
        "Bcc": bcc(facts, envelope),
        "ReplyTo": _addresses(facts.reply_to),
        "Subject": facts.subject,
        "Created": when(entry.received),
        "Username": username(envelope),
        "Tags": tags_of(flags),
        "Size": facts.size,
        "Attachments": facts.attachment_count,
        "Snippet": facts.snippet,
        "Mailbox": entry.address,
    }


def envelope_json(envelope: Any) -> dict[str, Any] | None:
    """
    The JSON of a message's SMTP envelope (None when none was kept).
    """
    if envelope is None:
        return None
    return {
        "MailFrom": envelope.mail_from,
        "RcptTo": list(envelope.rcpt_to),
        "Client": envelope.client,
        "TLS": bool(envelope.tls),
        "AuthUser": envelope.auth_user,
        "Received": when(envelope.received),
        "Via": envelope.via,
    }


def detail(entry: Entry, parsed: ParsedMessage) -> dict[str, Any]:
    """
    The JSON of one message (Mailpit's C{Message}, plus C{Mailbox} and
    C{Envelope}).
    """
    date = parsed.date
    envelope = entry.envelope
    flags = entry.flags
    return {
        "ID": entry.id,
        "MessageID": parsed.message_id,
        "Read": "\\Seen" in flags,
        "From": _address(parsed.from_),
        "To": _addresses(parsed.to),
        "Cc": _addresses(parsed.cc),
        "Bcc": bcc(parsed, envelope),
        "ReplyTo": _addresses(parsed.reply_to),
        "ReturnPath": parsed.return_path,
        "Subject": parsed.subject,
        "ListUnsubscribe": list_unsubscribe(
            parsed.header("list-unsubscribe"), parsed.header("list-unsubscribe-post")
        ),
        "Date": date.isoformat() if date is not None else when(entry.received),
        "Tags": tags_of(flags),
        "Username": username(envelope),
        "Text": parsed.text,
        "HTML": parsed.html,
        "Size": parsed.size,
        "Inline": [_part(p) for p in parsed.inline],
        "Attachments": [_part(p) for p in parsed.attachments],
        "Mailbox": entry.address,
        "Envelope": envelope_json(entry.envelope),
    }


def _part(part: Any) -> dict[str, Any]:
    content = bytes(part.content)
    return {
        "PartID": part.part_id,
        "FileName": part.file_name,
        "Checksums": {
            "MD5": hashlib.md5(content, usedforsecurity=False).hexdigest(),
            "SHA1": hashlib.sha1(content, usedforsecurity=False).hexdigest(),
            "SHA256": hashlib.sha256(content).hexdigest(),
        },
        "ContentType": part.content_type,
        "ContentID": part.content_id,
        "Size": part.size,
    }


def canonical_header_name(name: str) -> str:
    """
    C{name} as Mailpit (Go's net/textproto) spells header keys:
    C{message-ID} -> C{Message-Id}.
    """
    return "-".join(word[:1].upper() + word[1:].lower() for word in name.split("-"))
