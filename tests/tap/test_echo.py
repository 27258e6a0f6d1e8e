"""
Tests for L{twisted_netlab.tap.echo}: C{twistd netlab-echo}'s options and
service.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.echo import EchoFactory
from twisted_netlab.tap import echo


def parse(*args: str) -> echo.Options:
    options = echo.Options()
    options.parseOptions(list(args))
    return options


class OptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """
        Loopback port 7071, prefix S:, 65536-byte lines, 300 s idle timeout,
        10000 connections.
        """
        options = parse()
        self.assertEqual(options["listen"], ["tcp:7071:interface=127.0.0.1"])
        self.assertEqual(options["prefix_bytes"], b"S:")
        self.assertEqual(options["max-line-length"], 65536)
        self.assertEqual(options["idle-timeout"], 300.0)
        self.assertEqual(options["max-connections"], 10000)

    def test_values(self) -> None:
        """
        Every option is converted to its type.
        """
        options = parse(
            "--prefix",
            "É:",
            "--max-line-length",
            "100",
            "--idle-timeout",
            "0.5",
            "--max-connections",
            "3",
        )
        self.assertEqual(options["prefix_bytes"], "É:".encode())
        self.assertEqual(
            (
                options["max-line-length"],
                options["idle-timeout"],
                options["max-connections"],
            ),
            (100, 0.5, 3),
        )

    def test_bad_values(self) -> None:
        """
        Bad numbers and a prefix with a newline are usage errors naming the
        option.
        """
        cases = [
            (["--max-line-length", "x"], "--max-line-length"),
            (["--max-line-length", "0"], "--max-line-length"),
            (["--idle-timeout", "-1"], "--idle-timeout"),
            (["--idle-timeout", "nan"], "--idle-timeout"),
            (["--idle-timeout", "soon"], "--idle-timeout"),
            (["--max-connections", "0"], "--max-connections"),
            (["--prefix", "a\nb"], "--prefix"),
            (["--listen", "tcp:"], "tcp:"),
        ]
        for args, name in cases:
            e = self.assertRaises(usage.UsageError, parse, *args)
            self.assertIn(name, str(e))
            self.assertNotIn("\n", str(e))


class ServiceTests(SynchronousTestCase):
    def test_factory_settings(self) -> None:
        """
        The service's factory carries the options and the given reactor.
        """
        reactor = MemoryReactor()
        service = echo.makeService(
            parse("--listen", "tcp:0", "--prefix", ">", "--idle-timeout", "0"), reactor
        )
        service.startService()
        [(port, factory, _, _interface)] = reactor.tcpServers
        assert isinstance(factory, EchoFactory)
        self.assertEqual((port, factory.prefix, factory.idle_timeout), (0, b">", None))
        self.assertIs(factory.reactor, reactor)
