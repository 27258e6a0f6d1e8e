"""
Tests for L{twisted_netlab.mail.lab.web.checks}: the five check routes below
a message, through the site a running lab serves (the C{mail_lab} fixture),
with http.client in a thread: their answers (Mailpit's three against its
swagger schemas), the cache behind them, 404 for a missing message and 400
for a check that cannot run.  The checks against their real peers (spamd, an
HTTP server, dkimpy) are in tests/mail/lab/checks/test_through_lab.py.
"""

from __future__ import annotations

import os
from typing import Any

import pytest
import pytest_twisted

from tests.mail.lab.web.swagger import check_answer, load_mailpit_swagger
from tests.mail.lab.web.test_api import BOB, get, request
from twisted_netlab.mail.lab.checks import lint
from twisted_netlab.mail.lab.service import MailLab

NEWSLETTER = (
    b"From: News <news@example.org>\r\nTo: bob@example.test\r\n"
    b"Subject: News\r\nDate: Mon, 07 Dec 2026 09:00:00 +0000\r\n"
    b"Message-ID: <n-1@example.org>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/alternative; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nNews: mailto:x@y.test\r\n"
    b"--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b"<div style='display:flex'><a href='mailto:news@example.org'>write</a>"
    b"<video src='cid:v'></video></div>\r\n--b--\r\n"
)
ROUTES = ["html-check", "link-check", "sa-check", "auth-check", "lint"]


def deliver(lab: MailLab, raw: bytes = NEWSLETTER) -> str:
    lab.store.deliver(BOB, raw)
    [entry] = [e for e in lab.catalog.entries() if e.address == BOB][:1]
    return entry.id


@pytest_twisted.ensureDeferred
async def test_mailpit_routes_fit_the_swagger(mail_lab: MailLab) -> None:
    """
    html-check, link-check (with and without follow) and sa-check answer
    200 JSON that fits Mailpit's HTMLCheckResponse, LinkCheckResponse and
    SpamAssassinResponse; without spamd, sa-check's Error says how to turn
    it on.
    """
    message_id = deliver(mail_lab)
    swagger = load_mailpit_swagger()
    for path, route in [
        ("/api/v1/message/{ID}/html-check", "html-check"),
        ("/api/v1/message/{ID}/link-check", "link-check"),
        ("/api/v1/message/{ID}/link-check", "link-check?follow=true"),
        ("/api/v1/message/{ID}/sa-check", "sa-check"),
    ]:
        answer = await get(mail_lab, f"/api/v1/message/{message_id}/{route}")
        assert answer.status == 200, (route, answer.body)
        assert answer.headers["content-type"] == "application/json; charset=utf-8"
        check_answer(swagger, path, "get", 200, answer.json())
    html = (await get(mail_lab, f"/api/v1/message/{message_id}/html-check")).json()
    assert {"css-display-flex", "html-video"} <= {w["Slug"] for w in html["Warnings"]}
    links = (await get(mail_lab, f"/api/v1/message/{message_id}/link-check")).json()
    assert links["Errors"] == 0
    assert links["Links"][0]["URL"] == "mailto:news@example.org"
    spam = (await get(mail_lab, f"/api/v1/message/{message_id}/sa-check")).json()
    assert "--spamassassin HOST:PORT" in spam["Error"]


@pytest_twisted.ensureDeferred
async def test_auth_and_lint(mail_lab: MailLab) -> None:
    """
    auth-check answers DKIM, SPF, DMARC and ARC (a message dropped into the
    Maildir has no envelope: SPF none); lint its Errors, Warnings and
    Findings; both work with C{latest}.
    """
    raw = NEWSLETTER.replace(b"Subject: News\r\n", b"Subject: News\n")
    message_id = deliver(mail_lab, raw)
    auth = await get(mail_lab, f"/api/v1/message/{message_id}/auth-check")
    assert auth.status == 200
    assert set(auth.json()) == {"DKIM", "SPF", "DMARC", "ARC"}
    assert auth.json()["DKIM"] == []
    assert auth.json()["SPF"]["Result"] == "none"
    answer = (await get(mail_lab, "/api/v1/message/latest/lint")).json()
    assert (answer["Errors"], answer["Warnings"]) == (1, 0)
    assert [f["Code"] for f in answer["Findings"]] == ["bare-lf"]


@pytest_twisted.ensureDeferred
async def test_missing_message(mail_lab: MailLab) -> None:
    """
    Every check route of a message the lab does not have is a 404 with a
    one-line reason, as the message's other routes are.
    """
    for route in ROUTES:
        answer = await get(mail_lab, f"/api/v1/message/0000000000/{route}")
        assert (answer.status, answer.body) == (404, b"no message 0000000000\n")
        assert answer.headers["content-type"] == "text/plain; charset=utf-8"
    latest = await get(mail_lab, "/api/v1/message/latest/lint")
    assert latest.status == 404


@pytest_twisted.ensureDeferred
async def test_only_get(mail_lab: MailLab) -> None:
    """
    The check routes answer GET only: another method is a 405.
    """
    message_id = deliver(mail_lab)
    for route in ROUTES:
        answer = await request(
            mail_lab, "POST", f"/api/v1/message/{message_id}/{route}"
        )
        assert answer.status == 405, route


@pytest_twisted.ensureDeferred
async def test_cached_not_at_delivery(mail_lab: MailLab) -> None:
    """
    Nothing is checked at delivery; the second request of a check is
    answered from the cache, the same; a message rewritten in the Maildir
    behind the lab's back is checked again.
    """
    computed, hits = mail_lab.checks.computed, mail_lab.checks.hits
    message_id = deliver(mail_lab)
    assert mail_lab.checks.computed == computed
    path = f"/api/v1/message/{message_id}/lint"
    first = await get(mail_lab, path)
    again = await get(mail_lab, path)
    assert first.body == again.body
    assert mail_lab.checks.computed - computed == 1
    assert mail_lab.checks.hits - hits == 1
    assert first.json()["Errors"] == 0
    [entry] = [e for e in mail_lab.catalog.entries() if e.id == message_id]
    file = next(
        p
        for p in entry.folder.path.glob("*/*")
        if p.parent.name in ("new", "cur") and p.name.startswith(entry.key)
    )
    file.write_bytes(NEWSLETTER.replace(b"Subject: News\r\n", b"Subject: News\n"))
    status = os.stat(file)
    os.utime(file, ns=(status.st_atime_ns, status.st_mtime_ns + 1_000_000_000))
    rewritten = await get(mail_lab, path)
    assert mail_lab.checks.computed - computed == 2
    assert [f["Code"] for f in rewritten.json()["Findings"]] == ["bare-lf"]


@pytest_twisted.ensureDeferred
async def test_check_error_is_a_400(
    mail_lab: MailLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A check that cannot run (here a bug: it raises) answers 400 with its
    one-line CheckError, as Mailpit answers its checks' errors; nothing is
    cached, so the next request tries again.
    """

    def broken(raw: bytes, arrival: Any) -> Any:
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(lint, "findings", broken)
    message_id = deliver(mail_lab)
    answer = await get(mail_lab, f"/api/v1/message/{message_id}/lint")
    assert answer.status == 400
    assert answer.body == (
        b"the lint check failed on this message: ZeroDivisionError: division by zero\n"
    )
    monkeypatch.undo()
    fixed = await get(mail_lab, f"/api/v1/message/{message_id}/lint")
    assert fixed.status == 200
