"""
The message checks (twisted_netlab.mail.lab.checks) on a 100 KB HTML
newsletter: each check's time cold -- its first call in a fresh process,
data loading included (the import is reported apart) -- and repeated (the
median of the calls after it; nothing is cached between calls, the check
recomputes).

Each round runs every check in its own child process
(C{python -m benchmarks.checks CHECK}), so that "cold" is cold.
L{CHECKS} maps a check's name to its measurement; a new check is one more
entry.  Peers, measured in the same round where there is one:

- links: the newsletter's 100 links served by Python's http.server on
  loopback; the peer is urllib's HEAD requests from a thread pool of the
  same size as the check's concurrency cap;
- spam: a Debian spamd started for the run; the peer is Debian's spamc
  (C{spamc -R}, its own process each call, as a user would run it);
- html: no peer here (Mailpit cannot be installed); the goal is 200 ms
  cold.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from benchmarks.core import Context, Panel, Section, Table, Target, fmt, fmt_ratio

NAME = "checks"
CASES = ["html", "links", "spam"]
REPEATED, QUICK_REPEATED = 20, 3
HTML_COLD_GOAL_MS = 200.0
NEWSLETTER_BYTES = 100_000
LINK_CONCURRENCY = 4
SPAMD_START_SECONDS = 90.0
HERE = Path(__file__).resolve().parent

# --- the message -------------------------------------------------------------


def newsletter(link_base: str = "https://news.example.test") -> bytes:
    """
    A 100 KB HTML newsletter as email software sends them: a table layout
    with a <style> block (media queries, a dark-mode query, :hover, a web
    font), inline styles on every cell, images, buttons, Outlook
    conditional comments, 100 distinct links, and a text alternative.
    """
    head = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='color-scheme' content='light dark'><title>News</title><style>"
        "body{margin:0;padding:0;font-family:system-ui,Arial,sans-serif}"
        "table{border-collapse:collapse}"
        ".wrapper{width:100%;max-width:600px;background-color:#fff}"
        ".btn a:hover{background:rgba(0,0,0,.5)}"
        "h1,h2{font-size:2rem;line-height:1.2;color:rgb(10,20,30)}"
        "td.col > p{margin:0 0 1em 0}"
        ".hero{background-image:linear-gradient(#fff,#000);display:flex;gap:8px}"
        "@media (max-width:600px){.col{display:block!important;width:100%!important}}"
        "@media (prefers-color-scheme: dark){body{background:#000;color:#fff}}"
        "@font-face{font-family:X;src:url(https://fonts.example.test/x.woff2)}"
        "</style></head><body style='margin:0'>"
        "<table class='wrapper' width='600' cellpadding='0' cellspacing='0' "
        "border='0' align='center' role='presentation'>"
    )
    rows: list[str] = []
    size = len(head)
    story = 0
    while size < NEWSLETTER_BYTES - 300:
        link = story % 50
        row = (
            "<tr><td class='col' valign='top' style='padding:16px;font-size:16px;"
            "color:#333333'>"
            f"<h2 style='margin:0 0 8px 0'>Story {story}</h2>"
            "<p>Lorem ipsum dolor sit amet, consectetur "
            f"<a href='{link_base}/story/{link}' style='color:#0066cc;"
            "text-decoration:underline'>adipiscing elit</a>, sed do eiusmod.</p>"
            f"<img src='{link_base}/img/{link}.png' width='568' height='200' "
            "alt='' style='display:block;border:0;max-width:100%'>"
            "<!--[if mso]><v:rect style='width:200px'></v:rect><![endif]-->"
            f"<div class='btn'><a href='{link_base}/go/{link}' style='background:"
            "#0066cc;border-radius:4px;padding:8px 16px;display:inline-block'>"
            "Read more</a></div></td></tr>"
        )
        rows.append(row)
        size += len(row)
        story += 1
    html = (
        head
        + "".join(rows)
        + "<tr><td><a href='mailto:news@example.test'>Unsubscribe</a></td></tr>"
        "</table></body></html>"
    )
    message = EmailMessage()
    message["From"] = "News <news@example.test>"
    message["To"] = "reader@example.test"
    message["Subject"] = "This week's news"
    message["Date"] = "Mon, 07 Dec 2026 09:00:00 +0000"
    message["Message-ID"] = "<newsletter-1@example.test>"
    message.set_content(f"This week's news: {link_base}/week\n")
    message.add_alternative(html, subtype="html")
    return message.as_bytes().replace(b"\n", b"\r\n")


# --- what each check's child measures ----------------------------------------


def _timed(call: Callable[[], Any], repeated: int) -> dict[str, Any]:
    start = time.perf_counter()
    call()
    cold = time.perf_counter() - start
    times = []
    for _ in range(repeated):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return {"cold_ms": cold * 1000, "repeated_ms": statistics.median(times) * 1000}


def _deferred_timed(run: Callable[[], Any], repeated: int) -> dict[str, Any]:
    """
    Time a check that returns a Deferred, on a reactor of this process.
    """
    from twisted.internet import task
    from twisted.internet.defer import ensureDeferred

    figures: dict[str, Any] = {}

    async def main(reactor: Any) -> None:
        times = []
        for _ in range(repeated + 1):
            start = time.perf_counter()
            answer = await run()
            times.append(time.perf_counter() - start)
        figures["cold_ms"] = times[0] * 1000
        figures["repeated_ms"] = statistics.median(times[1:]) * 1000
        figures["answer"] = answer

    try:
        task.react(lambda reactor: ensureDeferred(main(reactor)))
    except SystemExit as e:
        if e.code:
            raise
    return figures


def measure_html(raw: bytes, repeated: int, env: dict[str, Any]) -> dict[str, Any]:
    from twisted_netlab.mail.lab.checks.html import html_check

    figures = _timed(lambda: html_check(raw), repeated)
    answer = html_check(raw)
    figures["detail"] = (
        f"{answer['Total']['Nodes']} nodes, {len(answer['Warnings'])} warnings"
    )
    return figures


def measure_links(raw: bytes, repeated: int, env: dict[str, Any]) -> dict[str, Any]:
    from twisted.internet import reactor

    from twisted_netlab.mail.lab.checks.context import CheckSettings
    from twisted_netlab.mail.lab.checks.links import check_links

    settings = CheckSettings(private_links=True, link_concurrency=LINK_CONCURRENCY)
    figures = _deferred_timed(lambda: check_links(raw, reactor, settings), repeated)
    answer = figures.pop("answer")
    figures["detail"] = f"{len(answer['Links'])} links, {answer['Errors']} errors"
    return figures


def measure_spam(raw: bytes, repeated: int, env: dict[str, Any]) -> dict[str, Any]:
    from twisted.internet import reactor

    from twisted_netlab.mail.lab.checks.spam import check_spam

    address = (env["spamd_host"], env["spamd_port"])
    figures = _deferred_timed(lambda: check_spam(raw, reactor, address), repeated)
    answer = figures.pop("answer")
    if answer["Error"]:
        raise RuntimeError(answer["Error"])
    figures["detail"] = f"score {answer['Score']}, {len(answer['Rules'])} rules"
    return figures


#: a check's name -> what its child process measures: (message, repeated
#: calls, environment from the parent) -> figures (cold_ms, repeated_ms,
#: detail)
CHECKS: dict[str, Callable[[bytes, int, dict[str, Any]], dict[str, Any]]] = {
    "html": measure_html,
    "links": measure_links,
    "spam": measure_spam,
}


def child(argv: list[str]) -> int:
    """
    C{python -m benchmarks.checks NAME}: read the message and the
    environment from stdin (JSON), measure, print the figures as JSON.
    """
    (name,) = argv
    request = json.loads(sys.stdin.read())
    raw = request["message"].encode("latin-1")
    start = time.perf_counter()
    importlib.import_module(f"twisted_netlab.mail.lab.checks.{name}")
    imported = (time.perf_counter() - start) * 1000
    figures = CHECKS[name](raw, request["repeated"], request["env"])
    figures["import_ms"] = imported
    print(json.dumps(figures))
    return 0


def _run_child(
    name: str, raw: bytes, repeated: int, env: dict[str, Any]
) -> dict[str, Any]:
    request = json.dumps(
        {"message": raw.decode("latin-1"), "repeated": repeated, "env": env}
    )
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.checks", name],
        input=request,
        capture_output=True,
        text=True,
        cwd=HERE.parent,
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise RuntimeError(f"{name}: {last}")
    figures: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return figures


# --- peers -------------------------------------------------------------------


class _Page(BaseHTTPRequestHandler):
    def do_HEAD(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_HEAD

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def _link_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _urllib_links(urls: list[str], repeated: int) -> dict[str, Any]:
    def head(url: str) -> int:
        request = urllib.request.Request(url, method="HEAD")
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)

    def every() -> None:
        with ThreadPoolExecutor(LINK_CONCURRENCY) as pool:
            list(pool.map(head, urls))

    return _timed(every, repeated)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _pong(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"PING SPAMC/1.5\r\n\r\n")
            return b"PONG" in s.recv(100)
    except OSError:
        return False


def _sbin(program: str) -> str | None:
    search = os.pathsep.join(
        [os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"]
    )
    return shutil.which(program, path=search)


@contextmanager
def _spamd(log_dir: Path) -> Iterator[int]:
    program = _sbin("spamd")
    if program is None:
        raise RuntimeError(
            "spamd is not installed (apt-get install spamassassin spamd)"
        )
    log_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    with tempfile.TemporaryDirectory(prefix="netlab-bench-spamd-") as work:
        with (log_dir / "spamd.log").open("wb") as log:
            process = subprocess.Popen(
                [
                    program,
                    f"--listen=127.0.0.1:{port}",
                    "--allowed-ips=127.0.0.1",
                    "--max-children=2",
                    f"--pidfile={Path(work) / 'spamd.pid'}",
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=work,
            )
            try:
                deadline = time.monotonic() + SPAMD_START_SECONDS
                while not _pong(port):
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise RuntimeError(f"spamd did not start (see {log.name})")
                    time.sleep(0.25)
                yield port
            finally:
                process.terminate()
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _spamc(raw: bytes, port: int, repeated: int) -> dict[str, Any] | None:
    program = shutil.which("spamc")
    if program is None:
        return None
    argv = [program, "-d", "127.0.0.1", "-p", str(port), "-R"]

    def once() -> None:
        subprocess.run(argv, input=raw, capture_output=True, check=True, timeout=60)

    return _timed(once, repeated)


# --- the benchmark -----------------------------------------------------------


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def run(context: Context) -> Section:
    repeated = QUICK_REPEATED if context.quick else REPEATED
    wanted = [name for name in CHECKS if context.wants(name)]
    samples: dict[str, list[dict[str, Any]]] = {name: [] for name in wanted}
    peers: dict[str, list[dict[str, Any]]] = {name: [] for name in wanted}
    peer_names = {
        "links": f"urllib HEAD, {LINK_CONCURRENCY} threads",
        "spam": "spamc -R",
    }
    failures: list[str] = []
    with ExitStack() as stack:
        link_base = stack.enter_context(_link_server())
        port: int | None = None
        if "spam" in wanted:
            try:
                port = stack.enter_context(_spamd(context.log_dir))
            except RuntimeError as e:
                failures.append(f"checks: spam: {e}")
        raw = newsletter(link_base)
        env: dict[str, Any] = {"spamd_host": "127.0.0.1", "spamd_port": port}
        from twisted_netlab.mail.lab.checks.links import message_links

        urls = [u for u in message_links(raw) if u.startswith("http")]
        for round_ in range(context.repeats):
            for name in wanted:
                if name == "spam" and port is None:
                    continue
                context.progress(f"checks: {name}, round {round_ + 1}")
                try:
                    samples[name].append(_run_child(name, raw, repeated, env))
                except (RuntimeError, ValueError, subprocess.TimeoutExpired) as e:
                    failures.append(f"checks: {e}")
                    continue
                if name == "links":
                    peers[name].append(_urllib_links(urls, repeated))
                elif name == "spam" and port is not None:
                    measured = _spamc(raw, port, repeated)
                    if measured is not None:
                        peers[name].append(measured)
    rows: list[list[str]] = []
    raw_figures: dict[str, Any] = {"message_bytes": len(raw), "repeated": repeated}
    targets: list[Target] = []
    cold_series: list[float | None] = []
    repeated_series: list[float | None] = []
    for name in wanted:
        cold = _median([s["cold_ms"] for s in samples[name]])
        again = _median([s["repeated_ms"] for s in samples[name]])
        imported = _median([s["import_ms"] for s in samples[name]])
        peer = _median([p["repeated_ms"] for p in peers[name]])
        ratio = (again / peer) if (again and peer) else None
        detail = samples[name][-1]["detail"] if samples[name] else "-"
        rows.append(
            [
                name,
                fmt(cold, 1),
                fmt(again, 1),
                fmt(imported, 0),
                peer_names.get(name, "-"),
                fmt(peer, 1),
                fmt_ratio(ratio),
                detail,
            ]
        )
        raw_figures[name] = {"samples": samples[name], "peer": peers[name]}
        cold_series.append(cold)
        repeated_series.append(again)
        if name == "html":
            targets.append(
                Target(
                    "html check cold, 100 KB newsletter (ms)",
                    f"<= {HTML_COLD_GOAL_MS:.0f} ms",
                    cold,
                    cold is not None and cold <= HTML_COLD_GOAL_MS,
                )
            )
    table = Table(
        f"Message checks on a {NEWSLETTER_BYTES // 1000} KB HTML newsletter "
        f"({len(raw) // 1000} KB as sent; median of {context.repeats} rounds, "
        f"repeated = median of {repeated} calls)",
        [
            "check",
            "cold ms",
            "repeated ms",
            "import ms",
            "peer",
            "peer ms",
            "ours/peer",
            "answer",
        ],
        rows,
    )
    panel = Panel(
        "Message checks, 100 KB newsletter",
        "milliseconds",
        list(wanted),
        {"cold": cold_series, "repeated": repeated_series},
    )
    return Section(NAME, [table], targets, [panel], raw_figures, failures)


if __name__ == "__main__":
    sys.exit(child(sys.argv[1:]))
