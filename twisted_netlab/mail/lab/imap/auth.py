"""
What a session offers and how it logs in: CAPABILITY, STARTTLS, LOGIN and
AUTHENTICATE (PLAIN, LOGIN; SASL-IR), and ENABLE and ID, by which client
and server agree on what the session speaks.

LOGIN and AUTHENTICATE are refused until TLS is on (STARTTLS or implicit
TLS) unless plaintext is explicitly allowed: LOGINDISABLED and no AUTH=
before. Twisted allows LOGIN when no STARTTLS is configured and
AUTHENTICATE always. Commands pipelined behind STARTTLS are discarded.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import ISSLTransport
from twisted.mail import imap4
from twisted.python.failure import Failure

from twisted_netlab.addresses import describe_address
from twisted_netlab.mail.lab.imap.arguments import ArgumentParsers
from twisted_netlab.mail.lab.imap.session import command_entry
from twisted_netlab.mail.lab.imap.syntax import Token

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


class AuthMixin(ArgumentParsers):
    """
    Capabilities, TLS, logging in, ENABLE and ID.
    """

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

    unauth_STARTTLS = command_entry(
        do_STARTTLS,
    )

    def do_LOGIN(self, tag: bytes, user: bytes, passwd: bytes) -> None:
        if not self._may_authenticate():
            self.sendNegativeResponse(
                tag, b"[PRIVACYREQUIRED] LOGIN is disabled until STARTTLS"
            )
            return
        super().do_LOGIN(tag, user, passwd)

    unauth_LOGIN = command_entry(
        do_LOGIN,
        ArgumentParsers.arg_astring,
        ArgumentParsers.arg_finalastring,
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

    unauth_AUTHENTICATE = command_entry(
        do_AUTHENTICATE, imap4.IMAP4Server.arg_atom, ArgumentParsers.arg_rest
    )

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

    # --- ENABLE, ID -----------------------------------------------------------

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

    auth_ENABLE = command_entry(do_ENABLE, ArgumentParsers.read_tokens)
    select_ENABLE = auth_ENABLE

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

    unauth_ID = command_entry(do_ID, ArgumentParsers.read_tokens)
    auth_ID = unauth_ID
    select_ID = unauth_ID
