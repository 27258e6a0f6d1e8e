"""
The mail benchmarks (benchmarks/mail_*.py) on a tiny load: each runs against
its real peers (Dovecot, mbsync, aiosmtpd), every client and server does
its job (what they store or receive is counted and checked), the ratios and
targets are computed and the table comes out.  No figure is compared with a
time: the machine is shared.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.dovecot import skip_reason as dovecot_missing

ROOT = Path(__file__).resolve().parent.parent
_scratch = tempfile.TemporaryDirectory(prefix="netlab-mailbench-test-")
SCRATCH = Path(_scratch.name)
MAIL = ["mail_fetch", "mail_smtp", "mail_imap"]


def _requirements() -> str | None:
    if not sys.platform.startswith("linux"):
        return "the benchmarks read /proc: Linux only"
    if not (shutil.which("cc") or shutil.which("gcc")):
        return "no C compiler (gcc) to build the benchmarks' load generator"
    missing = dovecot_missing()
    if missing:
        return missing
    if shutil.which("mbsync") is None:
        return "mbsync is not installed (apt install isync)"
    try:
        import aiosmtpd  # noqa: F401
    except ImportError:
        return "aiosmtpd is not installed (pip install -e '.[test]')"
    return None


@functools.cache
def quick_run() -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """
    Run the mail benchmarks once with --quick, for all the tests here.
    """
    out = SCRATCH / "quick"
    only = [arg for name in MAIL for arg in ("--only", name)]
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "--quick",
            "--no-plot",
            *only,
            "--out",
            str(out),
            "--log-dir",
            str(out / "logs"),
            "--cache-dir",
            str(SCRATCH / "cache"),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    path = out / "benchmarks.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    return done, results


class QuickMailRunTests(SynchronousTestCase):
    """
    C{python -m benchmarks --quick --only mail_...}: every mail benchmark
    runs once on a tiny load.
    """

    def setUp(self) -> None:
        missing = _requirements()
        if missing:
            raise SkipTest(missing)
        self.done, self.results = quick_run()

    def section(self, name: str) -> dict[str, Any]:
        sections = {s["name"]: s for s in self.results["sections"]}
        self.assertIn(name, sections)
        section: dict[str, Any] = sections[name]
        return section

    def test_runs_without_failures(self) -> None:
        """
        The quick run exits 0, reports no failed measurement, and has the
        three mail sections in order.
        """
        self.assertEqual(self.done.returncode, 0, self.done.stderr[-3000:])
        self.assertNotIn("failed:", self.done.stderr)
        self.assertEqual([s["name"] for s in self.results["sections"]], MAIL)
        for section in self.results["sections"]:
            self.assertEqual(section["failures"], [], section["name"])
            self.assertNotIn("not_run", section["raw"], section["name"])

    def test_fetch_runs(self) -> None:
        """
        netlab fetch, the one-message-per-round-trip imaplib script and
        mbsync each copied the whole mailbox in every scenario (loopback and
        the two delay links, disk and tmpfs); both ratios are computed.
        """
        raw = self.section("mail_fetch")["raw"]
        clients = {"netlab fetch", "imaplib 1/round trip", "mbsync"}
        self.assertEqual({c["name"] for c in raw["clients"]}, clients)
        scenarios = {s["key"] for s in raw["scenarios"]}
        self.assertEqual(
            scenarios, {"loopback-disk", "loopback-tmpfs", "1ms-tmpfs", "5ms-tmpfs"}
        )
        self.assertEqual(
            {(r["scenario"], r["client"]) for r in raw["runs"]},
            {(s, c) for s in scenarios for c in clients},
        )
        for r in raw["runs"]:
            label = f"{r['scenario']} {r['client']}"
            self.assertIsNone(r["error"], label)
            self.assertGreater(r["seconds"], 0, label)
            self.assertGreaterEqual(r["cpu"], 0, label)
            self.assertGreaterEqual(r["server_cpu"], 0, label)
        for scenario, ratios in raw["ratios"].items():
            self.assertEqual(set(ratios), clients - {"netlab fetch"}, scenario)
            for value in ratios.values():
                self.assertGreater(value, 0)
        self.assertEqual(raw["load"]["messages"], 40)
        self.assertGreater(raw["load"]["size_min"], 4000)

    def test_delay_links(self) -> None:
        """
        A round trip through a delay link takes at least the delay it adds
        (it never passes a byte on early).
        """
        trips = self.section("mail_fetch")["raw"]["load"]["round_trip_ms"]
        self.assertEqual(set(trips), {"0", "1", "5"})
        self.assertGreaterEqual(trips["1"], 1.0)
        self.assertGreaterEqual(trips["5"], 5.0)

    def test_smtp_runs(self) -> None:
        """
        netlab-mail and aiosmtpd each accepted and stored every message of
        the load, on disk and on tmpfs; the load generator's cost is
        reported.
        """
        raw = self.section("mail_smtp")["raw"]
        runs = raw["runs"]
        self.assertEqual(
            {(r["scenario"], r["server"]) for r in runs},
            {
                (s, n)
                for s in ("smtp-disk", "smtp-tmpfs")
                for n in ("netlab-mail", "aiosmtpd Mailbox")
            },
        )
        for r in runs:
            self.assertIsNone(r["error"], r["server"])
            self.assertGreater(r["per_second"], 0)
            self.assertGreaterEqual(r["server_cpu_ms_per_message"], 0)
            self.assertGreater(r["senders_cpu_ms_per_message"], 0)
        self.assertEqual(raw["load"]["senders"], 10)

    def test_imap_runs(self) -> None:
        """
        The imaplib client read every message, byte for byte in count and
        size, from both servers, in plaintext and over TLS.
        """
        raw = self.section("mail_imap")["raw"]
        self.assertEqual(
            {(r["scenario"], r["server"]) for r in raw["runs"]},
            {
                (s, n)
                for s in ("imap-plain", "imap-tls")
                for n in ("netlab-mail", "Dovecot")
            },
        )
        for r in raw["runs"]:
            self.assertIsNone(r["error"], r["server"])
            self.assertGreater(r["per_second"], 0)
        self.assertEqual(set(raw["first_open_seconds"]), {"netlab-mail", "Dovecot"})

    def test_targets(self) -> None:
        """
        Every mail target of issue 6 is evaluated with a measured value:
        5x the one-per-round-trip script and 1.5x mbsync per fetch scenario,
        1.0x aiosmtpd per disk, 3x Dovecot per connection kind.
        """
        counts = {"mail_fetch": 8, "mail_smtp": 2, "mail_imap": 2}
        for name, count in counts.items():
            targets = self.section(name)["targets"]
            self.assertEqual(len(targets), count, name)
            for t in targets:
                self.assertIsNotNone(t["value"], t["what"])
                self.assertIsInstance(t["met"], bool)

    def test_table_printed(self) -> None:
        """
        The printed table has every mail benchmark, client and server, and
        the targets.
        """
        for text in (
            "Mail fetch: 40 messages",
            "Mail fetch links",
            "netlab fetch",
            "imaplib 1/round trip",
            "mbsync",
            "Mail SMTP intake",
            "aiosmtpd Mailbox",
            "Mail IMAP serving",
            "Dovecot",
            "Targets",
        ):
            self.assertIn(text, self.done.stdout)


class CheckingTests(SynchronousTestCase):
    """
    The mail benchmarks do not count a run whose client or server did not
    do the whole job.
    """

    def test_failing_client(self) -> None:
        """
        A client program that fails is a L{ClientError} with its exit status
        and the end of what it printed.
        """
        from benchmarks.processes import ClientError, run_client

        done = run_client(
            [sys.executable, "-c", "import sys; sys.exit('no such mailbox')"]
        )
        self.assertEqual(done.returncode, 1)
        error = self.assertRaises(ClientError, done.check, "the client")
        self.assertEqual(str(error), "the client exited with status 1: no such mailbox")

    def test_fetch_short(self) -> None:
        """
        A fetch client that saves fewer messages than the mailbox holds is
        a L{ClientError}, and its directory is removed.
        """
        from benchmarks.mail_fetch import NETLAB, Fetcher
        from benchmarks.processes import ClientError

        class Server:
            def master_pid(self) -> int:
                return os.getpgrp()

        base = SCRATCH / "short"
        base.mkdir(parents=True, exist_ok=True)
        fetcher = Fetcher(Server(), dict(os.environ), base)
        save_one = (
            "import os, sys; os.makedirs(sys.argv[1] + '/new');"
            "open(sys.argv[1] + '/new/1', 'w').write('x')"
        )
        self.patch(
            fetcher,
            "argv",
            lambda client, port, target: [sys.executable, "-c", save_one, target],
        )
        error = self.assertRaises(ClientError, fetcher.run, NETLAB, 1, base, 2, 2)
        self.assertEqual(str(error), "netlab fetch saved 1 messages, not 2")
        self.assertEqual(os.listdir(base), [])
