"""
Every path and method of Mailpit's API description (the copy beside this
file), called on a live lab, each JSON answer checked against its schema
(L{tests.mail.lab.web.swagger.check_answer}), each text answer against its
declared type.  A path the lab does not serve is listed in L{NOT_SERVED}
with the reason; the walk fails if the swagger file names one that is in
neither list, so a new Mailpit route cannot be missed.

The lab relays through a second lab (STARTTLS with its CA, AUTH), so that
the release answers as Mailpit's does.
"""

from __future__ import annotations

import base64
import io
import re
import smtplib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor

from tests.mail.lab.web.swagger import check_answer, load_mailpit_swagger
from tests.mail.lab.web.test_api import ALICE, BOB, Answer, request
from twisted_netlab.mail.lab.relay import RelayConfig
from twisted_netlab.mail.lab.service import MailLab

CAROL = "carol@relay.test"

#: Mailpit's paths the lab does not serve (yet), and why.  Each is still
#: called: it must answer 404 with a reason, or else fit its schema.
NOT_SERVED: dict[tuple[str, str], str] = {}

#: Where Mailpit's own answer differs from its file, the lab answers as
#: Mailpit does: DELETE /api/v1/search writes "ok" as text/plain
#: (server/apiv1 DeleteSearch) though the file says application/json.
MAILPIT_ANSWERS = {("DELETE", "/api/v1/search"): ["text/plain"]}


def png(width: int = 320, height: int = 200) -> bytes:
    """A real PNG image (Pillow), for the thumbnail."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def newsletter() -> bytes:
    message = EmailMessage()
    message["From"] = "Shop <shop@example.test>"
    message["To"] = BOB
    message["Subject"] = "Our news"
    message["Message-ID"] = "<news-1@example.test>"
    message["X-Tags"] = "news"
    message["List-Unsubscribe"] = (
        "<https://shop.example/u?x=1>, <mailto:u@shop.example>"
    )
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content("the news in text")
    message.add_alternative("<p>the news in <b>HTML</b></p>", subtype="html")
    message.add_attachment(png(), maintype="image", subtype="png", filename="p.png")
    return message.as_bytes(policy=SMTP)


@pytest.fixture
def relay_lab(tmp_path: Path) -> Iterator[MailLab]:
    """A second lab, the relay the first one releases through."""
    lab = MailLab(
        reactor,
        state=tmp_path / "relay-lab",
        domains=("relay.test",),
        users={CAROL: "carol-password"},
        catch_all=CAROL,
        imap=(),
    )
    pytest_twisted.blockon(lab.start())
    try:
        yield lab
    finally:
        pytest_twisted.blockon(lab.stop())


@pytest.fixture
def mail_lab_options(relay_lab: MailLab, tmp_path: Path) -> dict[str, Any]:
    return {
        "domains": ("example.test",),
        "users": {ALICE: "alice-password", BOB: "bob-password"},
        "relay": RelayConfig(
            host="localhost",
            port=relay_lab.smtp_port,
            cafile=str(relay_lab.ca_path),
            user=CAROL,
            password="carol-password",
            allow=re.compile(r"@relay\.test\Z"),
        ),
        "fresh": True,
        "state": tmp_path / "lab",
    }


def smtp_send(lab: MailLab, raw: bytes) -> None:
    context = ssl.create_default_context(cafile=str(lab.ca_path))
    with smtplib.SMTP("localhost", lab.smtp_port, timeout=30) as client:
        client.starttls(context=context)
        client.sendmail("shop@example.test", [BOB, ALICE], raw)


@dataclass
class Call:
    method: str
    template: str
    path: str
    body: Any = None
    status: int = 200


def produces(swagger: dict[str, Any], call: Call) -> list[str]:
    operation = swagger["paths"][call.template][call.method.lower()]
    types: list[str] = operation.get("produces", swagger.get("produces", []))
    return MAILPIT_ANSWERS.get((call.method, call.template), types)


def check(swagger: dict[str, Any], call: Call, answer: Answer) -> None:
    """The answer's status, type and (JSON or text) body fit the swagger file."""
    where = f"{call.method} {call.path}"
    assert answer.status == call.status, f"{where}: {answer.status} {answer.body!r}"
    content_type = answer.headers["content-type"].split(";")[0].strip()
    allowed = produces(swagger, call)
    assert any(
        content_type == t or (t.endswith("/*") and content_type.startswith(t[:-1]))
        for t in allowed
    ), f"{where}: {content_type} is not one of {allowed}"
    if content_type == "application/json":
        check_answer(swagger, call.template, call.method, call.status, answer.json())
    elif content_type.startswith("text/"):
        check_answer(
            swagger, call.template, call.method, call.status, answer.body.decode()
        )


@pytest_twisted.ensureDeferred
async def test_every_swagger_path(mail_lab: MailLab, relay_lab: MailLab) -> None:
    """
    Each of Mailpit's 25 operations answers on the lab, in Mailpit's
    shape, or is in NOT_SERVED with its reason (and then answers 404, or
    fits its schema once served); nothing in the file is left unwalked.
    """
    from twisted.internet.threads import deferToThread

    swagger = load_mailpit_swagger()
    await deferToThread(smtp_send, mail_lab, newsletter())
    stored = mail_lab.store.messages(BOB)[0]
    found = (await request(mail_lab, "GET", f"/api/v1/messages?mailbox={BOB}")).json()
    message_id = found["messages"][0]["ID"]
    detail = (await request(mail_lab, "GET", f"/api/v1/message/{message_id}")).json()
    [image] = detail["Attachments"]
    part = image["PartID"]
    one = f"/api/v1/message/{message_id}"
    calls = [
        Call("GET", "/api/v1/info", "/api/v1/info"),
        Call("GET", "/api/v1/webui", "/api/v1/webui"),
        Call("GET", "/api/v1/messages", "/api/v1/messages?start=0&limit=10"),
        Call("GET", "/api/v1/search", "/api/v1/search?query=tag:news&tz=UTC"),
        Call("GET", "/api/v1/message/{ID}", one),
        Call("GET", "/api/v1/message/{ID}/headers", f"{one}/headers"),
        Call("GET", "/api/v1/message/{ID}/raw", f"{one}/raw"),
        Call("GET", "/api/v1/message/{ID}/part/{PartID}", f"{one}/part/{part}"),
        Call(
            "GET",
            "/api/v1/message/{ID}/part/{PartID}/thumb",
            f"{one}/part/{part}/thumb",
        ),
        Call("GET", "/api/v1/message/{ID}/html-check", f"{one}/html-check"),
        Call(
            "GET",
            "/api/v1/message/{ID}/link-check",
            f"{one}/link-check?follow=false",
        ),
        # No --spamassassin here: Mailpit's answer with its Error saying so.
        Call("GET", "/api/v1/message/{ID}/sa-check", f"{one}/sa-check"),
        Call("GET", "/view/{ID}.html", f"/view/{message_id}.html"),
        Call("GET", "/view/{ID}.txt", f"/view/{message_id}.txt"),
        Call("GET", "/api/v1/chaos", "/api/v1/chaos"),
        Call(
            "PUT",
            "/api/v1/chaos",
            "/api/v1/chaos",
            {"Sender": {"ErrorCode": 451, "Probability": 0}},
        ),
        Call("GET", "/api/v1/tags", "/api/v1/tags"),
        Call(
            "PUT",
            "/api/v1/tags",
            "/api/v1/tags",
            {"IDs": [message_id], "Tags": ["a", "b"]},
        ),
        Call("PUT", "/api/v1/tags/{Tag}", "/api/v1/tags/a", {"Name": "renamed"}),
        Call("DELETE", "/api/v1/tags/{Tag}", "/api/v1/tags/b"),
        Call(
            "POST",
            "/api/v1/message/{ID}/release",
            f"{one}/release",
            {"To": ["dave@relay.test"]},
        ),
        Call(
            "POST",
            "/api/v1/send",
            "/api/v1/send",
            {
                "From": {"Email": "app@example.test", "Name": "App"},
                "To": [{"Email": BOB}],
                "Subject": "sent over HTTP",
                "Text": "hello",
                "Tags": ["api"],
                "Attachments": [
                    {"Filename": "n.txt", "Content": base64.b64encode(b"n").decode()}
                ],
            },
        ),
        Call(
            "PUT",
            "/api/v1/messages",
            "/api/v1/messages?tz=UTC",
            {"IDs": [message_id], "Read": True},
        ),
        Call("DELETE", "/api/v1/search", "/api/v1/search?query=subject:news&tz=UTC"),
        Call("DELETE", "/api/v1/messages", "/api/v1/messages", {"IDs": []}),
    ]
    for method, template in NOT_SERVED:
        calls.append(
            Call(method, template, template.replace("{ID}", message_id), status=0)
        )
    operations = {
        (method.upper(), path)
        for path, methods in swagger["paths"].items()
        for method in methods
    }
    walked = {(c.method, c.template) for c in calls}
    assert walked == operations, f"not walked: {operations - walked}"
    assert len(operations) == 25

    for call in calls:
        headers = {"Content-Type": "application/json"} if call.body is not None else {}
        answer = await request(
            mail_lab, call.method, call.path, call.body, headers=headers
        )
        if call.status == 0:
            # Not served here (NOT_SERVED): a 404 with a reason, or, once a
            # branch serves it, an answer in Mailpit's shape.
            if answer.status == 404:
                assert answer.body.strip(), call.path
                continue
            call.status = 200
        check(swagger, call, answer)

    # What the calls did, seen from outside: the release reached the relay
    # lab unchanged, the tags were set, renamed and deleted, the sent
    # message was stored with its tag, and everything was deleted at the end.
    [released] = relay_lab.store.messages(CAROL)
    assert released.endswith(stored)
    info = (await request(mail_lab, "GET", "/api/v1/info")).json()
    assert info["Messages"] == 0
    # The SMTP message (once, for two mailboxes) and the one sent over HTTP,
    # as Mailpit counts them; three copies deleted.
    assert info["RuntimeStats"]["SMTPAccepted"] == 2
    assert info["RuntimeStats"]["MessagesDeleted"] == 3


@pytest_twisted.ensureDeferred
async def test_refusals_in_mailpit_shape(mail_lab: MailLab, relay_lab: MailLab) -> None:
    """
    The refusals answer 400 as Mailpit's do: text for the message, tag
    and release routes, Mailpit's JSON {"Error": ...} for the send API;
    a release to a recipient the relay refuses sends nothing, and the
    thumbnail of the image is a 180x120 JPEG.
    """
    from PIL import Image
    from twisted.internet.threads import deferToThread

    swagger = load_mailpit_swagger()
    await deferToThread(smtp_send, mail_lab, newsletter())
    found = (await request(mail_lab, "GET", f"/api/v1/messages?mailbox={BOB}")).json()
    message_id = found["messages"][0]["ID"]
    one = f"/api/v1/message/{message_id}"
    refusals = [
        (Call("POST", "/api/v1/message/{ID}/release", f"{one}/release", {}, 400), "To"),
        (
            Call(
                "POST",
                "/api/v1/message/{ID}/release",
                f"{one}/release",
                {"To": ["dave@elsewhere.example"]},
                400,
            ),
            "elsewhere.example",
        ),
        (Call("PUT", "/api/v1/tags/{Tag}", "/api/v1/tags/news", {}, 400), "Name"),
        (Call("PUT", "/api/v1/tags", "/api/v1/tags", {"IDs": "x"}, 400), "IDs"),
        (Call("POST", "/api/v1/send", "/api/v1/send", {"To": []}, 400), "From"),
    ]
    for call, said in refusals:
        headers = {"Content-Type": "application/json"}
        answer = await request(mail_lab, call.method, call.path, call.body, headers)
        check(swagger, call, answer)
        assert said in answer.body.decode(), (call.path, answer.body)
    error = (await request(mail_lab, "POST", "/api/v1/send", {"To": []})).json()
    assert set(error) == {"Error"}
    assert relay_lab.store.messages(CAROL) == []

    detail = (await request(mail_lab, "GET", one)).json()
    part = detail["Attachments"][0]["PartID"]
    thumb = await request(mail_lab, "GET", f"{one}/part/{part}/thumb")
    image = Image.open(io.BytesIO(thumb.body))
    assert (image.format, image.size) == ("JPEG", (180, 120))
