"""
Tests for L{twisted_netlab.mail.lab.imap.auth}: capabilities, STARTTLS and
the login policy (LOGIN and AUTHENTICATE only once TLS is on, unless
plaintext is allowed), over the real C{IMAP4Server} conversation.
"""

from __future__ import annotations

import base64
import re
from typing import Any

from twisted.internet.interfaces import ISSLTransport, ITLSTransport
from twisted.internet.testing import StringTransport
from zope.interface import directlyProvides, implementer

from tests.mail.lab.imaptesting import (
    PASSWORD,
    USER,
    ServerFixture,
)


@implementer(ITLSTransport)
class TLSStringTransport(StringTransport):  # type: ignore[misc]
    """
    A L{StringTransport} that can start TLS: it records the context and
    then claims to be an SSL transport.
    """

    tls_context: object | None = None

    def startTLS(self, contextFactory: object) -> None:
        self.tls_context = contextFactory
        directlyProvides(self, ISSLTransport, ITLSTransport)


SERVER_TLS = object()


def capabilities(response: bytes) -> set[bytes]:
    match = re.search(rb"CAPABILITY ([^\]\r]*)", response)
    assert match is not None, response
    return set(match.group(1).split())


class STARTTLSPolicyTests(ServerFixture):
    """
    With STARTTLS configured and plaintext not allowed, logging in needs TLS.
    """

    tls = SERVER_TLS
    allow_plaintext_auth = False

    def connect(self) -> Any:
        server = self.factory.buildProtocol(None)
        transport = TLSStringTransport()
        server.makeConnection(transport)
        self.addCleanup(self._disconnect, server, transport)
        return server, transport

    def test_greeting_before_tls(self) -> None:
        """
        Before TLS the server offers STARTTLS and says LOGINDISABLED, with no
        AUTH= mechanism.
        """
        caps = capabilities(self.greeting)
        self.assertIn(b"STARTTLS", caps)
        self.assertIn(b"LOGINDISABLED", caps)
        self.assertFalse([c for c in caps if c.startswith(b"AUTH=")])
        self.assertEqual(capabilities(self.command(b"a CAPABILITY")), caps)

    def test_login_refused_before_tls(self) -> None:
        """
        LOGIN with the right password is refused before TLS, and the session
        stays unauthenticated.
        """
        response = self.command(b'a LOGIN "' + USER.encode() + b'" "' + PASSWORD + b'"')
        self.assertEqual(
            response, b"a NO [PRIVACYREQUIRED] LOGIN is disabled until STARTTLS\r\n"
        )
        self.assertIn(b"b BAD", self.command(b"b SELECT INBOX"))

    def test_authenticate_refused_before_tls(self) -> None:
        """
        AUTHENTICATE (which Twisted allows any time) is refused before TLS,
        without a challenge.
        """
        response = self.command(b"a AUTHENTICATE PLAIN")
        self.assertEqual(
            response,
            b"a NO [PRIVACYREQUIRED] AUTHENTICATE is disabled until STARTTLS\r\n",
        )
        self.assertEqual(self.server.state, "unauth")

    def test_starttls_then_login(self) -> None:
        """
        After STARTTLS the capabilities offer AUTH=PLAIN and AUTH=LOGIN, no
        STARTTLS or LOGINDISABLED, and LOGIN succeeds.
        """
        self.assertEqual(
            self.command(b"a STARTTLS"), b"a OK Begin TLS negotiation now\r\n"
        )
        self.assertIs(getattr(self.transport, "tls_context", None), SERVER_TLS)
        caps = capabilities(self.command(b"b CAPABILITY"))
        self.assertIn(b"AUTH=PLAIN", caps)
        self.assertIn(b"AUTH=LOGIN", caps)
        self.assertNotIn(b"STARTTLS", caps)
        self.assertNotIn(b"LOGINDISABLED", caps)
        self.assertIn(b"c NO", self.command(b"c STARTTLS"))
        self.login()

    def test_authenticate_plain_after_tls(self) -> None:
        """
        AUTHENTICATE PLAIN works after STARTTLS; a wrong password is refused.
        """
        self.command(b"a STARTTLS")
        self.assertEqual(self.command(b"b AUTHENTICATE PLAIN"), b"+ \r\n")
        bad = base64.b64encode(b"\0" + USER.encode() + b"\0wrong")
        self.assertIn(b"b NO Authentication failed", self.send(bad + b"\r\n"))
        self.command(b"c AUTHENTICATE PLAIN")
        good = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD)
        self.assertEqual(
            self.send(good + b"\r\n"), b"c OK Authentication successful\r\n"
        )
        self.assertEqual(self.server.state, "auth")

    def test_commands_pipelined_after_starttls_dropped(self) -> None:
        """
        Commands sent in the same packet after STARTTLS, in plaintext, are
        discarded, not run inside the TLS session.
        """
        response = self.send(
            b"a STARTTLS\r\nb LOGIN " + USER.encode() + b" " + PASSWORD + b"\r\n"
        )
        self.assertEqual(response, b"a OK Begin TLS negotiation now\r\n")
        self.assertEqual(self.server.state, "unauth")


class NoTLSPolicyTests(ServerFixture):
    """
    Without TLS configured and without plaintext allowed, nobody can log in
    (Twisted's own server would allow LOGIN here).
    """

    tls = None
    allow_plaintext_auth = False

    def test_login_disabled(self) -> None:
        """
        LOGINDISABLED is advertised, no STARTTLS, and LOGIN is refused.
        """
        caps = capabilities(self.greeting)
        self.assertIn(b"LOGINDISABLED", caps)
        self.assertNotIn(b"STARTTLS", caps)
        self.assertIn(
            b"a NO [PRIVACYREQUIRED]", self.command(b"a LOGIN " + USER.encode() + b" x")
        )
        self.assertIn(b"b NO TLS not available", self.command(b"b STARTTLS"))


class ImplicitTLSPolicyTests(ServerFixture):
    """
    Behind implicit TLS, logging in is allowed at once.
    """

    tls = None
    allow_plaintext_auth = False
    implicit_tls = True

    def test_login_allowed(self) -> None:
        """
        No LOGINDISABLED or STARTTLS; AUTH=PLAIN is offered and LOGIN works.
        """
        caps = capabilities(self.greeting)
        self.assertNotIn(b"LOGINDISABLED", caps)
        self.assertNotIn(b"STARTTLS", caps)
        self.assertIn(b"AUTH=PLAIN", caps)
        self.login()


class PlaintextAllowedTests(ServerFixture):
    """
    With C{allow_plaintext_auth}, LOGIN works without TLS.
    """

    def test_login(self) -> None:
        """
        A right password logs in; a wrong one gets NO.
        """
        self.assertIn(b"AUTH=PLAIN", capabilities(self.greeting))
        self.assertEqual(
            self.command(b"a LOGIN " + USER.encode() + b" wrong"),
            b"a NO LOGIN failed\r\n",
        )
        self.login()
