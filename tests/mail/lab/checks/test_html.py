"""
Tests for L{twisted_netlab.mail.lab.checks.html}: the HTML check's answer,
in Mailpit's HTMLCheckResponse shape, scored as Mailpit scores it.
"""

from __future__ import annotations

import threading
from email.message import EmailMessage
from typing import Any

import pytest
import pytest_twisted
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.checks import caniemail, html
from twisted_netlab.mail.lab.checks.context import CheckContext
from twisted_netlab.mail.lab.checks.html import html_check, html_report

#: HTMLCheckResponse and HTMLCheckTotal in Mailpit's swagger.json
RESPONSE_FIELDS = {"Platforms", "Total", "Warnings"}
TOTAL_FIELDS = {"Nodes", "Partial", "Supported", "Tests", "Unsupported"}


def message(html_body: str | None, text: str = "Hello") -> bytes:
    composed = EmailMessage()
    composed["From"] = "a@example.test"
    composed["To"] = "b@example.test"
    composed["Subject"] = "news"
    composed.set_content(text)
    if html_body is not None:
        composed.add_alternative(html_body, subtype="html", cte="quoted-printable")
    return composed.as_bytes()


def slugs(report: dict[str, Any]) -> list[str]:
    return [w["Slug"] for w in report["Warnings"]]


class ReportTests(SynchronousTestCase):
    """
    L{html_report} on HTML text.
    """

    def test_shape(self) -> None:
        """
        The answer has exactly HTMLCheckResponse's fields, Total exactly
        HTMLCheckTotal's, with their types.
        """
        report = html_report("<video></video>")
        self.assertEqual(set(report), RESPONSE_FIELDS)
        self.assertEqual(set(report["Total"]), TOTAL_FIELDS)
        self.assertIsInstance(report["Total"]["Nodes"], int)
        self.assertIsInstance(report["Total"]["Tests"], int)
        for name in ("Supported", "Partial", "Unsupported"):
            self.assertIsInstance(report["Total"][name], float)
        self.assertEqual(report["Platforms"], caniemail.platforms())

    def test_one_feature_on_every_node(self) -> None:
        """
        With one feature on the only element, the total is that feature's
        own score: weight 1.
        """
        report = html_report("<video></video>")
        self.assertEqual(slugs(report), ["html-video"])
        score = report["Warnings"][0]["Score"]
        expected = caniemail.feature_warning("html-video", 1)["Score"]
        self.assertEqual(report["Total"]["Nodes"], 1)
        self.assertEqual(score["Found"], 1)
        self.assertAlmostEqual(report["Total"]["Partial"], expected["Partial"], 2)
        self.assertAlmostEqual(
            report["Total"]["Unsupported"], expected["Unsupported"], 2
        )
        self.assertAlmostEqual(
            report["Total"]["Supported"],
            100 - expected["Partial"] - expected["Unsupported"],
            1,
        )

    def test_weighted_by_share_of_nodes(self) -> None:
        """
        A feature on one element of four weighs a quarter of its score; the
        total takes the largest weighted shares.
        """
        report = html_report("<div><video></video></div><div></div><div></div>")
        self.assertEqual(report["Total"]["Nodes"], 4)
        video = caniemail.feature_warning("html-video", 1)["Score"]
        self.assertAlmostEqual(
            report["Total"]["Unsupported"], video["Unsupported"] / 4, 2
        )
        self.assertAlmostEqual(report["Total"]["Partial"], video["Partial"] / 4, 2)

    def test_fully_supported_features_are_not_warnings(self) -> None:
        """
        A feature every client supports (div, p) is tested but not listed.
        """
        report = html_report("<div><p>x</p></div>")
        self.assertEqual(report["Warnings"], [])
        self.assertEqual(report["Total"]["Supported"], 100.0)
        self.assertGreater(report["Total"]["Tests"], 250)

    def test_worst_first(self) -> None:
        """
        Warnings come in order of their weighted partial and unsupported
        shares, the worst first.
        """
        report = html_report(
            '<p style="display:flex">a</p><p style="display:flex">b</p>'
            "<p><video></video></p><p>c</p><p>d</p>"
        )
        nodes = report["Total"]["Nodes"]

        def badness(w: dict[str, Any]) -> float:
            s = w["Score"]
            return (s["Partial"] + s["Unsupported"]) * min(s["Found"] / nodes, 1)

        values = [badness(w) for w in report["Warnings"]]
        self.assertEqual(values, sorted(values, reverse=True))
        self.assertIn("html-video", slugs(report))
        self.assertIn("css-display-flex", slugs(report))

    def test_script(self) -> None:
        """
        A script gets Mailpit's own warning: unsupported everywhere.
        """
        report = html_report("<p>x</p><script>alert(1)</script>")
        (warning,) = [w for w in report["Warnings"] if w["Slug"] == "html-script"]
        self.assertEqual(warning["Title"], "<script> element")
        self.assertEqual(warning["Score"]["Unsupported"], 100.0)
        self.assertEqual(warning["Score"]["Found"], 1)
        self.assertEqual(warning["Results"], [])
        self.assertEqual(report["Total"]["Unsupported"], 50.0)

    def test_no_html(self) -> None:
        """
        No HTML is nothing to score.
        """
        report = html_report("")
        self.assertEqual(report["Warnings"], [])
        self.assertEqual(report["Total"]["Nodes"], 0)
        self.assertEqual(report["Total"]["Supported"], 100.0)


class MessageTests(SynchronousTestCase):
    """
    L{html_check} on a stored message's bytes.
    """

    def test_html_part(self) -> None:
        """
        The HTML alternative is checked, decoded from quoted-printable.
        """
        raw = message('<p style="display: flex">' + "x" * 200 + "</p>")
        self.assertIn(b"=\n", raw.replace(b"\r\n", b"\n"))
        self.assertIn("css-display-flex", slugs(html_check(raw)))

    def test_text_only(self) -> None:
        """
        A text-only message has no nodes and no warnings.
        """
        report = html_check(message(None, text="<video> is not HTML here"))
        self.assertEqual(report["Total"]["Nodes"], 0)
        self.assertEqual(report["Warnings"], [])

    def test_not_mail(self) -> None:
        """
        Bytes that are no message still get an answer.
        """
        report = html_check(b"\x00\xff garbage")
        self.assertEqual(report["Total"]["Nodes"], 0)


@pytest_twisted.ensureDeferred
async def test_check_runs_in_a_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """
    C{check()} answers what L{html_check} answers, computed in a thread
    other than the reactor's.
    """
    from twisted.internet import reactor

    threads: list[int] = []

    def recording(raw: bytes) -> dict[str, Any]:
        threads.append(threading.get_ident())
        return html_check(raw)

    monkeypatch.setattr(html, "html_check", recording)
    raw = message("<video></video><p style='color: rgb(1,2,3)'>x</p>")
    answer = await html.check(raw, CheckContext(reactor=reactor))
    assert answer == html_check(raw)
    assert "html-video" in slugs(answer)
    assert len(threads) == 1
    assert threads[0] != threading.get_ident()
