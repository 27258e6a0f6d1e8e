"""
Where a server's time goes under one benchmark load:
``python -m benchmarks.profile [--server netlab-echo] [--scenario 1000x1]``.

The server runs pinned to one CPU as in the benchmarks; while the load
generator drives it, this reads the server's user and system CPU time per
reply from /proc, samples its Python stacks with py-spy (``pip install -e
'.[bench]'``) and, with ``--strace``, counts its system calls per reply in a
second window (strace slows the server down, so that window's rate is not
reported).  py-spy's shares are of the time the server was running, which is
its CPU time when it is saturated (the many-connection scenarios).
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import echo, hello
from benchmarks.loadgen import LoadgenError, TimedRun, build, run_timed
from benchmarks.servers import (
    RunningServer,
    ServerError,
    ServerSpec,
    pinning,
    raise_file_limit,
)

#: Where a sample of a Twisted server is, judged by its innermost frame (and
#: its caller): the system calls, the rest of Twisted's reactor and transport,
#: and the protocol's own code.
SYSCALLS = [
    ("at the recv() line", ("Connection.doRead",)),
    ("at the send() line", ("untilConcludes",)),
    (
        "at the epoll_ctl() lines of write-later (startWriting/stopWriting)",
        ("EPollReactor._add", "EPollReactor._remove"),
    ),
    ("at the epoll_wait() line", ("EPollReactor.doPoll",)),
    (
        "at the accept() and close() lines",
        ("socket.accept", "_SocketCloser._closeSocket", "socket._real_close"),
    ),
]
LOGGING_FILES = ("twisted/logger/", "twisted/python/logfile.py")
PROTOCOL_FILES = ("twisted_netlab/", "peers/", "twisted/protocols/basic.py")


def classify(frames: list[str]) -> str:
    """
    The category of one py-spy stack (outermost frame first).
    """
    leaf = frames[-1].split(" (", 1)[0]
    for name, leaves in SYSCALLS:
        if leaf in leaves:
            return name
    if any(p in f for f in frames for p in LOGGING_FILES):
        return "logging (twisted.logger, the log file)"
    if any(p in f for f in frames for p in PROTOCOL_FILES):
        return "protocol code (with the Python of transport.write below it)"
    return "Twisted reactor and transport, other Python"


def sample(pid: int, seconds: float, out: Path) -> collections.Counter[str]:
    """
    py-spy's samples of process C{pid}: stack (frames joined by C{;}) to count.
    """
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    done = subprocess.run(
        [
            py_spy,
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not out.exists():
        raise SystemExit(f"benchmarks.profile: py-spy failed: {done.stderr.strip()}")
    stacks: collections.Counter[str] = collections.Counter()
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        stacks[stack] += int(count)
    return stacks


def count_syscalls(pid: int, out: Path, run: Callable[[], TimedRun]) -> dict[str, int]:
    """
    System calls of process C{pid} (all threads) while C{run} runs, by strace.
    """
    strace = subprocess.Popen(
        ["strace", "-c", "-f", "-p", str(pid), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(1.0)  # attached to every thread by then
    try:
        run()
    finally:
        strace.terminate()
        strace.wait()
    calls: dict[str, int] = {}
    for line in out.read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[0][0].isdigit() and parts[-1] != "total":
            calls[parts[-1]] = int(parts[3])
    return calls


def drive(
    loadgen: Path,
    server: RunningServer,
    mode: str,
    scenario: echo.Scenario,
    seconds: float,
    cpus: frozenset[int] | None,
    warmup: float = 1.0,
) -> TimedRun:
    return run_timed(
        loadgen,
        mode,
        server.port,
        server_cpu=server.cpu_times,
        conns=scenario.conns,
        depth=scenario.depth,
        size=scenario.size,
        expect=hello.GREETING,
        warmup=warmup,
        duration=seconds,
        cpus=cpus,
    )


def main(argv: list[str] | None = None) -> int:
    specs: dict[str, ServerSpec] = {
        s.name: s
        for s in [*echo.SERVERS, echo.NETLAB_WITH_TIMEOUT, *echo.EXPERIMENTS.values()]
    }
    hello_specs = {s.name: s for s in hello.SERVERS}
    scenarios = {s.key: s for s in echo.SCENARIOS}
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.profile", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--server",
        default=echo.NETLAB,
        choices=sorted(specs) + sorted(f"hello:{n}" for n in hello_specs),
    )
    parser.add_argument("--scenario", default="1000x1", choices=sorted(scenarios))
    parser.add_argument("--seconds", type=float, default=6.0)
    parser.add_argument("--strace", action="store_true", help="count system calls")
    parser.add_argument("--top", type=int, default=12, help="functions to list")
    parser.add_argument(
        "--pin",
        action="store_true",
        help="server on the first CPU, load generator on the second",
    )
    args = parser.parse_args(argv)

    raise_file_limit(65536)
    pins = pinning() if args.pin else None
    server_cpus, loadgen_cpus = pins if pins else (None, None)
    if args.server.startswith("hello:"):
        spec, mode = hello_specs[args.server.split(":", 1)[1]], "hello"
        scenario = echo.Scenario("hello", hello.CONCURRENCY, 1, 1)
        unit = "connection"
    else:
        spec, mode, unit = specs[args.server], "echo", "reply"
        scenario = scenarios[args.scenario]
    try:
        loadgen = build()
        with (
            tempfile.TemporaryDirectory() as tmp,
            RunningServer(spec, Path(tmp), server_cpus) as server,
        ):
            result: list[TimedRun] = []
            thread = threading.Thread(
                target=lambda: result.append(
                    drive(
                        loadgen, server, mode, scenario, args.seconds + 2, loadgen_cpus
                    )
                )
            )
            thread.start()
            time.sleep(1.5)
            stacks = sample(server.pid, args.seconds, Path(tmp) / "pyspy.txt")
            thread.join()
            calls: dict[str, int] = {}
            counted: list[TimedRun] = []

            def short_run() -> TimedRun:
                counted.append(
                    drive(loadgen, server, mode, scenario, 3.0, loadgen_cpus, 0.0)
                )
                return counted[-1]

            if args.strace:
                server.wait_closed()
                calls = count_syscalls(server.pid, Path(tmp) / "strace.txt", short_run)
    except (LoadgenError, ServerError) as e:
        print(f"benchmarks.profile: {e}", file=sys.stderr)
        return 1
    run = result[0]
    total = sum(stacks.values()) or 1
    what = scenario.label if mode == "echo" else f"{scenario.conns} clients"
    print(
        f"{spec.name}, {what}: {run.per_second:,.0f} {unit.replace('y', 'ie')}s/s; "
        "server CPU "
        f"{run.server_cpu_us_per_reply:.2f} us/{unit} = "
        f"{run.server_user_us_per_reply:.2f} user + "
        f"{run.server_sys_us_per_reply:.2f} kernel; load generator "
        f"{run.client_cpu_us_per_reply:.2f} us/{unit}"
    )
    print(
        f"\nPython stacks (py-spy, {total:,} samples; the C work inside a call, "
        "the allocation\nof recv()'s buffer say, is charged to the line making "
        "the call)"
    )
    categories: collections.Counter[str] = collections.Counter()
    for stack, n in stacks.items():
        categories[classify(stack.split(";"))] += n
    for name, n in categories.most_common():
        print(f"  {n / total:6.1%}  {name}")
    own: collections.Counter[str] = collections.Counter()
    for stack, n in stacks.items():
        own[stack.split(";")[-1]] += n
    print(f"\ntop {args.top} lines by own time")
    for frame, n in own.most_common(args.top):
        print(f"  {n / total:6.1%}  {frame}")
    if calls and counted and counted[0].replies:
        replies = counted[0].replies
        print(f"\nsystem calls per {unit} (strace -c over a separate run)")
        for name, n in sorted(calls.items(), key=lambda kv: -kv[1]):
            if n / replies >= 0.01:
                print(f"  {n / replies:6.2f}  {name}")
    return 0


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("benchmarks.profile: py-spy needs root (ptrace)", file=sys.stderr)
    sys.exit(main())
