"""
DMARC (twisted_netlab.mail.lab.checks.dmarc): the organizational domain,
policy records, alignment, and each result.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.checks import dmarc
from twisted_netlab.mail.lab.checks.dmarc import (
    FALLBACK_SUFFIXES,
    PublicSuffixList,
    evaluate_dmarc,
    organizational_domain,
    parse_record,
)
from twisted_netlab.mail.lab.checks.records import (
    DNSTemporaryError,
    RecordsSource,
    parse_records,
)

PSL = """\
// a public suffix list in its own format
com
uk
co.uk
*.ck
!www.ck
// ===BEGIN PRIVATE DOMAINS===
github.io
"""


class PublicSuffixTests(SynchronousTestCase):
    """
    RFC 7489 3.2's organizational domain over a public suffix list.
    """

    def test_rules(self) -> None:
        """
        Plain rules, wildcards, exceptions, the default rule, and a domain
        that is itself a suffix.
        """
        psl = PublicSuffixList(PSL.splitlines())
        for domain, expected in [
            ("mail.example.com", "example.com"),
            ("a.b.example.co.uk", "example.co.uk"),
            ("shop.example.uk", "example.uk"),
            ("a.b.c.ck", "b.c.ck"),
            ("a.www.ck", "www.ck"),
            ("me.github.io", "me.github.io"),
            ("x.me.github.io", "me.github.io"),
            ("mail.example.test", "example.test"),
            ("Mail.Example.COM.", "example.com"),
            ("co.uk", "co.uk"),
        ]:
            self.assertEqual(psl.organizational_domain(domain), expected, domain)

    def test_from_file(self) -> None:
        """
        The list is read from a file in its own format.
        """
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "public_suffix_list.dat"
            path.write_text(PSL)
            psl = PublicSuffixList.from_file(path)
        self.assertEqual(psl.organizational_domain("a.example.co.uk"), "example.co.uk")

    def test_fallback(self) -> None:
        """
        Without Debian's list, the stand-in still knows co.uk and the like;
        the list the checks use (whichever it is) agrees on test domains.
        """
        fallback = PublicSuffixList(FALLBACK_SUFFIXES)
        self.assertEqual(fallback.organizational_domain("a.shop.co.uk"), "shop.co.uk")
        self.assertEqual(
            fallback.organizational_domain("a.shop.example"), "shop.example"
        )
        self.patch(dmarc, "PUBLIC_SUFFIX_LIST", Path("/nonexistent/list.dat"))
        dmarc.public_suffixes.cache_clear()
        self.addCleanup(dmarc.public_suffixes.cache_clear)
        self.assertEqual(organizational_domain("a.b.shop.co.uk"), "shop.co.uk")
        self.assertEqual(organizational_domain("news.example.org"), "example.org")


class RecordTests(SynchronousTestCase):
    """
    The tags of a DMARC record.
    """

    def test_tags(self) -> None:
        """
        p, sp, adkim, aspf and pct; defaults relaxed and 100.
        """
        record = parse_record(
            "example.org", "v=DMARC1; p=Reject; sp=none; adkim=s; pct=50"
        )
        self.assertEqual(
            (
                record.policy,
                record.subdomain_policy,
                record.adkim,
                record.aspf,
                record.pct,
            ),
            ("reject", "none", "strict", "relaxed", 50),
        )

    def test_rua_without_policy(self) -> None:
        """
        A record with a report address and no valid p= counts as p=none
        (RFC 7489 6.6.3).
        """
        record = parse_record("example.org", "v=DMARC1; rua=mailto:d@example.org")
        self.assertEqual(record.policy, "none")

    def test_invalid(self) -> None:
        """
        Each invalid record says what is wrong.
        """
        for text, reason in [
            ("v=DMARC1", "the record has no p= tag"),
            ("v=DMARC1; p=block", "p=block is not none, quarantine or reject"),
            ("v=DMARC1; p=none; sp=hold", "sp=hold is not none, quarantine or reject"),
            ("v=DMARC1; p=none; adkim=x", "adkim=x is not r or s"),
            ("v=DMARC1; p=none; pct=150", "pct=150 is not 0..100"),
            ("p=none; v=DMARC1", "the record does not start with v=DMARC1"),
            ("v=DMARC1; p", "'p' is not a tag=value"),
        ]:
            with self.assertRaises(ValueError) as raised:
                parse_record("example.org", text)
            self.assertEqual(str(raised.exception), reason)


RECORDS = """\
_dmarc.example.org   TXT "v=DMARC1; p=reject; sp=quarantine"
_dmarc.strict.example TXT "v=DMARC1; p=reject; adkim=s; aspf=s"
_dmarc.broken.example TXT "v=DMARC1; p=maybe"
_dmarc.twice.example TXT "v=DMARC1; p=none"
_dmarc.twice.example TXT "v=DMARC1; p=reject"
"""


class EvaluateTests(SynchronousTestCase):
    """
    Each result of evaluate_dmarc, and what the answer says.
    """

    def setUp(self) -> None:
        self.dns = RecordsSource(parse_records(RECORDS))

    def dmarc(
        self,
        from_domains: list[str],
        dkim: list[str] = (),  # type: ignore[assignment]
        spf: tuple[str, str] = ("none", ""),
    ) -> dict[str, Any]:
        return evaluate_dmarc(self.dns, from_domains, dkim, spf[0], spf[1])

    def test_pass_by_dkim(self) -> None:
        """
        An aligned DKIM pass is enough, SPF failing or not.
        """
        answer = self.dmarc(["example.org"], ["example.org"], ("fail", "bounce.other"))
        self.assertEqual(
            (answer["Result"], answer["Policy"], answer["Domain"]),
            ("pass", "reject", "example.org"),
        )
        self.assertEqual(answer["RecordDomain"], "_dmarc.example.org")
        self.assertEqual(
            answer["Alignment"],
            {
                "DKIM": {"Mode": "relaxed", "Aligned": True, "Domain": "example.org"},
                "SPF": {"Mode": "relaxed", "Aligned": False, "Domain": "bounce.other"},
            },
        )
        self.assertEqual(
            answer["Reason"],
            "DKIM d=example.org passed, aligned (relaxed), with the From domain "
            "example.org",
        )

    def test_pass_by_spf_relaxed(self) -> None:
        """
        An SPF pass for a subdomain is aligned, relaxed.
        """
        answer = self.dmarc(["example.org"], [], ("pass", "bounces.example.org"))
        self.assertEqual(answer["Result"], "pass")
        self.assertTrue(answer["Alignment"]["SPF"]["Aligned"])

    def test_fail(self) -> None:
        """
        Passes for other domains do not align; the reason says what passed
        and the policy.
        """
        answer = self.dmarc(
            ["example.org"], ["mailer.example"], ("pass", "mailer.example")
        )
        self.assertEqual(answer["Result"], "fail")
        self.assertEqual(
            answer["Reason"],
            "DKIM passed for mailer.example but not aligned (relaxed) with "
            "example.org; SPF passed for mailer.example but not aligned "
            "(relaxed): the policy is p=reject",
        )

    def test_strict(self) -> None:
        """
        Strict alignment wants the very From domain.
        """
        sub = self.dmarc(["strict.example"], ["mail.strict.example"])
        self.assertEqual(sub["Result"], "fail")
        same = self.dmarc(["strict.example"], ["strict.example"])
        self.assertEqual(same["Result"], "pass")

    def test_organizational_domain_and_subdomain_policy(self) -> None:
        """
        A From subdomain without a record of its own takes the
        organizational domain's, with its sp=.
        """
        answer = self.dmarc(["news.example.org"])
        self.assertEqual(
            (answer["Result"], answer["Policy"], answer["RecordDomain"]),
            ("fail", "quarantine", "_dmarc.example.org"),
        )

    def test_none(self) -> None:
        """
        No record at the domain nor at its organizational domain; two
        records (RFC 7489 ignores both).
        """
        answer = self.dmarc(["mail.nowhere.example"])
        self.assertEqual(
            (answer["Result"], answer["Policy"], answer["Reason"]),
            (
                "none",
                None,
                "no DMARC record at _dmarc.mail.nowhere.example nor at "
                "_dmarc.nowhere.example",
            ),
        )
        self.assertEqual(self.dmarc(["twice.example"])["Result"], "none")

    def test_permerror(self) -> None:
        """
        A broken record; no From address, or several.
        """
        broken = self.dmarc(["broken.example"])
        self.assertEqual(
            (broken["Result"], broken["Reason"]),
            (
                "permerror",
                "_dmarc.broken.example: p=maybe is not none, quarantine or reject",
            ),
        )
        self.assertEqual(self.dmarc([])["Reason"], "the message has no From: address")
        self.assertEqual(
            self.dmarc(["a.example", "b.example"])["Reason"],
            "From: has 2 addresses; DMARC needs exactly one",
        )

    def test_temperror(self) -> None:
        """
        A DNS failure is temperror.
        """

        class Failing(RecordsSource):
            def txt(self, name: str) -> list[str]:
                raise DNSTemporaryError(f"TXT {name}: timed out")

        answer = evaluate_dmarc(Failing({}), ["example.org"], [], "none", "")
        self.assertEqual(answer["Result"], "temperror")
