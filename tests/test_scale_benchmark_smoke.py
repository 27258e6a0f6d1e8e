"""
The scale benchmark (benchmarks/scale.py) on a tiny INBOX: the lab and
Dovecot serve every request it makes, and the table and targets come out.
No figure is compared with a time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.dovecot import skip_reason

ROOT = Path(__file__).resolve().parent.parent


class QuickScaleRunTests(SynchronousTestCase):
    def test_quick_run(self) -> None:
        """
        C{python -m benchmarks --quick --only scale --scale-size 150} exits 0
        with every figure of the lab and of Dovecot measured and every
        target computed.
        """
        if not sys.platform.startswith("linux"):
            raise SkipTest("the benchmarks read /proc: Linux only")
        missing = skip_reason()
        if missing:
            raise SkipTest(missing)
        with tempfile.TemporaryDirectory(prefix="netlab-scalebench-test-") as scratch:
            out = Path(scratch)
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks",
                    "--quick",
                    "--no-plot",
                    "--only",
                    "scale",
                    "--scale-size",
                    "150",
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
            results = json.loads((out / "benchmarks.json").read_text())
        [section] = [s for s in results["sections"] if s["name"] == "scale"]
        self.assertEqual(section["failures"], [])
        # Targets may be missed (the exit status says so); none may be left
        # unmeasured.
        self.assertIn(done.returncode, (0, 1), done.stderr[-3000:])
        raw = section["raw"]
        self.assertEqual(raw["messages"], 150)
        lab, dovecot = raw["lab"], raw["dovecot"]
        for key in (
            "info_ms",
            "list_first_ms",
            "list_middle_ms",
            "list_end_ms",
            "message_ms",
            "search_subject_ms",
            "search_body_ms",
            "restart_search_ms",
            "searchable_s",
            "rss_mb",
            "intake_per_s",
            "empty_intake_per_s",
        ):
            self.assertIsInstance(lab[key], float, key)
        imap_keys = {
            "select_ms",
            "status_ms",
            "fetch_flags_ms",
            "search_subject_ms",
            "search_body_ms",
        }
        self.assertEqual(set(lab["imap"]), imap_keys)
        self.assertEqual(set(dovecot), imap_keys)
        self.assertEqual(len(section["targets"]), 8)
        self.assertTrue(all(t["value"] is not None for t in section["targets"]))
        self.assertIn("Scale: one INBOX of 150 messages", done.stdout)


class ScaleSizeTests(SynchronousTestCase):
    def test_not_positive(self) -> None:
        """
        C{--scale-size 0} is refused with a one-line error, not a traceback.
        """
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks",
                "--only",
                "scale",
                "--scale-size",
                "0",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        self.assertEqual(done.returncode, 2)
        self.assertIn("--scale-size must be positive", done.stderr)
        self.assertNotIn("Traceback", done.stderr)
