"""
An outgoing message as SMTP carries it: its L{Envelope}, its bytes on the
wire (L{message_bytes} for a composed message, L{raw_message_bytes} for
stored bytes sent as they are, L{needs_smtputf8}), and what became of it for
each recipient (L{RecipientOutcome}, L{SendResult}).

Both the API (L{twisted_netlab.mail.send}) and the protocol under it
(L{twisted_netlab.mail.smtpclient}) use these; this module imports neither,
nor L{twisted.mail}.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.utils import getaddresses

#: Headers whose addresses must be ASCII unless the server takes SMTPUTF8.
_ADDRESS_HEADERS = ("from", "sender", "reply-to", "to", "cc")
_LINE_END = re.compile(rb"\r\n|\r|\n")
_ONE_LINE_END = rb"(?:\r\n|\r(?!\n)|\n)"
_HEADER_END = re.compile(rb"(?:\A|" + _ONE_LINE_END + rb")" + _ONE_LINE_END)


@dataclass(frozen=True)
class RecipientOutcome:
    """
    What became of the message for one recipient.

    @ivar code: the server's reply code: to C{RCPT TO}, or to the message
        data when the recipient was accepted but the message was not.
    @ivar text: the server's reply text.
    """

    address: str
    accepted: bool
    code: int
    text: str

    @property
    def temporary(self) -> bool:
        """
        Refused with a 4xx code: trying again later may work.
        """
        return not self.accepted and 400 <= self.code < 500

    def __str__(self) -> str:
        if self.accepted:
            return f"accepted {self.address}"
        return f"refused  {self.address}: {self.code} {self.text}".rstrip()


@dataclass(frozen=True)
class SendResult:
    """
    Every recipient's outcome, in the order they were given.

    @ivar reply: the server's reply to the message data (C{"250 2.0.0 Ok:
        queued as ..."}), or C{""} when no recipient was accepted and no data
        was sent.
    """

    recipients: tuple[RecipientOutcome, ...]
    reply: str = ""

    @property
    def accepted(self) -> tuple[RecipientOutcome, ...]:
        return tuple(r for r in self.recipients if r.accepted)

    @property
    def refused(self) -> tuple[RecipientOutcome, ...]:
        return tuple(r for r in self.recipients if not r.accepted)

    @property
    def all_accepted(self) -> bool:
        """
        Every recipient got the message.
        """
        return bool(self.recipients) and not self.refused

    @property
    def all_refused(self) -> bool:
        """
        No recipient got the message (as opposed to only some refused).
        """
        return not self.accepted


@dataclass(frozen=True)
class Envelope:
    """
    The SMTP envelope: C{MAIL FROM} and C{RCPT TO} addresses.
    """

    sender: str
    recipients: tuple[str, ...]


def _without_bcc(message: Message) -> Message:
    if "Bcc" not in message and "Resent-Bcc" not in message:
        return message
    # As smtplib does: deleting replaces the copy's header list, not the
    # original's.
    shallow = copy.copy(message)
    del shallow["Bcc"], shallow["Resent-Bcc"]
    return shallow


def message_bytes(
    message: Message, *, smtputf8: bool | None = None, eight_bit: bool = True
) -> bytes:
    """
    The message as L{send_message} transmits it, before dot-stuffing: Bcc
    and Resent-Bcc headers removed, lines ended by CRLF.

    @param smtputf8: write non-ASCII addresses and headers as UTF-8 (RFC
        6532); by default, exactly when L{needs_smtputf8} says so.
    @param eight_bit: leave 8-bit text parts as they are (for a server with
        8BITMIME); with C{False} the stdlib re-encodes them (base64).
    """
    if smtputf8 is None:
        smtputf8 = needs_smtputf8(message) is not None
    chosen = policy.SMTPUTF8 if smtputf8 else policy.SMTP
    if not eight_bit:
        chosen = chosen.clone(cte_type="7bit")
    data = _without_bcc(message).as_bytes(policy=chosen)
    return _LINE_END.sub(b"\r\n", data)


def raw_message_bytes(raw: bytes) -> bytes:
    """
    Stored message bytes as SMTP carries them, before dot-stuffing: exactly
    C{raw} when its lines end in CRLF; otherwise each bare CR or LF becomes
    CRLF, the only line end SMTP allows.  Nothing else changes (a Bcc header
    in C{raw} stays).
    """
    return _LINE_END.sub(b"\r\n", raw)


def header_block(data: bytes) -> bytes:
    """
    The header section of message bytes: everything before the first empty
    line (all of C{data} if there is none).
    """
    end = _HEADER_END.search(data)
    return data if end is None else data[: end.start()]


def needs_smtputf8(
    message: Message | bytes, envelope: Envelope | None = None
) -> str | None:
    """
    The first address in C{envelope} or the message's address headers that
    is not ASCII (and so needs a server offering SMTPUTF8), or L{None}.

    For stored bytes (sent as they are), only the envelope's addresses are
    looked at: 8-bit headers there need 8BITMIME and get SMTPUTF8 when the
    server offers it (see L{twisted_netlab.mail.smtpclient}).
    """
    addresses = list(envelope.recipients) if envelope else []
    if envelope:
        addresses.insert(0, envelope.sender)
    if isinstance(message, Message):
        for name in _ADDRESS_HEADERS:
            values = [str(v) for v in message.get_all(name, [])]
            addresses.extend(addr for _, addr in getaddresses(values))
    return next((a for a in addresses if not a.isascii()), None)


__all__ = [
    "Envelope",
    "RecipientOutcome",
    "SendResult",
    "header_block",
    "message_bytes",
    "needs_smtputf8",
    "raw_message_bytes",
]
