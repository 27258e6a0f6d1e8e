"""
Where a server's time goes under one benchmark load:
``python -m benchmarks.profile [--server netlab-echo] [--scenario 1000x1]
[--perf] [--strace] [--py-spy]``.

A plain run gives the server's user and kernel CPU time per reply (from /proc).
Each option adds one more run with a tool attached: ``--perf`` samples the CPU
with perf (unbiased; kernel, interpreter and C library apart, and the hottest
symbols), ``--strace`` counts system calls per reply (strace slows the server,
so that run's rate means nothing), ``--py-spy`` lists the Python lines py-spy
finds on top of the stack (``pip install -e '.[bench]'``; it charges the C
work inside a call, a system call or the buffer recv() allocates, to the line
making the call, so its shares are not CPU shares).  ``--protocol`` times the
echo protocols' own code alone, in this process.
"""

from __future__ import annotations

import argparse
import collections
import functools
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet.protocol import ServerFactory

from benchmarks import echo, hello
from benchmarks.loadgen import LoadgenError, TimedRun, build, run_timed
from benchmarks.servers import (
    RunningServer,
    ServerError,
    ServerSpec,
    pinning,
    raise_file_limit,
)


def py_spy(pid: int, seconds: float, out: Path) -> collections.Counter[str]:
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


def perf(pid: int, seconds: float, out: Path) -> tuple[dict[str, float], list[str]]:
    """
    perf's CPU samples of process C{pid}: the share of the kernel, the Python
    interpreter, the C library and the rest, and the hottest symbols.
    """
    done = subprocess.run(
        [
            *("perf", "record", "-F", "999", "-p", str(pid), "-o", str(out)),
            *("--", "sleep", str(seconds)),
        ],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not out.exists():
        raise SystemExit(f"benchmarks.profile: perf failed: {done.stderr.strip()}")

    def report(key: str) -> list[tuple[float, str]]:
        text = subprocess.run(
            ["perf", "report", "-i", str(out), "--sort", key, "--stdio"],
            capture_output=True,
            text=True,
        ).stdout
        rows = []
        for line in text.splitlines():
            parts = line.split(None, 1)
            if len(parts) == 2 and parts[0].endswith("%"):
                rows.append((float(parts[0][:-1]), parts[1].strip()))
        return rows

    groups: dict[str, float] = collections.defaultdict(float)
    for share, dso in report("dso"):
        if "kernel" in dso:
            groups["kernel"] += share
        elif "libpython" in dso or "python3" in dso:
            groups["Python interpreter"] += share
        elif "libc" in dso:
            groups["C library"] += share
        else:
            groups["other (extension modules, ...)"] += share
    symbols = [f"{share:5.1f}%  {name}" for share, name in report("sym")]
    return dict(groups), symbols


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


class _NullTransport:
    """
    A transport whose write costs nothing, to time a protocol alone.
    """

    disconnecting = False

    def write(self, data: bytes) -> None:
        pass

    def registerProducer(self, producer: object, streaming: bool) -> None:
        pass

    def getPeer(self) -> None:
        return None


def protocol_costs() -> None:
    """
    Print what the echo protocols' own code costs per line, the transport's
    write left out: netlab-echo's EchoProtocol and the textbook LineReceiver.
    """
    import timeit

    from twisted.internet.testing import MemoryReactorClock

    from benchmarks.peers.twisted_echo import EchoFactory as TextbookFactory
    from twisted_netlab.echo import EchoFactory

    line = b"a" * 31 + b"\n"
    cases = [("1 line of 32 B", line, 1), ("10 lines", line * 10, 10)]
    cases.append(("64 lines of 1 KiB", (b"b" * 1023 + b"\n") * 64, 64))
    factories: list[tuple[str, ServerFactory[Any]]] = [
        ("netlab-echo", EchoFactory(idle_timeout=0, reactor=MemoryReactorClock())),
        ("netlab-echo+timeout", EchoFactory(reactor=MemoryReactorClock())),
        ("twisted-textbook", TextbookFactory()),
    ]
    print("protocol code per dataReceived call, transport.write left out")
    for name, factory in factories:
        protocol = factory.buildProtocol(None)
        assert protocol is not None
        protocol.makeConnection(_NullTransport())
        for label, data, lines in cases:
            n = 100_000 if lines == 1 else 20_000
            best = min(
                timeit.repeat(
                    functools.partial(protocol.dataReceived, data), number=n, repeat=5
                )
            )
            print(
                f"  {name:20} {label:18} {best / n * 1e6:7.3f} us"
                f" ({best / n / lines * 1e6:.3f} us per line)"
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
    parser.add_argument(
        "--seconds", type=float, default=6.0, help="measured seconds per run"
    )
    parser.add_argument("--perf", action="store_true", help="sample with perf")
    parser.add_argument("--strace", action="store_true", help="count system calls")
    parser.add_argument(
        "--py-spy", action="store_true", help="list py-spy's top Python lines"
    )
    parser.add_argument("--top", type=int, default=12, help="lines to list")
    parser.add_argument(
        "--protocol",
        action="store_true",
        help="only time the echo protocols' own code, in this process",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="server on the first CPU, load generator on the second",
    )
    args = parser.parse_args(argv)
    if args.protocol:
        protocol_costs()
        return 0

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

            def measure(warmup: float = 1.0) -> TimedRun:
                server.wait_closed()
                return drive(
                    loadgen, server, mode, scenario, args.seconds, loadgen_cpus, warmup
                )

            def while_measuring(tool: Callable[[], object]) -> None:
                thread = threading.Thread(target=measure)
                thread.start()
                time.sleep(1.5)
                tool()
                thread.join()

            run = measure()
            what = scenario.label if mode == "echo" else f"{scenario.conns} clients"
            print(
                f"{spec.name}, {what}: {run.per_second:,.0f} "
                f"{unit.replace('y', 'ie')}s/s; server CPU "
                f"{run.server_cpu_us_per_reply:.2f} us/{unit} = "
                f"{run.server_user_us_per_reply:.2f} user + "
                f"{run.server_sys_us_per_reply:.2f} kernel; load generator "
                f"{run.client_cpu_us_per_reply:.2f} us/{unit}"
            )
            if args.perf:
                found: list[tuple[dict[str, float], list[str]]] = []
                while_measuring(
                    lambda: found.append(
                        perf(server.pid, args.seconds - 2, Path(tmp) / "perf.data")
                    )
                )
                groups, symbols = found[0]
                print("\nCPU samples (perf)")
                for name, share in sorted(groups.items(), key=lambda kv: -kv[1]):
                    print(f"  {share:5.1f}%  {name}")
                print(f"hottest {args.top} symbols")
                for line in symbols[: args.top]:
                    print(f"  {line}")
            if args.py_spy:
                stacks: collections.Counter[str] = collections.Counter()
                while_measuring(
                    lambda: stacks.update(
                        py_spy(server.pid, args.seconds - 2, Path(tmp) / "py-spy.txt")
                    )
                )
                total = sum(stacks.values()) or 1
                own: collections.Counter[str] = collections.Counter()
                for stack, n in stacks.items():
                    own[stack.split(";")[-1]] += n
                print(
                    f"\nPython lines on top of the stack (py-spy, {total:,} "
                    "samples; a call's C work counts for the calling line)"
                )
                for frame, n in own.most_common(args.top):
                    print(f"  {n / total:6.1%}  {frame}")
            if args.strace:
                counted: list[TimedRun] = []

                def counted_run() -> TimedRun:
                    counted.append(measure(0.0))
                    return counted[-1]

                calls = count_syscalls(
                    server.pid, Path(tmp) / "strace.txt", counted_run
                )
                print(f"\nsystem calls per {unit} (strace -c over a whole run)")
                for name, n in sorted(calls.items(), key=lambda kv: -kv[1]):
                    if counted[0].replies and n / counted[0].replies >= 0.01:
                        print(f"  {n / counted[0].replies:6.2f}  {name}")
    except (LoadgenError, ServerError) as e:
        print(f"benchmarks.profile: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
