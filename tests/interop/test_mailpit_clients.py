"""
Mailpit's own API clients, unchanged, against the lab's HTTP API: the npm
C{mailpit-api} package (driven by a small node script) and the PyPI
C{mailpit-api-client} package; and curl.
"""

from __future__ import annotations

import json
import shutil
import smtplib
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from twisted_netlab.mail.lab.service import MailLab

NODE_DIR = Path(__file__).parent / "node"
ALICE = "alice@example.test"
BOB = "bob@example.test"

GREETING = (
    b"From: =?utf-8?q?J=C3=BCrgen?= <jurgen@example.test>\r\n"
    b"To: bob@example.test\r\n"
    b"Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n"
    b"Message-ID: <greeting@example.test>\r\n"
    b"Date: Tue, 01 Dec 2026 09:00:00 +0000\r\n"
    # The PyPI client's Headers model insists on a Delivered-To header.
    b"Delivered-To: bob@example.test\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\nHallo K=C3=B6ln\r\n"
    b"--b\r\nContent-Type: text/plain; name=notes.txt\r\n"
    b"Content-Disposition: attachment; filename=notes.txt\r\n\r\nthe notes\r\n"
    b"--b--\r\n"
)
OTHER = (
    b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: other\r\n\r\nx\r\n"
)


def send(lab: MailLab, message: bytes) -> None:
    """Send with smtplib over STARTTLS, verifying the lab's certificate."""
    context = ssl.create_default_context(cafile=str(lab.ca_path))
    with smtplib.SMTP("localhost", lab.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=context)
        smtp.login(ALICE, "alice-password")
        smtp.sendmail(ALICE, [BOB], message)


def base_url(lab: MailLab) -> str:
    return f"http://127.0.0.1:{lab.http_port}"


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.skipif(
    not (NODE_DIR / "node_modules" / "mailpit-api").is_dir(),
    reason="run: npm ci --prefix tests/interop/node",
)
@pytest_twisted.ensureDeferred
async def test_npm_mailpit_api(mail_lab: MailLab) -> None:
    """
    The npm mailpit-api client lists, searches (decoded subject), gets,
    fetches raw, headers and an attachment, sets read status, deletes by
    search and by ID against the lab, unchanged.
    """
    await deferToThread(send, mail_lab, GREETING)
    await deferToThread(send, mail_lab, OTHER)
    [stored, _] = mail_lab.store.messages(BOB)

    def run() -> dict[str, Any]:
        done = subprocess.run(
            ["node", str(NODE_DIR / "mailpit_client.mjs"), base_url(mail_lab)],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    report = await deferToThread(run)
    assert report["list"] == {
        "total": 2,
        "unread": 2,
        "subjects": ["other", "Grüße aus Köln"],
    }
    assert report["search"] == ["Grüße aus Köln"]
    assert report["message"] == {
        "Subject": "Grüße aus Köln",
        "From": {"Name": "Jürgen", "Address": "jurgen@example.test"},
        "Text": "Hallo Köln",
        "Attachments": ["notes.txt"],
    }
    assert report["raw"] == stored.decode()
    assert report["headers"]["Message-Id"] == ["<greeting@example.test>"]
    assert report["attachment"] == "the notes"
    assert report["unreadAfterPut"] == 2
    assert report["info"] == 2
    assert report["afterSearchDelete"] == ["Grüße aus Köln"]
    assert report["afterDelete"] == 0
    assert report["missing"] == 404


@pytest_twisted.ensureDeferred
async def test_pypi_mailpit_api_client(mail_lab: MailLab) -> None:
    """
    The PyPI mailpit-api-client (mailpit.client.api.API) lists, gets,
    reads headers and an attachment, marks read and deletes by ID (it sends
    a form body) and all, unchanged.
    """
    from mailpit.client.api import API

    await deferToThread(send, mail_lab, GREETING)
    await deferToThread(send, mail_lab, OTHER)
    api = API(base_url(mail_lab), timeout=30)

    def use() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        listed = api.get_messages()
        seen["total"] = (listed.total, listed.unread, listed.count)
        seen["subjects"] = [m.subject for m in listed.messages]
        greeting = listed.messages[1]
        message = api.get_message(greeting.id)
        seen["message"] = (message.subject, message.from_.name, message.text)
        seen["attachments"] = [a.file_name for a in message.attachments]
        seen["part"] = api.get_message_attachment(
            greeting.id, message.attachments[0].part_id
        )
        headers = api.get_message_headers(greeting.id)
        seen["message-id"] = headers.message_id
        api.put_messages([listed.messages[0].id], "Read", True)
        seen["unread"] = api.get_messages().unread
        api.delete_messages([greeting.id])
        seen["left"] = [m.subject for m in api.get_messages().messages]
        api.delete_messages([])
        seen["after"] = api.get_messages().total
        return seen

    seen = await deferToThread(use)
    assert seen["total"] == (2, 2, 2)
    assert seen["subjects"] == ["other", "Grüße aus Köln"]
    assert seen["message"] == ("Grüße aus Köln", "Jürgen", "Hallo Köln")
    assert seen["attachments"] == ["notes.txt"]
    assert seen["part"] == "the notes"
    assert seen["message-id"] == ["<greeting@example.test>"]
    assert seen["unread"] == 0
    assert seen["left"] == ["other"]
    assert seen["after"] == 0


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
@pytest_twisted.ensureDeferred
async def test_curl(mail_lab: MailLab) -> None:
    """
    curl lists, searches, fetches raw (byte for byte) and deletes; a
    foreign Host or Origin is refused.
    """
    await deferToThread(send, mail_lab, GREETING)
    url = base_url(mail_lab)

    def curl(*args: str) -> bytes:
        done = subprocess.run(
            ["curl", "-sS", "--fail-with-body", *args],
            capture_output=True,
            timeout=30,
            check=False,
        )
        return done.stdout + (
            b"" if done.returncode == 0 else b"\nexit %d" % done.returncode
        )

    listed = json.loads(await deferToThread(curl, f"{url}/api/v1/messages"))
    [summary] = listed["messages"]
    found = json.loads(
        await deferToThread(
            curl, "-G", "--data-urlencode", "query=köln", f"{url}/api/v1/search"
        )
    )
    assert found["messages_count"] == 1
    raw = await deferToThread(curl, f"{url}/api/v1/message/{summary['ID']}/raw")
    assert raw == mail_lab.store.messages(BOB)[0]
    refused = await deferToThread(
        curl, "-H", "Host: attacker.example", f"{url}/api/v1/messages"
    )
    assert refused.endswith(b"exit 22")
    refused = await deferToThread(
        curl,
        "-X",
        "DELETE",
        "-H",
        "Origin: http://attacker.example",
        f"{url}/api/v1/messages",
    )
    assert refused.endswith(b"exit 22")
    assert len(mail_lab.store.messages(BOB)) == 1
    assert await deferToThread(curl, "-X", "DELETE", f"{url}/api/v1/messages") == b"ok"
    assert mail_lab.store.messages(BOB) == []
