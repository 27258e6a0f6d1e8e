"""
Tests for L{twisted_netlab.cli.mailuser}: C{netlab mail-user}.
"""

from __future__ import annotations

import io
import sys
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from tests.scratch import fresh_path
from twisted_netlab.cli import COMMANDS, mailuser
from twisted_netlab.errors import UsageProblem
from twisted_netlab.mail.lab.users import UnknownUser, UsersFile


class TTYInput(io.StringIO):
    def isatty(self) -> bool:
        return True


class MailUserTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.state = fresh_path(self)
        self.stdout = io.StringIO()
        self.patch(sys, "stdout", self.stdout)

    def parse(self, *args: str) -> mailuser.Options:
        options = mailuser.Options()
        options.parseOptions([*args[:1], "--state", str(self.state), *args[1:]])
        return options

    def run_command(self, *args: str, stdin: Any = None) -> int:
        self.patch(sys, "stdin", io.StringIO("") if stdin is None else stdin)
        d = Deferred.fromCoroutine(mailuser.run(MemoryReactor(), self.parse(*args)))
        return self.successResultOf(d)

    def fail_command(self, *args: str, stdin: Any = None) -> Exception:
        self.patch(sys, "stdin", io.StringIO("") if stdin is None else stdin)
        d = Deferred.fromCoroutine(mailuser.run(MemoryReactor(), self.parse(*args)))
        return self.failureResultOf(d, UsageProblem).value

    def test_registered(self) -> None:
        """
        The command is C{netlab mail-user}.
        """
        self.assertEqual(COMMANDS["mail-user"][0], "twisted_netlab.cli.mailuser")

    def test_add_from_stdin(self) -> None:
        """
        C{add} reads the password from the first line of standard input
        when it is not a terminal, stores the user (lowercased) and makes its
        mailbox.
        """
        code = self.run_command(
            "add", "Alice@Example.test", stdin=io.StringIO("s3cret\nignored\n")
        )
        self.assertEqual(code, 0)
        self.assertEqual(self.stdout.getvalue(), "added alice@example.test\n")
        users = UsersFile(self.state / "users")
        self.assertTrue(users.verify("alice@example.test", "s3cret"))
        self.assertTrue((self.state / "mail" / "alice@example.test" / "cur").is_dir())

    def test_change_password(self) -> None:
        """
        C{add} for an existing user sets its password.
        """
        self.run_command("add", "alice@example.test", stdin=io.StringIO("one\n"))
        self.run_command("add", "alice@example.test", stdin=io.StringIO("two\n"))
        self.assertTrue(
            self.stdout.getvalue().endswith(
                "changed the password of alice@example.test\n"
            )
        )
        self.assertTrue(
            UsersFile(self.state / "users").verify("alice@example.test", "two")
        )

    def test_add_prompts_on_terminal(self) -> None:
        """
        On a terminal the password is prompted for twice with getpass; two
        different entries are refused.
        """
        answers = iter(["pw", "pw", "a", "b"])
        self.patch(mailuser.getpass, "getpass", lambda prompt: next(answers))
        self.assertEqual(
            self.run_command("add", "alice@example.test", stdin=TTYInput()), 0
        )
        error = self.fail_command("add", "bob@example.test", stdin=TTYInput())
        self.assertEqual(str(error), "the two passwords differ")
        self.assertEqual(
            UsersFile(self.state / "users").addresses(), ["alice@example.test"]
        )

    def test_empty_password(self) -> None:
        """
        No password (empty standard input or an empty line) is refused.
        """
        for stdin in ["", "\n"]:
            error = self.fail_command(
                "add", "alice@example.test", stdin=io.StringIO(stdin)
            )
            self.assertIn("no password given", str(error))
        self.assertEqual(UsersFile(self.state / "users").addresses(), [])

    def test_list_and_remove(self) -> None:
        """
        C{list} prints one address a line; C{remove} removes one, and says
        its mail stays; removing an unknown user is an error.
        """
        self.assertEqual(self.run_command("list"), 0)
        self.assertEqual(self.stdout.getvalue(), "")
        for name in ["bob", "alice"]:
            self.run_command("add", f"{name}@example.test", stdin=io.StringIO("pw\n"))
        self.stdout.truncate(0)
        self.stdout.seek(0)
        self.run_command("list")
        self.assertEqual(
            self.stdout.getvalue(), "alice@example.test\nbob@example.test\n"
        )
        self.run_command("remove", "bob@example.test")
        self.assertIn("removed bob@example.test", self.stdout.getvalue())
        self.assertEqual(
            UsersFile(self.state / "users").addresses(), ["alice@example.test"]
        )
        error = self.fail_command("remove", "bob@example.test")
        self.assertIsInstance(error, UnknownUser)

    def test_usage_errors(self) -> None:
        """
        A missing or unknown action, a missing or bad address, or an address
        given to list, are usage errors.
        """
        with self.assertRaises(usage.UsageError) as caught:
            mailuser.Options().parseOptions([])
        self.assertIn("no action given (add, remove, list)", str(caught.exception))
        for args, expected in [
            (("frob",), "Unknown command: frob"),
            (("add",), "add needs one ADDRESS"),
            (("remove",), "remove needs one ADDRESS"),
            (("add", "a@example.test", "b@example.test"), "add needs one ADDRESS"),
            (("add", "not-an-address"), "bad address"),
            (("list", "alice@example.test"), "list takes no address"),
        ]:
            with self.assertRaises(usage.UsageError) as caught:
                self.parse(*args)
            self.assertIn(expected, str(caught.exception))

    def test_default_state(self) -> None:
        """
        Without --state the command uses ./netlab-state, like twistd netlab.
        """
        options = mailuser.Options()
        options.parseOptions(["list"])
        self.assertEqual(options["state"], "netlab-state")
        options = mailuser.Options()
        options.parseOptions(["add", "alice@example.test"])
        self.assertEqual(options["state"], "netlab-state")
