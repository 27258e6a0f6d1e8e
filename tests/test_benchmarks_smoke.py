"""
The benchmarks (benchmarks/, outside the package) on a tiny load: every
benchmark runs, its figures are sane, the table and the plot come out, and the
load generator really checks what the servers answer.  No figure is compared
with a time: the machine is shared.
"""

from __future__ import annotations

import functools
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from twisted.trial.unittest import SkipTest, SynchronousTestCase

ROOT = Path(__file__).resolve().parent.parent
_scratch = tempfile.TemporaryDirectory(prefix="netlab-bench-test-")
SCRATCH = Path(_scratch.name)


def _requirements() -> str | None:
    if not sys.platform.startswith("linux"):
        return "the benchmarks read /proc and use epoll: Linux only"
    if not (shutil.which("cc") or shutil.which("gcc")):
        return "no C compiler (gcc) to build the load generator"
    return None


def _bench(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "benchmarks", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@functools.cache
def quick_run() -> tuple[subprocess.CompletedProcess[str], dict[str, Any]]:
    """
    Run ``python -m benchmarks --quick`` once for all the tests here.
    """
    out = SCRATCH / "quick"
    done = _bench(
        "--quick",
        "--no-plot",
        "--only",
        "echo",
        "--only",
        "hello",
        "--out",
        str(out),
        "--log-dir",
        str(out / "logs"),
        "--cache-dir",
        str(SCRATCH / "cache"),
    )
    path = out / "benchmarks.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    return done, results


class QuickRunTests(SynchronousTestCase):
    """
    C{python -m benchmarks --quick}: everything runs once on a tiny load.
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
        The quick run exits 0, reports no failed measurement, and records
        both benchmarks and the machine it ran on.
        """
        self.assertEqual(self.done.returncode, 0, self.done.stderr[-3000:])
        self.assertNotIn("failed:", self.done.stderr)
        self.assertTrue(self.results["quick"])
        self.assertEqual(
            [s["name"] for s in self.results["sections"]], ["echo", "hello"]
        )
        for section in self.results["sections"]:
            self.assertEqual(section["failures"], [])
        self.assertGreaterEqual(self.results["machine"]["cores"], 1)

    def test_echo_closed_loop_figures(self) -> None:
        """
        Every echo scenario ran against all five servers, and each run's
        figures are sane: replies came back byte for byte, latencies are
        positive with p50 <= p99, and both the server's and the load
        generator's CPU per reply were measured.
        """
        echo = self.section("echo")
        runs = echo["raw"]["runs"]
        servers = {
            "netlab-echo",
            "twisted-textbook",
            "seed-threaded",
            "asyncio",
            "uvloop",
        }
        scenarios = {s["key"] for s in echo["raw"]["scenarios"]}
        self.assertEqual(scenarios, {"1x1", "100x10", "1000x1", "10x64-1KiB"})
        self.assertEqual(
            {(r["scenario"], r["server"]) for r in runs},
            {(s, n) for s in scenarios for n in servers},
        )
        for r in runs:
            label = f"{r['scenario']} {r['server']}"
            self.assertIsNone(r["error"], label)
            self.assertEqual(r["mismatches"], 0, label)
            self.assertEqual(r["opened"], r["conns"], label)
            self.assertGreater(r["replies"], 0, label)
            self.assertGreater(r["per_second"], 0, label)
            self.assertGreater(r["p50_us"], 0, label)
            self.assertLessEqual(r["p50_us"], r["p99_us"], label)
            self.assertGreater(r["client_cpu_us_per_reply"], 0, label)
            self.assertGreaterEqual(r["server_cpu_us_per_reply"], 0, label)

    def test_echo_ratios(self) -> None:
        """
        netlab-echo's ratio against every peer is computed for every scenario
        (both replies/s and CPU per reply).
        """
        raw = self.section("echo")["raw"]
        for key in ("ratios", "cpu_per_reply_ratios"):
            for scenario, ratios in raw[key].items():
                self.assertEqual(
                    set(ratios),
                    {"twisted-textbook", "seed-threaded", "asyncio", "uvloop"},
                )
                for peer, value in ratios.items():
                    self.assertIsNotNone(value, f"{key} {scenario} {peer}")
                    self.assertGreater(value, 0)

    def test_echo_connections(self) -> None:
        """
        Each echo server held every connection of the hold test and answered a
        line on each; memory per idle connection is positive and below a
        megabyte.
        """
        connections = self.section("echo")["raw"]["connections"]
        self.assertEqual(
            set(connections),
            {
                "netlab-echo",
                "netlab-echo+timeout",
                "twisted-textbook",
                "seed-threaded",
                "asyncio",
                "uvloop",
            },
        )
        for name, c in connections.items():
            self.assertNotIn("error", c, name)
            self.assertEqual(c["answered"], c["hold_conns"], name)
            self.assertEqual(c["accepted"], c["hold_conns"], name)
            self.assertTrue(c["held"], name)
            self.assertGreater(c["kib_per_idle_conn"], 0, name)
            self.assertLess(c["kib_per_idle_conn"], 1024, name)

    def test_hello_figures(self) -> None:
        """
        The three greeting servers each served connections, every greeting
        checked byte for byte.
        """
        runs = self.section("hello")["raw"]["runs"]
        self.assertEqual(
            {r["server"] for r in runs},
            {"netlab-hello", "twisted-textbook", "seed-tcpserver"},
        )
        for r in runs:
            self.assertIsNone(r["error"], r["server"])
            self.assertEqual(r["mismatches"], 0, r["server"])
            self.assertGreater(r["per_second"], 0, r["server"])
            self.assertLessEqual(r["p50_us"], r["p99_us"], r["server"])

    def test_targets(self) -> None:
        """
        Every echo target is evaluated with a measured value: issue 6's 1.0x
        textbook Twisted per scenario, 4x and 2x the seed, memory per idle
        connection and the concurrent connections held; issue 14's 1.0x
        asyncio per scenario, 1.0x and 1.5x the seed, 0.9x uvloop.
        """
        targets = self.section("echo")["targets"]
        whats = [t["what"] for t in targets]
        self.assertEqual(len(targets), 18, whats)
        self.assertEqual(sum("/ twisted-textbook" in w for w in whats), 4)
        self.assertEqual(sum("/ seed-threaded" in w for w in whats), 4)
        self.assertEqual(sum("/ asyncio" in w for w in whats), 4)
        self.assertEqual(sum("/ uvloop" in w for w in whats), 4)
        for t in targets:
            self.assertIsNotNone(t["value"], t["what"])
            self.assertIsInstance(t["met"], bool)

    def test_table_printed(self) -> None:
        """
        One table is printed with every server, the ratios and the targets,
        and saved next to the JSON.
        """
        out = self.done.stdout
        for name in (
            "netlab-echo",
            "twisted-textbook",
            "seed-threaded",
            "asyncio",
            "uvloop",
            "netlab-hello",
            "seed-tcpserver",
            "Targets",
            "netlab-echo / this",
        ):
            self.assertIn(name, out)
        saved = (SCRATCH / "quick" / "benchmarks.txt").read_text()
        self.assertIn("Echo, closed loop", saved)

    def test_plot(self) -> None:
        """
        The plot is redrawn from the JSON file as a PNG image.
        """
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            raise SkipTest(
                "matplotlib is not installed: pip install -e '.[bench]'"
            ) from None
        out = SCRATCH / "replot"
        done = _bench(
            "--plot-from", str(SCRATCH / "quick" / "benchmarks.json"), "--out", str(out)
        )
        self.assertEqual(done.returncode, 0, done.stderr)
        png = (out / "benchmarks.png").read_bytes()
        self.assertEqual(png[:8], b"\x89PNG\r\n\x1a\n")
        self.assertGreater(len(png), 10_000)


class ErrorTests(SynchronousTestCase):
    """
    The harness's failures are one clear line, and the load generator catches
    wrong answers.
    """

    def setUp(self) -> None:
        missing = _requirements()
        if missing:
            raise SkipTest(missing)

    def test_bad_option(self) -> None:
        """
        A bad option value is a one-line usage error with exit status 2.
        """
        done = _bench("--repeats", "0")
        self.assertEqual(done.returncode, 2)
        self.assertIn("--repeats must be positive", done.stderr)
        self.assertNotIn("Traceback", done.stderr)

    def test_unreadable_results(self) -> None:
        """
        --plot-from a file that is not there fails with one line naming it.
        """
        missing = SCRATCH / "nothing.json"
        done = _bench("--plot-from", str(missing))
        self.assertEqual(done.returncode, 1)
        self.assertIn(f"cannot read {missing}", done.stderr)
        self.assertNotIn("Traceback", done.stderr)

    def test_compile_failure(self) -> None:
        """
        When the C compiler fails, building the load generator raises
        L{LoadgenError} with the compiler's message.
        """
        from benchmarks.loadgen import LoadgenError, build

        self.patch(sys.modules["os"], "environ", {"CC": "/bin/false"})
        error = self.assertRaises(LoadgenError, build, SCRATCH / "badcache")
        self.assertIn("cannot compile", str(error))

    def test_server_that_dies(self) -> None:
        """
        A server that exits at once is reported as L{ServerError} with its
        exit status, not waited for.
        """
        from benchmarks.servers import RunningServer, ServerError, ServerSpec

        spec = ServerSpec(
            "broken", "exits at once", lambda port, log: [sys.executable, "-c", "1/0"]
        )
        error = self.assertRaises(
            ServerError, RunningServer, spec, SCRATCH / "broken-logs"
        )
        self.assertIn("broken exited with status 1", str(error))
        self.assertIn("ZeroDivisionError", str(error))

    def test_wrong_replies_counted(self) -> None:
        """
        Against an echo server whose prefix is not the one expected, every
        reply (those of the warm-up included) is counted as a mismatch and the
        run does not count.
        """
        from benchmarks.loadgen import build, run_timed
        from benchmarks.servers import RunningServer, ServerSpec, twistd

        binary = build(SCRATCH / "cache")
        spec = ServerSpec(
            "netlab-echo-x",
            "netlab-echo with another prefix",
            twistd("netlab-echo", "--prefix=X:", "--idle-timeout=0"),
        )
        with RunningServer(spec, SCRATCH / "x-logs") as server:
            result = run_timed(
                binary,
                "echo",
                server.port,
                server_cpu=server.cpu_times,
                conns=2,
                warmup=0.1,
                duration=0.2,
            )
        self.assertGreater(result.replies, 0)
        self.assertGreaterEqual(result.mismatches, result.replies)
        self.assertEqual(
            result.error, f"{result.mismatches} replies differed from what was expected"
        )
