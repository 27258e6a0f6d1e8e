"""
Tests for L{twisted_netlab.mail.lab.smtp.routing}: where mail for an address
goes, and the Received: header of each copy.
"""

from __future__ import annotations

import re

from twisted.internet.address import IPv4Address, UNIXAddress
from twisted.mail import smtp
from twisted.trial.unittest import SynchronousTestCase

from tests.scratch import fresh_path
from twisted_netlab.mail.lab.smtp.routing import (
    client_address,
    describe,
    local_recipient,
    received_header,
)
from twisted_netlab.mail.lab.users import UsersFile

DOMAINS = frozenset({"example.test"})


class LocalRecipientTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.users = UsersFile(fresh_path(self) / "users")
        self.users.add("alice@example.test", "pw")

    def route(self, address: bytes, catch_all: str | None = None) -> str:
        return local_recipient(
            smtp.Address(address),
            domains=DOMAINS,
            users=self.users,
            catch_all=catch_all,
        )

    def refusal(self, address: bytes) -> tuple[int, str]:
        error = self.assertRaises(smtp.SMTPBadRcpt, self.route, address)
        return error.code, str(error.resp)

    def test_user(self) -> None:
        """
        A lab user's mail goes to that user, whatever the case it is
        written in.
        """
        self.assertEqual(self.route(b"Alice@EXAMPLE.test"), "alice@example.test")

    def test_no_relay(self) -> None:
        """
        Without a catch-all, mail for another domain is refused (550, the
        lab never relays), and so is mail for an unknown local user.
        """
        code, reason = self.refusal(b"bob@elsewhere.test")
        self.assertEqual(code, 550)
        self.assertIn("Relaying denied", reason)
        self.assertEqual(self.refusal(b"nobody@example.test")[0], 550)

    def test_catch_all(self) -> None:
        """
        With a catch-all, everything that is not a lab user goes to it; a
        lab user's mail still goes to the user.
        """
        for address in (b"bob@elsewhere.test", b"nobody@example.test"):
            self.assertEqual(self.route(address, "c@example.test"), "c@example.test")
        self.assertEqual(
            self.route(b"alice@example.test", "c@example.test"), "alice@example.test"
        )

    def test_subaddress(self) -> None:
        """
        A subaddress of a lab user (RFC 5233, C{alice+news@}) goes to that
        user; a user of that exact name keeps its own mail; a subaddress of
        no user is refused, or goes to the catch-all.
        """
        self.assertEqual(self.route(b"Alice+News@example.test"), "alice@example.test")
        self.assertEqual(self.route(b"alice+a+b@example.test"), "alice@example.test")
        self.users.add("alice+own@example.test", "pw")
        self.assertEqual(
            self.route(b"alice+own@example.test"), "alice+own@example.test"
        )
        self.assertEqual(self.refusal(b"nobody+x@example.test")[0], 550)
        self.assertEqual(self.refusal(b"+x@example.test")[0], 550)
        self.assertEqual(
            self.route(b"nobody+x@example.test", "c@example.test"), "c@example.test"
        )

    def test_unreadable_users_file(self) -> None:
        """
        When the users file cannot be read, a local recipient gets 451 (try
        again later), and the failure is logged.
        """
        self.users.path.write_bytes(b"\xff\xfe not text\n")
        code, reason = self.refusal(b"alice@example.test")
        self.assertEqual(code, 451)
        self.assertIn("try again later", reason)
        self.assertEqual(len(self.flushLoggedErrors()), 1)


class ReceivedHeaderTests(SynchronousTestCase):
    def test_names(self) -> None:
        """
        The header names the client's HELO (made printable) and address,
        the server, the RFC 3848 protocol (UTF8SMTP or ESMTP, S for TLS,
        A for AUTH) and the one recipient, folded with CRLF and a tab.
        """
        header = received_header(
            helo=b"c(l)ient\x00",
            peer=IPv4Address("TCP", "192.0.2.1", 25),
            host=b"mail.example.test",
            secure=True,
            authenticated=True,
            for_=smtp.Address(b"alice@example.test"),
            smtputf8=True,
        )
        self.assertRegex(
            header,
            rb"^Received: from c\?l\?ient\? \(\[192\.0\.2\.1\]\)\r\n"
            rb"\tby mail\.example\.test \(netlab mail lab\) with UTF8SMTPSA\r\n"
            rb"\tfor <alice@example\.test>; .+ [-+]0000$",
        )

    def test_unknown_helo(self) -> None:
        """
        Without a HELO name the header says "unknown"; a copy for several
        recipients names none of them.
        """
        header = received_header(
            helo=None,
            peer=UNIXAddress(None),
            host=b"lab",
            secure=False,
            authenticated=False,
        )
        self.assertTrue(header.startswith(b"Received: from unknown (unix socket)"))
        self.assertIn(b" with ESMTP; ", header)
        self.assertIsNone(re.search(rb"\bfor <", header))

    def test_addresses(self) -> None:
        """
        A peer is described as [IP] (or "unix socket") and put in the
        envelope as its IP (or "unix").
        """
        peer = IPv4Address("TCP", "127.0.0.1", 1025)
        self.assertEqual(
            (describe(peer), client_address(peer)), ("[127.0.0.1]", "127.0.0.1")
        )
        unix = UNIXAddress(None)
        self.assertEqual(
            (describe(unix), client_address(unix)), ("unix socket", "unix")
        )
