"""
benchmarks/checks.py (C{--only checks}) on a tiny load: the html, links,
lint and auth checks are measured in child processes, directly and through
the lab (first and cached), with their peers (urllib, the stdlib's parser,
dkim.verify), and the report holds their figures and targets.  No figure
is compared with a time: the machine is shared.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from benchmarks.checks import NEWSLETTER_BYTES, newsletter
from benchmarks.checks_signing import auth, lint, records_text, sign
from twisted_netlab.mail.lab.checks.links import message_links
from twisted_netlab.mail.lab.store.parsed import parse_message

ROOT = Path(__file__).resolve().parents[1]


class NewsletterTests(SynchronousTestCase):
    """
    The benchmark's message.
    """

    def test_size_and_links(self) -> None:
        """
        Its HTML body is about 100 KB, and it has the 100 links the link
        check takes.
        """
        raw = newsletter("http://127.0.0.1:9")
        html = parse_message(raw).html
        self.assertGreater(len(html), NEWSLETTER_BYTES * 0.95)
        self.assertLess(len(html), NEWSLETTER_BYTES * 1.05)
        self.assertEqual(len(message_links(raw)), 100)

    def test_clean_and_authentic(self) -> None:
        """
        Signed, it has no lint finding and passes DKIM, SPF and DMARC: the
        benchmark measures the checks on a good message.
        """
        raw = sign(newsletter("http://127.0.0.1:9"))
        self.assertEqual(lint(raw)["Findings"], [])
        answer = auth(raw, records_text())
        self.assertEqual(
            (
                answer["DKIM"][0]["Result"],
                answer["SPF"]["Result"],
                answer["DMARC"]["Result"],
            ),
            ("pass", "pass", "pass"),
        )


class QuickRunTests(SynchronousTestCase):
    """
    C{python -m benchmarks --quick --only checks}.
    """

    def test_quick_run(self) -> None:
        """
        The html, links, lint and auth rows have figures (cold, repeated,
        through the lab first and cached), the rows with a peer a ratio,
        and the cold targets of html, lint and auth are reported.
        """
        if not (shutil.which("cc") or shutil.which("gcc")):
            raise SkipTest("no C compiler (gcc) to build the load generator")
        with tempfile.TemporaryDirectory(prefix="netlab-checks-bench-") as work:
            out = Path(work)
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks",
                    "--quick",
                    "--no-plot",
                    "--only",
                    "checks",
                    "--case",
                    "html",
                    "--case",
                    "links",
                    "--case",
                    "lint",
                    "--case",
                    "auth",
                    "--out",
                    str(out),
                    "--log-dir",
                    str(out / "logs"),
                    "--cache-dir",
                    str(out / "cache"),
                ],
                cwd=ROOT,
                capture_output=True,
                text=True,
                timeout=300,
            )
            self.assertEqual(done.returncode, 0, done.stderr[-2000:])
            results = json.loads((out / "benchmarks.json").read_text())
        (section,) = results["sections"]
        self.assertEqual(section["name"], "checks")
        rows = {row[0]: row for row in section["tables"][0]["rows"]}
        self.assertEqual(sorted(rows), ["auth", "html", "links", "lint"])
        header = section["tables"][0]["columns"]
        for row in rows.values():
            for column in ("cold ms", "repeated ms", "lab first ms", "cached ms"):
                self.assertNotEqual(row[header.index(column)], "-", (row, column))
        ratio = header.index("ours/peer")
        for name in ("links", "lint", "auth"):
            self.assertTrue(rows[name][ratio].endswith("x"), rows[name])
        self.assertIn("100 links", rows["links"][header.index("answer")])
        self.assertEqual(rows["auth"][header.index("answer")], "dkim, spf, dmarc pass")
        targets = sorted(t["what"] for t in section["targets"])
        self.assertEqual(
            [t.split()[0] for t in targets], ["auth", "html", "lint"], targets
        )
        for target in section["targets"]:
            self.assertIsNotNone(target["value"])
