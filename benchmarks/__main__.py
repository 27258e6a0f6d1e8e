"""
Run the benchmarks: ``python -m benchmarks`` from the top of a checkout, in a
virtualenv with ``pip install -e '.[bench]'``.

Prints one table, writes the plot (benchmarks.png), the raw figures
(benchmarks.json) and the table (benchmarks.txt) into the output directory.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks import MODULES
from benchmarks.core import Context, Section
from benchmarks.loadgen import LoadgenError, build
from benchmarks.report import render, write_plot
from benchmarks.servers import BACKLOG, pinning, raise_file_limit

HERE = Path(__file__).resolve().parent
FILE_LIMIT = 65536


def cases() -> dict[str, list[str]]:
    """
    Every benchmark's name and the cases --case can pick in it.
    """
    return {
        m.rsplit(".", 1)[1]: list(importlib.import_module(m).CASES) for m in MODULES
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    every = cases()
    names = list(every)
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="Benchmark netlab's servers against the seed and the usual "
        "alternatives; print one table, write a plot and the raw figures.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a tiny load, one short round: proves every benchmark runs "
        "(the figures mean nothing)",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=names,
        help="run only this benchmark (repeatable); default: all of "
        + ", ".join(names),
    )
    parser.add_argument(
        "--case",
        action="append",
        choices=sorted({c for cs in every.values() for c in cs}),
        help="run only this case (repeatable), e.g. an echo scenario such as "
        "1000x1, or connections; benchmarks with none of the cases are skipped",
    )
    parser.add_argument("--repeats", type=int, help="rounds (default 5; quick 1)")
    parser.add_argument(
        "--duration", type=float, help="measured seconds per run (default 2)"
    )
    parser.add_argument(
        "--warmup", type=float, help="seconds before measuring (default 1)"
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="where benchmarks.png, .json and .txt go "
        "(default docs/; with --quick, benchmarks/results/)",
    )
    parser.add_argument(
        "--log-dir",
        type=Path,
        default=HERE / "results" / "logs",
        help="where the servers' logs go (default benchmarks/results/logs)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        help="where the compiled load generator is kept "
        "(default $XDG_CACHE_HOME/twisted_netlab-benchmarks)",
    )
    parser.add_argument(
        "--experiment",
        action="append",
        choices=["twisted-transport", "write-now", "workers", "twisted-reactor"],
        help="also measure an experimental server: twisted-transport is "
        "netlab-echo on Twisted's write-later transport, write-now on a "
        "Twisted whose TCP write is patched to send at once (Twisted issue "
        "#5303), workers is netlab-echo --workers 2, twisted-reactor on "
        "Twisted's EPollReactor instead of netlab's (NETLAB_LEAN_REACTOR=0)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="run each server on the first CPU and the load generator on the "
        "second (default: where the scheduler puts them, as deployed; pinning "
        "spares the seed's threads their cross-core GIL hand-offs but also "
        "denies them the second core)",
    )
    parser.add_argument(
        "--scale-size",
        type=int,
        metavar="N",
        help="messages in the scale benchmark's INBOX (default 100000; "
        "1000000 is the optional size; --quick 200)",
    )
    parser.add_argument(
        "--no-plot", action="store_true", help="skip the plot (no matplotlib needed)"
    )
    parser.add_argument(
        "--plot-from",
        type=Path,
        metavar="JSON",
        help="run nothing: redraw the plot and reprint the table from a "
        "benchmarks.json",
    )
    args = parser.parse_args(argv)
    for name in ("repeats", "duration", "warmup", "scale_size"):
        value = getattr(args, name)
        if value is not None and value <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive")
    return args


def machine() -> dict[str, Any]:
    """
    What the figures were measured on, and how busy it was.
    """

    def read(path: str) -> str:
        try:
            return Path(path).read_text().strip()
        except OSError:
            return "?"

    model = "?"
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    import twisted

    return {
        "cores": os.cpu_count(),
        "cpu": model,
        "kernel": platform.release(),
        "python": platform.python_version(),
        "twisted": twisted.__version__,
        "somaxconn": read("/proc/sys/net/core/somaxconn"),
        "listen_backlog": BACKLOG,
        "ip_local_port_range": read("/proc/sys/net/ipv4/ip_local_port_range"),
        "loadavg_start": os.getloadavg()[0],
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.plot_from:
        return replot(args)
    out: Path = args.out or (HERE / "results" if args.quick else HERE.parent / "docs")
    quick = args.quick
    try:
        loadgen = build(args.cache_dir)
    except LoadgenError as e:
        print(f"benchmarks: {e}", file=sys.stderr)
        return 1
    files = raise_file_limit(FILE_LIMIT)
    info = machine()
    info["file_limit"] = files
    pins = pinning() if args.pin else None
    info["server_cpus"] = sorted(pins[0]) if pins else None
    info["loadgen_cpus"] = sorted(pins[1]) if pins else None
    context = Context(
        loadgen=loadgen,
        log_dir=args.log_dir,
        quick=quick,
        repeats=args.repeats or (1 if quick else 5),
        warmup=args.warmup or (0.2 if quick else 1.0),
        duration=args.duration or (0.4 if quick else 2.0),
        progress=lambda line: print(line, file=sys.stderr, flush=True),
        cases=frozenset(args.case) if args.case else None,
        server_cpus=pins[0] if pins else None,
        loadgen_cpus=pins[1] if pins else None,
        experiments=frozenset(args.experiment or ()),
        scale_size=args.scale_size,
    )
    every = cases()
    names = [
        name
        for name in (args.only or list(every))
        if not args.case or set(args.case) & set(every[name])
    ]
    started = time.monotonic()
    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    sections: list[Section] = []
    for module_name in MODULES:
        if module_name.rsplit(".", 1)[1] not in names:
            continue
        module = importlib.import_module(module_name)
        sections.append(module.run(context))
    info["loadavg_end"] = os.getloadavg()[0]
    command = "python -m benchmarks" + (" " + " ".join(argv or sys.argv[1:])).rstrip()
    results = {
        "date": date,
        "command": command.strip(),
        "quick": quick,
        "seconds": round(time.monotonic() - started, 1),
        "settings": {
            "repeats": context.repeats,
            "warmup": context.warmup,
            "duration": context.duration,
        },
        "machine": info,
        "sections": [s.to_json() for s in sections],
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "benchmarks.json").write_text(json.dumps(results, indent=1) + "\n")
    return report(results, sections, out, plot=not args.no_plot)


def header(results: dict[str, Any]) -> str:
    m = results["machine"]
    quick = ""
    if results["quick"]:
        quick = " (--quick: a tiny load; the figures mean nothing)"
    return (
        f"{results['command']}{quick}\n{results['date']}, {m['cores']} cores "
        f"({m['cpu']}), Linux {m['kernel']}, Python {m['python']}, "
        f"Twisted {m['twisted']}; load average {m['loadavg_start']:.2f} at the "
        f"start, {m['loadavg_end']:.2f} at the end; "
        + (
            f"servers pinned to CPU {m['server_cpus']}, load generator to "
            f"CPU {m['loadgen_cpus']}"
            if m.get("server_cpus")
            else "not pinned"
        )
    )


def report(
    results: dict[str, Any], sections: list[Section], out: Path, *, plot: bool
) -> int:
    text = render(sections, header(results))
    (out / "benchmarks.txt").write_text(text)
    print(text)
    if plot:
        m = results["machine"]
        write_plot(
            sections,
            out / "benchmarks.png",
            f"twisted_netlab benchmarks, {results['date']}, {m['cores']} cores, "
            f"Python {m['python']}, Twisted {m['twisted']}",
        )
        print(f"plot: {out / 'benchmarks.png'}")
    print(f"raw figures: {out / 'benchmarks.json'}")
    failures = [f for s in sections for f in s.failures]
    for failure in failures:
        print(f"benchmarks: failed: {failure}", file=sys.stderr)
    return 1 if failures else 0


def replot(args: argparse.Namespace) -> int:
    try:
        results = json.loads(args.plot_from.read_text())
        sections = [Section.from_json(s) for s in results["sections"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        print(f"benchmarks: cannot read {args.plot_from}: {e}", file=sys.stderr)
        return 1
    out: Path = args.out or args.plot_from.parent
    out.mkdir(parents=True, exist_ok=True)
    return report(results, sections, out, plot=not args.no_plot)


if __name__ == "__main__":
    sys.exit(main())
