"""
The capturing mail lab with real clients: smtplib, aiosmtplib and swaks send
to any address (To, Cc and Bcc), the lab keeps one copy per mailbox with its
envelope, readable with imaplib; PIPELINING, ENHANCEDSTATUSCODES, SMTPUTF8
and CHUNKING (BDAT) over real sockets.  The lab runs in-process (the
C{mail_lab} fixture); every blocking client runs in a thread.
"""

from __future__ import annotations

import email.message
import smtplib
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from tests.interop.test_mail_lab_clients import (
    ALICE,
    ALICE_PW,
    in_thread,
    need,
)
from twisted_netlab.mail.lab.service import MailLab
from twisted_netlab.testing import DEFAULT_DOMAINS

CATCH, CATCH_PW = "catch@example.test", "catch-password"


@pytest.fixture
def mail_lab_options() -> dict[str, Any]:
    return {
        "domains": DEFAULT_DOMAINS,
        "users": {ALICE: ALICE_PW, CATCH: CATCH_PW},
        "catch_all": CATCH,
        "allow_plaintext_auth": True,
    }


def imap_messages(lab: MailLab, user: str, password: str) -> list[bytes]:
    """
    Every message of C{user}'s INBOX, read with imaplib (plaintext login
    on loopback, which the lab was told to allow).
    """
    import imaplib

    with imaplib.IMAP4("127.0.0.1", lab.imap_port, timeout=30) as imap:
        imap.login(user, password)
        imap.select("INBOX", readonly=True)
        typ, data = imap.uid("FETCH", "1:*", "(BODY.PEEK[])")
        assert typ == "OK"
        return [part[1] for part in data if isinstance(part, tuple)]


def converse(port: int, data: bytes, replies: int) -> bytes:
    """
    Send C{data} in one write on a raw socket; read until C{replies} reply
    lines (final ones, C{NNN } ) have come.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        received = b""
        while not received.endswith(b"\r\n"):
            received += sock.recv(4096)
        sock.sendall(data)
        answer = b""
        while sum(1 for line in answer.split(b"\r\n") if line[3:4] == b" ") < replies:
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
        return answer


@pytest_twisted.ensureDeferred
async def test_to_cc_bcc_captured_once(mail_lab: MailLab) -> None:
    """
    smtplib sends to outside addresses in To and Cc and to a Bcc: the lab
    accepts them all, stores one copy in the catch-all's INBOX (readable
    with imaplib) whose envelope names every recipient, the Bcc included;
    a lab user among the recipients gets a copy of its own.
    """
    message = email.message.EmailMessage()
    message["From"] = "app@sender.example"
    message["To"] = "someone@anywhere.example"
    message["Cc"] = f"other@elsewhere.example, {ALICE}"
    message["Subject"] = "captured"
    message.set_content("hello")
    bcc = "hidden@secret.example"

    def send_all() -> dict[str, Any]:
        with smtplib.SMTP("127.0.0.1", mail_lab.smtp_port, timeout=30) as smtp:
            rcpts = ["someone@anywhere.example", "other@elsewhere.example", ALICE, bcc]
            return smtp.sendmail("app@sender.example", rcpts, message.as_bytes())

    refused = await in_thread(send_all)
    assert refused == {}
    caught = await in_thread(imap_messages, mail_lab, CATCH, CATCH_PW)
    assert len(caught) == 1
    assert b"Subject: captured" in caught[0]
    assert len(await in_thread(imap_messages, mail_lab, ALICE, ALICE_PW)) == 1
    folder = mail_lab.store.folder(CATCH)
    [uid] = folder.uids()
    envelope = folder.envelope(uid)
    assert envelope is not None
    assert envelope.mail_from == "app@sender.example"
    assert envelope.rcpt_to == (
        "someone@anywhere.example",
        "other@elsewhere.example",
        ALICE,
        bcc,
    )
    assert envelope.client == "127.0.0.1"
    assert envelope.tls is False


@pytest_twisted.ensureDeferred
async def test_enhanced_status_codes_smtplib(mail_lab: MailLab) -> None:
    """
    smtplib sees ENHANCEDSTATUSCODES, PIPELINING, SMTPUTF8 and CHUNKING
    offered, and RFC 3463 codes in the replies to MAIL, RCPT and DATA.
    """

    def talk() -> list[tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", mail_lab.smtp_port, timeout=30) as smtp:
            smtp.ehlo("client.example.test")
            for name in ("enhancedstatuscodes", "pipelining", "smtputf8", "chunking"):
                assert smtp.has_extn(name), name
            return [
                smtp.mail("app@sender.example"),
                smtp.rcpt("x@anywhere.example"),
                smtp.data(b"Subject: codes\r\n\r\nbody\r\n"),
                smtp.docmd("BOGUS"),
                smtp.rset(),
            ]

    replies = await in_thread(talk)
    assert [code for code, _ in replies] == [250, 250, 250, 500, 250]
    prefixes = [text.split(b" ")[0] for _, text in replies]
    assert prefixes == [b"2.1.0", b"2.1.5", b"2.0.0", b"5.5.1", b"2.0.0"]


@pytest_twisted.ensureDeferred
async def test_smtputf8_smtplib(mail_lab: MailLab) -> None:
    """
    smtplib sends with SMTPUTF8 to a UTF-8 address: the message is stored
    byte for byte in the catch-all's INBOX, with the addresses in its
    envelope.
    """
    sender = "jos\u00e9@ejemplo.example"
    rcpt = "\u7528\u6237@\u4f8b\u5b50.example"
    data = "Subject: \u00bfqu\u00e9 tal?\r\nTo: {rcpt}\r\n\r\nhola\r\n".encode()

    def send() -> Any:
        with smtplib.SMTP("127.0.0.1", mail_lab.smtp_port, timeout=30) as smtp:
            return smtp.sendmail(sender, [rcpt], data, mail_options=["SMTPUTF8"])

    assert await in_thread(send) == {}
    [stored] = mail_lab.messages(CATCH)
    assert stored.endswith(b"\r\n" + data)
    envelope = mail_lab.store.envelope(CATCH, 1)
    assert envelope is not None
    assert (envelope.mail_from, envelope.rcpt_to) == (sender, (rcpt,))


@pytest_twisted.ensureDeferred
async def test_aiosmtplib(mail_lab: MailLab) -> None:
    """
    aiosmtplib (which pipelines when offered) sends a message with a Bcc;
    its replies carry enhanced codes, and the Bcc is in the envelope.
    """
    aiosmtplib = pytest.importorskip("aiosmtplib")
    message = email.message.EmailMessage()
    message["From"] = "app@sender.example"
    message["To"] = "to@anywhere.example"
    message["Subject"] = "aiosmtplib"
    message.set_content("hi")

    async def send() -> Any:
        return await aiosmtplib.send(
            message,
            hostname="127.0.0.1",
            port=mail_lab.smtp_port,
            recipients=["to@anywhere.example", "bcc@secret.example"],
            start_tls=False,
            use_tls=False,
        )

    import asyncio

    result = await in_thread(lambda: asyncio.run(send()))
    errors, reply = result
    assert errors == {}
    assert reply.startswith("2.0.0 Message stored as UID ")
    envelope = mail_lab.store.envelope(CATCH, 1)
    assert envelope is not None
    assert envelope.rcpt_to == ("to@anywhere.example", "bcc@secret.example")


@pytest_twisted.ensureDeferred
async def test_swaks_pipelining(mail_lab: MailLab, tmp_path: Path) -> None:
    """
    swaks with --pipeline sends MAIL, RCPT and DATA in one go (RFC 2920) to
    three recipients; the replies come in order and the message is stored
    once for the catch-all.
    """
    swaks = need("swaks")
    result = await in_thread(
        lambda: subprocess.run(
            [
                swaks,
                "--server",
                "127.0.0.1",
                "--port",
                str(mail_lab.smtp_port),
                "--ehlo",
                "client.example.test",
                "--pipeline",
                "--from",
                "app@sender.example",
                "--to",
                "a@one.example,b@two.example,c@three.example",
                "--header",
                "Subject: pipelined",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "250-PIPELINING" in result.stdout
    # swaks shows the pipelined commands as one block, then their replies.
    assert " -> MAIL FROM:<app@sender.example>\n -> RCPT TO:<a@one.example>" in (
        result.stdout
    )
    assert "<-  250 2.0.0 Message stored as UID 1" in result.stdout
    [stored] = mail_lab.messages(CATCH)
    assert b"Subject: pipelined" in stored
    envelope = mail_lab.store.envelope(CATCH, 1)
    assert envelope is not None
    assert envelope.rcpt_to == ("a@one.example", "b@two.example", "c@three.example")


@pytest_twisted.ensureDeferred
async def test_pipelined_transcript_raw_socket(mail_lab: MailLab) -> None:
    """
    A whole session written in one go on a raw socket, two messages and
    QUIT, gets every reply in order; both messages are stored.
    """
    wire = (
        b"EHLO client.example.test\r\n"
        b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<x@one.example>\r\nDATA\r\n"
        b"Subject: one\r\n\r\nfirst\r\n.\r\n"
        b"MAIL FROM:<b@sender.example>\r\nRCPT TO:<y@two.example>\r\n"
        b"RCPT TO:<" + ALICE.encode() + b">\r\nDATA\r\n"
        b"Subject: two\r\n\r\nsecond\r\n.\r\nQUIT\r\n"
    )
    answer = await in_thread(converse, mail_lab.smtp_port, wire, 11)
    finals = [line[:3] for line in answer.split(b"\r\n") if line[3:4] == b" "]
    assert finals == [
        b"250",
        b"250",
        b"250",
        b"354",
        b"250",
        b"250",
        b"250",
        b"250",
        b"354",
        b"250",
        b"221",
    ], answer
    assert len(mail_lab.messages(CATCH)) == 2


@pytest_twisted.ensureDeferred
async def test_bdat_raw_socket(mail_lab: MailLab) -> None:
    """
    BDAT chunks over a raw socket, pipelined, holding lines that look like
    commands: stored byte for byte, none of them run; a refused BDAT's
    chunk is also read and dropped, not run.
    """
    first = b"Subject: chunked\r\n\r\nRSET\r\nMAIL FROM:<evil@x>\r\n"
    second = b"QUIT\r\n.\r\nend\r\n"
    wire = (
        b"EHLO client.example.test\r\n"
        b"BDAT 6 LAST\r\nQUIT\r\n"  # refused: no transaction, chunk dropped
        b"MAIL FROM:<a@sender.example>\r\nRCPT TO:<x@one.example>\r\n"
        b"BDAT %d\r\n"
        % len(first)
        + first
        + b"BDAT %d LAST\r\n" % len(second)
        + second
        + b"NOOP\r\n"
    )
    answer = await in_thread(converse, mail_lab.smtp_port, wire, 7)
    finals = [line[:9] for line in answer.split(b"\r\n") if line[3:4] == b" "]
    assert finals[1:] == [
        b"503 5.5.1",
        b"250 2.1.0",
        b"250 2.1.5",
        b"250 2.0.0",
        b"250 2.0.0",
        b"250 2.0.0",
    ], answer
    [stored] = mail_lab.messages(CATCH)
    assert stored.endswith(b"\r\n" + first + second)
