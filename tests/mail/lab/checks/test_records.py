"""
Where the auth check's DNS answers come from
(twisted_netlab.mail.lab.checks.records): the records file, its one-line
errors, and the system resolver's path through dnspython, tested against a
real DNS server (Twisted Names) on loopback.
"""

from __future__ import annotations

import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dns.resolver
import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread
from twisted.names import authority, common, server
from twisted.names import dns as names_dns
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.errors import EXIT_USAGE
from twisted_netlab.mail.lab.checks.context import CheckError, CheckSettings
from twisted_netlab.mail.lab.checks.records import (
    DNSTemporaryError,
    RecordsError,
    RecordsFile,
    RecordsSource,
    ResolverSource,
    dns_source,
    load_records,
    parse_records,
)

RECORDS = """\
# a lab's records
; zone-file comments too

sel1._domainkey.Example.ORG.  TXT  "v=DKIM1; k=rsa; " "p=MIIB"
example.org                   IN TXT "v=spf1 mx a:relay.example.org -all"
example.org                   TXT  "google-site-verification=abc"
_dmarc.example.org            TXT  "v=DMARC1; p=reject; rua=\\"mailto:d@example.org\\""
example.org                   MX   20 backup.example.org.
example.org                   MX   10 mail.example.org
mail.example.org              A    192.0.2.25
mail.example.org              AAAA 2001:DB8::25
192.0.2.25                    PTR  mail.example.org
"""


class RecordsFileTests(SynchronousTestCase):
    """
    The records file's syntax, as the module's docstring gives it.
    """

    def setUp(self) -> None:
        self.records = parse_records(RECORDS)
        self.source = RecordsSource(self.records)

    def test_txt(self) -> None:
        """
        TXT values: quoted strings joined, escapes undone, several records
        per name; names without case or trailing dot.
        """
        self.assertEqual(
            self.source.txt("SEL1._domainkey.example.org."), ["v=DKIM1; k=rsa; p=MIIB"]
        )
        self.assertEqual(
            self.source.txt("example.org"),
            ["v=spf1 mx a:relay.example.org -all", "google-site-verification=abc"],
        )
        self.assertEqual(
            self.source.txt("_dmarc.example.org"),
            ['v=DMARC1; p=reject; rua="mailto:d@example.org"'],
        )

    def test_addresses_mx_ptr(self) -> None:
        """
        A, AAAA, MX (by preference) and PTR (written with the address).
        """
        self.assertEqual(self.source.addresses("mail.example.org", 4), ["192.0.2.25"])
        self.assertEqual(self.source.addresses("mail.example.org", 6), ["2001:db8::25"])
        self.assertEqual(
            self.source.mx("example.org"), ["mail.example.org", "backup.example.org"]
        )
        self.assertEqual(
            self.source.ptr("25.2.0.192.in-addr.arpa"), ["mail.example.org"]
        )

    def test_unknown_names_do_not_exist(self) -> None:
        """
        What the file does not have does not exist: no fall-through.
        """
        self.assertEqual(self.source.txt("example.com"), [])
        self.assertEqual(self.source.addresses("example.org", 4), [])
        self.assertEqual(self.source.mx("mail.example.org"), [])

    def test_mapping_of_txt(self) -> None:
        """
        The records file is the mapping CheckSettings.dns_records holds: TXT
        records by lowercased name; dns_source() answers from it, and from
        a plain mapping of TXT records too.
        """
        self.assertIsInstance(self.records, Mapping)
        self.assertEqual(
            self.records["example.org"],
            ("v=spf1 mx a:relay.example.org -all", "google-site-verification=abc"),
        )
        self.assertNotIn("mail.example.org", self.records)
        self.assertEqual(len(self.records), 3)
        source = dns_source(CheckSettings(dns_records=self.records))
        self.assertEqual(source.addresses("mail.example.org", 4), ["192.0.2.25"])
        plain = dns_source(CheckSettings(dns_records={"Example.org": ["v=spf1 -all"]}))
        self.assertEqual(plain.txt("example.org"), ["v=spf1 -all"])
        self.assertEqual(plain.mx("example.org"), [])
        self.assertIsInstance(dns_source(CheckSettings()), ResolverSource)

    def test_load(self) -> None:
        """
        load_records reads a file.
        """
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "records"
            path.write_text(RECORDS)
            loaded = load_records(path)
        self.assertIsInstance(loaded, RecordsFile)
        self.assertEqual(dict(loaded), dict(self.records))


class RecordsErrorTests(SynchronousTestCase):
    """
    A bad records file is refused with one line naming the file, the line
    and what is wrong.
    """

    def error(self, text: str) -> str:
        with self.assertRaises(RecordsError) as raised:
            parse_records("# first\n" + text + "\n", "lab.records")
        message = str(raised.exception)
        self.assertNotIn("\n", message)
        return message

    def test_bad_lines(self) -> None:
        """
        Each kind of bad line, with its line number.
        """
        cases = {
            "example.org": "lab.records:2: a record is NAME TYPE DATA, as in: "
            "example.org TXT \"v=spf1 -all\" (got 'example.org')",
            "example.org TXT": "lab.records:2: a record is NAME TYPE DATA, as in: "
            "example.org TXT \"v=spf1 -all\" (got 'example.org TXT')",
            "example.org CNAME other.org": "lab.records:2: unknown record type "
            "'CNAME' (the file knows TXT, A, AAAA, MX, PTR)",
            "example.org TXT v=spf1 -all": "lab.records:2: a TXT value is one or "
            'more quoted strings, as in: example.org TXT "v=spf1 -all" '
            "(got 'v=spf1 -all')",
            'example.org TXT "unclosed': "lab.records:2: a TXT value is one or "
            'more quoted strings, as in: example.org TXT "v=spf1 -all" '
            "(got '\"unclosed')",
            "example.org A 2001:db8::1": "lab.records:2: '2001:db8::1' is not an "
            "IPv4 address for A",
            "example.org AAAA 192.0.2.1": "lab.records:2: '192.0.2.1' is not an "
            "IPv6 address for AAAA",
            "example.org MX mail.example.org": "lab.records:2: MX wants a "
            "preference and a host, as in: example.org MX 10 mail.example.org "
            "(got 'mail.example.org')",
            'exa"mple.org TXT "x"': "lab.records:2: 'exa\"mple.org' is not a DNS name",
        }
        for line, expected in cases.items():
            self.assertEqual(self.error(line), expected)

    def test_unreadable(self) -> None:
        """
        A missing file: the reason, and the usage exit status.
        """
        with self.assertRaises(RecordsError) as raised:
            load_records("/nonexistent/lab.records")
        self.assertEqual(
            str(raised.exception),
            "cannot read the DNS records file /nonexistent/lab.records: "
            "No such file or directory",
        )
        self.assertEqual(raised.exception.exit_code, EXIT_USAGE)
        self.assertIsInstance(raised.exception, CheckError)


class NoFileAuthority(authority.FileAuthority):
    """
    A zone from records in memory (as Twisted's own tests make one).
    """

    def __init__(self, soa: Any, records: Any) -> None:
        common.ResolverBase.__init__(self)
        self.soa, self.records = soa, records


def _zone() -> NoFileAuthority:
    soa = names_dns.Record_SOA(
        mname=b"ns.example.org", rname=b"root.example.org", serial=1, minimum=60
    )
    return NoFileAuthority(
        soa=(b"example.org", soa),
        records={
            b"example.org": [
                soa,
                names_dns.Record_TXT(b"v=spf1 ", b"mx -all"),
                names_dns.Record_MX(20, b"backup.example.org"),
                names_dns.Record_MX(10, b"mail.example.org"),
            ],
            b"mail.example.org": [
                names_dns.Record_A("192.0.2.25"),
                names_dns.Record_AAAA("2001:db8::25"),
            ],
        },
    )


@pytest.fixture
def dns_port() -> Any:
    """
    Twisted Names serving the zone on a loopback UDP port.
    """
    from twisted.internet import reactor

    factory = server.DNSServerFactory(authorities=[_zone()])
    port = reactor.listenUDP(  # type: ignore[attr-defined]
        0, names_dns.DNSDatagramProtocol(factory), interface="127.0.0.1"
    )
    yield port.getHost().port
    pytest_twisted.blockon(port.stopListening())


def _resolver(port: int) -> dns.resolver.Resolver:
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = ["127.0.0.1"]
    resolver.port = port
    return resolver


@pytest_twisted.ensureDeferred
async def test_resolver_source(dns_port: int) -> None:
    """
    ResolverSource asks a real DNS server through dnspython, in a thread:
    TXT strings joined, A, AAAA, MX by preference; a name or a type that
    is not there is no record.
    """
    source = ResolverSource(lifetime=5, resolver=_resolver(dns_port))
    assert await deferToThread(source.txt, "example.org") == ["v=spf1 mx -all"]
    assert await deferToThread(source.addresses, "mail.example.org", 4) == [
        "192.0.2.25"
    ]
    assert await deferToThread(source.addresses, "mail.example.org", 6) == [
        "2001:db8::25"
    ]
    assert await deferToThread(source.mx, "example.org") == [
        "mail.example.org",
        "backup.example.org",
    ]
    assert await deferToThread(source.txt, "nothing.example.org") == []
    assert await deferToThread(source.addresses, "example.org", 4) == []
    assert await deferToThread(source.txt, "x" * 64 + ".example.org") == []


class NoResolverTests(SynchronousTestCase):
    def test_no_configuration(self) -> None:
        """
        Without /etc/resolv.conf the system resolver cannot work: a
        CheckError (a fault of the lab's setting) says to use a records
        file.
        """

        def unconfigured() -> Any:
            raise dns.resolver.NoResolverConfiguration("no nameservers")

        self.patch(dns.resolver, "Resolver", unconfigured)
        with self.assertRaises(CheckError) as raised:
            ResolverSource().txt("example.org")
        self.assertEqual(
            str(raised.exception),
            "no DNS resolver is configured (/etc/resolv.conf); give the lab a "
            "records file (--dns-records FILE) instead",
        )


@pytest_twisted.ensureDeferred
async def test_resolver_timeout() -> None:
    """
    A server that never answers is a DNSTemporaryError (temperror), after
    the lifetime.
    """
    silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    silent.bind(("127.0.0.1", 0))
    try:
        source = ResolverSource(
            lifetime=0.3, resolver=_resolver(silent.getsockname()[1])
        )
        with pytest.raises(DNSTemporaryError, match=r"TXT example\.org: timed out"):
            await deferToThread(source.txt, "example.org")
    finally:
        silent.close()
