"""
Tests for L{twisted_netlab.testing}: the mail lab for other projects' tests.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.mail import imap4, smtp
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.testing import (
    DEFAULT_USERS,
    connect_in_memory,
    memory_mail_lab,
)

MESSAGE = b"Subject: in memory\r\n\r\nHello from a trial test.\r\n"


class MemoryMailLabTests(SynchronousTestCase):
    def test_started_with_defaults(self) -> None:
        """
        The lab runs on a MemoryReactor with the default users, its state in
        the test's temporary directory, and is stopped at the end.
        """
        lab = memory_mail_lab(self)
        self.assertTrue(lab.running)
        self.assertEqual(lab.users.addresses(), sorted(DEFAULT_USERS))
        self.assertTrue(lab.ca_path is not None and lab.ca_path.exists())
        self.assertEqual(lab.messages("alice@example.test"), [])

    def test_twisted_smtp_client_in_memory(self) -> None:
        """
        Twisted's own ESMTP client, connected in memory, logs in (plaintext
        allowed: the client is on loopback) and delivers; the message is
        in the lab at once.
        """
        lab = memory_mail_lab(self, allow_plaintext_auth=True)
        sent: Deferred[Any] = Deferred()
        factory = smtp.ESMTPSenderFactory(
            b"alice@example.test",
            b"alice-password",
            "alice@example.test",
            ["bob@example.test"],
            # Twisted's client turns LF into CRLF itself.
            BytesIO(MESSAGE.replace(b"\r\n", b"\n")),
            sent,
            requireTransportSecurity=False,
        )
        client = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 2525))
        pump = connect_in_memory(lab, "smtp", client)
        pump.flush()
        self.assertEqual(self.successResultOf(sent)[0], 1)
        [stored] = lab.messages("bob@example.test")
        self.assertTrue(stored.endswith(b"\r\n" + MESSAGE))
        self.assertIn(b"with ESMTPA", stored)

    def test_refusals_in_memory(self) -> None:
        """
        In memory, without allow_plaintext_auth, the lab refuses to log the
        client in (there is no TLS in memory).
        """
        lab = memory_mail_lab(self)
        sent: Deferred[object] = Deferred()
        factory = smtp.ESMTPSenderFactory(
            b"alice@example.test",
            b"alice-password",
            "alice@example.test",
            ["bob@example.test"],
            BytesIO(MESSAGE),
            sent,
            retries=0,
            requireTransportSecurity=False,
        )
        client = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 2525))
        connect_in_memory(lab, "smtp", client).flush()
        self.failureResultOf(sent, smtp.AUTHRequiredError)
        self.assertEqual(lab.messages("bob@example.test"), [])

    def test_twisted_imap_client_in_memory(self) -> None:
        """
        Twisted's IMAP client, connected in memory, logs in and reads what
        the lab holds.
        """
        lab = memory_mail_lab(self, allow_plaintext_auth=True)
        lab.store.deliver("alice@example.test", MESSAGE)
        client = imap4.IMAP4Client()
        pump = connect_in_memory(lab, "imap", client)
        login = client.login(b"alice@example.test", b"alice-password")
        pump.flush()
        self.successResultOf(login)
        selected = client.select("INBOX")
        pump.flush()
        self.assertEqual(self.successResultOf(selected)["EXISTS"], 1)
        fetched = client.fetchSpecific("1", peek=True)
        pump.flush()
        self.assertEqual(self.successResultOf(fetched)[1][0][2], MESSAGE.decode())

    def test_unknown_kind(self) -> None:
        """
        Asking for a server the lab does not run is a LookupError.
        """
        lab = memory_mail_lab(self, imap=[])
        self.assertRaises(
            LookupError, connect_in_memory, lab, "imap", imap4.IMAP4Client()
        )


class MemoryMailLabPOP3Tests(SynchronousTestCase):
    def test_twisted_pop3_client_in_memory(self) -> None:
        """
        The in-memory lab serves POP3 too: Twisted's POP3 client, connected
        in memory, logs in (plaintext allowed), lists the unique ids, reads
        the message back as it was stored, and deletes it at QUIT.
        """
        from twisted.mail.pop3 import AdvancedPOP3Client

        lab = memory_mail_lab(self, allow_plaintext_auth=True)
        lab.store.deliver("alice@example.test", MESSAGE)
        client = AdvancedPOP3Client()
        client.allowInsecureLogin = True
        pump = connect_in_memory(lab, "pop3", client)
        login = client.login(b"alice@example.test", b"alice-password")
        pump.flush()
        self.successResultOf(login)
        uids = client.listUID()
        pump.flush()
        self.assertEqual(len(self.successResultOf(uids)), 1)
        lines = client.retrieve(0)
        pump.flush()
        self.assertEqual(
            b"".join(line + b"\r\n" for line in self.successResultOf(lines)),
            MESSAGE,
        )
        client.delete(0)
        done = client.quit()
        pump.flush()
        self.successResultOf(done)
        self.assertEqual(lab.messages("alice@example.test"), [])
