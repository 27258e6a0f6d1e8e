"""
The spam check: the message scored by a real SpamAssassin daemon (spamd)
over its SPAMC/SPAMD protocol, in Mailpit's SpamAssassinResponse shape
(C{Error}, C{IsSpam}, C{Score}, C{Rules} of C{Name}, C{Score},
C{Description}).

The protocol (spamd's PROTOCOL file, version 1.5) is one request per
connection: C{REPORT SPAMC/1.5}, a C{Content-length} header, a blank line
and the message; spamd answers C{SPAMD/1.1 0 EX_OK}, headers (C{Spam: True
; 1003.5 / 5.0}), a blank line and, for C{REPORT}, the report whose table
names each rule that hit with its points and description, then closes the
connection.  L{SpamcProtocol} speaks it; L{SpamcFactory} carries the
request.

Without C{settings.spamassassin} the answer's C{Error} says how to turn the
check on; a spamd that cannot be reached, times out or refuses the message
is an C{Error} in the answer too, never a failed Deferred.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.internet import error as internet_error
from twisted.internet.defer import CancelledError, Deferred, TimeoutError
from twisted.internet.endpoints import HostnameEndpoint
from twisted.internet.interfaces import IProtocol
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.python.failure import Failure

from twisted_netlab.mail.lab.checks.context import CheckContext

PROTOCOL_VERSION = b"1.5"
COMMANDS = frozenset({b"CHECK", b"SYMBOLS", b"REPORT", b"PING"})
#: a reply longer than this is not spamd's (a REPORT is a few kilobytes)
MAX_REPLY = 1024 * 1024
#: seconds for the whole exchange; SpamAssassin's network tests can be slow
TIMEOUT = 30.0
HOW_TO_TURN_ON = (
    "the spam check is off: start the lab with --spamassassin HOST:PORT "
    "(the address of a spamd) to score messages with SpamAssassin"
)


class SpamdError(Exception):
    """
    spamd's reply was not what the protocol promises: C{str()} says how,
    in one line.
    """


@dataclass(frozen=True)
class SpamdReply:
    """
    What spamd answered.

    @ivar code: the status code (0 is C{EX_OK}; others are sysexits codes
        such as 76, C{EX_PROTOCOL}).
    @ivar message: the status text (C{"EX_OK"}, C{"Bad header line: ..."}).
    @ivar headers: the reply's headers, by lowercased name.
    @ivar body: the body (C{REPORT}'s report, C{SYMBOLS}'s rule names).
    """

    code: int
    message: str
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Verdict:
    """
    The C{Spam:} header: C{Spam: True ; 1003.5 / 5.0}.
    """

    is_spam: bool
    score: float
    threshold: float


@dataclass(frozen=True)
class Rule:
    """
    One rule that hit, from a report's table.
    """

    name: str
    score: float
    description: str


def parse_reply(data: bytes) -> SpamdReply:
    """
    Parse a whole reply (spamd closes the connection after it).

    @raise SpamdError: it is not a SPAMD reply, or it is cut short.
    """
    if not data:
        raise SpamdError("closed the connection without a reply")
    # An error reply may be its status line alone, without the blank line.
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.rstrip(b"\r\n").split(b"\r\n")
    status = lines[0].decode("latin-1")
    words = status.split(None, 2)
    if len(words) < 2 or not words[0].startswith("SPAMD/") or not words[1].isdigit():
        raise SpamdError(f"not a SPAMD reply: {status[:80]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, colon, value = line.decode("latin-1").partition(":")
        if not colon:
            raise SpamdError(f"bad header line in the reply: {line[:80]!r}")
        headers[name.strip().lower()] = value.strip()
    length = headers.get("content-length")
    if length is not None:
        if not length.isdigit():
            raise SpamdError(f"bad Content-length in the reply: {length!r}")
        if len(body) < int(length):
            raise SpamdError(
                f"the reply is cut short ({len(body)} of {length} bytes of its body)"
            )
        body = body[: int(length)]
    return SpamdReply(
        code=int(words[1]),
        message=words[2] if len(words) > 2 else "",
        headers=headers,
        body=body,
    )


def parse_verdict(value: str) -> Verdict:
    """
    Parse a C{Spam:} header's value, C{"True ; 1003.5 / 5.0"}.

    @raise SpamdError: it does not read so.
    """
    flag, semicolon, scores = value.partition(";")
    score, slash, threshold = scores.partition("/")
    flag = flag.strip().lower()
    if not semicolon or not slash or flag not in ("true", "false", "yes", "no"):
        raise SpamdError(f"bad Spam header in the reply: {value[:80]!r}")
    try:
        return Verdict(flag in ("true", "yes"), float(score), float(threshold))
    except ValueError:
        raise SpamdError(f"bad Spam header in the reply: {value[:80]!r}") from None


def _number(word: str) -> float | None:
    try:
        return float(word)
    except ValueError:
        return None


def parse_report(text: str) -> list[Rule]:
    """
    The rules in a C{REPORT}'s table: the lines after the C{---- ----}
    rule under C{pts rule name description}, each C{POINTS NAME
    DESCRIPTION}, a long description going on in lines whose points
    column is blank.
    """
    rules: list[Rule] = []
    in_table = False
    for line in text.splitlines():
        if not in_table:
            in_table = line.startswith("----") and "-- --" in line
            continue
        if not line.strip():
            if rules:
                break
            continue
        if not line[:4].strip():
            if rules:
                last = rules[-1]
                joined = f"{last.description} {line.strip()}".strip()
                rules[-1] = Rule(last.name, last.score, joined)
            continue
        words = line.split(None, 2)
        points = _number(words[0])
        if points is None or len(words) < 2:
            break
        description = words[2].strip() if len(words) > 2 else ""
        rules.append(Rule(words[1], points, description))
    return rules


class SpamcProtocol(Protocol):
    """
    The client side of one SPAMC exchange: sends the factory's request,
    collects the reply until spamd closes the connection, and fires
    C{reply} with the L{SpamdReply} (or a L{SpamdError}, or the reason the
    connection failed).  Cancelling C{reply} aborts the connection.
    """

    factory: SpamcFactory

    def __init__(self) -> None:
        self._buffer: list[bytes] = []
        self._size = 0
        self._failure: Failure | None = None
        self.reply: Deferred[SpamdReply] = Deferred(self._cancel)

    def _cancel(self, reply: Deferred[SpamdReply]) -> None:
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def connectionMade(self) -> None:
        command = self.factory.command
        lines = [command + b" SPAMC/" + PROTOCOL_VERSION]
        if command != b"PING":
            lines.append(b"Content-length: %d" % len(self.factory.message))
        if self.factory.user:
            lines.append(b"User: " + self.factory.user.encode("utf-8"))
        request = b"\r\n".join(lines) + b"\r\n\r\n"
        if command != b"PING":
            request += self.factory.message
        self.transport.write(request)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        if self._failure is not None:
            return
        self._size += len(data)
        if self._size > MAX_REPLY:
            self._failure = Failure(
                SpamdError(f"the reply is longer than {MAX_REPLY} bytes")
            )
            self.transport.abortConnection()  # type: ignore[union-attr]
            return
        self._buffer.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.reply.called:
            return
        if self._failure is not None:
            self.reply.errback(self._failure)
            return
        data = b"".join(self._buffer)
        if not data and not reason.check(internet_error.ConnectionDone):
            self.reply.errback(reason)
            return
        try:
            parsed = parse_reply(data)
        except SpamdError:
            self.reply.errback()
        else:
            self.reply.callback(parsed)


class SpamcFactory(Factory[SpamcProtocol]):
    """
    One SPAMC request: the command (C{REPORT}, C{SYMBOLS}, C{CHECK},
    C{PING}), the message and, optionally, the spamd user whose settings
    apply.
    """

    protocol = SpamcProtocol

    def __init__(self, command: bytes, message: bytes = b"", user: str = "") -> None:
        if command not in COMMANDS:
            raise ValueError(f"not a SPAMC command: {command!r}")
        self.command = command
        self.message = message
        self.user = user


def spamd_request(
    reactor: Any,
    host: str,
    port: int,
    command: bytes,
    message: bytes = b"",
    *,
    timeout: float = TIMEOUT,
) -> Deferred[SpamdReply]:
    """
    Connect to spamd at C{host}:C{port}, send one request and return its
    reply; the whole exchange has C{timeout} seconds.
    """
    endpoint = HostnameEndpoint(reactor, host, port, timeout=timeout)
    connected = endpoint.connect(SpamcFactory(command, message))

    def replied(protocol: IProtocol) -> Deferred[SpamdReply]:
        assert isinstance(protocol, SpamcProtocol)
        return protocol.reply

    reply = connected.addCallback(replied)
    return reply.addTimeout(timeout, reactor)


def _result(
    error: str = "", is_spam: bool = False, score: float = 0.0, rules: Any = ()
) -> dict[str, Any]:
    return {
        "Error": error,
        "IsSpam": is_spam,
        "Score": score,
        "Rules": [
            {
                "Name": r.name,
                "Score": 0.0 if r.score == 0 else r.score,
                "Description": r.description,
            }
            for r in rules
        ],
    }


def spam_result(reply: SpamdReply, where: str) -> dict[str, Any]:
    """
    The SpamAssassinResponse for spamd's reply to a C{REPORT}.
    """
    if reply.code != 0:
        return _result(f"spamd at {where} refused the message: {reply.message}")
    try:
        verdict = parse_verdict(reply.headers.get("spam", ""))
    except SpamdError as e:
        return _result(f"spamd at {where}: {e}")
    rules = parse_report(reply.body.decode("utf-8", "replace"))
    return _result("", verdict.is_spam, verdict.score, rules)


def describe_failure(failure: Failure, where: str, timeout: float) -> str:
    """
    One line for why spamd gave no reply.
    """
    value = failure.value
    if isinstance(value, (TimeoutError, CancelledError, internet_error.TimeoutError)):
        return f"spamd at {where} did not answer within {timeout:g} s"
    if isinstance(value, internet_error.ConnectionRefusedError):
        return f"cannot connect to spamd at {where}: connection refused"
    if isinstance(value, internet_error.DNSLookupError):
        return f"cannot connect to spamd at {where}: no such host"
    if isinstance(value, internet_error.ConnectError):
        reason = " ".join(failure.getErrorMessage().split())
        return f"cannot connect to spamd at {where}: {reason}"
    if isinstance(value, SpamdError):
        return f"spamd at {where}: {value}"
    if isinstance(value, internet_error.ConnectionLost):
        return f"spamd at {where} closed the connection before its reply"
    return f"spamd at {where}: {failure.getErrorMessage()}"


def check_spam(
    raw: bytes,
    reactor: Any,
    address: tuple[str, int] | None,
    *,
    timeout: float = TIMEOUT,
) -> Deferred[dict[str, Any]]:
    """
    The spam check of a message against the spamd at C{address} (or the
    answer saying how to turn it on, when L{None}).
    """
    if address is None:
        off: Deferred[dict[str, Any]] = Deferred()
        off.callback(_result(HOW_TO_TURN_ON))
        return off
    host, port = address
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    asked = spamd_request(reactor, host, port, b"REPORT", raw, timeout=timeout)

    def answered(reply: SpamdReply) -> dict[str, Any]:
        return spam_result(reply, where)

    def failed(failure: Failure) -> dict[str, Any]:
        return _result(describe_failure(failure, where, timeout))

    return asked.addCallbacks(answered, failed)


def check(raw: bytes, context: CheckContext) -> Deferred[dict[str, Any]]:
    """
    The spam check, against C{context.settings.spamassassin}.
    """
    return check_spam(raw, context.reactor, context.settings.spamassassin)
