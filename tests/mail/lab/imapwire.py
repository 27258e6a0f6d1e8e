"""
What the model-checking and fuzz tests need to speak IMAP and SMTP to the
lab in memory: a tokenizer for server responses (literals included), and
sessions that drive a server protocol over a L{StringTransport}.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Union

from twisted.internet.error import ConnectionDone
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure

#: A parsed IMAP value: an atom or string (bytes), or a parenthesised list.
Token = Union[bytes, "list[Token]"]

_LITERAL_AT_END = re.compile(rb"\{(\d+)\+?\}\r\n$")


class ProtocolViolation(AssertionError):
    """
    The server's bytes are not IMAP: a test failure.
    """


def split_responses(data: bytes) -> tuple[list[bytes], bytes]:
    """
    Cut C{data} into whole server responses (a line, with any literals it
    announces and the rest of the line after them), and the incomplete
    remainder.
    """
    responses: list[bytes] = []
    start = position = 0
    while True:
        end = data.find(b"\r\n", position)
        if end < 0:
            return responses, data[start:]
        match = _LITERAL_AT_END.search(data, max(position, end - 24), end + 2)
        if match is not None and match.end() == end + 2:
            size = int(match.group(1))
            if end + 2 + size > len(data):
                return responses, data[start:]
            position = end + 2 + size
            continue
        responses.append(data[start : end + 2])
        start = position = end + 2


def parse_tokens(response: bytes) -> list[Token]:
    """
    The tokens of one response (from L{split_responses}): atoms, quoted
    strings (unescaped), literals and lists.  An atom may hold a bracketed
    section with spaces (C{BODY[HEADER.FIELDS (A B)]}).

    @raise ProtocolViolation: unbalanced parentheses, a bad literal, or an
        unterminated string.
    """
    stack: list[list[Token]] = [[]]
    i, n = 0, len(response)
    if not response.endswith(b"\r\n"):
        raise ProtocolViolation(f"no CRLF at the end of {response[:80]!r}")
    n -= 2
    while i < n:
        c = response[i : i + 1]
        if c == b" ":
            i += 1
        elif c == b"(":
            stack.append([])
            i += 1
        elif c == b")":
            if len(stack) == 1:
                raise ProtocolViolation(f"unbalanced ) in {response[:200]!r}")
            done = stack.pop()
            stack[-1].append(done)
            i += 1
        elif c == b'"':
            out = bytearray()
            i += 1
            while True:
                if i >= n:
                    raise ProtocolViolation(f"unterminated string: {response!r}")
                ch = response[i : i + 1]
                if ch == b"\\":
                    out += response[i + 1 : i + 2]
                    i += 2
                elif ch == b'"':
                    i += 1
                    break
                else:
                    out += ch
                    i += 1
            stack[-1].append(bytes(out))
        elif c == b"{":
            close = response.find(b"}\r\n", i)
            if close < 0:
                raise ProtocolViolation(f"bad literal in {response[:200]!r}")
            size = int(response[i + 1 : close].rstrip(b"+"))
            start = close + 3
            stack[-1].append(response[start : start + size])
            i = start + size
        else:
            j = i
            depth = 0
            while j < n:
                ch = response[j : j + 1]
                if ch == b"[":
                    depth += 1
                elif ch == b"]":
                    depth -= 1
                elif depth <= 0 and ch in b" ()":
                    break
                j += 1
            stack[-1].append(response[i:j])
            i = j
    if len(stack) != 1:
        raise ProtocolViolation(f"unbalanced ( in {response[:200]!r}")
    return stack[0]


def fetch_items(tokens: list[Token]) -> dict[bytes, Any]:
    """
    The items of an untagged FETCH (C{* n FETCH (NAME value ...)}), by
    upper-cased name.
    """
    items = tokens[3]
    assert isinstance(items, list), tokens
    result: dict[bytes, Any] = {}
    for k in range(0, len(items) - 1, 2):
        name = items[k]
        assert isinstance(name, bytes), items
        result[name.upper()] = items[k + 1]
    return result


@dataclass
class Reply:
    """
    What a command got: its untagged responses and its tagged one.
    """

    untagged: list[bytes] = field(default_factory=list)
    tagged: bytes = b""

    @property
    def status(self) -> bytes:
        """
        C{OK}, C{NO} or C{BAD}.
        """
        parts = self.tagged.split(b" ", 2)
        return parts[1].upper() if len(parts) > 1 else b""

    def code(self, name: bytes) -> bytes | None:
        """
        The argument of response code C{[name ...]} in the tagged or any
        untagged response, or None.
        """
        for line in [*self.untagged, self.tagged]:
            match = re.search(rb"\[" + name + rb"(?: ([^\]]*))?\]", line, re.I)
            if match is not None:
                return match.group(1) or b""
        return None


class IMAPSession:
    """
    One client connection to a server protocol built by C{factory}, over a
    L{StringTransport}: send a command, get its L{Reply} (the server answers
    in memory, synchronously).
    """

    def __init__(self, factory: Any, name: str = "t") -> None:
        self.server: Any = factory.buildProtocol(None)
        self.transport = StringTransport()
        self.server.makeConnection(self.transport)
        self.name = name
        self.greeting = self.transport.value()
        self.transport.clear()
        self._tag = 0
        self.closed = False

    def next_tag(self) -> bytes:
        self._tag += 1
        return f"{self.name}{self._tag}".encode()

    def send(self, data: bytes) -> bytes:
        """
        Feed C{data} to the server; what it wrote in answer (and any
        unsolicited responses it wrote since the last call).
        """
        self.server.dataReceived(data)
        written = self.transport.value()
        self.transport.clear()
        return written

    def command(self, line: bytes, *literals: bytes) -> Reply:
        """
        Send C{TAG line} and CRLF; a C{\\x00} in C{line} stands for the end
        of a line announcing a synchronising literal: the next of
        C{literals} is sent after the server's continuation request, then
        the rest of the line.

        @raise ProtocolViolation: no tagged answer, or no continuation where
            one was due.
        """
        tag = self.next_tag()
        pieces = line.split(b"\x00")
        assert len(pieces) == len(literals) + 1, "one \\x00 per literal"
        out = self.send(tag + b" " + pieces[0] + b"\r\n")
        for literal, rest in zip(literals, pieces[1:], strict=True):
            if not out.startswith(b"+"):
                raise ProtocolViolation(f"no continuation for a literal: {out!r}")
            out = self.send(literal + rest + b"\r\n")
        responses, rest = split_responses(out)
        if rest:
            raise ProtocolViolation(f"an incomplete response: {rest[:200]!r}")
        reply = Reply()
        for response in responses:
            if response.startswith(tag + b" "):
                reply.tagged = response
            elif response.startswith(b"* "):
                reply.untagged.append(response)
            else:
                raise ProtocolViolation(f"{line!r} got {response[:200]!r}")
        if not reply.tagged:
            raise ProtocolViolation(f"{line!r} got no tagged answer: {out[:300]!r}")
        return reply

    def ok(self, line: bytes, *literals: bytes) -> Reply:
        """
        L{command}, asserting that the answer is OK.
        """
        reply = self.command(line, *literals)
        if reply.status != b"OK":
            raise AssertionError(f"{line[:200]!r} got {reply.tagged!r}")
        return reply

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.server.connectionLost(Failure(ConnectionDone()))


def smtp_conversation(factory: Any, lines: list[bytes]) -> list[bytes]:
    """
    Speak C{lines} (each sent with CRLF, one at a time) to a new SMTP server
    from C{factory}; the server's reply to each, the greeting first.
    """
    server = factory.buildProtocol(None)
    transport = StringTransport()
    server.makeConnection(transport)
    replies = [transport.value()]
    for line in lines:
        transport.clear()
        server.dataReceived(line + b"\r\n")
        replies.append(transport.value())
    if not transport.disconnecting:
        server.connectionLost(Failure(ConnectionDone()))
    return replies


def dot_stuffed(message: bytes) -> list[bytes]:
    """
    The DATA lines of C{message} (CRLF line ends), dot-stuffed.
    """
    assert message.endswith(b"\r\n")
    return [
        b"." + line if line.startswith(b".") else line
        for line in message[:-2].split(b"\r\n")
    ]


__all__: list[Any] = [
    "IMAPSession",
    "ProtocolViolation",
    "Reply",
    "dot_stuffed",
    "fetch_items",
    "parse_tokens",
    "smtp_conversation",
    "split_responses",
]
