"""
The IMAP client protocol behind L{twisted_netlab.mail.fetch}: the wire.

L{IMAPClientProtocol} is twisted.mail's L{imap4.IMAP4Client} with what a
careful client needs on top: a timeout while the server owes an answer,
commands sent with their literals (L{IMAPClientProtocol.run_command}), a
literal reader that keeps the line end after a literal, no plaintext left
over from before STARTTLS, one-line errors when the connection ends, and a
trace with the password masked.

Untagged answers are handed over as the server sent them; the functions
here encode command arguments (L{astring}, L{mailbox_arg}, L{uid_set}) and
decode answers (L{parse_response}, L{fetch_items}).  What the answers mean
(mailboxes, summaries, messages) is the session's business, in
L{twisted_netlab.mail.fetch}, which this module does not import.  Importing
this module imports L{twisted.mail.imap4}.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import connectionDone
from twisted.mail import imap4
from twisted.python.failure import Failure

from twisted_netlab.errors import ConnectionFailed, NetlabError, TLSFailed

#: Called with each line of the conversation, C{"C: "} or C{"S: "} first.
Trace = Callable[[str], None]


class BadResponse(ConnectionFailed):
    """
    The server sent something this client cannot make sense of.
    """


# --- command arguments ------------------------------------------------------


@dataclass(frozen=True)
class LiteralArg:
    """
    A command argument sent as an IMAP literal (C{{n}} then the octets).
    """

    data: bytes


Arg = bytes | LiteralArg
_ATOM = re.compile(rb"[!#$&'+,\-./0-9:;<=>?@A-Z^_`a-z|}~]+\Z")


def astring(text: str) -> Arg:
    """
    C{text} as an IMAP astring: an atom, a quoted string, or (for anything
    beyond printable ASCII) a UTF-8 literal.
    """
    data = text.encode("utf-8")
    if _ATOM.match(data):
        return data
    if data.isascii() and text.isprintable():
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return LiteralArg(data)


def mailbox_arg(name: str) -> Arg:
    """
    A mailbox name as a command argument: modified UTF-7, then an astring.
    """
    return astring(name.encode("imap4-utf-7").decode("ascii"))


def command_lines(args: Sequence[Arg]) -> list[bytes]:
    """
    Join a command's arguments with spaces (none inside parentheses) and
    split them into what is sent before the first literal, then after each
    literal: each continuation request from the server gets the next one.
    """
    lines = [b""]
    previous = b"("
    for arg in args:
        text = b"{%d}" % len(arg.data) if isinstance(arg, LiteralArg) else arg
        if not previous.endswith(b"(") and not text.startswith(b")"):
            lines[-1] += b" "
        lines[-1] += text
        previous = text
        if isinstance(arg, LiteralArg):
            lines.append(arg.data)
            previous = b"x"
    return lines


def uid_set(uids: Iterable[int]) -> bytes:
    """
    A compact IMAP sequence set for C{uids}: C{1:500,502,510:600}.
    """
    ranges: list[list[int]] = []
    for uid in sorted(set(uids)):
        if ranges and uid == ranges[-1][1] + 1:
            ranges[-1][1] = uid
        else:
            ranges.append([uid, uid])
    return b",".join(b"%d" % a if a == b else b"%d:%d" % (a, b) for a, b in ranges)


# --- decoding answers -------------------------------------------------------


def decode_text(data: bytes | None) -> str:
    """
    Server text for messages and traces: UTF-8, undecodable bytes replaced.
    """
    return (data or b"").decode("utf-8", "replace")


def decode_mailbox_name(data: bytes) -> str:
    """
    A mailbox name as sent (modified UTF-7, or UTF-8 from a careless server).
    """
    try:
        return data.decode("imap4-utf-7")
    except (UnicodeError, ValueError):
        return data.decode("utf-8", "replace")


_TOKEN = re.compile(
    rb"""[ ]*(?:(\()|(\))|\{(\d+)\}\r\n|"((?:[^"\\]|\\.)*)"|"""
    rb"""([^ ()"{\[\]]+(?:\[[^\]]*\](?:<\d+>)?)?))"""
)
_ESCAPE = re.compile(rb"\\(.)")


def parse_response(data: bytes) -> list[Any]:
    """
    An IMAP response's data as nested lists: atoms (C{NIL} as L{None}),
    strings and literals as bytes, parenthesised lists as lists.  An atom
    with a section keeps it: C{BODY[HEADER.FIELDS (FROM)]<0>}.

    (C{imap4.parseNestedParens} does the same one character at a time,
    which was most of the time spent fetching thousands of messages.)
    """
    stack: list[list[Any]] = [[]]
    position, end = 0, len(data.rstrip(b" "))
    while position < end:
        match = _TOKEN.match(data, position)
        if match is None:
            raise BadResponse(
                f"cannot parse the server's response {decode_text(data[:100])!r}"
            )
        position = match.end()
        opening, closing, literal, quoted, atom = match.groups()
        if opening:
            stack.append([])
        elif closing:
            if len(stack) == 1:
                raise BadResponse(f"unbalanced ')' in {decode_text(data[:100])!r}")
            done = stack.pop()
            stack[-1].append(done)
        elif literal is not None:
            size = int(literal)
            stack[-1].append(data[position : position + size])
            position += size
        elif quoted is not None:
            stack[-1].append(_ESCAPE.sub(rb"\1", quoted))
        else:
            stack[-1].append(None if atom.upper() == b"NIL" else atom)
    if len(stack) != 1 or position > len(data):
        raise BadResponse(
            f"unbalanced '(' or short literal in {decode_text(data[:100])!r}"
        )
    return stack[0]


def expect_int(value: Any, what: str) -> int:
    """
    C{value} (a parsed atom) as a number, or L{BadResponse} naming C{what}.
    """
    try:
        return int(value)
    except (TypeError, ValueError):
        raise BadResponse(f"the server sent {value!r} as {what}") from None


def flag_names(value: Any) -> tuple[str, ...]:
    """
    A parsed flag list as names; anything but a list is no flags.
    """
    if not isinstance(value, list):
        return ()
    return tuple(decode_text(f) for f in value if isinstance(f, bytes))


_FETCH = re.compile(rb"(\d+) FETCH ", re.IGNORECASE)
#: The two answers a whole-mailbox fetch is made of, as servers send them:
#: C{N FETCH (UID n RFC822.SIZE s)} and C{N FETCH (UID n BODY[] {s}CRLF...)}.
_FETCH_SIZE = re.compile(rb"(\d+) FETCH \(UID (\d+) RFC822\.SIZE (\d+)\)\Z")
_FETCH_BODY = re.compile(rb"(\d+) FETCH \(UID (\d+) BODY\[\] \{(\d+)\}\r\n")


def _common_fetch(line: bytes) -> tuple[int, dict[str, Any]] | None:
    """
    C{line} read without the general parser, if it is one of the two
    answers of L{_FETCH_SIZE} and L{_FETCH_BODY} (as parsed: atoms as
    bytes); L{None} for anything else.
    """
    match = _FETCH_BODY.match(line)
    if match is not None:
        start = match.end()
        end = start + int(match.group(3))
        if line[end:] != b")":
            return None
        return int(match.group(1)), {"UID": match.group(2), "BODY[]": line[start:end]}
    match = _FETCH_SIZE.match(line)
    if match is not None:
        return int(match.group(1)), {
            "UID": match.group(2),
            "RFC822.SIZE": match.group(3),
        }
    return None


def fetch_items(lines: Iterable[bytes]) -> dict[int, dict[str, Any]]:
    """
    The FETCH answers among C{lines}, by UID: C{{"UID": 5, "FLAGS": [...],
    "BODY[]": b"..."}}.  Answers for one message sequence number are merged
    (a server may split them); answers without a UID (unsolicited flag
    changes) are dropped.
    """
    by_number: dict[int, dict[str, Any]] = {}
    for line in lines:
        common = _common_fetch(line)
        if common is not None:
            by_number.setdefault(common[0], {}).update(common[1])
            continue
        match = _FETCH.match(line)
        if match is None:
            continue
        parsed = parse_response(line[match.end() :])
        if len(parsed) != 1 or not isinstance(parsed[0], list):
            raise BadResponse(f"malformed FETCH answer {decode_text(line[:100])!r}")
        items = by_number.setdefault(int(match.group(1)), {})
        values = parsed[0]
        for key, value in zip(values[::2], values[1::2], strict=False):
            if not isinstance(key, bytes):
                raise BadResponse(f"malformed FETCH answer {decode_text(line[:100])!r}")
            items[_item_name(key)] = value
    return {
        expect_int(items["UID"], "a UID"): items
        for items in by_number.values()
        if "UID" in items
    }


@functools.lru_cache(maxsize=64)
def _item_name(key: bytes) -> str:
    """
    A FETCH item's name, a section reduced to its first word:
    C{BODY[HEADER.FIELDS (FROM)]<0>} is C{BODY[HEADER.FIELDS]}.
    """
    name, bracket, section = key.upper().partition(b"[")
    if bracket:
        name += b"[" + section.split(b"]")[0].split(b" ")[0] + b"]"
    return name.decode("ascii", "replace")


# --- the protocol -------------------------------------------------------------


class _Command(imap4.Command):
    """
    A command whose untagged answers are handed over as they came (each a
    line after C{* }, literals included), for the session to parse.
    """

    def finish(self, lastLine: bytes, unusedCallback: object) -> None:
        d, self.defer = self.defer, None
        if d is not None:
            d.callback((self.lines, lastLine))


def _describe_tls_error(value: BaseException) -> str | None:
    """
    A short reason for a TLS failure, or L{None} if C{value} is none.
    """
    from OpenSSL import SSL
    from service_identity import VerificationError

    if isinstance(value, VerificationError):
        return "the certificate does not match the host name"
    if isinstance(value, SSL.Error):
        reasons = [
            r[2] for r in (value.args[0] if value.args else []) if len(r) == 3 and r[2]
        ]
        return ", ".join(reasons) or str(value) or "handshake failed"
    return None


class IMAPClientProtocol(imap4.IMAP4Client):
    """
    C{IMAP4Client} with what a careful client needs on top: a timeout while
    the server owes an answer, a greeting L{Deferred}, long lines, clear
    errors when the connection ends, no plaintext left over from before
    STARTTLS, and a protocol trace with the password masked.
    """

    MAX_LENGTH = 16 * 1024 * 1024

    def __init__(
        self, reactor: Any, host: str, timeout: float, trace: Trace | None = None
    ) -> None:
        super().__init__()
        self._reactor = reactor
        self.host = host
        self.step_timeout = timeout
        self.trace = trace
        self.greeting: Deferred[Any] | None = Deferred()
        self.secure = False
        self.failure: NetlabError | None = None
        self._bye: str | None = None
        self._mask: str | None = None

    # Timeouts: only while the server owes us something.

    def callLater(self, period: float, func: Callable[[], object]) -> Any:
        return self._reactor.callLater(period, func)

    def connectionMade(self) -> None:
        super().connectionMade()
        self.setTimeout(self.step_timeout)

    def sendCommand(self, cmd: imap4.Command) -> Deferred[Any]:
        self.setTimeout(self.step_timeout)
        d: Deferred[Any] = super().sendCommand(cmd)
        return d

    def timeoutConnection(self) -> None:
        self.fail(
            ConnectionFailed(
                f"no answer from {self.host} within {self.step_timeout:g} seconds"
            )
        )

    def dataReceived(self, data: bytes) -> None:
        self.resetTimeout()
        super().dataReceived(data)

    def lineReceived(self, line: bytes) -> None:
        if self.trace is not None:
            self.trace("S: " + decode_text(line))
        super().lineReceived(line)

    def rawDataReceived(self, data: bytes) -> None:
        # A literal's octets.  As IMAP4Client's, except that the line end
        # right after a literal is kept: a literal can end a response line
        # (a mailbox name in LIST), and then the next response must not be
        # glued to it.
        buffer: Any = self._pendingBuffer
        size: int = self._pendingSize - len(data)  # type: ignore[operator]
        if size > 0:
            self._pendingSize = size
            buffer.write(data)
            return
        passon = b""
        if size < 0:
            data, passon = data[:size], data[size:]
        buffer.write(data)
        self._pendingBuffer = self._pendingSize = None
        buffer.seek(0, 0)
        parts: list[bytes] = self._parts  # type: ignore[assignment]
        parts.append(buffer.read())
        self.setLineMode(passon)

    def sendLine(self, line: bytes) -> None:
        if self.trace is not None:
            tag = decode_text(line.split(b" ", 1)[0])
            self.trace(
                "C: " + (f"{tag} {self._mask}" if self._mask else decode_text(line))
            )
            self._mask = None
        super().sendLine(line)

    def send_continued(self, data: bytes) -> None:
        """
        Send the rest of a command after a continuation request.
        """
        if self.trace is not None:
            self.trace(f"C: [{len(data)} more octets]")
        assert self.transport is not None
        self.transport.write(data + b"\r\n")

    def run_command(
        self, command: bytes, args: Sequence[Arg] = (), mask: str | None = None
    ) -> Deferred[tuple[list[bytes], bytes]]:
        """
        Send C{command} with C{args}, each literal after the server's
        continuation request; fire with its untagged answers (each line
        after C{* }, literals included) and the tagged line, or fail with
        L{imap4.IMAP4Exception} when the server answers NO or BAD.

        @param mask: what the trace shows instead of the command line (which
            holds a password).
        """
        if self.failure is not None:
            return fail(type(self.failure)(str(self.failure)))
        lines = command_lines(args)
        pending = iter(lines[1:])

        def more(rest: bytes) -> None:
            chunk = next(pending, None)
            if chunk is not None:
                self.send_continued(chunk)

        cmd = _Command(command, lines[0] or None, (), more)
        if mask is not None:
            self._mask = mask
        result: Deferred[tuple[list[bytes], bytes]] = self.sendCommand(cmd)
        return result

    # Dispatching, robustly: a bad response ends the session with an error,
    # instead of IMAP4Client's log.err.

    def dispatchCommand(self, tag: bytes, rest: bytes) -> None:
        state = self.state or "unauth"
        handler = getattr(self, "response_" + state.upper(), self._defaultHandler)
        try:
            handler(tag, rest)
        except BadResponse as e:
            self.fail(e)
        except Exception as e:
            self.fail(BadResponse(f"bad response {decode_text(rest[:100])!r} ({e})"))

    def response_UNAUTH(self, tag: bytes, rest: bytes) -> None:
        if self.state is None and not rest.upper().startswith((b"OK", b"PREAUTH")):
            self.fail(
                ConnectionFailed(
                    f"{self.host} refused the session: {decode_text(rest)}"
                )
            )
            return
        super().response_UNAUTH(tag, rest)

    def _defaultHandler(self, tag: bytes, rest: bytes) -> None:
        if tag == b"*":
            if rest[:4].upper() == b"BYE ":
                self._bye = decode_text(rest[4:])
            if not self.waiting:
                return  # unsolicited news; nothing here waits for it
        if tag in (b"*", b"+"):
            super()._defaultHandler(tag, rest)
            return
        # A tagged answer: as IMAP4Client does, but an unknown tag or an
        # answer without text is no crash.
        cmd = self.tags.get(tag)
        if cmd is None:
            raise BadResponse(
                f"an answer to no command: {decode_text(tag + b' ' + rest)}"
            )
        # The next command goes out before this answer is handled, so that
        # the server works on it meanwhile.
        del self.tags[tag]
        self.waiting = None
        self._flushQueue()
        if not self.tags and not self.queued:
            self.setTimeout(None)
        status, _, text = rest.partition(b" ")
        if status.upper() == b"OK":
            cmd.finish(rest, self._extraInfo)
        else:
            d, cmd.defer = cmd.defer, None
            d.errback(imap4.IMAP4Exception(text))

    def serverGreeting(self, caps: Any) -> None:
        self.setTimeout(None)
        d, self.greeting = self.greeting, None
        if d is not None:
            d.callback(caps)

    # TLS.

    def _startedTLS(self, result: Any, context: Any) -> Any:
        if self.clearLineBuffer():
            error = TLSFailed(
                f"{self.host} sent data after its STARTTLS answer, before TLS "
                "began (a man in the middle?)"
            )
            self.fail(error)
            raise error
        result = super()._startedTLS(result, context)
        self.secure = True
        return result

    # The end.

    def fail(self, error: NetlabError) -> None:
        """
        End the connection; everything waiting fails with C{error}.
        """
        if self.failure is None:
            self.failure = error
        if self.transport is not None:
            self.transport.abortConnection()  # type: ignore[attr-defined]

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.setTimeout(None)
        if self.failure is None:
            self.failure = self._explain(reason)
        failure = Failure(self.failure)
        d, self.greeting = self.greeting, None
        if d is not None:
            d.errback(failure)
        super().connectionLost(failure)

    def _explain(self, reason: Failure) -> NetlabError:
        tls = _describe_tls_error(reason.value) if reason.value else None
        if tls is not None:
            hint = ""
            if "wrong version number" in tls or "packet length" in tls:
                hint = " (is this an IMAPS port? try --tls starttls)"
            return TLSFailed(f"TLS with {self.host} failed: {tls}{hint}")
        if self._bye is not None:
            return ConnectionFailed(f"{self.host} closed the connection: {self._bye}")
        if reason.check(ConnectionDone, ConnectionLost):
            return ConnectionFailed(f"{self.host} closed the connection")
        return ConnectionFailed(f"connection to {self.host} lost: {reason.value}")


__all__ = [
    "Arg",
    "BadResponse",
    "IMAPClientProtocol",
    "LiteralArg",
    "Trace",
    "astring",
    "command_lines",
    "decode_mailbox_name",
    "decode_text",
    "expect_int",
    "fetch_items",
    "flag_names",
    "mailbox_arg",
    "parse_response",
    "uid_set",
]
