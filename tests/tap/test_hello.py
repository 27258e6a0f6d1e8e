"""
Tests for L{twisted_netlab.tap.hello}: C{twistd netlab-hello}'s options and
service.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.hello import DEFAULT_GREETING, HelloFactory
from twisted_netlab.tap import hello


def parse(*args: str) -> hello.Options:
    options = hello.Options()
    options.parseOptions(list(args))
    return options


class OptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """
        With no options: loopback port 7070 and the course page's greeting.
        """
        options = parse()
        self.assertEqual(options["listen"], ["tcp:7070:interface=127.0.0.1"])
        self.assertEqual(options["greeting_bytes"], DEFAULT_GREETING)

    def test_listen_repeats(self) -> None:
        """
        C{--listen} may repeat; the default is then not added.
        """
        options = parse("--listen", "tcp:1234", "--listen", "unix:/tmp/hello.sock")
        self.assertEqual(options["listen"], ["tcp:1234", "unix:/tmp/hello.sock"])

    def test_greeting(self) -> None:
        """
        C{--greeting} is encoded as UTF-8 and ended with CRLF.
        """
        self.assertEqual(
            parse("--greeting", "Grüß")["greeting_bytes"], "Grüß\r\n".encode()
        )

    def test_systemd_without_socket(self) -> None:
        """
        A systemd endpoint when systemd passed no socket says so.
        """
        self.patch(__import__("os"), "environ", {})
        e = self.assertRaises(
            usage.UsageError, parse, "--listen", "systemd:domain=INET:index=0"
        )
        self.assertIn("systemd passed no listening socket", str(e))

    def test_bad_endpoint(self) -> None:
        """
        A malformed or unknown endpoint description is a usage error naming it.
        """
        for bad in [
            "nonsense:1",
            "tcp:notaport",
            "ssl:443:privateKey=/nonexistent.pem",
        ]:
            e = self.assertRaises(usage.UsageError, parse, "--listen", bad)
            self.assertIn(repr(bad), str(e))


class ServiceTests(SynchronousTestCase):
    def test_listens_where_told(self) -> None:
        """
        The service listens on every endpoint with a L{HelloFactory} carrying
        the configured greeting.
        """
        reactor = MemoryReactor()
        service = hello.makeService(
            parse("--listen", "tcp:7070:interface=127.0.0.1", "--listen", "tcp:7171"),
            reactor,
        )
        service.privilegedStartService()
        service.startService()
        ports = [(p, i) for p, _, _, i in reactor.tcpServers]
        self.assertEqual(ports, [(7070, "127.0.0.1"), (7171, "")])
        factory = reactor.tcpServers[0][1]
        assert isinstance(factory, HelloFactory)
        self.assertEqual(factory.greeting, DEFAULT_GREETING)
