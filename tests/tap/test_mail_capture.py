"""
Tests for the capture options of L{twisted_netlab.tap.mail} (C{twistd
netlab-mail}) and L{twisted_netlab.tap.suite} (C{twistd netlab}):
C{--catch-all}, C{--max-recipients}, C{--max-messages} and C{--max-age}.
"""

from __future__ import annotations

import os

from twisted.internet.testing import MemoryReactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from tests.scratch import fresh_path
from twisted_netlab.mail.lab.service import MailLab
from twisted_netlab.mail.lab.smtp.server import MAX_RECIPIENTS, LabSMTPFactory
from twisted_netlab.mail.lab.store.maildir import Retention
from twisted_netlab.tap import mail, suite

BASE = ("--domain", "example.test")


class CaptureOptionsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.state = str(fresh_path(self))

    def parse(self, *args: str) -> mail.Options:
        options = mail.Options()
        options.parseOptions(["--state", self.state, *BASE, *args])
        return options

    def lab(self, options: mail.Options) -> MailLab:
        service = mail.makeService(options, MemoryReactor())
        assert isinstance(service, MailLab)
        return service

    def test_defaults(self) -> None:
        """
        By default: no catch-all, 100 recipients, no retention limit.
        """
        options = self.parse()
        self.assertIsNone(options["catch-all"])
        self.assertEqual(options["max-recipients"], MAX_RECIPIENTS)
        self.assertIsNone(options["max-messages"])
        self.assertIsNone(options["max-age"])
        lab = self.lab(options)
        self.assertIsNone(lab.catch_all)
        self.assertEqual(lab.store.retention, Retention())

    def test_values(self) -> None:
        """
        The options reach the lab: the catch-all (lowercased), the recipient
        limit and retention.
        """
        options = self.parse(
            "--catch-all",
            "Inbox@Captured.example",
            "--max-recipients",
            "5",
            "--max-messages",
            "1000",
            "--max-age",
            "2h",
        )
        lab = self.lab(options)
        self.assertEqual(lab.catch_all, "inbox@captured.example")
        [factory] = lab.factories["smtp"]
        assert isinstance(factory, LabSMTPFactory)
        self.assertEqual(factory.catch_all, "inbox@captured.example")
        self.assertEqual(factory.max_recipients, 5)
        self.assertEqual(lab.store.retention, Retention(1000, 7200))

    def test_durations(self) -> None:
        """
        --max-age takes seconds, minutes, hours or days (a bare number is
        seconds).
        """
        for text, seconds in [
            ("30s", 30),
            ("10m", 600),
            ("2h", 7200),
            ("7d", 604800),
            ("45", 45),
            ("1D", 86400),
        ]:
            self.assertEqual(self.parse("--max-age", text)["max-age"], seconds, text)

    def test_bad_values(self) -> None:
        """
        Bad values are one-line usage errors naming the option.
        """
        for args, wanted in [
            (("--max-age", "soon"), "--max-age: not a duration: 'soon'"),
            (("--max-age", "0s"), "--max-age: not a duration"),
            (("--max-age", "-5m"), "--max-age: not a duration"),
            (("--max-age", "1.5h"), "--max-age: not a duration"),
            (("--max-messages", "0"), "--max-messages must be at least 1"),
            (("--max-messages", "many"), "--max-messages must be a whole number"),
            (("--max-recipients", "0"), "--max-recipients must be at least 1"),
            (("--catch-all", "nobody"), "--catch-all: bad address 'nobody'"),
        ]:
            with self.assertRaises(usage.UsageError) as caught:
                self.parse(*args)
            message = str(caught.exception)
            self.assertTrue(message.startswith(wanted), message)
            self.assertNotIn("\n", message)


class SuiteCaptureTests(SynchronousTestCase):
    def setUp(self) -> None:
        scratch = fresh_path(self)
        scratch.mkdir()
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(scratch)

    def smtp(self, *args: str) -> LabSMTPFactory:
        options = suite.Options()
        options.parseOptions(list(args))
        reactor = MemoryReactor()
        service = suite.makeService(options, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        [factory] = [
            f for _, f, _, _ in reactor.tcpServers if f.__class__ is LabSMTPFactory
        ]
        return factory

    def test_captures_into_first_user(self) -> None:
        """
        With no arguments, C{twistd netlab} captures into its first user.
        """
        self.assertEqual(self.smtp().catch_all, "lab@netlab.test")

    def test_catch_all_given(self) -> None:
        """
        --catch-all names another address.
        """
        self.assertEqual(
            self.smtp("--catch-all", "all@netlab.test").catch_all, "all@netlab.test"
        )

    def test_no_catch_all(self) -> None:
        """
        --no-catch-all accepts mail for the lab's users only; with
        --catch-all it is a usage error.
        """
        self.assertIsNone(self.smtp("--no-catch-all").catch_all)
        options = suite.Options()
        with self.assertRaises(usage.UsageError):
            options.parseOptions(["--no-catch-all", "--catch-all", "a@netlab.test"])
