"""
Sending a message with twisted.mail: L{send_message}.

Secure by default: STARTTLS is required unless C{tls="implicit"} (TLS from
the first byte) or C{tls="none"} is chosen; the certificate and host name are
verified (L{twisted_netlab.mail.tls.client_tls_options}); the password is
never sent without TLS unless C{allow_plaintext_auth=True}.  Every
recipient's outcome is reported, accepted or refused with the server's code
and text.

This module does not import L{twisted.mail.smtp} (which installs the global
reactor as it is imported); L{send_message} loads the protocol, in
L{twisted_netlab.mail.smtpclient}, when it is called.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email import policy
from email.message import Message
from email.utils import getaddresses
from typing import Any

from twisted.internet import error
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.python.failure import Failure

from twisted_netlab.errors import ConnectionFailed, NetlabError, UsageProblem
from twisted_netlab.mail.compose import parse_address
from twisted_netlab.mail.tls import client_tls_options

TLS_MODES = ("starttls", "implicit", "none")
DEFAULT_PORTS = {"starttls": 587, "implicit": 465, "none": 25}

#: Headers whose addresses must be ASCII unless the server takes SMTPUTF8.
_ADDRESS_HEADERS = ("from", "sender", "reply-to", "to", "cc")
_LINE_END = re.compile(rb"\r\n|\r|\n")


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


def needs_smtputf8(message: Message, envelope: Envelope | None = None) -> str | None:
    """
    The first address in C{envelope} or the message's address headers that
    is not ASCII (and so needs a server offering SMTPUTF8), or L{None}.
    """
    addresses = list(envelope.recipients) if envelope else []
    if envelope:
        addresses.insert(0, envelope.sender)
    for name in _ADDRESS_HEADERS:
        values = [str(v) for v in message.get_all(name, [])]
        addresses.extend(addr for _, addr in getaddresses(values))
    return next((a for a in addresses if not a.isascii()), None)


def envelope_of(
    message: Message,
    sender: str | None = None,
    recipients: Sequence[str] | None = None,
) -> Envelope:
    """
    The envelope for C{message}: C{sender} or else the Sender or From
    header's address; C{recipients} or else the addresses of To, Cc and Bcc.

    @raise UsageProblem: no sender, no recipient, or a malformed address.
    """
    if sender is None:
        header = message.get("Sender") or message.get("From")
        if header is None:
            raise UsageProblem("the message has no From header and no sender given")
        sender = str(header)
    if recipients is None:
        values = [
            str(v) for name in ("to", "cc", "bcc") for v in message.get_all(name, [])
        ]
        recipients = [addr for _, addr in getaddresses(values) if addr]
    if not recipients:
        raise UsageProblem("the message has no recipients")
    unique = dict.fromkeys(parse_address(r).addr_spec for r in recipients)
    return Envelope(parse_address(sender).addr_spec, tuple(unique))


def _connection_error(reason: Failure, host: str, server: str, timeout: float) -> Any:
    """
    Turn a failure to connect into L{ConnectionFailed}.
    """
    if reason.check(CancelledError, error.ConnectingCancelledError):
        raise CancelledError()
    if reason.check(error.DNSLookupError):
        message = f"cannot find the host {host} (DNS lookup failed)"
    elif reason.check(error.ConnectionRefusedError):
        message = f"{server} refused the connection (is the port right?)"
    elif reason.check(error.TimeoutError):
        message = f"no connection to {server} within {timeout:g} seconds"
    else:
        message = f"cannot connect to {server}: {reason.getErrorMessage()}"
    raise ConnectionFailed(message)


def send_message(
    reactor: Any,
    message: Message,
    *,
    host: str,
    port: int | None = None,
    tls: str = "starttls",
    username: str | None = None,
    password: str | None = None,
    sender: str | None = None,
    recipients: Sequence[str] | None = None,
    cafile: str | None = None,
    verify: bool = True,
    timeout: float = 30.0,
    allow_plaintext_auth: bool = False,
    local_hostname: str | None = None,
    transcript: Callable[[str], None] | None = None,
) -> Deferred[SendResult]:
    """
    Send C{message} through the SMTP server at C{host}.

    @param reactor: provides C{IReactorTCP}, C{IReactorTime} and
        C{IReactorPluggableNameResolver}.
    @param message: an C{email.message.Message} (e.g. from
        L{twisted_netlab.mail.compose.compose}); its Bcc header, if any, is
        not transmitted.
    @param port: default by C{tls}: 587, 465 or 25.
    @param tls: C{"starttls"} (required, the default), C{"implicit"} (TLS
        from the first byte) or C{"none"}.
    @param username: log in (AUTH PLAIN or LOGIN) as this user, with
        C{password}.
    @param sender: the envelope sender; by default the Sender or From address.
    @param recipients: the envelope recipients; by default the addresses in
        To, Cc and Bcc.
    @param cafile: trust the certificates in this PEM file instead of the
        system's.
    @param verify: C{False} skips certificate verification (unsafe).
    @param timeout: seconds to wait for the connection and each reply.
    @param allow_plaintext_auth: allow a login without TLS (C{tls="none"}).
    @param local_hostname: the name given in EHLO; default: this host's FQDN.
    @param transcript: called with each line of the conversation, C{"C: "}
        or C{"S: "} first, credentials masked.

    @return: a Deferred firing with a L{SendResult} once the server has
        answered for every recipient (some or all may be refused), or failing
        with L{ConnectionFailed}, L{TLSFailed}, L{AuthenticationFailed},
        L{ServerRefused} (sender refused, SMTPUTF8 or 8BITMIME missing, too
        big) or L{UsageProblem}.  Cancelling it drops the connection.
    """
    try:
        if tls not in TLS_MODES:
            raise UsageProblem(
                f"tls must be one of {', '.join(TLS_MODES)}, not {tls!r}"
            )
        if (username is None) != (password is None):
            raise UsageProblem("a login needs both a user name and a password")
        if username is not None and tls == "none" and not allow_plaintext_auth:
            raise UsageProblem(
                "refusing to send a password without TLS; use STARTTLS or "
                "implicit TLS, or allow plaintext authentication explicitly"
            )
        if not timeout > 0:
            raise UsageProblem("the timeout must be more than 0 seconds")
        envelope = envelope_of(message, sender, recipients)
        tls_options: Any = (
            None
            if tls == "none"
            else client_tls_options(host, cafile=cafile, verify=verify)
        )
    except NetlabError as e:
        return fail(e)

    from twisted_netlab.mail.smtpclient import MessageSenderFactory

    port = DEFAULT_PORTS[tls] if port is None else port
    server = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    factory = MessageSenderFactory(
        reactor=reactor,
        server=server,
        host=host,
        tls=tls,
        starttls_options=tls_options if tls == "starttls" else None,
        username=username,
        password=password,
        allow_plaintext_auth=allow_plaintext_auth,
        timeout=timeout,
        local_hostname=local_hostname,
        message=message,
        envelope=envelope,
        transcript=transcript,
    )
    endpoint: Any = HostnameEndpoint(reactor, host, port, timeout=timeout)
    if tls == "implicit":
        endpoint = wrapClientTLS(tls_options, endpoint)
    connecting: Deferred[Any] = endpoint.connect(factory)
    connecting.addErrback(_connection_error, host, server, timeout)
    connecting.addCallback(lambda _: factory.deferred)
    return connecting


__all__ = [
    "DEFAULT_PORTS",
    "TLS_MODES",
    "Envelope",
    "RecipientOutcome",
    "SendResult",
    "envelope_of",
    "message_bytes",
    "needs_smtputf8",
    "send_message",
]
