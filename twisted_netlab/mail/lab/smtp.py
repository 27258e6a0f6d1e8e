"""
The mail lab's SMTP server: Twisted's ESMTP, made strict.

Mail is accepted only for existing users of the lab's local domains (550
for everything else: the lab never relays).  C{SIZE} is advertised and
enforced while the message arrives (552, nothing stored).  C{STARTTLS} is
offered when there is a certificate; C{AUTH PLAIN} and C{AUTH LOGIN} are
offered and accepted only on a TLS connection, or on a loopback connection
when plaintext authentication is explicitly allowed; with C{require_auth}
no mail is accepted before C{AUTH}.  Each message is on disk (the
C{deliver} callable has returned) before the 250 reply to C{DATA}.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from email.utils import formatdate
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer
from twisted.internet.address import UNIXAddress
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.mail import smtp
from twisted.mail._cred import LOGINCredentials, PLAINCredentials
from twisted.mail._except import IllegalClientResponse
from twisted.mail.interfaces import IMessageDelivery, IMessageSMTP
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_netlab.addresses import is_loopback
from twisted_netlab.mail.lab.users import (
    BadAddress,
    UsersChecker,
    UsersFile,
    UsersFileError,
    normalize_address,
    normalize_domain,
)

#: The largest message accepted unless configured otherwise (bytes).
DEFAULT_MAX_MESSAGE_SIZE = 10 * 1024 * 1024
#: Recipients accepted per message (RFC 5321 asks for at least 100).
MAX_RECIPIENTS = 100
#: Failed AUTH attempts before the connection is closed.
MAX_AUTH_FAILURES = 3
#: Seconds a client may stay silent before it is disconnected.
DEFAULT_TIMEOUT = 300

#: Stores one message for one address, durably, and returns its UID (or a
#: Deferred of it); raises (or fails) when the message could not be stored.
Deliver = Callable[[str, bytes], Any]

log = Logger()


class _LoginCredentials(LOGINCredentials):
    """
    AUTH LOGIN, with the usual C{Username:} and C{Password:} prompts.
    """

    def __init__(self) -> None:
        super().__init__()
        self.challenges = [b"Password:", b"Username:"]


class _MessageBody:
    """
    The lines of the message being received, shared by its recipients'
    L{LabMessage}s so that a message for many recipients is held once.
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.size = 0
        self.writer: LabMessage | None = None
        self._lines: list[bytes] | None = []
        self._joined: bytes | None = None

    def add(self, message: LabMessage, line: bytes) -> None:
        if self.writer is None:
            self.writer = message
        if message is not self.writer or self._lines is None:
            return
        self.size += len(line) + 2
        if self.size > self.max_size:
            self.discard()
            raise smtp.SMTPServerError(
                552,
                b"Message too big: the limit is %d bytes; nothing was stored"
                % (self.max_size,),
            )
        self._lines.append(line)

    def data(self) -> bytes:
        if self._joined is None:
            assert self._lines is not None, "the message was discarded"
            self._lines.append(b"")
            self._joined = b"\r\n".join(self._lines)
            self._lines = None
        return self._joined

    def discard(self) -> None:
        self._lines = None
        self._joined = None


@implementer(IMessageSMTP)
class LabMessage:
    """
    One recipient's copy of a message arriving by SMTP: the lab's
    C{Received:} header and the shared body, stored through C{deliver} at
    the end of C{DATA}, with CRLF line ends.
    """

    def __init__(
        self, deliver: Deliver, address: str, header: bytes, body: _MessageBody
    ) -> None:
        self.deliver = deliver
        self.address = address
        self.header = header
        self.body = body

    def lineReceived(self, line: bytes) -> None:
        self.body.add(self, line)

    def eomReceived(self) -> defer.Deferred[Any]:
        data = self.header + b"\r\n" + self.body.data()
        return defer.maybeDeferred(self.deliver, self.address, data)

    def connectionLost(self) -> None:
        self.body.discard()


@implementer(IMessageDelivery)
class LabDelivery:
    """
    Where mail goes: only to existing users of the local domains.

    One per connection; C{sender} is the authenticated address (after
    C{AUTH}), or L{None}.
    """

    def __init__(self, factory: LabSMTPFactory, sender: str | None) -> None:
        self.factory = factory
        self.sender = sender

    def receivedHeader(self, helo: Any, origin: Any, recipients: Any) -> None:
        """
        Nothing: each L{LabMessage} carries its own C{Received:} header (see
        L{validateTo}), so that the size limit counts the client's bytes only.
        """
        return None

    def validateFrom(self, helo: Any, origin: smtp.Address) -> smtp.Address:
        return origin

    def validateTo(self, user: smtp.User) -> Callable[[], LabMessage]:
        address = self.factory.local_recipient(user.dest)
        protocol = user.protocol
        header = self.factory.received_header(protocol, user, self.sender)
        deliver = self.factory.deliver

        def message() -> LabMessage:
            return LabMessage(deliver, address, header, protocol.message_body)

        return message


@implementer(IRealm)
class LabSMTPRealm:
    """
    Gives an authenticated SMTP client a L{LabDelivery} for its address.
    """

    def __init__(self, factory: LabSMTPFactory) -> None:
        self.factory = factory

    def requestAvatar(
        self, avatarId: bytes | tuple[()], mind: object, *interfaces: Any
    ) -> tuple[Any, LabDelivery, Callable[[], None]]:
        if IMessageDelivery not in interfaces or not isinstance(avatarId, bytes):
            raise NotImplementedError("the SMTP realm gives users IMessageDelivery")
        sender = avatarId.decode("ascii")
        return IMessageDelivery, LabDelivery(self.factory, sender), lambda: None


class LabESMTP(smtp.ESMTP):
    """
    One SMTP connection to the lab; its settings are its factory's.
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
        self.delivery: LabDelivery = LabDelivery(factory, None)
        self.message_body = _MessageBody(factory.max_message_size)
        self._tls_starting = False
        self._auth_failures = 0

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

    def connectionMade(self) -> None:
        super().connectionMade()
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
        }
        if self.canStartTLS and not self.startedTLS:
            ext[b"STARTTLS"] = None
        if self.auth_allowed and not self.authenticated:
            ext[b"AUTH"] = [b"PLAIN", b"LOGIN"]
        return ext

    # -- lines ---------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        if self._tls_starting:
            # Whatever followed STARTTLS in the same read came before the TLS
            # handshake: it was injected in plaintext, and is dropped.
            self._buffer = b""
            self._tls_starting = False

    def lineReceived(self, line: bytes) -> Any:
        if self._tls_starting:
            return None
        return super().lineReceived(line)

    def lookupMethod(self, command: bytes | str) -> Any:
        # Twisted decodes the command as ASCII: junk would raise and drop
        # the connection with a traceback; it is an unknown command instead.
        if isinstance(command, bytes):
            if not command.isalpha():
                return None
            command = command.decode("ascii")
        return super().lookupMethod(command)

    def lineLengthExceeded(self, line: bytes) -> None:
        if self.mode is smtp.DATA:
            self.message_body.discard()
        self.mode = smtp.COMMAND
        self._buffer = b""
        self.sendCode(500, b"Line too long; closing the connection")
        self._transport.loseConnection()

    # -- commands ------------------------------------------------------------

    def do_HELO(self, rest: bytes) -> None:
        if not rest:
            self.sendCode(501, b"Syntax: HELO hostname")
            return
        super().do_HELO(rest)

    def do_EHLO(self, rest: bytes) -> None:
        # Twisted's own do_EHLO fails on peers without a host (UNIX sockets).
        if not rest:
            self.sendCode(501, b"Syntax: EHLO hostname")
            return
        peer = _describe(self._transport.getPeer()).encode("ascii", "replace")
        self._helo = (rest, peer)
        self._from = None
        self._to = []
        self.sendCode(
            250, self.host + b" Hello " + peer + b"\n" + self.listExtensions()
        )

    def do_NOOP(self, rest: bytes) -> None:
        self.sendCode(250, b"OK")

    def do_VRFY(self, rest: bytes) -> None:
        self.sendCode(252, b"Cannot VRFY; send mail and see")

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
                self.sendCode(530, b"Must issue a STARTTLS command first")
            return
        match = self.mail_re.match(rest)
        if match and match.group("opts"):
            problem = self._check_mail_parameters(match.group("opts"))
            if problem is not None:
                self.sendCode(*problem)
                return
        super().do_MAIL(rest)

    def _check_mail_parameters(self, options: bytes) -> tuple[int, bytes] | None:
        for option in options.split():
            name, _, value = option.partition(b"=")
            name = name.upper()
            if name == b"SIZE":
                if not value.isdigit():
                    return 501, b"Syntax: SIZE=number"
                if int(value) > self.factory.max_message_size:
                    return 552, (
                        b"Message too big: the limit is %d bytes"
                        % (self.factory.max_message_size,)
                    )
            elif name == b"BODY":
                if value.upper() not in (b"7BIT", b"8BITMIME"):
                    return 501, b"Syntax: BODY=7BIT or BODY=8BITMIME"
            else:
                return 555, b"MAIL FROM parameter not recognized: " + name[:40]
        return None

    def do_RCPT(self, rest: bytes) -> None:
        if len(self._to) >= MAX_RECIPIENTS:
            self.sendCode(452, b"Too many recipients")
            return
        super().do_RCPT(rest)

    def do_DATA(self, rest: bytes) -> None:
        self.message_body = _MessageBody(self.factory.max_message_size)
        super().do_DATA(rest)

    def ext_STARTTLS(self, rest: bytes) -> None:
        if self.ctx is not None and self.canStartTLS and not self.startedTLS:
            # RFC 3207: forget everything said before the handshake.
            self._tls_starting = True
            self._helo = (None, self._helo[1] if self._helo else None)
            self._from = None
            self._to = []
            self.authenticated = False
            self.delivery = LabDelivery(self.factory, None)
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
            self.sendCode(421, b"Too many failed authentication attempts")
            self._transport.loseConnection()

    def _cbAuthenticated(self, loginInfo: Any) -> Any:
        result = super()._cbAuthenticated(loginInfo)
        log.info(
            "SMTP: {peer} authenticated as {address}",
            peer=_describe(self._transport.getPeer()),
            address=self.delivery.sender,
        )
        return result

    # -- end of message ------------------------------------------------------

    def _messageHandled(self, resultList: Any) -> None:
        if not isinstance(resultList, list):
            self.sendCode(250, b"OK")
            return
        failures = [result for ok, result in resultList if not ok]
        for failure in failures:
            log.failure("SMTP: a message could not be stored", failure)
        if failures:
            self.sendCode(
                451,
                b"Local error: the message was not stored for %d of %d recipients"
                % (len(failures), len(resultList)),
            )
            return
        uids = b" ".join(
            b"%d" % (uid,)
            for ok, uid in resultList
            if isinstance(uid, int) and not isinstance(uid, bool)
        )
        self.sendCode(250, b"Message stored" + (b" as UID " + uids if uids else b""))


class LabSMTPFactory(ServerFactory[LabESMTP]):
    """
    The lab's SMTP service: settings shared by its connections.

    @param users: who may log in, and who receives mail.
    @param domains: the local domains; mail for any other is refused.
    @param deliver: stores one message for one user (C{MailStore.deliver}).
    @param tls: server TLS options for STARTTLS; L{None} offers no STARTTLS.
    @param implicit_tls: the factory is served behind TLS (C{--smtps}).
    @param allow_plaintext_auth: allow AUTH without TLS from loopback peers.
    @param require_auth: accept no mail before AUTH.
    @param hostname: the name the server greets with.
    @param checker: checks passwords (default: a L{UsersChecker} on C{users}).
    @param reactor: schedules the idle timeout (default: the global reactor).
    """

    protocol = LabESMTP
    noisy = False

    def __init__(
        self,
        *,
        users: UsersFile,
        domains: Iterable[str],
        deliver: Deliver,
        tls: Any = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        implicit_tls: bool = False,
        allow_plaintext_auth: bool = False,
        require_auth: bool = False,
        hostname: str = "localhost",
        checker: ICredentialsChecker | None = None,
        timeout: int = DEFAULT_TIMEOUT,
        reactor: Any = None,
    ) -> None:
        self.users = users
        self.domains = frozenset(normalize_domain(d) for d in domains)
        self.deliver = deliver
        self.tls = tls
        self.max_message_size = max_message_size
        self.implicit_tls = implicit_tls
        self.allow_plaintext_auth = allow_plaintext_auth
        self.require_auth = require_auth
        self.hostname = hostname
        self.timeout = timeout
        self.reactor = reactor
        self.portal = Portal(
            LabSMTPRealm(self),
            [checker if checker is not None else UsersChecker(users)],
        )

    def buildProtocol(self, addr: Any) -> LabESMTP:
        return LabESMTP(self)

    def local_recipient(self, address: smtp.Address) -> str:
        """
        The lab user C{address} names.

        @raise smtp.SMTPBadRcpt: 550 for another domain (no relaying) or an
            unknown user; 451 if the users file cannot be read.
        """
        try:
            domain = address.domain.decode("ascii").lower()
            text = normalize_address(str(address))
        except (UnicodeDecodeError, BadAddress):
            raise smtp.SMTPBadRcpt(address, 550, "No such user here") from None
        if domain not in self.domains:
            raise smtp.SMTPBadRcpt(address, 550, "Relaying denied: not a local domain")
        try:
            known = text in self.users
        except UsersFileError:
            log.failure("SMTP: cannot read the users file")
            raise smtp.SMTPBadRcpt(
                address, 451, "Local error: try again later"
            ) from None
        if not known:
            raise smtp.SMTPBadRcpt(address, 550, "No such user here")
        return text

    def received_header(
        self, protocol: LabESMTP, user: smtp.User, sender: str | None
    ) -> bytes:
        """
        The C{Received:} header for one recipient's copy (RFC 5321 4.4,
        with the RFC 3848 protocol names), CRLF-folded.
        """
        helo = user.helo[0] if user.helo and user.helo[0] else b"unknown"
        peer = _describe(protocol._transport.getPeer()).encode("ascii", "replace")
        with_ = (
            b"ESMTP"
            + (b"S" if protocol.secure else b"")
            + (b"A" if sender is not None else b"")
        )
        date = formatdate(time.time(), localtime=False).encode("ascii")
        return (
            b"Received: from "
            + _printable(helo)
            + b" ("
            + peer
            + b")\r\n\tby "
            + protocol.host
            + b" (netlab mail lab) with "
            + with_
            + b"\r\n\tfor <"
            + bytes(user.dest)
            + b">; "
            + date
        )


def _describe(address: object) -> str:
    host = getattr(address, "host", None)
    if isinstance(host, str):
        return f"[{host}]"
    if isinstance(address, UNIXAddress):
        return "unix socket"
    return str(address)


def _printable(text: bytes) -> bytes:
    return bytes(c if 33 <= c < 127 and c not in b"()\\" else 63 for c in text[:255])
