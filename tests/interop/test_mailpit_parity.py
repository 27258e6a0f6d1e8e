"""
The Mailpit features of issue 20 driven by software no one here wrote: the
npm C{mailpit-api} client (unchanged) through tags, send and release; the
PyPI C{mailpit-api-client} reading the envelope's Bcc; release and
forwarding into a second lab started as the relay and into aiosmtpd with
STARTTLS and AUTH; the webhook into Python's C{http.server}.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
import smtplib
import ssl
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.threads import deferToThread

from tests.certs import ServerCertificate, make_server_certificate
from tests.interop.aiosmtpd_peer import Peer, aiosmtpd_peer
from tests.mail.lab.web.swagger import check_answer, load_mailpit_swagger
from twisted_netlab.mail.lab.relay import RelayConfig
from twisted_netlab.mail.lab.service import MailLab

NODE_DIR = Path(__file__).parent / "node"
ALICE = "alice@example.test"
BOB = "bob@example.test"
CAROL = "carol@relay.test"
OPS = "ops@relay.test"

pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH:UserWarning")


def png() -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (300, 300), (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


async def forwarded(lab: MailLab) -> None:
    """Once the lab's forwarder has nothing left to send."""
    assert lab.outbox.forwarder is not None
    await lab.outbox.forwarder.when_idle()


def smtp_send(lab: MailLab, raw: bytes, to: list[str], sender: str = ALICE) -> None:
    """smtplib over STARTTLS, the lab's certificate verified."""
    context = ssl.create_default_context(cafile=str(lab.ca_path))
    with smtplib.SMTP("localhost", lab.smtp_port, timeout=30) as client:
        client.starttls(context=context)
        client.sendmail(sender, to, raw)


@pytest.fixture
def relay_lab(tmp_path: Path) -> Iterator[MailLab]:
    """A second lab, the smarthost: it takes carol's and ops' mail with AUTH."""
    lab = MailLab(
        reactor,
        state=tmp_path / "relay-lab",
        domains=("relay.test",),
        users={CAROL: "carol-password", OPS: "ops-password"},
        imap=(),
        http=(),
    )
    pytest_twisted.blockon(lab.start())
    try:
        yield lab
    finally:
        pytest_twisted.blockon(lab.stop())


def relay_through(lab: MailLab, **options: Any) -> RelayConfig:
    import re

    return RelayConfig(
        host="localhost",
        port=lab.smtp_port,
        cafile=str(lab.ca_path),
        user=CAROL,
        password="carol-password",
        allow=re.compile(r"@relay\.test\Z"),
        timeout=10,
        **options,
    )


@pytest.fixture
def mail_lab_options(relay_lab: MailLab, tmp_path: Path) -> dict[str, Any]:
    return {
        "domains": ("example.test",),
        "users": {ALICE: "alice-password", BOB: "bob-password"},
        "relay": relay_through(relay_lab, forward=(OPS,)),
        "fresh": True,
        "state": tmp_path / "lab",
    }


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
@pytest.mark.skipif(
    not (NODE_DIR / "node_modules" / "mailpit-api").is_dir(),
    reason="run: npm ci --prefix tests/interop/node",
)
@pytest_twisted.ensureDeferred
async def test_npm_mailpit_api_tags_send_release(
    mail_lab: MailLab, relay_lab: MailLab
) -> None:
    """
    The npm mailpit-api client, unchanged: sendMessage stores a message
    with its Tags and Bcc (answering its ID), the thumbnail is a JPEG,
    setTags/renameTag/deleteTag/getTags change and show the tags, tag:
    and -tag: search them, releaseMessage sends the stored bytes to the
    relay lab (a refused recipient is an error), getConfiguration shows
    the relay and getInfo the counters and tags.
    """

    def run() -> dict[str, Any]:
        done = subprocess.run(
            [
                "node",
                str(NODE_DIR / "mailpit_parity.mjs"),
                f"http://127.0.0.1:{mail_lab.http_port}",
                CAROL,
                base64.b64encode(png()).decode(),
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        result: dict[str, Any] = json.loads(done.stdout)
        return result

    report = await deferToThread(run)
    assert report["message"] == {
        "Subject": "Sent by mailpit-api",
        "Tags": ["From API", "beta"],
        "Bcc": ["alice@example.test"],
        "Username": "",
        "Attachments": ["red.png"],
    }
    assert report["thumb"]["type"] == "image/jpeg"
    assert report["thumb"]["size"] > 100
    assert report["tagsAfterSend"] == ["From API", "beta"]
    # alice's copy (she was in Bcc) keeps the tags it was sent with.
    assert report["tagsAfterSet"] == ["From API", "beta", "one", "two"]
    assert report["tagsAfterRename"] == ["first"]
    assert report["search"] == [report["sentID"]]
    [other] = report["notSearch"]  # alice's copy
    assert other != report["sentID"]
    assert report["listTags"] == [["From API", "beta"], ["first"]]
    assert report["released"] == "ok"
    assert "400" in report["refused"] and "not-allowed.example" in report["refused"]
    assert report["relay"]["Enabled"] is True
    assert report["relay"]["SMTPServer"] == f"localhost:{relay_lab.smtp_port}"
    assert report["stats"]["SMTPAccepted"] == 1
    assert report["infoTags"] == {"From API": 1, "beta": 1, "first": 1}
    # The release reached carol unchanged; the forward reached ops.
    [stored] = mail_lab.store.messages(BOB)
    [released] = relay_lab.store.messages(CAROL)
    assert released.endswith(stored)
    await forwarded(mail_lab)
    [copy] = relay_lab.store.messages(OPS)
    assert copy.endswith(stored)
    assert b"Bcc:" not in stored.split(b"\r\n\r\n")[0]


@pytest_twisted.ensureDeferred
async def test_forwarding_into_a_second_lab(
    mail_lab: MailLab, relay_lab: MailLab
) -> None:
    """
    --forward: every message captured over SMTP also reaches the forward
    address through the relay lab (STARTTLS, AUTH), unchanged, after the
    250; the counters say so.
    """
    raw = (
        b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: fw\r\n\r\nx\r\n"
    )
    await deferToThread(smtp_send, mail_lab, raw, [BOB])
    await forwarded(mail_lab)
    [copy] = relay_lab.store.messages(OPS)
    [stored] = mail_lab.store.messages(BOB)
    assert copy.endswith(stored)
    assert relay_lab.store.messages(CAROL) == []
    assert mail_lab.stats.forwarding.sent == 1


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> ServerCertificate:
    return make_server_certificate(tmp_path_factory.mktemp("certs"))


@pytest_twisted.ensureDeferred
async def test_release_and_forward_into_aiosmtpd(
    certificate: ServerCertificate, tmp_path: Path
) -> None:
    """
    A lab whose relay is aiosmtpd (STARTTLS required, the CA verified,
    AUTH): the HTTP release and the forwarding both arrive there as stored,
    with the lab's login.
    """
    import re

    with aiosmtpd_peer(certificate, users={"relayuser": "pw"}) as peer:
        peer_: Peer = peer
        lab = MailLab(
            reactor,
            state=tmp_path / "lab",
            domains=("example.test",),
            users={BOB: "bob-password"},
            http=("tcp:0:interface=127.0.0.1",),
            imap=(),
            relay=RelayConfig(
                host=peer_.host,
                port=peer_.port,
                cafile=str(certificate.ca),
                user="relayuser",
                password="pw",
                allow=re.compile(r"@example\.com\Z"),
                forward=("ops@example.com",),
                timeout=10,
            ),
        )
        await lab.start()
        try:
            raw = b"From: a@example.test\r\nTo: bob@example.test\r\n\r\nb\r\n"
            await deferToThread(smtp_send, lab, raw, [BOB], "a@example.test")
            await forwarded(lab)
            assert len(peer_.recorder.arrivals) == 1
            [entry] = lab.search("")
            from tests.mail.lab.web.test_api import request

            answer = await request(
                lab,
                "POST",
                f"/api/v1/message/{entry.id}/release",
                {"To": ["customer@example.com"]},
            )
            assert (answer.status, answer.body) == (200, b"ok")
            [stored] = lab.store.messages(BOB)
            arrivals = peer_.recorder.arrivals
            assert [a.rcpt_tos for a in arrivals] == [
                ["ops@example.com"],
                ["customer@example.com"],
            ]
            assert all(a.content == stored for a in arrivals)
            assert all(a.mail_from == "a@example.test" for a in arrivals)
            assert [login for _, login in peer_.recorder.logins] == [b"relayuser"] * 2
        finally:
            await lab.stop()


class _Receiver(BaseHTTPRequestHandler):
    """Records each POST (path, headers, JSON body) and answers 204."""

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length)
        self.server.posts.append(  # type: ignore[attr-defined]
            (self.path, dict(self.headers), json.loads(body))
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[ThreadingHTTPServer]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.posts = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest_twisted.ensureDeferred
async def test_webhook_into_http_server(
    receiver: ThreadingHTTPServer, tmp_path: Path
) -> None:
    """
    --webhook: each new message (SMTP and the send API) is POSTed to
    Python's http.server as Mailpit's MessageSummary (checked against the
    swagger schema), with its tags and the envelope's Bcc, JSON typed.
    """
    url = f"http://127.0.0.1:{receiver.server_port}/hook"
    lab = MailLab(
        reactor,
        state=tmp_path / "lab",
        domains=("example.test",),
        users={ALICE: "alice-password", BOB: "bob-password"},
        http=("tcp:0:interface=127.0.0.1",),
        imap=(),
        webhook=url,
        webhook_limit=0,
    )
    await lab.start()
    try:
        raw = (
            b"From: alice@example.test\r\nTo: bob@example.test\r\n"
            b"X-Tags: hooked\r\nSubject: for the hook\r\n\r\nhello hook\r\n"
        )
        await deferToThread(smtp_send, lab, raw, [BOB, ALICE])
        posts: list[Any] = receiver.posts  # type: ignore[attr-defined]
        assert lab.outbox.webhook is not None
        await lab.outbox.webhook.when_idle()
        assert len(posts) == 2
        swagger = load_mailpit_swagger()
        schema = {"$ref": "#/definitions/MessageSummary"}
        from tests.mail.lab.web.swagger import schema_problems

        for path, headers, body in posts:
            assert path == "/hook"
            assert headers["Content-Type"] == "application/json"
            assert schema_problems(swagger, schema, body) == []
            assert body["Subject"] == "for the hook"
            assert body["Tags"] == ["hooked"]
            assert body["Snippet"] == "hello hook"
        # Two copies, one per mailbox; the copy whose headers name only bob
        # shows alice, the envelope-only recipient, in Bcc.
        assert {p[2]["Mailbox"] for p in posts} == {ALICE, BOB}
        assert all(p[2]["Bcc"] == [{"Name": "", "Address": ALICE}] for p in posts)
        assert {p[2]["ID"] for p in posts} == {e.id for e in lab.search("")}
        assert lab.stats.webhook.sent == 2
        check_answer(swagger, "/api/v1/info", "get", 200, lab.api.info())
    finally:
        await lab.stop()


@pytest_twisted.ensureDeferred
async def test_pypi_client_sees_the_envelope_bcc(mail_lab: MailLab) -> None:
    """
    The PyPI mailpit-api-client, unchanged, reads the envelope-only
    recipient in the Bcc of the list and of the message, and the stored
    bytes have no Bcc header.
    """
    from mailpit.client.api import API

    raw = (
        b"From: alice@example.test\r\nTo: bob@example.test\r\nSubject: bcc\r\n"
        b"Delivered-To: bob@example.test\r\n\r\nbody\r\n"
    )
    await deferToThread(
        smtp_send, mail_lab, raw, [BOB, "bob+hidden@example.test"], ALICE
    )
    api = API(f"http://127.0.0.1:{mail_lab.http_port}", timeout=30)

    def use() -> tuple[list[str], list[str]]:
        [summary] = api.get_messages().messages
        message = api.get_message(summary.id)
        return (
            [c.address for c in summary.bcc],
            [c.address for c in message.bcc or []],
        )

    assert await deferToThread(use) == (
        ["bob+hidden@example.test"],
        ["bob+hidden@example.test"],
    )
    assert all(b"Bcc" not in m for m in mail_lab.store.messages(BOB))
