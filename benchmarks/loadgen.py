"""
The compiled load generator (loadgen.c): built at benchmark time into a cache
directory, and run in its three modes.

It is C on one epoll loop so that it costs less CPU per reply than the Python
servers it drives; every run reports its own CPU time so that can be checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

SOURCE = Path(__file__).with_name("loadgen.c")
CFLAGS = ["-O2", "-Wall", "-Wextra", "-std=gnu11"]


class LoadgenError(Exception):
    """
    The load generator could not be built, or a run of it failed.
    """


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(
        os.path.expanduser("~"), ".cache"
    )
    return Path(base) / "twisted_netlab-benchmarks"


def build(cache_dir: Path | None = None) -> Path:
    """
    Compile loadgen.c unless a binary of this exact source is already cached;
    return the binary's path.
    """
    cc = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise LoadgenError("no C compiler found (install gcc, or set CC)")
    source = SOURCE.read_bytes()
    digest = hashlib.sha256(source + " ".join(CFLAGS).encode()).hexdigest()[:16]
    cache = cache_dir or default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    binary = cache / f"loadgen-{digest}"
    if binary.exists():
        return binary
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        out = Path(tmp) / "loadgen"
        done = subprocess.run(
            [cc, *CFLAGS, "-o", str(out), str(SOURCE)],
            capture_output=True,
            text=True,
        )
        if done.returncode != 0:
            raise LoadgenError(f"cannot compile {SOURCE}: {done.stderr.strip()}")
        out.replace(binary)
    return binary


@dataclass
class TimedRun:
    """
    The figures of one measured window of an C{echo} or C{hello} run, with the
    server's CPU time over the same window.
    """

    mode: str
    conns: int
    depth: int
    size: int
    opened: int
    replies: int
    seconds: float
    per_second: float
    p50_us: float
    p99_us: float
    client_cpu_us_per_reply: float
    server_cpu_us_per_reply: float
    server_user_us_per_reply: float
    server_sys_us_per_reply: float
    mismatches: int
    closed_early: int
    connect_errors: int

    @property
    def error(self) -> str | None:
        """
        Why this run does not count, or None.
        """
        if self.mismatches:
            return f"{self.mismatches} replies differed from what was expected"
        if self.closed_early:
            return f"{self.closed_early} connections closed by the server"
        if self.mode == "echo" and self.opened < self.conns:
            return f"only {self.opened} of {self.conns} connections opened"
        if not self.replies:
            return "no replies"
        return None


def run_timed(
    binary: Path,
    mode: str,
    port: int,
    *,
    server_cpu: Callable[[], tuple[float, float]],
    conns: int,
    warmup: float,
    duration: float,
    depth: int = 1,
    size: int = 16,
    prefix: str = "S:",
    expect: str = "",
    timeout: float = 60.0,
    cpus: frozenset[int] | None = None,
) -> TimedRun:
    """
    Run the load generator in C{echo} or C{hello} mode against C{port};
    C{server_cpu} (user and system seconds) is read when the measured window
    opens and closes.
    """
    argv = [
        str(binary),
        mode,
        "--port",
        str(port),
        "--conns",
        str(conns),
        "--depth",
        str(depth),
        "--size",
        str(size),
        "--prefix",
        prefix,
        "--expect",
        expect,
        "--warmup",
        str(warmup),
        "--duration",
        str(duration),
        "--timeout",
        str(timeout),
    ]
    proc = subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    if cpus:
        os.sched_setaffinity(proc.pid, cpus)
    assert proc.stdout is not None
    cpu_start = cpu_end = (0.0, 0.0)
    result: dict[str, Any] | None = None
    try:
        for line in proc.stdout:
            line = line.strip()
            if line == "measuring":
                cpu_start = server_cpu()
            elif line == "done":
                cpu_end = server_cpu()
            elif line.startswith("{"):
                result = json.loads(line)
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    stderr = proc.stderr.read().strip() if proc.stderr else ""
    if proc.returncode != 0 or result is None:
        raise LoadgenError(
            f"load generator {mode} failed (exit {proc.returncode}): {stderr}"
        )
    replies = int(result["replies"])
    user = cpu_end[0] - cpu_start[0]
    system = cpu_end[1] - cpu_start[1]

    def per_reply(seconds: float) -> float:
        return seconds * 1e6 / replies if replies else 0.0

    return TimedRun(
        mode=mode,
        conns=conns,
        depth=depth,
        size=size,
        opened=int(result["opened"]),
        replies=replies,
        seconds=float(result["seconds"]),
        per_second=float(result["per_second"]),
        p50_us=float(result["p50_us"]),
        p99_us=float(result["p99_us"]),
        client_cpu_us_per_reply=float(result["client_cpu_us_per_reply"]),
        server_cpu_us_per_reply=per_reply(user + system),
        server_user_us_per_reply=per_reply(user),
        server_sys_us_per_reply=per_reply(system),
        mismatches=int(result["mismatches"]),
        closed_early=int(result["closed_early"]),
        connect_errors=int(result["connect_errors"]),
    )


class Holder:
    """
    The load generator in C{hold} mode: C{conns} idle connections, kept open
    until L{close}; L{ping} sends one line on each and counts the replies.
    """

    def __init__(
        self,
        binary: Path,
        port: int,
        conns: int,
        *,
        prefix: str = "S:",
        sources: int = 1,
        timeout: float = 60.0,
        cpus: frozenset[int] | None = None,
    ) -> None:
        self.conns = conns
        self._proc = subprocess.Popen(
            [
                str(binary),
                "hold",
                "--port",
                str(port),
                "--conns",
                str(conns),
                "--prefix",
                prefix,
                "--sources",
                str(sources),
                "--timeout",
                str(timeout),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        if cpus:
            os.sched_setaffinity(self._proc.pid, cpus)
        first = self._read()
        self.connected = int(first["connected"])
        self.connect_errors = int(first["connect_errors"])

    def _read(self) -> dict[str, Any]:
        stdout: IO[str] | None = self._proc.stdout
        assert stdout is not None
        line = stdout.readline()
        if not line:
            self._proc.wait()
            err = self._proc.stderr.read().strip() if self._proc.stderr else ""
            raise LoadgenError(
                f"load generator hold failed (exit {self._proc.returncode}): {err}"
            )
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def ping(self) -> int:
        """
        Send one line on every open connection; return how many were answered.
        """
        assert self._proc.stdin is not None
        self._proc.stdin.write("ping\n")
        self._proc.stdin.flush()
        return int(self._read()["answered"])

    def close(self) -> None:
        if self._proc.poll() is None:
            try:
                assert self._proc.stdin is not None
                self._proc.stdin.write("close\n")
                self._proc.stdin.close()
                self._proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self._proc.kill()
                self._proc.wait()
        for stream in (self._proc.stdout, self._proc.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Holder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
