"""
The listeners' hooks: the SMTP server asks L{smtp_command_hook},
L{smtp_fault} and L{smtp_message_fault}, the IMAP server L{imap_fault}, at
each stage; a fault that hits is carried out here, with protocol words
(a reply) or on the connection (L{apply_output_fault}: drop, delay,
throttle, through L{shaping}).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Sequence
from typing import Any

from twisted_netlab.mail.lab.faults.model import (
    Action,
    Attempt,
    Delay,
    Drop,
    Reply,
    Throttle,
)
from twisted_netlab.mail.lab.faults.registry import Faults
from twisted_netlab.mail.lab.faults.shaping import shaped_transport


def peer_text(transport: Any) -> str:
    """
    A client's address as faults match it: the IP, or C{"unix"}.
    """
    try:
        peer = transport.getPeer()
    except Exception:
        return ""
    host = getattr(peer, "host", None)
    return host if isinstance(host, str) else "unix"


def plain_user(argument: bytes) -> str | None:
    """
    The user named by an C{AUTH PLAIN} initial response, if there is one.
    """
    parts = argument.split()
    if len(parts) < 2 or parts[0].upper() != b"PLAIN":
        return None
    try:
        fields = base64.b64decode(parts[1], validate=True).split(b"\0")
    except (binascii.Error, ValueError):
        return None
    if len(fields) != 3:
        return None
    return fields[1].decode("utf-8", "replace")


def smtp_reply_bytes(reply: Reply) -> tuple[int, bytes]:
    code = int(reply.code)
    return code, (reply.text or _SMTP_TEXT.get(code, "Fault injected")).encode("ascii")


_SMTP_TEXT = {
    421: "4.3.0 Service not available, closing the connection",
    450: "4.2.0 Mailbox unavailable, try again later",
    451: "4.3.0 Local error in processing, try again later",
    452: "4.3.1 Insufficient system storage",
    454: "4.7.0 Temporary authentication failure",
    535: "5.7.8 Authentication credentials invalid",
    550: "5.1.1 Mailbox unavailable",
    552: "5.3.4 Message too big",
    553: "5.1.3 Mailbox name not allowed",
    554: "5.0.0 Transaction failed",
}


def smtp_fault(
    protocol: Any,
    stage: str,
    *,
    sender: str | None = None,
    recipients: Sequence[str] = (),
    user: str | None = None,
) -> bool:
    """
    Ask the faults of C{protocol}'s factory about an SMTP stage and carry
    out the one that hits: the SMTP listener's one hook.

    @return: whether the stage's command must not be carried out (it was
        answered, or the connection dropped).
    """
    factory = protocol.factory
    faults: Faults | None = factory.faults
    if not faults:
        return False
    attempt = Attempt(
        client=peer_text(protocol.transport),
        sender=sender,
        recipients=tuple(recipients),
        user=user,
    )
    hit = faults.check("smtp", stage, attempt)
    if hit is None:
        return False
    action = hit.fault.action
    if isinstance(action, Reply):
        code, text = smtp_reply_bytes(action)
        protocol.sendCode(code, text)
        if code == 421 or stage == "connect":
            protocol.transport.loseConnection()
        return True
    return apply_output_fault(protocol, action, factory.reactor)


#: The SMTP commands that are stages, and their stages.
_SMTP_COMMANDS = {
    "EHLO": "ehlo",
    "HELO": "ehlo",
    "AUTH": "auth",
    "MAIL": "mail",
    "RCPT": "rcpt",
    "DATA": "data",
}
_FROM = re.compile(rb"^\s*FROM:\s*(<[^<>]*>|[^\s<>]+)", re.I)
_TO = re.compile(rb"^\s*TO:\s*(<[^<>]*>|[^\s<>]+)", re.I)


def smtp_command_hook(
    protocol: Any, command: str, method: Callable[[bytes], Any]
) -> Callable[[bytes], Any]:
    """
    C{method}, the handler of SMTP C{command} on C{protocol}, made to ask
    the faults of its stage first (the SMTP listener's C{lookupMethod}
    hook).  A command the server would refuse anyway (MAIL before EHLO, RCPT
    before MAIL, a syntax error...) is not faulted: it gets its usual answer.
    """
    stage = _SMTP_COMMANDS.get(command.upper())
    if stage is None:
        return method

    def handle(rest: bytes) -> Any:
        if _smtp_command_fault(protocol, stage, rest):
            return None
        return method(rest)

    return handle


def _smtp_command_fault(p: Any, stage: str, rest: bytes) -> bool:
    user = getattr(getattr(p, "delivery", None), "sender", None)
    if stage == "ehlo":
        return bool(rest.strip()) and smtp_fault(p, "ehlo", user=user)
    if stage == "auth":
        if p.authenticated or p._from is not None or not rest.split():
            return False
        if not getattr(p, "auth_allowed", True):
            return False
        return smtp_fault(p, "auth", user=plain_user(rest))
    if stage == "mail":
        match = _FROM.match(rest)
        if match is None or not (p._helo and p._helo[0]) or p._from:
            return False
        if p.factory.require_auth and not p.authenticated:
            return False
        return smtp_fault(p, "mail", sender=_address(match), user=user)
    if stage == "rcpt":
        match = _TO.match(rest)
        if match is None or not p._from:
            return False
        recipients = [_address(match)]
        return smtp_fault(
            p, "rcpt", sender=str(p._from), recipients=recipients, user=user
        )
    # DATA: what the message stage will be asked with, then the data stage.
    if not p._from or not p._to:
        return False
    sender, recipients = str(p._from), [str(u.dest) for u, _ in p._to]
    p._fault_envelope = (sender, recipients)
    if smtp_fault(p, "data", sender=sender, recipients=recipients, user=user):
        p._from = None  # the transaction is over: MAIL starts again
        p._to = []
        return True
    return False


def _address(match: re.Match[bytes]) -> str:
    return match.group(1).strip(b"<>").decode("utf-8", "replace")


def smtp_message_fault(
    protocol: Any,
    sender: str | None = None,
    recipients: Sequence[str] | None = None,
) -> bool:
    """
    Ask the faults of the message stage, at the final dot of C{DATA} (the
    SMTP listener's C{lineReceived} hook) or at the end of the last
    C{BDAT} chunk; the envelope is the one C{DATA} saw unless given.

    @return: whether the message was answered or dropped, and so must not
        be stored (the session is back in command mode).
    """
    if getattr(protocol, "datafailed", None) or not protocol.factory.faults:
        return False
    saved_sender, saved_recipients = getattr(protocol, "_fault_envelope", ("", []))
    sender = saved_sender if sender is None else sender
    recipients = saved_recipients if recipients is None else recipients
    user = getattr(getattr(protocol, "delivery", None), "sender", None)
    if smtp_fault(protocol, "message", sender=sender, recipients=recipients, user=user):
        protocol.mode = "COMMAND"
        return True
    return False


def imap_fault(
    protocol: Any,
    stage: str,
    tag: bytes | None,
    *,
    user: str | None = None,
) -> bool:
    """
    Ask the faults of C{protocol}'s factory about an IMAP command (C{stage}
    its name in capitals, or C{"connect"}) and carry out the one that hits:
    the IMAP listener's one hook.  (A literal the client sent unasked with a
    refused command, LITERAL+, is skipped by the server, as for any refusal.)

    @return: whether the command must not be carried out.
    """
    factory = protocol.factory
    faults: Faults | None = getattr(factory, "faults", None)
    if not faults:
        return False
    attempt = Attempt(client=peer_text(protocol.transport), user=user)
    hit = faults.check("imap", stage, attempt)
    if hit is None:
        return False
    action = hit.fault.action
    if isinstance(action, Reply):
        kind = str(action.code).upper()
        text = (action.text or "Fault injected by the mail lab").encode("ascii")
        if kind == "BYE" or tag is None:
            protocol.sendLine(b"* BYE " + text)
            protocol.transport.loseConnection()
        elif kind == "NO":
            protocol.sendNegativeResponse(tag, text)
        else:
            protocol.sendBadResponse(tag, text)
        return True
    return apply_output_fault(protocol, action, factory.reactor)


def apply_output_fault(protocol: Any, action: Action, reactor: Any) -> bool:
    """
    Carry out the actions that need no protocol words (drop, delay,
    throttle) on C{protocol}'s connection.

    @return: whether the command must not be carried out (an immediate
        drop); delays, throttling and cuts after some bytes let it run.
    """
    if isinstance(action, Drop):
        if action.after_bytes is None:
            drop(protocol.transport, action.abort)
            return True
        shaped_transport(protocol, reactor).cut_after(action.after_bytes, action.abort)
        return False
    if isinstance(action, Delay):
        shaped_transport(protocol, reactor).hold(action.seconds)
        return False
    if isinstance(action, Throttle):
        shaped_transport(protocol, reactor).throttle(action.rate)
        return False
    raise TypeError(f"not an output action: {action!r}")


def drop(transport: Any, abort: bool) -> None:
    """
    Close C{transport} (C{abort}: at once, with a reset).
    """
    if abort:
        transport.abortConnection()
    else:
        transport.loseConnection()
