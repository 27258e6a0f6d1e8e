"""
Sending a message with twisted.mail: L{send_message}.

Secure by default: STARTTLS is required unless C{tls="implicit"} (TLS from
the first byte) or C{tls="none"} is chosen; the certificate and host name are
verified (L{twisted_netlab.mail.tls.client_tls_options}); the password is
never sent without TLS unless C{allow_plaintext_auth=True}.  Every
recipient's outcome is reported, accepted or refused with the server's code
and text.

The envelope, the message's bytes and the result types are defined in
L{twisted_netlab.mail.outgoing}, which the protocol shares, and are
importable from here too.  This module does not import L{twisted.mail.smtp}
(which installs the global reactor as it is imported); L{send_message} loads
the protocol, in L{twisted_netlab.mail.smtpclient}, when it is called.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from typing import Any

from twisted.internet import error
from twisted.internet.defer import CancelledError, Deferred, fail
from twisted.internet.endpoints import HostnameEndpoint, wrapClientTLS
from twisted.python.failure import Failure

from twisted_netlab.errors import ConnectionFailed, NetlabError, UsageProblem
from twisted_netlab.mail.compose import parse_address
from twisted_netlab.mail.outgoing import (
    Envelope,
    RecipientOutcome,
    SendResult,
    message_bytes,
    needs_smtputf8,
)
from twisted_netlab.mail.tls import client_tls_options

TLS_MODES = ("starttls", "implicit", "none")
DEFAULT_PORTS = {"starttls": 587, "implicit": 465, "none": 25}


def envelope_of(
    message: Message | bytes,
    sender: str | None = None,
    recipients: Sequence[str] | None = None,
) -> Envelope:
    """
    The envelope for C{message} (a C{Message}, or message bytes whose
    headers are read): C{sender} or else the Sender or From header's
    address; C{recipients} or else the addresses of To, Cc and Bcc.

    @raise UsageProblem: no sender, no recipient, or a malformed address.
    """
    if isinstance(message, bytes):
        message = BytesHeaderParser(policy=compat32).parsebytes(message)
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
    message: Message | bytes,
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
        not transmitted.  Or message bytes (a stored message, relayed):
        sent unchanged but for line ends made CRLF, Bcc header included.
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
