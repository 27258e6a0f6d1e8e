"""
The mail lab with real clients: Python's smtplib and imaplib, curl, swaks
and mbsync, over STARTTLS (or implicit TLS) with the lab's certificate
verified.  The lab runs in-process (the C{mail_lab} fixture of
L{twisted_netlab.testing}); every blocking client runs in a thread.
"""

from __future__ import annotations

import imaplib
import re
import shutil
import smtplib
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.threads import deferToThread

from tests.certs import make_server_certificate
from twisted_netlab.mail.lab.service import EPHEMERAL, MailLab

T = TypeVar("T")

ALICE, ALICE_PW = "alice@example.test", "alice-password"
BOB, BOB_PW = "bob@example.test", "bob-password"

MESSAGE = (
    b"From: Sender <sender@example.test>\r\n"
    b"To: Alice <alice@example.test>\r\n"
    b"Subject: lab interop\r\n"
    b"Message-ID: <interop-1@example.test>\r\n"
    b"Date: Fri, 27 Nov 2026 10:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Hello Alice, caf\xc3\xa9 \xe2\x9c\x93\r\n"
    b".a line that starts with a dot\r\n"
    b"\r\n"
    b"trailing spaces   \r\n"
)


def in_thread(f: Callable[..., T], *args: Any) -> Any:
    return deferToThread(f, *args)


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian package: see docs/lab.rst)")
    return path


def client_context(lab: MailLab) -> ssl.SSLContext:
    """
    A verifying client context that trusts only the lab's certificate.
    """
    assert lab.ca_path is not None
    return ssl.create_default_context(cafile=str(lab.ca_path))


def without_received(stored: bytes) -> bytes:
    """
    A stored message without the lab's Received: header (its first three
    lines).
    """
    assert stored.startswith(b"Received: from ")
    return stored.split(b"\r\n", 3)[3]


def smtplib_send(
    lab: MailLab, to: str, message: bytes, user: str = ALICE, password: str = ALICE_PW
) -> tuple[int, bytes]:
    """
    Send with smtplib over verified STARTTLS after AUTH; the DATA reply.
    """
    with smtplib.SMTP("localhost", lab.smtp_port, timeout=30) as smtp:
        smtp.ehlo("client.example.test")
        smtp.starttls(context=client_context(lab))
        smtp.ehlo("client.example.test")
        smtp.login(user, password)
        smtp.mail("sender@example.test")
        code, _ = smtp.rcpt(to)
        assert code == 250
        return smtp.data(message)


def imaplib_fetch_all(
    lab: MailLab, user: str = ALICE, password: str = ALICE_PW
) -> dict[int, bytes]:
    """
    Every message of INBOX by UID, with imaplib over verified STARTTLS.
    """
    with imaplib.IMAP4("localhost", lab.imap_port, timeout=30) as imap:
        assert "LOGINDISABLED" in imap.capabilities
        imap.starttls(ssl_context=client_context(lab))
        imap.login(user, password)
        imap.select("INBOX", readonly=True)
        typ, data = imap.uid("SEARCH", "ALL")
        assert typ == "OK"
        result = {}
        for uid in data[0].split():
            typ, parts = imap.uid("FETCH", uid, "(BODY.PEEK[])")
            assert typ == "OK"
            part = parts[0]
            assert isinstance(part, tuple)
            result[int(uid)] = part[1]
        return result


@pytest_twisted.ensureDeferred
async def test_smtplib_then_imaplib(mail_lab: MailLab) -> None:
    """
    A message sent with smtplib (STARTTLS, AUTH, the lab CA verified) is
    stored before the 250 reply, and reads back byte for byte with imaplib
    (STARTTLS, LOGIN disabled before it): the lab's Received: header, then
    exactly the message sent.
    """
    code, reply = await in_thread(smtplib_send, mail_lab, ALICE, MESSAGE)
    assert (code, reply) == (250, b"2.0.0 Message stored as UID 1")
    [stored] = mail_lab.messages(ALICE)
    assert without_received(stored) == MESSAGE
    fetched = await in_thread(imaplib_fetch_all, mail_lab)
    assert fetched == {1: stored}


@pytest_twisted.ensureDeferred
async def test_smtplib_refusals(mail_lab: MailLab) -> None:
    """
    With real smtplib: no AUTH offered before STARTTLS, a wrong password is
    refused, relaying and unknown users get 550, an oversize SIZE 552.
    """

    def talk() -> None:
        with smtplib.SMTP("localhost", mail_lab.smtp_port, timeout=30) as smtp:
            smtp.ehlo("client.example.test")
            assert not smtp.has_extn("auth")
            assert smtp.has_extn("starttls")
            with pytest.raises(smtplib.SMTPNotSupportedError):
                smtp.login(ALICE, ALICE_PW)
            smtp.starttls(context=client_context(mail_lab))
            smtp.ehlo("client.example.test")
            assert smtp.has_extn("auth")
            with pytest.raises(smtplib.SMTPAuthenticationError):
                smtp.login(ALICE, "wrong")
            smtp.mail("sender@example.test")
            assert smtp.rcpt("someone@elsewhere.test")[0] == 550
            assert smtp.rcpt("nobody@example.test")[0] == 550
            smtp.rset()
            size = int(smtp.esmtp_features["size"])
            code, _ = smtp.mail("sender@example.test", [f"SIZE={size + 1}"])
            assert code == 552

    await in_thread(talk)
    assert mail_lab.messages(ALICE) == []


@pytest_twisted.ensureDeferred
async def test_implicit_tls(tmp_path: Path) -> None:
    """
    With --smtps/--imaps listeners, smtplib's SMTP_SSL and imaplib's
    IMAP4_SSL verify the lab's certificate and log in at once.
    """
    lab = MailLab(
        reactor,
        state=tmp_path / "lab",
        domains=["example.test"],
        users={ALICE: ALICE_PW},
        smtp=[],
        imap=[],
        smtps=[EPHEMERAL],
        imaps=[EPHEMERAL],
    )
    await lab.start()
    try:

        def talk() -> bytes:
            context = client_context(lab)
            with smtplib.SMTP_SSL(
                "localhost", lab.smtps_port, context=context, timeout=30
            ) as smtp:
                smtp.login(ALICE, ALICE_PW)
                smtp.sendmail("sender@example.test", [ALICE], MESSAGE)
            with imaplib.IMAP4_SSL(
                "localhost", lab.imaps_port, ssl_context=context, timeout=30
            ) as imap:
                imap.login(ALICE, ALICE_PW)
                imap.select("INBOX", readonly=True)
                typ, parts = imap.uid("FETCH", "1", "(BODY.PEEK[])")
                assert typ == "OK" and isinstance(parts[0], tuple)
                return parts[0][1]

        fetched = await in_thread(talk)
        assert without_received(fetched) == MESSAGE
        assert lab.messages(ALICE) == [fetched]
    finally:
        await lab.stop()


@pytest_twisted.ensureDeferred
async def test_restart_in_process(tmp_path: Path) -> None:
    """
    A lab stopped and started again in the same process serves again, logins
    included (their thread pool is made anew), and keeps its mail.
    """
    lab = MailLab(
        reactor,
        state=tmp_path / "lab",
        domains=["example.test"],
        users={ALICE: ALICE_PW},
    )
    await lab.start()
    code, _ = await in_thread(smtplib_send, lab, ALICE, MESSAGE)
    assert code == 250
    await lab.stop()
    await lab.start()
    try:
        code, reply = await in_thread(smtplib_send, lab, ALICE, MESSAGE)
        assert (code, reply) == (250, b"2.0.0 Message stored as UID 2")
        assert len(await in_thread(imaplib_fetch_all, lab)) == 2
    finally:
        await lab.stop()


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [need("curl"), "--silent", "--show-error", "--max-time", "30", *args],
        capture_output=True,
        check=False,
    )


@pytest_twisted.ensureDeferred
async def test_curl(mail_lab: MailLab, tmp_path: Path) -> None:
    """
    curl sends with smtp:// and reads back with imap://, both with
    --ssl-reqd (STARTTLS) and the lab's CA: byte for byte.
    """
    need("curl")
    message = tmp_path / "message.eml"
    message.write_bytes(MESSAGE)
    ca = str(mail_lab.ca_path)
    sent = await in_thread(
        curl,
        "--ssl-reqd",
        "--cacert",
        ca,
        "--url",
        f"smtp://localhost:{mail_lab.smtp_port}",
        "--mail-from",
        "sender@example.test",
        "--mail-rcpt",
        BOB,
        "--user",
        f"{BOB}:{BOB_PW}",
        "--upload-file",
        str(message),
    )
    assert sent.returncode == 0, sent.stderr
    [stored] = mail_lab.messages(BOB)
    assert without_received(stored) == MESSAGE
    fetched = await in_thread(
        curl,
        "--ssl-reqd",
        "--cacert",
        ca,
        "--user",
        f"{BOB}:{BOB_PW}",
        f"imap://localhost:{mail_lab.imap_port}/INBOX;UID=1",
    )
    assert fetched.returncode == 0, fetched.stderr
    assert fetched.stdout == stored


@pytest_twisted.ensureDeferred
async def test_curl_refuses_untrusted_lab(mail_lab: MailLab, tmp_path: Path) -> None:
    """
    Trusting another CA instead of the lab's, curl refuses the lab's
    certificate: it is verified, not just present.
    """
    need("curl")
    other = make_server_certificate(tmp_path / "other")
    result = await in_thread(
        curl,
        "--ssl-reqd",
        "--cacert",
        str(other.ca),
        "--user",
        f"{BOB}:{BOB_PW}",
        f"imap://localhost:{mail_lab.imap_port}/INBOX",
    )
    assert result.returncode == 60, result.stderr  # peer certificate not trusted


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
@pytest_twisted.ensureDeferred
async def test_swaks(mail_lab: MailLab, tmp_path: Path, mechanism: str) -> None:
    """
    swaks delivers over STARTTLS (certificate verified against the lab CA)
    after AUTH PLAIN or AUTH LOGIN.
    """
    swaks = need("swaks")
    message = tmp_path / "message.eml"
    # swaks ends the data with CRLF . CRLF itself: give it the message
    # without its last line end.
    message.write_bytes(MESSAGE.removesuffix(b"\r\n"))
    result = await in_thread(
        lambda: subprocess.run(
            [
                swaks,
                "--server",
                "localhost",
                "--port",
                str(mail_lab.smtp_port),
                "--ehlo",
                "client.example.test",
                "--tls",
                "--tls-verify",
                "--tls-ca-path",
                str(mail_lab.ca_path),
                "--auth",
                mechanism,
                "--auth-user",
                ALICE,
                "--auth-password",
                ALICE_PW,
                "--from",
                "sender@example.test",
                "--to",
                BOB,
                "--data",
                str(message),
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "<~  235 " in result.stdout
    assert "<~  250 2.0.0 Message stored as UID 1" in result.stdout
    [stored] = mail_lab.messages(BOB)
    assert without_received(stored) == MESSAGE
    assert b"with ESMTPSA" in stored.split(b"\r\n\r\n")[0]


MBSYNC_CONFIG = """\
IMAPAccount lab
Host localhost
Port {port}
User {user}
Pass {password}
SSLType STARTTLS
CertificateFile {ca}

IMAPStore lab-far
Account lab

MaildirStore lab-near
Path {near}/
Inbox {near}/INBOX

Channel lab
Far :lab-far:
Near :lab-near:
Patterns INBOX
Create Near
Sync All
SyncState *
"""


def _snapshot(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.parent.name in ("cur", "new")
    }


@pytest_twisted.ensureDeferred
async def test_mbsync(mail_lab: MailLab, tmp_path: Path) -> None:
    """
    mbsync (STARTTLS, the lab CA) copies a mailbox in full, byte for byte
    (its Maildir keeps LF line ends, and it adds its X-TUID header); a
    second sync changes nothing on either side.
    """
    mbsync = need("mbsync")
    bodies = [MESSAGE.replace(b"interop-1", f"interop-{n}".encode()) for n in range(3)]
    for body in bodies:
        code, _ = await in_thread(smtplib_send, mail_lab, ALICE, body)
        assert code == 250
    near = tmp_path / "near"
    near.mkdir()
    config = tmp_path / "mbsyncrc"
    config.write_text(
        MBSYNC_CONFIG.format(
            port=mail_lab.imap_port,
            user=ALICE,
            password=ALICE_PW,
            ca=mail_lab.ca_path,
            near=near,
        )
    )

    def sync() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [mbsync, "-c", str(config), "-a"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    first = await in_thread(sync)
    assert first.returncode == 0, first.stdout + first.stderr
    stored = mail_lab.messages(ALICE)
    copied = _snapshot(near / "INBOX")
    # mbsync marks each copy with an X-TUID header (its own bookkeeping).
    assert sorted(re.sub(rb"(?m)^X-TUID: \S+\n", b"", m) for m in copied.values()) == (
        sorted(m.replace(b"\r\n", b"\n") for m in stored)
    )
    server_before = await in_thread(imaplib_flags, mail_lab)

    second = await in_thread(sync)
    assert second.returncode == 0, second.stdout + second.stderr
    assert _snapshot(near / "INBOX") == copied
    assert mail_lab.messages(ALICE) == stored
    assert await in_thread(imaplib_flags, mail_lab) == server_before


def imaplib_flags(lab: MailLab) -> bytes:
    """
    UIDs and flags of every message in alice's INBOX, as the server says.
    """
    with imaplib.IMAP4("localhost", lab.imap_port, timeout=30) as imap:
        imap.starttls(ssl_context=client_context(lab))
        imap.login(ALICE, ALICE_PW)
        imap.select("INBOX", readonly=True)
        typ, data = imap.uid("FETCH", "1:*", "(FLAGS)")
        assert typ == "OK"
        return b"\n".join(d for d in data if isinstance(d, bytes))


class TestFixtureOptions:
    """
    The C{mail_lab_options} fixture chooses the lab's settings.
    """

    @pytest.fixture
    def mail_lab_options(self) -> dict[str, Any]:
        return {
            "domains": ["lab.test"],
            "users": {"carol@lab.test": "carol-pw"},
            "require_auth": True,
        }

    @pytest_twisted.ensureDeferred
    async def test_overridden(self, mail_lab: MailLab) -> None:
        """
        The lab has the overriding fixture's domain, user and settings.
        """
        assert mail_lab.users.addresses() == ["carol@lab.test"]

        def talk() -> int:
            with smtplib.SMTP("localhost", mail_lab.smtp_port, timeout=30) as smtp:
                smtp.starttls(context=client_context(mail_lab))
                smtp.ehlo("client.example.test")
                before = smtp.mail("x@remote.test")[0]
                smtp.login("carol@lab.test", "carol-pw")
                smtp.sendmail("x@remote.test", ["carol@lab.test"], MESSAGE)
                return before

        assert await in_thread(talk) == 530
        [stored] = mail_lab.messages("carol@lab.test")
        assert without_received(stored) == MESSAGE
