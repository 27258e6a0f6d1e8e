"""
The lint and auth checks' benchmark (benchmarks/checks_lint_auth.py,
--only checks_lint_auth) on a tiny load: every check of
its table is measured against its peer, on a newsletter that is clean and
authentic, and the targets come out.  No figure is compared with a time.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from benchmarks.checks_lint_auth import CHECKS, _auth, _lint, newsletter

ROOT = Path(__file__).resolve().parents[4]


class NewsletterTests(SynchronousTestCase):
    def test_newsletter(self) -> None:
        """
        The newsletter is over 100 KB, has no lint finding, and passes DKIM,
        SPF and DMARC: the benchmark measures the checks on a good message.
        """
        raw = newsletter(3)
        self.assertGreater(len(raw), 100_000)
        self.assertEqual(_lint(raw)["Findings"], [])
        answer = _auth(raw)
        self.assertEqual(
            (
                answer["DKIM"][0]["Result"],
                answer["SPF"]["Result"],
                answer["DMARC"]["Result"],
            ),
            ("pass", "pass", "pass"),
        )


class QuickRunTests(SynchronousTestCase):
    def test_quick_run(self) -> None:
        """
        C{python -m benchmarks --quick --only checks_lint_auth} exits 0 with every
        check's figures, its peer's, and a target per check.
        """
        if not sys.platform.startswith("linux"):
            raise SkipTest("the benchmarks read /proc: Linux only")
        if not (shutil.which("cc") or shutil.which("gcc")):
            raise SkipTest("no C compiler (gcc) to build the load generator")
        with tempfile.TemporaryDirectory(prefix="netlab-checksbench-") as scratch:
            out = Path(scratch)
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks",
                    "--quick",
                    "--no-plot",
                    "--only",
                    "checks_lint_auth",
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
                check=False,
            )
            self.assertEqual(done.returncode, 0, done.stderr[-3000:])
            results = json.loads((out / "benchmarks.json").read_text())
        [section] = [s for s in results["sections"] if s["name"] == "checks_lint_auth"]
        self.assertEqual(section["failures"], [])
        figures = section["raw"]["checks"]
        self.assertEqual(set(figures), set(CHECKS))
        for name, f in figures.items():
            for key in ("cold_ms", "repeated_ms", "first_ms", "peer_ms", "ratio"):
                self.assertGreater(f[key], 0, f"{name} {key}")
        self.assertEqual(
            [t["what"] for t in section["targets"]],
            [
                f"{name} check, cold, {section['raw']['bytes'] // 1000} KB newsletter"
                for name in CHECKS
            ],
        )
