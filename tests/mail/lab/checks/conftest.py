"""
Real peers for the check tests: Debian's spamd (package spamassassin and
spamd), started once per test session on a free loopback port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

SPAMD_START_SECONDS = 90


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


@pytest.fixture(scope="session")
def spamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """
    A spamd listening on 127.0.0.1, as C{(host, port)}; the tests using it
    skip, saying why, where spamd is not installed.
    """
    search = os.pathsep.join(
        [os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"]
    )
    program = shutil.which("spamd", path=search)
    if program is None:
        pytest.skip(
            "spamd is not installed (Debian: apt-get install spamassassin spamd)"
        )
    directory = tmp_path_factory.mktemp("spamd")
    port = _free_port()
    log = (directory / "spamd.log").open("wb")
    process = subprocess.Popen(
        [
            program,
            f"--listen=127.0.0.1:{port}",
            "--allowed-ips=127.0.0.1",
            "--max-children=2",
            f"--pidfile={directory / 'spamd.pid'}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=directory,
    )
    try:
        deadline = time.monotonic() + SPAMD_START_SECONDS
        while not _pong(port):
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                tail = (directory / "spamd.log").read_text(errors="replace")[-500:]
                pytest.fail(f"spamd did not start on port {port}: {tail}")
            time.sleep(0.25)
        yield "127.0.0.1", port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
