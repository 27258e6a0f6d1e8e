"""
The servers under test, each started as its own process on loopback, and what
the harness reads from them: CPU time, resident memory and open descriptors,
all from /proc/PID.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PEERS = Path(__file__).with_name("peers")
HOST = "127.0.0.1"
#: Every server listens with this backlog, so that connection setup measures
#: the server and not the length of its accept queue (the seed's socketserver
#: default is 5, Twisted's 50, asyncio's 100).
BACKLOG = 1024
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


class ServerError(Exception):
    """
    A server under test did not start, or died.
    """


@dataclass(frozen=True)
class ServerSpec:
    """
    How to start one server: C{argv(port, log_path)} is its command line.
    """

    name: str
    description: str
    argv: Callable[[int, Path], list[str]]


def twistd_command(log: Path) -> list[str]:
    """
    The start of a C{twistd --nodaemon} command line run by this Python
    (no pid file, its log in C{log}): the plugin and its options follow.
    """
    return [
        sys.executable,
        "-c",
        "import sys; sys.argv[0] = 'twistd'; "
        "from twisted.scripts.twistd import run; run()",
        "--nodaemon",
        "--pidfile=",
        f"--logfile={log}",
    ]


def twistd(
    plugin: str, *options: str, env: tuple[str, ...] = ()
) -> Callable[[int, Path], list[str]]:
    """
    The command line of C{twistd -n PLUGIN} (on the reactor the plugin
    installs, netlab's epoll reactor; no pid file) with the given plugin
    options, listening on the port it is given; C{env}:
    C{NAME=value} settings for its environment (run through C{env}, which
    execs, so the process measured is still twistd's).
    """

    def argv(port: int, log: Path) -> list[str]:
        return [
            *(["env", *env] if env else []),
            *twistd_command(log),
            plugin,
            f"--listen=tcp:{port}:interface={HOST}:backlog={BACKLOG}",
            *options,
        ]

    return argv


def peer(script: str) -> Callable[[int, Path], list[str]]:
    """
    The command line of one of the scripts in benchmarks/peers/.
    """

    def argv(port: int, log: Path) -> list[str]:
        return [sys.executable, str(PEERS / script), str(port), str(BACKLOG)]

    return argv


def pin(pid: int, cpus: frozenset[int] | None) -> None:
    """
    Keep process C{pid} (just started, so still one thread; threads it starts
    inherit this) on C{cpus}.
    """
    if cpus:
        os.sched_setaffinity(pid, cpus)


def pinning() -> tuple[frozenset[int], frozenset[int]] | None:
    """
    The CPUs for the servers and for the load generator: one each, apart,
    when this process may use two or more; None otherwise.
    """
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        return None
    return frozenset(allowed[:1]), frozenset(allowed[1:2])


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


class RunningServer:
    """
    One server process, started by L{start}; stop it with L{stop}.
    """

    def __init__(
        self, spec: ServerSpec, log_dir: Path, cpus: frozenset[int] | None = None
    ) -> None:
        self.spec = spec
        self.port = free_port()
        log_dir.mkdir(parents=True, exist_ok=True)
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in spec.name)
        self.log_path = log_dir / f"{stem}-{self.port}.log"
        self.out_path = log_dir / f"{stem}-{self.port}.out"
        self._log = self.out_path.open("wb")
        self.proc = subprocess.Popen(
            spec.argv(self.port, self.log_path),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=log_dir,
        )
        self.pid = self.proc.pid
        try:
            pin(self.pid, cpus)
            self._wait_listening()
            self.base_fds = self.settle()
        except BaseException:
            self.stop()
            raise

    def _wait_listening(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise ServerError(f"{self.spec.name} did not listen on port {self.port}")

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            tail = "".join(
                p.read_text(errors="replace")[-1000:]
                for p in (self.log_path, self.out_path)
                if p.exists()
            )
            raise ServerError(
                f"{self.spec.name} exited with status {self.proc.returncode}:\n{tail}"
            )

    def processes(self) -> list[int]:
        """
        The server's process and its descendants (the workers of
        C{--workers N}), from /proc/PID/task/TID/children.
        """
        found, todo = [], [self.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            try:
                tids = os.listdir(f"/proc/{pid}/task")
            except FileNotFoundError:
                continue
            for tid in tids:
                with contextlib.suppress(FileNotFoundError):
                    with open(f"/proc/{pid}/task/{tid}/children") as f:
                        todo.extend(int(c) for c in f.read().split())
        return found

    def cpu_times(self) -> tuple[float, float]:
        """
        User and system CPU seconds of the whole server: every thread of its
        process and of its descendants (worker processes).
        """
        user = system = 0.0
        for pid in self.processes():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except FileNotFoundError:  # a worker just ended
                continue
            # fields[0] is the state (field 3); utime and stime are fields 14,
            # 15.
            user += int(fields[11]) / _CLOCK_TICKS
            system += int(fields[12]) / _CLOCK_TICKS
        return user, system

    def rss_bytes(self) -> int:
        with open(f"/proc/{self.pid}/statm") as f:
            return int(f.read().split()[1]) * _PAGE

    def set_cpus(self, cpus: frozenset[int]) -> None:
        """
        Move every thread of the server (and of its worker processes) onto
        C{cpus} (threads it starts later inherit the main thread's).
        """
        for pid in self.processes():
            with contextlib.suppress(FileNotFoundError):
                for tid in os.listdir(f"/proc/{pid}/task"):
                    with contextlib.suppress(ProcessLookupError):  # just ended
                        os.sched_setaffinity(int(tid), cpus)

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def settle(self, target: int | None = None, timeout: float = 60.0) -> int:
        """
        Wait until the server's descriptor count stops changing (or, with
        C{target}, reaches it); return the count.
        """
        deadline = time.monotonic() + timeout
        last = -1
        while time.monotonic() < deadline:
            self.check_alive()
            now = self.fd_count()
            if target is not None:
                if now >= target:
                    return now
            elif now == last:
                return now
            last = now
            time.sleep(0.2)
        return self.fd_count()

    def wait_closed(self, timeout: float = 60.0) -> None:
        """
        Wait until the connections of the last run are gone.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.fd_count() > self.base_fds:
            self.check_alive()
            time.sleep(0.05)

    def stable_rss(self, timeout: float = 20.0) -> int:
        """
        The resident set size once two readings half a second apart agree
        within 0.5%.
        """
        deadline = time.monotonic() + timeout
        last = self.rss_bytes()
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = self.rss_bytes()
            if abs(now - last) <= last * 0.005:
                return now
            last = now
        return last

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()

    def __enter__(self) -> RunningServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def raise_file_limit(want: int) -> int:
    """
    Raise this process's (and so its children's) open-file limit towards
    C{want}; return the soft limit now in force.
    """
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            return want
        except (ValueError, OSError):
            want = hard
    if soft == resource.RLIM_INFINITY or soft >= want:
        return want
    resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    return want
