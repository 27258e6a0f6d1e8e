"""
Release and forwarding through a configured smarthost, as Mailpit's message
relay does: L{RelayConfig} (the C{--relay...} and C{--forward} options),
L{Relay} (send a stored message, unchanged, to the recipients asked for)
and L{Forwarder} (a copy of every captured message to fixed addresses, in
the background, with retries).

Nothing is ever relayed unless the lab was started with C{--relay}, and
then only to recipients that C{--relay-allow} admits (release) or to the
C{--forward} addresses.  Sending goes through the project's one SMTP client
(L{twisted_netlab.mail.send.send_message}): the relay's certificate is
verified (STARTTLS by default), and a password is only sent over TLS unless
plaintext authentication is explicitly allowed.

Where the lab differs from Mailpit: the stored bytes are sent as they are
(Mailpit's release also drops a Bcc header and renews Date and Message-ID),
and forwarding never holds the SMTP reply (Mailpit forwards before it
answers).

How it is meant to be hooked in:

  - tap options: collect C{--relay}, C{--relay-tls}, C{--relay-cafile},
    C{--relay-user}, C{--relay-password-file}, C{--relay-allow},
    C{--relay-insecure-plaintext-auth} and the repeatable C{--forward}
    as strings, then in C{postOptions}::

        config = relay_config_from_options(relay=..., tls=..., cafile=...,
            user=..., password_file=..., allow=..., forward=[...],
            allow_plaintext_auth=...)   # None without --relay

    turning L{UsageProblem} into C{usage.UsageError}.
  - MailLab::

        relay = Relay(config, reactor) if config else None
        forwarder = Forwarder(relay, reactor, addresses=config.forward,
                              counters=stats.forwarding) \\
            if config and config.forward else None
        # once a message is stored (never waited for):
        forwarder.feed(stored_bytes, mail_from=envelope_sender, label=lab_id)
        # on stopService:
        forwarder.stop()

  - C{POST /api/v1/message/{ID}/release} with C{{"To": [...]}}: without a
    relay, answer 400 L{NO_RELAY}; else C{relay.release(stored_bytes,
    body["To"])}: L{ReleaseRefused} and any other L{NetlabError} answer 400
    with C{str(error)}; a L{SendResult} answers 200 C{ok} when
    C{result.all_accepted}, else 400 naming C{result.refused}.
  - C{GET /api/v1/webui}: C{MessageRelay} is
    C{config.webui_message_relay()}, or L{webui_no_relay()}.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from pathlib import Path
from typing import Any, Protocol

from twisted.internet.defer import Deferred, fail
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_netlab.errors import (
    EXIT_USAGE,
    ConnectionFailed,
    NetlabError,
    ServerRefused,
    UsageProblem,
)
from twisted_netlab.mail.compose import parse_address
from twisted_netlab.mail.lab.stats import DeliveryCounters
from twisted_netlab.mail.outgoing import SendResult
from twisted_netlab.mail.send import send_message

log = Logger()

#: C{--relay-tls} values, and what L{send_message} calls them.
RELAY_TLS_MODES = {"starttls": "starttls", "tls": "implicit", "none": "none"}
#: The port when C{--relay} gives none, by C{--relay-tls}.
RELAY_DEFAULT_PORTS = {"starttls": 587, "tls": 465, "none": 25}
#: The release API's answer when the lab has no relay.
NO_RELAY = "message relay is not enabled: start the lab with --relay HOST:PORT"


class ReleaseRefused(NetlabError):
    """
    A release that is refused before anything is sent: no recipient, a
    malformed address, a recipient C{--relay-allow} does not admit, a
    message without a sender.  The HTTP API answers it with 400.
    """

    exit_code = EXIT_USAGE


# -- the options ------------------------------------------------------------


def parse_relay(text: str) -> tuple[str, int | None]:
    """
    C{--relay HOST[:PORT]} (C{[IPv6]:PORT}): the host and the port, L{None}
    when not given.

    @raise UsageProblem: no host, or a bad port.
    """
    host, port_text = text, ""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise UsageProblem(f"--relay {text!r}: missing ']'")
        host, rest = text[1:close], text[close + 1 :]
        if rest and not rest.startswith(":"):
            raise UsageProblem(f"--relay {text!r}: expected ':PORT' after ']'")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host or any(c.isspace() for c in host):
        raise UsageProblem(f"--relay {text!r}: give HOST:PORT")
    if not port_text:
        return host, None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageProblem(f"--relay {text!r}: bad port {port_text!r}")
    return host, int(port_text)


def parse_relay_tls(text: str) -> str:
    """
    C{--relay-tls}: C{starttls}, C{tls} or C{none}.

    @raise UsageProblem: anything else.
    """
    if text not in RELAY_TLS_MODES:
        raise UsageProblem(
            f"--relay-tls must be one of {', '.join(RELAY_TLS_MODES)}, not {text!r}"
        )
    return text


def parse_relay_allow(text: str) -> re.Pattern[str]:
    """
    C{--relay-allow REGEX}: the recipients a release may go to are those in
    which the expression is found (C{re.search}, as Mailpit's Go regexp
    C{MatchString}: anchor it with C{^...$} to match whole addresses).

    @raise UsageProblem: not a regular expression.
    """
    try:
        return re.compile(text)
    except re.error as e:
        raise UsageProblem(
            f"--relay-allow {text!r} is not a regular expression: {e}"
        ) from None


def parse_forward(text: str) -> str:
    """
    C{--forward ADDRESS}: the address, as it goes into C{RCPT TO}.

    @raise UsageProblem: not one email address.
    """
    try:
        return parse_address(text).addr_spec
    except UsageProblem:
        raise UsageProblem(f"--forward {text!r} is not an email address") from None


def read_password_file(path: str) -> str:
    """
    C{--relay-password-file}: the first line of the file (a password never
    comes from the command line).

    @raise UsageProblem: the file cannot be read, or its first line is empty.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
        raise UsageProblem(
            f"cannot read --relay-password-file {path}: {reason}"
        ) from None
    lines = text.splitlines()
    if not lines or not lines[0]:
        raise UsageProblem(f"--relay-password-file {path}: the first line is empty")
    return lines[0]


@dataclass(frozen=True)
class RelayConfig:
    """
    Where and how the lab relays: the smarthost, its TLS and login, which
    recipients a release may go to, and where every message is forwarded.

    @ivar tls: C{"starttls"} (required, the default), C{"tls"} (TLS from the
        first byte) or C{"none"} (only when asked for).
    @ivar cafile: trust this PEM file's certificates instead of the system's.
    @ivar password: never shown (not in C{repr}).
    @ivar allow: a release's recipients must match (C{re.search}); L{None}
        admits every recipient.
    @ivar forward: every captured message also goes to these addresses.
    @ivar allow_plaintext_auth: a login over C{tls="none"} is allowed.
    """

    host: str
    port: int
    tls: str = "starttls"
    cafile: str | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    allow: re.Pattern[str] | None = None
    forward: tuple[str, ...] = ()
    allow_plaintext_auth: bool = False
    timeout: float = 30.0

    def __post_init__(self) -> None:
        parse_relay_tls(self.tls)
        if not 0 < self.port < 65536:
            raise UsageProblem(f"--relay: bad port {self.port}")
        if (self.user is None) != (self.password is None):
            raise UsageProblem("--relay-user and --relay-password-file go together")
        if self.tls == "none" and self.cafile is not None:
            raise UsageProblem("--relay-cafile needs TLS, not --relay-tls none")
        plaintext = self.tls == "none" and self.user is not None
        if plaintext and not self.allow_plaintext_auth:
            raise UsageProblem(
                "--relay-tls none would send the relay password in the clear; "
                "add --relay-insecure-plaintext-auth to allow it"
            )
        if not self.timeout > 0:
            raise UsageProblem("the relay timeout must be more than 0 seconds")
        refused = [a for a in self.forward if not self.admits(a)]
        if refused:
            pattern = self.allow.pattern if self.allow else ""
            raise UsageProblem(
                f"--forward {refused[0]} does not match --relay-allow {pattern}"
            )

    @property
    def server(self) -> str:
        """
        C{host:port} (C{[host]:port} for IPv6), for messages.
        """
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def admits(self, address: str) -> bool:
        """
        Whether a release may go to C{address} (an addr-spec).
        """
        return self.allow is None or self.allow.search(address) is not None

    def webui_message_relay(self) -> dict[str, Any]:
        """
        Mailpit's C{WebUIConfiguration.MessageRelay} for this relay.
        """
        return {
            "Enabled": True,
            "SMTPServer": self.server,
            "AllowedRecipients": self.allow.pattern if self.allow else "",
            "BlockedRecipients": "",
            "OverrideFrom": "",
            "ReturnPath": "",
            # The stored bytes go unchanged: Message-ID included.
            "PreserveMessageIDs": True,
        }


def webui_no_relay() -> dict[str, Any]:
    """
    Mailpit's C{WebUIConfiguration.MessageRelay} for a lab without a relay.
    """
    return {
        "Enabled": False,
        "SMTPServer": "",
        "AllowedRecipients": "",
        "BlockedRecipients": "",
        "OverrideFrom": "",
        "ReturnPath": "",
        "PreserveMessageIDs": False,
    }


def relay_config_from_options(
    *,
    relay: str | None,
    tls: str | None = None,
    cafile: str | None = None,
    user: str | None = None,
    password_file: str | None = None,
    allow: str | None = None,
    forward: Sequence[str] = (),
    allow_plaintext_auth: bool = False,
) -> RelayConfig | None:
    """
    The L{RelayConfig} the command-line options describe, or L{None}
    without C{--relay} (and then none of the other options may be given).

    @raise UsageProblem: a bad value, or options that contradict each
        other; its text names the option.
    """
    if relay is None:
        given = [
            name
            for name, value in (
                ("--relay-tls", tls),
                ("--relay-cafile", cafile),
                ("--relay-user", user),
                ("--relay-password-file", password_file),
                ("--relay-allow", allow),
                ("--forward", forward or None),
                ("--relay-insecure-plaintext-auth", allow_plaintext_auth or None),
            )
            if value is not None
        ]
        if given:
            raise UsageProblem(f"{given[0]} needs --relay HOST:PORT")
        return None
    mode = parse_relay_tls(tls) if tls is not None else "starttls"
    host, port = parse_relay(relay)
    if cafile is not None and not Path(cafile).is_file():
        raise UsageProblem(f"--relay-cafile {cafile}: no such file")
    if user is not None and password_file is None:
        raise UsageProblem(
            "--relay-user needs --relay-password-file (a password never comes "
            "from the command line)"
        )
    if password_file is not None and user is None:
        raise UsageProblem("--relay-password-file needs --relay-user")
    return RelayConfig(
        host=host,
        port=RELAY_DEFAULT_PORTS[mode] if port is None else port,
        tls=mode,
        cafile=cafile,
        user=user,
        password=None if password_file is None else read_password_file(password_file),
        allow=None if allow is None else parse_relay_allow(allow),
        forward=tuple(dict.fromkeys(parse_forward(a) for a in forward)),
        allow_plaintext_auth=allow_plaintext_auth,
    )


# -- sending ----------------------------------------------------------------


def _header_sender(raw: bytes) -> str | None:
    """
    The address a stored message is from, as Mailpit's release takes it:
    its Sender header, else its From header.
    """
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    for name in ("Sender", "From"):
        addresses = [a for _, a in getaddresses(headers.get_all(name, [])) if a]
        if addresses:
            return addresses[0]
    return None


def _label(raw: bytes) -> str:
    headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
    message_id = " ".join(str(headers.get("Message-ID", "")).split())
    return message_id or f"a message of {len(raw)} bytes"


class Relay:
    """
    Sends stored messages through the configured smarthost.
    """

    def __init__(self, config: RelayConfig, reactor: Any) -> None:
        """
        @param reactor: provides C{IReactorTCP}, C{IReactorTime} and
            C{IReactorPluggableNameResolver}.
        """
        self.config = config
        self._reactor = reactor

    @property
    def server(self) -> str:
        return self.config.server

    def send(
        self, raw: bytes, recipients: Sequence[str], mail_from: str
    ) -> Deferred[SendResult]:
        """
        Send C{raw} unchanged (line ends made CRLF, if they are not) from
        C{mail_from} to C{recipients} (addr-specs), with no check of
        C{--relay-allow}: the caller has checked them (L{release}) or they
        were configured (L{Forwarder}).

        @return: fires with every recipient's outcome, or fails with the
            L{NetlabError} of L{send_message}.
        """
        config = self.config
        return send_message(
            self._reactor,
            raw,
            host=config.host,
            port=config.port,
            tls=RELAY_TLS_MODES[config.tls],
            username=config.user,
            password=config.password,
            sender=mail_from,
            recipients=list(recipients),
            cafile=config.cafile,
            timeout=config.timeout,
            allow_plaintext_auth=config.allow_plaintext_auth,
        )

    def release(
        self,
        raw: bytes,
        recipients: Sequence[str],
        mail_from: str | None = None,
    ) -> Deferred[SendResult]:
        """
        Release the stored message C{raw} to C{recipients}, unchanged.

        Every recipient is checked before anything is sent: each must be an
        email address (C{Name <a@b>} is taken as C{a@b}) that
        C{--relay-allow} admits.

        @param mail_from: the envelope sender; by default (or when empty)
            the message's Sender or else From address, as Mailpit does.
        @return: fires with the L{SendResult} (some recipients may have been
            refused: see C{all_accepted}); fails with L{ReleaseRefused}
            before any connection is made, with L{ServerRefused} when the
            relay refused every recipient, or with the other errors of
            L{send_message} (L{ConnectionFailed}, L{TLSFailed},
            L{AuthenticationFailed}).
        """
        try:
            addresses = self._check(recipients)
            sender = mail_from or _header_sender(raw)
            if sender is None:
                raise ReleaseRefused(
                    "the message has no From or Sender address to send it from"
                )
        except NetlabError as e:
            log.warn("release refused: {reason}", reason=str(e))
            return fail(e)
        label = _label(raw)
        sending = self.send(raw, addresses, sender)
        sending.addCallbacks(
            self._released, self._failed, callbackArgs=(label,), errbackArgs=(label,)
        )
        return sending

    def _check(self, recipients: Sequence[str]) -> list[str]:
        if isinstance(recipients, str) or not recipients:
            raise ReleaseRefused("no recipients given to release the message to")
        addresses = []
        for text in recipients:
            if not isinstance(text, str):
                raise ReleaseRefused("the recipients must be email addresses (strings)")
            try:
                addresses.append(parse_address(text).addr_spec)
            except UsageProblem:
                raise ReleaseRefused(f"invalid email address: {text!r}") from None
        refused = [a for a in addresses if not self.config.admits(a)]
        if refused:
            pattern = self.config.allow.pattern if self.config.allow else ""
            noun = "address does" if len(refused) == 1 else "addresses do"
            raise ReleaseRefused(
                f"{noun.capitalize()} not match the relay allowlist "
                f"(--relay-allow {pattern}): " + ", ".join(refused)
            )
        return list(dict.fromkeys(addresses))

    def _released(self, result: SendResult, label: str) -> SendResult:
        if result.all_refused:
            first = result.refused[0]
            error = ServerRefused(
                f"{self.server} refused every recipient: {first.code} {first.text}"
            )
            log.warn("releasing {label} failed: {reason}", label=label, reason=error)
            raise error
        log.info(
            "released {label} via {server}: {outcomes}",
            label=label,
            server=self.server,
            outcomes="; ".join(str(r) for r in result.recipients),
        )
        return result

    def _failed(self, reason: Failure, label: str) -> Failure:
        log.warn(
            "releasing {label} via {server} failed: {reason}",
            label=label,
            server=self.server,
            reason=reason.getErrorMessage(),
        )
        return reason


# -- forwarding -------------------------------------------------------------


class MessageRelay(Protocol):
    """
    What L{Forwarder} sends through: L{Relay}, or a stand-in in tests.
    """

    @property
    def server(self) -> str: ...

    def send(
        self, raw: bytes, recipients: Sequence[str], mail_from: str
    ) -> Deferred[SendResult]: ...


@dataclass
class _Job:
    raw: bytes
    mail_from: str
    label: str
    waiting: tuple[str, ...]
    attempt: int = 1
    delivered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


class Forwarder:
    """
    Forwards every message it is fed to the configured addresses through a
    relay, in the background.

    A message is tried at once; a temporary failure (no connection, a 4xx
    reply) is tried again after C{first_retry} seconds, then twice as long
    each time up to C{max_retry}, C{attempts} times in all; a permanent one
    (5xx, TLS, login) is not.  Each outcome is logged in one line and
    counted in C{counters}.  At most C{concurrency} messages are sent at a
    time, and at most C{max_pending} are kept (sending, queued or waiting
    to be retried): past that a message is dropped, logged and counted.
    """

    def __init__(
        self,
        relay: MessageRelay,
        reactor: Any,
        *,
        addresses: Sequence[str],
        counters: DeliveryCounters | None = None,
        attempts: int = 5,
        first_retry: float = 30.0,
        max_retry: float = 900.0,
        concurrency: int = 2,
        max_pending: int = 1000,
    ) -> None:
        """
        @param relay: a L{Relay} (or anything with its C{send} and C{server}).
        @param reactor: provides C{IReactorTime}: retries are scheduled on it.
        @param addresses: where to forward (C{RelayConfig.forward}).
        @param counters: counts sent, failed, retried and dropped messages
            (e.g. C{RuntimeStats.forwarding}).
        """
        if not addresses:
            raise UsageProblem("forwarding needs at least one --forward address")
        if attempts < 1 or concurrency < 1 or max_pending < 1:
            raise UsageProblem("attempts, concurrency and max_pending must be >= 1")
        self._relay = relay
        self._clock = reactor
        self.addresses = tuple(addresses)
        self.counters = counters if counters is not None else DeliveryCounters()
        self._attempts = attempts
        self._first_retry = first_retry
        self._max_retry = max_retry
        self._concurrency = concurrency
        self._max_pending = max_pending
        self._queue: deque[_Job] = deque()
        self._sending: dict[int, tuple[_Job, Deferred[SendResult]]] = {}
        self._retries: dict[int, tuple[_Job, Any]] = {}
        self._idle: list[Deferred[None]] = []
        self._stopped = False

    @property
    def pending(self) -> int:
        """
        Messages not finished with: sending, queued or waiting for a retry.
        """
        return len(self._queue) + len(self._sending) + len(self._retries)

    def feed(self, raw: bytes, mail_from: str, *, label: str | None = None) -> None:
        """
        Forward C{raw} (the stored bytes, sent unchanged) from C{mail_from},
        in the background: this returns at once and never raises.

        @param mail_from: the envelope sender of the captured message; when
            empty (a bounce), the message's Sender or From address.
        @param label: names the message in the log (the lab's ID); by
            default its Message-ID.
        """
        try:
            label = label or _label(raw)
            sender = mail_from or _header_sender(raw)
            if self._stopped or self.pending >= self._max_pending or not sender:
                self.counters.dropped += 1
                reason = (
                    "the lab is stopping"
                    if self._stopped
                    else "it has no sender address"
                    if not sender
                    else f"{self.pending} messages are waiting already"
                )
                log.warn("not forwarding {label}: {reason}", label=label, reason=reason)
                return
            self._queue.append(_Job(raw, sender, label, self.addresses))
            self._pump()
        except Exception:
            self.counters.failed += 1
            log.failure("forwarding a message failed")

    def when_idle(self) -> Deferred[None]:
        """
        A Deferred that fires once nothing is pending (at once if nothing
        is).
        """
        waiting: Deferred[None] = Deferred()
        if self.pending:
            self._idle.append(waiting)
        else:
            waiting.callback(None)
        return waiting

    def stop(self) -> None:
        """
        Give up on everything pending (counted as dropped), cancel the
        connections in progress, and take no more messages.
        """
        self._stopped = True
        dropped = self.pending
        for _, call in self._retries.values():
            call.cancel()
        self._retries.clear()
        self._queue.clear()
        sending = [d for _, d in self._sending.values()]
        self._sending.clear()
        for d in sending:
            d.cancel()
        if dropped:
            self.counters.dropped += dropped
            log.warn(
                "forwarding stopped: {count} messages not forwarded", count=dropped
            )
        self._check_idle()

    def _pump(self) -> None:
        while self._queue and len(self._sending) < self._concurrency:
            job = self._queue.popleft()
            sending = self._relay.send(job.raw, job.waiting, job.mail_from)
            self._sending[id(job)] = (job, sending)
            sending.addBoth(self._sent, job)

    def _sent(self, outcome: SendResult | Failure, job: _Job) -> None:
        if self._sending.pop(id(job), None) is None:
            return  # stopped meanwhile
        retry: list[str] = []
        reason = ""
        if isinstance(outcome, SendResult):
            for r in outcome.recipients:
                if r.accepted:
                    job.delivered.append(r.address)
                elif r.temporary:
                    retry.append(r.address)
                    reason = reason or f"{r.code} {r.text}"
                else:
                    job.failed.append(r.address)
                    reason = reason or f"{r.code} {r.text}"
        elif outcome.check(ConnectionFailed):
            retry = list(job.waiting)
            reason = outcome.getErrorMessage()
        else:
            job.failed.extend(job.waiting)
            reason = outcome.getErrorMessage()
        if retry and job.attempt < self._attempts:
            delay = min(self._first_retry * 2 ** (job.attempt - 1), self._max_retry)
            job.attempt += 1
            job.waiting = tuple(retry)
            self.counters.retried += 1
            log.info(
                "forwarding {label} to {to} via {server} failed for now: "
                "{reason}; attempt {attempt} of {attempts} in {delay:g} s",
                label=job.label,
                to=", ".join(retry),
                server=self._relay.server,
                reason=reason,
                attempt=job.attempt,
                attempts=self._attempts,
                delay=delay,
            )
            self._retries[id(job)] = (
                job,
                self._clock.callLater(delay, self._retry, job),
            )
        else:
            job.failed.extend(retry)
            self._finish(job, reason)
        self._pump()
        self._check_idle()

    def _retry(self, job: _Job) -> None:
        if self._retries.pop(id(job), None) is not None:
            self._queue.append(job)
            self._pump()

    def _finish(self, job: _Job, reason: str) -> None:
        tries = f"{job.attempt} attempt" + ("s" if job.attempt > 1 else "")
        if not job.failed:
            self.counters.sent += 1
            log.info(
                "forwarded {label} to {to} via {server}",
                label=job.label,
                to=", ".join(job.delivered),
                server=self._relay.server,
            )
            return
        self.counters.failed += 1
        delivered = (
            f" (delivered to {', '.join(job.delivered)})" if job.delivered else ""
        )
        log.warn(
            "forwarding {label} to {to} via {server} failed after {tries}: "
            "{reason}{delivered}",
            label=job.label,
            to=", ".join(job.failed),
            server=self._relay.server,
            tries=tries,
            reason=reason,
            delivered=delivered,
        )

    def _check_idle(self) -> None:
        if not self.pending:
            waiting, self._idle = self._idle, []
            for d in waiting:
                d.callback(None)


__all__ = [
    "NO_RELAY",
    "RELAY_DEFAULT_PORTS",
    "RELAY_TLS_MODES",
    "Forwarder",
    "MessageRelay",
    "Relay",
    "RelayConfig",
    "ReleaseRefused",
    "parse_forward",
    "parse_relay",
    "parse_relay_allow",
    "parse_relay_tls",
    "read_password_file",
    "relay_config_from_options",
    "webui_no_relay",
]
