"""
The web inbox benchmark (benchmarks/web_inbox.py) on a tiny load: the lab's
page and MailDev 3's UI each render in Chromium and show a message sent
while they are open; the table comes out.  No figure is compared with a
time: the machine is shared.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from benchmarks.web_inbox import CHROMIUM, MAILDEV, MAILDEV_BIN, NETLAB

ROOT = Path(__file__).resolve().parent.parent


class QuickWebRunTests(SynchronousTestCase):
    def test_both_pages_measured(self) -> None:
        """
        C{python -m benchmarks --quick --only web_inbox} exits 0 with every
        figure (first render, bytes transferred, 250 -> row) for the lab's
        page and for MailDev's, and no failure.
        """
        if not CHROMIUM.exists():
            raise SkipTest(f"Debian's chromium is not installed ({CHROMIUM})")
        if not MAILDEV_BIN.exists() or shutil.which("node") is None:
            raise SkipTest(
                "MailDev is not installed (npm ci --prefix tests/interop/node)"
            )
        scratch = tempfile.TemporaryDirectory(prefix="netlab-webbench-test-")
        self.addCleanup(scratch.cleanup)
        out = Path(scratch.name)
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "benchmarks",
                "--quick",
                "--no-plot",
                "--only",
                "web_inbox",
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
            timeout=600,
        )
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        [section] = json.loads((out / "benchmarks.json").read_text())["sections"]
        self.assertEqual(section["failures"], [])
        runs = {r["server"]: r for r in section["raw"]["runs"]}
        self.assertEqual(set(runs), {NETLAB, MAILDEV})
        for name, record in runs.items():
            self.assertGreater(record["first_render_ms"], 0, name)
            self.assertGreater(record["transferred_bytes"], 0, name)
            self.assertIsNotNone(record["arrival_ms"], name)
        self.assertIn("Web inbox, 50 messages stored", done.stdout)
