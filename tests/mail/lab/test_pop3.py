"""
Tests for L{twisted_netlab.mail.lab.pop3}: the lab's POP3 server over the
Maildir store, driven over a L{StringTransport}.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.interfaces import ITLSTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.mail import pop3
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import Interface, implementer

from twisted_netlab.mail.lab.imap.account import LabRealm
from twisted_netlab.mail.lab.imap.server import LabIMAPFactory
from twisted_netlab.mail.lab.pop3 import (
    LabMaildrop,
    LabMaildropRealm,
    LabPOP3Factory,
    LabPOP3Server,
    pop3_lines,
    top_of,
    uidl_of,
)
from twisted_netlab.mail.lab.store.maildir import MailStore, Retention

USER = "alice@netlab.test"
PASSWORD = b"correct horse"

FIRST = (
    b"From: bob@example.test\r\n"
    b"To: alice@netlab.test\r\n"
    b"Subject: first\r\n"
    b"\r\n"
    b"line one\r\n"
    b".starts with a dot\r\n"
    b"..two dots\r\n"
    b"line four\r\n"
)
SECOND = b"Subject: second\n\nbare LF body\n.dot\nno newline at the end"
THIRD = b"Subject: third\r\n\r\nthird body\r\n"
#: The sizes POP3 tells (CRLF line ends), and their sum.
SIZES = [len(FIRST), len(SECOND) + SECOND.count(b"\n"), len(THIRD)]
TOTAL = sum(SIZES)


# It claims no TCP options that a test could call.
@implementer(ITLSTransport)
class TLSStringTransport(StringTransport):  # type: ignore[misc]
    """
    A L{StringTransport} that can start TLS (it only records the options).
    """

    tls_options: object | None = None

    def startTLS(self, contextFactory: object) -> None:
        self.tls_options = contextFactory


class IOther(Interface):
    """An interface the POP3 realm does not serve."""


class SlowChecker:
    """
    A checker whose answers wait until the test fires them.
    """

    credentialInterfaces = (IUsernamePassword,)

    def __init__(self) -> None:
        self.pending: list[tuple[Any, Deferred[bytes]]] = []

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        self.pending.append((credentials, d))
        return d


def unstuff(response: bytes) -> bytes:
    """
    The content of a multi-line response (after its +OK line), dot-stuffing
    undone, as a client reads it.
    """
    first, _, rest = response.partition(b"\r\n")
    assert first.startswith(b"+OK"), response[:200]
    assert rest.endswith(b"\r\n.\r\n") or rest == b".\r\n", rest[-50:]
    body = rest[: -len(b".\r\n")]
    lines = body.split(b"\r\n")[:-1] if body else []
    return b"".join(
        (line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines
    )


class POP3Fixture(SynchronousTestCase):
    """
    A store with the user C{USER} and three messages, and L{LabPOP3Server}s
    on L{StringTransport}s; C{command} sends a line and returns the answer.
    """

    tls: object | None = object()
    allow_plaintext_auth = True
    implicit_tls = False

    def setUp(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="netlab-pop3-"))
        self.addCleanup(shutil.rmtree, self.root, True)
        self.store = MailStore(self.root)
        self.store.ensure_user(USER)
        self.folder = self.store.folder(USER)
        self.uids = [self.store.deliver(USER, m) for m in (FIRST, SECOND, THIRD)]
        self.checker: Any = InMemoryUsernamePasswordDatabaseDontUse(**{USER: PASSWORD})
        self.clock = Clock()
        self.factory = self.make_factory()
        self.server, self.transport = self.connect()
        self.greeting = self.transport.value()
        self.transport.clear()

    def make_factory(self, **overrides: Any) -> LabPOP3Factory:
        settings: dict[str, Any] = {
            "portal": Portal(LabMaildropRealm(self.store), [self.checker]),
            "tls": self.tls,
            "allow_plaintext_auth": self.allow_plaintext_auth,
            "implicit_tls": self.implicit_tls,
            "reactor": self.clock,
            "max_line_length": 1024,
        }
        settings.update(overrides)
        return LabPOP3Factory(**settings)

    def connect(
        self, factory: LabPOP3Factory | None = None
    ) -> tuple[LabPOP3Server, StringTransport]:
        server = (factory or self.factory).buildProtocol(None)
        transport = TLSStringTransport()
        server.makeConnection(transport)
        self.addCleanup(self.drop, server, transport)
        return server, transport

    @staticmethod
    def drop(server: LabPOP3Server, transport: StringTransport) -> None:
        if not getattr(server, "_lost", False):
            server._lost = True  # type: ignore[attr-defined]
            server.connectionLost(Failure(ConnectionLost()))

    def send(self, data: bytes, server: LabPOP3Server | None = None) -> bytes:
        server = server or self.server
        transport = server.transport
        transport.clear()
        server.dataReceived(data)
        value: bytes = transport.value()
        return value

    def command(self, line: bytes, server: LabPOP3Server | None = None) -> bytes:
        return self.send(line + b"\r\n", server)

    def login(self, server: LabPOP3Server | None = None) -> None:
        self.assertTrue(
            self.command(b"USER " + USER.encode(), server).startswith(b"+OK")
        )
        response = self.command(b"PASS " + PASSWORD, server)
        self.assertTrue(response.startswith(b"+OK"), response)

    def quit(self, server: LabPOP3Server | None = None) -> bytes:
        server = server or self.server
        response = self.command(b"QUIT", server)
        self.assertTrue(server.transport.disconnecting)
        self.drop(server, server.transport)
        return response

    def capabilities(self, server: LabPOP3Server | None = None) -> list[bytes]:
        response = self.command(b"CAPA", server)
        lines = response.split(b"\r\n")
        self.assertTrue(lines[0].startswith(b"+OK"))
        self.assertEqual(lines[-2:], [b".", b""])
        return lines[1:-2]


class HelperTests(SynchronousTestCase):
    def test_pop3_lines(self) -> None:
        """
        Lines end with CRLF (bare LFs and a missing last line end are
        fixed) and a leading dot is doubled, at the start too.
        """
        self.assertEqual(pop3_lines(b".a\n.b\r\nc"), b"..a\r\n..b\r\nc\r\n")
        self.assertEqual(pop3_lines(b"a\r\n..\r\n"), b"a\r\n...\r\n")
        self.assertEqual(pop3_lines(b""), b"")

    def test_top_of(self) -> None:
        """
        TOP keeps the header, the empty line and the asked number of body
        lines; a message without a body is all header.
        """
        message = b"A: 1\r\nB: 2\r\n\r\none\r\ntwo\r\nthree\r\n"
        self.assertEqual(top_of(message, 0), b"A: 1\r\nB: 2\r\n\r\n")
        self.assertEqual(top_of(message, 2), b"A: 1\r\nB: 2\r\n\r\none\r\ntwo\r\n")
        self.assertEqual(top_of(message, 99), message)
        self.assertEqual(top_of(b"A: 1\r\n", 3), b"A: 1\r\n")
        self.assertEqual(top_of(b"\r\nbody\r\nmore\r\n", 1), b"\r\nbody\r\n")

    def test_uidl_of(self) -> None:
        """
        Unique ids are Dovecot's default %08Xu%08Xv.
        """
        self.assertEqual(uidl_of(26, 1733040000), b"0000001A674C1780")

    def test_realm_refuses_other_interfaces(self) -> None:
        """
        The POP3 realm serves maildrops only.
        """
        root = Path(tempfile.mkdtemp(prefix="netlab-pop3-"))
        self.addCleanup(shutil.rmtree, root, True)
        realm = LabMaildropRealm(MailStore(root))
        self.assertRaises(
            NotImplementedError, realm.requestAvatar, b"a@b.test", None, IOther
        )
        interface, maildrop, _logout = realm.requestAvatar(
            b"a@b.test", None, pop3.IMailbox
        )
        self.assertIs(interface, pop3.IMailbox)
        self.assertEqual(len(maildrop), 0)


class AuthorizationTests(POP3Fixture):
    """
    Before login, over plaintext, with TLS available and plaintext logins
    not allowed.
    """

    allow_plaintext_auth = False

    def test_greeting(self) -> None:
        """
        The greeting is one +OK line with no APOP timestamp (APOP cannot be
        served from scrypt hashes).
        """
        self.assertEqual(self.greeting, b"+OK netlab mail lab POP3 ready\r\n")

    def test_capabilities_before_tls(self) -> None:
        """
        CAPA offers STLS and the extensions, but neither USER nor SASL
        before TLS.
        """
        caps = self.capabilities()
        for cap in (b"STLS", b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE"):
            self.assertIn(cap, caps)
        self.assertIn(b"PIPELINING", caps)
        self.assertNotIn(b"USER", caps)
        self.assertFalse([c for c in caps if c.startswith(b"SASL")])

    def test_no_login_before_tls(self) -> None:
        """
        USER, PASS and AUTH get -ERR [AUTH] before TLS; APOP always.
        """
        for line in (b"USER " + USER.encode(), b"PASS " + PASSWORD, b"AUTH PLAIN"):
            self.assertTrue(
                self.command(line).startswith(b"-ERR [AUTH] Plaintext"), line
            )
        self.assertTrue(self.command(b"APOP a b").startswith(b"-ERR [AUTH] APOP"))
        self.assertTrue(self.command(b"STAT").startswith(b"-ERR Log in first"))
        self.assertIsNone(self.server.mbox)

    def test_stls(self) -> None:
        """
        STLS answers +OK and starts TLS with the factory's options; lines
        pipelined behind it in plaintext are dropped; then USER and SASL
        PLAIN are offered (no STLS), logins work, a second STLS is refused.
        """
        response = self.send(b"STLS\r\nUSER evil@netlab.test\r\nPASS x\r\n")
        self.assertEqual(response, b"+OK Begin TLS negotiation now\r\n")
        transport = self.transport
        assert isinstance(transport, TLSStringTransport)
        self.assertIs(transport.tls_options, self.factory.tls)
        self.assertIsNone(self.server._userIs)
        caps = self.capabilities()
        self.assertIn(b"USER", caps)
        self.assertIn(b"SASL PLAIN", caps)
        self.assertNotIn(b"STLS", caps)
        self.assertEqual(self.command(b"STLS"), b"-ERR TLS is already active\r\n")
        self.login()

    def test_no_stls_without_tls(self) -> None:
        """
        With no TLS options, STLS is neither offered nor done.
        """
        server, _ = self.connect(self.make_factory(tls=None))
        self.assertNotIn(b"STLS", self.capabilities(server))
        self.assertEqual(self.command(b"STLS", server), b"-ERR TLS not available\r\n")

    def test_quit_before_login(self) -> None:
        """
        QUIT before login says goodbye and closes.
        """
        self.assertEqual(self.quit(), b"+OK Bye\r\n")


class ImplicitTLSTests(POP3Fixture):
    allow_plaintext_auth = False
    implicit_tls = True

    def test_login_at_once(self) -> None:
        """
        Behind implicit TLS, USER is offered and works at once; no STLS.
        """
        caps = self.capabilities()
        self.assertIn(b"USER", caps)
        self.assertNotIn(b"STLS", caps)
        self.login()


class LoginTests(POP3Fixture):
    def test_user_pass(self) -> None:
        """
        USER then PASS logs in and tells the size of the maildrop; the
        password is the rest of the line (spaces kept).
        """
        self.assertEqual(self.command(b"USER " + USER.encode()), b"+OK Send PASS\r\n")
        response = self.command(b"PASS " + PASSWORD)
        self.assertEqual(response, b"+OK Logged in: 3 messages (%d octets)\r\n" % TOTAL)
        self.assertEqual(self.command(b"USER x"), b"-ERR Already logged in: USER\r\n")

    def test_pass_without_user(self) -> None:
        """
        PASS needs USER first.
        """
        self.assertEqual(self.command(b"PASS x"), b"-ERR USER first\r\n")

    def test_wrong_password(self) -> None:
        """
        A wrong password gets -ERR [AUTH]; the third failure closes.
        """
        for attempt in range(3):
            self.command(b"USER " + USER.encode())
            response = self.command(b"PASS wrong")
            self.assertTrue(response.startswith(b"-ERR [AUTH] Authentication failed"))
            self.assertEqual(self.transport.disconnecting, attempt == 2)
        self.assertIsNone(self.server.mbox)

    def test_auth_plain(self) -> None:
        """
        AUTH PLAIN with an initial response logs in.
        """
        token = base64.b64encode(b"\0" + USER.encode() + b"\0" + PASSWORD)
        response = self.command(b"AUTH PLAIN " + token)
        self.assertTrue(response.startswith(b"+OK Logged in"), response)

    def test_auth_plain_continuation(self) -> None:
        """
        AUTH PLAIN without an initial response asks with "+ ", and takes an
        authorization identity equal to the user; "*" cancels.
        """
        self.assertEqual(self.command(b"AUTH PLAIN"), b"+ \r\n")
        self.assertEqual(
            self.command(b"*"), b"-ERR [AUTH] Authentication cancelled\r\n"
        )
        self.assertEqual(self.command(b"AUTH plain"), b"+ \r\n")
        token = base64.b64encode(
            USER.encode() + b"\0" + USER.encode() + b"\0" + PASSWORD
        )
        self.assertTrue(self.command(token).startswith(b"+OK Logged in"))

    def test_auth_refusals(self) -> None:
        """
        Bad base64, a malformed PLAIN response, another authorization
        identity and unknown mechanisms get -ERR [AUTH]; AUTH alone lists
        PLAIN.
        """
        self.assertEqual(
            self.command(b"AUTH"), b"+OK SASL mechanisms follow\r\nPLAIN\r\n.\r\n"
        )
        self.assertEqual(
            self.command(b"AUTH CRAM-MD5"),
            b"-ERR [AUTH] Unsupported SASL mechanism\r\n",
        )
        self.assertEqual(
            self.command(b"AUTH PLAIN !!!"),
            b"-ERR [AUTH] Invalid base64 in the SASL response\r\n",
        )
        for raw in (
            b"no nul",
            b"\0\0pw",
            b"bob@netlab.test\0" + USER.encode() + b"\0pw",
        ):
            response = self.command(b"AUTH PLAIN " + base64.b64encode(raw))
            self.assertEqual(response, b"-ERR [AUTH] Invalid SASL PLAIN response\r\n")
        self.assertEqual(
            self.command(b"AUTH PLAIN ="),
            b"-ERR [AUTH] Invalid SASL PLAIN response\r\n",
        )
        self.assertIsNone(self.server.mbox)

    def test_commands_wait_for_the_login(self) -> None:
        """
        Commands pipelined behind PASS wait until the password is checked
        (PIPELINING), then are answered in order.
        """
        self.checker = SlowChecker()
        server, transport = self.connect(self.make_factory())
        transport.clear()
        response = self.send(
            b"USER "
            + USER.encode()
            + b"\r\nPASS "
            + PASSWORD
            + b"\r\nSTAT\r\nNOOP\r\n",
            server,
        )
        self.assertEqual(response, b"+OK Send PASS\r\n")
        [(credentials, d)] = self.checker.pending
        self.assertEqual(credentials.password, PASSWORD)
        transport.clear()
        d.callback(USER.encode())
        lines = transport.value().split(b"\r\n")
        self.assertTrue(lines[0].startswith(b"+OK Logged in: 3 messages"))
        self.assertTrue(lines[1].startswith(b"+OK 3 "))
        self.assertEqual(lines[2:], [b"+OK", b""])

    def test_connection_lost_during_login(self) -> None:
        """
        A login that completes after the client left opens no maildrop.
        """
        self.checker = SlowChecker()
        server, transport = self.connect(self.make_factory())
        self.send(b"USER " + USER.encode() + b"\r\nPASS " + PASSWORD + b"\r\n", server)
        self.drop(server, transport)
        transport.clear()
        self.checker.pending[0][1].callback(USER.encode())
        self.assertIsNone(server.mbox)
        self.assertEqual(transport.value(), b"")

    def test_idle_timeout(self) -> None:
        """
        A connection silent for the idle timeout is told and closed.
        """
        self.clock.advance(self.factory.idle_timeout - 1)
        self.assertFalse(self.transport.disconnecting)
        self.clock.advance(1)
        self.assertEqual(
            self.transport.value(), b"-ERR Disconnected for inactivity\r\n"
        )
        self.assertTrue(self.transport.disconnecting)


class TransactionTests(POP3Fixture):
    def setUp(self) -> None:
        super().setUp()
        self.login()

    def test_idle_timeout_after_login_and_retr(self) -> None:
        """
        The idle timer runs again after the login and after a RETR (the
        long operations stop it while they run).
        """
        self.command(b"RETR 1")
        self.clock.advance(self.factory.idle_timeout - 1)
        self.assertEqual(self.command(b"NOOP"), b"+OK\r\n")
        self.transport.clear()
        self.clock.advance(self.factory.idle_timeout)
        self.assertEqual(
            self.transport.value(), b"-ERR Disconnected for inactivity\r\n"
        )
        self.assertTrue(self.transport.disconnecting)

    def test_stat_list_uidl(self) -> None:
        """
        STAT, LIST and UIDL describe the maildrop: sizes with CRLF line
        ends, unique ids from UID and UIDVALIDITY.
        """
        sizes = SIZES
        self.assertEqual(self.command(b"STAT"), b"+OK 3 %d\r\n" % sum(sizes))
        self.assertEqual(
            self.command(b"LIST"),
            b"+OK 3 messages (%d octets)\r\n1 %d\r\n2 %d\r\n3 %d\r\n.\r\n"
            % (sum(sizes), *sizes),
        )
        self.assertEqual(self.command(b"LIST 2"), b"+OK 2 %d\r\n" % sizes[1])
        ids = [uidl_of(uid, self.folder.uidvalidity) for uid in self.uids]
        self.assertEqual(
            self.command(b"UIDL"),
            b"+OK Unique ids follow\r\n1 %s\r\n2 %s\r\n3 %s\r\n.\r\n" % tuple(ids),
        )
        self.assertEqual(self.command(b"UIDL 3"), b"+OK 3 %s\r\n" % ids[2])

    def test_uidl_stable_across_restarts(self) -> None:
        """
        A new store on the same directory (a restarted lab) gives the same
        unique ids.
        """
        before = self.command(b"UIDL")
        store = MailStore(self.root)
        factory = LabPOP3Factory(
            portal=Portal(LabMaildropRealm(store), [self.checker]),
            tls=None,
            allow_plaintext_auth=True,
            reactor=self.clock,
        )
        server, _ = self.connect(factory)
        self.login(server)
        self.assertEqual(self.command(b"UIDL", server), before)

    def test_retr(self) -> None:
        """
        RETR sends the message byte for byte (CRLF already), dot-stuffed,
        with its size; bare LFs become CRLF and a missing last line end is
        added.
        """
        response = self.command(b"RETR 1")
        self.assertTrue(response.startswith(b"+OK %d octets\r\n" % len(FIRST)))
        self.assertIn(b"\r\n..starts with a dot\r\n...two dots\r\n", response)
        self.assertEqual(unstuff(response), FIRST)
        second = self.command(b"RETR 2")
        self.assertEqual(unstuff(second), SECOND.replace(b"\n", b"\r\n") + b"\r\n")

    def test_retr_large_message_in_chunks(self) -> None:
        """
        A message larger than a write chunk, with dotted lines across the
        chunk boundaries, arrives whole and dot-stuffed; the server pauses
        while the client does not read.
        """
        line = b".dotted line of text " + b"x" * 70 + b"\r\n"
        big = b"Subject: big\r\n\r\n" + line * 5000
        self.store.deliver(USER, big)
        server, transport = self.connect()
        self.login(server)
        transport.clear()
        server.dataReceived(b"RETR 4\r\nNOOP\r\n")
        self.assertEqual(unstuff(transport.value().rsplit(b"+OK\r\n", 1)[0]), big)
        self.assertTrue(transport.value().endswith(b"\r\n.\r\n+OK\r\n"))

    def test_retr_backpressure(self) -> None:
        """
        While the client does not read, RETR stops writing and the commands
        behind it wait; when it reads again, all of it comes, in order.
        """
        big = b"Subject: big\r\n\r\n" + b"z" * 300_000 + b"\r\n"
        self.store.deliver(USER, big)
        server, transport = self.connect()
        self.login(server)
        transport.clear()
        original = transport.write
        written: list[bytes] = []

        def write(data: bytes) -> None:
            written.append(data)
            if transport.producer is not None and len(written) == 2:
                transport.producer.pauseProducing()
            original(data)

        transport.write = write  # type: ignore[method-assign]
        server.dataReceived(b"RETR 4\r\nSTAT\r\n")
        self.assertEqual(len(written), 2)  # the +OK line and one chunk
        self.assertNotIn(b"+OK 4", transport.value())
        assert transport.producer is not None
        transport.producer.resumeProducing()
        self.assertTrue(
            transport.value().endswith(b"\r\n.\r\n+OK 4 %d\r\n" % (TOTAL + len(big)))
        )

    def test_top(self) -> None:
        """
        TOP sends the header and the asked number of body lines, dot-stuffed;
        it does not mark the message seen.
        """
        response = self.command(b"TOP 1 2")
        self.assertTrue(response.startswith(b"+OK Top of message 1 follows\r\n"))
        self.assertEqual(
            unstuff(response),
            FIRST.split(b"\r\n\r\n")[0] + b"\r\n\r\nline one\r\n.starts with a dot\r\n",
        )
        self.assertEqual(unstuff(self.command(b"TOP 2 0")), b"Subject: second\r\n\r\n")
        self.assertEqual(self.command(b"TOP 1 x"), b"-ERR Invalid line count: x\r\n")
        self.quit()
        self.assertNotIn("\\Seen", self.folder.entry(self.uids[0]).flags)

    def test_dele_then_quit(self) -> None:
        """
        DELE marks a message: it leaves STAT, LIST and UIDL and cannot be
        read or deleted again; QUIT removes it from the store.
        """
        self.assertEqual(self.command(b"DELE 2"), b"+OK Message 2 deleted\r\n")
        self.assertEqual(self.command(b"DELE 2"), b"-ERR Message 2 is deleted\r\n")
        self.assertEqual(self.command(b"RETR 2"), b"-ERR Message 2 is deleted\r\n")
        self.assertEqual(self.command(b"LIST 2"), b"-ERR Message 2 is deleted\r\n")
        self.assertTrue(self.command(b"STAT").startswith(b"+OK 2 "))
        listing = self.command(b"LIST")
        self.assertIn(b"\r\n1 ", listing)
        self.assertNotIn(b"\r\n2 ", listing)
        self.assertNotIn(b"\r\n2 ", self.command(b"UIDL"))
        self.assertEqual(self.folder.uids(), self.uids)
        self.assertEqual(self.quit(), b"+OK Bye: 1 messages deleted\r\n")
        self.assertEqual(self.folder.uids(), [self.uids[0], self.uids[2]])
        self.assertEqual(self.store.messages(USER), [FIRST, THIRD])

    def test_quit_when_the_disk_refuses(self) -> None:
        """
        When the deletions cannot be made, QUIT answers -ERR [SYS/TEMP] (RFC
        1939) and still closes.
        """

        def refuse(uids: object, **options: object) -> list[int]:
            raise OSError(28, "No space left on device")

        self.folder.remove = refuse  # type: ignore[method-assign]
        self.command(b"DELE 1")
        self.assertEqual(
            self.quit(), b"-ERR [SYS/TEMP] Some deleted messages were not removed\r\n"
        )

    def test_nothing_kept_after_quit(self) -> None:
        """
        What a client sends after QUIT, before the connection is gone, is
        neither answered nor kept.
        """
        self.assertTrue(
            self.send(b"QUIT\r\nNOOP\r\n" + b"x" * 5000).startswith(b"+OK Bye")
        )
        self.assertEqual(self.send(b"NOOP\r\n" + b"y" * 100_000), b"")
        self.assertEqual(self.server._buffer, b"")

    def test_dele_without_quit(self) -> None:
        """
        A connection lost without QUIT deletes nothing and marks nothing
        seen.
        """
        self.command(b"RETR 1")
        self.command(b"DELE 1")
        self.drop(self.server, self.transport)
        self.assertEqual(self.folder.uids(), self.uids)
        self.assertNotIn("\\Seen", self.folder.entry(self.uids[0]).flags)

    def test_rset(self) -> None:
        """
        RSET unmarks every deleted message; QUIT then removes nothing.
        """
        self.command(b"DELE 1")
        self.command(b"DELE 3")
        self.assertTrue(self.command(b"STAT").startswith(b"+OK 1 "))
        self.assertEqual(
            self.command(b"RSET"), b"+OK 3 messages (%d octets)\r\n" % TOTAL
        )
        self.assertEqual(self.quit(), b"+OK Bye: 0 messages deleted\r\n")
        self.assertEqual(self.folder.uids(), self.uids)

    def test_retr_marks_seen_at_quit(self) -> None:
        """
        RETR marks the message \\Seen when the session ends with QUIT (as
        Dovecot does by default), keeping its other flags; not before.
        """
        self.folder.set_flags({self.uids[1]: ["\\Flagged"]})
        self.command(b"RETR 2")
        self.assertNotIn("\\Seen", self.folder.entry(self.uids[1]).flags)
        self.quit()
        self.assertEqual(self.folder.entry(self.uids[1]).flags, ("\\Flagged", "\\Seen"))
        self.assertNotIn("\\Seen", self.folder.entry(self.uids[0]).flags)

    def test_bad_message_numbers(self) -> None:
        """
        Numbers that are not those of a message get one -ERR each.
        """
        for number, answer in [
            (b"0", b"-ERR There is no message 0\r\n"),
            (b"4", b"-ERR There is no message 4\r\n"),
            (b"-1", b"-ERR Invalid message number: -1\r\n"),
            (b"x", b"-ERR Invalid message number: x\r\n"),
            (
                b"99999999999999999",
                b"-ERR Invalid message number: 99999999999999999\r\n",
            ),
            ("\u0663".encode(), b"-ERR Invalid message number: \xd9\xa3\r\n"),
        ]:
            for command in (b"RETR", b"DELE", b"LIST", b"UIDL"):
                self.assertEqual(self.command(command + b" " + number), answer)
            self.assertEqual(self.command(b"TOP " + number + b" 1"), answer)

    def test_wrong_arguments(self) -> None:
        """
        Missing or extra arguments, unknown commands and commands of the
        other state get -ERR; the session goes on.
        """
        for line in (b"RETR", b"TOP 1", b"DELE 1 2", b"STAT 1", b"NOOP x"):
            self.assertTrue(self.command(line).startswith(b"-ERR Wrong number"), line)
        self.assertEqual(self.command(b"LAST"), b"-ERR Unknown command: LAST\r\n")
        self.assertEqual(self.command(b""), b"-ERR Unknown command\r\n")
        self.assertEqual(self.command(b"\xff\xfe"), b"-ERR Unknown command\r\n")
        self.assertEqual(self.command(b"STLS"), b"-ERR Already logged in: STLS\r\n")
        self.assertEqual(self.command(b"noop"), b"+OK\r\n")

    def test_capabilities_after_login(self) -> None:
        """
        After login CAPA no longer offers STLS, USER or SASL.
        """
        caps = self.capabilities()
        self.assertIn(b"UIDL", caps)
        self.assertNotIn(b"USER", caps)
        self.assertNotIn(b"STLS", caps)

    def test_pipelined_burst(self) -> None:
        """
        A burst of commands in one write, LF-only line ends included, is
        answered in order.
        """
        response = self.send(b"STAT\r\nRETR 3\nUIDL 1\r\nLIST 3\r\nQUIT\r\n")
        stat, rest = response.split(b"\r\n", 1)
        self.assertTrue(stat.startswith(b"+OK 3 "))
        retr, rest = rest.split(b"\r\n.\r\n", 1)
        self.assertEqual(unstuff(retr + b"\r\n.\r\n"), THIRD)
        lines = rest.split(b"\r\n")
        self.assertTrue(lines[0].startswith(b"+OK 1 "))
        self.assertEqual(lines[1], b"+OK 3 %d" % len(THIRD))
        self.assertEqual(lines[2:], [b"+OK Bye: 0 messages deleted", b""])

    def test_long_line(self) -> None:
        """
        An over-long line gets one -ERR, whether it comes in one read or
        many, and the session goes on.
        """
        self.assertEqual(
            self.command(b"NOOP " + b"x" * 2000),
            b"-ERR Line too long: the limit is 1024 bytes\r\n",
        )
        self.assertEqual(
            self.send(b"LIST " + b"9" * 1500),
            b"-ERR Line too long: the limit is 1024 bytes\r\n",
        )
        self.assertEqual(self.send(b"9" * 3000), b"")
        self.assertEqual(self.send(b"9\r\nNOOP\r\n"), b"+OK\r\n")
        self.assertLessEqual(len(self.server._buffer), 1024)

    def test_reading_stops_when_many_lines_wait(self) -> None:
        """
        While a command is answered, lines sent ahead are queued; past a
        bound the server stops reading, and reads again once they are done.
        """
        self.store.deliver(USER, b"Subject: big\r\n\r\n" + b"z" * 300_000 + b"\r\n")
        server, transport = self.connect()
        self.login(server)
        original = transport.write

        def write(data: bytes) -> None:
            original(data)
            if len(data) > 1000 and transport.producer is not None:
                transport.producer.pauseProducing()

        transport.write = write  # type: ignore[method-assign]
        server.dataReceived(b"RETR 4\r\n" + b"NOOP\r\n" * 150)
        self.assertEqual(transport.producerState, "paused")
        transport.producer.resumeProducing()  # type: ignore[union-attr]
        transport.producer.resumeProducing()  # type: ignore[union-attr]
        while transport.producer is not None:
            transport.producer.resumeProducing()
        self.assertEqual(transport.producerState, "producing")
        self.assertTrue(transport.value().endswith(b"\r\n.\r\n" + b"+OK\r\n" * 150))


class SnapshotTests(POP3Fixture):
    """
    The maildrop against other clients of the same store.
    """

    def setUp(self) -> None:
        super().setUp()
        self.login()

    def test_new_mail_waits_for_next_session(self) -> None:
        """
        Mail delivered during a session is not in its maildrop.
        """
        self.store.deliver(USER, b"Subject: later\r\n\r\nlater\r\n")
        self.assertTrue(self.command(b"STAT").startswith(b"+OK 3 "))
        server, _ = self.connect()
        self.login(server)
        self.assertTrue(self.command(b"STAT", server).startswith(b"+OK 4 "))

    def test_expunged_elsewhere(self) -> None:
        """
        A message removed by another client keeps its number, size and
        unique id in the session; reading it gets -ERR; QUIT with it
        marked deleted works.
        """
        listing, uidl = self.command(b"LIST"), self.command(b"UIDL")
        self.folder.remove([self.uids[0]])
        self.assertEqual(self.command(b"LIST"), listing)
        self.assertEqual(self.command(b"UIDL"), uidl)
        self.assertEqual(
            self.command(b"RETR 1"),
            b"-ERR [SYS/PERM] Message 1 was removed by another client\r\n",
        )
        self.assertTrue(self.command(b"TOP 1 0").startswith(b"-ERR [SYS/PERM]"))
        self.assertTrue(self.command(b"RETR 2").startswith(b"+OK"))
        self.command(b"DELE 1")
        self.command(b"DELE 3")
        self.assertEqual(self.quit(), b"+OK Bye: 2 messages deleted\r\n")
        self.assertEqual(self.folder.uids(), [self.uids[1]])
        self.assertIn("\\Seen", self.folder.entry(self.uids[1]).flags)

    def test_retention_waits_for_the_session(self) -> None:
        """
        Retention pruning leaves the messages of an open session alone; once
        the session ends they are pruned.
        """
        self.folder.retention = Retention(max_messages=2)
        self.store.deliver(USER, b"Subject: fourth\r\n\r\nfour\r\n")
        self.assertEqual(len(self.folder.uids()), 4)
        self.assertTrue(self.command(b"RETR 1").startswith(b"+OK"))
        self.drop(self.server, self.transport)
        self.assertEqual(self.folder.uids(), [self.uids[2], self.uids[2] + 1])

    def test_imap_sees_pop3_deletions(self) -> None:
        """
        An IMAP session with INBOX selected hears of messages that a POP3
        QUIT removed (EXPUNGE) and of \\Seen set by RETR.
        """
        from tests.mail.lab.imaptesting import PASSWORD as IMAP_PASSWORD

        checker = InMemoryUsernamePasswordDatabaseDontUse(**{USER: IMAP_PASSWORD})
        imap_factory = LabIMAPFactory(
            portal=Portal(LabRealm(self.store), [checker]),
            tls=None,
            allow_plaintext_auth=True,
            reactor=self.clock,
        )
        imap = imap_factory.buildProtocol(None)
        transport = StringTransport()
        imap.makeConnection(transport)
        self.addCleanup(imap.connectionLost, Failure(ConnectionDone()))
        imap.dataReceived(b'a LOGIN "%s" "%s"\r\n' % (USER.encode(), IMAP_PASSWORD))
        imap.dataReceived(b"b SELECT INBOX\r\n")
        self.assertIn(b"* 3 EXISTS", transport.value())
        transport.clear()
        self.command(b"RETR 3")
        self.command(b"DELE 1")
        self.quit()
        self.assertEqual(transport.value(), b"* 3 FETCH (FLAGS (\\Seen \\Recent))\r\n")
        transport.clear()
        imap.dataReceived(b"c NOOP\r\n")
        response = transport.value()
        self.assertTrue(response.startswith(b"* 1 EXPUNGE\r\n"), response)
        self.assertIn(b"c OK", response)


class MaildropTests(SynchronousTestCase):
    """
    L{LabMaildrop} as a L{pop3.IMailbox}, for Twisted's own uses.
    """

    def setUp(self) -> None:
        root = Path(tempfile.mkdtemp(prefix="netlab-pop3-"))
        self.addCleanup(shutil.rmtree, root, True)
        store = MailStore(root)
        store.ensure_user(USER)
        store.deliver(USER, FIRST)
        store.deliver(USER, THIRD)
        self.folder = store.folder(USER)
        # A message dropped in by another program: no W= size in its name.
        path = root / USER / "new" / "1700000000.M1P1.otherhost"
        path.write_bytes(b"Subject: dropped\n\nin\n")
        os.utime(path, (1700000000, 1700000000))
        self.maildrop = LabMaildrop(self.folder)

    def test_interface(self) -> None:
        """
        listMessages, getMessage, getUidl, deleteMessage, undeleteMessages
        and sync behave as the interface says (0-based, deleted size 0).
        """
        self.assertTrue(pop3.IMailbox.providedBy(self.maildrop))
        sizes = self.maildrop.listMessages()
        self.assertEqual(sizes, [len(FIRST), len(THIRD), 24])
        self.assertEqual(self.maildrop.getMessage(0).read(), FIRST)
        self.assertRaises(ValueError, self.maildrop.listMessages, 3)
        self.assertRaises(ValueError, self.maildrop.getUidl, -1)
        self.maildrop.deleteMessage(1)
        self.assertEqual(self.maildrop.listMessages(1), 0)
        self.maildrop.undeleteMessages()
        self.assertEqual(self.maildrop.listMessages(1), len(THIRD))
        self.maildrop.deleteMessage(0)
        self.maildrop.sync()
        self.assertEqual(len(self.folder.uids()), 2)
        self.assertEqual(
            self.maildrop.getUidl(2),
            uidl_of(self.folder.uids()[-1], self.folder.uidvalidity),
        )
