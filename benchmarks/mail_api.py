"""
The test inbox's HTTP API: C{twistd netlab-mail --http} over a store of
10,000 messages (base64 bodies, encoded-word subjects, so every search
decodes), as its own process on loopback.  Measured with http.client from
this process, one request at a time:

- latency of a list (the newest 50), a get (one message's detail) and a
  decoded-text search over the whole store (the first search after start,
  and the following ones);
- the first search after a restart: once the lab has parsed the store and
  kept the facts in its facts file (C{/api/v1/info}'s C{SearchFacts} is
  C{Ready}), it is stopped and started again over the same state;
- wait latency: a long-poll C{/api/v1/wait} is open when a message is sent
  with smtplib; the time from smtplib's 250 to the long-poll's answer.

No peer here serves the same API over the same store; the figures are
compared with the issue's goals (a search well under a second, the
long-poll within 50 ms of the 250).
"""

from __future__ import annotations

import base64
import http.client
import json
import smtplib
import statistics
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

from benchmarks.core import Context, Section, Table, Target, fmt
from benchmarks.servers import (
    HOST,
    RunningServer,
    ServerError,
    ServerSpec,
    free_port,
    twistd_command,
)

NAME = "mail_api"
CASES = ["api"]

MESSAGES, QUICK_MESSAGES = 10_000, 200
REQUESTS, QUICK_REQUESTS = 30, 3
WAITS, QUICK_WAITS = 20, 2
USER = "inbox@bench.test"
SEARCH_GOAL = 1.0
RESTART_SEARCH_GOAL = 1.0
READY_TIMEOUT = 600.0
WAIT_GOAL = 0.050


def _message(i: int) -> bytes:
    body = base64.encodebytes(
        f"Hallo Welt, Nachricht {i}: café au lait for order {i:05d}.\n".encode() * 8
    )
    return (
        f"From: =?utf-8?q?J=C3=BCrgen?= <shop@bench.test>\r\n"
        f"To: {USER}\r\n"
        f"Subject: =?utf-8?q?Best=C3=A4tigung_{i:05d}?=\r\n"
        f"Message-ID: <m{i}@bench.test>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode() + body


def _fill(state: Path, count: int) -> None:
    from twisted_netlab.mail.lab.store.maildir import MailStore

    store = MailStore(state / "mail")
    store.ensure_user(USER)
    folder = store.folder(USER)
    for i in range(count):
        folder.deliver(_message(i))


def _other_ports(taken: set[int], count: int) -> list[int]:
    """
    C{count} free ports, none of them in C{taken} (free_port can give the
    same port twice in a row).
    """
    ports: list[int] = []
    while len(ports) < count:
        port = free_port()
        if port not in taken and port not in ports:
            ports.append(port)
    return ports


def _lab(state: Path, smtp: list[int]) -> ServerSpec:
    def argv(port: int, log: Path) -> list[str]:
        smtp_port, imap_port = _other_ports({port}, 2)
        smtp[:] = [smtp_port]
        return [
            *twistd_command(log),
            "netlab-mail",
            f"--state={state}",
            "--domain=bench.test",
            f"--http=tcp:{port}:interface={HOST}",
            f"--smtp=tcp:{smtp_port}:interface={HOST}",
            f"--imap=tcp:{imap_port}:interface={HOST}",
            f"--user={USER}:bench-password",
        ]

    return ServerSpec("netlab-mail --http", "the lab's HTTP API", argv)


def _get(port: int, path: str) -> tuple[float, Any]:
    connection = http.client.HTTPConnection(HOST, port, timeout=60)
    try:
        start = time.perf_counter()
        connection.request("GET", path, headers={"Host": "localhost"})
        response = connection.getresponse()
        body = response.read()
        took = time.perf_counter() - start
        if response.status != 200:
            raise ServerError(f"GET {path}: {response.status} {body[:200]!r}")
        return took, json.loads(body)
    finally:
        connection.close()


def _wait_ready(port: int, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
    """
    Poll C{/api/v1/info} until the lab's search facts are all made and
    written to its facts file; return its C{SearchFacts}.
    """
    deadline = time.monotonic() + timeout
    while True:
        facts = _get(port, "/api/v1/info")[1].get("SearchFacts")
        if facts is None:
            raise ServerError("/api/v1/info has no SearchFacts")
        if facts["Ready"]:
            return dict(facts)
        if time.monotonic() > deadline:
            raise ServerError(f"the search facts were not ready in time: {facts}")
        time.sleep(0.1)


def _first_search(port: int, count: int) -> float:
    took, found = _get(
        port,
        "/api/v1/search?query=" + urllib.parse.quote(f"order {count - 1:05d}"),
    )
    if found["messages_count"] != 1:
        raise ServerError(f"the first search found {found['messages_count']}")
    return took


def _median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1000


def _wait_latency(http_port: int, smtp_port: int, i: int) -> float:
    answered: list[float] = []
    errors: list[str] = []
    query = urllib.parse.quote(f"subject:probe-{i}")

    def wait() -> None:
        try:
            _get(http_port, f"/api/v1/wait?query={query}&timeout=30")
            answered.append(time.perf_counter())
        except (OSError, ServerError) as e:
            errors.append(str(e))

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.2)  # the long-poll is open (nothing matches yet)
    with smtplib.SMTP(HOST, smtp_port, timeout=30) as smtp:
        smtp.sendmail(
            "probe@bench.test",
            [USER],
            f"To: {USER}\r\nSubject: probe-{i}\r\n\r\nprobe\r\n".encode(),
        )
        acknowledged = time.perf_counter()
    waiter.join(30)
    if errors or not answered:
        raise ServerError(f"the long-poll failed: {errors}")
    return answered[0] - acknowledged


def run(context: Context) -> Section:
    if not context.wants("api"):
        return _section({"not_run": "the api case was not asked for"}, [])
    count = QUICK_MESSAGES if context.quick else MESSAGES
    requests = QUICK_REQUESTS if context.quick else REQUESTS
    waits = QUICK_WAITS if context.quick else WAITS
    shm = Path("/dev/shm")
    base = Path(
        tempfile.mkdtemp(prefix="netlab-bench-api-", dir=shm if shm.is_dir() else None)
    )
    state = base / "state"
    context.progress(f"mail api: storing {count:,} messages")
    _fill(state, count)
    smtp: list[int] = []
    failures: list[str] = []
    raw: dict[str, Any] = {"messages": count}
    try:
        server = RunningServer(_lab(state, smtp), context.log_dir)
        try:
            port = server.port
            [smtp_port] = smtp
            first = _first_search(port, count)
            # The warm figures once the lab's thread has parsed and written
            # every message's facts (not while it competes for the CPU).
            kept = _wait_ready(port)
            if not kept["Kept"]:
                raise ServerError(f"the lab keeps no facts file: {kept}")
            lists, gets, searches = [], [], []
            listed = _get(port, "/api/v1/messages")[1]["messages"]
            for r in range(requests):
                lists.append(_get(port, "/api/v1/messages?limit=50")[0])
                gets.append(_get(port, f"/api/v1/message/{listed[r % 50]['ID']}")[0])
                word = urllib.parse.quote(f"café order {(r * 37) % count:05d}")
                took, found = _get(port, f"/api/v1/search?query={word}")
                if found["messages_count"] != 1:
                    raise ServerError(f"a search found {found['messages_count']}")
                searches.append(took)
            latencies = [_wait_latency(port, smtp_port, i) for i in range(waits)]
            _wait_ready(port)  # the probes' facts too
            raw.update(
                first_search_ms=first * 1000,
                list_ms=_median_ms(lists),
                get_ms=_median_ms(gets),
                search_ms=_median_ms(searches),
                wait_ms=_median_ms(latencies),
                wait_max_ms=max(latencies) * 1000,
                rss_mb=server.rss_bytes() / 1e6,
            )
            context.progress(
                "mail api: list {list_ms:.1f} ms, get {get_ms:.1f} ms, search "
                "{search_ms:.1f} ms (first {first_search_ms:.0f}), 250 -> "
                "long-poll {wait_ms:.1f} ms".format(**raw)
            )
        finally:
            server.stop()
        context.progress("mail api: the lab again, over the store it has parsed")
        server = RunningServer(_lab(state, smtp), context.log_dir)
        try:
            again = _first_search(server.port, count)
            loaded = _wait_ready(server.port)
            raw.update(
                restart_search_ms=again * 1000,
                restart_loaded=loaded["Loaded"],
                restart_parsed=loaded["Parsed"],
            )
            context.progress(
                "mail api: first search after a restart {restart_search_ms:.0f} ms "
                "({restart_loaded} facts loaded, {restart_parsed} parsed)".format(**raw)
            )
        finally:
            server.stop()
    except (ServerError, OSError, KeyError, ValueError) as e:
        failures.append(f"mail api: {e}")
    finally:
        import shutil

        shutil.rmtree(base, ignore_errors=True)
    return _section(raw, failures)


def _section(raw: dict[str, Any], failures: list[str]) -> Section:
    if "not_run" in raw:
        return Section(
            NAME,
            [
                Table(
                    "HTTP API: not run", ["benchmark", "why"], [["api", raw["not_run"]]]
                )
            ],
            [],
            [],
            raw,
        )
    rows = [
        [name, fmt(raw.get(key), 1)]
        for name, key in [
            ("list, newest 50", "list_ms"),
            ("get one message", "get_ms"),
            ("decoded search, whole store", "search_ms"),
            ("decoded search, first after start", "first_search_ms"),
            ("decoded search, first after a restart", "restart_search_ms"),
            ("smtplib 250 -> long-poll answer", "wait_ms"),
            ("  the slowest of those", "wait_max_ms"),
        ]
    ]
    rows.append(["server memory (RSS, MB)", fmt(raw.get("rss_mb"), 0)])
    count = raw.get("messages", 0)
    search = raw.get("search_ms")
    wait = raw.get("wait_ms")
    restart = raw.get("restart_search_ms")
    targets = [
        Target(
            f"decoded search over {count:,} messages",
            f"< {SEARCH_GOAL * 1000:.0f} ms",
            search,
            search is not None and search < SEARCH_GOAL * 1000,
        ),
        Target(
            "first decoded search after a restart",
            f"< {RESTART_SEARCH_GOAL * 1000:.0f} ms",
            restart,
            restart is not None and restart < RESTART_SEARCH_GOAL * 1000,
        ),
        Target(
            "long-poll answer after the 250",
            f"< {WAIT_GOAL * 1000:.0f} ms",
            wait,
            wait is not None and wait < WAIT_GOAL * 1000,
        ),
    ]
    return Section(
        NAME,
        [
            Table(
                f"HTTP API over {count:,} messages (medians, ms)",
                ["request", "ms"],
                rows,
            )
        ],
        targets,
        [],
        raw,
        failures,
    )


__all__ = ["CASES", "NAME", "run"]
