"""
C{--workers N} (L{twisted_netlab.workers}) with the real twistd: workers
start, serve, a killed one is restarted, SIGTERM stops them all.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.twistd import TwistdProcess, twistd

_STARTED = re.compile(r"worker (\d+) started \(pid (\d+)\)")


def worker_pids(server: TwistdProcess) -> dict[int, int]:
    """
    The pid of each worker, from the parent's log (the latest start wins).
    """
    return {int(i): int(pid) for i, pid in _STARTED.findall(server.log)}


def wait_for(condition: object, server: TwistdProcess, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, server.log
        time.sleep(0.05)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    try:
        status = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return status != "Z"


def echo_once(port: int, line: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(line)
        received = b""
        while not received.endswith(b"\n"):
            data = sock.recv(4096)
            if not data:
                break
            received += data
        return received


def test_echo_workers_serve_restart_and_stop(tmp_path: Path) -> None:
    """
    C{twistd netlab-echo --workers 2}: two worker processes answer; one
    killed with SIGKILL is logged and replaced; SIGTERM to twistd stops every
    worker, and twistd shuts down.
    """
    with twistd(
        "netlab-echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--workers",
        "2",
        cwd=tmp_path,
    ) as server:
        port = server.ports[0]
        wait_for(lambda: len(worker_pids(server)) == 2, server)
        server.wait_for_log("worker 1:")
        first = worker_pids(server)
        assert all(alive(pid) for pid in first.values())
        for i in range(20):
            assert echo_once(port, b"line %d\n" % i) == b"S:line %d\n" % i
        os.kill(first[0], signal.SIGKILL)
        wait_for(lambda: worker_pids(server)[0] != first[0], server)
        assert f"worker 0 (pid {first[0]}) ended" in server.log
        assert "restarting" in server.log
        for i in range(20):
            assert echo_once(port, b"after %d\n" % i) == b"S:after %d\n" % i
        pids = worker_pids(server)
        server.process.send_signal(signal.SIGTERM)
        # twistd ends itself with the signal it was stopped by, as usual
        assert server.process.wait(20) in (0, -signal.SIGTERM)
        # twistd waited for every worker to end before it exited
        assert not any(alive(pid) for pid in pids.values()), server.log
        wait_for(lambda: "Server Shut Down." in server.log, server)


def test_hello_workers(tmp_path: Path) -> None:
    """
    C{twistd netlab-hello --workers 2} greets every client.
    """
    with twistd(
        "netlab-hello",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--workers",
        "2",
        cwd=tmp_path,
    ) as server:
        wait_for(lambda: len(worker_pids(server)) == 2, server)
        server.wait_for_log("worker 1:")
        for _ in range(10):
            with socket.create_connection(("127.0.0.1", server.ports[0])) as s:
                s.settimeout(10)
                data = b""
                while chunk := s.recv(4096):
                    data += chunk
            assert data == b"Hello Client! I am a HelloHandler\r\n"


def test_workers_share_max_connections(tmp_path: Path) -> None:
    """
    C{--max-connections} is the whole server's: with 2 workers and a limit
    of 2, at most 2 connections are served at once; a third is closed.
    """
    with twistd(
        "netlab-echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--workers",
        "2",
        "--max-connections",
        "2",
        cwd=tmp_path,
    ) as server:
        wait_for(lambda: len(worker_pids(server)) == 2, server)
        server.wait_for_log("worker 1:")
        port = server.ports[0]
        held: list[socket.socket] = []
        served = 0
        try:
            for _ in range(6):
                # A connection over the limit is aborted at once: the reset
                # can reach the client at connect, send or receive.
                try:
                    s = socket.create_connection(("127.0.0.1", port), timeout=5)
                except ConnectionResetError:
                    continue
                held.append(s)
                try:
                    s.sendall(b"x\n")
                    reply = s.recv(100)
                except (ConnectionResetError, BrokenPipeError, TimeoutError):
                    reply = b""
                if reply.startswith(b"S:x"):
                    served += 1
        finally:
            for s in held:
                s.close()
        assert 1 <= served <= 2, server.log


@pytest.mark.parametrize("plugin", ["netlab-echo", "netlab-hello"])
def test_workers_bad_value(tmp_path: Path, plugin: str) -> None:
    """
    C{--workers 0} is a one-line usage error.
    """
    from tests.twistd import run_twistd

    result = run_twistd(plugin, "--workers", "0", cwd=tmp_path)
    assert result.returncode != 0
    assert "--workers must be" in result.stderr
    assert "Traceback" not in result.stderr


def test_workers_unix_and_ssl(tmp_path: Path) -> None:
    """
    Workers serve C{unix:} and C{ssl:} listeners too (TLS verified by the
    standard library's client); on SIGTERM the socket file is removed once,
    with no error logged.
    """
    import ssl

    from tests.certs import make_server_certificate

    cert = make_server_certificate(tmp_path / "certs")
    path = tmp_path / "echo.sock"
    with twistd(
        "netlab-echo",
        "--listen",
        f"ssl:0:interface=127.0.0.1:privateKey={cert.key}:certKey={cert.cert}",
        "--listen",
        f"unix:{path}",
        "--workers",
        "2",
        cwd=tmp_path,
    ) as server:
        wait_for(lambda: len(worker_pids(server)) == 2, server)
        server.wait_for_log("worker 1:")
        context = ssl.create_default_context(cafile=str(cert.ca))
        for i in range(5):
            with (
                socket.create_connection(("127.0.0.1", server.ports[0])) as raw,
                context.wrap_socket(raw, server_hostname="localhost") as tls,
            ):
                tls.settimeout(10)
                tls.sendall(b"tls %d\n" % i)
                assert tls.recv(100) == b"S:tls %d\n" % i
            with socket.socket(socket.AF_UNIX) as s:
                s.settimeout(10)
                s.connect(str(path))
                s.sendall(b"unix\n")
                assert s.recv(100) == b"S:unix\n"
        server.process.send_signal(signal.SIGTERM)
        server.process.wait(20)
        wait_for(lambda: "Server Shut Down." in server.log, server)
        assert "Unhandled" not in server.log, server.log
        assert "Traceback" not in server.log, server.log
        assert not path.exists()
