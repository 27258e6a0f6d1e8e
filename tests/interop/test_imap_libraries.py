"""
The lab's IMAP server with two more client libraries nobody here wrote:
imap-tools (over verified implicit TLS) and aioimaplib (asyncio, verified
implicit TLS).  Each runs in a thread of its own; the lab in the reactor.
"""

from __future__ import annotations

import asyncio
import ssl
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from twisted_netlab.mail.lab.service import EPHEMERAL, MailLab

USER, PASSWORD = "lib@example.test", "lib-password"
MESSAGE = (
    b"From: sender@example.test\r\n"
    b"To: lib@example.test\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?= libraries\r\n"
    b"Message-ID: <libs-1@example.test>\r\n"
    b"\r\n"
    b"body line\r\n"
    b".leading dot\r\n"
)


@pytest.fixture
def mail_lab_options() -> dict[str, Any]:
    return {
        "domains": ["example.test"],
        "users": {USER: PASSWORD},
        "imaps": [EPHEMERAL],
    }


def context(lab: MailLab) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(lab.ca_path))


def imap_tools_session(lab: MailLab) -> dict[str, Any]:
    from imap_tools import MailBox, MailMessageFlags

    with MailBox("localhost", lab.imaps_port, ssl_context=context(lab)).login(
        USER, PASSWORD, initial_folder="INBOX"
    ) as mailbox:
        mailbox.folder.create("Kept")
        appended = mailbox.append(MESSAGE, "INBOX", flag_set=[MailMessageFlags.FLAGGED])
        (message,) = list(mailbox.fetch(mark_seen=False))
        assert message.uid is not None
        mailbox.flag(message.uid, ["$Label1", MailMessageFlags.SEEN], True)
        mailbox.move(message.uid, "Kept")
        left = list(mailbox.fetch(mark_seen=False))
        mailbox.folder.set("Kept")
        (moved,) = list(mailbox.fetch(mark_seen=False))
        return {
            "appended": appended,
            "subject": message.subject,
            "raw": message.obj.as_bytes(),
            "left": len(left),
            "moved_flags": set(moved.flags),
            "moved_subject": moved.subject,
        }


@pytest_twisted.ensureDeferred
async def test_imap_tools(mail_lab: MailLab) -> None:
    """
    imap-tools appends with a flag, reads the decoded subject, stores a
    keyword and \\Seen, and MOVEs the message; the store holds exactly the
    appended bytes in the target mailbox, with the flags.
    """
    pytest.importorskip("imap_tools")
    result = await deferToThread(imap_tools_session, mail_lab)
    assert result["subject"] == "café libraries"
    assert result["left"] == 0
    assert result["moved_subject"] == "café libraries"
    assert result["moved_flags"] == {"\\Flagged", "\\Seen", "$Label1"}
    assert mail_lab.store.messages(USER, "Kept") == [MESSAGE]
    assert mail_lab.store.messages(USER) == []


async def aioimaplib_session(lab: MailLab) -> dict[str, Any]:
    import aioimaplib  # type: ignore[import-untyped]

    client = aioimaplib.IMAP4_SSL(
        "localhost", lab.imaps_port, ssl_context=context(lab), timeout=30
    )
    await client.wait_hello_from_server()
    login = await client.login(USER, PASSWORD)
    await client.append(MESSAGE, mailbox="INBOX", flags="(\\Draft)")
    select = await client.select("INBOX")
    fetch = await client.uid("fetch", "1:*", "(UID FLAGS BODY.PEEK[])")
    search = await client.uid_search("SUBJECT", "libraries")
    await client.logout()
    return {
        "login": login.result,
        "select": select.lines,
        "fetch": fetch.lines,
        "search": search.lines,
    }


@pytest_twisted.ensureDeferred
async def test_aioimaplib(mail_lab: MailLab) -> None:
    """
    aioimaplib logs in over verified TLS, APPENDs, SELECTs (EXISTS 1), and
    gets the message's exact bytes and flags back by UID FETCH; UID SEARCH
    finds it by subject.
    """
    pytest.importorskip("aioimaplib")
    result = await deferToThread(asyncio.run, aioimaplib_session(mail_lab))
    assert result["login"] == "OK"
    assert b"1 EXISTS" in result["select"]
    literals = [line for line in result["fetch"] if isinstance(line, bytearray)]
    assert [bytes(x) for x in literals] == [MESSAGE]
    assert any(
        b"\\Draft" in line for line in result["fetch"] if isinstance(line, bytes)
    )
    assert result["search"][0] == b"1"
