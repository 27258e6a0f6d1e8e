"""
Tests for L{twisted_netlab.mail.lab.web.tags} and the tags in the API's
answers, over real sockets: mail sent with smtplib gets its tags at
delivery (X-Tags, plus-addresses, a --tag rule), the tag routes change
them, IMAP (imaplib) sees them as keywords and sets them back, and the
list, the message, info, the events and the search show them.  Also the
Bcc view (envelope recipients the headers do not name) and Username.
"""

from __future__ import annotations

import imaplib
import re
import smtplib
import ssl
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from tests.mail.lab.web.test_api import ALICE, BOB, get, request
from twisted_netlab.mail.lab.service import MailLab

TAGGED = (
    b"From: App <app@shop.example>\r\nTo: dev+feature1@shop.example\r\n"
    b"Subject: your invoice\r\nX-Tags: Release, beta 2\r\n\r\nhello\r\n"
)


@pytest.fixture
def mail_lab_options() -> dict[str, Any]:
    return {
        "domains": ("example.test",),
        "users": {ALICE: "alice-password", BOB: "bob-password"},
        "catch_all": BOB,
        "tag_rules": ["invoice=subject:invoice"],
    }


def smtp_send(
    lab: MailLab,
    message: bytes,
    to: list[str],
    *,
    login: bool = False,
    sender: str = "app@shop.example",
) -> None:
    """Send with smtplib over STARTTLS, verifying the lab's certificate."""
    context = ssl.create_default_context(cafile=str(lab.ca_path))
    with smtplib.SMTP("localhost", lab.smtp_port, timeout=30) as client:
        client.starttls(context=context)
        if login:
            client.login(ALICE, "alice-password")
        client.sendmail(sender, to, message)


def imap_session(lab: MailLab) -> imaplib.IMAP4:
    client = imaplib.IMAP4("localhost", lab.imap_port, timeout=30)
    client.starttls(ssl.create_default_context(cafile=str(lab.ca_path)))
    client.login(BOB, "bob-password")
    client.select("INBOX")
    return client


def imap_keywords(lab: MailLab) -> list[set[str]]:
    """The keywords of each INBOX message of bob's, over IMAP."""
    client = imap_session(lab)
    try:
        _, data = client.fetch("1:*", "(FLAGS)")
        found = []
        for line in data:
            assert isinstance(line, bytes)
            match = re.search(rb"FLAGS \(([^)]*)\)", line)
            assert match is not None
            found.append(
                {f for f in match.group(1).decode().split() if not f.startswith("\\")}
            )
        return found
    finally:
        client.logout()


def imap_store(lab: MailLab, command: str, flags: str) -> None:
    client = imap_session(lab)
    try:
        status, _ = client.store("1", command, flags)
        assert status == "OK"
    finally:
        client.logout()


@pytest_twisted.ensureDeferred
async def test_tags_at_delivery(mail_lab: MailLab) -> None:
    """
    A message sent by SMTP has its X-Tags, its plus-address tag and the
    rule's tag in the list, the message, GET /api/v1/tags, info and the
    list's "tags"; IMAP sees them as keywords (a space as ~).
    """
    await deferToThread(smtp_send, mail_lab, TAGGED, ["dev+feature1@shop.example"])
    page = (await get(mail_lab, "/api/v1/messages")).json()
    expected = ["Release", "beta 2", "feature1", "invoice"]
    assert page["messages"][0]["Tags"] == expected
    assert page["tags"] == expected
    detail = (await get(mail_lab, "/api/v1/message/latest")).json()
    assert detail["Tags"] == expected
    assert (await get(mail_lab, "/api/v1/tags")).json() == expected
    info = (await get(mail_lab, "/api/v1/info")).json()
    assert info["Tags"] == {tag: 1 for tag in expected}
    assert await deferToThread(imap_keywords, mail_lab) == [
        {"Release", "beta~2", "feature1", "invoice"}
    ]


@pytest_twisted.ensureDeferred
async def test_put_rename_delete(mail_lab: MailLab) -> None:
    """
    PUT /api/v1/tags sets exactly the tags given (cleaned), on the IDs
    given; PUT /api/v1/tags/{Tag} renames; DELETE removes from every
    message; each answers "ok", and IMAP sees every change.
    """
    mail_lab.store.deliver(BOB, b"Subject: one\r\n\r\nx\r\n")
    mail_lab.store.deliver(BOB, b"Subject: two\r\n\r\nx\r\n")
    ids = [
        m["ID"] for m in (await get(mail_lab, "/api/v1/messages")).json()["messages"]
    ]
    answer = await request(
        mail_lab,
        "PUT",
        "/api/v1/tags",
        body={"IDs": ids, "Tags": ["Needs review", "urgent!", "URGENT"]},
    )
    assert (answer.status, answer.body) == (200, b"ok")
    assert (await get(mail_lab, "/api/v1/tags")).json() == ["Needs review", "urgent"]
    assert await deferToThread(imap_keywords, mail_lab) == [
        {"Needs~review", "urgent"},
        {"Needs~review", "urgent"},
    ]
    answer = await request(
        mail_lab, "PUT", "/api/v1/tags/Needs%20review", body={"Name": "Reviewed"}
    )
    assert (answer.status, answer.body) == (200, b"ok")
    messages = (await get(mail_lab, "/api/v1/messages")).json()["messages"]
    assert [m["Tags"] for m in messages] == [["Reviewed", "urgent"]] * 2
    answer = await request(mail_lab, "DELETE", "/api/v1/tags/urgent")
    assert (answer.status, answer.body) == (200, b"ok")
    assert await deferToThread(imap_keywords, mail_lab) == [{"Reviewed"}, {"Reviewed"}]
    answer = await request(mail_lab, "PUT", "/api/v1/tags", body={"IDs": ids[:1]})
    assert answer.status == 200
    messages = (await get(mail_lab, "/api/v1/messages")).json()["messages"]
    assert [m["Tags"] for m in messages] == [[], ["Reviewed"]]


@pytest_twisted.ensureDeferred
async def test_refusals(mail_lab: MailLab) -> None:
    """
    No such tag, a taken name, an invalid name, a bad body: 400 with the
    reason; an unknown message: 404; past 26 tags in a folder: 400 saying
    so, and nothing changed.
    """
    mail_lab.store.deliver(BOB, b"Subject: one\r\n\r\nx\r\n")
    [entry] = (await get(mail_lab, "/api/v1/messages")).json()["messages"]
    ids = [entry["ID"]]
    await request(
        mail_lab, "PUT", "/api/v1/tags", body={"IDs": ids, "Tags": ["a", "b"]}
    )
    cases = [
        ("PUT", "/api/v1/tags/nope", {"Name": "x"}, 400, b"tag not found: nope"),
        ("PUT", "/api/v1/tags/a", {"Name": "B"}, 400, b"tag already exists: B"),
        ("PUT", "/api/v1/tags/a", {"Name": "!!"}, 400, b"invalid tag name: !!"),
        ("PUT", "/api/v1/tags/a", {}, 400, b"Name must be"),
        ("DELETE", "/api/v1/tags/nope", None, 400, b"tag not found: nope"),
        ("PUT", "/api/v1/tags", {"IDs": ids, "Tags": "a"}, 400, b"Tags must be"),
        ("PUT", "/api/v1/tags", {"IDs": ["nope"], "Tags": []}, 404, b"no message"),
    ]
    for method, path, body, status, reason in cases:
        answer = await request(mail_lab, method, path, body=body)
        assert answer.status == status, (method, path, answer.body)
        assert answer.body.startswith(reason), (method, path, answer.body)
    many = [f"tag{i}" for i in range(27)]
    answer = await request(
        mail_lab, "PUT", "/api/v1/tags", body={"IDs": ids, "Tags": many}
    )
    assert answer.status == 400
    assert b"26 keywords" in answer.body
    assert (await get(mail_lab, "/api/v1/tags")).json() == ["a", "b"]


@pytest_twisted.ensureDeferred
async def test_imap_keyword_is_a_tag(mail_lab: MailLab) -> None:
    """
    A keyword an IMAP client stores is a tag in the API (and searchable
    with tag:), its removal too; the event stream's update carries it.
    """
    mail_lab.store.deliver(BOB, b"Subject: one\r\n\r\nx\r\n")
    await deferToThread(imap_store, mail_lab, "+FLAGS", "(Deploy~ready $Forwarded)")
    [entry] = (await get(mail_lab, "/api/v1/messages")).json()["messages"]
    assert entry["Tags"] == ["$Forwarded", "Deploy ready"]
    found = (
        await get(mail_lab, "/api/v1/search?query=tag:%22deploy%20ready%22")
    ).json()
    assert found["messages_count"] == 1
    found = (await get(mail_lab, "/api/v1/search?query=-tag:%24forwarded")).json()
    assert found["messages_count"] == 0
    # Given back as it is, an IMAP keyword that is no Mailpit tag stays.
    body = {"IDs": [entry["ID"]], "Tags": ["$Forwarded", "Deploy ready", "new"]}
    assert (await request(mail_lab, "PUT", "/api/v1/tags", body=body)).status == 200
    assert await deferToThread(imap_keywords, mail_lab) == [
        {"$Forwarded", "Deploy~ready", "new"}
    ]
    await deferToThread(imap_store, mail_lab, "-FLAGS", "(new)")
    [entry] = (await get(mail_lab, "/api/v1/messages")).json()["messages"]
    assert entry["Tags"] == ["$Forwarded", "Deploy ready"]


@pytest_twisted.ensureDeferred
async def test_tags_survive_a_restart(
    mail_lab_options: dict[str, Any], tmp_path: Any
) -> None:
    """
    Tags are in the Maildir: a lab started again on the same state has
    them, and its tag rule still tags new mail.
    """
    from twisted.internet import reactor

    from twisted_netlab.mail.lab.service import EPHEMERAL

    options = dict(mail_lab_options, state=tmp_path / "lab", http=(EPHEMERAL,))
    first = await MailLab(reactor, **options).start()
    try:
        await deferToThread(smtp_send, first, TAGGED, [BOB])
    finally:
        await first.stop()
    again = await MailLab(reactor, **options).start()
    try:
        [entry] = (await get(again, "/api/v1/messages")).json()["messages"]
        assert entry["Tags"] == ["Release", "beta 2", "feature1", "invoice"]
    finally:
        await again.stop()


@pytest_twisted.ensureDeferred
async def test_bcc_and_username(mail_lab: MailLab) -> None:
    """
    Envelope recipients that To and Cc do not name are in Bcc (list and
    message) and found by bcc:, the stored bytes unchanged; to: still finds
    them; Username is the SMTP login.
    """
    message = (
        b"From: alice@example.test\r\nTo: bob@example.test\r\n"
        b"Subject: laravel\r\n\r\nno Bcc header\r\n"
    )
    await deferToThread(
        smtp_send,
        mail_lab,
        message,
        [BOB, "hidden@else.test", "Bob@Example.test"],
        login=True,
        sender=ALICE,
    )
    [entry] = (await get(mail_lab, "/api/v1/messages")).json()["messages"]
    assert entry["Bcc"] == [{"Name": "", "Address": "hidden@else.test"}]
    assert entry["Username"] == ALICE
    detail = (await get(mail_lab, f"/api/v1/message/{entry['ID']}")).json()
    assert detail["Bcc"] == [{"Name": "", "Address": "hidden@else.test"}]
    assert detail["Username"] == ALICE
    for query, count in [("bcc:hidden", 1), ("bcc:bob", 0), ("to:hidden", 1)]:
        found = (await get(mail_lab, f"/api/v1/search?query={query}")).json()
        assert found["messages_count"] == count, query
    [stored] = mail_lab.store.messages(BOB)
    assert b"\nBcc:" not in stored
    assert stored.endswith(message)


@pytest_twisted.ensureDeferred
async def test_list_unsubscribe(mail_lab: MailLab) -> None:
    """
    ListUnsubscribe has the header, its links that pass Mailpit's checks,
    the errors of the others, and List-Unsubscribe-Post.
    """
    mail_lab.store.deliver(
        BOB,
        b"Subject: news\r\nList-Unsubscribe: <mailto:leave@list.example>, "
        b"<https://list.example/u?x=1>\r\nList-Unsubscribe-Post: "
        b"List-Unsubscribe=One-Click\r\n\r\nx\r\n",
    )
    mail_lab.store.deliver(
        BOB, b"Subject: bad\r\nList-Unsubscribe: ftp://x\r\n\r\nx\r\n"
    )
    mail_lab.store.deliver(BOB, b"Subject: none\r\n\r\nx\r\n")
    ids = [
        m["ID"] for m in (await get(mail_lab, "/api/v1/messages")).json()["messages"]
    ]
    none, bad, news = [
        (await get(mail_lab, f"/api/v1/message/{i}")).json()["ListUnsubscribe"]
        for i in ids
    ]
    assert news == {
        "Header": "<mailto:leave@list.example>, <https://list.example/u?x=1>",
        "Links": ["mailto:leave@list.example", "https://list.example/u?x=1"],
        "Errors": "",
        "HeaderPost": "List-Unsubscribe=One-Click",
    }
    assert bad == {
        "Header": "ftp://x",
        "Links": [],
        "Errors": '"ftp://x" no valid unsubscribe links found',
        "HeaderPost": "",
    }
    assert none == {"Header": "", "Links": [], "Errors": "", "HeaderPost": ""}
