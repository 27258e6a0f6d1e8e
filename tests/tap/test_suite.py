"""
Tests for L{twisted_netlab.tap.suite}: C{twistd netlab}.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.echo import EchoFactory
from twisted_netlab.hello import HelloFactory
from twisted_netlab.tap import suite


class SuiteTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """
        With no arguments the suite serves hello on 7070 and echo on 7071,
        on loopback only.
        """
        options = suite.Options()
        options.parseOptions([])
        reactor = MemoryReactor()
        suite.makeService(options, reactor).startService()
        servers = {
            (port, interface): type(factory)
            for port, factory, _, interface in reactor.tcpServers
        }
        self.assertEqual(servers[(7070, "127.0.0.1")], HelloFactory)
        self.assertEqual(servers[(7071, "127.0.0.1")], EchoFactory)

    def test_bad_endpoint(self) -> None:
        """
        A bad C{--echo} endpoint is a usage error.
        """
        options = suite.Options()
        self.assertRaises(usage.UsageError, options.parseOptions, ["--echo", "bogus:"])
