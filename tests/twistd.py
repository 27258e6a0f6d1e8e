"""
Run a twistd plugin from the installed package as a subprocess, for tests.

The server listens on C{tcp:0} (or whatever the test says); the port numbers
are read from twistd's log (C{... starting on PORT}), so tests never race for
a free port.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

TWISTD = str(Path(sys.executable).with_name("twistd"))
_STARTING = re.compile(r"starting on (\d+)")


@dataclass
class TwistdProcess:
    """
    A running C{twistd -n PLUGIN ...}: its process, the ports it announced
    (in order) and everything it logged so far.
    """

    process: subprocess.Popen[str]
    ports: list[int] = field(default_factory=list)
    lines: list[str] = field(default_factory=list)

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def rss_kib(self) -> int:
        """
        The server's resident memory in KiB, from /proc.
        """
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def wait_for_log(self, text: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.log:
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"{text!r} not logged; log:\n{self.log}")
            time.sleep(0.02)


def _read_lines(proc: TwistdProcess) -> None:
    assert proc.process.stdout is not None
    for line in proc.process.stdout:
        proc.lines.append(line)
        match = _STARTING.search(line)
        if match:
            proc.ports.append(int(match.group(1)))


@contextmanager
def twistd(
    *args: str,
    ports: int = 1,
    cwd: Path | None = None,
    timeout: float = 20,
    env: dict[str, str] | None = None,
) -> Iterator[TwistdProcess]:
    """
    Run C{twistd -n --pidfile= ARGS...} (C{env} added to the environment),
    wait until it has announced C{ports} listening ports, and stop it
    (SIGTERM, then SIGKILL) afterwards.
    """
    process = subprocess.Popen(
        [TWISTD, "-n", "--pidfile=", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=cwd,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )
    proc = TwistdProcess(process)
    reader = threading.Thread(target=_read_lines, args=(proc,), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + timeout
        while len(proc.ports) < ports:
            if process.poll() is not None or time.monotonic() > deadline:
                reader.join(2)
                raise AssertionError(
                    f"twistd {' '.join(args)} did not start:\n{proc.log}"
                )
            time.sleep(0.02)
        yield proc
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        reader.join(5)


def run_twistd(
    *args: str, timeout: float = 30, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """
    Run twistd to completion (for startup errors), capturing its output.
    """
    return subprocess.run(
        [TWISTD, "-n", "--pidfile=", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        check=False,
    )
