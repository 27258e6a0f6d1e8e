"""
The capture benchmark (benchmarks/mail_capture.py) on a tiny load: netlab-mail
with --catch-all, aiosmtpd and MailDev 3 each accept and store every message
(counted on disk), and the ratios and targets come out.  No figure is compared
with a time: the machine is shared.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SkipTest, SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent
MAILDEV = ROOT / "tests" / "interop" / "node" / "node_modules" / ".bin" / "maildev"


class QuickCaptureRunTests(SynchronousTestCase):
    def test_quick_run(self) -> None:
        """
        C{python -m benchmarks --quick --only mail_capture} exits 0 with the
        three servers measured in both loads (10 messages a connection, and
        one), every message of the load stored by each,
        and both targets (against aiosmtpd and MailDev) computed.
        """
        if not sys.platform.startswith("linux"):
            raise SkipTest("the benchmarks read /proc: Linux only")
        if importlib.util.find_spec("aiosmtpd") is None:
            raise SkipTest("aiosmtpd is not installed (pip install -e '.[test]')")
        if not MAILDEV.exists() or shutil.which("node") is None:
            raise SkipTest(
                "MailDev is not installed (npm ci --prefix tests/interop/node)"
            )
        with tempfile.TemporaryDirectory(prefix="netlab-capture-bench-") as scratch:
            out = Path(scratch)
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks",
                    "--quick",
                    "--no-plot",
                    "--only",
                    "mail_capture",
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
            self.assertEqual(done.returncode, 0, done.stderr[-3000:])
            results = json.loads((out / "benchmarks.json").read_text())
        [section] = results["sections"]
        self.assertEqual(section["name"], "mail_capture")
        self.assertEqual(section["failures"], [])
        raw = section["raw"]
        self.assertEqual(
            {r["server"] for r in raw["runs"]},
            {"netlab-mail --catch-all", "aiosmtpd Mailbox", "MailDev 3"},
        )
        self.assertEqual(
            {r["scenario"] for r in raw["runs"]}, {"capture-disk", "capture-disk-1"}
        )
        self.assertEqual(raw["load"]["capture-disk"]["per_connection"], 10)
        self.assertEqual(raw["load"]["capture-disk-1"]["per_connection"], 1)
        for r in raw["runs"]:
            self.assertIsNone(r["error"], r["server"])
            self.assertGreater(r["per_second"], 0)
        for scenario in ("capture-disk", "capture-disk-1"):
            self.assertEqual(
                set(raw["ratios"][scenario]), {"aiosmtpd Mailbox", "MailDev 3"}
            )
        self.assertEqual(len(section["targets"]), 4)
