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
    ("recv()", ("Connection.doRead",)),
    ("send()", ("untilConcludes",)),
    (
        "epoll_ctl() from write-later (startWriting/stopWriting)",
        ("EPollReactor._add", "EPollReactor._remove"),
    ),
    ("epoll_wait()", ("EPollReactor.doPoll",)),
    ("accept(), close()", ("Port.doRead", "Connection._closeSocket")),
]
PROTOCOL_FILES = ("twisted_netlab/", "peers/", "twisted/protocols/basic.py")


def classify(frames: list[str]) -> str:
    """
    The category of one py-spy stack (outermost frame first).
    """
    leaf = frames[-1].split(" (", 1)[0]
    for name, leaves in SYSCALLS:
        if leaf in leaves:
            return name
    if any(p in f for f in frames for p in PROTOCOL_FILES):
        return "protocol code (with the Python of transport.write below it)"
    return "Twisted reactor and transport, Python"


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


def count_syscalls(pid: int, seconds: float, out: Path) -> dict[str, int]:
    """
    System calls of process C{pid} (all threads) over C{seconds}, by strace.
    """
    strace = subprocess.Popen(
        ["strace", "-c", "-f", "-p", str(pid), "-o", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(seconds)
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
) -> tuple[threading.Thread, list[TimedRun]]:
    """
    Start the load generator against C{server} in a thread.
    """
    result: list[TimedRun] = []

    def run() -> None:
        result.append(
            run_timed(
                loadgen,
                mode,
                server.port,
                server_cpu=server.cpu_times,
                conns=scenario.conns,
                depth=scenario.depth,
                size=scenario.size,
                expect=hello.GREETING,
                warmup=1.0,
                duration=seconds,
                cpus=cpus,
            )
        )

    thread = threading.Thread(target=run)
    thread.start()
    return thread, result


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
            thread, result = drive(
                loadgen, server, mode, scenario, args.seconds + 2, loadgen_cpus
            )
            time.sleep(1.5)
            stacks = sample(server.pid, args.seconds, Path(tmp) / "pyspy.txt")
            thread.join()
            calls: dict[str, int] = {}
            counted: list[TimedRun] = []
            if args.strace:
                thread, counted = drive(
                    loadgen, server, mode, scenario, args.seconds + 2, loadgen_cpus
                )
                time.sleep(1.5)
                calls = count_syscalls(server.pid, args.seconds, Path(tmp) / "st.txt")
                thread.join()
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
    print(f"\nwhere the time goes (py-spy, {total:,} samples)")
    categories: collections.Counter[str] = collections.Counter()
    for stack, n in stacks.items():
        categories[classify(stack.split(";"))] += n
    for name, n in categories.most_common():
        share = n / total
        print(
            f"  {share:6.1%}  {share * run.server_cpu_us_per_reply:6.2f} us/{unit}"
            f"  {name}"
        )
    own: collections.Counter[str] = collections.Counter()
    for stack, n in stacks.items():
        own[stack.split(";")[-1]] += n
    print(f"\ntop {args.top} lines by own time")
    for frame, n in own.most_common(args.top):
        print(f"  {n / total:6.1%}  {frame}")
    if calls and counted and counted[0].replies:
        replies = counted[0].replies / counted[0].seconds * args.seconds
        print(f"\nsystem calls per {unit} (strace -c, a separate window)")
        for name, n in sorted(calls.items(), key=lambda kv: -kv[1]):
            if n / replies >= 0.01:
                print(f"  {n / replies:6.2f}  {name}")
    return 0


if __name__ == "__main__":
    if os.geteuid() != 0:
        print("benchmarks.profile: py-spy needs root (ptrace)", file=sys.stderr)
    sys.exit(main())
