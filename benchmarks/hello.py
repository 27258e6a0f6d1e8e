"""
Hello: C{twistd netlab-hello} against the seed's C{TCPServer} HelloHandler and
the textbook Twisted greeting server: connections served per second, each
connection opened, greeted and closed in a closed loop.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from benchmarks.core import (
    Context,
    Panel,
    Section,
    Table,
    fmt,
    fmt_ratio,
    median,
    paired_ratio,
    rotated,
)
from benchmarks.loadgen import LoadgenError, run_timed
from benchmarks.servers import RunningServer, ServerError, ServerSpec, peer, twistd

NAME = "hello"
NETLAB = "netlab-hello"
GREETING = "Hello Client! I am a HelloHandler\\r\\n"

SERVERS = [
    ServerSpec(
        NETLAB,
        "twistd -n netlab-hello (epoll reactor; logs every client)",
        twistd("netlab-hello"),
    ),
    ServerSpec(
        "twisted-textbook",
        "textbook Twisted Protocol greeting in connectionMade",
        peer("twisted_hello.py"),
    ),
    ServerSpec(
        "seed-tcpserver",
        "the seed's TCPServer HelloHandler (one client at a time)",
        peer("seed_hello.py"),
    ),
]
CONCURRENCY, QUICK_CONCURRENCY = 32, 4
#: what --case can name
CASES = ["hello"]


def run(context: Context) -> Section:
    concurrency = QUICK_CONCURRENCY if context.quick else CONCURRENCY
    runs: list[dict[str, Any]] = []
    servers: dict[str, RunningServer] = {}
    try:
        for spec in SERVERS:
            servers[spec.name] = RunningServer(
                spec, context.log_dir, context.server_cpus
            )
        for round_ in range(context.repeats):
            for spec in rotated(SERVERS, round_):
                server = servers[spec.name]
                record: dict[str, Any] = {"round": round_, "server": spec.name}
                try:
                    server.check_alive()
                    server.wait_closed()
                    result = run_timed(
                        context.loadgen,
                        "hello",
                        server.port,
                        server_cpu=server.cpu_times,
                        conns=concurrency,
                        expect=GREETING,
                        warmup=context.warmup,
                        duration=context.duration,
                        cpus=context.loadgen_cpus,
                    )
                    record.update(asdict(result), error=result.error)
                except (LoadgenError, ServerError) as e:
                    record["error"] = str(e)
                runs.append(record)
                context.progress(_describe(record))
    finally:
        for server in servers.values():
            server.stop()
    return _section(context, runs, concurrency)


def _describe(record: dict[str, Any]) -> str:
    head = f"hello {record['server']:<17}"
    if record.get("error"):
        return f"{head} FAILED: {record['error']}"
    return (
        f"{head} {record['per_second']:>9,.0f} connections/s  "
        f"p50 {record['p50_us']:>7,.0f} us  p99 {record['p99_us']:>7,.0f} us  "
        f"server {record['server_cpu_us_per_reply']:6.1f} us/conn  "
        f"loadgen {record['client_cpu_us_per_reply']:5.1f} us/conn"
    )


def _section(context: Context, runs: list[dict[str, Any]], concurrency: int) -> Section:
    good = [r for r in runs if not r.get("error")]
    summary: dict[str, dict[str, float | None]] = {}
    for spec in SERVERS:
        mine = [r for r in good if r["server"] == spec.name]
        rates = [r["per_second"] for r in mine]
        summary[spec.name] = {
            "per_second": median(rates),
            "per_second_min": min(rates) if rates else None,
            "per_second_max": max(rates) if rates else None,
            "p50_us": median(r["p50_us"] for r in mine),
            "p99_us": median(r["p99_us"] for r in mine),
            "server_cpu_us_per_conn": median(
                r["server_cpu_us_per_reply"] for r in mine
            ),
            "client_cpu_us_per_conn": median(
                r["client_cpu_us_per_reply"] for r in mine
            ),
            "good_runs": len(mine),
        }
    by_round = {(r["round"], r["server"]): r for r in good}
    ratios: dict[str, float | None] = {}
    for spec in SERVERS[1:]:
        ratios[spec.name] = paired_ratio(
            by_round, context.repeats, (NETLAB,), (spec.name,), "per_second"
        )

    rows = [
        [
            spec.name,
            fmt(summary[spec.name]["per_second"])
            if summary[spec.name]["good_runs"]
            else "FAILED",
            fmt(summary[spec.name]["p50_us"]),
            fmt(summary[spec.name]["p99_us"]),
            fmt(summary[spec.name]["server_cpu_us_per_conn"], 1),
            fmt(summary[spec.name]["client_cpu_us_per_conn"], 1),
            "" if spec.name == NETLAB else fmt_ratio(ratios[spec.name]),
        ]
        for spec in SERVERS
    ]
    table = Table(
        f"Hello: connections served, {concurrency} clients connecting in a closed "
        f"loop (median of {context.repeats} round{'s' if context.repeats > 1 else ''})",
        [
            "server",
            "connections/s",
            "p50 us",
            "p99 us",
            "server CPU us/conn",
            "loadgen CPU us/conn",
            "netlab-hello / this",
        ],
        rows,
    )
    names = [spec.name for spec in SERVERS]
    panel = Panel(
        "Hello connections served per second (higher is better)",
        "connections/s",
        [f"{concurrency} clients"],
        {n: [summary[n]["per_second"]] for n in names},
        low={n: [summary[n]["per_second_min"]] for n in names},
        high={n: [summary[n]["per_second_max"]] for n in names},
        highlight=NETLAB,
    )
    return Section(
        NAME,
        [table],
        [],
        [panel],
        {
            "servers": [
                {"name": s.name, "description": s.description} for s in SERVERS
            ],
            "concurrency": concurrency,
            "runs": runs,
            "summary": summary,
            "ratios": ratios,
        },
        [
            f"hello {r['server']} round {r['round']}: {r['error']}"
            for r in runs
            if r.get("error")
        ],
    )
