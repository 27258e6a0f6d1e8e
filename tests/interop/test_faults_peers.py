"""
Faults against software nobody here wrote: twisted.mail's sendmail()
retrying, aiosmtplib's exceptions, Postfix's smtp-source as a load with
random 451s, and our own C{netlab fetch --new-only} resuming after a drop in
the middle of a batch.  The lab runs in-process (the C{mail_lab} fixture);
blocking clients run in threads; the faults are the lab's (C{lab.faults}).
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import smtplib
import ssl
import subprocess
import sys
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread
from twisted.mail import smtp

from tests.twistd import run_twistd
from twisted_netlab.mail.lab.service import MailLab

ALICE, ALICE_PW = "alice@example.test", "alice-password"


def reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def client_context(lab: MailLab) -> ssl.SSLContext:
    assert lab.ca_path is not None
    return ssl.create_default_context(cafile=str(lab.ca_path))


def message(n: int = 0, size: int = 100) -> bytes:
    return (
        f"From: sender@remote.test\r\nTo: {ALICE}\r\nSubject: fault test {n}\r\n"
        f"X-Seq: {n}\r\n\r\n".encode()
        + b"x" * size
        + b"\r\n"
    )


def test_twistd_bad_fault(tmp_path: Path) -> None:
    """
    twistd netlab-mail with a bad --fault ends with one line naming the
    spec and why, and the usual hint; nothing is made.
    """
    result = run_twistd(
        "netlab-mail",
        "--state",
        "s",
        "--domain",
        "example.test",
        "--fault",
        "rcpt:reply=250 OK",
        cwd=tmp_path,
    )
    assert result.returncode == 1
    first, hint = result.stderr.splitlines()
    assert first == (
        "twistd netlab-mail: --fault rcpt:reply=250 OK: "
        "SMTP reply code 250 is not a 4xx or 5xx code"
    )
    assert hint == "Try 'twistd netlab-mail --help'."
    assert not (tmp_path / "s").exists()


async def _sendmail(lab: MailLab) -> Any:
    return await smtp.sendmail(
        b"localhost",
        b"sender@remote.test",
        [ALICE.encode()],
        message(),
        port=lab.smtp_port,
        reactor=reactor(),
    )


@pytest_twisted.ensureDeferred
async def test_twisted_sendmail_retries_after_451(
    mail_lab: MailLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    twisted.mail's sendmail() (STARTTLS, trusting the lab's certificate
    through SSL_CERT_FILE) retries when a connection fails with a 4xx: the
    first two attempts get 451, the third delivers, and the message is
    stored once.
    """
    monkeypatch.setenv("SSL_CERT_FILE", str(mail_lab.ca_path))
    flaky = mail_lab.faults.add("smtp.connect:reply=451:times=2")
    result = await _sendmail(mail_lab)
    assert result[0] == 1
    assert flaky.hits == 2
    assert len(mail_lab.messages(ALICE)) == 1


@pytest_twisted.ensureDeferred
async def test_twisted_sendmail_gives_up_on_550(
    mail_lab: MailLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    Against a permanent 550 sendmail() gives up after one attempt: at MAIL
    with an SMTPDeliveryError carrying the 550, at RCPT with one naming the
    refused recipient's 550.  Nothing is stored.
    """
    monkeypatch.setenv("SSL_CERT_FILE", str(mail_lab.ca_path))
    with mail_lab.faults.add("mail:reply=550 5.7.1 Not from you") as refuse:
        with pytest.raises(smtp.SMTPDeliveryError) as mail_error:
            await _sendmail(mail_lab)
    assert mail_error.value.code == 550
    assert b"5.7.1 Not from you" in mail_error.value.resp
    assert refuse.hits == 1
    with mail_lab.faults.add("rcpt:reply=550 5.1.1 No such user") as refuse:
        with pytest.raises(smtp.SMTPDeliveryError) as rcpt_error:
            await _sendmail(mail_lab)
    assert b"550 5.1.1 No such user" in bytes(rcpt_error.value.log or b"")
    assert refuse.hits == 1
    assert mail_lab.messages(ALICE) == []


def _aiosmtplib_send(lab: MailLab, timeout: float) -> BaseException | None:
    import aiosmtplib

    mail = EmailMessage()
    mail["From"] = "sender@remote.test"
    mail["To"] = ALICE
    mail["Subject"] = "aiosmtplib"
    mail.set_content("hello")

    async def send() -> None:
        await aiosmtplib.send(
            mail,
            hostname="localhost",
            port=lab.smtp_port,
            start_tls=True,
            tls_context=client_context(lab),
            username=ALICE,
            password=ALICE_PW,
            timeout=timeout,
        )

    try:
        asyncio.run(send())
    except BaseException as e:
        return e
    return None


@pytest_twisted.ensureDeferred
async def test_aiosmtplib_exceptions(mail_lab: MailLab) -> None:
    """
    aiosmtplib raises the exception class each SMTP fault calls for, and
    with the fault gone the same send succeeds.
    """
    import aiosmtplib

    cases = [
        ("smtp.connect:reply=421", aiosmtplib.SMTPConnectResponseError, 1),
        ("smtp.connect:drop", aiosmtplib.SMTPConnectError, 1),
        # EHLO refused, aiosmtplib tries HELO: both hit.
        ("ehlo:reply=554 5.7.1 Not you", aiosmtplib.SMTPHeloError, 2),
        # It tries each mechanism offered (PLAIN, LOGIN): both hit.
        ("auth:reply=535", aiosmtplib.SMTPAuthenticationError, 2),
        ("mail:reply=451", aiosmtplib.SMTPSenderRefused, 1),
        ("rcpt:reply=550 5.1.1 No such user", aiosmtplib.SMTPRecipientsRefused, 1),
        ("data:reply=452", aiosmtplib.SMTPDataError, 1),
        ("message:reply=554", aiosmtplib.SMTPDataError, 1),
        ("message:drop=abort", aiosmtplib.SMTPServerDisconnected, 1),
        ("rcpt:delay=3", aiosmtplib.SMTPTimeoutError, 1),
    ]
    for spec, expected, hits in cases:
        with mail_lab.faults.add(spec) as fault:
            error = await deferToThread(_aiosmtplib_send, mail_lab, 1.5)
        assert isinstance(error, expected), (spec, error)
        assert fault.hits == hits, spec
    assert mail_lab.messages(ALICE) == []
    assert await deferToThread(_aiosmtplib_send, mail_lab, 5) is None
    assert len(mail_lab.messages(ALICE)) == 1


def _smtplib_send(lab: MailLab, n: int) -> None:
    with smtplib.SMTP("localhost", lab.smtp_port, timeout=10) as client:
        client.starttls(context=client_context(lab))
        client.sendmail("sender@remote.test", [ALICE], message(n))


@pytest_twisted.ensureDeferred
async def test_serves_everyone_after_drops(mail_lab: MailLab) -> None:
    """
    Connections dropped at every SMTP stage (closed or reset) leave the
    server serving the next clients; what they were sending is not stored.
    """
    for stage in ("smtp.connect", "ehlo", "mail", "rcpt", "data", "message"):
        for how in ("close", "abort"):
            with mail_lab.faults.add(f"{stage}:drop={how}:times=1") as fault:
                with pytest.raises((smtplib.SMTPException, OSError)):
                    await deferToThread(_smtplib_send, mail_lab, 0)
            assert fault.hits == 1, (stage, how)
    assert mail_lab.messages(ALICE) == []
    for n in range(3):
        await deferToThread(_smtplib_send, mail_lab, n)
    assert len(mail_lab.messages(ALICE)) == 3


@pytest_twisted.ensureDeferred
async def test_smtp_source_with_random_451s(mail_lab: MailLab) -> None:
    """
    Postfix's smtp-source, 10 sessions and 300 messages, against 10% random
    451s after the final dot: every message that got a 250 is stored once
    (by the UID the 250 names), none that got a 451 is.
    """
    tool = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
    if not os.path.exists(tool):
        pytest.skip("smtp-source is not installed (Debian package postfix)")
    fault = mail_lab.faults.add("message:reply=451:p=0.1")
    result = await deferToThread(
        subprocess.run,
        [
            tool,
            "-A",
            "-v",
            "-s",
            "10",
            "-m",
            "300",
            "-f",
            "sender@remote.test",
            "-t",
            ALICE,
            f"127.0.0.1:{mail_lab.smtp_port}",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    stored_uids = [
        int(uid)
        for uid in re.findall(
            r"<<< 250 (?:2\.0\.0 )?Message stored as UID (\d+)", result.stderr
        )
    ]
    refused = len(re.findall(r"<<< 451 ", result.stderr))
    assert len(stored_uids) + refused == 300
    assert refused == fault.hits
    assert 5 <= refused <= 70, refused
    assert len(set(stored_uids)) == len(stored_uids)
    folder_uids = mail_lab.store.folder(ALICE, "INBOX").uids()
    assert sorted(stored_uids) == sorted(folder_uids)


def _netlab_fetch(lab: MailLab, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "twisted_netlab",
            "fetch",
            "--server",
            f"localhost:{lab.imap_port}",
            "--tls",
            "starttls",
            "--cafile",
            str(lab.ca_path),
            "--user",
            ALICE,
            "--password-env",
            "LAB_PW",
            "--save",
            f"maildir:{tmp_path / 'saved'}",
            "--new-only",
            "--timeout",
            "20",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "LAB_PW": ALICE_PW, "XDG_STATE_HOME": str(tmp_path)},
    )


@pytest_twisted.ensureDeferred
async def test_netlab_fetch_resumes_after_a_drop(
    mail_lab: MailLab, tmp_path: Path
) -> None:
    """
    netlab fetch --save maildir:DIR --new-only, cut off in the middle of a
    FETCH literal of its second batch, fails with one line; the rerun saves
    the rest: every message once, none lost, none twice.
    """
    # Batches of at most 8 MiB (83 of these messages), so the cut at 12 MB
    # is in the middle of the second batch.
    count = 200
    for n in range(count):
        mail_lab.store.deliver(ALICE, message(n, size=100_000))
    cut = mail_lab.faults.add("imap.fetch:drop:after-bytes=12000000:times=1")
    first = await deferToThread(_netlab_fetch, mail_lab, tmp_path)
    assert first.returncode != 0
    assert cut.hits == 1
    error_lines = [
        line for line in first.stderr.splitlines() if "netlab fetch:" in line
    ]
    assert error_lines and "Traceback" not in first.stderr, first.stderr
    saved_first = list((tmp_path / "saved").glob("*/*"))
    assert 0 < len(saved_first) < count  # the first batch, not all
    second = await deferToThread(_netlab_fetch, mail_lab, tmp_path)
    assert second.returncode == 0, second.stderr
    files = [p for p in (tmp_path / "saved").glob("*/*") if p.is_file()]
    seqs = sorted(
        int(re.search(rb"X-Seq: (\d+)", p.read_bytes()).group(1))  # type: ignore[union-attr]
        for p in files
    )
    assert seqs == list(range(count))


def test_lab_in_thread_faults() -> None:
    """
    lab_in_thread (for tests that run no reactor) adds and clears faults:
    the next MAIL gets the 451, the one after is accepted.
    """
    from twisted_netlab.testing import lab_in_thread

    with lab_in_thread() as lab:
        fault = lab.add_fault("mail:reply=451 4.3.0 Later:times=1")
        with smtplib.SMTP("127.0.0.1", lab.smtp_port, timeout=10) as client:
            client.ehlo("client.test")
            assert client.mail("a@remote.test") == (451, b"4.3.0 Later")
            assert client.mail("a@remote.test")[0] == 250
        assert fault.hits == 1
        lab.add_fault("smtp.connect:drop")
        lab.clear_faults()
        with smtplib.SMTP("127.0.0.1", lab.smtp_port, timeout=10) as client:
            assert client.noop()[0] == 250
