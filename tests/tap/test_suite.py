"""
Tests for L{twisted_netlab.tap.suite}: C{twistd netlab}.
"""

from __future__ import annotations

import os

from twisted.internet.testing import MemoryReactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from tests.scratch import fresh_path
from twisted_netlab.echo import EchoFactory
from twisted_netlab.hello import HelloFactory
from twisted_netlab.mail.lab.smtp.server import LabSMTPFactory
from twisted_netlab.mail.lab.users import UsersFile
from twisted_netlab.tap import suite


class SuiteTests(SynchronousTestCase):
    def setUp(self) -> None:
        # The suite's state defaults to ./netlab-state: run in a scratch cwd.
        scratch = fresh_path(self)
        scratch.mkdir()
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(scratch)
        self.scratch = scratch

    def test_defaults(self) -> None:
        """
        With no arguments the suite serves hello on 7070, echo on 7071, SMTP
        on 2525 and IMAP on 1143, on loopback only; the mail lab keeps its
        state in ./netlab-state for the domain netlab.test.
        """
        options = suite.Options()
        options.parseOptions([])
        self.assertEqual(options["state"], "netlab-state")
        self.assertEqual(options["domains"], ["netlab.test"])
        reactor = MemoryReactor()
        service = suite.makeService(options, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        servers = {
            (port, interface): type(factory)
            for port, factory, _, interface in reactor.tcpServers
        }
        self.assertEqual(servers[(7070, "127.0.0.1")], HelloFactory)
        self.assertEqual(servers[(7071, "127.0.0.1")], EchoFactory)
        self.assertEqual(servers[(2525, "127.0.0.1")], LabSMTPFactory)
        self.assertIn((1143, "127.0.0.1"), servers)
        self.assertTrue((self.scratch / "netlab-state" / "tls" / "cert.pem").exists())

    def test_first_user(self) -> None:
        """
        With no user yet, the suite makes one in netlab.test; once there is
        one, it makes no other.
        """
        options = suite.Options()
        options.parseOptions([])
        suite.makeService(options, MemoryReactor())
        users = UsersFile(self.scratch / "netlab-state" / "users")
        self.assertEqual(users.addresses(), ["lab@netlab.test"])
        suite.makeService(options, MemoryReactor())
        self.assertEqual(users.addresses(), ["lab@netlab.test"])

    def test_mail_options(self) -> None:
        """
        The suite takes the mail lab's options.
        """
        options = suite.Options()
        options.parseOptions(
            ["--state", "elsewhere", "--domain", "x.test", "--smtp", "tcp:0"]
        )
        self.assertEqual(options["state"], "elsewhere")
        self.assertEqual(options["domains"], ["x.test"])
        self.assertEqual(options["smtp"], ["tcp:0"])

    def test_bad_endpoint(self) -> None:
        """
        A bad C{--echo} or C{--imap} endpoint is a usage error.
        """
        options = suite.Options()
        self.assertRaises(usage.UsageError, options.parseOptions, ["--echo", "bogus:"])
        options = suite.Options()
        self.assertRaises(usage.UsageError, options.parseOptions, ["--imap", "bogus:"])


class SuitePOP3Tests(SynchronousTestCase):
    setUp = SuiteTests.setUp

    def test_pop3_default(self) -> None:
        """
        twistd netlab serves POP3 on loopback port 1110 unless told
        otherwise.
        """
        from twisted_netlab.mail.lab.pop3 import LabPOP3Factory

        options = suite.Options()
        options.parseOptions([])
        self.assertEqual(options["pop3"], ["tcp:1110:interface=127.0.0.1"])
        reactor = MemoryReactor()
        service = suite.makeService(options, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        servers = {
            (port, interface): type(factory)
            for port, factory, _, interface in reactor.tcpServers
        }
        self.assertEqual(servers[(1110, "127.0.0.1")], LabPOP3Factory)

    def test_pop3_option(self) -> None:
        """
        --pop3 replaces the suite's POP3 listener.
        """
        options = suite.Options()
        options.parseOptions(["--pop3", "tcp:0:interface=127.0.0.1"])
        self.assertEqual(options["pop3"], ["tcp:0:interface=127.0.0.1"])
