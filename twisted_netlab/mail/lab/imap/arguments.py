"""
The argument parsers of the lab's IMAP commands, as Twisted's C{imap4} keeps
its own C{arg_*} helpers apart from the commands that use them.

They replace Twisted's where it is wrong or too small: astrings with C{\\"}
escapes, literals (C{{n}}, LITERAL+'s C{{n+}}, BINARY's C{~{n}}) within
their limits, sequence sets (C{*:*}, SEARCHRES's C{$}), mailbox names
checked before any command uses them, and the token reader (L{syntax}) that
takes literals anywhere in a command (SEARCH, LIST, ENABLE...).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.mail import imap4

from twisted_netlab.mail.lab.imap.session import IMAPSession
from twisted_netlab.mail.lab.imap.syntax import (
    IMAPSyntaxError,
    Literal,
    literal_at_end,
    parse_sequence_set,
    read_quoted,
    sequence_text,
    tokenize,
)
from twisted_netlab.mail.lab.store.maildir import MailStoreError, validate_mailbox_name


class BadMailboxName(imap4.IllegalMailboxEncoding):
    """
    A mailbox name that is not canonical modified UTF-7, or that the store
    refuses; Twisted answers it with a NO.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "bad mailbox name"


def decode_mailbox_name(raw: bytes | str, utf8: bool = False) -> str:
    """
    Decode a mailbox name sent by a client, refusing what is not canonical
    modified UTF-7 (RFC 3501 section 5.1.3): 8-bit bytes, C{&} sequences that
    do not decode, or that encode ASCII or would be encoded otherwise. Once
    IMAP4rev2 is enabled (C{utf8}), names are UTF-8 (RFC 9051 section 5.1).
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
    if utf8:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadMailboxName("mailbox name is not UTF-8") from None
    try:
        raw.decode("ascii")
        name: str = raw.decode("imap4-utf-7")
        canonical = name.encode("imap4-utf-7")
    except (UnicodeError, ValueError):
        canonical = None
        name = ""
    if canonical != raw:
        shown = raw.decode("ascii", "backslashreplace")
        raise BadMailboxName(f"not valid modified UTF-7: {shown}")
    return name


class SavedResult:
    """
    The sequence set C{$} (SEARCHRES): the last saved SEARCH result.
    """


class ArgumentParsers(IMAPSession):
    """
    The C{arg_*} parsers the command tables name, and the reading of the
    literals they announce.
    """

    def _request_literal(self, size: int, synchronizing: bool, *, file: bool) -> Any:
        """
        Read a literal of C{size} octets: ask for it with C{+} unless the
        client sent it at once (LITERAL+'s C{{n+}}). A non-synchronizing
        literal over the limit cannot be refused without its octets being
        read as commands: the connection is closed.
        """
        limit = self.factory.max_message_size if file else self._literalStringLimit
        if size > limit:
            if not synchronizing:
                self.sendLine(
                    b"* BYE [TOOBIG] literal larger than %d octets" % (limit,)
                )
                self.transport.loseConnection()
                return defer.Deferred()
            if file:
                raise imap4.IllegalOperation(
                    f"[TOOBIG] message larger than {limit} bytes"
                )
            raise imap4.IllegalClientResponse(
                f"Literal too long: at most {limit} octets"
            )
        d: defer.Deferred[tuple[Any, bytes]] = defer.Deferred()
        self.parseState = "pending"
        if file:
            self._pendingLiteral = imap4.LiteralFile(size, d)  # type: ignore[assignment]
        else:
            self._pendingLiteral = imap4.LiteralString(size, d)
        if synchronizing:
            kind = b"data" if file else b"text"
            self.sendContinuationRequest(b"Ready for %d octets of %s" % (size, kind))
        self.setRawMode()
        return d

    def _stringLiteral(self, size: int) -> Any:
        if size < 0:
            raise imap4.IllegalClientResponse("Negative literal size")
        return self._request_literal(size, True, file=False)

    def _fileLiteral(self, size: int) -> Any:
        if size < 0:
            raise imap4.IllegalClientResponse("Negative literal size")
        return self._request_literal(size, True, file=True)

    def arg_astring(self, line: bytes, final: bool = False) -> Any:
        """
        An astring (RFC 3501): an atom, a quoted string with its C{\\"} and
        C{\\\\} escapes, or a literal (C{{n}} or C{{n+}}) at the line's end.
        """
        line = (line or b"").lstrip(b" ")
        if not line:
            raise IMAPSyntaxError("Missing argument")
        if line[:1] == b'"':
            return read_quoted(line)
        if line[:1] == b"{":
            announced = literal_at_end(line)
            if announced is None or announced.prefix:
                if line[:2] == b"{-":
                    raise IMAPSyntaxError("Negative literal size")
                raise IMAPSyntaxError("Malformed literal")
            if final and not announced.size:
                return (b"", b"")
            return self._request_literal(
                announced.size, announced.synchronizing, file=False
            )
        arg, _, rest = line.partition(b" ")
        if any(c in arg for c in b'(){"'):
            raise IMAPSyntaxError("Malformed atom")
        return (arg, rest)

    def arg_finalastring(self, line: bytes) -> Any:
        return self.arg_astring(line, final=True)

    def arg_literal(self, line: bytes) -> Any:
        """
        The message literal of APPEND (C{{n}} or C{{n+}}, or BINARY's
        C{~{n}}), read into a file.
        """
        line = line or b""
        announced = literal_at_end(line.strip(b" "))
        if (
            announced is not None
            and announced.prefix.upper() == b"UTF8 (~"
            and b"UTF8=ACCEPT" in self.enabled
        ):
            # RFC 6855 section 4: APPEND's UTF8 (literal8) data item.
            d = self._request_literal(
                announced.size, announced.synchronizing, file=True
            )
            return d.addCallback(_closing_parenthesis)
        if announced is None or announced.prefix not in (b"", b"~"):
            if line.lstrip(b" ")[:2] == b"{-":
                raise imap4.IllegalClientResponse("Negative literal size")
            raise IMAPSyntaxError("Missing literal")
        return self._request_literal(announced.size, announced.synchronizing, file=True)

    def arg_seqset(self, line: bytes) -> Any:
        """
        A sequence set (C{*:*} included), then the rest of the line.
        """
        text, _, rest = (line or b"").lstrip(b" ").partition(b" ")
        if not text:
            raise IMAPSyntaxError("Missing sequence set")
        if text == b"$":
            return SavedResult(), rest
        return parse_sequence_set(text), rest

    def _messages(self, messages: Any, uid: int) -> tuple[Any, int]:
        """
        A sequence set as the handlers take it: C{$} (SEARCHRES) becomes
        the UIDs saved by the last C{SEARCH RETURN (SAVE)}.
        """
        if isinstance(messages, SavedResult):
            saved = getattr(self.mbox, "saved_uids", [])
            if not saved:
                return imap4.MessageSet(), 1
            return parse_sequence_set(sequence_text(saved)), 1
        return messages, uid

    def read_tokens(self, line: bytes) -> Any:
        """
        The rest of the command as tokens (L{tokenize}), asking for each
        literal it announces along the way.
        """
        pieces: list[bytes | Literal] = []

        def step(text: bytes | None) -> Any:
            text = text or b""
            announced = literal_at_end(text)
            if announced is None:
                pieces.append(text)
                return (tokenize(pieces), b"")
            pieces.append(announced.prefix)
            if sum(len(p) for p in pieces) + announced.size > self.MAX_LENGTH:
                # Refusing would leave a non-synchronizing literal's octets
                # to be read as commands: close instead.
                self.sendLine(b"* BYE Command too long")
                self.transport.loseConnection()
                return defer.Deferred()
            d = self._request_literal(
                announced.size, announced.synchronizing, file=False
            )
            return d.addCallback(got)

        def got(result: tuple[bytes, bytes]) -> Any:
            data, rest = result
            pieces.append(Literal(data))
            return step(rest)

        return step(line)

    def arg_rest(self, line: bytes) -> tuple[bytes, bytes]:
        """Whatever is left of the line (possibly nothing)."""
        return line or b"", b""

    def arg_mailbox(self, line: bytes, final: bool = False) -> Any:
        """
        A mailbox name argument: decoded, checked, canonical (C{INBOX}).
        """
        result = self.arg_astring(line, final=final)
        if isinstance(result, defer.Deferred):
            return result.addCallback(_checked_mailbox, self.utf8_names)
        return _checked_mailbox(result, self.utf8_names)

    def arg_final_mailbox(self, line: bytes) -> Any:
        return self.arg_mailbox(line, final=True)

    def arg_pattern(self, line: bytes) -> Any:
        """
        A LIST reference or pattern: only its encoding is checked.
        """
        result = self.arg_astring(line)
        if isinstance(result, defer.Deferred):
            return result.addCallback(_decoded_argument, self.utf8_names)
        return _decoded_argument(result, self.utf8_names)

    def arg_plist(self, line: bytes) -> Any:
        """
        Twisted's parenthesised list of atoms (STATUS items), with a nesting
        error (C{(()}) or a nested list (C{(BODY[])}) a BAD for the client
        instead of a logged server error.
        """
        try:
            items, rest = imap4.IMAP4Server.arg_plist(self, line)
        except imap4.MismatchedNesting as e:
            raise imap4.IllegalClientResponse(f"mismatched parentheses: {e}") from None
        if not all(isinstance(item, bytes) for item in items):
            raise imap4.IllegalClientResponse("a nested list is not allowed here")
        return items, rest


def _closing_parenthesis(result: tuple[Any, bytes]) -> tuple[Any, bytes]:
    """The literal of C{UTF8 (~{n}...)}, its closing parenthesis read."""
    data, rest = result
    if not rest.startswith(b")"):
        raise IMAPSyntaxError("UTF8 (literal8) needs its closing parenthesis")
    return data, rest[1:]


def _checked_mailbox(
    result: tuple[bytes, bytes], utf8: bool = False
) -> tuple[str, bytes]:
    raw, rest = result
    name = decode_mailbox_name(raw, utf8)
    try:
        return validate_mailbox_name(name), rest
    except MailStoreError as e:
        raise BadMailboxName(
            str(e).encode("ascii", "backslashreplace").decode()
        ) from None


def _decoded_argument(
    result: tuple[bytes, bytes], utf8: bool = False
) -> tuple[str, bytes]:
    raw, rest = result
    return decode_mailbox_name(raw, utf8), rest
