"""
Tests for L{twisted_netlab.mail.lab.checks.results}: each check's real
answer read as a result object, attribute by attribute.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.checks.auth import authenticate
from twisted_netlab.mail.lab.checks.html import html_check
from twisted_netlab.mail.lab.checks.lint import lint
from twisted_netlab.mail.lab.checks.results import (
    AuthResult,
    HTMLResult,
    Link,
    LinksResult,
    LintFinding,
    LintResult,
    SpamResult,
    SpamRule,
    result_of,
)
from twisted_netlab.mail.lab.checks.spam import parse_reply, spam_result

from .test_auth import ARRIVAL, RECORDS, message, signed, source
from .test_lint import composed
from .test_spam import reply_bytes


class LintResultTests(SynchronousTestCase):
    def test_clean(self) -> None:
        """
        A clean message's lint has no errors, no warnings, no findings.
        """
        result = result_of("lint", lint(composed()))
        assert isinstance(result, LintResult)
        self.assertEqual(
            (result.errors, result.warnings, result.findings), ([], [], [])
        )

    def test_findings_by_severity(self) -> None:
        """
        A bare LF is an error, an HTML-only message a warning; each finding
        has its code, severity, message and place; the JSON is kept.
        """
        raw = (
            b"From: a@example.org\r\nTo: b@example.test\r\nDate: Mon, 1 Jan 2024 "
            b"10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\nSubject: hi\n"
            b"MIME-Version: 1.0\r\nContent-Type: text/html\r\n\r\n<p>hi</p>\r\n"
        )
        answer = lint(raw)
        result = LintResult.from_json(answer)
        self.assertEqual([f.code for f in result.errors], ["bare-lf"])
        self.assertEqual([f.code for f in result.warnings], ["no-text-part"])
        self.assertEqual(result.codes, ["bare-lf", "no-text-part"])
        self.assertIsInstance(result.errors[0], LintFinding)
        self.assertEqual(result.errors[0].severity, "error")
        self.assertIn("line", result.errors[0].where)
        self.assertEqual(result.json, answer)


class AuthResultTests(SynchronousTestCase):
    def test_pass(self) -> None:
        """
        A signed message from an allowed address: each part's result and
        domain, and C{passed}.
        """
        result = result_of("auth", authenticate(signed(), ARRIVAL, source(RECORDS)))
        assert isinstance(result, AuthResult)
        [signature] = result.dkim
        self.assertEqual(
            (signature.domain, signature.selector, signature.result),
            ("example.org", "sel1", "pass"),
        )
        self.assertEqual(
            (result.spf.result, result.spf.domain), ("pass", "example.org")
        )
        self.assertEqual(
            (result.dmarc.result, result.dmarc.policy, result.dmarc.domain),
            ("pass", "reject", "example.org"),
        )
        self.assertIsNone(result.arc)
        self.assertTrue(result.passed)

    def test_fail(self) -> None:
        """
        Unsigned from an address SPF does not allow: DMARC fails, with its
        reason; not passed.
        """
        arrival = type(ARRIVAL)(
            mail_from="bounces@example.org", client_ip="203.0.113.9"
        )
        result = AuthResult.from_json(authenticate(message(), arrival, source(RECORDS)))
        self.assertEqual((result.dkim, result.spf.result), ([], "fail"))
        self.assertIn("p=reject", result.dmarc.reason)
        self.assertFalse(result.passed)


class SpamResultTests(SynchronousTestCase):
    def test_report(self) -> None:
        """
        spamd's report: score, verdict, rules with their points.
        """
        reply = parse_reply(reply_bytes())
        result = result_of("spam", spam_result(reply, "127.0.0.1:783"))
        assert isinstance(result, SpamResult)
        self.assertEqual(
            (result.score, result.is_spam, result.error), (1002.3, True, "")
        )
        self.assertIn("GTUBE", result.rule_names)
        self.assertIn(
            SpamRule("MISSING_DATE", 1.4, "Missing Date: header"), result.rules
        )

    def test_error(self) -> None:
        """
        An answer without a score carries its Error.
        """
        result = SpamResult.from_json(
            {"Error": "cannot connect", "IsSpam": False, "Score": 0, "Rules": []}
        )
        self.assertEqual((result.error, result.rules), ("cannot connect", []))


class LinksResultTests(SynchronousTestCase):
    def test_links(self) -> None:
        """
        Each link's status; C{broken} are the fetched links that failed (no
        answer, 400 or more, blocked), not those that were not fetched.
        """
        answer = {
            "Errors": 3,
            "Links": [
                {"URL": "https://a.test/", "StatusCode": 200, "Status": "OK"},
                {"URL": "https://a.test/x", "StatusCode": 404, "Status": "Not Found"},
                {"URL": "http://10.0.0.1/", "StatusCode": 451, "Status": "Blocked"},
                {"URL": "https://b.test/", "StatusCode": 0, "Status": "timed out"},
                {
                    "URL": "mailto:x@a.test",
                    "StatusCode": 0,
                    "Status": "not checked: mailto: links are not fetched",
                },
            ],
        }
        result = result_of("links", answer)
        assert isinstance(result, LinksResult)
        self.assertEqual(result.errors, 3)
        self.assertEqual(
            [link.url for link in result.broken],
            ["https://a.test/x", "http://10.0.0.1/", "https://b.test/"],
        )
        self.assertEqual(result.links[0], Link("https://a.test/", 200, "OK"))
        self.assertFalse(result.links[4].checked)


class HTMLResultTests(SynchronousTestCase):
    def test_report(self) -> None:
        """
        The total's shares and counts, the warnings' slugs and scores, the
        platforms.
        """
        raw = (
            b"Content-Type: text/html\r\n\r\n<div style='display:flex'>"
            b"<video src='a.mp4'></video></div>\r\n"
        )
        answer = html_check(raw)
        result = result_of("html", answer)
        assert isinstance(result, HTMLResult)
        self.assertEqual(result.nodes, answer["Total"]["Nodes"])
        self.assertAlmostEqual(
            result.supported + result.partial + result.unsupported, 100, places=1
        )
        self.assertIn("html-video", result.slugs)
        self.assertIn("css-display-flex", result.slugs)
        [video] = [w for w in result.warnings if w.slug == "html-video"]
        self.assertEqual(video.found, 1)
        self.assertGreater(video.unsupported + video.partial, 0)
        self.assertIn("windows", result.platforms)
