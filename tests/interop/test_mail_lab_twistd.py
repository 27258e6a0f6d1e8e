"""
The mail lab as users run it: C{twistd netlab-mail} and C{twistd netlab} in a
subprocess, with real clients (smtplib, imaplib) in this process, including
a SIGKILL in the middle of deliveries and 1,000 messages from 10 concurrent
clients.
"""

from __future__ import annotations

import imaplib
import re
import smtplib
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.twistd import TwistdProcess, run_twistd, twistd

ALICE, ALICE_PW = "alice@example.test", "alice-password"
LOOPBACK = "tcp:0:interface=127.0.0.1"
_LISTENING = re.compile(r"(SMTPS?|IMAPS?)(?: \(implicit TLS\))? on 127\.0\.0\.1:(\d+)")
_TOKEN = re.compile(rb"^X-Test-Token: (\S+)\r$", re.MULTILINE)


def lab_args(state: Path, *more: str) -> list[str]:
    return [
        "netlab-mail",
        "--state",
        str(state),
        "--domain",
        "example.test",
        "--user",
        f"{ALICE}:{ALICE_PW}",
        "--smtp",
        LOOPBACK,
        "--imap",
        LOOPBACK,
        *more,
    ]


def lab_ports(server: TwistdProcess) -> dict[str, int]:
    server.wait_for_log("IMAP on ")
    return {kind.lower(): int(port) for kind, port in _LISTENING.findall(server.log)}


@contextmanager
def mail_lab(state: Path, *more: str) -> Iterator[tuple[TwistdProcess, dict[str, int]]]:
    with twistd(*lab_args(state, *more), ports=2, timeout=60) as server:
        yield server, lab_ports(server)


def make_message(token: str, size: int = 0) -> bytes:
    filler = b"".join(
        b"%06d filler line of the message body\r\n" % n for n in range(size)
    )
    return (
        b"From: sender@example.test\r\n"
        b"To: alice@example.test\r\n"
        b"Subject: message " + token.encode() + b"\r\n"
        b"X-Test-Token: " + token.encode() + b"\r\n"
        b"\r\n" + filler + b"end of " + token.encode() + b"\r\n"
    )


def without_received(stored: bytes) -> bytes:
    assert stored.startswith(b"Received: from ")
    return stored.split(b"\r\n", 3)[3]


def fetch_tokens(imap_port: int, ca: Path) -> tuple[int, dict[int, bytes]]:
    """
    UIDVALIDITY and every message of alice's INBOX by UID (imaplib over
    verified STARTTLS).
    """
    with imaplib.IMAP4("127.0.0.1", imap_port, timeout=60) as imap:
        imap.starttls(ssl_context=ssl.create_default_context(cafile=str(ca)))
        imap.login(ALICE, ALICE_PW)
        typ, _ = imap.select("INBOX", readonly=True)
        assert typ == "OK"
        _, [validity] = imap.response("UIDVALIDITY")
        assert validity is not None
        typ, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[])")
        assert typ == "OK"
        messages: dict[int, bytes] = {}
        for part in data:
            if isinstance(part, tuple):
                uid = re.search(rb"UID (\d+)", part[0])
                assert uid is not None, part[0]
                messages[int(uid.group(1))] = part[1]
        return int(validity), messages


def send_many(
    port: int,
    tokens: list[str],
    acked: dict[int, bytes],
    lock: threading.Lock,
    size: int = 0,
    stop: threading.Event | None = None,
) -> None:
    """
    Send one message per token over one SMTP connection; record each one
    the server acknowledged, by the UID its 250 reply names.
    """
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        smtp.ehlo("client.example.test")
        for token in tokens:
            if stop is not None and stop.is_set():
                return
            message = make_message(token, size)
            smtp.mail("sender@example.test")
            smtp.rcpt(ALICE)
            code, reply = smtp.data(message)
            assert code == 250, reply
            match = re.fullmatch(rb"2.0.0 Message stored as UID (\d+)", reply)
            assert match is not None, reply
            with lock:
                acked[int(match.group(1))] = message


def test_usage_errors(tmp_path: Path) -> None:
    """
    Bad options end twistd netlab-mail with one line (and a hint), exit
    status 1: plaintext logins with a listener off loopback, a missing
    domain.
    """
    for args, message in [
        (
            [
                "--state",
                "s",
                "--domain",
                "example.test",
                "--allow-plaintext-auth",
                "--imap",
                "tcp:1143",
            ],
            "--allow-plaintext-auth needs every listener on loopback; "
            "not on loopback: tcp:1143",
        ),
        (["--state", "s"], "at least one --domain is required"),
    ]:
        result = run_twistd("netlab-mail", *args, cwd=tmp_path)
        assert result.returncode == 1
        first, hint = result.stderr.splitlines()
        assert first == f"twistd netlab-mail: {message}"
        assert hint == "Try 'twistd netlab-mail --help'."
        assert not (tmp_path / "s").exists()


def test_unusable_state_directory(tmp_path: Path) -> None:
    """
    A state directory that cannot be made ends startup with one line and
    exit status 1, no traceback.
    """
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_twistd(*lab_args(blocker / "state"), cwd=tmp_path)
    assert result.returncode == 1
    output = result.stdout + result.stderr
    assert "Traceback" not in output
    assert f"netlab-mail: cannot make the state directory {blocker / 'state'}" in output


def test_port_in_use(tmp_path: Path) -> None:
    """
    An SMTP port already in use ends startup with one line naming the
    endpoint.
    """
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", 0))
        blocker.listen()
        port = blocker.getsockname()[1]
        endpoint = f"tcp:{port}:interface=127.0.0.1"
        result = run_twistd(*lab_args(tmp_path / "state", "--smtp", endpoint))
    output = result.stdout + result.stderr
    assert result.returncode == 1
    assert "Traceback" not in output
    assert f"netlab-mail: cannot listen on '{endpoint}'" in output


def test_first_start_and_restart(tmp_path: Path) -> None:
    """
    The first start makes the certificate (logged with the --cafile to
    use) and serves over verified STARTTLS; a restart keeps the same
    certificate and the mail.
    """
    state = tmp_path / "state"
    with mail_lab(state) as (server, ports):
        assert f"--cafile {state / 'tls' / 'cert.pem'}" in server.log
        pem = (state / "tls" / "cert.pem").read_bytes()
        with smtplib.SMTP("localhost", ports["smtp"], timeout=30) as smtp:
            smtp.starttls(
                context=ssl.create_default_context(
                    cafile=str(state / "tls" / "cert.pem")
                )
            )
            smtp.login(ALICE, ALICE_PW)
            smtp.sendmail("sender@example.test", [ALICE], make_message("restart"))
    with mail_lab(state) as (server, ports):
        assert (state / "tls" / "cert.pem").read_bytes() == pem
        _, messages = fetch_tokens(ports["imap"], state / "tls" / "cert.pem")
        assert [without_received(m) for m in messages.values()] == [
            make_message("restart")
        ]


def test_suite_makes_first_user(tmp_path: Path) -> None:
    """
    C{twistd netlab} with no mail options keeps its state in ./netlab-state,
    serves netlab.test, and on first start makes a user whose address and
    password it logs once; that password works over SMTP and IMAP.  A
    restart makes no other user and logs no password.
    """
    args = [
        "netlab",
        "--hello",
        LOOPBACK,
        "--echo",
        LOOPBACK,
        "--smtp",
        LOOPBACK,
        "--imap",
        LOOPBACK,
        "--pop3",
        LOOPBACK,
        "--http",
        LOOPBACK,
    ]
    with twistd(*args, ports=6, cwd=tmp_path, timeout=60) as server:
        ports = lab_ports(server)
        made = re.findall(
            r"made the mail user (lab@netlab\.test) with password (\S+) ", server.log
        )
        assert len(made) == 1, server.log
        address, password = made[0]
        ca = tmp_path / "netlab-state" / "tls" / "cert.pem"
        with smtplib.SMTP("localhost", ports["smtp"], timeout=30) as smtp:
            smtp.starttls(context=ssl.create_default_context(cafile=str(ca)))
            smtp.login(address, password)
            smtp.sendmail("sender@example.test", [address], make_message("suite"))
        with imaplib.IMAP4("localhost", ports["imap"], timeout=30) as imap:
            imap.starttls(ssl_context=ssl.create_default_context(cafile=str(ca)))
            imap.login(address, password)
            assert imap.select("INBOX")[1] == [b"1"]
    with twistd(*args, ports=6, cwd=tmp_path, timeout=60) as server:
        lab_ports(server)
        assert "made the mail user" not in server.log
        assert password not in server.log


def test_mail_user_command_with_running_lab(tmp_path: Path) -> None:
    """
    C{netlab mail-user} changes the users of a running lab: an added user
    (password from standard input) receives mail and logs in; a removed
    one gets 550.
    """
    state = tmp_path / "state"
    netlab = [sys.executable, "-m", "twisted_netlab", "mail-user"]
    with mail_lab(state) as (_, ports):
        added = subprocess.run(
            [*netlab, "add", "--state", str(state), "Dave@example.test"],
            input="dave-pw\n",
            capture_output=True,
            text=True,
            check=False,
        )
        assert added.returncode == 0, added.stderr
        assert added.stdout == "added dave@example.test\n"
        listed = subprocess.run(
            [*netlab, "list", "--state", str(state)],
            capture_output=True,
            text=True,
            check=True,
        )
        assert listed.stdout == "alice@example.test\ndave@example.test\n"
        with smtplib.SMTP("localhost", ports["smtp"], timeout=30) as smtp:
            smtp.sendmail(
                "sender@example.test", ["dave@example.test"], make_message("d")
            )
        with imaplib.IMAP4("localhost", ports["imap"], timeout=30) as imap:
            imap.starttls(
                ssl_context=ssl.create_default_context(
                    cafile=str(state / "tls" / "cert.pem")
                )
            )
            imap.login("dave@example.test", "dave-pw")
            assert imap.select("INBOX")[1] == [b"1"]
        subprocess.run(
            [*netlab, "remove", "--state", str(state), "dave@example.test"],
            check=True,
            capture_output=True,
        )
        with smtplib.SMTP("localhost", ports["smtp"], timeout=30) as smtp:
            smtp.ehlo("client.example.test")
            smtp.mail("sender@example.test")
            assert smtp.rcpt("dave@example.test")[0] == 550


def test_bad_clients_over_sockets(tmp_path: Path) -> None:
    """
    Garbage, a line far over the limit, and a client that vanishes in the
    middle of DATA: each gets an error or a closed connection, nothing half
    written is stored, and the server goes on serving.
    """
    state = tmp_path / "state"

    def converse(port: int, data: bytes) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.recv(1024)
            sock.sendall(data)
            sock.shutdown(socket.SHUT_WR)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
            return b"".join(chunks)

    with mail_lab(state) as (server, ports):
        port = ports["smtp"]
        replies = converse(port, b"\x00\xff garbage\r\nHELO\r\nQUIT\r\n")
        assert replies.startswith(b"500 5.5.1 Command not recognized\r\n501 "), replies
        replies = converse(port, b"EHLO x\r\n" + b"A" * 100_000 + b"\r\n")
        assert replies.endswith(b"500 5.5.6 Line too long; closing the connection\r\n")
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(
                b"EHLO x\r\nMAIL FROM:<s@x.test>\r\nRCPT TO:<alice@example.test>\r\n"
                b"DATA\r\n"
            )
            replies = b""
            while b"354 " not in replies:
                chunk = sock.recv(4096)
                assert chunk, replies
                replies += chunk
            sock.sendall(b"Subject: cut short\r\n\r\nhalf a mess")
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
            smtp.sendmail("s@x.test", [ALICE], make_message("after"))
        assert server.process.poll() is None
        _, stored = fetch_tokens(ports["imap"], state / "tls" / "cert.pem")
    assert [without_received(m) for m in stored.values()] == [make_message("after")]
    assert list((state / "mail" / ALICE / "tmp").iterdir()) == []


@pytest.mark.slow
def test_sigkill_during_deliveries(tmp_path: Path) -> None:
    """
    SIGKILL while four clients deliver: after a restart every message that
    got its 250 is there under the UID the reply named, intact and once;
    nothing else is there but whole messages that were sent.
    """
    state = tmp_path / "state"
    acked: dict[int, bytes] = {}
    lock = threading.Lock()
    stop = threading.Event()
    errors: list[BaseException] = []
    with mail_lab(state) as (server, ports):

        def client(n: int) -> None:
            try:
                send_many(
                    ports["smtp"],
                    [f"{n}-{i}" for i in range(10_000)],
                    acked,
                    lock,
                    size=200,
                    stop=stop,
                )
            except (smtplib.SMTPException, OSError):
                pass  # the server was killed
            except BaseException as e:  # an assertion: report it
                errors.append(e)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120
        while len(acked) < 300 and time.monotonic() < deadline and not errors:
            time.sleep(0.01)
        server.process.kill()
        server.process.wait()
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors
    assert len(acked) >= 300
    with mail_lab(state) as (_, ports):
        _, stored = fetch_tokens(ports["imap"], state / "tls" / "cert.pem")
    for uid, message in acked.items():
        assert uid in stored, f"UID {uid} was acknowledged but is gone"
        assert without_received(stored[uid]) == message
    tokens = [_TOKEN.search(m) for m in stored.values()]
    assert all(tokens)
    names = [t.group(1).decode() for t in tokens if t]
    assert len(names) == len(set(names)), "a message is stored twice"
    for name, message in zip(names, stored.values(), strict=True):
        assert without_received(message) == make_message(name, 200)


@pytest.mark.slow
def test_thousand_messages_ten_clients(tmp_path: Path) -> None:
    """
    1,000 messages from 10 concurrent smtplib clients are all stored, once
    each, under the UIDs their 250 replies named; after a restart UIDVALIDITY
    and every UID are unchanged.
    """
    state = tmp_path / "state"
    acked: dict[int, bytes] = {}
    lock = threading.Lock()
    errors: list[BaseException] = []
    with mail_lab(state) as (_, ports):

        def client(n: int) -> None:
            try:
                send_many(ports["smtp"], [f"{n}-{i}" for i in range(100)], acked, lock)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(10)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(300)
        assert not errors, errors
        assert len(acked) == 1000
        validity, stored = fetch_tokens(ports["imap"], state / "tls" / "cert.pem")
    assert {uid: without_received(m) for uid, m in stored.items()} == acked
    with mail_lab(state) as (_, ports):
        after = fetch_tokens(ports["imap"], state / "tls" / "cert.pem")
    assert after == (validity, stored)


CATCH, CATCH_PW = "catch@example.test", "catch-password"


def fetch_user_tokens(
    imap_port: int, ca: Path, user: str, password: str
) -> dict[int, bytes]:
    """
    Every message of C{user}'s INBOX by UID (imaplib over verified STARTTLS).
    """
    with imaplib.IMAP4("127.0.0.1", imap_port, timeout=60) as imap:
        imap.starttls(ssl_context=ssl.create_default_context(cafile=str(ca)))
        imap.login(user, password)
        typ, _ = imap.select("INBOX", readonly=True)
        assert typ == "OK"
        typ, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[])")
        assert typ == "OK"
        messages: dict[int, bytes] = {}
        for part in data:
            if isinstance(part, tuple):
                uid = re.search(rb"UID (\d+)", part[0])
                assert uid is not None, part[0]
                messages[int(uid.group(1))] = part[1]
        return messages


@pytest.mark.slow
def test_sigkill_during_capture(tmp_path: Path) -> None:
    """
    SIGKILL while four clients send to a capturing lab (a lab user, an
    outside address and a Bcc each): after a restart every message that got
    its 250 is in both mailboxes under the UIDs the reply named, once each,
    with its whole envelope (every RCPT TO, the Bcc too) on disk.
    """
    from twisted_netlab.mail.lab.store.maildir import MailStore

    state = tmp_path / "state"
    acked: dict[tuple[int, int], tuple[str, bytes]] = {}
    lock = threading.Lock()
    stop = threading.Event()
    killing = threading.Event()
    errors: list[BaseException] = []
    # --http: not capture mode's default 8025, which another lab may hold.
    extra = ("--user", f"{CATCH}:{CATCH_PW}", "--catch-all", CATCH, "--http", LOOPBACK)

    def rcpts(token: str) -> list[str]:
        return [ALICE, f"x-{token}@anywhere.example", "bcc@hidden.example"]

    with mail_lab(state, *extra) as (server, ports):

        def client(n: int) -> None:
            try:
                with smtplib.SMTP("127.0.0.1", ports["smtp"], timeout=60) as smtp:
                    smtp.ehlo("client.example.test")
                    for i in range(10_000):
                        if stop.is_set():
                            return
                        token = f"{n}-{i}"
                        message = make_message(token, 200)
                        smtp.mail(f"app-{token}@sender.example")
                        for rcpt in rcpts(token):
                            assert smtp.rcpt(rcpt)[0] == 250
                        code, reply = smtp.data(message)
                        assert code == 250, reply
                        match = re.fullmatch(
                            rb"2.0.0 Message stored as UID (\d+) (\d+)", reply
                        )
                        assert match is not None, reply
                        with lock:
                            uids = (int(match.group(1)), int(match.group(2)))
                            acked[uids] = (token, message)
            except (smtplib.SMTPException, OSError) as e:
                if not killing.is_set():  # before the kill: a real failure
                    errors.append(e)
            except BaseException as e:  # an assertion: report it
                errors.append(e)

        threads = [threading.Thread(target=client, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 120
        while len(acked) < 200 and time.monotonic() < deadline and not errors:
            time.sleep(0.01)
        killing.set()
        server.process.kill()
        server.process.wait()
        stop.set()
        for t in threads:
            t.join(60)
    assert not errors, errors
    assert len(acked) >= 200
    ca = state / "tls" / "cert.pem"
    with mail_lab(state, *extra) as (_, ports):
        alice = fetch_user_tokens(ports["imap"], ca, ALICE, ALICE_PW)
        caught = fetch_user_tokens(ports["imap"], ca, CATCH, CATCH_PW)
    store = MailStore(state / "mail")
    for (alice_uid, catch_uid), (token, message) in acked.items():
        assert without_received(alice[alice_uid]) == message
        # The catch-all's copy is for two recipients: no "for" line.
        assert caught[catch_uid].split(b"\r\n", 2)[2] == message
        for address, uid in ((ALICE, alice_uid), (CATCH, catch_uid)):
            envelope = store.envelope(address, uid)
            assert envelope is not None, (address, uid)
            assert envelope.mail_from == f"app-{token}@sender.example"
            assert envelope.rcpt_to == tuple(rcpts(token))
            assert envelope.client == "127.0.0.1"
    for mailbox in (alice, caught):
        tokens = [_TOKEN.search(m) for m in mailbox.values()]
        names = [t.group(1).decode() for t in tokens if t]
        assert len(names) == len(mailbox) == len(set(names)), "stored twice"
