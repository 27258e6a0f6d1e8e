"""
The ESMTP client behind L{twisted_netlab.mail.send.send_message}.

L{MessageSender} is Twisted's L{smtp.ESMTPClient} (EHLO, STARTTLS, AUTH,
MAIL, RCPT, DATA) with what C{send_message} promises on top: TLS required
unless the caller chose otherwise, no password without TLS, SMTPUTF8 and
8BITMIME honoured, every recipient's reply kept, one-line errors, a timeout
on every step, and a transcript with the credentials masked.

Twisted's own L{smtp.ESMTPSenderFactory} is not used: it reports through
C{ClientFactory} callbacks that endpoints never call, retries on its own and
accepts only ASCII addresses.  The envelope, the message's bytes and the
result come from L{twisted_netlab.mail.outgoing}; this module never imports
the API built on it.  Importing it imports L{twisted.mail.smtp}, which
installs the global reactor.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import Message
from io import BytesIO
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import ClientFactory, connectionDone
from twisted.mail import smtp
from twisted.mail._cred import LOGINAuthenticator
from twisted.mail.interfaces import IClientAuthentication
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_netlab.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    NetlabError,
    ServerRefused,
    TLSFailed,
)
from twisted_netlab.mail.outgoing import (
    Envelope,
    RecipientOutcome,
    SendResult,
    header_block,
    message_bytes,
    needs_smtputf8,
    raw_message_bytes,
)

_LINE_START_DOT = re.compile(rb"^\.", re.MULTILINE)
_MASK = b"********"


def _text(resp: bytes | str | None) -> str:
    """
    A server reply's text on one line.
    """
    if isinstance(resp, bytes):
        resp = resp.decode("utf-8", "replace")
    return " ".join((resp or "").split())


class _Mailbox(smtp.Address):
    """
    An envelope address passed on as given, UTF-8 included.

    Twisted's L{smtp.Address} takes only ASCII; L{smtp.quoteaddr} writes an
    C{Address} instance as C{<bytes(address)>}, which is how an SMTPUTF8
    address reaches C{RCPT TO} through Twisted's own state machine.
    """

    def __init__(self, address: str) -> None:
        self.address = address

    def __bytes__(self) -> bytes:
        return self.address.encode("utf-8")

    def __str__(self) -> str:
        return self.address


@implementer(IClientAuthentication)
class _Plain:
    """
    SASL PLAIN as RFC 4616 writes it, without an authorization identity
    (Twisted's sends one, then retries without it on failure).
    """

    def __init__(self, user: bytes) -> None:
        self.user = user

    def getName(self) -> bytes:
        return b"PLAIN"

    def challengeResponse(self, secret: bytes, chal: object) -> bytes:
        return b"\0" + self.user + b"\0" + secret


class MessageSender(smtp.ESMTPClient):
    """
    Send the factory's message on one connection and report the outcome to
    the factory when the connection closes.
    """

    # SMTPClient's line log would keep the AUTH lines, password included.
    debug = False
    factory: MessageSenderFactory
    transport: Any

    def __init__(self, factory: MessageSenderFactory) -> None:
        secret = None if factory.password is None else factory.password.encode()
        super().__init__(secret, factory.starttls_options, factory.local_hostname)
        self.factory = factory
        self.timeout = factory.timeout  # type: ignore[assignment]
        self.requireTransportSecurity = factory.tls != "none"
        self.requireAuthentication = factory.username is not None
        self.heloFallback = factory.tls == "none" and factory.username is None
        if factory.username is not None:
            user = factory.username.encode()
            self.registerAuthenticator(_Plain(user))
            self.registerAuthenticator(LOGINAuthenticator(user))
        self._extensions: dict[bytes, bytes | None] = {}
        self._data = b""
        self._heard = False
        self._in_auth = False
        self._result: SendResult | None = None
        self._error: NetlabError | None = None

    # -- the transcript -----------------------------------------------------

    def _show(self, side: str, line: bytes) -> None:
        if self.factory.transcript is not None:
            self.factory.transcript(f"{side}: {line.decode('utf-8', 'replace')}")

    def sendLine(self, line: bytes) -> None:
        shown = line
        if line[:5].upper() == b"AUTH ":
            self._in_auth = True
            words = line.split(b" ", 2)
            shown = b" ".join(words[:2] + [_MASK] * (len(words) > 2))
        elif self._in_auth:
            shown = _MASK
        self._show("C", shown)
        super().sendLine(line)

    def lineReceived(self, line: bytes) -> Any:
        self._heard = True
        self._show("S", line)
        if line[3:4] != b"-" and not line.startswith(b"334"):
            self._in_auth = False
        return super().lineReceived(line)

    # -- the session ----------------------------------------------------------

    def connectionMade(self) -> None:
        self.callLater = self.factory.reactor.callLater  # type: ignore[method-assign]
        super().connectionMade()

    def tryTLS(self, code: int, resp: bytes, items: dict[bytes, bytes | None]) -> None:
        self._extensions = items
        super().tryTLS(code, resp, items)

    def esmtpState_starttls(self, code: int, resp: bytes) -> None:
        if self.factory.transcript is not None:
            self.factory.transcript("-- starting TLS")
        super().esmtpState_starttls(code, resp)

    def esmtpTLSFailed(self, code: int = -1, resp: bytes | None = None) -> None:
        # Twisted replaces the server's reply with a text of its own.
        self.sendError(
            TLSFailed(f"{self.factory.server} refused STARTTLS: {code} {_text(resp)}")
        )

    def authenticate(
        self, code: int, resp: bytes, items: dict[bytes, bytes | None]
    ) -> None:
        if (
            self.secret is not None
            and not self._tlsMode
            and not self.factory.allow_plaintext_auth
        ):
            self.sendError(
                AuthenticationFailed("refusing to send the password without TLS")
            )
            return
        super().authenticate(code, resp, items)

    def _esmtpState_plainAuth(self, code: int, resp: bytes) -> None:
        # Twisted retries a refused AUTH PLAIN without an authorization
        # identity; _Plain never sends one, so the refusal is final.
        self.esmtpAUTHDeclined(code, resp)

    def smtpState_from(self, code: int, resp: bytes) -> None:
        """
        Send C{MAIL FROM} with the parameters the message needs.
        """
        try:
            params, self._data = self.factory.prepare(self._extensions)
        except NetlabError as e:
            self.sendError(e)
            return
        sender = self.factory.envelope.sender.encode("utf-8")
        self._failresponse = self.smtpTransferFailed
        self._expected = [250]
        self._okresponse = self.smtpState_to
        self.sendLine(
            b"MAIL FROM:<" + sender + b">" + b"".join(b" " + p for p in params)
        )

    def getMailTo(self) -> list[_Mailbox]:
        return [_Mailbox(r) for r in self.factory.envelope.recipients]

    def getMailData(self) -> BytesIO:
        return BytesIO(self._data)

    def smtpState_data(self, code: int, resp: bytes) -> None:
        self._show("C", b"<message, %d bytes>" % (len(self._data),))
        super().smtpState_data(code, resp)

    def transformChunk(self, chunk: bytes) -> bytes:
        # The data is already CRLF-ended and dot-stuffed as a whole: Twisted's
        # per-chunk stuffing misses a dot that starts a chunk.
        self.resetTimeout()
        return chunk

    def smtpState_msgSent(self, code: int, resp: bytes | str) -> None:
        """
        Every recipient has been answered, and the data too if any recipient
        was accepted: record the outcome and say goodbye.
        """
        replies = self.toAddressesResult
        if not replies:  # MAIL FROM was refused, no recipient was tried
            self.sendError(
                ServerRefused(
                    f"{self.factory.server} refused the sender "
                    f"<{self.factory.envelope.sender}>: {code} {_text(resp)}"
                )
            )
            return
        delivered = bool(self.successAddresses) and code in smtp.SUCCESS
        outcomes = []
        for mailbox, rcpt_code, rcpt_resp in replies:
            if rcpt_code not in smtp.SUCCESS:
                outcome = (False, rcpt_code, _text(rcpt_resp))
            elif delivered:
                outcome = (True, rcpt_code, _text(rcpt_resp))
            else:
                outcome = (False, code, _text(resp))
            outcomes.append(RecipientOutcome(str(mailbox), *outcome))
        reply = f"{code} {_text(resp)}" if self.successAddresses else ""
        self._result = SendResult(tuple(outcomes), reply)
        self._disconnectFromServer()

    # -- failures -------------------------------------------------------------

    def sendError(self, exc: Exception) -> None:
        if self._error is None and self._result is None:
            self._error = (
                exc if isinstance(exc, NetlabError) else self.factory.explain(exc, self)
            )
        if isinstance(exc, smtp.SMTPClientError) and exc.isFatal:
            self.transport.loseConnection()
        else:
            self._disconnectFromServer()

    def timeoutConnection(self) -> None:
        if self._error is None and self._result is None:
            self._error = self.factory.timed_out(heard=self._heard)
        self.transport.abortConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        super().connectionLost(reason)
        outcome: SendResult | Failure
        if self._error is not None:
            outcome = Failure(self._error)
        elif self._result is not None:
            outcome = self._result
        else:
            outcome = Failure(self.factory.explain_lost(reason))
        self.factory.finish(outcome)


class MessageSenderFactory(ClientFactory[MessageSender]):
    """
    One message to send and how: L{deferred} fires with the L{SendResult} or
    fails with a L{NetlabError} once the connection is over.

    C{message} is a composed C{Message} (sent as L{message_bytes} makes it)
    or stored bytes, sent unchanged (L{raw_message_bytes}).
    """

    def __init__(
        self,
        *,
        reactor: Any,
        server: str,
        host: str,
        tls: str,
        starttls_options: Any,
        username: str | None,
        password: str | None,
        allow_plaintext_auth: bool,
        timeout: float,
        local_hostname: str | None,
        message: Message | bytes,
        envelope: Envelope,
        transcript: Callable[[str], None] | None,
    ) -> None:
        self.reactor = reactor
        self.server = server
        self.host = host
        self.tls = tls
        self.starttls_options = starttls_options
        self.username = username
        self.password = password
        self.allow_plaintext_auth = allow_plaintext_auth
        self.timeout = timeout
        self.local_hostname = local_hostname or smtp.DNSNAME.decode("ascii")
        self.message = message
        self.envelope = envelope
        self.transcript = transcript
        self.non_ascii_address = needs_smtputf8(message, envelope)
        self.connection: MessageSender | None = None
        self.deferred: Deferred[SendResult] = Deferred(self._cancel)

    def buildProtocol(self, addr: Any) -> MessageSender:
        self.connection = MessageSender(self)
        return self.connection

    def _cancel(self, deferred: Deferred[SendResult]) -> None:
        if self.connection is not None and self.connection.transport is not None:
            self.connection.transport.abortConnection()

    def finish(self, outcome: SendResult | Failure) -> None:
        if not self.deferred.called:
            if isinstance(outcome, Failure):
                self.deferred.errback(outcome)
            else:
                self.deferred.callback(outcome)

    def prepare(
        self, extensions: dict[bytes, bytes | None]
    ) -> tuple[list[bytes], bytes]:
        """
        The C{MAIL FROM} parameters and the dot-stuffed data for a server
        offering C{extensions}.

        @raise ServerRefused: the server cannot take the message.
        """
        params = []
        smtputf8 = self.non_ascii_address is not None
        if smtputf8:
            if b"SMTPUTF8" not in extensions:
                raise ServerRefused(
                    f"{self.server} does not support SMTPUTF8, which the "
                    f"non-ASCII address {self.non_ascii_address} needs"
                )
            params.append(b"SMTPUTF8")
        if isinstance(self.message, bytes):
            # Stored bytes go as they are: 8-bit needs 8BITMIME, and 8-bit
            # headers get SMTPUTF8 where the server has it.
            data = raw_message_bytes(self.message)
            eight_bit_headers = not header_block(data).isascii()
            if eight_bit_headers and not smtputf8 and b"SMTPUTF8" in extensions:
                params.append(b"SMTPUTF8")
        else:
            data = message_bytes(self.message, smtputf8=smtputf8)
        if not data.isascii():
            if b"8BITMIME" in extensions:
                params.append(b"BODY=8BITMIME")
            elif isinstance(self.message, bytes):
                raise ServerRefused(
                    f"the message has 8-bit content and {self.server} does not "
                    "support 8BITMIME (stored bytes are sent unchanged)"
                )
            else:
                data = message_bytes(self.message, smtputf8=smtputf8, eight_bit=False)
                if not data.isascii():
                    raise ServerRefused(
                        f"the message has 8-bit content and {self.server} "
                        "does not support 8BITMIME"
                    )
        if b"SIZE" in extensions:
            limit = extensions[b"SIZE"] or b"0"
            if limit.isdigit() and 0 < int(limit) < len(data):
                raise ServerRefused(
                    f"the message is {len(data)} bytes; {self.server} accepts "
                    f"at most {int(limit)}"
                )
            params.append(b"SIZE=%d" % (len(data),))
        return params, _LINE_START_DOT.sub(b"..", data)

    def explain(self, exc: Exception, connection: MessageSender) -> NetlabError:
        """
        A one-line error for one of Twisted's SMTP client errors.
        """
        server = self.server
        code = getattr(exc, "code", 0)
        text = _text(getattr(exc, "resp", None))
        if isinstance(exc, smtp.TLSRequiredError):
            return TLSFailed(
                f"{server} does not offer STARTTLS; refusing to go on without TLS"
            )
        if isinstance(exc, smtp.AUTHDeclinedError):
            return AuthenticationFailed(
                f"{server} rejected the login of {self.username}: {code} {text}"
            )
        if isinstance(exc, smtp.AUTHRequiredError):
            offered = _text(connection._extensions.get(b"AUTH")) or "none"
            return AuthenticationFailed(
                f"{server} offers no login method this client has (PLAIN, LOGIN); "
                f"it offers: {offered}"
            )
        if isinstance(exc, smtp.AuthenticationError):
            return AuthenticationFailed(f"login to {server} failed: {code} {text}")
        if isinstance(exc, smtp.EHLORequiredError):
            return ServerRefused(f"{server} refused EHLO, and TLS or AUTH needs ESMTP")
        if isinstance(exc, smtp.SMTPConnectError):
            return ConnectionFailed(f"{server} refused the session: {code} {text}")
        if isinstance(exc, smtp.SMTPProtocolError):
            return ConnectionFailed(f"{server} does not speak SMTP: {text[:80]}")
        return ServerRefused(f"{server}: {code} {text}")

    def timed_out(self, *, heard: bool) -> ConnectionFailed:
        hint = ""
        if not heard and self.tls != "implicit":
            hint = " (if it expects TLS from the first byte, use implicit TLS)"
        return ConnectionFailed(
            f"no answer from {self.server} within {self.timeout:g} seconds{hint}"
        )

    def explain_lost(self, reason: Failure) -> NetlabError:
        """
        A one-line error for a connection that ended before the outcome was
        known.
        """
        if reason.check("service_identity.exceptions.VerificationError"):
            return TLSFailed(
                f"the certificate of {self.server} is not valid for {self.host}"
            )
        if reason.check("OpenSSL.SSL.Error"):
            args = getattr(reason.value, "args", ())
            errors = args[0] if args and isinstance(args[0], list) else []
            detail = "; ".join(
                str(e[-1]) for e in errors if isinstance(e, tuple) and e
            ) or str(reason.value)
            if "certificate verify failed" in detail:
                detail += " (the certificate is not trusted, expired or invalid)"
            elif "wrong version number" in detail or "packet length" in detail:
                detail += " (is this a STARTTLS port rather than implicit TLS?)"
            return TLSFailed(f"TLS with {self.server} failed: {detail}")
        detail = (
            "" if reason.check(ConnectionDone) else f" ({reason.getErrorMessage()})"
        )
        return ConnectionFailed(
            f"{self.server} closed the connection unexpectedly{detail}"
        )


__all__ = ["MessageSender", "MessageSenderFactory"]
