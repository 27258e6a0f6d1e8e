"""
Tests for the HTTP API's options of C{twistd netlab-mail} and C{twistd
netlab}: C{--http}, C{--https}, C{--http-host}, the suite's default.
"""

from __future__ import annotations

import os

from twisted.internet.testing import MemoryReactor
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import Site

from tests.scratch import fresh_path
from twisted_netlab.tap import mail, suite

BASE = ("--state", "lab-state", "--domain", "example.test")


class HTTPOptionsTests(SynchronousTestCase):
    def test_no_http_by_default(self) -> None:
        """
        twistd netlab-mail serves no HTTP API unless asked.
        """
        options = mail.Options()
        options.parseOptions(list(BASE))
        self.assertEqual((options["http"], options["https"]), ([], []))

    def test_values(self) -> None:
        """
        --http, --https and --http-host are repeatable and reach the lab.
        """
        options = mail.Options()
        state = fresh_path(self)
        options.parseOptions(
            [
                "--state",
                str(state),
                "--domain",
                "example.test",
                "--http",
                "tcp:8080:interface=127.0.0.1",
                "--https",
                "tcp:8443:interface=127.0.0.1",
                "--http-host",
                "inbox.example.test",
            ]
        )
        lab = mail.make_lab(options, MemoryReactor(), "netlab-mail")
        self.assertEqual(lab.descriptions["http"], ["tcp:8080:interface=127.0.0.1"])
        self.assertEqual(lab.descriptions["https"], ["tcp:8443:interface=127.0.0.1"])
        self.assertEqual(lab.http_hosts, ["inbox.example.test"])

    def test_exposed_without_tls_is_one_line(self) -> None:
        """
        An --http listener off loopback without TLS ends startup with one
        line and exit status 1.
        """
        options = mail.Options()
        options.parseOptions(
            [
                *("--state", str(fresh_path(self))),
                *("--domain", "example.test"),
                *("--http", "tcp:8025"),
            ]
        )
        err = self.patch_stderr()
        raised = self.assertRaises(
            SystemExit, mail.make_lab, options, MemoryReactor(), "netlab-mail"
        )
        self.assertEqual(raised.code, 1)
        [line] = err
        self.assertIn("without TLS", line)
        self.assertTrue(line.startswith("netlab-mail: "))

    def patch_stderr(self) -> list[str]:
        import sys

        lines: list[str] = []

        class Capture:
            def write(self, text: str) -> None:
                lines.extend(text.splitlines())

        self.patch(sys, "stderr", Capture())
        return lines


class SuiteHTTPTests(SynchronousTestCase):
    def test_default_http(self) -> None:
        """
        twistd netlab serves the HTTP API on loopback 8025 (Mailpit's port)
        unless told otherwise.
        """
        scratch = fresh_path(self)
        scratch.mkdir()
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(scratch)
        options = suite.Options()
        options.parseOptions([])
        self.assertEqual(options["http"], ["tcp:8025:interface=127.0.0.1"])
        reactor = MemoryReactor()
        service = suite.makeService(options, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        servers = {
            (port, interface): factory
            for port, factory, _, interface in reactor.tcpServers
        }
        self.assertIsInstance(servers[(8025, "127.0.0.1")], Site)
        options = suite.Options()
        options.parseOptions(["--http", "tcp:9025:interface=127.0.0.1"])
        self.assertEqual(options["http"], ["tcp:9025:interface=127.0.0.1"])


class CaptureHTTPTests(SynchronousTestCase):
    def test_capture_mode_serves_http(self) -> None:
        """
        --catch-all turns the HTTP API on at loopback 8025 unless told
        otherwise.
        """
        options = mail.Options()
        options.parseOptions([*BASE, "--catch-all", "inbox@example.test"])
        self.assertEqual(options["http"], ["tcp:8025:interface=127.0.0.1"])
        options = mail.Options()
        options.parseOptions(
            [*BASE, "--catch-all", "inbox@example.test", "--https", "tcp:8443"]
        )
        self.assertEqual(options["http"], [])
