"""
Mail lab SMTP intake: C{twistd netlab-mail} against aiosmtpd with its Maildir
handler, each its own process on loopback (plaintext, no AUTH), both storing
every message with fsync before answering 250 to the final dot.  The load is
C{benchmarks/peers/smtp_senders.py}: 10 concurrent smtplib senders (each a
process), 10 messages per connection.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
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
    columns,
    fmt,
    fmt_ratio,
    median,
    paired_ratio,
    rotated,
)
from benchmarks.mail_fetch import filesystem
from benchmarks.processes import ClientError, run_client
from benchmarks.servers import (
    BACKLOG,
    HOST,
    PEERS,
    RunningServer,
    ServerError,
    ServerSpec,
    free_port,
    twistd_command,
)

NAME = "mail_smtp"
CASES = ["smtp-disk", "smtp-tmpfs"]

NETLAB = "netlab-mail"
AIOSMTPD = "aiosmtpd Mailbox"
SENDERS = 10
MESSAGES, QUICK_MESSAGES = 2000, 40
PER_CONNECTION = 10
MESSAGE_SIZE = 4096
DOMAIN = "bench.test"
RECIPIENT = f"rcpt@{DOMAIN}"
AT_LEAST = 1.0


@dataclass(frozen=True)
class Scenario:
    key: str
    disk: str


SCENARIOS = [Scenario("smtp-disk", "disk"), Scenario("smtp-tmpfs", "tmpfs")]


def netlab_mail(state: Path) -> Callable[[int, Path], list[str]]:
    def argv(port: int, log: Path) -> list[str]:
        return [
            *twistd_command(log),
            "netlab-mail",
            f"--state={state}",
            f"--domain={DOMAIN}",
            f"--smtp=tcp:{port}:interface={HOST}:backlog={BACKLOG}",
            f"--imap=tcp:{free_port()}:interface={HOST}",
            f"--user={RECIPIENT}:bench-password",
        ]

    return argv


def aiosmtpd_server(maildir: Path) -> Callable[[int, Path], list[str]]:
    def argv(port: int, log: Path) -> list[str]:
        return [
            sys.executable,
            str(PEERS / "aiosmtpd_maildir.py"),
            str(port),
            str(BACKLOG),
            str(maildir),
        ]

    return argv


def _stored(maildir: Path) -> int:
    return sum(
        1
        for sub in ("new", "cur")
        if (maildir / sub).is_dir()
        for p in (maildir / sub).iterdir()
        if p.is_file()
    )


def run(context: Context) -> Section:
    scenarios = [s for s in SCENARIOS if context.wants(s.key)]
    count = QUICK_MESSAGES if context.quick else MESSAGES
    notes: list[str] = []
    if importlib.util.find_spec("aiosmtpd") is None:
        return _not_run("aiosmtpd is not installed (pip install -e '.[bench]')")
    bases = {
        "disk": Path(tempfile.mkdtemp(prefix="netlab-bench-smtp-", dir="/var/tmp"))
    }
    shm = Path("/dev/shm")
    if shm.is_dir() and filesystem(shm) == "tmpfs":
        bases["tmpfs"] = Path(tempfile.mkdtemp(prefix="netlab-bench-smtp-", dir=shm))
    else:
        notes.append("no tmpfs at /dev/shm: the tmpfs scenario was not run")
        scenarios = [s for s in scenarios if s.disk != "tmpfs"]
    kinds = {"disk": f"disk ({filesystem(bases['disk'])})", "tmpfs": "tmpfs"}
    runs: list[dict[str, Any]] = []
    try:
        for scenario in scenarios:
            base = bases[scenario.disk]
            state, maildir = base / "netlab-mail", base / "aiosmtpd"
            specs = [
                (
                    ServerSpec(
                        NETLAB,
                        "twistd -n netlab-mail (epoll reactor; logs each message)",
                        netlab_mail(state),
                    ),
                    state / "mail" / RECIPIENT,
                ),
                (
                    ServerSpec(
                        AIOSMTPD,
                        "aiosmtpd.handlers.Mailbox on asyncio",
                        aiosmtpd_server(maildir),
                    ),
                    maildir,
                ),
            ]
            servers: dict[str, tuple[RunningServer, Path]] = {}
            try:
                for spec, where in specs:
                    servers[spec.name] = (
                        RunningServer(spec, context.log_dir, context.server_cpus),
                        where,
                    )
                for round_ in range(context.repeats):
                    for name in rotated(list(servers), round_):
                        server, where = servers[name]
                        record = measure_intake(
                            server, where, count, round_, scenario.key
                        )
                        runs.append(record)
                        context.progress(_describe(record, kinds[scenario.disk], count))
            except ServerError as e:
                runs.append(
                    {
                        "scenario": scenario.key,
                        "server": "?",
                        "round": 0,
                        "error": str(e),
                    }
                )
            finally:
                for server, _ in servers.values():
                    server.stop()
    finally:
        for base in bases.values():
            shutil.rmtree(base, ignore_errors=True)
    return _section(context, scenarios, runs, kinds, notes, count)


def measure_intake(
    server: RunningServer,
    where: Path,
    count: int,
    round_: int,
    scenario: str,
    *,
    recipient: str = RECIPIENT,
    counter: Callable[[Path], int] | None = None,
    per_connection: int = PER_CONNECTION,
) -> dict[str, Any]:
    """
    One round of the SMTP intake load against C{server}: C{count} messages
    to C{recipient} from the concurrent senders, checked against what
    C{counter} (default: a Maildir's files) counts under C{where},
    C{per_connection} messages on each connection. The capture benchmark
    uses it too.
    """
    count_stored = _stored if counter is None else counter
    record: dict[str, Any] = {
        "round": round_,
        "scenario": scenario,
        "server": server.spec.name,
        "error": None,
    }
    try:
        server.check_alive()
        server.wait_closed()
        before_files = count_stored(where)
        user0, system0 = server.cpu_times()
        done = run_client(
            [
                sys.executable,
                str(PEERS / "smtp_senders.py"),
                str(server.port),
                str(SENDERS),
                str(count),
                str(per_connection),
                str(MESSAGE_SIZE),
                recipient,
            ]
        ).check("the SMTP senders")
        user1, system1 = server.cpu_times()
        result = json.loads(done.stdout)
        if result["error"]:
            raise ClientError(f"a sender failed: {result['error']}")
        stored = count_stored(where) - before_files
        if result["accepted"] != count or stored != count:
            raise ClientError(
                f"{result['accepted']} messages accepted and {stored} stored, "
                f"not {count}"
            )
        record.update(
            seconds=result["seconds"],
            per_second=count / result["seconds"],
            server_cpu_ms_per_message=(user1 + system1 - user0 - system0)
            / count
            * 1000,
            senders_cpu_ms_per_message=result["senders_cpu"] / count * 1000,
        )
    except (ClientError, ServerError, OSError, ValueError, KeyError) as e:
        record["error"] = str(e)
    return record


def _describe(record: dict[str, Any], disk: str, count: int) -> str:
    head = f"mail smtp {disk:<12} {record['server']:<17}"
    if record["error"]:
        return f"{head} FAILED: {record['error']}"
    return (
        f"{head} {record['per_second']:7,.0f} messages/s  "
        f"server {record['server_cpu_ms_per_message']:5.2f} ms/message  "
        f"senders {record['senders_cpu_ms_per_message']:5.2f} ms/message"
    )


def _not_run(reason: str) -> Section:
    return Section(
        NAME,
        [Table("Mail SMTP intake: not run", ["benchmark", "why"], [["smtp", reason]])],
        [],
        [],
        {"not_run": reason},
    )


def _section(
    context: Context,
    scenarios: list[Scenario],
    runs: list[dict[str, Any]],
    kinds: dict[str, str],
    notes: list[str],
    count: int,
) -> Section:
    names = [NETLAB, AIOSMTPD]
    good = [r for r in runs if not r["error"]]
    by_round = {(r["round"], r["scenario"], r["server"]): r for r in good}
    summary: dict[str, dict[str, dict[str, float | None]]] = {}
    ratios: dict[str, float | None] = {}
    for s in scenarios:
        summary[s.key] = {}
        for name in names:
            mine = [r for r in good if r["scenario"] == s.key and r["server"] == name]
            rates = [r["per_second"] for r in mine]
            summary[s.key][name] = {
                "per_second": median(rates),
                "per_second_min": min(rates) if rates else None,
                "per_second_max": max(rates) if rates else None,
                "server_cpu_ms_per_message": median(
                    r["server_cpu_ms_per_message"] for r in mine
                ),
                "senders_cpu_ms_per_message": median(
                    r["senders_cpu_ms_per_message"] for r in mine
                ),
                "good_runs": len(mine),
            }
        ratios[s.key] = paired_ratio(
            by_round, context.repeats, (s.key, NETLAB), (s.key, AIOSMTPD), "per_second"
        )

    rounds = f"median of {context.repeats} round{'s' if context.repeats > 1 else ''}"
    rows = []
    for s in scenarios:
        for name in names:
            x = summary[s.key][name]
            rows.append(
                [
                    kinds[s.disk],
                    name,
                    fmt(x["per_second"]) if x["good_runs"] else "FAILED",
                    fmt(x["server_cpu_ms_per_message"], 2),
                    fmt(x["senders_cpu_ms_per_message"], 2),
                    "" if name == NETLAB else fmt_ratio(ratios[s.key]),
                ]
            )
    tables = [
        Table(
            f"Mail SMTP intake: {count:,} messages of about {MESSAGE_SIZE:,} bytes "
            f"from {SENDERS} concurrent smtplib senders, {PER_CONNECTION} messages "
            f"per connection, plaintext on loopback, each message fsynced before "
            f"its 250 ({rounds})",
            [
                "store on",
                "server",
                "messages/s",
                "server CPU ms/message",
                "senders CPU ms/message",
                "netlab-mail / this",
            ],
            rows,
        )
    ]
    if notes:
        tables.append(Table("Mail SMTP notes", ["note"], [[n] for n in notes]))
    targets = []
    for s in scenarios:
        ratio = ratios[s.key]
        targets.append(
            Target(
                f"mail smtp, store on {kinds[s.disk]}: netlab-mail / {AIOSMTPD} "
                "messages/s",
                f">= {AT_LEAST:.1f}x",
                ratio,
                ratio is not None and ratio >= AT_LEAST,
            )
        )
    labels = [f"store on {kinds[s.disk]}" for s in scenarios]
    panels = [
        Panel(
            f"Mail SMTP intake, {SENDERS} senders: messages/s (higher is better)\n"
            f"netlab-mail / {AIOSMTPD}: "
            + ", ".join(f"{fmt_ratio(ratios[s.key])} {s.disk}" for s in scenarios),
            "messages/s",
            labels,
            columns(summary, [s.key for s in scenarios], names, "per_second"),
            low=columns(summary, [s.key for s in scenarios], names, "per_second_min"),
            high=columns(summary, [s.key for s in scenarios], names, "per_second_max"),
            highlight=NETLAB,
        )
    ]
    failures = [
        f"mail smtp {r['scenario']} {r['server']} round {r['round']}: {r['error']}"
        for r in runs
        if r["error"]
    ]
    return Section(
        NAME,
        tables,
        targets,
        panels,
        {
            "servers": {
                NETLAB: "twistd -n netlab-mail --smtp (plaintext, no AUTH)",
                AIOSMTPD: "benchmarks/peers/aiosmtpd_maildir.py",
            },
            "load": {
                "messages": count,
                "senders": SENDERS,
                "per_connection": PER_CONNECTION,
                "size": MESSAGE_SIZE,
            },
            "notes": notes,
            "runs": runs,
            "summary": summary,
            "ratios": ratios,
        },
        failures,
    )
