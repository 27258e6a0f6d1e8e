"""
Tests for L{twisted_netlab.mail.lab.web}: the HTTP API, every route family
through the site the lab serves, over real loopback sockets (the C{mail_lab}
fixture), with the stdlib's http.client and imaplib as the clients, each in
a thread.
"""

from __future__ import annotations

import base64
import http.client
import imaplib
import json
import socket
import ssl
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

from twisted_netlab.errors import UsageProblem
from twisted_netlab.mail.lab.service import EPHEMERAL, MailLab

ALICE = "alice@example.test"
BOB = "bob@example.test"

ATTACHED = (
    b"From: =?utf-8?q?J=C3=BCrgen?= <jurgen@example.test>\r\n"
    b"To: bob@example.test\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
    b"Message-ID: <m-1@example.test>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n"
    b"--a\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 text\r\n"
    b"--a\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
    b'<p>html <img src="cid:logo@x"><img src="https://tracker.example/p.gif">'
    b"<script>alert(1)</script></p>\r\n--a--\r\n"
    b"--b\r\nContent-Type: image/png\r\nContent-ID: <logo@x>\r\n"
    b"Content-Disposition: inline\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    b"iVBORw0KGgo=\r\n"
    b"--b\r\nContent-Type: text/html; name=evil.html\r\n"
    b'Content-Disposition: attachment; filename="evil.html"\r\n\r\n'
    b"<script>alert(document.cookie)</script>\r\n--b--\r\n"
)


def plain(subject: str, to: str = BOB) -> bytes:
    head = f"From: {ALICE}\r\nTo: {to}\r\nSubject: {subject}\r\n"
    return f"{head}\r\nabout {subject}\r\n".encode()


@dataclass
class Answer:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    lab: MailLab,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
) -> Deferred[Answer]:
    """Make one HTTP request to the lab's API, in a thread."""

    def call() -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", lab.http_port, timeout=30)
        try:
            data = None if body is None else json.dumps(body).encode()
            connection.request(method, path, body=data, headers=headers or {})
            response = connection.getresponse()
            return Answer(response.status, response.headers, response.read())
        finally:
            connection.close()

    return deferToThread(call)


def get(lab: MailLab, path: str, **kw: Any) -> Deferred[Answer]:
    return request(lab, "GET", path, **kw)


def sleep(seconds: float) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    reactor.callLater(seconds, d.callback, None)
    return d


@pytest_twisted.ensureDeferred
async def test_list_shape(mail_lab: MailLab) -> None:
    """
    GET /api/v1/messages has Mailpit's fields, newest first, with start and
    limit paging and our Mailbox field.
    """
    for i in range(3):
        mail_lab.store.deliver(BOB, plain(f"number {i}"))
    answer = await get(mail_lab, "/api/v1/messages?start=1&limit=1")
    assert answer.status == 200
    assert answer.headers["content-type"] == "application/json; charset=utf-8"
    page = answer.json()
    assert (page["total"], page["unread"], page["messages_count"], page["start"]) == (
        3,
        3,
        3,
        1,
    )
    [entry] = page["messages"]
    assert entry["Subject"] == "number 1"
    assert entry["Mailbox"] == BOB
    assert entry["From"] == {"Name": "", "Address": ALICE}
    assert set(entry) >= {
        "ID", "MessageID", "Read", "To", "Cc", "Bcc", "ReplyTo", "Created",
        "Tags", "Size", "Attachments", "Snippet",
    }  # fmt: skip


@pytest_twisted.ensureDeferred
async def test_detail_headers_raw_part(mail_lab: MailLab) -> None:
    """
    The detail decodes addresses, subject and bodies and lists parts; raw
    is byte for byte; headers are grouped by name; a part has its
    Content-Type and is always a download with its file name.
    """
    mail_lab.store.deliver(BOB, ATTACHED)
    detail = (await get(mail_lab, "/api/v1/message/latest")).json()
    assert detail["From"] == {"Name": "Jürgen", "Address": "jurgen@example.test"}
    assert detail["Subject"] == "Grüße"
    assert detail["MessageID"] == "m-1@example.test"
    assert detail["Text"].strip() == "café text"
    assert "<p>html" in detail["HTML"]
    assert detail["Mailbox"] == BOB
    assert detail["Envelope"] is None
    [inline] = detail["Inline"]
    [attachment] = detail["Attachments"]
    assert (inline["PartID"], inline["ContentType"]) == ("2", "image/png")
    assert attachment == {
        "PartID": "3",
        "FileName": "evil.html",
        "Checksums": {
            "MD5": "e5e471b69ea124fcb46a03a445960b87",
            "SHA1": "7b024847e91ca18e32bc57ae7b7e69da299d2491",
            "SHA256": (
                "c81e4de6cec09ce7579ee9bab6dce349c35d8239931129c4cd3be64c74b0cbac"
            ),
        },
        "ContentType": "text/html",
        "ContentID": "",
        "Size": 39,
    }
    message_id = detail["ID"]
    raw = await get(mail_lab, f"/api/v1/message/{message_id}/raw")
    [stored] = mail_lab.store.messages(BOB)
    assert raw.body == stored
    headers = (await get(mail_lab, f"/api/v1/message/{message_id}/headers")).json()
    assert headers["Subject"] == ["Grüße"]
    assert list(headers) == sorted(headers, key=str.lower)
    part = await get(mail_lab, f"/api/v1/message/{message_id}/part/3")
    assert part.headers["content-type"] == "text/html"
    assert part.headers["content-disposition"].startswith("attachment;")
    assert 'filename="evil.html"' in part.headers["content-disposition"]
    assert "sandbox" in part.headers["content-security-policy"]
    assert part.headers["x-content-type-options"] == "nosniff"
    assert part.body == b"<script>alert(document.cookie)</script>"


@pytest_twisted.ensureDeferred
async def test_bad_ids_and_parameters(mail_lab: MailLab) -> None:
    """
    Unknown IDs, parts and paths are 404; bad parameters and queries 400,
    each with a one-line reason.
    """
    mail_lab.store.deliver(BOB, plain("x"))
    cases = {
        "/api/v1/message/nope": 404,
        "/api/v1/message/nope/raw": 404,
        "/api/v1/message/latest/part/9": 404,
        "/api/v1/nothing": 404,
        "/view/nope.html": 404,
        "/api/v1/messages?limit=abc": 400,
        "/api/v1/messages?start=-1": 400,
        "/api/v1/search": 400,
        "/api/v1/search?query=is:nonsense": 400,
        "/api/v1/search?query=%22open": 400,
        "/api/v1/wait?timeout=0": 400,
        "/api/v1/wait?count=x": 400,
        "/api/v1/search?query=a&tz=Nowhere/Land": 400,
    }
    for path, status in cases.items():
        answer = await get(mail_lab, path)
        assert answer.status == status, path
        assert answer.body.endswith(b"\n") and answer.body.count(b"\n") == 1, path
    answer = await request(mail_lab, "PUT", "/api/v1/messages", body=["x"])
    assert answer.status == 400
    for method, path in [
        ("POST", "/api/v1/messages"),
        ("HEAD", "/api/v1/events"),
        ("HEAD", "/api/v1/wait"),
        ("PUT", "/api/v1/message/latest"),
    ]:
        answer = await request(mail_lab, method, path)
        assert answer.status == 405, (method, path)
    answer = await request(mail_lab, "DELETE", "/api/v1/messages", body={"IDs": ["zz"]})
    assert answer.status == 404
    assert len(mail_lab.store.messages(BOB)) == 1


@pytest_twisted.ensureDeferred
async def test_search_decoded(mail_lab: MailLab) -> None:
    """
    /api/v1/search matches decoded text (encoded-word subject,
    quoted-printable body) and ?mailbox= filters; DELETE /api/v1/search
    deletes the matches only.
    """
    mail_lab.store.deliver(BOB, ATTACHED)
    mail_lab.store.deliver(ALICE, plain("other", to=ALICE))
    found = (await get(mail_lab, "/api/v1/search?query=caf%C3%A9")).json()
    assert [m["Subject"] for m in found["messages"]] == ["Grüße"]
    assert found["messages_count"] == 1 and found["total"] == 2
    found = (await get(mail_lab, "/api/v1/search?query=subject:gr%C3%BC%C3%9Fe")).json()
    assert found["messages_count"] == 1
    listed = (await get(mail_lab, f"/api/v1/messages?mailbox={ALICE}")).json()
    assert [m["Subject"] for m in listed["messages"]] == ["other"]
    boxes = (await get(mail_lab, "/api/v1/mailboxes")).json()
    assert {b["Address"]: b["Total"] for b in boxes["mailboxes"]} == {ALICE: 1, BOB: 1}
    answer = await request(mail_lab, "DELETE", "/api/v1/search?query=other")
    assert answer.status == 200
    assert mail_lab.store.messages(ALICE) == []
    assert len(mail_lab.store.messages(BOB)) == 1


def imap_flags(lab: MailLab, user: str, password: str) -> list[bytes]:
    context = ssl.create_default_context(cafile=str(lab.ca_path))
    with imaplib.IMAP4("localhost", lab.imap_port, timeout=30) as imap:
        imap.starttls(ssl_context=context)
        imap.login(user, password)
        imap.select("INBOX")
        _, data = imap.fetch("1:*", "(FLAGS)")
        return [d for d in data if isinstance(d, bytes)]


def imap_store_seen(lab: MailLab) -> None:
    context = ssl.create_default_context(cafile=str(lab.ca_path))
    with imaplib.IMAP4("localhost", lab.imap_port, timeout=30) as imap:
        imap.starttls(ssl_context=context)
        imap.login(BOB, "bob-password")
        imap.select("INBOX")
        imap.store("1", "-FLAGS", "\\Seen")


@pytest_twisted.ensureDeferred
async def test_one_store_with_imap(mail_lab: MailLab) -> None:
    """
    Reading a message through the API sets \\Seen, which imaplib sees;
    clearing it by IMAP makes the API say unread; deleting through the API
    deletes it for IMAP too.
    """
    mail_lab.store.deliver(BOB, plain("shared"))
    [summary] = (await get(mail_lab, "/api/v1/messages")).json()["messages"]
    assert summary["Read"] is False
    await get(mail_lab, f"/api/v1/message/{summary['ID']}")
    flags = await deferToThread(imap_flags, mail_lab, BOB, "bob-password")
    assert b"\\Seen" in flags[0]
    await deferToThread(imap_store_seen, mail_lab)
    [summary] = (await get(mail_lab, "/api/v1/messages")).json()["messages"]
    assert summary["Read"] is False
    answer = await request(
        mail_lab, "PUT", "/api/v1/messages", body={"IDs": [summary["ID"]], "Read": True}
    )
    assert answer.status == 200
    assert (
        b"\\Seen" in (await deferToThread(imap_flags, mail_lab, BOB, "bob-password"))[0]
    )
    answer = await request(
        mail_lab, "DELETE", "/api/v1/messages", body={"IDs": [summary["ID"]]}
    )
    assert answer.status == 200
    assert await deferToThread(imap_flags, mail_lab, BOB, "bob-password") == []


@pytest_twisted.ensureDeferred
async def test_delete_all_and_info(mail_lab: MailLab) -> None:
    """
    DELETE /api/v1/messages with no IDs deletes everything; /api/v1/info,
    /livez and /readyz answer.
    """
    mail_lab.store.deliver(BOB, plain("a"))
    mail_lab.store.deliver(ALICE, plain("b"))
    info = (await get(mail_lab, "/api/v1/info")).json()
    assert (info["Messages"], info["Unread"]) == (2, 2)
    assert (await request(mail_lab, "DELETE", "/api/v1/messages")).status == 200
    assert (await get(mail_lab, "/api/v1/info")).json()["Messages"] == 0
    assert mail_lab.store.messages(BOB) == [] == mail_lab.store.messages(ALICE)
    for path in ("/livez", "/readyz"):
        assert (await get(mail_lab, path)).status == 200


@pytest_twisted.ensureDeferred
async def test_views(mail_lab: MailLab) -> None:
    """
    /view/ID.html is the HTML body under a CSP that runs no script and
    loads nothing remote, inline images inside it as data: URIs;
    /view/ID.txt is the text; latest works; no HTML part is 404.
    """
    mail_lab.store.deliver(BOB, ATTACHED)
    answer = await get(mail_lab, "/view/latest.html")
    assert answer.status == 200
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    csp = answer.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert "sandbox" in csp and "allow-scripts" not in csp
    message_id = mail_lab.catalog.entries()[0].id
    assert b'<img src="data:image/png;base64,iVBORw0KGgo=">' in answer.body
    text = await get(mail_lab, f"/view/{message_id}.txt")
    assert text.body.strip() == "café text".encode()
    mail_lab.store.deliver(BOB, plain("no html"))
    assert (await get(mail_lab, "/view/latest.html")).status == 404


@pytest_twisted.ensureDeferred
async def test_host_header_checked(mail_lab: MailLab) -> None:
    """
    A request naming another host (DNS rebinding of a loopback server) is
    refused with 421, before it reads anything; loopback names are fine.
    """
    mail_lab.store.deliver(BOB, plain("secret"))
    for host in ("evil.example", "evil.example:8025", "127.0.0.2"):
        answer = await get(mail_lab, "/api/v1/messages", headers={"Host": host})
        assert answer.status == 421, host
        assert b"secret" not in answer.body
    for host in ("localhost", f"127.0.0.1:{mail_lab.http_port}", "[::1]:8025"):
        answer = await get(mail_lab, "/api/v1/messages", headers={"Host": host})
        assert answer.status == 200, host


@pytest_twisted.ensureDeferred
async def test_cross_origin_changes_refused(mail_lab: MailLab) -> None:
    """
    DELETE and PUT from another Origin (or a cross-site fetch) are refused
    with 403 and change nothing; the same origin may.
    """
    mail_lab.store.deliver(BOB, plain("keep"))
    own = f"http://127.0.0.1:{mail_lab.http_port}"
    for headers in (
        {"Origin": "http://evil.example"},
        {"Origin": "http://127.0.0.1:1"},
        {"Sec-Fetch-Site": "cross-site"},
    ):
        answer = await request(mail_lab, "DELETE", "/api/v1/messages", headers=headers)
        assert answer.status == 403, headers
        answer = await request(
            mail_lab, "PUT", "/api/v1/messages", body={"Read": True}, headers=headers
        )
        assert answer.status == 403, headers
    assert len(mail_lab.store.messages(BOB)) == 1
    assert mail_lab.catalog.counts() == (1, 1)
    answer = await request(
        mail_lab, "DELETE", "/api/v1/messages", headers={"Origin": own}
    )
    assert answer.status == 200
    assert mail_lab.store.messages(BOB) == []


@pytest_twisted.ensureDeferred
async def test_wait_long_poll(mail_lab: MailLab) -> None:
    """
    /api/v1/wait answers as soon as the count is met by mail that arrives
    while it waits, with the search's JSON; 408 with a reason on timeout.
    """
    mail_lab.store.deliver(BOB, plain("wanted 1"))
    waiting = get(mail_lab, "/api/v1/wait?query=wanted&count=2&timeout=20")
    while mail_lab.catalog.waiter_count == 0:
        await sleep(0.01)
    mail_lab.store.deliver(BOB, plain("unrelated"))
    mail_lab.store.deliver(ALICE, plain("wanted 2", to=ALICE))
    answer = await waiting
    assert answer.status == 200
    assert [m["Subject"] for m in answer.json()["messages"]] == ["wanted 2", "wanted 1"]
    late = await get(mail_lab, "/api/v1/wait?query=never&timeout=0.2")
    assert late.status == 408
    assert late.body == b"timed out after 0.2 s: 0 of 1 message matched\n"
    assert mail_lab.catalog.waiter_count == 0


def open_and_drop(lab: MailLab, path: str) -> None:
    """Send a request and close the connection without reading."""
    with socket.create_connection(("127.0.0.1", lab.http_port)) as s:
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        s.recv(1) if path.endswith("events") else None


@pytest_twisted.ensureDeferred
async def test_disconnects_leave_nothing(mail_lab: MailLab) -> None:
    """
    A client that goes away mid long-poll or mid event stream leaves no
    waiter, stream or timer behind.
    """
    await deferToThread(open_and_drop, mail_lab, "/api/v1/wait?query=x&timeout=60")
    await deferToThread(open_and_drop, mail_lab, "/api/v1/events")
    for _ in range(200):
        if mail_lab.catalog.waiter_count == 0 and mail_lab.api.stream_count == 0:
            break
        await sleep(0.01)
    assert mail_lab.catalog.waiter_count == 0
    assert mail_lab.api.stream_count == 0
    assert mail_lab.catalog.subscriber_count == 0


def read_events(lab: MailLab, wanted: int) -> list[tuple[str, Any]]:
    with socket.create_connection(("127.0.0.1", lab.http_port), timeout=30) as s:
        s.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
        data = b""
        events: list[tuple[str, Any]] = []
        while len(events) < wanted:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            events = []
            for block in data.split(b"\n\n"):
                lines = dict(
                    line.split(b": ", 1)
                    for line in block.split(b"\n")
                    if b": " in line and not line.startswith(b":")
                )
                if b"event" in lines:
                    events.append(
                        (lines[b"event"].decode(), json.loads(lines[b"data"]))
                    )
        assert b"text/event-stream" in data.split(b"\r\n\r\n")[0]
        return events


@pytest_twisted.ensureDeferred
async def test_event_stream(mail_lab: MailLab) -> None:
    """
    /api/v1/events sends new (a summary as listed), update (Read) and
    delete (IDs) events, each batch followed by stats.
    """
    reading = deferToThread(read_events, mail_lab, 6)
    while mail_lab.api.stream_count == 0:
        await sleep(0.01)
    uid = mail_lab.store.deliver(BOB, plain("live"))
    await sleep(0.05)
    mail_lab.store.folder(BOB).set_flags({uid: ["\\Seen"]})
    await sleep(0.05)
    [entry] = mail_lab.catalog.entries()
    mail_lab.catalog.delete([entry])
    events = await reading
    kinds = [kind for kind, _ in events]
    assert kinds == ["new", "stats", "update", "stats", "delete", "stats"]
    listed = (await get(mail_lab, "/api/v1/messages")).json()
    assert events[0][1]["Subject"] == "live"
    assert events[0][1]["ID"] == entry.id
    assert listed["messages"] == []
    assert events[1][1] == {"Total": 1, "Unread": 1}
    assert events[2][1] == {"ID": entry.id, "Read": True, "Tags": []}
    assert events[4][1] == {"IDs": [entry.id]}
    assert events[5][1] == {"Total": 0, "Unread": 0}


@pytest_twisted.ensureDeferred
async def test_site_root(mail_lab: MailLab) -> None:
    """
    / serves the inbox page (or a placeholder) under the page's CSP.
    """
    answer = await get(mail_lab, "/")
    assert answer.status == 200
    assert b"<title>" in answer.body.lower() or b"<!doctype" in answer.body.lower()
    assert "default-src 'self'" in answer.headers["content-security-policy"]


def test_non_loopback_needs_tls(tmp_path: Any) -> None:
    """
    An HTTP listener off loopback without TLS ends startup with one line.
    """
    lab = MailLab(
        reactor,
        state=tmp_path,
        domains=["example.test"],
        http=["tcp:0:interface=0.0.0.0"],
    )
    with pytest.raises(UsageProblem) as raised:
        lab.prepare()
    assert "without TLS" in str(raised.value)
    assert "\n" not in str(raised.value)


def https_get(lab: MailLab, auth: str | None) -> int:
    context = ssl.create_default_context(cafile=str(lab.ca_path))
    connection = http.client.HTTPSConnection(
        "localhost", lab.https_port, context=context, timeout=30
    )
    headers = {}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(auth.encode()).decode()
    try:
        connection.request("GET", "/api/v1/messages", headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


@pytest.fixture
def exposed_lab(tmp_path: Any) -> Any:
    lab = MailLab(
        reactor,
        state=tmp_path / "state",
        domains=["example.test"],
        users={ALICE: "alice-password"},
        https=["tcp:0:interface=0.0.0.0"],
        http=[EPHEMERAL],
    )
    pytest_twisted.blockon(lab.start())
    yield lab
    pytest_twisted.blockon(lab.stop())


@pytest_twisted.ensureDeferred
async def test_off_loopback_needs_login(exposed_lab: MailLab) -> None:
    """
    Off loopback (over the lab's TLS), the API asks for a lab user's login
    (HTTP Basic): none or a wrong password is 401; loopback needs none.
    """
    assert await deferToThread(https_get, exposed_lab, None) == 401
    assert await deferToThread(https_get, exposed_lab, f"{ALICE}:wrong") == 401
    assert await deferToThread(https_get, exposed_lab, f"{ALICE}:alice-password") == 200
    assert (await get(exposed_lab, "/api/v1/messages")).status == 200


@pytest_twisted.ensureDeferred
async def test_stalled_event_client_dropped(mail_lab: MailLab) -> None:
    """
    An event stream client that stops reading is dropped once its buffers
    are full, instead of its events piling up in the server's memory; a
    reading client on the same stream keeps going.
    """
    stalled = socket.socket()
    stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stalled.connect(("127.0.0.1", mail_lab.http_port))
    stalled.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
    try:
        while mail_lab.api.stream_count == 0:
            await sleep(0.01)
        chunk = b": " + b"x" * 100_000 + b"\n\n"
        for _ in range(200):
            mail_lab.api.events.send_all(chunk)
            if mail_lab.api.stream_count == 0:
                break
            await sleep(0.005)
        assert mail_lab.api.stream_count == 0
        assert mail_lab.catalog.subscriber_count == 0
    finally:
        stalled.close()


def many_clients(lab: MailLab, streams: int, polls: int) -> list[socket.socket]:
    """Open event streams and long-polls, each its own connection."""
    opened = []
    for i in range(streams + polls):
        s = socket.create_connection(("127.0.0.1", lab.http_port), timeout=30)
        path = (
            "/api/v1/events" if i < streams else "/api/v1/wait?query=crowd&timeout=60"
        )
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
        opened.append(s)
    return opened


def read_until(s: socket.socket, marker: bytes) -> bytes:
    data = b""
    while marker not in data:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


@pytest.fixture
def crowded_lab(tmp_path: Any) -> Any:
    """A lab whose HTTP listener has room for 1,000 connections at once."""
    lab = MailLab(
        reactor,
        state=tmp_path / "state",
        domains=["example.test"],
        users={BOB: "bob-password"},
        http=["tcp:0:interface=127.0.0.1:backlog=1024"],
    )
    pytest_twisted.blockon(lab.start())
    yield lab
    pytest_twisted.blockon(lab.stop())


@pytest_twisted.ensureDeferred
async def test_many_clients(crowded_lab: MailLab) -> None:
    """
    500 event streams and 500 long-polls at once: one delivery reaches every
    stream and answers every poll; the server keeps one subscription and one
    keep-alive timer for all streams, and nothing once they are gone.
    """
    mail_lab = crowded_lab
    opened = await deferToThread(many_clients, mail_lab, 500, 500)
    try:
        for _ in range(1000):
            if (
                mail_lab.api.stream_count == 500
                and mail_lab.catalog.waiter_count == 500
            ):
                break
            await sleep(0.01)
        assert mail_lab.api.stream_count == 500
        assert mail_lab.catalog.waiter_count == 500
        assert mail_lab.catalog.subscriber_count == 1
        timers = [
            c
            for c in reactor.getDelayedCalls()
            if "LoopingCall" in repr(c.func)  # type: ignore[attr-defined]
        ]
        assert len(timers) <= 1 + 1  # the API's keep-alive (and at most one other)
        mail_lab.store.deliver(BOB, plain("crowd"))

        def read_all() -> list[bytes]:
            return [
                read_until(s, b"event: new" if i < 500 else b"crowd")
                for i, s in enumerate(opened)
            ]

        answers = await deferToThread(read_all)
        assert all(b"event: new" in a for a in answers[:500])
        assert all(b"200 OK" in a and b"crowd" in a for a in answers[500:])
    finally:
        for s in opened:
            s.close()
    for _ in range(1000):
        if mail_lab.api.stream_count == 0 and mail_lab.catalog.waiter_count == 0:
            break
        await sleep(0.01)
    assert mail_lab.api.stream_count == 0
    assert mail_lab.catalog.waiter_count == 0
    assert mail_lab.catalog.subscriber_count == 0


@pytest_twisted.ensureDeferred
async def test_stop_ends_streams(tmp_path: Any) -> None:
    """
    Stopping the lab ends its open event streams cleanly (the client sees
    the end of the response), with no error logged.
    """
    lab = MailLab(reactor, state=tmp_path, domains=["example.test"], http=[EPHEMERAL])
    await lab.start()
    errors: list[Any] = []
    from twisted.logger import ILogObserver, globalLogPublisher
    from zope.interface import provider

    @provider(ILogObserver)
    def observe(event: dict[str, Any]) -> None:
        if event.get("log_failure") is not None or event.get("isError"):
            errors.append(event)

    globalLogPublisher.addObserver(observe)
    try:

        def connect() -> socket.socket:
            s = socket.create_connection(("127.0.0.1", lab.http_port), timeout=30)
            s.sendall(b"GET /api/v1/events HTTP/1.1\r\nHost: localhost\r\n\r\n")
            return s

        s = await deferToThread(connect)
        while lab.api.stream_count == 0:
            await sleep(0.01)
        await lab.stop()
        data = await deferToThread(lambda: read_until(s, b"0\r\n\r\n"))
        s.close()
        assert data.endswith(b"0\r\n\r\n")
        assert lab.api.stream_count == 0
    finally:
        globalLogPublisher.removeObserver(observe)
    assert errors == []
