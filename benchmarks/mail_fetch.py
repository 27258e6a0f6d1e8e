"""
Mail fetch: C{netlab fetch --save maildir:DIR} copying a whole mailbox from
Dovecot over implicit TLS, against the course page's imaplib way (one
C{UID FETCH} round trip per message, saved with C{mailbox.Maildir}, as
netlab saves: each message fsynced) and against mbsync on the same mailbox.

Every client is a whole program run to completion (start-up included), one
after another, against one Dovecot with the mailbox filled once.  The
scenarios cross the link (loopback, or a link adding 1 or 5 ms to each round
trip: L{benchmarks.processes.DelayLink}) with the disk the Maildir is written
to (a real file system, or tmpfs where fsync costs nothing).
"""

from __future__ import annotations

import imaplib
import os
import shutil
import ssl
import sys
import tempfile
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
    DelayLink,
    Finished,
    group_cpu,
    group_settled,
    median_round_trip,
    run_client,
)

NAME = "mail_fetch"
CASES = ["fetch-loopback", "fetch-latency"]

MESSAGES, QUICK_MESSAGES = 5000, 40
MESSAGE_SIZE = 4096
NETLAB = "netlab fetch"
IMAPLIB = "imaplib 1/round trip"
MBSYNC = "mbsync"
CLIENTS = [NETLAB, IMAPLIB, MBSYNC]
DESCRIPTIONS = {
    NETLAB: "netlab fetch --save maildir:DIR (batched UID FETCH, 8 writers)",
    IMAPLIB: "benchmarks/peers/imaplib_fetch.py: IMAP4_SSL, one UID FETCH "
    "per message, mailbox.Maildir",
    MBSYNC: "mbsync (isync) -a, Sync Pull, FSync yes (its default)",
}
#: Dovecot's per-session processes, waited for before its CPU time is read
DOVECOT_SESSION = {"imap", "imap-login"}

#: the goals of issue 6, checked on loopback; the same ratios with latency
#: are reported as targets too, so the effect of round trips is on record
AT_LEAST_VS_IMAPLIB = 5.0
AT_MOST_VS_MBSYNC = 1.5


@dataclass(frozen=True)
class Scenario:
    key: str
    case: str
    rtt_ms: float  # added to each round trip; 0: plain loopback
    disk: str  # "disk" or "tmpfs"

    def label(self, kinds: dict[str, str]) -> str:
        link = "loopback" if not self.rtt_ms else f"+{self.rtt_ms:g} ms RTT"
        return f"{link}, {kinds.get(self.disk, self.disk)}"


SCENARIOS = [
    Scenario("loopback-disk", "fetch-loopback", 0, "disk"),
    Scenario("loopback-tmpfs", "fetch-loopback", 0, "tmpfs"),
    Scenario("1ms-tmpfs", "fetch-latency", 1.0, "tmpfs"),
    Scenario("5ms-tmpfs", "fetch-latency", 5.0, "tmpfs"),
]


def filesystem(path: Path) -> str:
    """
    The type of the file system C{path} is on (from /proc/mounts).
    """
    best, kind = "", "?"
    try:
        mounts = Path("/proc/mounts").read_text().splitlines()
    except OSError:
        return kind
    resolved = str(path.resolve())
    for line in mounts:
        fields = line.split()
        if len(fields) < 3:
            continue
        point = fields[1]
        inside = resolved == point or resolved.startswith(point.rstrip("/") + "/")
        if inside and len(point) >= len(best):
            best, kind = point, fields[2]
    return kind


def netlab_command() -> list[str]:
    """
    The C{netlab} command of this virtualenv, as a user runs it.
    """
    script = Path(sys.executable).with_name("netlab")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "twisted_netlab"]


def client_environment(password: str, state: Path) -> dict[str, str]:
    """
    The clients' environment: the password, a scratch state directory, and
    Python allowed to keep its bytecode caches (as installed software does).
    """
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env["IMAP_PASSWORD"] = password
    env["XDG_STATE_HOME"] = str(state)
    return env


MBSYNC_CONFIG = """\
IMAPAccount bench
Host localhost
Port {port}
User {user}
Pass {password}
SSLType IMAPS
CertificateFile {ca}

IMAPStore far
Account bench

MaildirStore near
Path {target}/
Inbox {target}/INBOX

Channel bench
Far :far:
Near :near:
Patterns INBOX
Create Near
Sync Pull
SyncState *
"""


class Fetcher:
    """
    Runs each client against a Dovecot port, into a fresh directory.
    """

    def __init__(self, dovecot: Any, env: dict[str, str], scratch: Path) -> None:
        self.dovecot = dovecot
        self.env = env
        self.scratch = scratch
        self.mbsync = shutil.which("mbsync")

    def argv(self, client: str, port: int, target: Path) -> list[str]:
        d = self.dovecot
        if client == NETLAB:
            return [
                *netlab_command(),
                "fetch",
                "--server", f"localhost:{port}",
                "--user", d.user,
                "--password-env", "IMAP_PASSWORD",
                "--cafile", str(d.ca),
                "--save", f"maildir:{target}",
            ]  # fmt: skip
        if client == IMAPLIB:
            return [
                sys.executable,
                str(Path(__file__).with_name("peers") / "imaplib_fetch.py"),
                "localhost",
                str(port),
                str(d.ca),
                d.user,
                str(target),
            ]
        assert self.mbsync is not None
        config = target.with_name(target.name + ".mbsyncrc")
        config.write_text(
            MBSYNC_CONFIG.format(
                port=port, user=d.user, password=d.password, ca=d.ca, target=target
            )
        )
        config.chmod(0o600)
        return [self.mbsync, "-q", "-c", str(config), "-a"]

    def run(
        self, client: str, port: int, base: Path, expect: int, expect_bytes: int
    ) -> tuple[Finished, float]:
        """
        Copy the mailbox with C{client} into a new directory under C{base};
        check every message arrived; return the run and Dovecot's CPU
        seconds meanwhile.
        """
        target = Path(tempfile.mkdtemp(prefix="fetch-", dir=base))
        pgid = self.dovecot.master_pid()
        try:
            before = group_cpu(pgid)
            done = run_client(self.argv(client, port, target), env=self.env)
            group_settled(pgid, DOVECOT_SESSION)
            server = group_cpu(pgid) - before
            done.check(client)
            files = [
                p
                for sub in ("new", "cur")
                for p in target.rglob(f"{sub}/*")
                if p.is_file()
            ]
            if len(files) != expect:
                raise ClientError(f"{client} saved {len(files)} messages, not {expect}")
            if client != MBSYNC:  # mbsync stores LF line ends and adds X-TUID
                size = sum(p.stat().st_size for p in files)
                if size != expect_bytes:
                    raise ClientError(
                        f"{client} saved {size} bytes, not {expect_bytes}"
                    )
            return done, server
        finally:
            shutil.rmtree(target, ignore_errors=True)
            config = target.with_name(target.name + ".mbsyncrc")
            config.unlink(missing_ok=True)


def _noop_round_trip(port: int, dovecot: Any) -> float:
    context = ssl.create_default_context(cafile=str(dovecot.ca))
    client = imaplib.IMAP4_SSL("localhost", port, ssl_context=context)
    try:
        client.login(dovecot.user, dovecot.password)
        return median_round_trip(client.noop)
    finally:
        client.logout()


def run(context: Context) -> Section:
    scenarios = [s for s in SCENARIOS if context.wants(s.case)]
    count = QUICK_MESSAGES if context.quick else MESSAGES
    notes: list[str] = []
    try:
        from tests.dovecot import Dovecot, make_message, skip_reason
    except ImportError as e:  # run from elsewhere than a checkout
        return _not_run(f"tests.dovecot cannot be imported ({e})")
    missing = skip_reason()
    if missing:
        return _not_run(missing)
    clients = list(CLIENTS)
    if shutil.which("mbsync") is None:
        clients.remove(MBSYNC)
        notes.append("mbsync is not installed (apt install isync): not measured")

    scratch = Path(tempfile.mkdtemp(prefix="netlab-bench-fetch-", dir="/var/tmp"))
    bases = {"disk": scratch / "maildirs"}
    shm = Path("/dev/shm")
    tmpfs_scratch: Path | None = None
    if shm.is_dir() and filesystem(shm) == "tmpfs":
        tmpfs_scratch = Path(tempfile.mkdtemp(prefix="netlab-bench-fetch-", dir=shm))
        bases["tmpfs"] = tmpfs_scratch
    else:
        notes.append("no tmpfs at /dev/shm: the tmpfs scenarios were not run")
        scenarios = [s for s in scenarios if s.disk != "tmpfs"]
    for base in bases.values():
        base.mkdir(parents=True, exist_ok=True)
    kinds = {
        "disk": f"disk ({filesystem(bases['disk'])})",
        "tmpfs": "tmpfs",
    }

    messages = [make_message(i, size=MESSAGE_SIZE) for i in range(count)]
    total_bytes = sum(len(m) for m in messages)
    dovecot = Dovecot()
    links: dict[float, DelayLink] = {}
    runs: list[dict[str, Any]] = []
    round_trips: dict[str, float] = {}
    try:
        dovecot.start()
        dovecot.fill(messages, recent=False)
        env = client_environment(dovecot.password, scratch / "state")
        fetcher = Fetcher(dovecot, env, scratch)
        ports = {0.0: dovecot.imaps_port}
        for rtt in sorted({s.rtt_ms for s in scenarios if s.rtt_ms}):
            links[rtt] = DelayLink(dovecot.imaps_port, rtt, context.log_dir)
            ports[rtt] = links[rtt].port
        for rtt, port in ports.items():
            round_trips[f"{rtt:g}"] = _noop_round_trip(port, dovecot)
        # Untimed: Dovecot indexes the mailbox, Python writes its bytecode.
        warm = bases.get("tmpfs", bases["disk"])
        for client in clients:
            fetcher.run(client, dovecot.imaps_port, warm, count, total_bytes)
        for round_ in range(context.repeats):
            for scenario in scenarios:
                for client in rotated(clients, round_):
                    record: dict[str, Any] = {
                        "round": round_,
                        "scenario": scenario.key,
                        "client": client,
                        "error": None,
                    }
                    try:
                        done, server = fetcher.run(
                            client,
                            ports[scenario.rtt_ms],
                            bases[scenario.disk],
                            count,
                            total_bytes,
                        )
                        record.update(
                            seconds=done.seconds, cpu=done.cpu, server_cpu=server
                        )
                    except (ClientError, OSError) as e:
                        record["error"] = str(e)
                    runs.append(record)
                    context.progress(_describe(record, scenario.label(kinds)))
    except (ClientError, OSError, RuntimeError) as e:
        return _not_run(f"setting up Dovecot failed: {e}", failed=True)
    finally:
        for link in links.values():
            link.stop()
        dovecot.remove()
        shutil.rmtree(scratch, ignore_errors=True)
        if tmpfs_scratch is not None:
            shutil.rmtree(tmpfs_scratch, ignore_errors=True)
    sizes = [len(m) for m in messages]
    return _section(
        context,
        scenarios,
        clients,
        runs,
        kinds,
        notes,
        {
            "messages": count,
            "bytes": total_bytes,
            "size_min": min(sizes),
            "size_max": max(sizes),
            "round_trip_ms": round_trips,
        },
    )


def _describe(record: dict[str, Any], label: str) -> str:
    head = f"mail fetch {label:<22} {record['client']:<21}"
    if record["error"]:
        return f"{head} FAILED: {record['error']}"
    return (
        f"{head} {record['seconds']:7.2f} s  client CPU {record['cpu']:5.2f} s  "
        f"Dovecot CPU {record['server_cpu']:5.2f} s"
    )


def _not_run(reason: str, *, failed: bool = False) -> Section:
    table = Table("Mail fetch: not run", ["benchmark", "why"], [["mail fetch", reason]])
    return Section(
        NAME,
        [table],
        [],
        [],
        {"not_run": reason},
        [f"mail fetch: {reason}"] if failed else [],
    )


def _section(
    context: Context,
    scenarios: list[Scenario],
    clients: list[str],
    runs: list[dict[str, Any]],
    kinds: dict[str, str],
    notes: list[str],
    load: dict[str, Any],
) -> Section:
    good = [r for r in runs if not r["error"]]
    summary: dict[str, dict[str, dict[str, float | None]]] = {}
    ratios: dict[str, dict[str, float | None]] = {}
    by_round = {(r["round"], r["scenario"], r["client"]): r for r in good}
    for s in scenarios:
        summary[s.key] = {}
        for client in clients:
            mine = [r for r in good if r["scenario"] == s.key and r["client"] == client]
            seconds = [r["seconds"] for r in mine]
            summary[s.key][client] = {
                "seconds": median(seconds),
                "seconds_min": min(seconds) if seconds else None,
                "seconds_max": max(seconds) if seconds else None,
                "cpu": median(r["cpu"] for r in mine),
                "server_cpu": median(r["server_cpu"] for r in mine),
                "good_runs": len(mine),
            }
        # netlab's speed-up over each peer: the peer's time over netlab's,
        # round by round, then the median
        ratios[s.key] = {}
        for client in clients[1:]:
            ratios[s.key][client] = paired_ratio(
                by_round, context.repeats, (s.key, client), (s.key, NETLAB), "seconds"
            )

    count = load["messages"]
    rounds = f"median of {context.repeats} round{'s' if context.repeats > 1 else ''}"
    rows = []
    for s in scenarios:
        for client in clients:
            x = summary[s.key][client]
            took = x["seconds"]
            rows.append(
                [
                    s.label(kinds),
                    client,
                    fmt(took, 2) if x["good_runs"] else "FAILED",
                    fmt(count / took) if took else "-",
                    fmt(x["cpu"], 2),
                    fmt(x["server_cpu"], 2),
                    "" if client == NETLAB else fmt_ratio(ratios[s.key][client]),
                ]
            )
    tables = [
        Table(
            f"Mail fetch: {count:,} messages ({load['size_min']:,}-"
            f"{load['size_max']:,} bytes, {load['bytes'] / 1e6:.1f} MB) from "
            f"Dovecot over implicit TLS into a new Maildir, each client a whole "
            f"program run ({rounds})",
            [
                "link, disk",
                "client",
                "seconds",
                "messages/s",
                "client CPU s",
                "Dovecot CPU s",
                "this time / netlab time",
            ],
            rows,
        )
    ]
    trips = load["round_trip_ms"]
    if len(trips) > 1:
        tables.append(
            Table(
                "Mail fetch links: one IMAP NOOP round trip (median of 30)",
                ["link", "NOOP round trip ms"],
                [
                    ["loopback" if rtt == "0" else f"+{rtt} ms link", fmt(ms, 2)]
                    for rtt, ms in trips.items()
                ],
            )
        )
    if notes:
        tables.append(Table("Mail fetch notes", ["note"], [[n] for n in notes]))

    targets = []
    for s in scenarios:
        label = s.label(kinds)
        value = ratios[s.key].get(IMAPLIB)
        targets.append(
            Target(
                f"mail fetch {label}: {IMAPLIB} time / netlab time",
                f">= {AT_LEAST_VS_IMAPLIB:.1f}x",
                value,
                value is not None and value >= AT_LEAST_VS_IMAPLIB,
            )
        )
        if MBSYNC in clients:
            speedup = ratios[s.key].get(MBSYNC)
            value = 1 / speedup if speedup else None
            targets.append(
                Target(
                    f"mail fetch {label}: netlab time / {MBSYNC} time",
                    f"<= {AT_MOST_VS_MBSYNC:.1f}x",
                    value,
                    value is not None and value <= AT_MOST_VS_MBSYNC,
                )
            )

    labels = [s.label(kinds) for s in scenarios]
    panels = [
        Panel(
            f"Mail fetch: seconds for {count:,} messages (lower is better)",
            "seconds",
            labels,
            columns(summary, [s.key for s in scenarios], clients, "seconds"),
            low=columns(summary, [s.key for s in scenarios], clients, "seconds_min"),
            high=columns(summary, [s.key for s in scenarios], clients, "seconds_max"),
            log=True,
            highlight=NETLAB,
        ),
        Panel(
            "Mail fetch: each peer's time over netlab fetch's (above 1: netlab "
            "faster; dashed: 1.0)",
            "ratio",
            labels,
            {c: [ratios[s.key][c] for s in scenarios] for c in clients[1:]},
            log=True,
            reference=1.0,
        ),
    ]
    failures = [
        f"mail fetch {r['scenario']} {r['client']} round {r['round']}: {r['error']}"
        for r in runs
        if r["error"]
    ]
    return Section(
        NAME,
        tables,
        targets,
        panels,
        {
            "clients": [{"name": c, "description": DESCRIPTIONS[c]} for c in clients],
            "scenarios": [
                {"key": s.key, "label": s.label(kinds), "rtt_ms": s.rtt_ms}
                for s in scenarios
            ],
            "load": load,
            "notes": notes,
            "runs": runs,
            "summary": summary,
            "ratios": ratios,
        },
        failures,
    )
