"""
Pieces of the IMAP command grammar (RFC 3501 / RFC 9051 section 9) that the
lab's server reads itself instead of leaving them to Twisted's
C{IMAP4Server}: quoted strings with their C{\\"} and C{\\\\} escapes,
literals (synchronizing C{{n}} and LITERAL+'s C{{n+}}), sequence sets with
C{*:*} (read, and written back compactly), and the token lists of commands
whose arguments may hold literals anywhere (SEARCH).

Everything here is pure: bytes in, values out, L{IMAPSyntaxError} on bad
input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Union

from twisted.mail import imap4

# A literal announced at the end of a line: {n} or {n+} (RFC 7888).
_LITERAL_AT_END = re.compile(rb"\{(\d{1,10})(\+?)\}$")
# Characters that end an atom (RFC 3501 atom-specials, and the brackets
# that only the FETCH grammar lets into atoms).
_ATOM_END = b' ()"{\r\n'


class IMAPSyntaxError(imap4.IllegalClientResponse):
    """
    A command argument that does not parse; the server answers C{BAD}.
    """


@dataclass(frozen=True)
class LiteralAnnouncement:
    """
    A literal announced at the end of a command line.

    @ivar prefix: the line before the literal's C{{n}}.
    @ivar size: the number of octets that follow the line's CRLF.
    @ivar synchronizing: whether the client waits for a C{+} first
        (C{{n}}); C{{n+}} is LITERAL+'s non-synchronizing form.
    """

    prefix: bytes
    size: int
    synchronizing: bool


def literal_at_end(line: bytes) -> LiteralAnnouncement | None:
    """
    The literal announced at the end of C{line}, if any.
    """
    match = _LITERAL_AT_END.search(line)
    if match is None:
        return None
    return LiteralAnnouncement(
        line[: match.start()], int(match.group(1)), not match.group(2)
    )


def read_quoted(line: bytes) -> tuple[bytes, bytes]:
    """
    Read the quoted string at the start of C{line}; return its value and the
    rest of the line after the closing quote (one space skipped).

    @raise IMAPSyntaxError: no closing quote, or a backslash before anything
        but C{"} or C{\\}.
    """
    if line[:1] != b'"':
        raise IMAPSyntaxError("expected a quoted string")
    value = bytearray()
    i = 1
    end = len(line)
    while i < end:
        c = line[i]
        if c == 0x22:  # "
            rest = line[i + 1 :]
            if rest[:1] == b" ":
                rest = rest[1:]
            return bytes(value), rest
        if c == 0x5C:  # backslash
            if i + 1 >= end or line[i + 1] not in (0x22, 0x5C):
                raise IMAPSyntaxError("bad escape in quoted string")
            value.append(line[i + 1])
            i += 2
            continue
        if c in (0x0A, 0x0D):
            break
        value.append(c)
        i += 1
    raise IMAPSyntaxError("unmatched quote")


def quote(value: bytes) -> bytes:
    """
    C{value} as an IMAP quoted string, escaping C{"} and C{\\} (the form
    L{read_quoted} takes back); a literal if it cannot be quoted (8-bit,
    CR, LF or NUL).
    """
    if any(b >= 0x80 or b in (0, 10, 13) for b in value):
        return b"{%d}\r\n%s" % (len(value), value)
    return b'"' + value.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def parse_sequence_set(text: bytes, last: int | None = None) -> imap4.MessageSet:
    """
    An IMAP sequence set (C{1:3,7,9:*}) as a Twisted C{MessageSet}; C{*:*}
    (valid, and sent by some clients) means C{*}.

    @raise IMAPSyntaxError: it is not a sequence set.
    """
    parts = [b"*" if p == b"*:*" else p for p in text.split(b",")]
    if not all(parts) or any(not re.fullmatch(rb"[0-9*:]+", p) for p in parts):
        raise IMAPSyntaxError(f"bad sequence set {_shown(text)}")
    try:
        return imap4.parseIdList(b",".join(parts), last)
    except (imap4.IllegalIdentifierError, ValueError):
        raise IMAPSyntaxError(f"bad sequence set {_shown(text)}") from None


def sequence_text(ids: list[int]) -> bytes:
    """C{ids} (ascending) as a compact sequence set: C{1:3,5}."""
    ranges: list[bytes] = []
    start = previous = None
    for i in ids:
        if previous is not None and i == previous + 1:
            previous = i
            continue
        if start is not None:
            ranges.append(_range_text(start, previous))
        start = previous = i
    if start is not None:
        ranges.append(_range_text(start, previous))
    return b",".join(ranges)


def _range_text(start: int, end: int | None) -> bytes:
    if end is None or end == start:
        return b"%d" % (start,)
    return b"%d:%d" % (start, end)


class Literal(bytes):
    """
    A string argument that came as a literal (in a token list).
    """


class Quoted(bytes):
    """
    A string argument that came quoted (in a token list).
    """


Token = Union[bytes, "list[Token]"]


def tokenize(pieces: list[bytes | Literal]) -> list[Token]:
    """
    The tokens of a command's arguments: atoms as C{bytes}, strings as
    L{Quoted} or L{Literal}, parenthesized lists as nested lists.

    C{pieces} are the argument text of each line, with the literals that
    followed them in between (as L{Literal}s).

    @raise IMAPSyntaxError: unbalanced parentheses or a bad quoted string.
    """
    stack: list[list[Token]] = [[]]
    for piece in pieces:
        if isinstance(piece, Literal):
            stack[-1].append(piece)
            continue
        line = piece
        i = 0
        end = len(line)
        while i < end:
            c = line[i : i + 1]
            if c == b" ":
                i += 1
            elif c == b"(":
                group: list[Token] = []
                stack[-1].append(group)
                stack.append(group)
                i += 1
            elif c == b")":
                if len(stack) == 1:
                    raise IMAPSyntaxError("unbalanced parentheses")
                stack.pop()
                i += 1
            elif c == b'"':
                value, rest = read_quoted(line[i:])
                stack[-1].append(Quoted(value))
                consumed = end - i - len(rest)
                i += consumed
                if rest and rest[:1] not in b" )" and line[i - 1 : i] != b" ":
                    raise IMAPSyntaxError("no space after a quoted string")
            else:
                j = i
                while j < end and line[j] not in _ATOM_END:
                    j += 1
                if j == i:
                    raise IMAPSyntaxError(f"unexpected {_shown(c)}")
                stack[-1].append(line[i:j])
                i = j
    if len(stack) != 1:
        raise IMAPSyntaxError("unbalanced parentheses")
    return stack[0]


def is_atom(token: Token, name: bytes) -> bool:
    """Whether C{token} is the atom C{name} (any case; not a string)."""
    return (
        isinstance(token, bytes)
        and not isinstance(token, (Quoted, Literal))
        and token.upper() == name
    )


def _shown(data: bytes) -> str:
    return data[:60].decode("ascii", "backslashreplace")


__all__ = [
    "IMAPSyntaxError",
    "Literal",
    "LiteralAnnouncement",
    "Quoted",
    "is_atom",
    "literal_at_end",
    "parse_sequence_set",
    "quote",
    "read_quoted",
    "sequence_text",
    "tokenize",
]
