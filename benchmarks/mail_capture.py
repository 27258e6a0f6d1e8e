"""
Capture intake: C{twistd netlab-mail --catch-all} against aiosmtpd with its
Maildir handler and MailDev 3 (npm C{maildev}, a competing test inbox), each
its own process on loopback, in the same run.  The load is the SMTP one
(C{benchmarks/peers/smtp_senders.py}: 10 concurrent smtplib senders), with
10 messages per connection and with one, to an address at a domain none of
them serves, so the lab routes every message through its catch-all.  netlab-mail and
aiosmtpd sync every message to disk before its 250; MailDev writes its
C{.eml} files without syncing (it is not durable: a crash loses mail it
acknowledged), which the table says.
"""

from __future__ import annotations

import importlib.util
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.core import (
    Context,
    Panel,
    Section,
    Table,
    Target,
    fmt,
    fmt_ratio,
    median,
    paired_ratio,
    rotated,
)
from benchmarks.mail_fetch import filesystem
from benchmarks.mail_smtp import aiosmtpd_server, measure_intake
from benchmarks.servers import (
    BACKLOG,
    HOST,
    RunningServer,
    ServerError,
    ServerSpec,
    free_port,
    twistd_command,
)

NAME = "mail_capture"


@dataclass(frozen=True)
class Scenario:
    key: str
    per_connection: int
    messages: int
    quick_messages: int


#: 10 messages a connection; and one (a new connection, EHLO and QUIT for
#: every message), the load the test inbox issue measured MailDev with.
SCENARIOS = [
    Scenario("capture-disk", 10, 2000, 40),
    Scenario("capture-disk-1", 1, 1000, 20),
]
CASES = [s.key for s in SCENARIOS]

NETLAB = "netlab-mail --catch-all"
AIOSMTPD = "aiosmtpd Mailbox"
MAILDEV = "MailDev 3"
SENDERS = 10
MESSAGE_SIZE = 4096
CATCH_ALL = "catch@bench.test"
RECIPIENT = "someone@anywhere.example"
GOALS = {AIOSMTPD: 1.2, MAILDEV: 5.0}
ROOT = Path(__file__).resolve().parent.parent
MAILDEV_BIN = ROOT / "tests" / "interop" / "node" / "node_modules" / ".bin" / "maildev"


def netlab_capture(state: Path) -> Callable[[int, Path], list[str]]:
    def argv(port: int, log: Path) -> list[str]:
        return [
            *twistd_command(log),
            "netlab-mail",
            f"--state={state}",
            "--domain=bench.test",
            f"--smtp=tcp:{port}:interface={HOST}:backlog={BACKLOG}",
            f"--imap=tcp:{free_port()}:interface={HOST}",
            f"--user={CATCH_ALL}:bench-password",
            f"--catch-all={CATCH_ALL}",
            f"--http=tcp:{free_port()}:interface={HOST}",
        ]

    return argv


def maildev_server(directory: Path) -> Callable[[int, Path], list[str]]:
    def argv(port: int, log: Path) -> list[str]:
        return [
            str(MAILDEV_BIN),
            "-s",
            str(port),
            "-w",
            str(free_port()),
            "--ip",
            HOST,
            "--web-ip",
            HOST,
            "--mail-directory",
            str(directory),
            "--silent",
        ]

    return argv


def _count(where: Path) -> int:
    """
    Messages stored under C{where}: files in a Maildir's new/ and cur/, or
    MailDev's .eml files.
    """
    if (where / "new").is_dir():
        return sum(
            1 for sub in ("new", "cur") for p in (where / sub).iterdir() if p.is_file()
        )
    return sum(1 for p in where.glob("*.eml")) if where.is_dir() else 0


def run(context: Context) -> Section:
    scenarios = [s for s in SCENARIOS if context.wants(s.key)]
    if not scenarios:
        return _not_run("no capture case was asked for")
    if importlib.util.find_spec("aiosmtpd") is None:
        return _not_run("aiosmtpd is not installed (pip install -e '.[bench]')")
    notes: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="netlab-bench-capture-", dir="/var/tmp"))
    kind = f"disk ({filesystem(base)})"
    specs = [
        (
            ServerSpec(
                NETLAB,
                "twistd -n netlab-mail --catch-all",
                netlab_capture(base / "netlab"),
            ),
            base / "netlab" / "mail" / CATCH_ALL,
        ),
        (
            ServerSpec(
                AIOSMTPD,
                "aiosmtpd.handlers.Mailbox",
                aiosmtpd_server(base / "aiosmtpd"),
            ),
            base / "aiosmtpd",
        ),
    ]
    if MAILDEV_BIN.exists() and shutil.which("node"):
        (base / "maildev").mkdir()
        specs.append(
            (
                ServerSpec(
                    MAILDEV, "maildev 3.0.0 (npm)", maildev_server(base / "maildev")
                ),
                base / "maildev",
            )
        )
    else:
        notes.append(
            "MailDev is not installed (npm ci --prefix tests/interop/node): not run"
        )
    runs: list[dict[str, Any]] = []
    servers: dict[str, tuple[RunningServer, Path]] = {}
    try:
        for spec, where in specs:
            servers[spec.name] = (
                RunningServer(spec, context.log_dir, context.server_cpus),
                where,
            )
        for round_ in range(context.repeats):
            for scenario in scenarios:
                for name in rotated(list(servers), round_):
                    server, where = servers[name]
                    record = measure_intake(
                        server,
                        where,
                        _messages(context, scenario),
                        round_,
                        scenario.key,
                        recipient=RECIPIENT,
                        counter=_count,
                        per_connection=scenario.per_connection,
                    )
                    runs.append(record)
                    context.progress(_describe(record))
    except ServerError as e:
        runs.append({"server": "?", "round": 0, "error": str(e)})
    finally:
        for server, _ in servers.values():
            server.stop()
        shutil.rmtree(base, ignore_errors=True)
    return _section(
        context, [spec.name for spec, _ in specs], runs, kind, notes, scenarios
    )


def _messages(context: Context, scenario: Scenario) -> int:
    return scenario.quick_messages if context.quick else scenario.messages


def _describe(record: dict[str, Any]) -> str:
    head = f"mail capture {record['scenario']:<15} {record['server']:<24}"
    if record["error"]:
        return f"{head} FAILED: {record['error']}"
    return (
        f"{head} {record['per_second']:7,.0f} messages/s  "
        f"server {record['server_cpu_ms_per_message']:5.2f} ms/message"
    )


def _not_run(reason: str) -> Section:
    return Section(
        NAME,
        [Table("Capture intake: not run", ["benchmark", "why"], [["capture", reason]])],
        [],
        [],
        {"not_run": reason},
    )


def _section(
    context: Context,
    names: list[str],
    runs: list[dict[str, Any]],
    kind: str,
    notes: list[str],
    scenarios: list[Scenario],
) -> Section:
    good = [r for r in runs if not r["error"]]
    by_round = {(r["round"], r["scenario"], r["server"]): r for r in good}
    summary: dict[str, dict[str, dict[str, float | None]]] = {}
    ratios: dict[str, dict[str, float | None]] = {}
    for scenario in scenarios:
        summary[scenario.key] = {}
        for name in names:
            mine = [
                r for r in good if r["server"] == name and r["scenario"] == scenario.key
            ]
            summary[scenario.key][name] = {
                "per_second": median(r["per_second"] for r in mine),
                "server_cpu_ms_per_message": median(
                    r["server_cpu_ms_per_message"] for r in mine
                ),
                "good_runs": len(mine),
            }
        ratios[scenario.key] = {
            name: paired_ratio(
                by_round,
                context.repeats,
                (scenario.key, NETLAB),
                (scenario.key, name),
                "per_second",
            )
            for name in names
            if name != NETLAB
        }
    durable = {NETLAB: "yes", AIOSMTPD: "yes", MAILDEV: "no (no fsync)"}
    rounds = f"median of {context.repeats} round{'s' if context.repeats > 1 else ''}"
    rows = []
    for scenario in scenarios:
        figures, scenario_ratios = summary[scenario.key], ratios[scenario.key]
        for name in names:
            rows.append(
                [
                    _load(scenario, context),
                    name,
                    durable[name],
                    fmt(figures[name]["per_second"])
                    if figures[name]["good_runs"]
                    else "FAILED",
                    fmt(figures[name]["server_cpu_ms_per_message"], 2),
                    fmt_ratio(scenario_ratios[name]) if name in scenario_ratios else "",
                ]
            )
    tables = [
        Table(
            f"Capture intake: messages of about {MESSAGE_SIZE:,} bytes to "
            f"{RECIPIENT} from {SENDERS} concurrent smtplib senders, plaintext "
            f"on loopback, the stores on {kind} ({rounds})",
            [
                "load",
                "server",
                "durable before 250",
                "messages/s",
                "server CPU ms/message",
                "netlab-mail / this",
            ],
            rows,
        )
    ]
    if notes:
        tables.append(Table("Capture notes", ["note"], [[n] for n in notes]))
    targets = [
        Target(
            f"mail capture, {_load(scenario, context)}: netlab-mail --catch-all / "
            f"{name} messages/s",
            f">= {GOALS[name]:.1f}x",
            ratio,
            ratio is not None and ratio >= GOALS[name],
        )
        for scenario in scenarios
        for name, ratio in ratios[scenario.key].items()
    ]
    panels = [
        Panel(
            f"Capture intake, {SENDERS} senders, store on {kind}: messages/s "
            "(higher is better)",
            "messages/s",
            [_load(scenario, context) for scenario in scenarios],
            {
                name: [summary[s.key][name]["per_second"] for s in scenarios]
                for name in names
            },
            highlight=NETLAB,
        )
    ]
    failures = [
        f"mail capture {r['server']} {r.get('scenario', '')} round {r['round']}: "
        f"{r['error']}"
        for r in runs
        if r["error"]
    ]
    return Section(
        NAME,
        tables,
        targets,
        panels,
        {
            "servers": {spec: durable[spec] for spec in names},
            "load": {
                s.key: {
                    "messages": _messages(context, s),
                    "senders": SENDERS,
                    "per_connection": s.per_connection,
                    "size": MESSAGE_SIZE,
                    "recipient": RECIPIENT,
                }
                for s in scenarios
            },
            "store": kind,
            "notes": notes,
            "runs": runs,
            "summary": summary,
            "ratios": ratios,
        },
        failures,
    )


def _load(scenario: Scenario, context: Context) -> str:
    per = (
        "1 message per connection"
        if scenario.per_connection == 1
        else f"{scenario.per_connection} messages per connection"
    )
    return f"{_messages(context, scenario):,} messages, {per}"
