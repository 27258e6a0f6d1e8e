"""
Shared pieces of the lab IMAP tests: a store with a user, a portal with an
in-memory checker, and a server driven over a L{StringTransport}.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.imap.account import LabRealm
from twisted_netlab.mail.lab.imap.server import LabIMAPFactory, LabIMAPServer
from twisted_netlab.mail.lab.store.maildir import MailStore

USER = "alice@netlab.test"
PASSWORD = b"correct horse"

MULTIPART = (
    b"From: Bob Example <bob@example.test>\r\n"
    b"To: Alice <alice@netlab.test>, carol@example.test\r\n"
    b"Cc: =?utf-8?q?J=C3=B6rg?= <joerg@example.test>\r\n"
    b"Subject: a multipart\r\n"
    b"Date: Mon, 02 Mar 2026 10:00:00 +0100\r\n"
    b"Message-ID: <m1@example.test>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"preamble\r\n"
    b"--outer\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Hello =C3=A9\r\n"
    b"second line\r\n"
    b"--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"plain\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<p>html</p>\r\n"
    b"--inner--\r\n"
    b"--outer\r\n"
    b"Content-Type: message/rfc822\r\n"
    b"Content-Disposition: attachment; filename=fwd.eml\r\n"
    b"\r\n"
    b"From: dave@example.test\r\n"
    b"Subject: forwarded\r\n"
    b"\r\n"
    b"inner body\r\n"
    b"--outer\r\n"
    b"Content-Type: application/octet-stream; name=data.bin\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"Content-Disposition: attachment; filename=data.bin\r\n"
    b"\r\n"
    b"AAECAw==\r\n"
    b"--outer--\r\n"
    b"epilogue\r\n"
)

SIMPLE = (
    b"From: bob@example.test\r\n"
    b"To: alice@netlab.test\r\n"
    b"Subject: simple\r\n"
    b"\r\n"
    b"Just text.\r\n"
)


class StoreFixture(SynchronousTestCase):
    """
    A fresh store with the user C{USER}, and a portal that knows her.
    """

    def setUp(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="netlab-imap-"))
        self.addCleanup(shutil.rmtree, self.root, True)
        self.store = MailStore(self.root)
        self.store.ensure_user(USER)
        checker = InMemoryUsernamePasswordDatabaseDontUse(**{USER: PASSWORD})
        self.portal = Portal(LabRealm(self.store), [checker])
        self.clock = Clock()


class ServerFixture(StoreFixture):
    """
    A L{LabIMAPServer} on a L{StringTransport}; C{command} sends a line and
    returns what the server answered.
    """

    tls: object | None = None
    allow_plaintext_auth = True
    implicit_tls = False

    def setUp(self) -> None:
        super().setUp()
        self.factory = LabIMAPFactory(
            portal=self.portal,
            tls=self.tls,
            allow_plaintext_auth=self.allow_plaintext_auth,
            implicit_tls=self.implicit_tls,
            reactor=self.clock,
            max_message_size=10_000,
            max_line_length=2048,
        )
        self.server, self.transport = self.connect()
        self.greeting = self.transport.value()
        self.transport.clear()

    def connect(self) -> tuple[LabIMAPServer, StringTransport]:
        server = self.factory.buildProtocol(None)
        transport = StringTransport()
        server.makeConnection(transport)
        self.addCleanup(self._disconnect, server, transport)
        return server, transport

    @staticmethod
    def _disconnect(server: LabIMAPServer, transport: StringTransport) -> None:
        if not transport.disconnecting:
            from twisted.internet.error import ConnectionDone
            from twisted.python.failure import Failure

            server.connectionLost(Failure(ConnectionDone()))

    def send(self, data: bytes, server: LabIMAPServer | None = None) -> bytes:
        server = server or self.server
        transport = server.transport
        transport.clear()
        server.dataReceived(data)
        return transport.value()

    def command(self, line: bytes, server: LabIMAPServer | None = None) -> bytes:
        return self.send(line + b"\r\n", server)

    def login(self, server: LabIMAPServer | None = None) -> None:
        response = self.command(
            b'l1 LOGIN "' + USER.encode() + b'" "' + PASSWORD + b'"', server
        )
        self.assertIn(b"l1 OK", response)

    def select(
        self, name: bytes = b"INBOX", server: LabIMAPServer | None = None
    ) -> bytes:
        self.login(server)
        response = self.command(b"s1 SELECT " + name, server)
        self.assertIn(b"s1 OK [READ-WRITE]", response)
        return response
