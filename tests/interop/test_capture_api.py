"""
The newcomer's path of issue 11: capture any address, then see it once over
HTTP with its envelope, and over IMAP as the catch-all user.
"""

from __future__ import annotations

import imaplib
import json
import smtplib
import ssl
import urllib.request
from email.message import EmailMessage
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from twisted_netlab.mail.lab.service import MailLab

CATCHER = "lab@netlab.test"


@pytest.fixture
def mail_lab_options() -> dict[str, Any]:
    return {
        "domains": ["netlab.test"],
        "users": {CATCHER: "lab-password"},
        "catch_all": CATCHER,
    }


def send(lab: MailLab) -> None:
    message = EmailMessage()
    message["From"] = "app@sender.example"
    message["To"] = "someone@anywhere.example"
    message["Cc"] = "other@elsewhere.example"
    message["Subject"] = "Your order"
    message.set_content("Thanks for your order.")
    context = ssl.create_default_context(cafile=str(lab.ca_path))
    with smtplib.SMTP("localhost", lab.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=context)
        smtp.send_message(
            message,
            to_addrs=[
                "someone@anywhere.example",
                "other@elsewhere.example",
                "hidden@bcc.example",
            ],
        )


def api(lab: MailLab, path: str) -> Any:
    with urllib.request.urlopen(f"http://localhost:{lab.http_port}{path}") as answer:
        return json.load(answer)


def imap_subjects(lab: MailLab) -> list[bytes]:
    context = ssl.create_default_context(cafile=str(lab.ca_path))
    with imaplib.IMAP4("localhost", lab.imap_port, timeout=30) as imap:
        imap.starttls(ssl_context=context)
        imap.login(CATCHER, "lab-password")
        imap.select("INBOX")
        _, data = imap.fetch("1:*", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        return [item[1].strip() for item in data if isinstance(item, tuple)]


@pytest_twisted.ensureDeferred
async def test_capture_then_api_then_imap(mail_lab: MailLab) -> None:
    """
    A message to three addresses at other domains (To, Cc and Bcc) is
    listed once by the API, with every envelope recipient; to: finds it by
    its Bcc recipient; the catch-all user reads the same message over IMAP.
    """
    await deferToThread(send, mail_lab)
    [found] = await mail_lab.wait_for("subject:order")
    listed = await deferToThread(api, mail_lab, "/api/v1/messages")
    assert listed["total"] == 1
    [summary] = listed["messages"]
    assert summary["Mailbox"] == CATCHER
    detail = await deferToThread(api, mail_lab, f"/api/v1/message/{summary['ID']}")
    envelope = detail["Envelope"]
    assert envelope["MailFrom"] == "app@sender.example"
    assert envelope["RcptTo"] == [
        "someone@anywhere.example",
        "other@elsewhere.example",
        "hidden@bcc.example",
    ]
    assert envelope["TLS"] is True
    assert envelope["Client"] == "127.0.0.1"
    bcc = await deferToThread(
        api, mail_lab, "/api/v1/search?query=to:hidden@bcc.example"
    )
    assert [m["ID"] for m in bcc["messages"]] == [summary["ID"]]
    assert await deferToThread(imap_subjects, mail_lab) == [b"Subject: Your order"]
    assert found.envelope.rcpt_to[-1] == "hidden@bcc.example"
