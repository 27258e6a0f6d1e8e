"""
The mail lab's IMAP4rev1 server: Twisted's C{IMAP4Server} over the lab's
accounts (L{LabRealm}), with the lab's policies.

What this adds to, or fixes in, C{twisted.mail.imap4.IMAP4Server}:
  - LOGIN and AUTHENTICATE (PLAIN, LOGIN) only once TLS is on (STARTTLS or
    implicit TLS) unless plaintext is explicitly allowed; LOGINDISABLED and
    no AUTH= before. Twisted allows LOGIN when no STARTTLS is configured and
    AUTHENTICATE always. Commands pipelined behind STARTTLS are discarded.
  - Bounds: command lines (C{max_line_length}), string literals (Twisted's
    4096), APPEND literals (C{max_message_size}), negative literal sizes,
    commands queued behind a long FETCH; connections idle too long are
    closed.
  - FETCH is rendered here: partial fetches (C{BODY[]<0.100>}), sections of
    parts, C{\\Seen} set by C{BODY[]}, C{BODYSTRUCTURE}/C{ENVELOPE} from the
    stored bytes, and streaming with backpressure, fast for thousands of
    messages.
  - Mailbox names are checked (canonical modified UTF-7, no way out of the
    user's Maildir) before any command uses them: a NO otherwise.
  - SELECT reports PERMANENTFLAGS, UIDNEXT and UNSEEN; NOOP, CHECK and IDLE
    report changes made by other sessions and programs (EXPUNGE included);
    IDLE is told at once of deliveries in this process.
"""

from __future__ import annotations

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
from twisted_netlab.mail.lab.account import LabMailbox, LabMessage
from twisted_netlab.mail.lab.maildir import (
    SYSTEM_FLAGS,
    MailStoreError,
    MessageGone,
    validate_mailbox_name,
)
from twisted_netlab.mail.lab.message import (
    Section,
    format_internal_date,
    serialize,
)

DEFAULT_MAX_LINE_LENGTH = 65536
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
DEFAULT_LOGIN_TIMEOUT = 60.0
DEFAULT_IDLE_TIMEOUT = 30 * 60.0
DEFAULT_POLL_INTERVAL = 10.0
# Commands a client may queue behind a FETCH that is still being sent.
_MAX_QUEUED_COMMANDS = 1000
# Bytes of FETCH responses gathered before one write.
_FETCH_CHUNK = 256 * 1024


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


def _decode_mailbox_name(raw: bytes | str) -> str:
    """
    Decode a mailbox name sent by a client, refusing what is not canonical
    modified UTF-7 (RFC 3501 section 5.1.3): 8-bit bytes, C{&} sequences that
    do not decode, or that encode ASCII or would be encoded otherwise.
    """
    if isinstance(raw, str):
        raw = raw.encode("utf-8")
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
    ) -> None:
        self.server = server
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
            and any(_sets_seen(item) for item in query)
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
                items.append(_render_item(item, message))
            if flags_changed and not self._wants_flags:
                items.append(_render_flags(message))
        except MessageGone:
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
    return b"FLAGS (" + " ".join(message.getFlags()).encode() + b")"


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

    def lookupCommand(self, cmd: bytes) -> Any:
        if not cmd.isalpha() or not cmd.isascii():
            return None
        return super().lookupCommand(cmd)

    # --- literals ------------------------------------------------------------------

    def _stringLiteral(self, size: int) -> Any:
        if size < 0:
            raise imap4.IllegalClientResponse("Negative literal size")
        return super()._stringLiteral(size)

    def _fileLiteral(self, size: int) -> Any:
        if size < 0:
            raise imap4.IllegalClientResponse("Negative literal size")
        if size > self.factory.max_message_size:
            raise imap4.IllegalOperation(
                f"[TOOBIG] message larger than {self.factory.max_message_size} bytes"
            )
        return super()._fileLiteral(size)

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
        cap[b"NAMESPACE"] = None
        cap[b"IDLE"] = None
        return cap

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
        imap4.IMAP4Server.arg_astring,
        imap4.IMAP4Server.arg_finalastring,
    )

    def do_AUTHENTICATE(self, tag: bytes, args: bytes) -> None:
        if not self._may_authenticate():
            self.sendNegativeResponse(
                tag, b"[PRIVACYREQUIRED] AUTHENTICATE is disabled until STARTTLS"
            )
            return
        super().do_AUTHENTICATE(tag, args)

    unauth_AUTHENTICATE = _command(do_AUTHENTICATE, imap4.IMAP4Server.arg_atom)

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
            return result.addCallback(_checked_mailbox)
        return _checked_mailbox(result)

    def arg_final_mailbox(self, line: bytes) -> Any:
        return self.arg_mailbox(line, final=True)

    def arg_pattern(self, line: bytes) -> Any:
        """
        A LIST reference or pattern: only its encoding is checked.
        """
        result = self.arg_astring(line)
        if isinstance(result, defer.Deferred):
            return result.addCallback(_decoded_argument)
        return _decoded_argument(result)

    auth_SELECT = _command(imap4.IMAP4Server._selectWork, arg_mailbox, 1, b"SELECT")
    select_SELECT = auth_SELECT
    auth_EXAMINE = _command(imap4.IMAP4Server._selectWork, arg_mailbox, 0, b"EXAMINE")
    select_EXAMINE = auth_EXAMINE
    auth_DELETE = _command(imap4.IMAP4Server.do_DELETE, arg_final_mailbox)
    select_DELETE = auth_DELETE
    auth_RENAME = _command(imap4.IMAP4Server.do_RENAME, arg_mailbox, arg_final_mailbox)
    select_RENAME = auth_RENAME
    auth_SUBSCRIBE = _command(imap4.IMAP4Server.do_SUBSCRIBE, arg_final_mailbox)
    select_SUBSCRIBE = auth_SUBSCRIBE
    auth_UNSUBSCRIBE = _command(imap4.IMAP4Server.do_UNSUBSCRIBE, arg_final_mailbox)
    select_UNSUBSCRIBE = auth_UNSUBSCRIBE
    auth_LIST = _command(
        imap4.IMAP4Server._listWork, arg_pattern, arg_pattern, 0, b"LIST"
    )
    select_LIST = auth_LIST
    auth_LSUB = _command(
        imap4.IMAP4Server._listWork, arg_pattern, arg_pattern, 1, b"LSUB"
    )
    select_LSUB = auth_LSUB
    auth_STATUS = _command(
        imap4.IMAP4Server.do_STATUS,
        arg_mailbox,
        imap4.IMAP4Server.arg_plist,
    )
    select_STATUS = auth_STATUS
    auth_APPEND = _command(
        imap4.IMAP4Server.do_APPEND,
        arg_mailbox,
        imap4.IMAP4Server.opt_plist,
        imap4.IMAP4Server.opt_datetime,
        imap4.IMAP4Server.arg_literal,
    )
    select_APPEND = auth_APPEND
    select_COPY = _command(
        imap4.IMAP4Server.do_COPY,
        imap4.IMAP4Server.arg_seqset,
        arg_final_mailbox,
    )

    def do_CREATE(self, tag: bytes, name: bytes | str) -> None:
        try:
            decoded = _decode_mailbox_name(name)
            stripped = decoded[:-1] if decoded.endswith(".") else decoded
            validate_mailbox_name(stripped)
        except (BadMailboxName, MailStoreError) as e:
            self.sendNegativeResponse(tag, b"Illegal mailbox name: " + _ascii_bytes(e))
            return
        super().do_CREATE(tag, decoded)

    auth_CREATE = _command(do_CREATE, imap4.IMAP4Server.arg_finalastring)
    select_CREATE = auth_CREATE

    def _cbSelectWork(
        self, mbox: LabMailbox | None, cmdName: bytes, tag: bytes
    ) -> None:
        if mbox is None:
            self.sendNegativeResponse(tag, b"No such mailbox")
            return
        flags = " ".join(SYSTEM_FLAGS).encode()
        self.sendUntaggedResponse(b"FLAGS (" + flags + b")")
        permanent = flags if mbox.isWriteable() else b""
        self.sendPositiveResponse(
            None, b"[PERMANENTFLAGS (" + permanent + b")] Limited"
        )
        self.sendUntaggedResponse(b"%d EXISTS" % (mbox.getMessageCount(),))
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
        mode = b"READ-WRITE" if mbox.isWriteable() else b"READ-ONLY"
        mbox.addListener(self)
        self.mbox = mbox
        self.state = "select"
        self.sendPositiveResponse(tag, b"[" + mode + b"] " + cmdName + b" completed")

    def _cbStatusGotMailbox(
        self, mbox: LabMailbox | None, tag: bytes, mailbox: str, names: list[str]
    ) -> None:
        if mbox is None:
            self.sendNegativeResponse(tag, b"No such mailbox")
            return
        try:
            status = mbox.requestStatus(names)
        except imap4.IllegalQueryError as e:
            self.sendBadResponse(tag, _ascii_bytes(e))
            return
        items = b" ".join(b"%s %d" % (k.encode(), v) for k, v in status.items())
        self.sendUntaggedResponse(
            b"STATUS " + serialize(mailbox.encode("imap4-utf-7")) + b" (" + items + b")"
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
        d.addCallback(self._appended, tag)
        d.addErrback(self._append_failed, tag)

    def _cbCopySelectedMailbox(
        self, mbox: LabMailbox | None, tag: bytes, messages: Any, mailbox: str, uid: int
    ) -> None:
        if mbox is None:
            # (Twisted's version fails here, mixing str and bytes.)
            self.sendNegativeResponse(tag, b"[TRYCREATE] No such mailbox")
            return
        super()._cbCopySelectedMailbox(mbox, tag, messages, mailbox, uid)

    def sendContinuationRequest(self, msg: bytes | None = b"Ready") -> None:
        # RFC 3501: "+" SP, even with an empty challenge (Twisted sends "+").
        self.sendLine(b"+ " + (msg or b""))

    def _appended(self, uid: int, tag: bytes) -> None:
        self.sendPositiveResponse(tag, b"APPEND completed")

    def _append_failed(self, failure: Failure, tag: bytes) -> None:
        if failure.check(ValueError):
            reason = _ascii_bytes(failure.value)  # type: ignore[arg-type]
            self.sendBadResponse(tag, b"APPEND failed: " + reason)
        else:
            self.factory.log.failure("APPEND failed", failure)
            self.sendNegativeResponse(
                tag, b"APPEND failed: could not store the message"
            )

    def arg_searchkeys(self, line: bytes) -> Any:
        try:
            return super().arg_searchkeys(line)
        except imap4.IllegalClientResponse:
            raise
        except Exception as e:
            raise imap4.IllegalClientResponse(f"bad search: {e}") from None

    def do_SEARCH(
        self, tag: bytes, charset: bytes | None, query: list[Any], uid: int = 0
    ) -> None:
        if charset is not None and charset.upper() not in (b"US-ASCII", b"UTF-8"):
            self.sendNegativeResponse(
                tag, b"[BADCHARSET (US-ASCII UTF-8)] Unknown charset"
            )
            return
        try:
            found = self.mbox.search(query, uid=bool(uid))
        except imap4.IllegalQueryError as e:
            self.sendBadResponse(tag, b"SEARCH failed: " + _ascii_bytes(e))
            return
        ids = [self.mbox.getUID(seq) if uid else seq for seq in found]
        line = b" ".join(b"%d" % (i,) for i in ids)
        self.sendUntaggedResponse(b"SEARCH" + (b" " + line if line else b""))
        self.sendPositiveResponse(tag, b"SEARCH completed")

    select_SEARCH = _command(
        do_SEARCH,
        imap4.IMAP4Server.opt_charset,
        arg_searchkeys,
    )

    _STORE_MODES = {
        b"FLAGS",
        b"FLAGS.SILENT",
        b"+FLAGS",
        b"+FLAGS.SILENT",
        b"-FLAGS",
        b"-FLAGS.SILENT",
    }

    def do_STORE(
        self, tag: bytes, messages: Any, mode: bytes, flags: list[bytes], uid: int = 0
    ) -> None:
        if mode.upper() not in self._STORE_MODES:
            self.sendBadResponse(tag, b"STORE needs FLAGS, +FLAGS or -FLAGS")
            return
        if not self.mbox.isWriteable():
            self.sendNegativeResponse(tag, b"[READ-ONLY] The mailbox is read-only")
            return
        super().do_STORE(tag, messages, mode, flags, uid=uid)

    select_STORE = _command(
        do_STORE,
        imap4.IMAP4Server.arg_seqset,
        imap4.IMAP4Server.arg_atom,
        imap4.IMAP4Server.arg_flaglist,
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
        try:
            return super().arg_fetchatt(line)
        except imap4.IllegalClientResponse:
            raise
        except Exception as e:
            raise imap4.IllegalClientResponse(f"bad FETCH items: {e}") from None

    def do_FETCH(
        self, tag: bytes, messages: Any, query: list[Any], uid: int = 0
    ) -> None:
        if not query:
            self.sendPositiveResponse(tag, b"FETCH completed")
            return
        results = self.mbox.fetch(messages, uid=bool(uid))
        _FetchResponder(self, tag, results, query, bool(uid)).start()

    select_FETCH = _command(do_FETCH, imap4.IMAP4Server.arg_seqset, arg_fetchatt)


def _ascii_bytes(error: BaseException) -> bytes:
    return str(error).encode("ascii", "backslashreplace")


def _checked_mailbox(result: tuple[bytes, bytes]) -> tuple[str, bytes]:
    raw, rest = result
    name = _decode_mailbox_name(raw)
    try:
        return validate_mailbox_name(name), rest
    except MailStoreError as e:
        raise BadMailboxName(
            str(e).encode("ascii", "backslashreplace").decode()
        ) from None


def _decoded_argument(result: tuple[bytes, bytes]) -> tuple[str, bytes]:
    raw, rest = result
    return _decode_mailbox_name(raw), rest


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
        if tls is None and not implicit_tls and not allow_plaintext_auth:
            self.log.warn(
                "IMAP has neither TLS nor plaintext login allowed: nobody can log in"
            )

    def buildProtocol(self, addr: IAddress | None) -> LabIMAPServer:  # type: ignore[override]
        return LabIMAPServer(self)


__all__ = ["LabIMAPFactory", "LabIMAPServer"]
