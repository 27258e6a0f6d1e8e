"""
The HTTP API benchmark (benchmarks/mail_api.py) on a tiny load: the lab
serves the list, get, search and long-poll requests it makes, and the table
and targets come out.  No figure is compared with a time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent


class QuickAPIRunTests(SynchronousTestCase):
    def test_quick_run(self) -> None:
        """
        C{python -m benchmarks --quick --only mail_api} exits 0 with every
        figure measured (the first search after a restart too, with every
        fact loaded from the facts file and none parsed) and every target
        computed.
        """
        if not sys.platform.startswith("linux"):
            raise SkipTest("the benchmarks read /proc: Linux only")
        with tempfile.TemporaryDirectory(prefix="netlab-apibench-test-") as scratch:
            out = Path(scratch)
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks",
                    "--quick",
                    "--no-plot",
                    "--only",
                    "mail_api",
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
        [section] = [s for s in results["sections"] if s["name"] == "mail_api"]
        self.assertEqual(section["failures"], [])
        raw = section["raw"]
        for key in (
            "list_ms",
            "get_ms",
            "search_ms",
            "first_search_ms",
            "restart_search_ms",
            "wait_ms",
        ):
            self.assertIsInstance(raw[key], float, key)
        # The store's 200 messages and the wait probes, all from the file.
        self.assertEqual((raw["restart_loaded"], raw["restart_parsed"]), (202, 0))
        self.assertEqual(
            [t["what"] for t in section["targets"]],
            [
                "decoded search over 200 messages",
                "first decoded search after a restart",
                "long-poll answer after the 250",
            ],
        )
        self.assertTrue(all(t["value"] is not None for t in section["targets"]))
