"""
Mail lab IMAP serving: an imaplib client reading a whole mailbox of 5,000
messages (LOGIN, SELECT, one ``UID FETCH 1:* (BODY.PEEK[])``) from
C{twistd netlab-mail} and from Dovecot, the same messages in both, each
server its own process on loopback; plaintext, and implicit TLS.
"""

from __future__ import annotations

import json
import mailbox
import os
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
from benchmarks.processes import (
    ClientError,
    group_cpu,
    group_settled,
    run_client,
)
from benchmarks.servers import (
    HOST,
    PEERS,
    RunningServer,
    ServerError,
    ServerSpec,
    free_port,
    twistd_command,
)

NAME = "mail_imap"
CASES = ["imap-plain", "imap-tls"]

NETLAB = "netlab-mail"
DOVECOT = "Dovecot"
MESSAGES, QUICK_MESSAGES = 5000, 40
MESSAGE_SIZE = 4096
USER = "rcpt@bench.test"
PASSWORD = "bench-password"
AT_MOST = 3.0


@dataclass(frozen=True)
class Scenario:
    key: str
    label: str
    tls: bool


SCENARIOS = [
    Scenario("imap-plain", "plaintext", False),
    Scenario("imap-tls", "implicit TLS", True),
]


def netlab_mail(state: Path, imaps_port: int) -> Callable[[int, Path], list[str]]:
    def argv(port: int, log: Path) -> list[str]:
        return [
            *twistd_command(log),
            "netlab-mail",
            f"--state={state}",
            "--domain=bench.test",
            f"--imap=tcp:{port}:interface={HOST}",
            f"--imaps=tcp:{imaps_port}:interface={HOST}",
            f"--smtp=tcp:{free_port()}:interface={HOST}",
            f"--user={USER}:{PASSWORD}",
            "--allow-plaintext-auth",
        ]

    return argv


class _Target:
    """
    One server as the client sees it: its ports, CA, password, and how to
    read its CPU time.
    """

    def __init__(
        self,
        name: str,
        plain: int,
        tls: int,
        ca: Path,
        user: str,
        password: str,
        cpu: Callable[[], float],
        settle: Callable[[], None] = lambda: None,
    ) -> None:
        self.name, self.plain, self.tls, self.ca = name, plain, tls, ca
        self.user, self.password = user, password
        self.cpu, self.settle = cpu, settle


def _fetch(target: _Target, tls: bool, count: int, expect_bytes: int) -> dict[str, Any]:
    env = dict(os.environ, IMAP_PASSWORD=target.password)
    argv = [
        sys.executable,
        str(PEERS / "imaplib_fetch_all.py"),
        str(target.tls if tls else target.plain),
        target.user,
    ]
    if tls:
        argv.append(str(target.ca))
    before = target.cpu()
    done = run_client(argv, env=env).check(f"imaplib against {target.name}")
    target.settle()
    server_cpu = target.cpu() - before
    result = json.loads(done.stdout)
    if result["messages"] != count or result["bytes"] != expect_bytes:
        raise ClientError(
            f"{target.name} sent {result['messages']} messages, "
            f"{result['bytes']} bytes; expected {count}, {expect_bytes}"
        )
    return {
        "seconds": result["seconds"],
        "per_second": count / result["seconds"],
        "client_cpu": result["cpu"],
        "server_cpu": server_cpu,
    }


def run(context: Context) -> Section:
    scenarios = [s for s in SCENARIOS if context.wants(s.key)]
    count = QUICK_MESSAGES if context.quick else MESSAGES
    try:
        from tests.dovecot import Dovecot, make_message, skip_reason
    except ImportError as e:
        return _not_run(f"tests.dovecot cannot be imported ({e})")
    missing = skip_reason()
    if missing:
        return _not_run(missing)
    from twisted_netlab.mail.lab.store.maildir import MailStore

    messages = [make_message(i, size=MESSAGE_SIZE) for i in range(count)]
    expect_bytes = sum(len(m) for m in messages)
    scratch = Path(tempfile.mkdtemp(prefix="netlab-bench-imap-", dir="/var/tmp"))
    dovecot = Dovecot()
    lab: RunningServer | None = None
    runs: list[dict[str, Any]] = []
    first_open: dict[str, float] = {}
    try:
        state = scratch / "netlab-mail"
        store = MailStore(state / "mail")
        store.ensure_user(USER)
        box = mailbox.Maildir(store.user_path(USER), create=False)
        for data in messages:
            box.add(data)
        imaps_port = free_port()
        lab = RunningServer(
            ServerSpec(
                NETLAB,
                "twistd -n netlab-mail --imap/--imaps --allow-plaintext-auth",
                netlab_mail(state, imaps_port),
            ),
            context.log_dir,
            context.server_cpus,
        )
        dovecot.start()
        dovecot.fill(messages, recent=False)
        pgid = dovecot.master_pid()
        running = lab

        def lab_cpu() -> float:
            user, system = running.cpu_times()
            return user + system

        targets = [
            _Target(
                NETLAB,
                lab.port,
                imaps_port,
                state / "tls" / "cert.pem",
                USER,
                PASSWORD,
                lab_cpu,
            ),
            _Target(
                DOVECOT,
                dovecot.imap_port,
                dovecot.imaps_port,
                dovecot.ca,
                dovecot.user,
                dovecot.password,
                lambda: group_cpu(pgid),
                lambda: group_settled(pgid, {"imap", "imap-login"}),
            ),
        ]
        # Untimed: the first SELECT numbers the messages (both servers) and
        # builds Dovecot's index.
        for target in targets:
            first = _fetch(target, False, count, expect_bytes)
            first_open[target.name] = first["seconds"]
        for round_ in range(context.repeats):
            for scenario in scenarios:
                for target in rotated(targets, round_):
                    record: dict[str, Any] = {
                        "round": round_,
                        "scenario": scenario.key,
                        "server": target.name,
                        "error": None,
                    }
                    try:
                        record.update(_fetch(target, scenario.tls, count, expect_bytes))
                    except (ClientError, OSError, ValueError, KeyError) as e:
                        record["error"] = str(e)
                    runs.append(record)
                    context.progress(_describe(record, scenario.label))
    except (ClientError, ServerError, OSError, RuntimeError) as e:
        return _not_run(f"setting up the servers failed: {e}", failed=True)
    finally:
        if lab is not None:
            lab.stop()
        dovecot.remove()
        shutil.rmtree(scratch, ignore_errors=True)
    return _section(context, scenarios, runs, count, expect_bytes, first_open)


def _describe(record: dict[str, Any], label: str) -> str:
    head = f"mail imap {label:<13} {record['server']:<12}"
    if record["error"]:
        return f"{head} FAILED: {record['error']}"
    return (
        f"{head} {record['seconds']:6.3f} s {record['per_second']:8,.0f} messages/s  "
        f"server CPU {record['server_cpu']:5.2f} s  client CPU "
        f"{record['client_cpu']:5.2f} s"
    )


def _not_run(reason: str, *, failed: bool = False) -> Section:
    return Section(
        NAME,
        [Table("Mail IMAP serving: not run", ["benchmark", "why"], [["imap", reason]])],
        [],
        [],
        {"not_run": reason},
        [f"mail imap: {reason}"] if failed else [],
    )


def _section(
    context: Context,
    scenarios: list[Scenario],
    runs: list[dict[str, Any]],
    count: int,
    expect_bytes: int,
    first_open: dict[str, float],
) -> Section:
    names = [NETLAB, DOVECOT]
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
                "seconds": median(r["seconds"] for r in mine),
                "per_second": median(rates),
                "per_second_min": min(rates) if rates else None,
                "per_second_max": max(rates) if rates else None,
                "server_cpu": median(r["server_cpu"] for r in mine),
                "client_cpu": median(r["client_cpu"] for r in mine),
                "good_runs": len(mine),
            }
        # how many times longer the lab takes than Dovecot, round by round
        ratios[s.key] = paired_ratio(
            by_round, context.repeats, (s.key, NETLAB), (s.key, DOVECOT), "seconds"
        )

    rounds = f"median of {context.repeats} round{'s' if context.repeats > 1 else ''}"
    rows = []
    for s in scenarios:
        for name in names:
            x = summary[s.key][name]
            rows.append(
                [
                    s.label,
                    name,
                    fmt(x["seconds"], 3) if x["good_runs"] else "FAILED",
                    fmt(x["per_second"]),
                    fmt(x["server_cpu"], 2),
                    fmt(x["client_cpu"], 2),
                    fmt_ratio(ratios[s.key]) if name == NETLAB else "",
                ]
            )
    table = Table(
        f"Mail IMAP serving: imaplib reads {count:,} messages ({expect_bytes / 1e6:.1f}"
        f" MB) with LOGIN, SELECT, UID FETCH 1:* (BODY.PEEK[]) on loopback "
        f"({rounds}; the first, untimed open took "
        + ", ".join(f"{n} {s:.2f} s" for n, s in first_open.items())
        + ")",
        [
            "connection",
            "server",
            "seconds",
            "messages/s",
            "server CPU s",
            "client CPU s",
            "time / Dovecot's",
        ],
        rows,
    )
    targets = []
    for s in scenarios:
        ratio = ratios[s.key]
        targets.append(
            Target(
                f"mail imap {s.label}: netlab-mail time / Dovecot time",
                f"<= {AT_MOST:.1f}x",
                ratio,
                ratio is not None and ratio <= AT_MOST,
            )
        )
    panels = [
        Panel(
            f"Mail IMAP serving: messages/s to one imaplib client, {count:,} "
            "messages (higher is better)\nnetlab-mail's time / Dovecot's: "
            + ", ".join(f"{fmt_ratio(ratios[s.key])} {s.label}" for s in scenarios),
            "messages/s",
            [s.label for s in scenarios],
            columns(summary, [s.key for s in scenarios], names, "per_second"),
            low=columns(summary, [s.key for s in scenarios], names, "per_second_min"),
            high=columns(summary, [s.key for s in scenarios], names, "per_second_max"),
            highlight=NETLAB,
        )
    ]
    failures = [
        f"mail imap {r['scenario']} {r['server']} round {r['round']}: {r['error']}"
        for r in runs
        if r["error"]
    ]
    return Section(
        NAME,
        [table],
        targets,
        panels,
        {
            "load": {"messages": count, "bytes": expect_bytes, "size": MESSAGE_SIZE},
            "first_open_seconds": first_open,
            "runs": runs,
            "summary": summary,
            "ratios": ratios,
        },
        failures,
    )
