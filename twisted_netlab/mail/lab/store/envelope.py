"""
What the mail lab's store keeps beside a message and its folders: the SMTP
L{Envelope} it arrived with (a line of the folder's UID list), a
L{Delivery} of one message to several mailboxes, and the L{Retention}
limits of a mailbox.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Envelope:
    """
    The SMTP envelope a message arrived with, kept with the message.

    @ivar mail_from: the reverse path of C{MAIL FROM} (C{""} for C{<>}).
    @ivar rcpt_to: every accepted C{RCPT TO} address, in order (so that Bcc
        recipients can be seen), not only those of this copy's mailbox.
    @ivar client: the client's address (an IP address, or C{"unix"}).
    @ivar tls: whether the session was encrypted.
    @ivar auth_user: the address the client authenticated as, if it did.
    @ivar received: when the message was accepted (seconds since the epoch).
    @ivar helo: the name the client gave in C{HELO}/C{EHLO} (L{None}: not
        recorded, as for envelopes kept before it was).
    @ivar smtputf8: whether C{MAIL FROM} carried C{SMTPUTF8} (RFC 6531).
    @ivar via: how it came: C{"smtp"}, or C{"api"} (the HTTP API's
        C{POST /api/v1/send}: then C{auth_user} is the HTTP login, if any).
    """

    mail_from: str
    rcpt_to: tuple[str, ...]
    client: str
    tls: bool
    auth_user: str | None
    received: float
    helo: str | None = None
    smtputf8: bool = False
    via: str = "smtp"

    def to_json(self) -> str:
        """
        The envelope as one line of ASCII JSON (never a newline in it);
        C{helo} and C{utf8} only when there is something to say, so that
        readers of older lines and older readers of these agree.
        """
        fields: dict[str, object] = {
            "from": self.mail_from,
            "to": list(self.rcpt_to),
            "client": self.client,
            "tls": self.tls,
            "auth": self.auth_user,
            "at": self.received,
        }
        if self.helo is not None:
            fields["helo"] = self.helo
        if self.smtputf8:
            fields["utf8"] = True
        if self.via != "smtp":
            fields["via"] = self.via
        return json.dumps(fields, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Envelope | None:
        """
        The envelope of a UID list line, or L{None} if it is unreadable.
        A line without C{helo} or C{utf8} (written before they were kept)
        reads as not recorded and not SMTPUTF8.
        """
        try:
            data = json.loads(text)
            auth = data.get("auth")
            helo = data.get("helo")
            envelope = cls(
                mail_from=str(data["from"]),
                rcpt_to=tuple(str(address) for address in data["to"]),
                client=str(data.get("client", "")),
                tls=bool(data.get("tls", False)),
                auth_user=None if auth is None else str(auth),
                received=float(data["at"]),
                helo=None if helo is None else str(helo),
                smtputf8=data.get("utf8") is True,
                via=str(data.get("via", "smtp")),
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        return envelope


@dataclass(frozen=True)
class Delivery:
    """
    One message for the INBOXes of C{addresses} (see
    L{maildir.MailStore.deliver_many}), each copy with the IMAP keywords
    C{keywords} (the tags asked for; the store's tagger adds its own).
    """

    message: bytes
    addresses: Iterable[str]
    envelope: Envelope | None = None
    prefixes: Mapping[str, bytes] | None = None
    keywords: tuple[str, ...] = ()


#: What the store asks of each delivery: the IMAP keywords (tags) each
#: copy of C{message} gets, by address, given its envelope and the
#: addresses of its copies (see L{twisted_netlab.mail.lab.store.tags}).
Tagger = Callable[
    [bytes, "Envelope | None", Sequence[str]], Mapping[str, Sequence[str]]
]


@dataclass(frozen=True)
class Retention:
    """
    How much mail a mailbox keeps: at most C{max_messages} messages, none
    older than C{max_age} seconds (L{None}: no limit). The oldest go first.
    """

    max_messages: int | None = None
    max_age: float | None = None

    def __bool__(self) -> bool:
        return self.max_messages is not None or self.max_age is not None
