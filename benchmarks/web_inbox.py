"""
The web inbox in a real browser (Debian's Chromium, driven by Playwright):
the lab's page (C{twistd netlab-mail --http}) against MailDev 3's web UI
(npm C{maildev}, C{tests/interop/node}) over the same 10,000 messages.

For each, in every round:
- first render: from navigation in a fresh browser context (cold cache) to
  the first message row shown;
- transferred: the bytes the page load fetched (navigation and every
  resource finished by then, headers included; an event stream or web socket
  that stays open is not counted);
- arrival: with the page open, from smtplib's 250 to the new row in the
  page's DOM (a MutationObserver's clock; the median of a few messages).

The lab's mailbox is filled through the store (as SMTP would have delivered
it) and MailDev's by its own restore of C{.eml} files (--mail-directory);
both on tmpfs when there is one.
"""

from __future__ import annotations

import shutil
import smtplib
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from email.utils import formatdate
from pathlib import Path
from typing import Any

from benchmarks.core import Context, Panel, Section, Table, Target, fmt, median
from benchmarks.servers import HOST, free_port

NAME = "web_inbox"
CASES = ["first-render"]

NETLAB = "netlab inbox"
MAILDEV = "MailDev 3 UI"
MESSAGES, QUICK_MESSAGES = 10_000, 50
ARRIVALS, QUICK_ARRIVALS = 10, 1
ROOT = Path(__file__).resolve().parent.parent
NODE = ROOT / "tests" / "interop" / "node"
MAILDEV_BIN = NODE / "node_modules" / "maildev" / "dist" / "bin" / "maildev.js"
CHROMIUM = Path("/usr/bin/chromium")
USER, PASSWORD = "lab@bench.test", "bench-password"
SUBJECT = "Message {n} for the benchmark"
STORED_DATE = b"Tue, 01 Dec 2026 08:00:00 +0000"

#: Records when a row with a given text appears: installed in the open page.
_OBSERVE = """(needle) => {
    window.__seen = window.__seen || {};
    const look = () => {
        if (window.__seen[needle]) return;
        if (document.body.textContent.includes(needle)) {
            window.__seen[needle] = performance.timeOrigin + performance.now();
        }
    };
    new MutationObserver(look).observe(document.body, {childList: true, subtree: true,
                                                        characterData: true});
    look();
}"""


def message(n: int) -> bytes:
    return (
        f"From: Sender {n} <sender{n}@example.com>\r\n"
        f"To: {USER}\r\n"
        f"Subject: {SUBJECT.format(n=n)}\r\n"
        f"Date: {STORED_DATE.decode()}\r\n"
        f"Message-ID: <{n}@bench.example>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"Body of message {n}: a few lines of text, as a notification would have.\r\n"
        "Thanks for using the benchmark.\r\n"
    ).encode()


def _wait_http(url: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


@contextmanager
def _process(argv: list[str], log: Path, cwd: Path | None = None) -> Iterator[None]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
        try:
            yield
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


class Peer:
    """
    A web inbox under test: how to start it over C{count} stored messages,
    its page's URL (and a URL that answers once it is up), and how to send
    it one more message.
    """

    name: str
    url: str
    ready: str

    def serve(self, base: Path, count: int, log_dir: Path) -> Any:
        raise NotImplementedError

    def send(self, raw: bytes) -> float:
        """
        Send C{raw} by smtplib; the wall clock (ms) at the server's 250.
        """
        raise NotImplementedError


class NetlabInbox(Peer):
    name = NETLAB

    def serve(self, base: Path, count: int, log_dir: Path) -> Any:
        from twisted_netlab.mail.lab.store.maildir import MailStore

        state = base / "netlab"
        store = MailStore(state / "mail")
        store.ensure_user(USER)
        folder = store.folder(USER)
        for n in range(count):
            folder.deliver(message(n))
        self.smtp, http = free_port(), free_port()
        self.ca = state / "tls" / "cert.pem"
        self.url = self.ready = f"http://{HOST}:{http}/"
        twistd = str(Path(sys.executable).with_name("twistd"))
        argv = [
            twistd,
            "-n",
            "--pidfile=",
            "netlab-mail",
            "--state",
            str(state),
            "--domain",
            "bench.test",
            "--user",
            f"{USER}:{PASSWORD}",
            "--smtp",
            f"tcp:{self.smtp}:interface={HOST}",
            "--imap",
            f"tcp:{free_port()}:interface={HOST}",
            "--http",
            f"tcp:{http}:interface={HOST}",
        ]
        return _process(argv, log_dir / "web-netlab.log")

    def send(self, raw: bytes) -> float:
        context = ssl.create_default_context(cafile=str(self.ca))
        with smtplib.SMTP(HOST, self.smtp, timeout=30) as client:
            client.starttls(context=context)
            client.sendmail("sender@example.com", [USER], raw)
            return time.time() * 1000


class MailDevInbox(Peer):
    name = MAILDEV

    def serve(self, base: Path, count: int, log_dir: Path) -> Any:
        directory = base / "maildev"
        directory.mkdir()
        for n in range(count):
            (directory / f"{n:05d}.eml").write_bytes(message(n))
        self.smtp, web = free_port(), free_port()
        self.url = f"http://{HOST}:{web}/"
        self.ready = f"{self.url}api/healthz"
        argv = [
            "node",
            str(MAILDEV_BIN),
            "-s",
            str(self.smtp),
            "-w",
            str(web),
            "--ip",
            HOST,
            "--web-ip",
            HOST,
            "--mail-directory",
            str(directory),
        ]
        return _process(argv, log_dir / "web-maildev.log", cwd=NODE)

    def send(self, raw: bytes) -> float:
        with smtplib.SMTP(HOST, self.smtp, timeout=30) as client:
            client.sendmail("sender@example.com", [USER], raw)
            return time.time() * 1000


def _first_render(browser: Any, peer: Peer) -> dict[str, float]:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        started = time.perf_counter()
        page.goto(peer.url, wait_until="commit")
        page.get_by_text("for the benchmark").first.wait_for(timeout=120_000)
        seconds = time.perf_counter() - started
        page.wait_for_timeout(500)  # what the first render still fetches
        transferred = page.evaluate(
            "performance.getEntriesByType('navigation')"
            ".concat(performance.getEntriesByType('resource'))"
            ".reduce((sum, e) => sum + e.transferSize, 0)"
        )
        return {"first_render_ms": seconds * 1000, "transferred_bytes": transferred}
    finally:
        context.close()


def _arrivals(browser: Any, peer: Peer, count: int, round_: int) -> float | None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    try:
        page = context.new_page()
        page.goto(peer.url)
        page.get_by_text("for the benchmark").first.wait_for(timeout=120_000)
        page.wait_for_timeout(1000)  # its live connection is up
        delays = []
        for k in range(count):
            needle = f"arrival probe {round_}-{k} "
            page.evaluate(_OBSERVE, needle)
            # Sent now (MailDev sorts by the Date header), with the probe's
            # text in its subject.
            raw = (
                message(10**6 + k)
                .replace(b"Subject: ", f"Subject: {needle}".encode(), 1)
                .replace(STORED_DATE, formatdate(usegmt=True).encode(), 1)
            )
            accepted = peer.send(raw)
            deadline = time.monotonic() + 30
            seen = None
            while seen is None and time.monotonic() < deadline:
                seen = page.evaluate("(n) => (window.__seen || {})[n] || null", needle)
                if seen is None:
                    page.wait_for_timeout(5)
            if seen is None:
                return None
            delays.append(max(0.0, seen - accepted))
        return statistics.median(delays)
    finally:
        context.close()


def _not_run(reason: str) -> Section:
    return Section(
        NAME,
        [Table("Web inbox: not run", ["benchmark", "why"], [["web_inbox", reason]])],
        [],
        [],
        {"not_run": reason},
    )


def run(context: Context) -> Section:
    if not CHROMIUM.exists():
        return _not_run(f"Debian's chromium is not installed ({CHROMIUM})")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return _not_run("playwright is not installed (pip install -e '.[test]')")
    count = QUICK_MESSAGES if context.quick else MESSAGES
    arrivals = QUICK_ARRIVALS if context.quick else ARRIVALS
    peers: list[Peer] = [NetlabInbox()]
    notes: list[str] = []
    if MAILDEV_BIN.exists() and shutil.which("node"):
        peers.append(MailDevInbox())
    else:
        notes.append(
            "MailDev not measured: npm ci --prefix tests/interop/node has not run"
        )
    shm = Path("/dev/shm")
    base = Path(
        tempfile.mkdtemp(prefix="netlab-bench-web-", dir=shm if shm.is_dir() else None)
    )
    runs: list[dict[str, Any]] = []
    failures: list[str] = []
    try:
        with sync_playwright() as driver:
            browser = driver.chromium.launch(
                executable_path=str(CHROMIUM), args=["--no-sandbox"]
            )
            for peer in peers:
                try:
                    with peer.serve(base, count, context.log_dir):
                        _wait_http(peer.ready)
                        for round_ in range(context.repeats):
                            record: dict[str, Any] = {
                                "server": peer.name,
                                "round": round_,
                            }
                            record.update(_first_render(browser, peer))
                            record["arrival_ms"] = _arrivals(
                                browser, peer, arrivals, round_
                            )
                            runs.append(record)
                            context.progress(_describe(record, count))
                except Exception as e:  # a peer that fails is reported, not fatal
                    failures.append(f"{peer.name}: {e}".splitlines()[0])
                    context.progress(f"web inbox {peer.name} FAILED: {e}")
            browser.close()
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return _section(peers, runs, count, notes, failures)


def _describe(record: dict[str, Any], count: int) -> str:
    arrival = record["arrival_ms"]
    kib = record["transferred_bytes"] / 1024
    return (
        f"web inbox {record['server']:<13} {count:,} messages: first render "
        f"{record['first_render_ms']:7.0f} ms, {kib:6.0f} kB,"
        f" 250 -> row {'-' if arrival is None else f'{arrival:.0f} ms'}"
    )


def _section(
    peers: list[Peer],
    runs: list[dict[str, Any]],
    count: int,
    notes: list[str],
    failures: list[str],
) -> Section:
    def figure(name: str, key: str) -> float | None:
        return median(r[key] for r in runs if r["server"] == name)

    names = [p.name for p in peers]
    rows = []
    for name in names:
        transferred = figure(name, "transferred_bytes")
        rows.append(
            [
                name,
                fmt(figure(name, "first_render_ms")),
                "-" if transferred is None else fmt(transferred / 1024),
                fmt(figure(name, "arrival_ms"), 1),
            ]
        )
    columns = ["page", "first render (ms)", "transferred (kB)", "250 -> row (ms)"]
    tables = [Table(f"Web inbox, {count:,} messages stored", columns, rows)]
    if notes:
        tables.append(Table("Web inbox: notes", ["note"], [[n] for n in notes]))
    first = figure(NETLAB, "first_render_ms")
    arrival = figure(NETLAB, "arrival_ms")
    targets = [
        Target(
            "web inbox: 250 -> row shown",
            "< 1000 ms",
            arrival,
            arrival is not None and arrival < 1000,
        ),
    ]
    maildev_first = figure(MAILDEV, "first_render_ms")
    if first is not None and maildev_first is not None:
        targets.append(
            Target(
                "web inbox first render vs MailDev 3",
                "no slower",
                first / maildev_first,
                first <= maildev_first,
            )
        )
    panels = [
        Panel(
            "Web inbox: first render",
            "ms",
            [f"{count:,} messages"],
            {name: [figure(name, "first_render_ms")] for name in names},
            highlight=NETLAB,
        ),
        Panel(
            "Web inbox: SMTP 250 -> row",
            "ms",
            ["open page"],
            {name: [figure(name, "arrival_ms")] for name in names},
            highlight=NETLAB,
        ),
    ]
    return Section(
        NAME,
        tables,
        targets,
        panels,
        {"messages": count, "runs": runs, "notes": notes},
        failures,
    )
