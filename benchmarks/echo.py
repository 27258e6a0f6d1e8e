"""
Echo: C{twistd netlab-echo} against the seed's threaded server, a stdlib
asyncio echo and the textbook Twisted C{LineReceiver} echo.

Closed-loop scenarios (replies per second, latency, CPU per reply), then the
connection figures: memory per idle connection and whether 10,000 concurrent
connections are held and answered.
"""

from __future__ import annotations

import os
import resource
from dataclasses import asdict, dataclass
from typing import Any

from benchmarks.core import (
    Context,
    Panel,
    Section,
    Table,
    Target,
    columns,
    fmt,
    fmt_ratio,
    median,
    paired_ratio,
    rotated,
)
from benchmarks.loadgen import Holder, LoadgenError, TimedRun, run_timed
from benchmarks.servers import (
    RunningServer,
    ServerError,
    ServerSpec,
    peer,
    pinning,
    twistd,
)

NAME = "echo"
NETLAB = "netlab-echo"

SERVERS = [
    ServerSpec(
        NETLAB,
        "twistd -n netlab-echo (epoll reactor, --idle-timeout 0)",
        twistd("netlab-echo", "--idle-timeout=0", "--max-connections=20000"),
    ),
    ServerSpec(
        "twisted-textbook",
        "textbook Twisted LineReceiver echo",
        peer("twisted_echo.py"),
    ),
    ServerSpec(
        "seed-threaded",
        "the seed's ThreadingTCPServer EchoHandler",
        peer("seed_echo.py"),
    ),
    ServerSpec(
        "asyncio",
        "stdlib asyncio Protocol echo",
        peer("asyncio_echo.py"),
    ),
    ServerSpec(
        "uvloop",
        "the same asyncio Protocol echo on uvloop",
        peer("uvloop_echo.py"),
    ),
]

#: Measured only when asked (--experiment NAME).  twisted-transport:
#: netlab-echo on Twisted's own write-later transport (the write-through
#: transport turned off), to show what it costs per reply; write-now: the
#: monkeypatch the write-through transport grew from (Twisted issue #5303);
#: workers: netlab-echo with two worker processes (C{--workers 2});
#: twisted-reactor: netlab-echo on Twisted's own epoll reactor (netlab's,
#: which calls each event's descriptor directly and not through
#: log.callWithLogger, turned off).
EXPERIMENTS = {
    "twisted-transport": ServerSpec(
        "netlab-echo/twisted",
        "netlab-echo on Twisted's write-later transport (NETLAB_WRITE_THROUGH=0)",
        twistd(
            "netlab-echo",
            "--idle-timeout=0",
            "--max-connections=20000",
            env=("NETLAB_WRITE_THROUGH=0",),
        ),
    ),
    "workers": ServerSpec(
        "netlab-echo/2-workers",
        "netlab-echo --workers 2 (two worker processes on one listening socket)",
        twistd(
            "netlab-echo", "--idle-timeout=0", "--max-connections=20000", "--workers=2"
        ),
    ),
    "twisted-reactor": ServerSpec(
        "netlab-echo/twisted-reactor",
        "netlab-echo on Twisted's EPollReactor (NETLAB_LEAN_REACTOR=0)",
        twistd(
            "netlab-echo",
            "--idle-timeout=0",
            "--max-connections=20000",
            env=("NETLAB_LEAN_REACTOR=0",),
        ),
    ),
    "write-now": ServerSpec(
        "netlab-echo/write-now",
        "experiment: netlab-echo, Twisted's TCP write patched to send at once",
        peer("netlab_echo_write_now.py"),
    ),
}

#: Measured for memory only: netlab-echo as it runs by default, with an idle
#: timeout (a DelayedCall per connection).
NETLAB_WITH_TIMEOUT = ServerSpec(
    "netlab-echo+timeout",
    "twistd -n netlab-echo with its default --idle-timeout 300",
    twistd("netlab-echo", "--max-connections=20000"),
)


@dataclass(frozen=True)
class Scenario:
    """
    C{conns} connections, each keeping C{depth} lines of C{size} bytes in
    flight.  C{apart}: run the server and the load generator on different
    CPUs even without --pin (see L{SCENARIOS}).
    """

    key: str
    conns: int
    depth: int
    size: int
    apart: bool = False

    @property
    def label(self) -> str:
        size = f"{self.size // 1024} KiB" if self.size >= 1024 else f"{self.size} B"
        return f"{self.conns:,} x {self.depth}, {size}"


LINE = 32
#: One connection with one line in flight is a ping-pong: its rate is set by
#: how fast each side wakes up, and a wake-up on the CPU the other side just
#: left costs a fraction of one that crosses to the other CPU (on this VM, a
#: round trip of about 15 us against 60 us).  Left to the scheduler, each run
#: lands on one or the other at random, so 1x1 always runs the server and the
#: load generator on different CPUs: every server pays the same crossing.  With
#: one busy connection this spares no server anything it would otherwise pay.
SCENARIOS = [
    Scenario("1x1", 1, 1, LINE, apart=True),
    Scenario("100x10", 100, 10, LINE),
    Scenario("1000x1", 1000, 1, LINE),
    Scenario("10x64-1KiB", 10, 64, 1024),
]
#: The same four shapes on a tiny load, for --quick (the smoke test).
QUICK_SCENARIOS = [
    Scenario("1x1", 1, 1, LINE, apart=True),
    Scenario("100x10", 10, 10, LINE),
    Scenario("1000x1", 30, 1, LINE),
    Scenario("10x64-1KiB", 2, 64, 1024),
]
#: what --case can name
CASES = [*(s.key for s in SCENARIOS), "connections"]
IDLE_CONNS, HOLD_CONNS = 5_000, 10_000
QUICK_IDLE_CONNS, QUICK_HOLD_CONNS = 200, 400

#: (scenario key, peer, least ratio netlab-echo / peer)
RATIO_TARGETS = [
    *((s.key, "twisted-textbook", 1.0) for s in SCENARIOS),
    ("100x10", "seed-threaded", 4.0),
    ("1000x1", "seed-threaded", 2.0),
    # issue 14: the write-through transport
    *((s.key, "asyncio", 1.0) for s in SCENARIOS),
    ("1x1", "seed-threaded", 1.0),
    ("1000x1", "seed-threaded", 1.5),
    # issue 14's stretch goal
    *((s.key, "uvloop", 0.9) for s in SCENARIOS),
]
MAX_KIB_PER_IDLE_CONN = 2.0


def run(context: Context) -> Section:
    scenarios = [
        s
        for s in (QUICK_SCENARIOS if context.quick else SCENARIOS)
        if context.wants(s.key)
    ]
    servers = [*SERVERS, *(EXPERIMENTS[e] for e in sorted(context.experiments))]
    runs = _closed_loop(context, scenarios, servers) if scenarios else []
    idle, hold = (
        (QUICK_IDLE_CONNS, QUICK_HOLD_CONNS)
        if context.quick
        else (IDLE_CONNS, HOLD_CONNS)
    )
    memory = (
        {
            spec.name: _connections(context, spec, idle, hold)
            for spec in [SERVERS[0], NETLAB_WITH_TIMEOUT, *SERVERS[1:]]
        }
        if context.wants("connections")
        else {}
    )
    return _section(context, scenarios, servers, runs, memory, idle, hold)


def _closed_loop(
    context: Context, scenarios: list[Scenario], specs: list[ServerSpec]
) -> list[dict[str, Any]]:
    """
    Every scenario against every server, C{context.repeats} rounds, the order
    of the servers rotating from one run to the next.
    """
    runs: list[dict[str, Any]] = []
    servers: dict[str, RunningServer] = {}
    try:
        for spec in specs:
            servers[spec.name] = RunningServer(
                spec, context.log_dir, context.server_cpus
            )
        for round_ in range(context.repeats):
            for index, scenario in enumerate(scenarios):
                for spec in rotated(specs, round_ + index):
                    server = servers[spec.name]
                    record: dict[str, Any] = {
                        "round": round_,
                        "scenario": scenario.key,
                        "server": spec.name,
                    }
                    try:
                        server.check_alive()
                        server.wait_closed()
                        result = _measure(context, server, scenario)
                        record.update(asdict(result), error=result.error)
                    except (LoadgenError, ServerError) as e:
                        record["error"] = str(e)
                    runs.append(record)
                    context.progress(_describe(record))
    finally:
        for server in servers.values():
            server.stop()
    return runs


def _measure(context: Context, server: RunningServer, scenario: Scenario) -> TimedRun:
    server_cpus, loadgen_cpus = context.server_cpus, context.loadgen_cpus
    apart = scenario.apart and not server_cpus and pinning()
    if apart:
        server_cpus, loadgen_cpus = apart
        server.set_cpus(server_cpus)
    try:
        return run_timed(
            context.loadgen,
            "echo",
            server.port,
            server_cpu=server.cpu_times,
            conns=scenario.conns,
            depth=scenario.depth,
            size=scenario.size,
            warmup=context.warmup,
            duration=context.duration,
            cpus=loadgen_cpus,
        )
    finally:
        if apart:
            server.set_cpus(frozenset(os.sched_getaffinity(0)))


def _describe(record: dict[str, Any]) -> str:
    head = f"echo {record['scenario']:>11} {record['server']:<17}"
    if record.get("error"):
        return f"{head} FAILED: {record['error']}"
    return (
        f"{head} {record['per_second']:>11,.0f}/s"
        f"  p50 {record['p50_us']:>8,.0f} us  p99 {record['p99_us']:>8,.0f} us"
        f"  server {record['server_cpu_us_per_reply']:6.2f} us/reply"
        f" ({record['server_sys_us_per_reply']:5.2f} kernel)"
        f"  loadgen {record['client_cpu_us_per_reply']:5.2f} us/reply"
    )


def _connections(
    context: Context, spec: ServerSpec, idle: int, hold: int
) -> dict[str, Any]:
    """
    On a fresh server: resident memory per idle connection (C{idle}
    connections that never sent anything), then whether C{hold} connections
    are held at once and each answers a line.
    """
    figures: dict[str, Any] = {"idle_conns": idle, "hold_conns": hold}
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if limit != resource.RLIM_INFINITY and limit < hold + 1000:
        figures["error"] = (
            f"the open-file limit is {limit}, too low for {hold:,} connections "
            "(raise it with ulimit -n, or run as root)"
        )
        context.progress(f"echo connections {spec.name}: {figures['error']}")
        return figures
    try:
        with RunningServer(spec, context.log_dir, context.server_cpus) as server:
            with Holder(
                context.loadgen, server.port, 10, cpus=context.loadgen_cpus
            ) as warm:
                warm.ping()
            server.wait_closed()
            before = server.stable_rss()
            with Holder(
                context.loadgen, server.port, idle, cpus=context.loadgen_cpus
            ) as first:
                fds = server.settle(target=server.base_fds + idle)
                after = server.stable_rss()
                figures.update(
                    rss_before=before,
                    rss_idle=after,
                    accepted_idle=fds - server.base_fds,
                    kib_per_idle_conn=(after - before) / idle / 1024,
                )
                with Holder(
                    context.loadgen,
                    server.port,
                    hold - idle,
                    sources=4,
                    cpus=context.loadgen_cpus,
                ) as second:
                    fds = server.settle(target=server.base_fds + hold)
                    answered = first.ping() + second.ping()
                    at_hold = server.stable_rss()
                    server.check_alive()
                    figures.update(
                        connected=first.connected + second.connected,
                        accepted=fds - server.base_fds,
                        answered=answered,
                        held=answered == hold,
                        kib_per_conn_at_hold=(at_hold - before) / hold / 1024,
                    )
    except (LoadgenError, ServerError) as e:
        figures["error"] = str(e)
    context.progress(
        f"echo connections {spec.name:<20} "
        + (
            f"FAILED: {figures['error']}"
            if "error" in figures
            else f"{figures['kib_per_idle_conn']:.2f} KiB per idle connection, "
            f"{figures['answered']:,} of {hold:,} answered"
        )
    )
    return figures


def _summary(
    scenarios: list[Scenario], servers: list[ServerSpec], runs: list[dict[str, Any]]
) -> dict[str, dict[str, dict[str, float | None]]]:
    """
    Per scenario and server: the median (and the range) of each figure over
    the rounds that succeeded.
    """
    summary: dict[str, dict[str, dict[str, float | None]]] = {}
    for scenario in scenarios:
        summary[scenario.key] = {}
        for spec in servers:
            good = [
                r
                for r in runs
                if r["scenario"] == scenario.key
                and r["server"] == spec.name
                and not r.get("error")
            ]
            rates = [r["per_second"] for r in good]
            summary[scenario.key][spec.name] = {
                "per_second": median(rates),
                "per_second_min": min(rates) if rates else None,
                "per_second_max": max(rates) if rates else None,
                "p50_us": median(r["p50_us"] for r in good),
                "p99_us": median(r["p99_us"] for r in good),
                "server_cpu_us_per_reply": median(
                    r["server_cpu_us_per_reply"] for r in good
                ),
                "server_sys_us_per_reply": median(
                    r["server_sys_us_per_reply"] for r in good
                ),
                "client_cpu_us_per_reply": median(
                    r["client_cpu_us_per_reply"] for r in good
                ),
                "good_runs": len(good),
            }
    return summary


def _ratios(
    scenarios: list[Scenario],
    servers: list[ServerSpec],
    runs: list[dict[str, Any]],
    figure: str,
    *,
    inverse: bool,
) -> dict[str, dict[str, float | None]]:
    """
    netlab-echo's C{figure} over each peer's (or, with C{inverse}, the peer's
    over netlab-echo's), taken round by round (the two measured minutes apart
    at most), then the median over rounds.
    """
    by_key = {
        (r["round"], r["scenario"], r["server"]): r for r in runs if not r.get("error")
    }
    repeats = max((r["round"] for r in runs), default=-1) + 1
    ratios: dict[str, dict[str, float | None]] = {}
    for scenario in scenarios:
        ratios[scenario.key] = {}
        for spec in servers:
            if spec.name == NETLAB:
                continue
            mine, theirs = (scenario.key, NETLAB), (scenario.key, spec.name)
            a, b = (theirs, mine) if inverse else (mine, theirs)
            ratios[scenario.key][spec.name] = paired_ratio(
                by_key, repeats, a, b, figure
            )
    return ratios


def _section(
    context: Context,
    scenarios: list[Scenario],
    servers: list[ServerSpec],
    runs: list[dict[str, Any]],
    memory: dict[str, dict[str, Any]],
    idle: int,
    hold: int,
) -> Section:
    summary = _summary(scenarios, servers, runs)
    ratios = _ratios(scenarios, servers, runs, "per_second", inverse=False)
    cpu_ratios = _ratios(
        scenarios, servers, runs, "server_cpu_us_per_reply", inverse=True
    )
    labels = {s.key: s.label for s in scenarios}

    rows: list[list[str]] = []
    for scenario in scenarios:
        for spec in servers:
            s = summary[scenario.key][spec.name]
            rows.append(
                [
                    labels[scenario.key],
                    spec.name,
                    fmt(s["per_second"]) if s["good_runs"] else "FAILED",
                    fmt(s["p50_us"]),
                    fmt(s["p99_us"]),
                    fmt(s["server_cpu_us_per_reply"], 1),
                    fmt(s["client_cpu_us_per_reply"], 1),
                    ""
                    if spec.name == NETLAB
                    else fmt_ratio(ratios[scenario.key][spec.name]),
                    ""
                    if spec.name == NETLAB
                    else fmt_ratio(cpu_ratios[scenario.key][spec.name]),
                ]
            )
    throughput = Table(
        f"Echo, closed loop: conns x lines in flight, line size "
        f"(median of {context.repeats} round{'s' if context.repeats > 1 else ''})",
        [
            "scenario",
            "server",
            "replies/s",
            "p50 us",
            "p99 us",
            "server CPU us/reply",
            "loadgen CPU us/reply",
            "netlab-echo / this: replies/s",
            "CPU/reply, this / netlab",
        ],
        rows,
    )
    conn_rows = []
    for name, m in memory.items():
        if "error" in m:
            conn_rows.append([name, "FAILED", "", "", m["error"][:60]])
            continue
        conn_rows.append(
            [
                name,
                f"{m['kib_per_idle_conn']:.2f}",
                f"{m['answered']:,} of {hold:,}",
                f"{m['kib_per_conn_at_hold']:.2f}",
                "yes" if m["held"] else "no",
            ]
        )
    connections = Table(
        f"Echo, connections: memory per idle connection ({idle:,} idle), "
        f"{hold:,} concurrent connections each answering a line",
        [
            "server",
            f"KiB per idle conn ({idle:,})",
            "answered",
            f"KiB per conn at {hold:,}",
            "held",
        ],
        conn_rows,
    )

    targets = []
    for key, peer_name, least in RATIO_TARGETS:
        if key not in labels:
            continue
        value = ratios.get(key, {}).get(peer_name)
        targets.append(
            Target(
                f"echo {labels[key]}: netlab-echo / {peer_name}",
                f">= {least:.1f}x",
                value,
                value is not None and value >= least,
            )
        )
    mine = memory.get(NETLAB, {})
    kib = mine.get("kib_per_idle_conn")
    if memory:
        targets.append(
            Target(
                f"echo: memory per idle connection ({idle:,} idle)",
                f"<= {MAX_KIB_PER_IDLE_CONN:.1f} KiB",
                kib,
                kib is not None and kib <= MAX_KIB_PER_IDLE_CONN,
            )
        )
        targets.append(
            Target(
                f"echo: {hold:,} concurrent connections held and answered",
                f"{hold:,}",
                mine.get("answered"),
                bool(mine.get("held")),
            )
        )

    names = [spec.name for spec in servers]
    panels = []
    if scenarios:
        panels += [
            Panel(
                "netlab-echo's replies/s over each peer's, same round (dashed: 1.0)",
                "ratio",
                [labels[s.key] for s in scenarios],
                {
                    n: [ratios[s.key][n] for s in scenarios]
                    for n in names
                    if n != NETLAB
                },
                log=True,
                reference=1.0,
            ),
            Panel(
                "Echo replies per second (higher is better)",
                "replies/s",
                [labels[s.key] for s in scenarios],
                columns(summary, [s.key for s in scenarios], names, "per_second"),
                low=columns(
                    summary, [s.key for s in scenarios], names, "per_second_min"
                ),
                high=columns(
                    summary, [s.key for s in scenarios], names, "per_second_max"
                ),
                log=True,
                highlight=NETLAB,
            ),
            Panel(
                "Echo server CPU per reply (lower is better)",
                "CPU us per reply",
                [labels[s.key] for s in scenarios],
                columns(
                    summary,
                    [s.key for s in scenarios],
                    names,
                    "server_cpu_us_per_reply",
                ),
                log=True,
                highlight=NETLAB,
            ),
        ]
    if memory:
        panels.append(
            Panel(
                f"Memory per idle connection, {idle:,} idle (lower is better)",
                "KiB per connection",
                ["idle connections"],
                {n: [m.get("kib_per_idle_conn")] for n, m in memory.items()},
                highlight=NETLAB,
            )
        )
    failures = [
        f"echo {r['scenario']} {r['server']} round {r['round']}: {r['error']}"
        for r in runs
        if r.get("error")
    ]
    failures += [
        f"echo connections {n}: {m['error']}" for n, m in memory.items() if "error" in m
    ]
    return Section(
        NAME,
        [t for t in (throughput, connections) if t.rows],
        targets,
        panels,
        {
            "servers": [
                {"name": s.name, "description": s.description}
                for s in [*servers, NETLAB_WITH_TIMEOUT]
            ],
            "scenarios": [{**asdict(s), "label": s.label} for s in scenarios],
            "runs": runs,
            "summary": summary,
            "ratios": ratios,
            "cpu_per_reply_ratios": cpu_ratios,
            "connections": memory,
        },
        failures,
    )
