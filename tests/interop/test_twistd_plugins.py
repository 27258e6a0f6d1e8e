"""
The plugins as users run them: C{twistd} from the installed package, in a
subprocess, spoken to with plain sockets and netcat.
"""

from __future__ import annotations

import ast
import contextlib
import re
import shutil
import socket
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from tests.twistd import TWISTD, run_twistd, twistd

ROOT = Path(__file__).resolve().parents[2]


def recv_all(sock: socket.socket, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    chunks: list[bytes] = []
    while True:
        data = sock.recv(65536)
        if not data:
            return b"".join(chunks)
        chunks.append(data)


def recv_until(sock: socket.socket, size: int, timeout: float = 10) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while len(data) < size:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def test_twistd_help_lists_plugins(tmp_path: Path) -> None:
    """
    C{twistd --help}, run outside the source tree, lists the four plugins of
    the installed package.
    """
    result = subprocess.run(
        [TWISTD, "--help"], capture_output=True, text=True, cwd=tmp_path, check=True
    )
    for name in ("netlab-hello", "netlab-echo", "netlab-mail", "netlab "):
        assert f"    {name}" in result.stdout, result.stdout


def test_dropin_shape() -> None:
    """
    The dropin folder has no C{__init__.py} (it would shadow Twisted) and the
    dropin imports nothing but C{Reactor} and C{ServiceMaker} (descriptions
    naming the modules, imported only when used).
    """
    assert not (ROOT / "twisted" / "__init__.py").exists()
    assert not (ROOT / "twisted" / "plugins" / "__init__.py").exists()
    tree = ast.parse((ROOT / "twisted" / "plugins" / "netlab_plugins.py").read_text())
    imports = [n for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)]
    assert [(i.module, [a.name for a in i.names]) for i in imports] == [  # type: ignore[union-attr]
        ("twisted.application.reactors", ["Reactor"]),
        ("twisted.application.service", ["ServiceMaker"]),
    ]


@pytest.mark.slow
def test_wheel_contents(tmp_path: Path) -> None:
    """
    A built wheel carries the dropin and the package, but no C{dropin.cache}
    and no C{twisted/__init__.py}.
    """
    (ROOT / "twisted" / "plugins" / "dropin.cache").write_bytes(b"stale")
    try:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "-q",
                "-w",
                str(tmp_path),
                str(ROOT),
            ],
            check=True,
            capture_output=True,
        )
    finally:
        (ROOT / "twisted" / "plugins" / "dropin.cache").unlink()
    [wheel] = tmp_path.glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "twisted/plugins/netlab_plugins.py" in names
    assert "twisted_netlab/echo.py" in names
    assert not [n for n in names if n.endswith("dropin.cache")]
    assert "twisted/__init__.py" not in names
    assert "twisted/plugins/__init__.py" not in names


def test_hello(tmp_path: Path) -> None:
    """
    C{twistd netlab-hello} greets a plain socket client, closes, and logs
    C{Serving client: 127.0.0.1:PORT}.
    """
    with twistd(
        "netlab-hello", "--listen", "tcp:0:interface=127.0.0.1", cwd=tmp_path
    ) as server:
        with socket.create_connection(("127.0.0.1", server.ports[0])) as sock:
            client_port = sock.getsockname()[1]
            assert recv_all(sock) == b"Hello Client! I am a HelloHandler\r\n"
        server.wait_for_log(f"Serving client: 127.0.0.1:{client_port}")


def test_hello_greeting_option(tmp_path: Path) -> None:
    """
    C{--greeting} changes the line sent.
    """
    with (
        twistd(
            "netlab-hello",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--greeting",
            "Servus",
            cwd=tmp_path,
        ) as server,
        socket.create_connection(("127.0.0.1", server.ports[0])) as sock,
    ):
        assert recv_all(sock) == b"Servus\r\n"


def test_echo_and_two_listeners(tmp_path: Path) -> None:
    """
    C{twistd netlab-echo} with two C{--listen} options answers on both.
    """
    with twistd(
        "netlab-echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        ports=2,
        cwd=tmp_path,
    ) as server:
        for port in server.ports:
            with socket.create_connection(("127.0.0.1", port)) as sock:
                sock.sendall(b"Hi\r\necho !\n")
                assert (
                    recv_until(sock, len(b"S:Hi\r\nS:echo !\n"))
                    == b"S:Hi\r\nS:echo !\n"
                )


def test_echo_unix_socket(tmp_path: Path) -> None:
    """
    C{--listen unix:PATH} serves on a UNIX socket.
    """
    path = tmp_path / "echo.sock"
    with twistd(
        "netlab-echo", "--listen", f"unix:{path}", ports=0, cwd=tmp_path
    ) as server:
        deadline = time.monotonic() + 10
        while not path.exists():
            assert time.monotonic() < deadline, server.log
            time.sleep(0.02)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))
            sock.sendall(b"x\n")
            assert recv_until(sock, len(b"S:x\n")) == b"S:x\n"


@pytest.mark.skipif(shutil.which("nc") is None, reason="netcat (nc) is not installed")
def test_echo_half_close_with_netcat(tmp_path: Path) -> None:
    """
    As in the issue: C{printf 'one\\nabc' | nc -N localhost PORT} prints
    C{S:one} and C{S:abc}: the unterminated last line is answered after the
    client half-closes, then the server closes.
    """
    with twistd(
        "netlab-echo", "--listen", "tcp:0:interface=127.0.0.1", cwd=tmp_path
    ) as server:
        result = subprocess.run(
            ["nc", "-N", "127.0.0.1", str(server.ports[0])],
            input=b"one\nabc",
            capture_output=True,
            timeout=20,
            check=True,
        )
    assert result.stdout == b"S:one\nS:abc"


def test_echo_max_connections(tmp_path: Path) -> None:
    """
    Past C{--max-connections}, a new connection is closed at once and logged;
    the open ones keep working.
    """
    with twistd(
        "netlab-echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--max-connections",
        "2",
        cwd=tmp_path,
    ) as server:
        port = server.ports[0]
        first = socket.create_connection(("127.0.0.1", port))
        second = socket.create_connection(("127.0.0.1", port))
        for sock in (first, second):
            sock.sendall(b"a\n")
            assert recv_until(sock, len(b"S:a\n")) == b"S:a\n"
        # The server may reset the connection before connect() returns (on
        # loopback its RST can come that soon), or before or after the write.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            with socket.create_connection(("127.0.0.1", port)) as third:
                third.sendall(b"b\n")
                assert recv_all(third) == b""
        server.wait_for_log("Refusing 127.0.0.1:")
        first.sendall(b"c\n")
        assert recv_until(first, len(b"S:c\n")) == b"S:c\n"
        first.close()
        second.close()


def test_echo_idle_timeout(tmp_path: Path) -> None:
    """
    With C{--idle-timeout 0.5}, a silent connection is closed by the server.
    """
    with twistd(
        "netlab-echo",
        "--listen",
        "tcp:0:interface=127.0.0.1",
        "--idle-timeout",
        "0.5",
        cwd=tmp_path,
    ) as server:
        with socket.create_connection(("127.0.0.1", server.ports[0])) as sock:
            with contextlib.suppress(ConnectionResetError):
                assert recv_all(sock, timeout=15) == b""
        server.wait_for_log("idle for 0.5 seconds")


def test_echo_long_line(tmp_path: Path) -> None:
    """
    A line over C{--max-line-length} gets one ERROR line, then EOF.
    """
    with (
        twistd(
            "netlab-echo",
            "--listen",
            "tcp:0:interface=127.0.0.1",
            "--max-line-length",
            "16",
            cwd=tmp_path,
        ) as server,
        socket.create_connection(("127.0.0.1", server.ports[0])) as sock,
    ):
        sock.sendall(b"short\n" + b"y" * 40 + b"\n")
        assert recv_all(sock) == (
            b"S:short\nERROR line too long: the limit is 16 bytes; closing\r\n"
        )


def test_echo_non_reading_client_memory_bounded(tmp_path: Path) -> None:
    """
    A client that sends and never reads cannot grow the server: the server
    stops reading from it, so the client soon cannot send any more, and the
    server's resident memory stays within a few MB.  (The textbook
    LineReceiver echo keeps reading and buffers every reply.)
    """
    with twistd(
        "netlab-echo", "--listen", "tcp:0:interface=127.0.0.1", cwd=tmp_path
    ) as server:
        before = server.rss_kib()
        sock = socket.create_connection(("127.0.0.1", server.ports[0]))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        sock.setblocking(False)
        chunk = b"x" * 1000 + b"\n"
        chunk = chunk * 64
        sent = 0
        limit = 256 * 1024 * 1024
        stalled_since = None
        deadline = time.monotonic() + 60
        while sent < limit and time.monotonic() < deadline:
            try:
                sent += sock.send(chunk)
                stalled_since = None
            except BlockingIOError:
                if stalled_since is None:
                    stalled_since = time.monotonic()
                elif time.monotonic() - stalled_since > 2:
                    break
                time.sleep(0.01)
        grown = server.rss_kib() - before
        sock.close()
    assert sent < limit, "the server kept reading from a client that does not read"
    assert grown < 16 * 1024, f"server grew by {grown} KiB after {sent} bytes"


def listening_socket() -> socket.socket:
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    return blocker


@pytest.mark.parametrize("plugin", ["netlab-hello", "netlab-echo"])
def test_port_in_use(tmp_path: Path, plugin: str) -> None:
    """
    A port already in use ends startup with one line naming the plugin and
    the endpoint, exit status 1, and no traceback.
    """
    with listening_socket() as blocker:
        port = blocker.getsockname()[1]
        endpoint = f"tcp:{port}:interface=127.0.0.1"
        result = run_twistd(plugin, "--listen", endpoint, cwd=tmp_path)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    [line] = [x for x in output.splitlines() if "cannot listen" in x]
    assert line.endswith(
        f"{plugin}: cannot listen on '{endpoint}': Couldn't listen on "
        f"127.0.0.1:{port}: [Errno 98] Address already in use."
    )
    assert not (tmp_path / "twistd.pid").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["netlab-echo", "--listen", "bogus:1"],
            "bad endpoint 'bogus:1': Unknown endpoint type: 'bogus'",
        ),
        (
            ["netlab-echo", "--max-line-length", "big"],
            "--max-line-length must be a whole number, not 'big'",
        ),
        (["netlab-hello", "--nonsense"], "option --nonsense not recognized"),
        (["netlab", "--echo", "tcp:x"], "bad endpoint 'tcp:x'"),
    ],
)
def test_bad_options(tmp_path: Path, args: list[str], message: str) -> None:
    """
    Bad options end startup with a one-line error on standard error (plus a
    hint), exit status 1, no usage dump and no traceback.
    """
    result = run_twistd(*args, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stdout == ""
    first, hint = result.stderr.splitlines()
    assert first == f"twistd {args[0]}: {message}" or message in first
    assert first.startswith(f"twistd {args[0]}: ")
    assert hint == f"Try 'twistd {args[0]} --help'."


def test_netlab_suite_plugin(tmp_path: Path) -> None:
    """
    C{twistd netlab} runs hello, echo and the mail lab in one process with
    one log.
    """
    with twistd(
        "netlab",
        "--hello",
        "tcp:0:interface=127.0.0.1",
        "--echo",
        "tcp:0:interface=127.0.0.1",
        "--smtp",
        "tcp:0:interface=127.0.0.1",
        "--imap",
        "tcp:0:interface=127.0.0.1",
        "--pop3",
        "tcp:0:interface=127.0.0.1",
        "--http",
        "tcp:0:interface=127.0.0.1",
        ports=6,
        cwd=tmp_path,
    ) as server:
        hello_port, echo_port, smtp_port, imap_port = server.ports[:4]
        server.wait_for_log("POP3 on ")
        found = re.search(r"POP3 on 127\.0\.0\.1:(\d+)", server.log)
        assert found is not None, server.log
        pop3_port = int(found.group(1))
        with socket.create_connection(("127.0.0.1", smtp_port)) as sock:
            assert recv_until(sock, 4).startswith(b"220 ")
        with socket.create_connection(("127.0.0.1", pop3_port)) as sock:
            assert recv_until(sock, 4).startswith(b"+OK ")
        with socket.create_connection(("127.0.0.1", imap_port)) as sock:
            assert recv_until(sock, 4).startswith(b"* OK")
        with socket.create_connection(("127.0.0.1", hello_port)) as sock:
            assert recv_all(sock) == b"Hello Client! I am a HelloHandler\r\n"
        with socket.create_connection(("127.0.0.1", echo_port)) as sock:
            sock.sendall(b"z\n")
            assert recv_until(sock, len(b"S:z\n")) == b"S:z\n"
