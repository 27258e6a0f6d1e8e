"""
The lab's SMTP protocol and its factory: Twisted's ESMTP, made strict.

C{SIZE} is advertised and enforced while the message arrives (552, nothing
stored); past C{max_recipients} recipients, 452.  C{PIPELINING},
C{ENHANCEDSTATUSCODES} (every 2xx, 4xx and 5xx reply but the greeting and
the HELO/EHLO answers carries an RFC 3463 code), C{SMTPUTF8}, C{CHUNKING}
(C{BDAT}) and C{8BITMIME} are offered.  C{STARTTLS} is offered when there
is a certificate; C{AUTH PLAIN} and C{AUTH LOGIN} are offered and accepted
only on a TLS connection, or on a loopback connection when plaintext
authentication is explicitly allowed; with C{require_auth} no mail is
accepted before C{AUTH}.

Where mail goes is L{routing}'s rule, and how a message is held and stored
for its recipients is L{delivery}'s (see L{twisted_netlab.mail.lab.smtp}).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.portal import Portal
from twisted.internet import defer
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.mail import smtp
from twisted.mail._cred import LOGINCredentials, PLAINCredentials
from twisted.mail._except import IllegalClientResponse
from twisted.python.failure import Failure

from twisted_netlab.addresses import is_loopback
from twisted_netlab.mail.lab.faults import (
    Faults,
    smtp_command_hook,
    smtp_fault,
    smtp_message_fault,
)
from twisted_netlab.mail.lab.smtp.delivery import (
    Deliver,
    LabDelivery,
    LabSMTPRealm,
    Transaction,
)
from twisted_netlab.mail.lab.smtp.replies import with_enhanced_code
from twisted_netlab.mail.lab.smtp.routing import (
    client_address,
    describe,
    local_recipient,
    received_header,
)
from twisted_netlab.mail.lab.smtp.syntax import (
    BDAT_ARGUMENTS,
    MAIL_ARGUMENTS,
    RCPT_ARGUMENTS,
    UTF8Address,
    mail_parameters,
)
from twisted_netlab.mail.lab.stats import RuntimeStats
from twisted_netlab.mail.lab.store.maildir import Envelope
from twisted_netlab.mail.lab.users import (
    UsersChecker,
    UsersFile,
    normalize_address,
    normalize_domain,
)

#: The largest message accepted unless configured otherwise (bytes).
DEFAULT_MAX_MESSAGE_SIZE = 10 * 1024 * 1024
#: Recipients accepted per message unless configured otherwise (RFC 5321
#: 4.5.3.1.8 asks for at least 100).
MAX_RECIPIENTS = 100
#: Failed AUTH attempts before the connection is closed.
MAX_AUTH_FAILURES = 3
#: Seconds a client may stay silent before it is disconnected.
DEFAULT_TIMEOUT = 300

log = Logger()


class _LoginCredentials(LOGINCredentials):
    """
    AUTH LOGIN, with the usual C{Username:} and C{Password:} prompts.
    """

    def __init__(self) -> None:
        super().__init__()
        self.challenges = [b"Password:", b"Username:"]


class LabESMTP(smtp.ESMTP):
    """
    One SMTP connection to the lab; its settings are its factory's.

    Commands are read one line at a time: while a message is being stored,
    whatever the client pipelined after it waits (unread, and the transport
    paused) until the reply has been sent, and the bytes of a BDAT chunk
    are never read as commands.
    """

    factory: LabSMTPFactory
    noisy = False

    def __init__(self, factory: LabSMTPFactory) -> None:
        super().__init__(
            chal={b"PLAIN": PLAINCredentials, b"LOGIN": _LoginCredentials},
            contextFactory=factory.tls,
        )
        self.factory = factory
        self.portal = factory.portal  # type: ignore[assignment]
        self.host = factory.hostname.encode("idna")
        self.timeout = factory.timeout
        self.delivery: LabDelivery = LabDelivery(factory.local_recipient, None)
        self._smtputf8 = False
        self.transaction = self._new_transaction()
        self._tls_starting = False
        self._auth_failures = 0
        self._bare_replies = False
        #: Bytes of a BDAT chunk still to come, and where they go.
        self._chunk_left = 0
        self._chunk: _Chunking | None = None
        self._waiting = False
        self._body_fast = False

    @property
    def _transport(self) -> Any:
        assert self.transport is not None, "not connected"
        return self.transport

    def callLater(self, period: float, func: Callable[[], object]) -> Any:
        reactor = self.factory.reactor
        if reactor is None:
            return super().callLater(period, func)
        return reactor.callLater(period, func)

    # -- connection state ---------------------------------------------------

    def makeConnection(self, transport: Any) -> None:
        self.connected = 1
        self.transport = transport
        if smtp_fault(self, "connect"):
            return  # answered or dropped instead of the greeting
        self.connectionMade()

    def connectionMade(self) -> None:
        self._bare_replies = True
        try:
            super().connectionMade()
        finally:
            self._bare_replies = False
        if self.factory.implicit_tls:
            self.startedTLS = True

    @property
    def secure(self) -> bool:
        """
        Whether the connection is encrypted (STARTTLS done, or implicit TLS).
        """
        return bool(self.startedTLS) or ISSLTransport.providedBy(self.transport)

    @property
    def auth_allowed(self) -> bool:
        """
        Whether C{AUTH} may be used now: over TLS, or over loopback when
        plaintext authentication is allowed.
        """
        return self.secure or (
            self.factory.allow_plaintext_auth and is_loopback(self._transport.getPeer())
        )

    def greeting(self) -> bytes:
        return self.host + b" ESMTP netlab mail lab"

    def extensions(self) -> dict[bytes, list[bytes] | None]:
        ext: dict[bytes, list[bytes] | None] = {
            b"SIZE": [b"%d" % (self.factory.max_message_size,)],
            b"8BITMIME": None,
            b"PIPELINING": None,
            b"ENHANCEDSTATUSCODES": None,
            b"SMTPUTF8": None,
            b"CHUNKING": None,
        }
        if self.canStartTLS and not self.startedTLS:
            ext[b"STARTTLS"] = None
        if self.auth_allowed and not self.authenticated:
            ext[b"AUTH"] = [b"PLAIN", b"LOGIN"]
        return ext

    def sendCode(self, code: int, message: bytes = b"") -> None:
        """
        Send a reply; 2xx, 4xx and 5xx replies carry an RFC 3463 code on
        every line (RFC 2034), but for the greeting and HELO/EHLO.
        """
        lines = message.splitlines() or [b""]
        if not self._bare_replies and code // 100 in (2, 4, 5):
            lines = with_enhanced_code(code, lines)
        # One write for the whole reply: one send, one segment.
        dash, space = b"%03d-" % (code,), b"%03d " % (code,)
        self._transport.writeSequence(
            [dash + line + b"\r\n" for line in lines[:-1]]
            + [space + lines[-1] + b"\r\n"]
        )

    # -- reading: lines, BDAT chunks, waiting for a delivery ------------------

    def dataReceived(self, data: bytes) -> None:
        buffer = self._buffer + data if self._buffer else data
        position = 0
        transport = self._transport
        while position < len(buffer) and not transport.disconnecting:
            if self._chunk_left:
                self.resetTimeout()
                piece = buffer[position : position + self._chunk_left]
                position += len(piece)
                self._chunk_left -= len(piece)
                assert self._chunk is not None
                self._chunk.received(piece, last_piece=not self._chunk_left)
                continue
            if self._waiting:
                break
            if self._body_fast and self.mode is smtp.DATA:
                taken = self._body_block(buffer, position)
                if taken:
                    position += taken
                    continue
            end = buffer.find(b"\r\n", position)
            if end < 0:
                break
            line = buffer[position:end]
            position = end + 2
            if len(line) > self.MAX_LENGTH:
                self._buffer = b""
                self.lineLengthExceeded(line)
                return
            self.lineReceived(line)
            if self._tls_starting:
                # Whatever followed STARTTLS in the same read came before the
                # TLS handshake: it was injected in plaintext, and is dropped.
                self._tls_starting = False
                position = len(buffer)
        self._buffer = buffer[position:]
        if len(self._buffer) > self.MAX_LENGTH and not self._waiting:
            line, self._buffer = self._buffer, b""
            self.lineLengthExceeded(line)

    def lineReceived(self, line: bytes) -> Any:
        if self._tls_starting:
            return None
        if self.mode is smtp.DATA and line == b"." and smtp_message_fault(self):
            return None  # the final dot, faulted: nothing is stored
        return super().lineReceived(line)

    def _body_block(self, buffer: bytes, position: int) -> int:
        """
        Take the whole lines of the message body at C{position} in one go
        (up to the final dot, which is left to L{dataLineReceived}), as the
        line-at-a-time path would: dot-unstuffed, each line at most
        C{MAX_LENGTH}, counted against the size limit.  Returns how many
        bytes were taken (0: none, let the line path go on).
        """
        if buffer.startswith(b".\r\n", position):
            return 0
        end = buffer.find(b"\r\n.\r\n", position)
        if end < 0:
            end = buffer.rfind(b"\r\n", position)
            if end < 0:
                return 0
        block = buffer[position:end]
        lines = block.split(b"\r\n")
        if max(map(len, lines)) > self.MAX_LENGTH:
            return 0  # the line path refuses it
        self.resetTimeout()
        if not self.datafailed:
            if block.startswith(b"."):
                block = block[1:]
            block = block.replace(b"\r\n.", b"\r\n")
            try:
                self.transaction.add_bytes(block, 2)
            except smtp.SMTPServerError as e:
                self.datafailed = e
        return end + 2 - position

    def _wait(self) -> None:
        """
        Read nothing more until L{_resume}: a reply is pending.
        """
        self._waiting = True
        self._transport.pauseProducing()

    def _resume(self) -> None:
        if not self._waiting:
            return
        self._waiting = False
        transport = self._transport
        if transport.disconnecting:
            return
        transport.resumeProducing()
        self.dataReceived(b"")

    def lookupMethod(self, command: bytes | str) -> Any:
        # Twisted decodes the command as ASCII: junk would raise and drop
        # the connection with a traceback; it is an unknown command instead.
        if isinstance(command, bytes):
            if not command.isalpha():
                return None
            command = command.decode("ascii")
        method = super().lookupMethod(command)
        if method is not None and self.factory.faults:
            return smtp_command_hook(self, command, method)
        return method

    def lineLengthExceeded(self, line: bytes) -> None:
        if self.mode is smtp.DATA:
            self.transaction.discard()
        self.mode = smtp.COMMAND
        self._buffer = b""
        self.sendCode(500, b"5.5.6 Line too long; closing the connection")
        self._transport.loseConnection()

    # -- commands ------------------------------------------------------------

    def do_UNKNOWN(self, rest: bytes) -> None:
        self.sendCode(500, b"5.5.1 Command not recognized")

    def sendSyntaxError(self) -> None:
        self.sendCode(500, b"5.5.2 Syntax error")

    def do_HELO(self, rest: bytes) -> None:
        if not rest:
            self.sendCode(501, b"Syntax: HELO hostname")
            return
        self._reset_transaction()
        self._bare_replies = True
        try:
            super().do_HELO(rest)
        finally:
            self._bare_replies = False

    def do_EHLO(self, rest: bytes) -> None:
        # Twisted's own do_EHLO fails on peers without a host (UNIX sockets).
        if not rest:
            self.sendCode(501, b"Syntax: EHLO hostname")
            return
        peer = describe(self._transport.getPeer()).encode("ascii", "replace")
        self._helo = (rest, peer)
        self._reset_transaction()
        self._bare_replies = True
        try:
            self.sendCode(
                250, self.host + b" Hello " + peer + b"\n" + self.listExtensions()
            )
        finally:
            self._bare_replies = False

    def do_RSET(self, rest: bytes) -> None:
        self._reset_transaction()
        self.sendCode(250, b"2.0.0 Reset")

    def do_NOOP(self, rest: bytes) -> None:
        self.sendCode(250, b"OK")

    def do_VRFY(self, rest: bytes) -> None:
        self.sendCode(252, b"2.5.0 Cannot VRFY; send mail and see")

    def _reset_transaction(self) -> None:
        self._from = None
        self._to = []
        self._smtputf8 = False
        if self._chunk is not None:
            self._chunk.transaction.discard()
            self._chunk = None

    def do_MAIL(self, rest: bytes) -> None:
        if not self._helo or not self._helo[0]:
            self.sendCode(503, b"Send HELO or EHLO first")
            return
        if self._from:
            self.sendCode(503, b"Only one sender per message, please")
            return
        if self.factory.require_auth and not self.authenticated:
            if self.auth_allowed:
                self.sendCode(530, b"Authentication required")
            else:
                self.sendCode(530, b"5.7.0 Must issue a STARTTLS command first")
            return
        self._to = []
        match = MAIL_ARGUMENTS.match(rest)
        if not match:
            self.sendCode(501, b"5.5.4 Syntax: MAIL FROM:<address>")
            return
        smtputf8 = False
        if match.group("opts"):
            problem = mail_parameters(
                match.group("opts"), self.factory.max_message_size
            )
            if isinstance(problem, tuple):
                self.sendCode(*problem)
                return
            smtputf8 = problem
        address = self._address(match.group("path"), smtputf8)
        if address is None:
            return
        self._smtputf8 = smtputf8
        validated = defer.maybeDeferred(self.validateFrom, self._helo, address)
        validated.addCallbacks(self._cbFromValidate, self._ebFromValidate)

    def _address(self, path: bytes, smtputf8: bool) -> smtp.Address | None:
        """
        The address of a MAIL FROM or RCPT TO path, or L{None} once the
        client has been told why not.
        """
        if not path.isascii() and not smtputf8:
            self.sendCode(
                553, b"5.6.7 Non-ASCII address: use the SMTPUTF8 parameter of MAIL"
            )
            return None
        try:
            if smtputf8:
                return UTF8Address(path, self.host)
            return smtp.Address(path, self.host)
        except smtp.AddressError as e:
            self.sendCode(553, b"5.1.3 " + str(e).encode("ascii", "replace")[:200])
            return None

    def do_RCPT(self, rest: bytes) -> None:
        if not self._from:
            self.sendCode(503, b"5.5.1 Must have sender before recipient")
            return
        if len(self._to) >= self.factory.max_recipients:
            self.sendCode(452, b"4.5.3 Too many recipients")
            return
        match = RCPT_ARGUMENTS.match(rest)
        if not match:
            self.sendCode(501, b"5.5.4 Syntax: RCPT TO:<address>")
            return
        if match.group("opts"):
            self.sendCode(555, b"5.5.4 RCPT TO parameters are not recognized")
            return
        address = self._address(match.group("path"), self._smtputf8)
        if address is None:
            return
        user = smtp.User(address, self._helo, self, self._from)
        d = defer.maybeDeferred(self.validateTo, user)
        d.addCallbacks(self._cbToValidate, self._ebToValidate, callbackArgs=(user,))

    def do_DATA(self, rest: bytes) -> None:
        if self._chunk is not None:
            self.sendCode(503, b"5.5.1 DATA cannot follow BDAT")
            return
        self.transaction = self._new_transaction()
        self._smtputf8 = False
        self._body_fast = False
        super().do_DATA(rest)

    def do_BDAT(self, rest: bytes) -> None:
        """
        A chunk of the message (RFC 3030): its bytes are always read, even
        when the command is refused, so that they never become commands.
        """
        match = BDAT_ARGUMENTS.match(rest)
        if not match:
            self.sendCode(501, b"5.5.4 Syntax: BDAT size [LAST]; closing")
            self._transport.loseConnection()
            return
        size = int(match.group(1))
        last = match.group(2) is not None
        if self._chunk is None:
            self._chunk = _Chunking(self)
        self._chunk.begin(size, last)
        self._chunk_left = size
        if not size:
            self._chunk.received(b"", last_piece=True)

    def ext_STARTTLS(self, rest: bytes) -> None:
        if self.ctx is not None and self.canStartTLS and not self.startedTLS:
            # RFC 3207: forget everything said before the handshake.
            self._tls_starting = True
            self._helo = (None, self._helo[1] if self._helo else None)
            self._reset_transaction()
            self.authenticated = False
            self.delivery = LabDelivery(self.factory.local_recipient, None)
        super().ext_STARTTLS(rest)

    def ext_AUTH(self, rest: bytes) -> None:
        if self.authenticated:
            self.sendCode(503, b"Already authenticated")
        elif self._from is not None:
            self.sendCode(503, b"AUTH is not allowed during a mail transaction")
        elif not self.auth_allowed:
            self.sendCode(
                538, b"Encryption required for requested authentication mechanism"
            )
        elif not rest.split():
            self.sendCode(501, b"Syntax: AUTH mechanism [initial-response]")
        else:
            super().ext_AUTH(rest)

    def state_AUTH(self, response: bytes | None) -> None:
        try:
            super().state_AUTH(response)
        except IllegalClientResponse:
            self.challenger = None
            self.mode = smtp.COMMAND
            self.sendCode(501, b"Malformed authentication response")
            self._count_auth_failure()

    def _ebAuthenticated(self, reason: Failure) -> None:
        super()._ebAuthenticated(reason)
        self._count_auth_failure()

    def _count_auth_failure(self) -> None:
        self._auth_failures += 1
        if self._auth_failures >= MAX_AUTH_FAILURES:
            self.sendCode(421, b"4.7.0 Too many failed authentication attempts")
            self._transport.loseConnection()

    def _cbAuthenticated(self, loginInfo: Any) -> Any:
        result = super()._cbAuthenticated(loginInfo)
        log.info(
            "SMTP: {peer} authenticated as {address}",
            peer=describe(self._transport.getPeer()),
            address=self.delivery.sender,
        )
        return result

    # -- end of message ------------------------------------------------------

    def _new_transaction(self) -> Transaction:
        """
        A transaction for the next message, with this connection's limits.
        """
        return Transaction(
            self.factory.max_message_size, self._smtputf8, self._store_message
        )

    def _store_message(
        self, transaction: Transaction, body: bytes
    ) -> defer.Deferred[Any]:
        """
        Store C{body} once per mailbox of C{transaction}'s recipients, each
        copy under its C{Received:} header, with the envelope.
        """
        factory = self.factory
        copies = {
            address: factory.received_header(
                self,
                members[0].user,
                members[0].sender,
                for_=members[0].user.dest if len(members) == 1 else None,
                smtputf8=transaction.smtputf8,
            )
            + b"\r\n"
            for address, members in transaction.mailboxes().items()
        }
        first = transaction.members[0]
        helo = first.user.helo[0] if first.user.helo else None
        envelope = Envelope(
            mail_from=_text(bytes(first.user.orig)),
            rcpt_to=tuple(_text(bytes(m.user.dest)) for m in transaction.members),
            client=client_address(self._transport.getPeer()),
            tls=self.secure,
            auth_user=first.sender,
            received=time.time(),
            helo=None if helo is None else _text(bytes(helo)),
            smtputf8=transaction.smtputf8,
        )
        return defer.maybeDeferred(factory.deliver, body, copies, envelope)

    def _ebToValidate(self, failure: Failure) -> None:
        self._count_rejected()
        super()._ebToValidate(failure)

    def _count_rejected(self) -> None:
        """A recipient or a message was refused: count it (Mailpit's SMTPRejected)."""
        stats = self.factory.stats
        if stats is not None:
            stats.record_rejected()

    def dataLineReceived(self, line: bytes) -> Any:
        if line == b"." and self.datafailed:
            self._count_rejected()
        if line != b"." or self.datafailed:
            result = super().dataLineReceived(line)
            # Past the first line (where Twisted tells a header from a body)
            # whole blocks of lines can be taken at once.
            self._body_fast = self.mode is smtp.DATA
            return result
        self._replied = False
        result = super().dataLineReceived(line)
        if not self._replied:
            # The message is being stored: hold what was pipelined after it.
            self._wait()
        return result

    state_DATA = dataLineReceived

    _replied = True

    def _messageHandled(self, resultList: Any) -> None:
        self._replied = True
        try:
            self._reply_stored(resultList)
        finally:
            self._resume()

    def _reply_stored(self, resultList: Any) -> None:
        if not isinstance(resultList, list):
            self.sendCode(250, b"OK")
            return
        failures = [result for ok, result in resultList if not ok]
        for failure in failures:
            log.failure("SMTP: a message could not be stored", failure)
        if failures:
            self._count_rejected()
            self.sendCode(
                451,
                b"4.3.0 Local error: the message was not stored; nothing was kept",
            )
            return
        uids: list[bytes] = []
        for ok, result in resultList:
            if ok and isinstance(result, Mapping):
                uids.extend(
                    b"%d" % (uid,)
                    for uid in result.values()
                    if isinstance(uid, int) and not isinstance(uid, bool)
                )
        self.sendCode(
            250,
            b"2.0.0 Message stored" + (b" as UID " + b" ".join(uids) if uids else b""),
        )


class _Chunking:
    """
    A message arriving by BDAT chunks (RFC 3030) on a L{LabESMTP}.
    """

    def __init__(self, protocol: LabESMTP) -> None:
        self.protocol = protocol
        self.transaction = protocol._new_transaction()
        self.error: tuple[int, bytes] | None = None
        self.size = 0
        self.last = False
        if protocol._from is None or not protocol._to:
            self.error = (503, b"5.5.1 BDAT needs MAIL FROM and RCPT TO first")
            return
        protocol.transaction = self.transaction
        for _, message in protocol._to:
            try:
                message()
            except smtp.SMTPServerError as e:
                self.error = (e.code, e.resp)
                return

    def begin(self, size: int, last: bool) -> None:
        self.size = size
        self.last = last

    def received(self, data: bytes, *, last_piece: bool) -> None:
        if self.error is None and data:
            try:
                self.transaction.add_bytes(data)
            except smtp.SMTPServerError as e:
                self.error = (e.code, e.resp)
        if not last_piece:
            return
        protocol = self.protocol
        if not self.last:
            if self.error is not None:
                protocol.sendCode(*self.error)
            else:
                protocol.sendCode(250, b"2.0.0 %d octets received" % (self.size,))
            return
        # The last chunk: the message is complete (or refused).
        sender, recipients = str(protocol._from), [str(u.dest) for u, _ in protocol._to]
        protocol._chunk = None
        protocol._from = None
        protocol._to = []
        protocol._smtputf8 = False
        if self.error is not None:
            self.transaction.discard()
            protocol._count_rejected()
            protocol.sendCode(*self.error)
            return
        if smtp_message_fault(protocol, sender, recipients):
            self.transaction.discard()  # faulted at the message stage
            return
        body = self.transaction.data(separator=b"")
        protocol._replied = False
        protocol._wait()
        d = self.transaction.deliver(body)
        d.addBoth(lambda result: [(not isinstance(result, Failure), result)])
        d.addCallback(protocol._messageHandled)


class LabSMTPFactory(ServerFactory[LabESMTP]):
    """
    The lab's SMTP service: settings shared by its connections.

    @param users: who may log in, and who receives mail.
    @param domains: the local domains; mail for any other is refused
        (unless C{catch_all}).
    @param deliver: stores one message for its mailboxes (see L{Deliver}).
    @param catch_all: the address that receives all mail not for a lab
        user, at any domain (capture); L{None} refuses such mail.
    @param max_recipients: RCPT TO commands accepted per message (452 past).
    @param tls: server TLS options for STARTTLS; L{None} offers no STARTTLS.
    @param implicit_tls: the factory is served behind TLS (C{--smtps}).
    @param allow_plaintext_auth: allow AUTH without TLS from loopback peers.
    @param require_auth: accept no mail before AUTH.
    @param hostname: the name the server greets with.
    @param checker: checks passwords (default: a L{UsersChecker} on C{users}).
    @param reactor: schedules the idle timeout (default: the global reactor).
    @param faults: the faults asked at each stage (L{None}: none).
    @param stats: counts refused recipients and messages (L{None}: nothing
        is counted).
    """

    protocol = LabESMTP
    noisy = False

    def __init__(
        self,
        *,
        users: UsersFile,
        domains: Iterable[str],
        deliver: Deliver,
        catch_all: str | None = None,
        max_recipients: int = MAX_RECIPIENTS,
        tls: Any = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        implicit_tls: bool = False,
        allow_plaintext_auth: bool = False,
        require_auth: bool = False,
        hostname: str = "localhost",
        checker: ICredentialsChecker | None = None,
        timeout: int = DEFAULT_TIMEOUT,
        reactor: Any = None,
        faults: Faults | None = None,
        stats: RuntimeStats | None = None,
    ) -> None:
        self.users = users
        self.stats = stats
        self.domains = frozenset(normalize_domain(d) for d in domains)
        self.deliver = deliver
        self.catch_all = None if catch_all is None else normalize_address(catch_all)
        self.max_recipients = max_recipients
        self.tls = tls
        self.max_message_size = max_message_size
        self.implicit_tls = implicit_tls
        self.allow_plaintext_auth = allow_plaintext_auth
        self.require_auth = require_auth
        self.hostname = hostname
        self.timeout = timeout
        self.reactor = reactor
        self.faults = faults
        self.portal = Portal(
            LabSMTPRealm(self.local_recipient),
            [checker if checker is not None else UsersChecker(users)],
        )

    def buildProtocol(self, addr: Any) -> LabESMTP:
        return LabESMTP(self)

    def local_recipient(self, address: smtp.Address) -> str:
        """
        The lab user whose INBOX mail for C{address} goes to (see
        L{routing.local_recipient}).
        """
        return local_recipient(
            address, domains=self.domains, users=self.users, catch_all=self.catch_all
        )

    def received_header(
        self,
        protocol: LabESMTP,
        user: smtp.User,
        sender: str | None,
        for_: smtp.Address | None = None,
        smtputf8: bool = False,
    ) -> bytes:
        """
        The C{Received:} header of one mailbox's copy of a message from
        C{user} on C{protocol} (see L{routing.received_header}).
        """
        return received_header(
            helo=user.helo[0] if user.helo else None,
            peer=protocol._transport.getPeer(),
            host=protocol.host,
            secure=protocol.secure,
            authenticated=sender is not None,
            for_=for_,
            smtputf8=smtputf8,
        )


def _text(address: bytes) -> str:
    return address.decode("utf-8", "replace")
