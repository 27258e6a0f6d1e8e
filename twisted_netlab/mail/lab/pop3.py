"""
The mail lab's POP3 server: Twisted's C{twisted.mail.pop3.POP3} over the
same Maildir store as IMAP, with the lab's policies.

What this adds to, or fixes in, Twisted's C{POP3}:
  - STLS (RFC 2595) and implicit TLS; USER, PASS and AUTH only once TLS is
    on unless plaintext is explicitly allowed (Twisted allows them always);
    plaintext pipelined behind STLS is dropped. APOP is refused: the lab
    keeps salted scrypt hashes, from which no APOP digest can be checked, so
    the greeting carries no APOP timestamp.
  - CAPA (RFC 2449) tells the truth: TOP, UIDL, RESP-CODES, AUTH-RESP-CODE,
    PIPELINING, and STLS, USER and SASL PLAIN only while they may be used.
    AUTH PLAIN (RFC 5034), with an initial response or after C{+}.
  - The maildrop is a snapshot of INBOX taken at login (L{LabMaildrop}):
    numbers, sizes and UIDLs stay as listed for the whole session, whatever
    IMAP does meanwhile. UIDLs are Dovecot's default form
    (C{%08Xu%08Xv}: UID then UIDVALIDITY in hex), stable across restarts.
  - DELE marks; only QUIT removes (through the store, so IMAP sessions see
    the EXPUNGE); a connection lost without QUIT changes nothing. RETR marks
    the message C{\\Seen}, applied at QUIT with the deletions, as Dovecot
    does by default (C{pop3_no_flag_updates = no}); TOP does not.
  - STAT, LIST and UIDL leave deleted messages out (Twisted counts them);
    RETR and TOP send CRLF lines, dot-stuffed across chunk boundaries, with
    backpressure (Twisted turns CRLF into CRCRLF and can miss a dot at a
    chunk boundary).
  - Bad input never reaches the log as an error: unknown commands, wrong
    argument counts, bad numbers, over-long lines and garbage each get one
    C{-ERR}, in order with pipelined commands; memory stays bounded (a line
    limit, and reading stops while too many commands wait).
"""

from __future__ import annotations

import binascii
import io
import string
from collections.abc import Callable, Iterator
from typing import Any

from twisted.cred import credentials, error
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer
from twisted.internet.interfaces import (
    IAddress,
    IPushProducer,
    IReactorTime,
    ISSLTransport,
    ITLSTransport,
)
from twisted.internet.protocol import ServerFactory, connectionDone
from twisted.logger import Logger
from twisted.mail import pop3
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_netlab.addresses import describe_address
from twisted_netlab.mail.lab.store.maildir import (
    INBOX,
    Folder,
    MailStore,
    MailStoreError,
    MessageGone,
    crlf_size,
)

#: RFC 2449 allows 255 octets a command; SASL responses may be longer.
DEFAULT_MAX_LINE_LENGTH = 8192
#: RFC 1939: an inactivity autologout timer of at least 10 minutes.
DEFAULT_IDLE_TIMEOUT = 600.0
#: Failed logins before the connection is closed.
DEFAULT_MAX_FAILED_LOGINS = 3
# Lines a client may send ahead while a command is being answered before
# the server stops reading.
_MAX_QUEUED_LINES = 100
# Bytes of a message written at a time.
_CHUNK = 64 * 1024
# Stands in the queue for a line that was too long to keep.
_TOO_LONG = object()
_COMMAND_CHARACTERS = frozenset(string.ascii_letters.encode())

SEEN = "\\Seen"


def uidl_of(uid: int, uidvalidity: int) -> bytes:
    """
    The POP3 unique id of message C{uid} of a folder with C{uidvalidity}:
    Dovecot's default form C{%08Xu%08Xv}.
    """
    return b"%08X%08X" % (uid, uidvalidity)


def to_crlf(data: bytes) -> bytes:
    """
    C{data} with every line ending in CRLF (bare LFs made CRLF).
    """
    if b"\n" in data and data.count(b"\n") != data.count(b"\r\n"):
        return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return data


def pop3_lines(data: bytes) -> bytes:
    """
    A message (or part of one) as POP3 sends it in a multi-line response:
    every line ends with CRLF and lines starting with C{.} get another
    (RFC 1939 section 3); the terminating C{.} line is not included.
    """
    if not data:
        return b""
    data = to_crlf(data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    data = data.replace(b"\r\n.", b"\r\n..")
    if data.startswith(b"."):
        data = b"." + data
    return data


def top_of(data: bytes, lines: int) -> bytes:
    """
    The header of a message (CRLF line ends), the empty line after it, and
    the first C{lines} lines of its body (RFC 1939 TOP). A message with no
    empty line is all header.
    """
    if data.startswith(b"\r\n"):
        end = 2
    else:
        blank = data.find(b"\r\n\r\n")
        if blank < 0:
            return data
        end = blank + 4
    for _ in range(lines):
        if end >= len(data):
            break
        newline = data.find(b"\r\n", end)
        end = len(data) if newline < 0 else newline + 2
    return data[:end]


class MessageDeleted(Exception):
    """
    The message number names a message marked deleted in this session.
    """


@implementer(pop3.IMailbox)
class LabMaildrop:
    """
    One POP3 session's maildrop: the user's INBOX as it was at login.

    Message numbers, sizes and unique ids stay those of the snapshot for the
    whole session, even if IMAP or another POP3 session removes messages
    meanwhile (reading such a message then fails with L{MessageGone}), and
    mail delivered meanwhile waits for the next session (RFC 1939). Its
    messages are held (L{Folder.hold}) until L{logout}: retention pruning
    does not take them from under the session.
    Deletions and C{\\Seen} are applied by L{commit}, at QUIT.

    Indexes here are 0-based, as in L{pop3.IMailbox}; the protocol's message
    numbers are 1-based.
    """

    def __init__(self, folder: Folder) -> None:
        folder.refresh()
        self.folder = folder
        self.uidvalidity = folder.uidvalidity
        self._uids: list[int] = []
        self._sizes: list[int] = []
        for uid in folder.uids():
            try:
                size = folder.size(uid)
                if size is None:
                    size = crlf_size(folder.read(uid))
            except MessageGone:
                continue
            self._uids.append(uid)
            self._sizes.append(size)
        # In use until the session ends: retention pruning leaves them alone.
        folder.hold(self._uids)
        self._held = True
        self._deleted: set[int] = set()
        self._retrieved: set[int] = set()

    # --- what the protocol asks ------------------------------------------------

    def __len__(self) -> int:
        return len(self._uids)

    def check(self, index: int) -> None:
        """
        @raise ValueError: no such message in the snapshot.
        @raise MessageDeleted: it is marked deleted.
        """
        if not 0 <= index < len(self._uids):
            raise ValueError(f"no message {index + 1}")
        if index in self._deleted:
            raise MessageDeleted(f"message {index + 1} is deleted")

    def undeleted(self) -> Iterator[int]:
        """The indexes of the messages not marked deleted, in order."""
        return (i for i in range(len(self._uids)) if i not in self._deleted)

    def size(self, index: int) -> int:
        """The size of message C{index} in octets, with CRLF line ends."""
        return self._sizes[index]

    def total(self) -> tuple[int, int]:
        """How many messages are not marked deleted, and their octets."""
        indexes = list(self.undeleted())
        return len(indexes), sum(self._sizes[i] for i in indexes)

    def uidl(self, index: int) -> bytes:
        """The unique id of message C{index}."""
        return uidl_of(self._uids[index], self.uidvalidity)

    def read(self, index: int) -> bytes:
        """
        The bytes of message C{index} as stored.

        @raise MessageGone: removed since the snapshot.
        """
        return self.folder.read(self._uids[index])

    def retrieved(self, index: int) -> None:
        """Remember to mark message C{index} C{\\Seen} at L{commit}."""
        self._retrieved.add(index)

    def delete(self, index: int) -> None:
        """Mark message C{index} deleted."""
        self._deleted.add(index)

    def reset(self) -> None:
        """Unmark every message marked deleted (RSET)."""
        self._deleted.clear()

    def commit(self) -> int:
        """
        The UPDATE state: mark retrieved messages C{\\Seen} and remove those
        marked deleted, through the store (so that IMAP sessions are told).
        Messages already removed by others are skipped.

        @return: how many messages were marked deleted.
        @raise OSError: the disk refused.
        """
        seen: dict[int, tuple[str, ...]] = {}
        for index in sorted(self._retrieved - self._deleted):
            uid = self._uids[index]
            try:
                flags = self.folder.entry(uid).flags
            except MessageGone:
                continue
            if SEEN not in flags:
                seen[uid] = (*flags, SEEN)
        if seen:
            self.folder.set_flags(seen)
        doomed = [self._uids[i] for i in sorted(self._deleted)]
        if doomed:
            self.folder.remove(doomed)
        return len(doomed)

    def logout(self) -> None:
        """
        The session ended: forget what was marked (nothing more is
        committed) and release the messages for retention pruning.
        """
        self._deleted.clear()
        self._retrieved.clear()
        if self._held:
            self._held = False
            self.folder.release(self._uids)

    # --- pop3.IMailbox, for Twisted's own uses of a maildrop --------------------

    def listMessages(self, index: int | None = None) -> Any:
        if index is None:
            return [0 if i in self._deleted else s for i, s in enumerate(self._sizes)]
        if not 0 <= index < len(self._uids):
            raise ValueError(f"no message {index + 1}")
        return 0 if index in self._deleted else self._sizes[index]

    def getMessage(self, index: int) -> Any:
        self.check(index)
        return io.BytesIO(self.read(index))

    def getUidl(self, index: int) -> bytes:
        if not 0 <= index < len(self._uids):
            raise ValueError(f"no message {index + 1}")
        return self.uidl(index)

    def deleteMessage(self, index: int) -> None:
        self.check(index)
        self.delete(index)

    def undeleteMessages(self) -> None:
        self.reset()

    def sync(self) -> None:
        self.commit()


@implementer(IRealm)
class LabMaildropRealm:
    """
    The realm of the lab's POP3 server: an avatar ID (the login address)
    gets a L{LabMaildrop} of that user's INBOX, made if missing.
    """

    def __init__(self, store: MailStore) -> None:
        self.store = store

    def requestAvatar(  # type: ignore[override]
        self, avatarId: bytes | str, mind: object, *interfaces: Any
    ) -> tuple[Any, LabMaildrop, Callable[[], None]]:
        if pop3.IMailbox not in interfaces:
            raise NotImplementedError("the mail lab's POP3 realm serves maildrops")
        address = avatarId.decode("utf-8") if isinstance(avatarId, bytes) else avatarId
        self.store.ensure_user(address)
        maildrop = LabMaildrop(self.store.folder(address, INBOX))
        return pop3.IMailbox, maildrop, maildrop.logout


@implementer(IPushProducer)
class _MessageSender:
    """
    Write one multi-line response (already dot-stuffed) in chunks, pausing
    while the client does not read, then the terminating C{.} line.
    """

    def __init__(self, server: LabPOP3Server, payload: bytes) -> None:
        self.server = server
        self.payload = memoryview(payload)
        self.done: defer.Deferred[None] = defer.Deferred()
        self._offset = 0
        self._paused = False
        self._producing = False
        self._stopped = False

    def start(self) -> defer.Deferred[None]:
        self.server.transport.registerProducer(self, True)
        self.resumeProducing()
        return self.done

    def pauseProducing(self) -> None:
        self._paused = True

    def stopProducing(self) -> None:
        # The connection is going away: nothing queued behind this runs.
        self.server._closing = True
        if not self._stopped:
            self._stopped = True
            self.done.callback(None)

    def resumeProducing(self) -> None:
        self._paused = False
        if self._producing or self._stopped:
            return
        self._producing = True
        try:
            while not self._paused and not self._stopped:
                if self._offset >= len(self.payload):
                    self._stopped = True
                    transport = self.server.transport
                    transport.unregisterProducer()
                    transport.write(b".\r\n")
                    self.done.callback(None)
                    return
                chunk = self.payload[self._offset : self._offset + _CHUNK]
                self._offset += len(chunk)
                self.server.resetTimeout()
                self.server.transport.write(bytes(chunk))
        finally:
            self._producing = False


class LabPOP3Server(pop3.POP3):
    """
    One POP3 connection to the mail lab; settings come from its
    L{LabPOP3Factory}.
    """

    factory: LabPOP3Factory  # type: ignore[assignment]
    transport: Any
    mbox: LabMaildrop | None
    blocked: list[Any] | None  # type: ignore[assignment]

    #: Commands allowed before login (the AUTHORIZATION state).
    AUTH_CMDS = [b"CAPA", b"USER", b"PASS", b"APOP", b"AUTH", b"STLS", b"QUIT"]
    #: Commands of the TRANSACTION state.
    TRANSACTION_CMDS = [
        b"CAPA",
        b"STAT",
        b"LIST",
        b"UIDL",
        b"RETR",
        b"TOP",
        b"DELE",
        b"NOOP",
        b"RSET",
        b"QUIT",
    ]
    #: How many arguments each command takes: (fewest, most).
    ARGUMENTS = {
        b"CAPA": (0, 0),
        b"USER": (1, 1),
        b"APOP": (2, 2),
        b"AUTH": (0, 2),
        b"STLS": (0, 0),
        b"QUIT": (0, 0),
        b"STAT": (0, 0),
        b"LIST": (0, 1),
        b"UIDL": (0, 1),
        b"RETR": (1, 1),
        b"TOP": (2, 2),
        b"DELE": (1, 1),
        b"NOOP": (0, 0),
        b"RSET": (0, 0),
    }

    def __init__(self, factory: LabPOP3Factory) -> None:
        self.factory = factory
        self.portal = factory.portal  # type: ignore[assignment]
        self.MAX_LENGTH = factory.max_line_length
        self.timeOut = factory.idle_timeout  # type: ignore[assignment]
        self.callLater = factory.reactor.callLater  # type: ignore[assignment]
        self.mbox = None
        self.blocked = None
        self._buffer = b""
        self._discarding = False
        self._paused_reading = False
        self._stls_started = False
        # Counts STLS commands: lines read before one are dropped after it.
        self._tls_epoch = 0
        self._failed_logins = 0
        self._sasl_mechanism: bytes | None = None
        self._closing = False

    # --- connection ------------------------------------------------------------

    def connectionMade(self) -> None:
        self.factory.log.debug(
            "POP3 connection from {peer}",
            peer=describe_address(self.transport.getPeer()),
        )
        # No APOP timestamp in the greeting: APOP cannot be served.
        self.successResponse(b"netlab mail lab POP3 ready")
        self.setTimeout(self.timeOut)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.blocked = None
        self._closing = True
        super().connectionLost(reason)

    def successResponse(self, message: bytes = b"") -> None:
        self.transport.write(b"+OK " + message + b"\r\n" if message else b"+OK\r\n")

    def timeoutConnection(self) -> None:
        self.factory.log.info(
            "Closing POP3 connection from {peer}: idle too long",
            peer=describe_address(self.transport.getPeer()),
        )
        self._closing = True
        self.failResponse(b"Disconnected for inactivity")
        self.transport.loseConnection()

    def tls_active(self) -> bool:
        """Whether this connection is encrypted."""
        return (
            self._stls_started
            or self.factory.implicit_tls
            or ISSLTransport(self.transport, None) is not None
        )

    def _can_start_tls(self) -> bool:
        return self.factory.tls is not None and ITLSTransport.providedBy(self.transport)

    def _may_authenticate(self) -> bool:
        return self.tls_active() or self.factory.allow_plaintext_auth

    # --- lines -----------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        """
        Split lines at LF (a CR before it is dropped); a line longer than
        C{MAX_LENGTH} bytes (its CR included) gets one C{-ERR}, and at most
        that many bytes of an unfinished line are kept.
        """
        if self._closing:
            # QUIT or an error: nothing more is read, or kept.
            self._buffer = b""
            return
        lines = (self._buffer + data).split(b"\n")
        self._buffer = lines.pop()
        epoch = self._tls_epoch
        for line in lines:
            if self._closing:
                self._buffer = b""
                return
            if epoch != self._tls_epoch:
                # STLS: the rest of this read came in plaintext.
                return
            if self._discarding:
                # The end of a line already answered as too long.
                self._discarding = False
                continue
            if len(line) > self.MAX_LENGTH:
                self._line(_TOO_LONG)
                continue
            self._line(line[:-1] if line.endswith(b"\r") else line)
        if self._closing:
            self._buffer = b""
            return
        if epoch != self._tls_epoch:
            return
        if len(self._buffer) > self.MAX_LENGTH:
            self._buffer = b""
            if not self._discarding:
                self._discarding = True
                self._line(_TOO_LONG)

    def _line(self, line: Any) -> None:
        if self.blocked is not None:
            self.blocked.append(line)
            if len(self.blocked) >= _MAX_QUEUED_LINES and not self._paused_reading:
                self._paused_reading = True
                self.transport.pauseProducing()
            return
        self.lineReceived(line)

    def lineReceived(self, line: Any) -> None:
        self.resetTimeout()
        if self._sasl_mechanism is not None:
            self._sasl_response(line)
        elif line is _TOO_LONG:
            self.failResponse(b"Line too long: the limit is %d bytes" % self.MAX_LENGTH)
        else:
            self.state_COMMAND(line)

    def _unblock(self, _: object = None) -> None:
        """
        Answer the lines that waited for the last long operation, until one
        of them starts another.
        """
        waiting = self.blocked or []
        self.blocked = None
        epoch = self._tls_epoch
        while waiting and self.blocked is None and not self._closing:
            self.lineReceived(waiting.pop(0))
            if epoch != self._tls_epoch:
                # STLS: what waited behind it came in plaintext.
                waiting = []
        if self._closing:
            return
        if self.blocked is not None:
            self.blocked.extend(waiting)
        elif self._paused_reading:
            self._paused_reading = False
            self.transport.resumeProducing()

    def _longOperation(self, d: defer.Deferred[Any]) -> defer.Deferred[Any]:
        """
        Queue the lines that arrive until C{d} fires (it never fails: its
        errors were answered), with the idle timer stopped meanwhile.
        """
        self.setTimeout(None)
        self.blocked = []

        def finished(result: object) -> None:
            if self._closing:
                return
            # Not self.timeOut: setTimeout(None) above cleared it.
            self.setTimeout(self.factory.idle_timeout)
            self._unblock()

        return d.addBoth(finished)

    def state_COMMAND(self, line: bytes) -> None:
        """
        Parse one command line and run it; anything wrong with it gets one
        C{-ERR} (Twisted's logs a traceback for most of it).
        """
        command, _, rest = line.partition(b" ")
        command = command.upper()
        if not command or not set(command) <= _COMMAND_CHARACTERS or len(command) > 4:
            self.failResponse(b"Unknown command")
            return
        if self.mbox is None:
            if command not in self.AUTH_CMDS:
                if command in self.TRANSACTION_CMDS:
                    self.failResponse(b"Log in first: " + command)
                else:
                    self.failResponse(b"Unknown command: " + command)
                return
        elif command not in self.TRANSACTION_CMDS:
            if command in self.AUTH_CMDS:
                self.failResponse(b"Already logged in: " + command)
            else:
                self.failResponse(b"Unknown command: " + command)
            return
        if command == b"PASS":
            # The password is the rest of the line, spaces and all.
            self.processCommand(command, rest)
            return
        args = rest.split()
        fewest, most = self.ARGUMENTS[command]
        if not fewest <= len(args) <= most:
            self.failResponse(b"Wrong number of arguments for " + command)
            return
        self.processCommand(command, *args)

    def processCommand(self, command: bytes, *args: bytes) -> Any:
        handler = getattr(self, "do_" + command.decode("ascii"))
        try:
            return handler(*args)
        except Exception:
            self.factory.log.failure("POP3 {command} failed", command=command)
            self.failResponse(b"[SYS/TEMP] Internal server error")
            return None

    # --- the AUTHORIZATION state -----------------------------------------------

    def listCapabilities(self) -> list[bytes]:
        caps = [
            b"TOP",
            b"UIDL",
            b"RESP-CODES",
            b"AUTH-RESP-CODE",
            b"PIPELINING",
            b"IMPLEMENTATION netlab",
        ]
        if self.mbox is None:
            if self._can_start_tls() and not self.tls_active():
                caps.append(b"STLS")
            if self._may_authenticate():
                caps.append(b"USER")
                caps.append(b"SASL PLAIN")
        return caps

    def do_CAPA(self) -> None:
        lines = [b"+OK Capability list follows", *self.listCapabilities(), b"."]
        self.transport.write(b"\r\n".join(lines) + b"\r\n")

    def do_STLS(self) -> None:
        if self.tls_active():
            self.failResponse(b"TLS is already active")
            return
        if not self._can_start_tls():
            self.failResponse(b"TLS not available")
            return
        # Whatever the client sent after STLS was sent in plaintext: an
        # attacker's injection (CVE-2011-0411 and friends). Drop it.
        self.blocked = None
        self._buffer = b""
        self._discarding = False
        self._tls_epoch += 1
        self._userIs = None
        self.successResponse(b"Begin TLS negotiation now")
        self.transport.startTLS(self.factory.tls)
        self._stls_started = True

    def _plaintext_refused(self) -> bool:
        if self._may_authenticate():
            return False
        self.failResponse(
            b"[AUTH] Plaintext authentication disallowed on non-secure "
            b"connections: use STLS"
        )
        return True

    def do_USER(self, user: bytes) -> None:
        if self._plaintext_refused():
            return
        self._userIs = user
        self.successResponse(b"Send PASS")

    def do_PASS(self, password: bytes) -> None:
        if self._plaintext_refused():
            return
        user, self._userIs = self._userIs, None
        if user is None:
            self.failResponse(b"USER first")
            return
        self._login(credentials.UsernamePassword(user, password), user)

    def do_APOP(self, user: bytes, digest: bytes) -> None:
        self.failResponse(
            b"[AUTH] APOP is not supported: use USER/PASS or AUTH PLAIN over TLS"
        )

    def do_AUTH(
        self, mechanism: bytes | None = None, initial: bytes | None = None
    ) -> None:
        if self._plaintext_refused():
            return
        if mechanism is None:
            self.transport.write(b"+OK SASL mechanisms follow\r\nPLAIN\r\n.\r\n")
            return
        if mechanism.upper() != b"PLAIN":
            self.failResponse(b"[AUTH] Unsupported SASL mechanism")
            return
        if initial is None:
            self._sasl_mechanism = b"PLAIN"
            self.transport.write(b"+ \r\n")
            return
        self._sasl_plain(b"" if initial == b"=" else initial)

    def _sasl_response(self, line: Any) -> None:
        self._sasl_mechanism = None
        if line is _TOO_LONG:
            self.failResponse(b"[AUTH] SASL response too long")
        elif line.strip() == b"*":
            self.failResponse(b"[AUTH] Authentication cancelled")
        else:
            self._sasl_plain(line.strip())

    def _sasl_plain(self, encoded: bytes) -> None:
        try:
            decoded = binascii.a2b_base64(encoded, strict_mode=True)
        except binascii.Error:
            self.failResponse(b"[AUTH] Invalid base64 in the SASL response")
            return
        parts = decoded.split(b"\0")
        if len(parts) != 3 or not parts[1] or parts[0] not in (b"", parts[1]):
            self.failResponse(b"[AUTH] Invalid SASL PLAIN response")
            return
        _, user, password = parts
        self._login(credentials.UsernamePassword(user, password), user)

    def _login(self, creds: Any, user: bytes) -> None:
        assert self.portal is not None
        d = self.portal.login(creds, None, pop3.IMailbox)
        d.addCallbacks(self._logged_in, self._login_failed, (user,), None, (user,))
        self._longOperation(d)

    def _logged_in(self, result: tuple[Any, LabMaildrop, Any], user: bytes) -> None:
        if self._closing:
            result[2]()
            return
        _, self.mbox, self._onLogout = result
        count, octets = self.mbox.total()
        self.factory.log.info(
            "POP3 login of {user} from {peer}",
            user=user.decode("utf-8", "replace"),
            peer=describe_address(self.transport.getPeer()),
        )
        self.successResponse(b"Logged in: %d messages (%d octets)" % (count, octets))

    def _login_failed(self, failure: Failure, user: bytes) -> None:
        if self._closing:
            return
        if not failure.check(error.UnauthorizedLogin, error.LoginFailed):
            self.factory.log.failure("POP3 login failed", failure)
            self.failResponse(b"[SYS/TEMP] Cannot log in now, try again later")
            return
        self._failed_logins += 1
        self.factory.log.info(
            "POP3 login failed for {user!r} from {peer}",
            user=user.decode("utf-8", "replace"),
            peer=describe_address(self.transport.getPeer()),
        )
        if self._failed_logins >= self.factory.max_failed_logins:
            self.failResponse(b"[AUTH] Authentication failed; too many attempts")
            self._closing = True
            self.transport.loseConnection()
            return
        self.failResponse(b"[AUTH] Authentication failed")

    # --- the TRANSACTION state -------------------------------------------------

    def _message(self, number: bytes) -> int | None:
        """
        The index of message C{number} of the maildrop, or L{None} once the
        client was told why there is none.
        """
        assert self.mbox is not None
        if not number.isdigit() or not number.isascii() or len(number) > 9:
            self.failResponse(b"Invalid message number: " + number[:20])
            return None
        index = int(number) - 1
        try:
            self.mbox.check(index)
        except ValueError:
            self.failResponse(b"There is no message %d" % (index + 1))
            return None
        except MessageDeleted:
            self.failResponse(b"Message %d is deleted" % (index + 1))
            return None
        return index

    def do_STAT(self) -> None:
        assert self.mbox is not None
        self.successResponse(b"%d %d" % self.mbox.total())

    def do_LIST(self, number: bytes | None = None) -> None:
        mbox = self.mbox
        assert mbox is not None
        if number is not None:
            index = self._message(number)
            if index is not None:
                self.successResponse(b"%d %d" % (index + 1, mbox.size(index)))
            return
        count, octets = mbox.total()
        lines = [b"+OK %d messages (%d octets)\r\n" % (count, octets)]
        lines.extend(b"%d %d\r\n" % (i + 1, mbox.size(i)) for i in mbox.undeleted())
        lines.append(b".\r\n")
        self.transport.writeSequence(lines)

    def do_UIDL(self, number: bytes | None = None) -> None:
        mbox = self.mbox
        assert mbox is not None
        if number is not None:
            index = self._message(number)
            if index is not None:
                self.successResponse(b"%d %s" % (index + 1, mbox.uidl(index)))
            return
        lines = [b"+OK Unique ids follow\r\n"]
        lines.extend(b"%d %s\r\n" % (i + 1, mbox.uidl(i)) for i in mbox.undeleted())
        lines.append(b".\r\n")
        self.transport.writeSequence(lines)

    def _send(self, index: int, lines: int | None) -> Any:
        mbox = self.mbox
        assert mbox is not None
        try:
            data = mbox.read(index)
        except MessageGone:
            self.failResponse(
                b"[SYS/PERM] Message %d was removed by another client" % (index + 1)
            )
            return None
        if lines is None:
            mbox.retrieved(index)
            self.successResponse(b"%d octets" % mbox.size(index))
        else:
            data = top_of(to_crlf(data), lines)
            self.successResponse(b"Top of message %d follows" % (index + 1))
        return self._longOperation(_MessageSender(self, pop3_lines(data)).start())

    def do_RETR(self, number: bytes) -> Any:
        index = self._message(number)
        if index is not None:
            return self._send(index, None)
        return None

    def do_TOP(self, number: bytes, count: bytes) -> Any:
        index = self._message(number)
        if index is None:
            return None
        if not count.isdigit() or not count.isascii() or len(count) > 9:
            self.failResponse(b"Invalid line count: " + count[:20])
            return None
        return self._send(index, int(count))

    def do_DELE(self, number: bytes) -> None:
        assert self.mbox is not None
        index = self._message(number)
        if index is not None:
            self.mbox.delete(index)
            self.successResponse(b"Message %d deleted" % (index + 1))

    def do_NOOP(self) -> None:
        self.successResponse(b"")

    def do_RSET(self) -> None:
        assert self.mbox is not None
        self.mbox.reset()
        self.successResponse(b"%d messages (%d octets)" % self.mbox.total())

    def do_QUIT(self) -> None:
        self._closing = True
        mbox = self.mbox
        if mbox is None:
            self.successResponse(b"Bye")
            self.transport.loseConnection()
            return
        try:
            deleted = mbox.commit()
        except (OSError, MailStoreError) as e:
            self.factory.log.error(
                "POP3 QUIT could not update the maildrop: {error}", error=str(e)
            )
            self.failResponse(b"[SYS/TEMP] Some deleted messages were not removed")
        else:
            self.successResponse(b"Bye: %d messages deleted" % deleted)
        finally:
            self.transport.loseConnection()


class LabPOP3Factory(ServerFactory):
    """
    Build L{LabPOP3Server}s and hold their settings.

    @param portal: logs users in; its realm must give C{pop3.IMailbox}
        avatars (L{LabMaildropRealm}).
    @param tls: server TLS options for STLS; L{None} offers no STLS.
    @param allow_plaintext_auth: allow USER/PASS and AUTH without TLS (only
        sensible on loopback).
    @param implicit_tls: the factory is served behind TLS (POP3S), so
        logging in is allowed from the start.
    @param reactor: schedules timeouts; the global one by default.
    @param max_line_length: the longest command line accepted.
    @param idle_timeout: seconds a connection may stay silent.
    @param max_failed_logins: failed logins before the connection closes.
    """

    log = Logger()
    noisy = False

    def __init__(
        self,
        *,
        portal: Portal,
        tls: Any | None,
        allow_plaintext_auth: bool = False,
        implicit_tls: bool = False,
        reactor: IReactorTime | None = None,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        max_failed_logins: int = DEFAULT_MAX_FAILED_LOGINS,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        if max_line_length < 512:
            raise ValueError("max_line_length must be at least 512")
        self.portal = portal
        self.tls = tls
        self.allow_plaintext_auth = allow_plaintext_auth
        self.implicit_tls = implicit_tls
        self.reactor: IReactorTime = reactor
        self.max_line_length = max_line_length
        self.idle_timeout = idle_timeout
        self.max_failed_logins = max_failed_logins
        if tls is None and not implicit_tls and not allow_plaintext_auth:
            self.log.warn(
                "POP3 has neither TLS nor plaintext login allowed: nobody can log in"
            )

    def buildProtocol(self, addr: IAddress | None) -> LabPOP3Server:  # type: ignore[override]
        return LabPOP3Server(self)


__all__ = [
    "LabMaildrop",
    "LabMaildropRealm",
    "LabPOP3Factory",
    "LabPOP3Server",
    "pop3_lines",
    "top_of",
    "uidl_of",
]
