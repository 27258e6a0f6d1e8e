"""
Tests for L{twisted_netlab.tap.mail}: C{twistd netlab-mail}'s options.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from tests.certs import make_server_certificate
from tests.scratch import fresh_path
from twisted_netlab.mail.lab.smtp.server import DEFAULT_MAX_MESSAGE_SIZE
from twisted_netlab.tap import mail

BASE = ("--state", "lab-state", "--domain", "example.test")


def parse(*args: str) -> mail.Options:
    options = mail.Options()
    options.parseOptions(list(args))
    return options


class OptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """
        SMTP on loopback 2525 and IMAP on loopback 1143, no implicit TLS,
        the default size limit, host name localhost, no plaintext logins,
        AUTH not required.
        """
        options = parse(*BASE)
        self.assertEqual(options["smtp"], ["tcp:2525:interface=127.0.0.1"])
        self.assertEqual(options["imap"], ["tcp:1143:interface=127.0.0.1"])
        self.assertEqual(options["smtps"], [])
        self.assertEqual(options["imaps"], [])
        self.assertEqual(options["domains"], ["example.test"])
        self.assertEqual(options["max-message-size"], DEFAULT_MAX_MESSAGE_SIZE)
        self.assertEqual(options["hostname"], "localhost")
        self.assertFalse(options["allow-plaintext-auth"])
        self.assertFalse(options["require-auth"])

    def test_values(self) -> None:
        """
        Repeatable options collect every value; names are lowercased.
        """
        options = parse(
            *BASE,
            "--domain",
            "Other.TEST",
            "--smtp",
            "tcp:0:interface=127.0.0.1",
            "--smtp",
            "unix:/tmp/netlab-smtp.sock",
            "--imaps",
            "tcp:0:interface=127.0.0.1",
            "--user",
            "Alice@Example.test:pa:ss",
            "--max-message-size",
            "1000",
            "--hostname",
            "Mail.Example.TEST",
            "--require-auth",
        )
        self.assertEqual(options["domains"], ["example.test", "other.test"])
        self.assertEqual(
            options["smtp"], ["tcp:0:interface=127.0.0.1", "unix:/tmp/netlab-smtp.sock"]
        )
        self.assertEqual(options["imap"], ["tcp:1143:interface=127.0.0.1"])
        self.assertEqual(options["imaps"], ["tcp:0:interface=127.0.0.1"])
        self.assertEqual(options["users"], [("alice@example.test", "pa:ss")])
        self.assertEqual(options["max-message-size"], 1000)
        self.assertEqual(options["hostname"], "mail.example.test")
        self.assertTrue(options["require-auth"])

    def test_required(self) -> None:
        """
        --state and at least one --domain are required.
        """
        with self.assertRaises(usage.UsageError) as caught:
            parse("--domain", "example.test")
        self.assertIn("--state", str(caught.exception))
        with self.assertRaises(usage.UsageError) as caught:
            parse("--state", "x")
        self.assertIn("--domain", str(caught.exception))

    def test_bad_values(self) -> None:
        """
        Bad domains, users, endpoints, sizes and host names are one-line
        usage errors.
        """
        for args, expected in [
            (("--domain", "bad domain"), "--domain"),
            (("--user", "alice@example.test"), "ADDRESS:PASSWORD"),
            (("--user", "alice@example.test:"), "ADDRESS:PASSWORD"),
            (("--user", "alice:pw"), "--user"),
            (("--user", "alice@elsewhere.test:pw"), "not in a --domain"),
            (("--smtp", "bogus:"), "bogus:"),
            (("--imaps", "tcp:notaport"), "tcp:notaport"),
            (("--max-message-size", "0"), "--max-message-size"),
            (("--max-message-size", "big"), "--max-message-size"),
            (("--hostname", "not a host"), "--hostname"),
            (("--tls-cert", "cert.pem"), "--tls-key"),
        ]:
            with self.assertRaises(usage.UsageError, msg=repr(args)) as caught:
                parse(*BASE, *args)
            self.assertIn(expected, str(caught.exception), args)
            self.assertNotIn("\n", str(caught.exception))

    def test_ip_hostname(self) -> None:
        """
        The host name may be an IP address.
        """
        self.assertEqual(
            parse(*BASE, "--hostname", "192.0.2.1")["hostname"], "192.0.2.1"
        )

    def test_own_certificate(self) -> None:
        """
        --tls-cert and --tls-key are checked while the options are parsed: a
        key that does not fit is a usage error.
        """
        files = make_server_certificate(fresh_path(self))
        other = make_server_certificate(fresh_path(self))
        options = parse(
            *BASE, "--tls-cert", str(files.cert), "--tls-key", str(files.key)
        )
        self.assertEqual(options["tls-cert"], str(files.cert))
        with self.assertRaises(usage.UsageError) as caught:
            parse(*BASE, "--tls-cert", str(files.cert), "--tls-key", str(other.key))
        self.assertIn("does not fit", str(caught.exception))

    def test_plaintext_auth_on_loopback(self) -> None:
        """
        --allow-plaintext-auth is accepted when every listener is on loopback
        (the defaults, ::1, localhost, UNIX sockets).
        """
        parse(*BASE, "--allow-plaintext-auth")
        options = parse(
            *BASE,
            "--allow-plaintext-auth",
            "--smtp",
            "tcp6:0:interface=\\:\\:1",
            "--imap",
            "tcp:0:interface=localhost",
            "--smtps",
            "unix:/tmp/netlab-lab.sock",
        )
        self.assertTrue(options["allow-plaintext-auth"])

    def test_plaintext_auth_refused_off_loopback(self) -> None:
        """
        --allow-plaintext-auth is a usage error naming the listeners that are
        not on loopback, whichever kind they are.
        """
        for listener in [
            ("--smtp", "tcp:2525"),
            ("--imap", "tcp:1143:interface=0.0.0.0"),
            ("--smtps", "tcp:4650:interface=192.0.2.1"),
            ("--imaps", "tcp6:9930:interface=\\:\\:"),
        ]:
            with self.assertRaises(usage.UsageError) as caught:
                parse(*BASE, "--allow-plaintext-auth", *listener)
            self.assertIn("--allow-plaintext-auth", str(caught.exception))
            self.assertIn(listener[1], str(caught.exception))


class LoopbackEndpointTests(SynchronousTestCase):
    def test_loopback(self) -> None:
        """
        TCP on a loopback interface, and UNIX sockets, are loopback.
        """
        reactor = MemoryReactor()
        for description in [
            "tcp:0:interface=127.0.0.1",
            "tcp:0:interface=127.1.2.3",
            "tcp:0:interface=localhost",
            "tcp6:0:interface=\\:\\:1",
            "unix:/tmp/x.sock",
        ]:
            self.assertTrue(
                mail.is_loopback_endpoint(reactor, description), description
            )

    def test_not_loopback(self) -> None:
        """
        TCP without an interface (all of them), or on another address, is
        not.
        """
        reactor = MemoryReactor()
        for description in [
            "tcp:0",
            "tcp:0:interface=0.0.0.0",
            "tcp:0:interface=10.0.0.1",
            "tcp6:0",
            "tcp6:0:interface=\\:\\:",
        ]:
            self.assertFalse(
                mail.is_loopback_endpoint(reactor, description), description
            )


class POP3OptionsTests(SynchronousTestCase):
    def test_no_pop3_by_default(self) -> None:
        """
        twistd netlab-mail serves POP3 only when asked.
        """
        options = parse(*BASE)
        self.assertEqual((options["pop3"], options["pop3s"]), ([], []))

    def test_pop3_listeners(self) -> None:
        """
        --pop3 and --pop3s are repeatable and reach the lab as POP3 (STLS)
        and implicit-TLS POP3 listeners.
        """
        from twisted.protocols.tls import TLSMemoryBIOFactory

        from twisted_netlab.mail.lab.pop3 import LabPOP3Factory

        state = fresh_path(self)
        options = parse(
            "--state",
            str(state),
            "--domain",
            "example.test",
            "--pop3",
            "tcp:1110:interface=127.0.0.1",
            "--pop3",
            "tcp:1111:interface=127.0.0.1",
            "--pop3s",
            "tcp:9950:interface=127.0.0.1",
        )
        self.assertEqual(len(options["pop3"]), 2)
        lab = mail.make_lab(options, MemoryReactor(), "netlab-mail")
        pop3, _ = lab.factories["pop3"]
        [pop3s] = lab.factories["pop3s"]
        self.assertIsInstance(pop3, LabPOP3Factory)
        self.assertFalse(pop3.implicit_tls)
        self.assertIsNotNone(pop3.tls)
        self.assertIsInstance(pop3s, TLSMemoryBIOFactory)
        self.assertTrue(pop3s.wrappedFactory.implicit_tls)

    def test_bad_pop3_endpoint(self) -> None:
        """
        A bad --pop3 or --pop3s endpoint is a usage error naming it.
        """
        for option in ("--pop3", "--pop3s"):
            with self.assertRaises(usage.UsageError) as caught:
                parse(*BASE, option, "tcp:notaport")
            self.assertIn("tcp:notaport", str(caught.exception))

    def test_plaintext_auth_needs_pop3_on_loopback(self) -> None:
        """
        --allow-plaintext-auth is refused when a POP3 listener is not on
        loopback.
        """
        for listener in [("--pop3", "tcp:1110"), ("--pop3s", "tcp:995:interface=::")]:
            with self.assertRaises(usage.UsageError) as caught:
                parse(*BASE, "--allow-plaintext-auth", *listener)
            self.assertIn(listener[1], str(caught.exception))


class FaultOptionsTests(SynchronousTestCase):
    def test_faults(self) -> None:
        """
        --fault is repeatable and parsed at once; --fault-seed is a number;
        neither given: no faults, no seed.
        """
        from twisted_netlab.mail.lab.faults import parse_fault

        options = parse(
            *BASE,
            "--fault",
            "rcpt:reply=451:times=2",
            "--fault",
            "imap.fetch:drop:after-bytes=1000",
            "--fault-seed",
            "42",
        )
        self.assertEqual(
            options["faults"],
            [
                parse_fault("rcpt:reply=451:times=2"),
                parse_fault("imap.fetch:drop:after-bytes=1000"),
            ],
        )
        self.assertEqual(options["fault-seed"], 42)
        plain = parse(*BASE)
        self.assertEqual((plain["faults"], plain["fault-seed"]), ([], None))

    def test_bad_faults(self) -> None:
        """
        A bad spec or seed is a one-line usage error naming the option.
        """
        for args, message in [
            (
                ["--fault", "rcpt:reply=250"],
                "--fault rcpt:reply=250: SMTP reply code 250 is not a 4xx or 5xx code",
            ),
            (["--fault", "nowhere:drop"], "--fault nowhere:drop: unknown stage"),
            (["--fault-seed", "x"], "--fault-seed must be a whole number"),
        ]:
            with self.assertRaises(usage.UsageError) as caught:
                parse(*BASE, *args)
            self.assertTrue(str(caught.exception).startswith(message), caught.exception)
            self.assertNotIn("\n", str(caught.exception))

    def test_faults_reach_the_lab(self) -> None:
        """
        The lab made from the options asks the faults given, seeded.
        """
        state = fresh_path(self)
        options = parse(
            "--state",
            str(state),
            "--domain",
            "example.test",
            "--fault",
            "smtp.mail:greylist=2",
            "--fault-seed",
            "3",
        )
        lab = mail.make_lab(options, MemoryReactor(), "netlab-mail")
        self.assertEqual([h.spec for h in lab.faults], ["smtp.mail:greylist=2"])
        self.assertEqual(lab.faults.seed, 3)
        self.assertIs(lab.factories["smtp"][0].faults, lab.faults)
        self.assertIs(lab.factories["imap"][0].faults, lab.faults)
