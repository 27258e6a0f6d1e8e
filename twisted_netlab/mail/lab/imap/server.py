"""
The mail lab's IMAP server (IMAP4rev1, and IMAP4rev2 once enabled): Twisted's
C{IMAP4Server} over the lab's accounts (L{LabRealm}), with the lab's policies.

What this adds to, or fixes in, C{twisted.mail.imap4.IMAP4Server}:
  - LOGIN and AUTHENTICATE (PLAIN, LOGIN; SASL-IR) only once TLS is on
    (STARTTLS or implicit TLS) unless plaintext is explicitly allowed;
    LOGINDISABLED and no AUTH= before. Twisted allows LOGIN when no STARTTLS
    is configured and AUTHENTICATE always. Commands pipelined behind
    STARTTLS are discarded.
  - The command syntax (L{twisted_netlab.mail.lab.imap.syntax}): quoted
    strings with escapes, literals anywhere in SEARCH, LITERAL+, C{*:*};
    LIST and STATUS quote names so that they can be sent back.
  - Bounds: command lines (C{max_line_length}), string literals (Twisted's
    4096), APPEND literals (C{max_message_size}), negative literal sizes,
    commands queued behind a long FETCH; connections idle too long are
    closed.
  - FETCH is rendered here: partial fetches (C{BODY[]<0.100>}), sections of
    parts, C{\\Seen} set by C{BODY[]}, C{BODYSTRUCTURE}/C{ENVELOPE} from the
    stored bytes, and streaming with backpressure, fast for thousands of
    messages; C{MODSEQ} and C{CHANGEDSINCE} (CONDSTORE).
  - SEARCH (with ESEARCH's RETURN and CONDSTORE's MODSEQ), STORE (keywords,
    UNCHANGEDSINCE), COPY and MOVE (COPYUID), APPEND (APPENDUID), UID
    EXPUNGE, ENABLE, ID, UNSELECT are served here.
  - Mailbox names are checked (canonical modified UTF-7, or UTF-8 under
    IMAP4rev2, no way out of the user's Maildir) before any command uses
    them: a NO otherwise.
  - SELECT reports PERMANENTFLAGS (with C{\\*}: keywords are kept), UIDNEXT,
    UNSEEN and HIGHESTMODSEQ; NOOP, CHECK and IDLE report changes made by
    other sessions and programs (EXPUNGE included); IDLE is told at once of
    deliveries in this process.
"""

from __future__ import annotations

import binascii
import codecs
import quopri
import re
from dataclasses import dataclass, field
from typing import Any

from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.internet.interfaces import (
    IAddress,
    IDelayedCall,
    IPushProducer,
    IReactorTime,
    ISSLTransport,
)
from twisted.internet.protocol import ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.mail import imap4
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_netlab.addresses import describe_address
from twisted_netlab.mail.lab.faults import Faults, imap_fault
from twisted_netlab.mail.lab.imap.account import SPECIAL_USE, LabMailbox, LabMessage
from twisted_netlab.mail.lab.imap.message import (
    Section,
    format_internal_date,
    serialize,
)
from twisted_netlab.mail.lab.imap.syntax import (
    IMAPSyntaxError,
    Literal,
    Quoted,
    Token,
    literal_at_end,
    parse_sequence_set,
    quote,
    read_quoted,
    tokenize,
)
from twisted_netlab.mail.lab.store.maildir import (
    KeywordLimit,
    MailStoreError,
    MessageGone,
    validate_mailbox_name,
)

DEFAULT_MAX_LINE_LENGTH = 65536
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
DEFAULT_LOGIN_TIMEOUT = 60.0
DEFAULT_IDLE_TIMEOUT = 30 * 60.0
DEFAULT_POLL_INTERVAL = 10.0
# Commands a client may queue behind a FETCH that is still being sent.
_MAX_QUEUED_COMMANDS = 1000
#: A command tag: ASCII, no SP, CTL, "(", ")", "{", "%", "*", '"', "\\" or "+".
_TAG = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+\Z')
# Bytes of FETCH responses gathered before one write.
_FETCH_CHUNK = 256 * 1024


#: Capabilities always offered after the login ones (RFC 9051's set as far
#: as the lab serves it; see docs/lab.rst).
_EXTENSIONS = (
    b"LITERAL+",
    b"SASL-IR",
    b"ID",
    b"ENABLE",
    b"NAMESPACE",
    b"IDLE",
    b"UNSELECT",
    b"CHILDREN",
    b"UIDPLUS",
    b"MOVE",
    b"SPECIAL-USE",
    b"ESEARCH",
    b"SEARCHRES",
    b"BINARY",
    b"LIST-EXTENDED",
    b"LIST-STATUS",
    b"CONDSTORE",
    b"UTF8=ACCEPT",
)
#: What ENABLE turns on.
_ENABLEABLE = frozenset({b"CONDSTORE", b"IMAP4REV2", b"UTF8=ACCEPT"})


def _command(*parts: Any) -> Any:
    """
    An C{IMAP4Server} command table entry: the handler, then its argument
    parsers and fixed arguments.
    """
    return parts


class BadMailboxName(imap4.IllegalMailboxEncoding):
    """
    A mailbox name that is not canonical modified UTF-7, or that the store
    refuses; Twisted answers it with a NO.
    """

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "bad mailbox name"


def _decode_mailbox_name(raw: bytes | str, utf8: bool = False) -> str:
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


class _DiscardedLiteral:
    """
    The octets of a literal nobody will read, counted and dropped; then the
    rest of its line goes to C{after} (which may find another literal).
    """

    def __init__(self, size: int, after: Any) -> None:
        self.size = size
        self.after = after

    def write(self, data: bytes) -> bytes | None:
        if len(data) < self.size:
            self.size -= len(data)
            return None
        passon = data[self.size :]
        self.size = 0
        return passon

    def callback(self, line: bytes) -> None:
        self.after(line)


@implementer(IPushProducer)
class _FetchResponder:
    """
    Send the responses of one FETCH, pausing when the client does not read
    them fast enough, then the tagged OK.
    """

    def __init__(
        self,
        server: LabIMAPServer,
        tag: bytes,
        messages: list[tuple[int, LabMessage]],
        query: list[Any],
        uid: bool,
        modseq: bool = False,
        binary: list[BinaryItem] | None = None,
    ) -> None:
        self.server = server
        self.modseq = modseq
        self.binary = binary or []
        self._unknown_encoding = False
        self.tag = tag
        self.messages = messages
        self.query = query
        self.uid = uid
        self._next = 0
        self._paused = False
        self._producing = False
        self._stopped = False
        self._sets_seen = (
            server.mbox is not None
            and server.mbox.isWriteable()
            and (
                any(_sets_seen(item) for item in query)
                or any(not (b.peek or b.size_only) for b in self.binary)
            )
        )
        self._wants_flags = any(item.type == "flags" for item in query)
        # The messages are in use until sent: retention pruning skips them.
        mailbox = server.mbox
        self._folder = mailbox.folder if isinstance(mailbox, LabMailbox) else None
        self._held = [message.uid for _, message in messages]

    def _release(self) -> None:
        held, self._held = self._held, []
        if self._folder is not None and held:
            self._folder.release(held)

    def start(self) -> None:
        if self._folder is not None:
            self._folder.hold(self._held)
        if self.server.blocked is None:
            self.server.blocked = []
        self.server.transport.registerProducer(self, True)
        self.resumeProducing()

    def pauseProducing(self) -> None:
        self._paused = True

    def stopProducing(self) -> None:
        self._stopped = True
        self._release()

    def resumeProducing(self) -> None:
        self._paused = False
        if self._producing or self._stopped:
            return
        self._producing = True
        try:
            while not self._paused and not self._stopped:
                if self._next >= len(self.messages):
                    self._finish()
                    return
                chunk: list[bytes] = []
                size = 0
                while size < _FETCH_CHUNK and self._next < len(self.messages):
                    seq, message = self.messages[self._next]
                    self._next += 1
                    response = self._render(seq, message)
                    if response:
                        chunk.append(response)
                        size += len(response)
                if chunk:
                    self.server.resetTimeout()
                    self.server.transport.writeSequence(chunk)
        finally:
            self._producing = False

    def _finish(self) -> None:
        self._stopped = True
        self._release()
        server = self.server
        server.transport.unregisterProducer()
        if self._unknown_encoding:
            server.sendNegativeResponse(
                self.tag, b"[UNKNOWN-CTE] A part has an unknown transfer encoding"
            )
        else:
            server.sendPositiveResponse(self.tag, b"FETCH completed")
        server._unblock()

    def _render(self, seq: int, message: LabMessage) -> bytes:
        """
        One message's FETCH response, or nothing if it is gone.
        """
        try:
            flags_changed = False
            if self._sets_seen:
                mailbox = self.server.mbox
                assert isinstance(mailbox, LabMailbox)
                flags_changed = mailbox.set_seen(message.uid)
            items = []
            if self.uid and not any(i.type == "uid" for i in self.query):
                items.append(b"UID %d" % (message.uid,))
            for item in self.query:
                if item.type == "flags":
                    flags = self.server.visible_flags(message.getFlags())
                    items.append(_flags_item(flags))
                else:
                    items.append(_render_item(item, message))
            for binary in self.binary:
                try:
                    items.append(_render_binary(binary, message))
                except UnknownTransferEncoding:
                    self._unknown_encoding = True
            if flags_changed and not self._wants_flags:
                items.append(_flags_item(self.server.visible_flags(message.getFlags())))
            if self.modseq or (
                self.server.condstore and (flags_changed or self._wants_flags)
            ):
                items.append(b"MODSEQ (%d)" % (message.mailbox.modseq(message.uid),))
        except MessageGone:
            return b""
        if not items:
            return b""
        return b"* %d FETCH (%s)\r\n" % (seq, b" ".join(items))


def _sets_seen(item: Any) -> bool:
    if item.type in ("rfc822", "rfc822text"):
        return True
    return item.type == "body" and not item.peek and _is_section(item)


def _is_section(item: Any) -> bool:
    return bool(item.header or item.text or item.mime or item.empty)


def _literal(data: bytes) -> bytes:
    return b"{%d}\r\n%s" % (len(data), data)


def _render_flags(message: LabMessage) -> bytes:
    return _flags_item(message.getFlags())


def _flags_item(flags: list[str]) -> bytes:
    return b"FLAGS (" + " ".join(flags).encode("utf-8") + b")"


def _section_of(item: Any) -> Section:
    header = item.header
    if header is not None:
        if not header.fields:
            return Section(item.part, "HEADER")
        kind = "HEADER.FIELDS.NOT" if header.negate else "HEADER.FIELDS"
        return Section(item.part, kind, header.fields)
    if item.text:
        return Section(item.part, "TEXT")
    if item.mime:
        return Section(item.part, "MIME")
    return Section(item.part, "")


def _render_item(item: Any, message: LabMessage) -> bytes:
    kind = item.type
    if kind == "uid":
        return b"UID %d" % (message.uid,)
    if kind == "flags":
        return _render_flags(message)
    if kind == "internaldate":
        return b"INTERNALDATE " + format_internal_date(message.internal_date())
    if kind == "rfc822size":
        return b"RFC822.SIZE %d" % (message.getSize(),)
    if kind == "envelope":
        return b"ENVELOPE " + serialize(message.part.envelope())
    if kind == "bodystructure":
        return b"BODYSTRUCTURE " + serialize(message.part.body_structure())
    if kind == "rfc822":
        return b"RFC822 " + _literal(message.data)
    if kind == "rfc822header":
        return b"RFC822.HEADER " + _literal(message.part.header_bytes)
    if kind == "rfc822text":
        return b"RFC822.TEXT " + _literal(message.part.body)
    if kind == "body":
        if not _is_section(item):
            return b"BODY " + serialize(message.part.body_structure(extended=False))
        section = _section_of(item)
        label = b"BODY" + section.label()
        try:
            if not section.part and not section.kind:
                data = message.data
            else:
                data = section.extract(message.part)
        except IndexError:
            return label + b" NIL"
        if item.partialBegin is not None:
            begin = item.partialBegin
            data = data[begin : begin + item.partialLength]
            label += b"<%d>" % (begin,)
        return label + b" " + _literal(data)
    raise imap4.IllegalClientResponse(f"unsupported fetch item {kind}")


class LabIMAPServer(imap4.IMAP4Server):
    """
    One IMAP connection to the mail lab; settings come from its
    L{LabIMAPFactory}.
    """

    IDENT = b"netlab mail lab IMAP4rev1 ready"
    factory: LabIMAPFactory
    transport: Any
    mbox: Any
    _poll_call: IDelayedCall | None = None
    _idling = False

    def __init__(self, factory: LabIMAPFactory) -> None:
        super().__init__(
            chal={
                b"PLAIN": imap4.PLAINCredentials,
                b"LOGIN": imap4.LOGINCredentials,
            },
            contextFactory=factory.tls,
        )
        self.factory = factory
        self.portal = factory.portal  # type: ignore[assignment]
        self.MAX_LENGTH = factory.max_line_length
        self.timeOut = factory.login_timeout  # type: ignore[assignment]
        self.POSTAUTH_TIMEOUT = factory.idle_timeout  # type: ignore[assignment]
        self.callLater = factory.reactor.callLater  # type: ignore[assignment]

    # --- connection --------------------------------------------------------------

    def connectionMade(self) -> None:
        self.factory.log.debug(
            "IMAP connection from {peer}",
            peer=describe_address(self.transport.getPeer()),
        )
        super().connectionMade()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._stop_polling()
        if self.mbox is not None:
            self.mbox.removeListener(self)
            self.mbox = None
        super().connectionLost(reason)

    def timeoutConnection(self) -> None:
        self.factory.log.info(
            "Closing IMAP connection from {peer}: idle too long",
            peer=describe_address(self.transport.getPeer()),
        )
        self._stop_polling()
        super().timeoutConnection()

    def lineLengthExceeded(self, line: bytes) -> None:
        self.sendLine(b"* BYE Line too long: the limit is %d bytes" % self.MAX_LENGTH)
        self.transport.loseConnection()

    def lineReceived(self, line: bytes) -> None:
        if self.blocked is not None and len(self.blocked) >= _MAX_QUEUED_COMMANDS:
            self.sendLine(b"* BYE Too many commands sent ahead")
            self.transport.loseConnection()
            return
        super().lineReceived(line)

    def parse_command(self, line: bytes) -> Any:
        words = line.split(None, 1)
        if words and not _TAG.match(words[0]):
            # Not a tag (RFC 3501: ASTRING-CHARs but "+"): never run it, or
            # "* IDLE" would start an IDLE whose answers no client can match.
            self.sendBadResponse(None, b"Invalid tag")
            self._discard_unread_literal(line)
            return None
        result = super().parse_command(line)
        self._discard_unread_literal(line)
        return result

    def parse_pending(self, line: bytes) -> None:
        super().parse_pending(line)
        self._discard_unread_literal(line)

    def _discard_unread_literal(self, line: bytes) -> None:
        """
        A command refused before its arguments were all read may have sent
        a non-synchronizing literal (C{{n+}}) at the end of C{line}: read
        and drop its octets (and the rest of the command after them), so
        that they are not taken for commands. Too large to drop: close.
        """
        if self.parseState != "command" or self.transport.disconnecting:
            return
        announced = literal_at_end(line)
        if announced is None or announced.synchronizing:
            return
        if announced.size > self.factory.max_message_size:
            self.sendLine(b"* BYE [TOOBIG] literal too large to skip")
            self.transport.loseConnection()
            return
        self.parseState = "pending"
        self._pendingLiteral = _DiscardedLiteral(  # type: ignore[assignment]
            announced.size, self._discard_unread_literal
        )
        self.setRawMode()

    def lookupCommand(self, cmd: bytes) -> Any:
        if not cmd.isalpha() or not cmd.isascii():
            return None
        return super().lookupCommand(cmd)

    # --- faults (lab.faults) ----------------------------------------------------

    def sendServerGreeting(self) -> None:
        if imap_fault(self, "connect", None):
            return
        super().sendServerGreeting()

    def dispatchCommand(
        self, tag: bytes, cmd: bytes, rest: bytes | None, uid: int | None = None
    ) -> Any:
        if (
            self.factory.faults
            and cmd != b"UID"
            and self.lookupCommand(cmd) is not None
            and imap_fault(self, cmd.decode("ascii"), tag, user=_user(self, cmd, rest))
        ):
            return None
        return super().dispatchCommand(tag, cmd, rest, uid)

    # --- literals and strings ----------------------------------------------------

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

    # --- TLS and authentication ----------------------------------------------

    def tls_active(self) -> bool:
        """Whether this connection is encrypted."""
        return (
            self.startedTLS
            or self.factory.implicit_tls
            or ISSLTransport(self.transport, None) is not None
        )

    def _may_authenticate(self) -> bool:
        return self.tls_active() or self.factory.allow_plaintext_auth

    def capabilities(self) -> dict[bytes, Any]:
        cap: dict[bytes, Any] = {}
        if self._may_authenticate():
            cap[b"AUTH"] = sorted(self.challengers or {})
        else:
            cap[b"LOGINDISABLED"] = None
        if self.ctx is not None and self.canStartTLS and not self.tls_active():
            cap[b"STARTTLS"] = None
        for name in _EXTENSIONS:
            cap[name] = None
        return cap

    def listCapabilities(self) -> list[bytes]:
        return [b"IMAP4rev1", b"IMAP4rev2", *super().listCapabilities()[1:]]

    def do_STARTTLS(self, tag: bytes) -> None:
        if self.tls_active():
            self.sendNegativeResponse(tag, b"TLS is already active")
            return
        if self.ctx is None or not self.canStartTLS:
            self.sendNegativeResponse(tag, b"TLS not available")
            return
        # Whatever the client sent after STARTTLS was sent in plaintext: an
        # attacker's injection. Drop it (CVE-2011-0411 and friends).
        self.clearLineBuffer()
        self.sendPositiveResponse(tag, b"Begin TLS negotiation now")
        self.transport.startTLS(self.ctx)
        self.startedTLS = True

    unauth_STARTTLS = _command(
        do_STARTTLS,
    )

    def do_LOGIN(self, tag: bytes, user: bytes, passwd: bytes) -> None:
        if not self._may_authenticate():
            self.sendNegativeResponse(
                tag, b"[PRIVACYREQUIRED] LOGIN is disabled until STARTTLS"
            )
            return
        super().do_LOGIN(tag, user, passwd)

    unauth_LOGIN = _command(
        do_LOGIN,
        arg_astring,
        arg_finalastring,
    )

    def do_AUTHENTICATE(
        self, tag: bytes, mechanism: bytes, initial: bytes = b""
    ) -> None:
        if not self._may_authenticate():
            self.sendNegativeResponse(
                tag, b"[PRIVACYREQUIRED] AUTHENTICATE is disabled until STARTTLS"
            )
            return
        initial = (initial or b"").strip()
        if not initial:
            super().do_AUTHENTICATE(tag, mechanism)
            return
        # SASL-IR (RFC 4959): the first response came with the command; "="
        # is an empty one. It goes where the answer to the first challenge
        # would, and the exchange goes on from there.
        factory = (self.challengers or {}).get(mechanism.upper())
        if factory is None or self.portal is None:
            self.sendNegativeResponse(tag, b"AUTHENTICATE method unsupported")
            return
        challenger = factory()
        challenger.getChallenge()
        # Twisted's own continuation of an exchange (private, name-mangled).
        d: defer.Deferred[bytes] = defer.Deferred()
        d.addCallback(self._IMAP4Server__cbAuthChunk, challenger, tag)
        d.addErrback(self._IMAP4Server__ebAuthChunk, tag)
        d.callback(b"" if initial == b"=" else initial)

    def arg_rest(self, line: bytes) -> tuple[bytes, bytes]:
        """Whatever is left of the line (possibly nothing)."""
        return line or b"", b""

    unauth_AUTHENTICATE = _command(
        do_AUTHENTICATE, imap4.IMAP4Server.arg_atom, arg_rest
    )

    # --- ENABLE, ID, UNSELECT -------------------------------------------------

    enabled: frozenset[bytes] = frozenset()

    def do_ENABLE(self, tag: bytes, names: list[Token]) -> None:
        """
        ENABLE (RFC 5161) of CONDSTORE, IMAP4rev2 or UTF8=ACCEPT; other
        names are ignored, as the RFC asks.
        """
        if not names:
            self.sendBadResponse(tag, b"ENABLE needs capability names")
            return
        newly: dict[bytes, bytes] = {}
        for name in names:
            key = bytes(name).upper() if isinstance(name, bytes) else b""
            if key in _ENABLEABLE and key not in self.enabled:
                newly[key] = b"IMAP4rev2" if key == b"IMAP4REV2" else key
        self.enabled = self.enabled | set(newly)
        self.sendUntaggedResponse(
            b"ENABLED" + b"".join(b" " + n for n in newly.values())
        )
        self.sendPositiveResponse(tag, b"ENABLE completed")

    auth_ENABLE = _command(do_ENABLE, read_tokens)
    select_ENABLE = auth_ENABLE

    @property
    def condstore(self) -> bool:
        """Whether this session has CONDSTORE on (RFC 7162 section 3)."""
        return b"CONDSTORE" in self.enabled

    @property
    def rev2(self) -> bool:
        """
        Whether the client enabled IMAP4rev2: SEARCH answers with ESEARCH,
        no C{\\Recent} or RECENT, mailbox names in UTF-8, C{[CLOSED]}.
        """
        return b"IMAP4REV2" in self.enabled

    @property
    def utf8_names(self) -> bool:
        """
        Whether mailbox names are UTF-8 rather than modified UTF-7: once
        IMAP4rev2 or UTF8=ACCEPT (RFC 6855) is enabled.
        """
        return bool({b"IMAP4REV2", b"UTF8=ACCEPT"} & self.enabled)

    def wire_name(self, name: str) -> bytes:
        """A mailbox name as sent: UTF-8 once enabled, else modified UTF-7."""
        return name.encode("utf-8" if self.utf8_names else "imap4-utf-7")

    def visible_flags(self, flags: list[str]) -> list[str]:
        """C{flags} as this session shows them (no C{\\Recent} in IMAP4rev2)."""
        if self.rev2:
            return [f for f in flags if f != "\\Recent"]
        return flags

    def newMessages(self, exists: int | None, recent: int | None) -> None:
        super().newMessages(exists, None if self.rev2 else recent)

    def _enable_condstore(self) -> None:
        if not self.condstore:
            self.enabled = self.enabled | {b"CONDSTORE"}

    def do_ID(self, tag: bytes, arguments: list[Token]) -> None:
        """ID (RFC 2971): the client's fields are logged, ours sent."""
        if len(arguments) != 1 or not (
            isinstance(arguments[0], list)
            or (isinstance(arguments[0], bytes) and arguments[0].upper() == b"NIL")
        ):
            self.sendBadResponse(tag, b"ID needs a list of fields or NIL")
            return
        fields = arguments[0] if isinstance(arguments[0], list) else []
        if len(fields) % 2 or not all(isinstance(f, bytes) for f in fields):
            self.sendBadResponse(tag, b"ID needs field and value pairs")
            return
        self.factory.log.debug(
            "IMAP client {peer} says ID {fields}",
            peer=describe_address(self.transport.getPeer()),
            fields=[bytes(f).decode("utf-8", "replace") for f in fields],  # type: ignore[arg-type]
        )
        self.sendUntaggedResponse(b'ID ("name" "netlab mail lab" "vendor" "netlab")')
        self.sendPositiveResponse(tag, b"ID completed")

    unauth_ID = _command(do_ID, read_tokens)
    auth_ID = unauth_ID
    select_ID = unauth_ID

    def do_UNSELECT(self, tag: bytes) -> None:
        """UNSELECT (RFC 3691): leave the mailbox without expunging."""
        self._leave_mailbox()
        self.sendPositiveResponse(tag, b"UNSELECT completed")

    select_UNSELECT = _command(do_UNSELECT)

    def _leave_mailbox(self) -> None:
        if self.mbox is not None:
            self.mbox.removeListener(self)
            self.mbox = None
        self.state = "auth"

    def authenticateLogin(self, user: bytes, passwd: bytes) -> Any:
        d = super().authenticateLogin(user, passwd)
        d.addErrback(self._log_failed_login, user)
        return d

    def _log_failed_login(self, failure: Failure, user: bytes) -> Failure:
        self.factory.log.info(
            "IMAP login failed for {user!r} from {peer}",
            user=user.decode("utf-8", "replace"),
            peer=describe_address(self.transport.getPeer()),
        )
        return failure

    # --- mailbox names -------------------------------------------------------

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

    def do_SELECT(
        self, tag: bytes, name: str, parameters: list[Token], rw: int, command: bytes
    ) -> None:
        """
        SELECT or EXAMINE, with RFC 4466 parameters: C{(CONDSTORE)} turns
        CONDSTORE on (RFC 7162); others are refused.
        """
        options = parameters[0] if parameters else []
        if len(parameters) > 1 or not isinstance(options, list):
            self.sendBadResponse(tag, command + b" takes one list of parameters")
            return
        for option in options:
            if not isinstance(option, bytes) or option.upper() != b"CONDSTORE":
                self.sendBadResponse(tag, b"Unknown " + command + b" parameter")
                return
            self._enable_condstore()
        self._selectWork(tag, name, rw, command)

    auth_SELECT = _command(do_SELECT, arg_mailbox, read_tokens, 1, b"SELECT")
    select_SELECT = auth_SELECT
    auth_EXAMINE = _command(do_SELECT, arg_mailbox, read_tokens, 0, b"EXAMINE")
    select_EXAMINE = auth_EXAMINE
    auth_DELETE = _command(imap4.IMAP4Server.do_DELETE, arg_final_mailbox)
    select_DELETE = auth_DELETE
    auth_RENAME = _command(imap4.IMAP4Server.do_RENAME, arg_mailbox, arg_final_mailbox)
    select_RENAME = auth_RENAME
    auth_SUBSCRIBE = _command(imap4.IMAP4Server.do_SUBSCRIBE, arg_final_mailbox)
    select_SUBSCRIBE = auth_SUBSCRIBE
    auth_UNSUBSCRIBE = _command(imap4.IMAP4Server.do_UNSUBSCRIBE, arg_final_mailbox)
    select_UNSUBSCRIBE = auth_UNSUBSCRIBE

    def _cbListWork(
        self, mailboxes: list[tuple[str, Any]], tag: bytes, sub: int, cmdName: bytes
    ) -> None:
        # Twisted quotes names without escaping C{"} or C{\\}: a name made
        # from a literal could not be copied back from its LIST line.
        for name, box in mailboxes:
            if sub and not self.account.isSubscribed(name):  # type: ignore[union-attr]
                continue
            attributes = b" ".join(flag.encode("ascii") for flag in box.getFlags())
            delimiter = quote(box.getHierarchicalDelimiter().encode("ascii"))
            encoded = quote(self.wire_name(name))
            self.sendUntaggedResponse(
                b"%s (%s) %s %s" % (cmdName, attributes, delimiter, encoded)
            )
        self.sendPositiveResponse(tag, cmdName + b" completed")

    def do_LIST(self, tag: bytes, arguments: list[Token]) -> None:
        """
        LIST, with LIST-EXTENDED's selection options (SUBSCRIBED,
        SPECIAL-USE), several patterns, and return options (SUBSCRIBED,
        CHILDREN, SPECIAL-USE, and LIST-STATUS's STATUS).
        """
        try:
            request = _list_request(arguments)
            reference = _decode_mailbox_name(request.reference, self.utf8_names)
            patterns = [
                _decode_mailbox_name(p, self.utf8_names) for p in request.patterns
            ]
        except BadMailboxName as e:
            self.sendNegativeResponse(tag, b"Illegal mailbox name: " + _ascii_bytes(e))
            return
        account = self.account
        assert account is not None
        found: dict[str, Any] = {}
        for pattern in patterns:
            for name, info in account.listMailboxes(reference, pattern):
                found.setdefault(name, info)
        subscribed_only = b"SUBSCRIBED" in request.selection
        special_only = b"SPECIAL-USE" in request.selection
        show_subscribed = subscribed_only or b"SUBSCRIBED" in request.returns
        for name, info in found.items():
            attributes = list(info.getFlags())
            subscribed = bool(name) and account.isSubscribed(name)
            if subscribed_only and not subscribed:
                continue
            if special_only and not any(a in SPECIAL_USE.values() for a in attributes):
                continue
            if show_subscribed and subscribed:
                attributes.append("\\Subscribed")
            self.sendUntaggedResponse(
                b"LIST (%s) %s %s"
                % (
                    " ".join(attributes).encode("ascii"),
                    quote(info.getHierarchicalDelimiter().encode("ascii")),
                    quote(self.wire_name(name)),
                )
            )
            if request.status and name and "\\Noselect" not in attributes:
                self._list_status(name, request.status)
        self.sendPositiveResponse(tag, b"LIST completed")

    def _list_status(self, name: str, items: list[str]) -> None:
        """LIST-STATUS (RFC 5819): a STATUS response after the LIST line."""
        mbox = self.account.select(name, 0)  # type: ignore[union-attr]
        if mbox is None:
            return
        try:
            status = mbox.requestStatus(items)
        except imap4.IllegalQueryError:
            return
        finally:
            mbox.close()
        values = b" ".join(b"%s %d" % (k.encode(), v) for k, v in status.items())
        self.sendUntaggedResponse(
            b"STATUS " + quote(self.wire_name(name)) + b" (" + values + b")"
        )

    auth_LIST = _command(do_LIST, read_tokens)
    select_LIST = auth_LIST
    auth_LSUB = _command(
        imap4.IMAP4Server._listWork, arg_pattern, arg_pattern, 1, b"LSUB"
    )
    select_LSUB = auth_LSUB

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

    auth_STATUS = _command(
        imap4.IMAP4Server.do_STATUS,
        arg_mailbox,
        arg_plist,
    )
    select_STATUS = auth_STATUS
    auth_APPEND = _command(
        imap4.IMAP4Server.do_APPEND,
        arg_mailbox,
        imap4.IMAP4Server.opt_plist,
        imap4.IMAP4Server.opt_datetime,
        arg_literal,
    )
    select_APPEND = auth_APPEND

    def do_CREATE(self, tag: bytes, name: bytes | str) -> None:
        try:
            decoded = _decode_mailbox_name(name, self.utf8_names)
            stripped = decoded[:-1] if decoded.endswith(".") else decoded
            validate_mailbox_name(stripped)
        except (BadMailboxName, MailStoreError) as e:
            self.sendNegativeResponse(tag, b"Illegal mailbox name: " + _ascii_bytes(e))
            return
        super().do_CREATE(tag, decoded)

    auth_CREATE = _command(do_CREATE, arg_finalastring)
    select_CREATE = auth_CREATE

    def _cbSelectWork(
        self, mbox: LabMailbox | None, cmdName: bytes, tag: bytes
    ) -> None:
        if mbox is None:
            self.sendNegativeResponse(tag, b"[NONEXISTENT] No such mailbox")
            return
        self._send_flags(mbox)
        self.sendUntaggedResponse(b"%d EXISTS" % (mbox.getMessageCount(),))
        if not self.rev2:
            self.sendUntaggedResponse(b"%d RECENT" % (mbox.getRecentCount(),))
        unseen = mbox.first_unseen()
        if unseen is not None:
            self.sendPositiveResponse(None, b"[UNSEEN %d] First unseen" % (unseen,))
        self.sendPositiveResponse(
            None, b"[UIDVALIDITY %d] UIDs valid" % mbox.getUIDValidity()
        )
        self.sendPositiveResponse(
            None, b"[UIDNEXT %d] Predicted next UID" % mbox.getUIDNext()
        )
        self.sendPositiveResponse(
            None, b"[HIGHESTMODSEQ %d] Highest" % (mbox.highest_modseq(),)
        )
        mode = b"READ-WRITE" if mbox.isWriteable() else b"READ-ONLY"
        mbox.addListener(self)
        self.mbox = mbox
        self.state = "select"
        self.sendPositiveResponse(tag, b"[" + mode + b"] " + cmdName + b" completed")

    def _selectWork(self, tag: bytes, name: str, rw: int, cmdName: bytes) -> None:
        if self.rev2 and self.mbox is not None:
            # RFC 9051 section 7.1: the previous mailbox is closed first.
            self._leave_mailbox()
            self.sendPositiveResponse(None, b"[CLOSED] Previous mailbox closed")
        super()._selectWork(tag, name, rw, cmdName)

    def _send_flags(self, mbox: LabMailbox) -> None:
        """
        The FLAGS and PERMANENTFLAGS responses: system flags and the
        mailbox's keywords; C{\\*} while new keywords can be stored.
        """
        flags = " ".join(mbox.getFlags()).encode("utf-8")
        self.sendUntaggedResponse(b"FLAGS (" + flags + b")")
        self._shown_flags = flags
        permanent = flags if mbox.isWriteable() else b""
        if mbox.isWriteable() and mbox.can_add_keywords():
            permanent += b" \\*"
        self.sendPositiveResponse(
            None, b"[PERMANENTFLAGS (" + permanent.strip() + b")] Flags kept"
        )

    _shown_flags = b""

    def _flags_grew(self) -> None:
        """Tell the client of keywords defined since it last heard (STORE)."""
        mbox = self.mbox
        if (
            isinstance(mbox, LabMailbox)
            and " ".join(mbox.getFlags()).encode("utf-8") != self._shown_flags
        ):
            self._send_flags(mbox)

    def _cbStatusGotMailbox(
        self, mbox: LabMailbox | None, tag: bytes, mailbox: str, names: list[str]
    ) -> None:
        if mbox is None:
            self.sendNegativeResponse(tag, b"[NONEXISTENT] No such mailbox")
            return
        if any(n.upper() == "HIGHESTMODSEQ" for n in names):
            self._enable_condstore()
        try:
            status = mbox.requestStatus(names)
        except imap4.IllegalQueryError as e:
            self.sendBadResponse(tag, _ascii_bytes(e))
            return
        items = b" ".join(b"%s %d" % (k.encode(), v) for k, v in status.items())
        self.sendUntaggedResponse(
            b"STATUS " + quote(self.wire_name(mailbox)) + b" (" + items + b")"
        )
        self.sendPositiveResponse(tag, b"STATUS completed")

    def _cbAppendGotMailbox(
        self,
        mbox: LabMailbox | None,
        tag: bytes,
        flags: list[bytes] | None,
        date: bytes | None,
        message: Any,
    ) -> None:
        # Twisted's version sends "* n EXISTS" counting the target mailbox,
        # which is wrong whenever another mailbox is selected.
        if mbox is None:
            self.sendNegativeResponse(tag, b"[TRYCREATE] No such mailbox")
            return
        names = [f.decode("ascii", "replace") for f in flags or []]
        d = mbox.addMessage(message, names, date)
        d.addCallback(self._appended, tag, mbox)
        d.addErrback(self._append_failed, tag)

    def do_COPY(self, tag: bytes, messages: Any, mailbox: str, uid: int = 0) -> None:
        """
        COPY, answered with UIDPLUS's C{[COPYUID ...]} (RFC 4315).
        """
        copied = self._copy(tag, messages, mailbox, uid)
        if copied is not None:
            code, _ = copied
            self.sendPositiveResponse(tag, (code + b" COPY completed").lstrip())

    select_COPY = _command(do_COPY, arg_seqset, arg_final_mailbox)

    def do_MOVE(self, tag: bytes, messages: Any, mailbox: str, uid: int = 0) -> None:
        """
        MOVE (RFC 6851): copy, then expunge the originals, with COPYUID
        first in an untagged OK.
        """
        if not self.mbox.isWriteable():
            self.sendNegativeResponse(tag, b"[READ-ONLY] The mailbox is read-only")
            return
        copied = self._copy(tag, messages, mailbox, uid)
        if copied is None:
            return
        code, sources = copied
        if sources:
            self.sendPositiveResponse(None, code + b" Moved")
        for seq in self.mbox.remove_messages(sources):
            self.sendUntaggedResponse(b"%d EXPUNGE" % (seq,))
        self.sendPositiveResponse(tag, b"MOVE completed")

    select_MOVE = _command(do_MOVE, arg_seqset, arg_final_mailbox)

    def _copy(
        self, tag: bytes, messages: Any, mailbox: str, uid: int
    ) -> tuple[bytes, list[int]] | None:
        """
        Copy the messages into C{mailbox}; return the COPYUID response code
        and the source UIDs copied, or L{None} once a NO was sent.
        """
        target = self.account.select(mailbox)  # type: ignore[union-attr]
        if target is None:
            # (Twisted's version fails here, mixing str and bytes.)
            self.sendNegativeResponse(tag, b"[TRYCREATE] No such mailbox")
            return None
        source = self.mbox
        messages, uid = self._messages(messages, uid)
        pairs: list[tuple[int, int]] = []
        try:
            for source_uid in source.selected(messages, bool(uid)):
                try:
                    pairs.append(
                        (source_uid, target.copy(LabMessage(source, source_uid)))
                    )
                except MessageGone:
                    continue
        except MailStoreError as e:
            self.sendNegativeResponse(tag, b"COPY failed: " + _ascii_bytes(e))
            return None
        except OSError:
            self.factory.log.failure("COPY failed")
            self.sendNegativeResponse(tag, b"COPY failed: could not store")
            return None
        finally:
            target.close()
        if not pairs:
            return b"", []
        code = b"[COPYUID %d %s %s]" % (
            target.getUIDValidity(),
            _sequence_text([a for a, _ in pairs]),
            _sequence_text([b for _, b in pairs]),
        )
        return code, [a for a, _ in pairs]

    def do_EXPUNGE(self, tag: bytes, messages: Any = None) -> None:
        """EXPUNGE, and UIDPLUS's UID EXPUNGE of the messages given."""
        if not self.mbox.isWriteable():
            self.sendNegativeResponse(tag, b"EXPUNGE ignored on read-only mailbox")
            return
        if messages is not None:
            messages, _ = self._messages(messages, 1)
        uids = None if messages is None else self.mbox.selected(messages, True)
        for seq in self.mbox.expunge(uids):
            self.sendUntaggedResponse(b"%d EXPUNGE" % (seq,))
        self.sendPositiveResponse(tag, b"EXPUNGE completed")

    select_EXPUNGE = _command(do_EXPUNGE)

    def do_UID(self, tag: bytes, command: bytes, line: bytes) -> None:
        command = command.upper()
        if command == b"EXPUNGE":
            self._uid_expunge(tag, line)
            return
        if command not in (b"COPY", b"FETCH", b"STORE", b"SEARCH", b"MOVE"):
            raise imap4.IllegalClientResponse(command.decode("ascii", "replace"))
        self.dispatchCommand(tag, command, line, uid=1)

    def _uid_expunge(self, tag: bytes, line: bytes) -> None:
        messages, rest = self.arg_seqset(line)
        if rest:
            raise IMAPSyntaxError("Too many arguments for UID EXPUNGE")
        self.do_EXPUNGE(tag, messages)

    select_UID = _command(do_UID, imap4.IMAP4Server.arg_atom, arg_rest)

    def sendContinuationRequest(self, msg: bytes | None = b"Ready") -> None:
        # RFC 3501: "+" SP, even with an empty challenge (Twisted sends "+").
        self.sendLine(b"+ " + (msg or b""))

    def _appended(self, uid: int, tag: bytes, mbox: LabMailbox) -> None:
        validity = mbox.getUIDValidity()
        mbox.close()
        self._flags_grew()
        self.sendPositiveResponse(
            tag, b"[APPENDUID %d %d] APPEND completed" % (validity, uid)
        )

    def _append_failed(self, failure: Failure, tag: bytes) -> None:
        if failure.check(ValueError):
            reason = _ascii_bytes(failure.value)  # type: ignore[arg-type]
            self.sendBadResponse(tag, b"APPEND failed: " + reason)
        elif failure.check(MailStoreError):
            reason = _ascii_bytes(failure.value)  # type: ignore[arg-type]
            code = b"[LIMIT] " if failure.check(KeywordLimit) else b""
            self.sendNegativeResponse(tag, code + b"APPEND failed: " + reason)
        else:
            self.factory.log.failure("APPEND failed", failure)
            self.sendNegativeResponse(
                tag, b"APPEND failed: could not store the message"
            )

    def arg_search(self, line: bytes) -> Any:
        """
        The arguments of SEARCH: C{RETURN (...)} (ESEARCH), C{CHARSET x},
        then the search keys, which may hold literals anywhere.
        """
        result = self.read_tokens(line)
        if isinstance(result, defer.Deferred):
            return result.addCallback(_search_request)
        return _search_request(result)

    def do_SEARCH(  # type: ignore[override]
        self, tag: bytes, request: SearchRequest, uid: int = 0
    ) -> None:
        charset = request.charset
        if charset is not None and b"UTF8=ACCEPT" in self.enabled:
            # RFC 6855 section 3: strings are UTF-8 now; a charset conflicts.
            self.sendBadResponse(tag, b"SEARCH takes no CHARSET after UTF8=ACCEPT")
            return
        if charset is not None and not _is_utf8_or_ascii(charset):
            self.sendNegativeResponse(
                tag, b"[BADCHARSET (US-ASCII UTF-8)] Unknown charset"
            )
            return
        try:
            found = self.mbox.search(request.criteria, uid=bool(uid))
        except imap4.IllegalQueryError as e:
            self.sendBadResponse(tag, b"SEARCH failed: " + _ascii_bytes(e))
            return
        ids = [self.mbox.getUID(seq) if uid else seq for seq in found]
        modseq = None
        if _mentions(request.criteria, b"MODSEQ"):
            # RFC 7162 3.1.5: the highest MODSEQ of what was found.
            self._enable_condstore()
            modseq = max(
                (self.mbox.modseq(self.mbox.getUID(seq)) for seq in found), default=None
            )
        returns = request.returns or ()
        if b"SAVE" in returns:
            self._save_result(found, returns)
            returns = tuple(r for r in returns if r != b"SAVE")
            if not returns:
                # RFC 5182: SAVE alone answers nothing but the tagged OK.
                self.sendPositiveResponse(tag, b"SEARCH completed")
                return
        if request.returns is None and not self.rev2:
            line = b" ".join(b"%d" % (i,) for i in ids)
            if modseq is not None:
                line += b" (MODSEQ %d)" % (modseq,)
            self.sendUntaggedResponse(b"SEARCH" + (b" " + line if line else b""))
        else:
            response = _esearch_response(tag, returns, ids, uid)
            if modseq is not None:
                response += b" MODSEQ %d" % (modseq,)
            self.sendUntaggedResponse(response)
        self.sendPositiveResponse(tag, b"SEARCH completed")

    select_SEARCH = _command(do_SEARCH, arg_search)

    def _save_result(self, found: list[int], returns: tuple[bytes, ...]) -> None:
        """
        SEARCHRES (RFC 5182): keep what SEARCH found (only its MIN and MAX
        when those are all it asked for) as C{$}, by UID.
        """
        uids = [self.mbox.getUID(seq) for seq in found]
        if (
            uids
            and not ({b"ALL", b"COUNT"} & set(returns))
            and ({b"MIN", b"MAX"} & set(returns))
        ):
            kept = []
            if b"MIN" in returns:
                kept.append(uids[0])
            if b"MAX" in returns:
                kept.append(uids[-1])
            uids = sorted(set(kept))
        self.mbox.saved_uids = uids

    def _messages(self, messages: Any, uid: int) -> tuple[Any, int]:
        """
        A sequence set as the handlers take it: C{$} (SEARCHRES) becomes
        the UIDs saved by the last C{SEARCH RETURN (SAVE)}.
        """
        if isinstance(messages, SavedResult):
            saved = getattr(self.mbox, "saved_uids", [])
            if not saved:
                return imap4.MessageSet(), 1
            return parse_sequence_set(_sequence_text(saved)), 1
        return messages, uid

    _STORE_MODES = {
        b"FLAGS",
        b"FLAGS.SILENT",
        b"+FLAGS",
        b"+FLAGS.SILENT",
        b"-FLAGS",
        b"-FLAGS.SILENT",
    }

    def opt_store_modifiers(self, line: bytes) -> Any:
        """
        STORE's optional modifiers (RFC 4466): C{(UNCHANGEDSINCE n)}.
        """
        line = (line or b"").lstrip(b" ")
        if not line.startswith(b"("):
            return None, line
        end = line.find(b")")
        if end < 0:
            raise IMAPSyntaxError("Mismatched parenthesis")
        words = line[1:end].split()
        if len(words) != 2 or words[0].upper() != b"UNCHANGEDSINCE":
            raise IMAPSyntaxError("STORE modifier must be UNCHANGEDSINCE n")
        if not words[1].isdigit():
            raise IMAPSyntaxError("UNCHANGEDSINCE needs a number")
        return int(words[1]), line[end + 1 :].lstrip(b" ")

    def do_STORE(  # type: ignore[override]
        self,
        tag: bytes,
        messages: Any,
        unchanged_since: int | None,
        mode: bytes,
        flags: list[bytes],
        uid: int = 0,
    ) -> None:
        """
        STORE; with CONDSTORE's UNCHANGEDSINCE, messages changed since are
        left alone and named in C{[MODIFIED ...]}.
        """
        mode = mode.upper()
        if mode not in self._STORE_MODES:
            self.sendBadResponse(tag, b"STORE needs FLAGS, +FLAGS or -FLAGS")
            return
        mbox = self.mbox
        if not mbox.isWriteable():
            self.sendNegativeResponse(tag, b"[READ-ONLY] The mailbox is read-only")
            return
        if unchanged_since is not None:
            self._enable_condstore()
        messages, uid = self._messages(messages, uid)
        uids = mbox.selected(messages, bool(uid))
        modified: list[int] = []
        if unchanged_since is not None:
            modified = [u for u in uids if mbox.modseq(u) > unchanged_since]
            uids = [u for u in uids if u not in modified]
        direction = 1 if mode.startswith(b"+") else -1 if mode.startswith(b"-") else 0
        names = [f.decode("utf-8", "replace") for f in flags]
        try:
            result = mbox.store_uids(uids, names, direction)
        except MailStoreError as e:
            code = b"[LIMIT] " if isinstance(e, KeywordLimit) else b""
            self.sendNegativeResponse(tag, code + b"STORE failed: " + _ascii_bytes(e))
            return
        self._flags_grew()
        silent = mode.endswith(b".SILENT")
        for message_uid in sorted(result):
            seq = mbox.sequence_number(message_uid)
            if seq is None:
                continue
            items = []
            if not silent:
                items.append(_flags_item(self.visible_flags(result[message_uid])))
            if uid:
                items.append(b"UID %d" % (message_uid,))
            if self.condstore:
                items.append(b"MODSEQ (%d)" % (mbox.modseq(message_uid),))
            if items and (not silent or self.condstore):
                self.sendUntaggedResponse(b"%d FETCH (%s)" % (seq, b" ".join(items)))
        if modified:
            shown = (
                modified
                if uid
                else [s for u in modified if (s := mbox.sequence_number(u))]
            )
            self.sendPositiveResponse(
                tag, b"[MODIFIED %s] Conditional STORE failed" % _sequence_text(shown)
            )
            return
        self.sendPositiveResponse(tag, b"STORE completed")

    select_STORE = _command(
        do_STORE,
        arg_seqset,
        opt_store_modifiers,
        imap4.IMAP4Server.arg_atom,
        imap4.IMAP4Server.arg_flaglist,
    )

    def flagsChanged(self, newFlags: dict[int, list[str]]) -> None:
        # Twisted's, with CONDSTORE's MODSEQ (and the UID) once it is on.
        for seq, flags in newFlags.items():
            items = [_flags_item(self.visible_flags(flags))]
            if self.condstore and isinstance(self.mbox, LabMailbox):
                message_uid = self.mbox.getUID(seq)
                items.append(b"UID %d" % (message_uid,))
                items.append(b"MODSEQ (%d)" % (self.mbox.modseq(message_uid),))
            self.sendUntaggedResponse(
                b"%d FETCH (%s)" % (seq, b" ".join(items)), isAsync=True
            )

    # --- staying in sync -------------------------------------------------------

    def _sync_mailbox(self) -> None:
        """
        Report what others changed in the selected mailbox, expunges included.
        """
        mbox = self.mbox
        if isinstance(mbox, LabMailbox):
            mbox.poll()
            for seq in mbox.take_expunged():
                self.sendUntaggedResponse(b"%d EXPUNGE" % (seq,))

    def do_NOOP(self, tag: bytes) -> None:
        self._sync_mailbox()
        self.sendPositiveResponse(tag, b"NOOP completed")

    unauth_NOOP = _command(
        do_NOOP,
    )
    auth_NOOP = unauth_NOOP
    select_NOOP = unauth_NOOP
    logout_NOOP = unauth_NOOP

    def do_CHECK(self, tag: bytes) -> None:
        self._sync_mailbox()
        self.sendPositiveResponse(tag, b"CHECK completed")

    select_CHECK = _command(
        do_CHECK,
    )

    def do_IDLE(self, tag: bytes) -> None:
        self._sync_mailbox()
        self.sendContinuationRequest(b"idling")
        self.parseTag = tag
        self.lastState = self.parseState
        self.parseState = "idle"
        self._idling = True
        self._schedule_poll()

    select_IDLE = _command(
        do_IDLE,
    )
    auth_IDLE = select_IDLE

    def parse_idle(self, line: bytes) -> None:
        self._stop_polling()
        self._idling = False
        self.parseState = self.lastState
        del self.lastState
        tag = self.parseTag
        del self.parseTag
        if line.strip().upper() == b"DONE":
            self.sendPositiveResponse(tag, b"IDLE terminated")
        else:
            self.sendBadResponse(tag, b"IDLE ended: expected DONE")

    def _schedule_poll(self) -> None:
        interval = self.factory.poll_interval
        if interval and self.mbox is not None:
            self._poll_call = self.factory.reactor.callLater(interval, self._poll_idle)

    def _poll_idle(self) -> None:
        self._poll_call = None
        if self._idling:
            self._sync_mailbox()
            self._schedule_poll()

    def _stop_polling(self) -> None:
        if self._poll_call is not None and self._poll_call.active():
            self._poll_call.cancel()
        self._poll_call = None

    def expunges_pending(self) -> None:
        """
        Messages of the selected mailbox were expunged elsewhere: tell the
        client now if it is in IDLE (otherwise at its next NOOP or CHECK).
        """
        if self._idling and isinstance(self.mbox, LabMailbox):
            for seq in self.mbox.take_expunged():
                self.sendUntaggedResponse(b"%d EXPUNGE" % (seq,))

    # --- FETCH -----------------------------------------------------------------

    def arg_fetchatt(self, line: bytes) -> Any:
        """
        FETCH items (Twisted's parser) with CONDSTORE's C{MODSEQ} item and
        C{(CHANGEDSINCE n)} modifier taken out first.
        """
        line = line or b""
        changed_since = None
        match = _CHANGEDSINCE.search(line)
        if match is not None:
            changed_since = int(match.group(1))
            line = line[: match.start()]
        line, modseq, binary = _take_items(line)
        query: list[Any] = []
        if line.strip() not in (b"", b"()"):
            try:
                query = super().arg_fetchatt(line)[0]
            except imap4.IllegalClientResponse:
                raise
            except Exception as e:
                raise imap4.IllegalClientResponse(f"bad FETCH items: {e}") from None
        elif not modseq and not binary:
            raise IMAPSyntaxError("FETCH needs items")
        return FetchRequest(query, modseq, changed_since, binary), b""

    def do_FETCH(
        self, tag: bytes, messages: Any, request: FetchRequest, uid: int = 0
    ) -> None:
        if request.modseq or request.changed_since is not None:
            self._enable_condstore()
        messages, uid = self._messages(messages, uid)
        results = self.mbox.fetch(messages, uid=bool(uid))
        since = request.changed_since
        if since is not None:
            results = [(s, m) for s, m in results if self.mbox.modseq(m.uid) > since]
        modseq = request.modseq or since is not None
        if not request.query and not modseq and not request.binary:
            self.sendPositiveResponse(tag, b"FETCH completed")
            return
        _FetchResponder(
            self, tag, results, request.query, bool(uid), modseq, request.binary
        ).start()

    select_FETCH = _command(do_FETCH, arg_seqset, arg_fetchatt)


@dataclass(frozen=True)
class ListRequest:
    """
    A parsed LIST (RFC 5258): selection options, the reference, the
    patterns, the return options and LIST-STATUS's items.
    """

    selection: frozenset[bytes]
    reference: bytes
    patterns: list[bytes]
    returns: frozenset[bytes]
    status: list[str]


_LIST_SELECTION = frozenset({b"SUBSCRIBED", b"SPECIAL-USE", b"REMOTE"})
_LIST_RETURNS = frozenset({b"SUBSCRIBED", b"CHILDREN", b"SPECIAL-USE", b"STATUS"})


def _atoms(tokens: Token, allowed: frozenset[bytes], what: str) -> list[bytes]:
    if not isinstance(tokens, list) or not all(
        isinstance(t, bytes) and t.upper() in allowed for t in tokens
    ):
        raise IMAPSyntaxError(f"bad LIST {what} options")
    return [bytes(t).upper() for t in tokens if isinstance(t, bytes)]


def _list_request(tokens: list[Token]) -> ListRequest:
    tokens = list(tokens)
    selection: list[bytes] = []
    if tokens and isinstance(tokens[0], list):
        selection = _atoms(tokens.pop(0), _LIST_SELECTION, "selection")
    if len(tokens) < 2 or isinstance(tokens[0], list):
        raise IMAPSyntaxError("LIST needs a reference and a pattern")
    reference = tokens.pop(0)
    pattern = tokens.pop(0)
    patterns = pattern if isinstance(pattern, list) else [pattern]
    if not patterns or not all(isinstance(p, bytes) for p in patterns):
        raise IMAPSyntaxError("bad LIST patterns")
    returns: list[bytes] = []
    status: list[str] = []
    if tokens:
        if len(tokens) != 2 or not _is_atom(tokens[0], b"RETURN"):
            raise IMAPSyntaxError("LIST takes RETURN (options) last")
        options = tokens[1]
        if not isinstance(options, list):
            raise IMAPSyntaxError("bad LIST return options")
        i = 0
        while i < len(options):
            option = options[i]
            if _is_atom(option, b"STATUS"):
                items = options[i + 1] if i + 1 < len(options) else None
                if not isinstance(items, list) or not items:
                    raise IMAPSyntaxError("STATUS needs a list of items")
                status = [bytes(t).decode("ascii", "replace") for t in items]  # type: ignore[arg-type]
                i += 2
                continue
            returns.extend(_atoms([option], _LIST_RETURNS, "return"))
            i += 1
    assert isinstance(reference, bytes)
    return ListRequest(
        frozenset(selection),
        bytes(reference),
        [bytes(p) for p in patterns if isinstance(p, bytes)],
        frozenset(returns),
        status,
    )


class SavedResult:
    """
    The sequence set C{$} (SEARCHRES): the last saved SEARCH result.
    """


@dataclass(frozen=True)
class SearchRequest:
    """
    A parsed SEARCH command.

    @ivar charset: the C{CHARSET} given, if any.
    @ivar returns: the ESEARCH C{RETURN} options (upper case; empty means
        C{ALL}), or L{None} for a plain SEARCH.
    @ivar criteria: the search keys as tokens.
    """

    charset: bytes | None
    returns: tuple[bytes, ...] | None
    criteria: list[Token]


_ESEARCH_OPTIONS = (b"MIN", b"MAX", b"ALL", b"COUNT", b"SAVE")


def _search_request(result: tuple[list[Token], bytes]) -> tuple[SearchRequest, bytes]:
    tokens, rest = result
    returns: tuple[bytes, ...] | None = None
    charset: bytes | None = None
    if tokens and _is_atom(tokens[0], b"RETURN"):
        tokens.pop(0)
        options = tokens.pop(0) if tokens else None
        if not isinstance(options, list) or not all(
            isinstance(o, bytes) and o.upper() in _ESEARCH_OPTIONS for o in options
        ):
            raise IMAPSyntaxError("RETURN needs a list of MIN, MAX, ALL, COUNT")
        returns = tuple(o.upper() for o in options if isinstance(o, bytes))
    if tokens and _is_atom(tokens[0], b"CHARSET"):
        tokens.pop(0)
        value = tokens.pop(0) if tokens else None
        if not isinstance(value, bytes):
            raise IMAPSyntaxError("Missing charset identifier")
        charset = bytes(value)
    if not tokens:
        raise IMAPSyntaxError("Missing search keys")
    return SearchRequest(charset, returns, tokens), rest


def _is_atom(token: Token, name: bytes) -> bool:
    return (
        isinstance(token, bytes)
        and not isinstance(token, (Quoted, Literal))
        and token.upper() == name
    )


def _is_utf8_or_ascii(charset: bytes) -> bool:
    """Whether C{charset} names UTF-8 or US-ASCII (C{utf8} too, as sent)."""
    try:
        name = codecs.lookup(charset.decode("ascii")).name
    except (LookupError, UnicodeError):
        return False
    return name in ("utf-8", "ascii")


def _mentions(tokens: list[Token], atom: bytes) -> bool:
    """Whether C{atom} is among C{tokens} (as an atom, at any depth)."""
    return any(
        _mentions(t, atom) if isinstance(t, list) else _is_atom(t, atom) for t in tokens
    )


def _sequence_text(ids: list[int]) -> bytes:
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


def _esearch_response(
    tag: bytes, returns: tuple[bytes, ...], ids: list[int], uid: int
) -> bytes:
    """An ESEARCH response (RFC 4731) for the RETURN options asked for."""
    wanted = returns or (b"ALL",)
    parts = [b"ESEARCH (TAG " + quote(tag) + b")"]
    if uid:
        parts.append(b"UID")
    ordered = sorted(ids)
    if ordered:
        if b"MIN" in wanted:
            parts.append(b"MIN %d" % (ordered[0],))
        if b"MAX" in wanted:
            parts.append(b"MAX %d" % (ordered[-1],))
        if b"ALL" in wanted:
            parts.append(b"ALL " + _sequence_text(ordered))
    if b"COUNT" in wanted:
        parts.append(b"COUNT %d" % (len(ordered),))
    return b" ".join(parts)


@dataclass(frozen=True)
class FetchRequest:
    """
    A parsed FETCH: Twisted's items, whether C{MODSEQ} was asked for, and
    the C{CHANGEDSINCE} modifier (CONDSTORE).
    """

    query: list[Any]
    modseq: bool = False
    changed_since: int | None = None
    binary: list[BinaryItem] = field(default_factory=list)


_CHANGEDSINCE = re.compile(
    rb"\s*\(\s*CHANGEDSINCE\s+(\d{1,20})(?:\s+VANISHED)?\s*\)\s*$", re.IGNORECASE
)
_MODSEQ_WORD = re.compile(rb"MODSEQ(?=[\s)]|$)", re.IGNORECASE)
_BINARY_ITEM = re.compile(
    rb"BINARY(\.PEEK|\.SIZE)?\[([0-9.]*)\](?:<(\d{1,10})(?:\.(\d{1,10}))?>)?"
    rb"(?=[\s)]|$)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class BinaryItem:
    """
    A BINARY fetch item (RFC 3516): C{BINARY[1.2]<0.100>},
    C{BINARY.PEEK[...]} or C{BINARY.SIZE[...]}.
    """

    part: tuple[int, ...]
    peek: bool = False
    size_only: bool = False
    begin: int | None = None
    length: int | None = None

    def label(self) -> bytes:
        section = ".".join(str(p + 1) for p in self.part).encode()
        name = b"BINARY.SIZE" if self.size_only else b"BINARY"
        partial = b"" if self.begin is None else b"<%d>" % (self.begin,)
        return name + b"[" + section + b"]" + partial


def _take_items(line: bytes) -> tuple[bytes, bool, list[BinaryItem]]:
    """
    C{line} without its top-level C{MODSEQ} and C{BINARY} items (which
    Twisted's parser does not know), whether there was a C{MODSEQ}, and the
    C{BINARY} items.
    """
    found = False
    binary: list[BinaryItem] = []
    out = bytearray()
    depth = 0
    i = 0
    while i < len(line):
        c = line[i : i + 1]
        at_word = depth == 0 and (i == 0 or line[i - 1 : i] in b" (")
        if at_word and _MODSEQ_WORD.match(line, i):
            found = True
            i += len(b"MODSEQ")
            continue
        match = _BINARY_ITEM.match(line, i) if at_word else None
        if match is not None:
            binary.append(_binary_item(match))
            i = match.end()
            continue
        if c == b"[":
            depth += 1
        elif c == b"]":
            depth -= 1
        out += c
        i += 1
    text = re.sub(rb"\( +", b"(", re.sub(rb" +\)", b")", bytes(out)))
    return re.sub(rb"  +", b" ", text).strip(), found, binary


def _binary_item(match: re.Match[bytes]) -> BinaryItem:
    kind, section, begin, length = match.groups()
    numbers = section.split(b".") if section else []
    if not all(n.isdigit() and int(n) > 0 for n in numbers):
        raise IMAPSyntaxError("BINARY takes part numbers only")
    size_only = (kind or b"").upper() == b".SIZE"
    if size_only and begin is not None:
        raise IMAPSyntaxError("BINARY.SIZE takes no partial range")
    if begin is not None and length is None:
        raise IMAPSyntaxError("a partial range needs a length")
    return BinaryItem(
        tuple(int(n) - 1 for n in numbers),
        peek=(kind or b"").upper() == b".PEEK",
        size_only=size_only,
        begin=None if begin is None else int(begin),
        length=None if length is None else int(length),
    )


class UnknownTransferEncoding(Exception):
    """A part's Content-Transfer-Encoding that BINARY cannot decode."""


def _decoded_part(message: LabMessage, part: tuple[int, ...]) -> bytes:
    """
    The content of a part with its Content-Transfer-Encoding undone (the
    whole message, as stored, for an empty section).

    @raise IndexError: no such part.
    @raise UnknownTransferEncoding: an encoding not in RFC 2045.
    """
    if not part:
        return message.data
    entity = message.part
    for depth, index in enumerate(part):
        entity = entity.subpart(index, top=depth == 0)
    encoding = (entity.header("content-transfer-encoding") or "7bit").strip().lower()
    body = entity.body
    if encoding in ("7bit", "8bit", "binary"):
        return body
    if encoding == "base64":
        return binascii.a2b_base64(body)
    if encoding == "quoted-printable":
        return quopri.decodestring(body)
    raise UnknownTransferEncoding(encoding)


def _render_binary(item: BinaryItem, message: LabMessage) -> bytes:
    try:
        data = _decoded_part(message, item.part)
    except IndexError:
        return item.label() + b" NIL"
    if item.size_only:
        return item.label() + b" %d" % (len(data),)
    if item.begin is not None and item.length is not None:
        data = data[item.begin : item.begin + item.length]
    prefix = b"~" if b"\0" in data else b""
    return item.label() + b" " + prefix + b"{%d}\r\n%s" % (len(data), data)


def _closing_parenthesis(result: tuple[Any, bytes]) -> tuple[Any, bytes]:
    """The literal of C{UTF8 (~{n}...)}, its closing parenthesis read."""
    data, rest = result
    if not rest.startswith(b")"):
        raise IMAPSyntaxError("UTF8 (literal8) needs its closing parenthesis")
    return data, rest[1:]


def _user(server: LabIMAPServer, cmd: bytes, rest: bytes | None) -> str | None:
    """
    Who the session is (or, at LOGIN, says it is), for faults to match.
    """
    address = getattr(server.account, "address", None)
    if isinstance(address, str):
        return address
    if cmd == b"LOGIN" and rest and not rest.startswith(b"{"):
        try:
            return imap4.splitQuoted(rest)[0].decode("utf-8", "replace")
        except (IndexError, imap4.MismatchedQuoting):
            return None
    return None


def _ascii_bytes(error: BaseException) -> bytes:
    return str(error).encode("ascii", "backslashreplace")


def _checked_mailbox(
    result: tuple[bytes, bytes], utf8: bool = False
) -> tuple[str, bytes]:
    raw, rest = result
    name = _decode_mailbox_name(raw, utf8)
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
    return _decode_mailbox_name(raw, utf8), rest


class LabIMAPFactory(ServerFactory):
    """
    Build L{LabIMAPServer}s and hold their settings.

    @param portal: logs users in; its realm must give C{IAccount} avatars
        (L{LabRealm}).
    @param tls: server TLS options for STARTTLS; L{None} offers no STARTTLS.
    @param allow_plaintext_auth: allow LOGIN and AUTHENTICATE without TLS
        (only sensible on loopback).
    @param implicit_tls: the factory is served behind TLS (an C{ssl:}
        endpoint), so logging in is allowed from the start.
    @param reactor: schedules timeouts and polls; the global one by default.
    @param max_message_size: the largest APPEND accepted.
    @param max_line_length: the longest command line accepted.
    @param login_timeout: seconds a connection may idle before logging in.
    @param idle_timeout: seconds a logged-in connection may idle (IDLE
        included: clients renew it every 29 minutes).
    @param poll_interval: seconds between looks at the disk for changes by
        other processes while a client is in IDLE; 0 turns that off.
    @param faults: the faults asked at each command (L{None}: none).
    """

    log = Logger()

    def __init__(
        self,
        *,
        portal: Portal,
        tls: Any | None,
        allow_plaintext_auth: bool = False,
        implicit_tls: bool = False,
        reactor: IReactorTime | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        login_timeout: float = DEFAULT_LOGIN_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        faults: Faults | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        if max_message_size < 1 or max_line_length < 1024:
            raise ValueError(
                "max_message_size must be positive, max_line_length >= 1024"
            )
        self.portal = portal
        self.tls = tls
        self.allow_plaintext_auth = allow_plaintext_auth
        self.implicit_tls = implicit_tls
        self.reactor: IReactorTime = reactor
        self.max_message_size = max_message_size
        self.max_line_length = max_line_length
        self.login_timeout = login_timeout
        self.idle_timeout = idle_timeout
        self.poll_interval = poll_interval
        self.faults = faults
        if tls is None and not implicit_tls and not allow_plaintext_auth:
            self.log.warn(
                "IMAP has neither TLS nor plaintext login allowed: nobody can log in"
            )

    def buildProtocol(self, addr: IAddress | None) -> LabIMAPServer:  # type: ignore[override]
        return LabIMAPServer(self)


__all__ = ["LabIMAPFactory", "LabIMAPServer"]
