"""
Where mail that arrives by SMTP goes, and what its copies say of how it
came: the routing rule (a lab user of a local domain, else the catch-all,
else refused: the lab never relays) and the C{Received:} header each
mailbox's copy starts with (RFC 5321 4.4, RFC 3848).
"""

from __future__ import annotations

import time
from collections.abc import Set
from email.utils import formatdate

from twisted.internet.address import UNIXAddress
from twisted.logger import Logger
from twisted.mail import smtp

from twisted_netlab.mail.lab.users import (
    BadAddress,
    UsersFile,
    UsersFileError,
    normalize_address,
)

log = Logger()


def local_recipient(
    address: smtp.Address,
    *,
    domains: Set[str],
    users: UsersFile,
    catch_all: str | None,
) -> str:
    """
    The lab user whose INBOX mail for C{address} goes to: the user it
    names, or the one its subaddress belongs to (RFC 5233: C{bob+news@x}
    is C{bob@x}'s when no user C{bob+news@x} exists; the part after C{+}
    becomes a tag), or else the catch-all.

    @param domains: the local domains, normalized.
    @param catch_all: the normalized address that receives everything else
        (capture), or L{None}.
    @raise smtp.SMTPBadRcpt: without a catch-all, 550 for another domain
        (no relaying) or an unknown user; 451 if the users file cannot be
        read.
    """
    try:
        domain = address.domain.decode("ascii").lower()
        text = normalize_address(str(address))
    except (UnicodeDecodeError, BadAddress):
        if catch_all is not None:
            return catch_all
        raise smtp.SMTPBadRcpt(address, 550, "5.1.1 No such user here") from None
    if domain not in domains:
        if catch_all is not None:
            return catch_all
        raise smtp.SMTPBadRcpt(
            address, 550, "5.7.1 Relaying denied: not a local domain"
        )
    try:
        known = text in users
    except UsersFileError:
        log.failure("SMTP: cannot read the users file")
        raise smtp.SMTPBadRcpt(
            address, 451, "4.3.0 Local error: try again later"
        ) from None
    if known:
        return text
    local, _, rest = text.partition("@")
    base = local.partition("+")[0]
    if base and base != local:
        try:
            owner = f"{base}@{rest}"
            if owner in users:
                return owner
        except UsersFileError:
            log.failure("SMTP: cannot read the users file")
            raise smtp.SMTPBadRcpt(
                address, 451, "4.3.0 Local error: try again later"
            ) from None
    if catch_all is not None:
        return catch_all
    raise smtp.SMTPBadRcpt(address, 550, "5.1.1 No such user here")


def received_header(
    *,
    helo: bytes | None,
    peer: object,
    host: bytes,
    secure: bool,
    authenticated: bool,
    for_: smtp.Address | None = None,
    smtputf8: bool = False,
    protocol: bytes | None = None,
) -> bytes:
    """
    The C{Received:} header of one mailbox's copy (RFC 5321 4.4, with the
    RFC 3848 protocol names), CRLF-folded, without its final CRLF; it names
    the recipient (C{for_}) when the copy is for one only.

    @param helo: the name the client gave in HELO/EHLO.
    @param peer: the client's address.
    @param host: the name the server greets with.
    @param secure: whether the connection is encrypted.
    @param authenticated: whether the client has logged in.
    @param protocol: what the header says the message came with, instead
        of the SMTP protocol names (C{b"HTTP"}: the send API).
    """
    helo = helo or b"unknown"
    described = describe(peer).encode("ascii", "replace")
    with_ = protocol or (
        (b"UTF8SMTP" if smtputf8 else b"ESMTP")
        + (b"S" if secure else b"")
        + (b"A" if authenticated else b"")
    )
    date = formatdate(time.time(), localtime=False).encode("ascii")
    for_clause = b"" if for_ is None else b"\r\n\tfor <" + bytes(for_) + b">"
    return (
        b"Received: from "
        + _printable(helo)
        + b" ("
        + described
        + b")\r\n\tby "
        + host
        + b" (netlab mail lab) with "
        + with_
        + for_clause
        + b"; "
        + date
    )


def describe(address: object) -> str:
    """
    A peer's address for replies, headers and logs: C{[IP]}, or
    C{unix socket}.
    """
    host = getattr(address, "host", None)
    if isinstance(host, str):
        return f"[{host}]"
    if isinstance(address, UNIXAddress):
        return "unix socket"
    return str(address)


def client_address(address: object) -> str:
    """
    The client's address for the envelope: its IP address, or C{"unix"}.
    """
    host = getattr(address, "host", None)
    if isinstance(host, str):
        return host
    if isinstance(address, UNIXAddress):
        return "unix"
    return str(address)


def _printable(text: bytes) -> bytes:
    return bytes(c if 33 <= c < 127 and c not in b"()\\" else 63 for c in text[:255])
