"""
Client programs run to completion and timed (the mail benchmarks' clients are
whole programs: ``netlab fetch``, mbsync, imaplib scripts), the CPU time of a
server made of several processes (Dovecot), and a link with latency in front
of a server (L{DelayLink}).
"""

from __future__ import annotations

import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.servers import HOST, PEERS, free_port

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class ClientError(Exception):
    """
    A client program failed, or did not do what it was asked.
    """


@dataclass(frozen=True)
class Finished:
    """
    A client program's run: wall-clock seconds from start to exit, its CPU
    seconds (user + system, its children included), exit status and output.
    """

    seconds: float
    cpu: float
    returncode: int
    stdout: str
    stderr: str

    def check(self, what: str) -> Finished:
        """
        C{self}, or L{ClientError} if the program failed.
        """
        if self.returncode != 0:
            tail = (self.stderr.strip() or self.stdout.strip())[-600:]
            raise ClientError(f"{what} exited with status {self.returncode}: {tail}")
        return self


def run_client(
    argv: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float = 600.0,
) -> Finished:
    """
    Run C{argv} to completion; time it and read its CPU time from C{wait4}
    (so nothing else running here is counted).
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd
        )
        timer = threading.Timer(timeout, proc.kill)
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Finished(
            seconds,
            usage.ru_utime + usage.ru_stime,
            proc.returncode,
            out.read().decode(errors="replace"),
            err.read().decode(errors="replace"),
        )


def group_cpu(pgid: int) -> float:
    """
    CPU seconds used so far by process group C{pgid}: its live members' own
    time, plus what the group leader collected from children it reaped
    (Dovecot's master reaps each session's processes).
    """
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid = int(stat.parent.name)
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, ValueError):
            continue
        if int(fields[2]) != pgid:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime
        if pid == pgid:
            total += int(fields[13]) + int(fields[14])  # cutime, cstime
    return total / _CLOCK_TICKS


def group_settled(pgid: int, names: set[str], timeout: float = 5.0) -> None:
    """
    Wait until no process of group C{pgid} has one of these names (a
    server's per-session processes have exited and been reaped).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        busy = False
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                text = stat.read_text()
            except OSError:
                continue
            name = text[text.find("(") + 1 : text.rfind(")")]
            fields = text.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and name in names:
                busy = True
                break
        if not busy:
            return
        time.sleep(0.01)


class DelayLink:
    """
    C{peers/delay_link.py} in front of C{target_port}: clients that connect
    to L{port} reach the target with C{rtt_ms} milliseconds added to every
    round trip (half each way).
    """

    def __init__(self, target_port: int, rtt_ms: float, log_dir: Path) -> None:
        self.target_port = target_port
        self.rtt_ms = rtt_ms
        self.port = free_port()
        log_dir.mkdir(parents=True, exist_ok=True)
        self._log = (log_dir / f"delay-link-{self.port}.out").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(PEERS / "delay_link.py"),
                str(self.port),
                str(target_port),
                str(rtt_ms / 2),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            self.stop()
            raise ClientError(f"the {rtt_ms:g} ms delay link did not start")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()

    def __enter__(self) -> DelayLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def median_round_trip(exchange: Callable[[], object], count: int = 30) -> float:
    """
    The median time, in milliseconds, of C{count} calls of C{exchange}
    (one request and its answer).
    """
    times = []
    for _ in range(count):
        start = time.perf_counter()
        exchange()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def wait_listening(port: int, timeout: float = 10.0) -> None:
    """
    Wait until something accepts connections on C{port} of 127.0.0.1.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise ClientError(f"nothing listens on port {port}") from None
            time.sleep(0.02)
