"""
benchmarks/checks.py on a tiny load: the html and links checks are
measured in child processes, with urllib as the links' peer, and the
report holds their figures and the html target.  No figure is compared with
a time: the machine is shared.
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
from twisted_netlab.mail.lab.checks.links import message_links
from twisted_netlab.mail.lab.store.parsed import parse_message

ROOT = Path(__file__).resolve().parents[4]


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


class QuickRunTests(SynchronousTestCase):
    """
    C{python -m benchmarks --quick --only checks}.
    """

    def test_quick_run(self) -> None:
        """
        The html and links rows have figures, the links row a peer ratio,
        and the html target is reported.
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
        self.assertEqual(sorted(rows), ["html", "links"])
        for row in rows.values():
            self.assertNotEqual(row[1], "-")
            self.assertNotEqual(row[2], "-")
        self.assertTrue(rows["links"][6].endswith("x"))
        self.assertIn("100 links", rows["links"][7])
        (target,) = section["targets"]
        self.assertIn("html check cold", target["what"])
        self.assertIsNotNone(target["value"])
