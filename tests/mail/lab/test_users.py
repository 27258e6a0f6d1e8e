"""
Tests for L{twisted_netlab.mail.lab.users}: the users file and its checker.
"""

from __future__ import annotations

import os
import stat

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase

from tests.scratch import fresh_path
from twisted_netlab.errors import UsageProblem
from twisted_netlab.mail.lab.users import (
    BadAddress,
    BadDomain,
    BadPassword,
    UnknownUser,
    UsersChecker,
    UsersFile,
    UsersFileError,
    normalize_address,
    normalize_domain,
)


class AddressTests(SynchronousTestCase):
    def test_lowercased(self) -> None:
        """
        Addresses are the lab's user names in lower case.
        """
        self.assertEqual(
            normalize_address("Alice.B+tag@Example.TEST"), "alice.b+tag@example.test"
        )

    def test_refused(self) -> None:
        """
        Anything that is not local@domain, or that could name a directory
        outside the mail store, is refused with a one-line usage error.
        """
        for bad in [
            "",
            "alice",
            "@example.test",
            "alice@",
            "a/b@example.test",
            "../x@example.test",
            ".alice@example.test",
            "alice..b@example.test",
            "alice@exa_mple.test",
            "alice@-example.test",
            "al ice@example.test",
            "alice@example.test/..",
            "älice@example.test",
            "alice@example.test\n",
            "x" * 250 + "@example.test",
        ]:
            with self.assertRaises(BadAddress, msg=repr(bad)) as caught:
                normalize_address(bad)
            self.assertIsInstance(caught.exception, UsageProblem)
            self.assertNotIn("\n", str(caught.exception))

    def test_domains(self) -> None:
        """
        Domains are lowercased; names that are not domain names are refused.
        """
        self.assertEqual(normalize_domain("Example.TEST"), "example.test")
        for bad in ["", "a b", "exa/mple", "-x.test", "x..test"]:
            self.assertRaises(BadDomain, normalize_domain, bad)


class UsersFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.path = fresh_path(self) / "users"
        self.users = UsersFile(self.path)

    def test_missing_file_has_no_users(self) -> None:
        """
        A state directory without a users file has no users.
        """
        self.assertEqual(self.users.addresses(), [])
        self.assertNotIn("alice@example.test", self.users)
        self.assertFalse(self.users.verify("alice@example.test", "x"))

    def test_add_and_verify(self) -> None:
        """
        An added user is listed (lowercased) and its password, and only its
        password, verifies; the file holds a salted scrypt hash, never the
        password, and only its owner can read it.
        """
        self.users.add("Alice@Example.test", "s3cret")
        self.assertEqual(self.users.addresses(), ["alice@example.test"])
        self.assertIn("ALICE@example.test", self.users)
        self.assertTrue(self.users.verify("alice@EXAMPLE.test", "s3cret"))
        self.assertFalse(self.users.verify("alice@example.test", "s3cret "))
        self.assertFalse(self.users.verify("bob@example.test", "s3cret"))
        text = self.path.read_text()
        self.assertNotIn("s3cret", text)
        self.assertIn("alice@example.test scrypt:16384:8:1:", text)
        self.assertEqual(stat.S_IMODE(os.stat(self.path).st_mode), 0o600)

    def test_salted(self) -> None:
        """
        The same password gives different hashes for different users.
        """
        self.users.add("a@example.test", "same")
        self.users.add("b@example.test", "same")
        hashes = [
            line.split()[1]
            for line in self.path.read_text().splitlines()
            if not line.startswith("#")
        ]
        self.assertEqual(len(hashes), 2)
        self.assertNotEqual(hashes[0], hashes[1])

    def test_add_replaces_password(self) -> None:
        """
        Adding an existing user sets a new password; the old one stops working.
        """
        self.users.add("alice@example.test", "old")
        self.users.add("alice@example.test", "new")
        self.assertEqual(self.users.addresses(), ["alice@example.test"])
        self.assertTrue(self.users.verify("alice@example.test", "new"))
        self.assertFalse(self.users.verify("alice@example.test", "old"))

    def test_remove(self) -> None:
        """
        A removed user is gone; removing an unknown one is an error.
        """
        self.users.add("alice@example.test", "pw")
        self.users.add("bob@example.test", "pw")
        self.users.remove("ALICE@example.test")
        self.assertEqual(self.users.addresses(), ["bob@example.test"])
        self.assertRaises(UnknownUser, self.users.remove, "alice@example.test")

    def test_bad_input(self) -> None:
        """
        Bad addresses and empty passwords are refused and change nothing.
        """
        self.assertRaises(BadAddress, self.users.add, "not-an-address", "pw")
        self.assertRaises(BadPassword, self.users.add, "alice@example.test", "")
        self.assertFalse(self.path.exists())

    def test_unicode_password(self) -> None:
        """
        Passwords are UTF-8 text.
        """
        self.users.add("alice@example.test", "pässwörd ✓")
        self.assertTrue(self.users.verify("alice@example.test", "pässwörd ✓"))

    def test_changes_by_others_are_seen(self) -> None:
        """
        A change made through another L{UsersFile} (another process, such as
        C{netlab mail-user}) is seen without a restart.
        """
        self.users.add("alice@example.test", "pw")
        self.assertNotIn("bob@example.test", self.users)
        UsersFile(self.path).add("bob@example.test", "pw")
        self.assertIn("bob@example.test", self.users)
        UsersFile(self.path).remove("alice@example.test")
        self.assertNotIn("alice@example.test", self.users)

    def test_corrupt_file(self) -> None:
        """
        A malformed line is a one-line error naming the file and line.
        """
        self.path.parent.mkdir(parents=True)
        self.path.write_text("# comment\n\nalice@example.test plaintext\n")
        with self.assertRaises(UsersFileError) as caught:
            self.users.addresses()
        self.assertIn("line 3", str(caught.exception))
        self.assertNotIn("\n", str(caught.exception))

    def test_unwritable(self) -> None:
        """
        A users file that cannot be written is a one-line error.
        """
        blocker = fresh_path(self)
        blocker.write_text("a file, not a directory")
        users = UsersFile(blocker / "users")
        with self.assertRaises(UsersFileError) as caught:
            users.add("alice@example.test", "pw")
        self.assertIn(str(blocker), str(caught.exception))


class UsersCheckerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.users = UsersFile(fresh_path(self) / "users")
        self.users.add("alice@example.test", "pw")
        self.checker = UsersChecker(self.users)

    def test_good_password(self) -> None:
        """
        The right password gives the lowercased address as bytes, whatever
        the case of the login name.
        """
        for name in [b"Alice@Example.test", b"alice@example.test"]:
            avatar = self.successResultOf(
                self.checker.requestAvatarId(UsernamePassword(name, b"pw"))
            )
            self.assertEqual(avatar, b"alice@example.test")

    def test_bad_credentials(self) -> None:
        """
        A wrong password, an unknown user, a name that is no address and
        bytes that are not UTF-8 are all refused with L{UnauthorizedLogin}.
        """
        for name, password in [
            (b"alice@example.test", b"wrong"),
            (b"bob@example.test", b"pw"),
            (b"alice", b"pw"),
            (b"\xff@example.test", b"pw"),
            (b"alice@example.test", b"\xff"),
        ]:
            self.failureResultOf(
                self.checker.requestAvatarId(UsernamePassword(name, password)),
                UnauthorizedLogin,
            )

    def test_unreadable_file(self) -> None:
        """
        A broken users file refuses the login (and is logged), it does not
        break the server.
        """
        self.users.path.write_text("garbage\n")
        self.failureResultOf(
            self.checker.requestAvatarId(
                UsernamePassword(b"alice@example.test", b"pw")
            ),
            UnauthorizedLogin,
        )
        self.assertEqual(len(self.flushLoggedErrors(UsersFileError)), 1)

    def test_no_threads_without_thread_pool(self) -> None:
        """
        Given a reactor without threads (a L{MemoryReactor}), the check runs
        at once.
        """
        checker = UsersChecker(self.users, reactor=MemoryReactor())
        self.assertEqual(
            self.successResultOf(
                checker.requestAvatarId(UsernamePassword(b"alice@example.test", b"pw"))
            ),
            b"alice@example.test",
        )
