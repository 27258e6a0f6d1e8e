"""
The lab's POP3 server on a real loopback socket, in the reactor run by
pytest-twisted: a client that pipelines thousands of commands without
reading, and one that disconnects in the middle of a RETR.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.threads import deferToThread

from twisted_netlab.mail.lab.pop3 import pop3_lines
from twisted_netlab.mail.lab.service import EPHEMERAL, MailLab

ALICE, ALICE_PW = "alice@example.test", "alice-password"
BIG = b"Subject: big\r\n\r\n" + b".a dotted line, long enough to matter\r\n" * 20_000


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[MailLab]:
    lab = MailLab(
        reactor,
        state=tmp_path / "lab",
        domains=["example.test"],
        users={ALICE: ALICE_PW},
        smtp=[],
        imap=[],
        pop3=[EPHEMERAL],
        allow_plaintext_auth=True,
    )
    pytest_twisted.blockon(lab.start())
    lab.store.deliver(ALICE, BIG)
    try:
        yield lab
    finally:
        pytest_twisted.blockon(lab.stop())


def read_until_closed(sock: socket.socket) -> bytes:
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


@pytest_twisted.ensureDeferred
async def test_pipelined_flood(lab: MailLab) -> None:
    """
    Thousands of commands sent at once, 20 RETRs of a 0.8 MB message among
    them, all written before the client reads a byte: every one is
    answered, in order, and the RETRs are intact.
    """
    commands = b"USER %s\r\nPASS %s\r\n" % (ALICE.encode(), ALICE_PW.encode())
    commands += (b"RETR 1\r\n" + b"NOOP\r\n" * 200) * 20 + b"QUIT\r\n"

    def talk() -> bytes:
        with socket.create_connection(("127.0.0.1", lab.pop3_port), timeout=60) as sock:
            sender = threading.Thread(target=sock.sendall, args=(commands,))
            sender.start()
            data = read_until_closed(sock)
            sender.join(60)
            return data

    data = await deferToThread(talk)
    retr = b"+OK %d octets\r\n" % len(BIG) + pop3_lines(BIG) + b".\r\n"
    expected = (
        b"+OK netlab mail lab POP3 ready\r\n+OK Send PASS\r\n"
        b"+OK Logged in: 1 messages (%d octets)\r\n"
        % len(BIG)
        + (retr + b"+OK\r\n" * 200) * 20
        + b"+OK Bye: 0 messages deleted\r\n"
    )
    assert len(data) == len(expected)
    assert data == expected


@pytest_twisted.ensureDeferred
async def test_disconnect_during_retr(lab: MailLab) -> None:
    """
    A client that marks a message deleted and leaves (a reset) in the
    middle of a RETR too large for the socket buffers, without QUIT,
    deletes nothing; the server goes on serving.
    """
    small = b"Subject: small\r\n\r\nsmall\r\n"
    huge = b"Subject: huge\r\n\r\n" + b"0123456789abcdef" * 1_000_000 + b"\r\n"
    lab.store.deliver(ALICE, small)
    lab.store.deliver(ALICE, huge)
    login = b"USER %s\r\nPASS %s\r\n" % (ALICE.encode(), ALICE_PW.encode())

    def leave_early() -> bytes:
        with socket.create_connection(("127.0.0.1", lab.pop3_port), timeout=60) as sock:
            sock.sendall(login + b"DELE 2\r\nRETR 3\r\n")
            received = b""
            while b"octets\r\n" not in received:
                received += sock.recv(100)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
            return received

    def stat() -> bytes:
        with socket.create_connection(("127.0.0.1", lab.pop3_port), timeout=60) as sock:
            sock.sendall(login + b"STAT\r\nQUIT\r\n")
            return read_until_closed(sock)

    assert b"+OK Message 2 deleted\r\n" in await deferToThread(leave_early)
    total = len(BIG) + len(small) + len(huge)
    assert b"\r\n+OK 3 %d\r\n" % total in await deferToThread(stat)
    assert lab.messages(ALICE) == [BIG, small, huge]
