"""
SPF (twisted_netlab.mail.lab.checks.spf): the OpenSPF project's RFC 7208
test suite (data/rfc7208-tests.yml, release 2014.04, as pyspf ships it;
BSD licence in data/rfc7208-tests.LICENSE), and what the answer says.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.checks.records import (
    DNSTemporaryError,
    RecordsSource,
    parse_records,
)
from twisted_netlab.mail.lab.checks.spf import evaluate_spf

SUITE = Path(__file__).parent / "data" / "rfc7208-tests.yml"


class ZoneSource:
    """
    The suite's zone data as a DNS source, read as the suite's own drivers
    (pyspf's testspf.py) read it: SPF-type records stand in for TXT where a
    name has no TXT, TIMEOUT is a temporary failure, names under C{error.}
    fail, one level of CNAME is followed.
    """

    def __init__(self, zonedata: dict[str, list[Any]]) -> None:
        self.zone: dict[str, list[tuple[str, Any]]] = {}
        for name, entries in zonedata.items():
            records: list[tuple[str, Any]] = []
            spf: list[tuple[str, Any]] = []
            has_txt = False
            for entry in entries:
                if entry == "TIMEOUT":
                    records.append(("TIMEOUT", None))
                    continue
                [(kind, value)] = entry.items()
                if kind in ("TXT", "SPF") and isinstance(value, str):
                    value = "NONE" if value == "NONE" else (value,)
                has_txt = has_txt or kind == "TXT"
                if value == "NONE":
                    continue
                if kind == "SPF":
                    spf.append(("TXT", value))
                records.append((kind, value))
            if not has_txt:
                records.extend(spf)
            self.zone[name.lower()] = records

    def _records(self, name: str, kind: str, depth: int = 0) -> list[Any]:
        name = name.lower().rstrip(".")
        if any(len(label) > 63 for label in name.split(".")):
            return []  # no such name can exist
        entries = self.zone.get(name)
        if entries is None:
            if name.startswith("error."):
                raise DNSTemporaryError(f"{kind} {name}: timed out")
            return []
        found: list[Any] = []
        for entry_kind, value in entries:
            if entry_kind == "TIMEOUT":
                if not found:
                    raise DNSTemporaryError(f"{kind} {name}: timed out")
                return found
            if entry_kind == kind:
                if value == "TIMEOUT":
                    raise DNSTemporaryError(f"{kind} {name}: timed out")
                found.append(value)
        if not found and depth == 0:
            for entry_kind, value in entries:
                if entry_kind == "CNAME":
                    return self._records(value, kind, 1)
        return found

    def txt(self, name: str) -> list[str]:
        return ["".join(value) for value in self._records(name, "TXT")]

    def addresses(self, name: str, version: int) -> list[str]:
        return [str(a) for a in self._records(name, "A" if version == 4 else "AAAA")]

    def mx(self, name: str) -> list[str]:
        return [
            host for _, host in sorted(self._records(name, "MX"), key=lambda m: m[0])
        ]

    def ptr(self, name: str) -> list[str]:
        return list(self._records(name, "PTR"))


class SuiteTests(SynchronousTestCase):
    """
    The OpenSPF RFC 7208 test suite.
    """

    def test_every_case(self) -> None:
        """
        Every case of every scenario gives one of the results the suite
        allows (its explanations are not compared: exp= is not fetched).
        """
        scenarios = list(yaml.safe_load_all(SUITE.read_text(encoding="utf-8")))
        self.assertEqual(len(scenarios), 16)
        wrong = []
        count = 0
        for scenario in scenarios:
            zone = ZoneSource(scenario["zonedata"])
            for name, case in scenario["tests"].items():
                count += 1
                allowed = case["result"]
                allowed = allowed if isinstance(allowed, list) else [allowed]
                got = evaluate_spf(zone, case["host"], case["mailfrom"], case["helo"])
                if got.result not in allowed:
                    wrong.append(f"{name}: {got.result} ({got.reason}), not {allowed}")
        self.assertEqual(wrong, [])
        self.assertEqual(count, 203)


RECORDS = """\
example.org         TXT  "v=spf1 ip4:192.0.2.0/24 ip6:2001:db8::/32 " \
                         "a:relay.example.org mx include:_spf.partner.example -all"
relay.example.org   A    198.51.100.7
example.org         MX   10 mx.example.org
mx.example.org      A    203.0.113.25
_spf.partner.example TXT "v=spf1 ip4:198.51.100.200 ~all"
soft.example        TXT  "v=spf1 ~all"
neutral.example     TXT  "v=spf1 ?all"
none.example        TXT  "not spf"
two.example         TXT  "v=spf1 -all"
two.example         TXT  "v=spf1 +all"
bad.example         TXT  "v=spf1 ip4:300.1.1.1 -all"
redirected.example  TXT  "v=spf1 redirect=example.org"
helo.example.org    TXT  "v=spf1 a -all"
helo.example.org    A    192.0.2.99
"""


class ResultTests(SynchronousTestCase):
    """
    Each result, with the domain, the record and the reason the answer
    gives.
    """

    def setUp(self) -> None:
        self.dns = RecordsSource(parse_records(RECORDS))

    def spf(self, ip: str, mail_from: str, helo: str = "client.example") -> Any:
        return evaluate_spf(self.dns, ip, mail_from, helo)

    def test_pass(self) -> None:
        """
        ip4, ip6, a:, mx and include each let their client in, and the
        answer says which term did.
        """
        for ip, term in [
            ("192.0.2.10", "ip4:192.0.2.0/24"),
            ("2001:db8::1", "ip6:2001:db8::/32"),
            ("198.51.100.7", "a:relay.example.org"),
            ("203.0.113.25", "mx"),
            ("198.51.100.200", "include:_spf.partner.example"),
            ("::ffff:192.0.2.10", "ip4:192.0.2.0/24"),
        ]:
            result = self.spf(ip, "bounce@example.org")
            self.assertEqual(result.result, "pass", ip)
            self.assertEqual(
                result.reason,
                f"{ip if '::ffff' not in ip else '192.0.2.10'} is allowed by "
                f"{term} in example.org's record",
            )
        answer = self.spf("192.0.2.10", "bounce@example.org").to_json()
        self.assertEqual(answer["Domain"], "example.org")
        self.assertEqual(answer["Scope"], "mailfrom")
        self.assertTrue(answer["Record"].startswith("v=spf1 ip4:192.0.2.0/24"))

    def test_fail_softfail_neutral(self) -> None:
        """
        -all, ~all and ?all; an include's softfail is no match, so -all
        decides.
        """
        self.assertEqual(self.spf("203.0.113.99", "a@example.org").result, "fail")
        self.assertEqual(
            self.spf("203.0.113.99", "a@example.org").reason,
            "203.0.113.99 matched -all in example.org's record: fail",
        )
        self.assertEqual(self.spf("203.0.113.99", "a@soft.example").result, "softfail")
        self.assertEqual(
            self.spf("203.0.113.99", "a@neutral.example").result, "neutral"
        )

    def test_none(self) -> None:
        """
        No SPF record, no domain in the file, no client address.
        """
        self.assertEqual(self.spf("192.0.2.1", "a@none.example").result, "none")
        self.assertEqual(
            self.spf("192.0.2.1", "a@nowhere.example").reason,
            "nowhere.example publishes no SPF record (no TXT v=spf1)",
        )
        unknown = self.spf("", "a@example.org")
        self.assertEqual(
            (unknown.result, unknown.reason),
            ("none", "the client's IP address is unknown (it did not arrive over IP)"),
        )

    def test_permerror(self) -> None:
        """
        Two SPF records; a bad address in the record.
        """
        two = self.spf("192.0.2.1", "a@two.example")
        self.assertEqual(
            (two.result, two.reason),
            ("permerror", "two.example publishes 2 SPF records; one is allowed"),
        )
        bad = self.spf("192.0.2.1", "a@bad.example")
        self.assertEqual(bad.result, "permerror")
        self.assertIn("'ip4:300.1.1.1'", bad.reason)

    def test_redirect(self) -> None:
        """
        redirect= evaluates the other domain's record, and the answer says
        so.
        """
        result = self.spf("192.0.2.10", "a@redirected.example")
        self.assertEqual(result.result, "pass")
        self.assertTrue(result.reason.startswith("redirect=example.org: "))
        self.assertEqual(result.lookups, 1)

    def test_helo_for_null_sender(self) -> None:
        """
        With MAIL FROM:<>, the HELO name is checked (scope helo).
        """
        result = self.spf("192.0.2.99", "", helo="helo.example.org")
        self.assertEqual(
            (result.result, result.domain, result.scope),
            ("pass", "helo.example.org", "helo"),
        )

    def test_temperror(self) -> None:
        """
        A DNS failure is temperror.
        """

        class Failing(RecordsSource):
            def txt(self, name: str) -> list[str]:
                raise DNSTemporaryError(f"TXT {name}: timed out")

        result = evaluate_spf(Failing({}), "192.0.2.1", "a@example.org", "x")
        self.assertEqual(
            (result.result, result.reason),
            ("temperror", "DNS failed for example.org: TXT example.org: timed out"),
        )
