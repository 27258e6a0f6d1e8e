"""
Tests for L{twisted_netlab.tap.checks}: C{--spamassassin} and
C{--dns-records} of C{twistd netlab-mail} and C{twistd netlab}, their
one-line errors, and the settings the lab's checks get from the options
(C{private_links} from where the HTTP API listens).
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from twisted.internet.testing import MemoryReactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from tests.scratch import fresh_path
from tests.twistd import run_twistd
from twisted_netlab.mail.lab.checks.records import RecordsFile
from twisted_netlab.tap import mail, suite

RECORDS = (
    'example.org TXT "v=spf1 ip4:192.0.2.0/24 -all"\nexample.org MX 10 mx.example.org\n'
)


OptionsT = TypeVar("OptionsT", bound=usage.Options)


def parse(options: OptionsT, *args: str) -> OptionsT:
    options.parseOptions(list(args))
    return options


class CheckOptionsTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.state = fresh_path(self)
        self.base = ("--state", str(self.state), "--domain", "example.test")

    def records(self, text: str = RECORDS) -> Path:
        path = fresh_path(self)
        path.write_text(text)
        return path

    def test_none(self) -> None:
        """
        Without the options the lab's spam check is off and its auth check
        asks the system's resolver.
        """
        options = parse(mail.Options(), *self.base)
        self.assertEqual(options["checks"], {})
        lab = mail.make_lab(options, MemoryReactor(), "netlab-mail")
        self.assertIsNone(lab.checks.settings.spamassassin)
        self.assertIsNone(lab.checks.settings.dns_records)

    def test_values_reach_the_lab(self) -> None:
        """
        Both plugins take the spamd address and the records file (read at
        once), and the lab's checks use them.
        """
        path = self.records()
        for options in (mail.Options(), suite.Options()):
            parse(
                options,
                *self.base,
                *("--spamassassin", "[::1]:7830"),
                *("--dns-records", str(path)),
            )
            self.assertEqual(options["checks"]["spamassassin"], ("::1", 7830))
            self.assertIsInstance(options["checks"]["dns_records"], RecordsFile)
        lab = mail.make_lab(options, MemoryReactor(), "netlab")
        self.assertEqual(lab.checks.settings.spamassassin, ("::1", 7830))
        records = lab.checks.settings.dns_records
        assert isinstance(records, RecordsFile)
        self.assertEqual(records["example.org"], ("v=spf1 ip4:192.0.2.0/24 -all",))
        self.assertEqual(records.mx["example.org"], ((10, "mx.example.org"),))

    def test_bad_values(self) -> None:
        """
        A bad spamd address, a records file that cannot be read, and a bad
        line in one (named FILE:LINE) are one-line usage errors.
        """
        bad = self.records('# a comment\nexample.org TXT "ok"\nexample.org TXT v=x\n')
        missing = fresh_path(self)
        for args, expected in [
            (("--spamassassin", "localhost:spamd"), "--spamassassin: not a spamd"),
            (("--spamassassin", "::1"), "--spamassassin: not a spamd"),
            (
                ("--dns-records", str(missing)),
                f"--dns-records: cannot read the DNS records file {missing}: "
                "No such file or directory",
            ),
            (("--dns-records", str(bad)), f"--dns-records: {bad}:3: a TXT value"),
        ]:
            with self.assertRaises(usage.UsageError, msg=repr(args)) as caught:
                parse(mail.Options(), *self.base, *args)
            self.assertTrue(
                str(caught.exception).startswith(expected), caught.exception
            )
            self.assertNotIn("\n", str(caught.exception))

    def test_private_links(self) -> None:
        """
        The link check may fetch private addresses when the HTTP API is on
        loopback only (twistd netlab's default, or no API), and not when
        any of its listeners is reachable from the network.
        """

        def private_links(options: mail.LabOptions, *args: str) -> bool:
            parse(options, *self.base, *args)
            lab = mail.make_lab(options, MemoryReactor(), "netlab-mail")
            return lab.checks.settings.private_links

        self.assertTrue(private_links(mail.Options()))
        self.assertTrue(private_links(suite.Options()))
        self.assertTrue(
            private_links(mail.Options(), "--http", "tcp6:0:interface=\\:\\:1")
        )
        self.assertFalse(
            private_links(
                mail.Options(),
                *("--http", "tcp:0:interface=127.0.0.1"),
                *("--https", "tcp:0:interface=0.0.0.0"),
            )
        )


class TwistdTests(SynchronousTestCase):
    def test_bad_records_file(self) -> None:
        """
        twistd netlab-mail with a records file that has a bad line ends
        with one line naming the file and the line, and exit status 1.
        """
        directory = fresh_path(self)
        directory.mkdir()
        records = directory / "lab.records"
        records.write_text('example.org TXT "v=spf1 -all"\nexample.org SOA x\n')
        result = run_twistd(
            "netlab-mail",
            *("--state", str(directory / "state")),
            *("--domain", "example.test"),
            *("--dns-records", str(records)),
            cwd=directory,
        )
        self.assertEqual(result.returncode, 1)
        first, hint = result.stderr.splitlines()
        self.assertEqual(
            first,
            f"twistd netlab-mail: --dns-records: {records}:2: unknown record type "
            "'SOA' (the file knows TXT, A, AAAA, MX, PTR)",
        )
        self.assertEqual(hint, "Try 'twistd netlab-mail --help'.")
