"""
Tests for L{twisted_netlab.mail.lab.web.chaos}: Mailpit's C{/api/v1/chaos}
and our C{/api/v1/faults} over real loopback sockets (the C{mail_lab}
fixture), with http.client and smtplib in threads, and the npm
C{mailpit-api} client as Mailpit's users run it.
"""

from __future__ import annotations

import http.client
import json
import shutil
import smtplib
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThread

from twisted_netlab.mail.lab.service import MailLab

ALICE = "alice@example.test"
NODE_DIR = Path(__file__).parents[3] / "interop" / "node"


@dataclass
class Answer:
    status: int
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode()


def call(
    lab: MailLab,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> Deferred[Answer]:
    """One HTTP request to the lab's API, in a thread."""

    def run() -> Answer:
        connection = http.client.HTTPConnection("127.0.0.1", lab.http_port, timeout=30)
        try:
            data = raw if raw is not None else None
            if body is not None:
                data = json.dumps(body).encode()
            connection.request(method, path, body=data, headers=headers or {})
            response = connection.getresponse()
            return Answer(response.status, response.read())
        finally:
            connection.close()

    return deferToThread(run)


def mail_from_code(lab: MailLab, command: str = "mail") -> Deferred[int]:
    """The reply code to MAIL FROM (or RCPT TO) on a fresh SMTP session."""

    def run() -> int:
        with smtplib.SMTP("127.0.0.1", lab.smtp_port, timeout=10) as client:
            client.ehlo("client.test")
            code, _ = client.mail("sender@remote.test")
            if command == "rcpt" and code == 250:
                code, _ = client.rcpt(ALICE)
            return int(code)

    return deferToThread(run)


@pytest_twisted.ensureDeferred
async def test_chaos_get_put(mail_lab: MailLab) -> None:
    """
    GET shows Mailpit's three triggers, off; PUT sets them (each a fault
    of the lab at MAIL, RCPT, AUTH) and answers the new triggers; a trigger
    left out goes back to off; {} turns all off.
    """
    off = {"ErrorCode": 451, "Probability": 0}
    answer = await call(mail_lab, "GET", "/api/v1/chaos")
    assert answer.status == 200
    assert answer.json() == {"Sender": off, "Recipient": off, "Authentication": off}
    answer = await call(
        mail_lab,
        "PUT",
        "/api/v1/chaos",
        {"Sender": {"ErrorCode": 421, "Probability": 100}},
    )
    assert answer.json()["Sender"] == {"ErrorCode": 421, "Probability": 100}
    assert [h.spec for h in mail_lab.faults] == [
        "smtp.mail:reply=421 Chaos trigger Sender"
    ]
    assert await mail_from_code(mail_lab) == 421
    answer = await call(
        mail_lab,
        "PUT",
        "/api/v1/chaos",
        {"Recipient": {"ErrorCode": 550, "Probability": 100}},
    )
    assert answer.json() == {
        "Sender": off,
        "Recipient": {"ErrorCode": 550, "Probability": 100},
        "Authentication": off,
    }
    assert await mail_from_code(mail_lab) == 250
    assert await mail_from_code(mail_lab, "rcpt") == 550
    answer = await call(mail_lab, "PUT", "/api/v1/chaos", {})
    assert answer.json()["Recipient"] == off
    assert list(mail_lab.faults) == []
    assert await mail_from_code(mail_lab, "rcpt") == 250


@pytest_twisted.ensureDeferred
async def test_chaos_bad_input(mail_lab: MailLab) -> None:
    """
    Bad triggers are a 400 with one line, and change nothing.
    """
    cases = [
        ({"Sender": {"ErrorCode": 250, "Probability": 5}}, "from 400 to 599"),
        ({"Sender": {"ErrorCode": 451, "Probability": 101}}, "from 0 to 100"),
        ({"Sender": {"ErrorCode": "451", "Probability": 1}}, "whole number"),
        ({"Sender": {"ErrorCode": 461, "Probability": 1}}, "not a 4xx or 5xx"),
        ({"Helo": {"ErrorCode": 451, "Probability": 1}}, "unknown trigger 'Helo'"),
        ({"Sender": 5}, "must be an object"),
        ([1, 2], "must be a JSON object"),
    ]
    for body, reason in cases:
        answer = await call(mail_lab, "PUT", "/api/v1/chaos", body)
        assert answer.status == 400, body
        assert reason in answer.text and answer.text.count("\n") == 1, answer.text
    answer = await call(mail_lab, "PUT", "/api/v1/chaos", raw=b"{nope")
    assert (answer.status, answer.text) == (400, "the request body is not JSON\n")
    assert list(mail_lab.faults) == []


@pytest_twisted.ensureDeferred
async def test_faults_list_add_remove(mail_lab: MailLab) -> None:
    """
    /api/v1/faults adds a fault from its spec (201), lists each with its
    hits, shows one, removes one (then 404) or all; a bad spec is a 400
    with the parser's one line.
    """
    answer = await call(
        mail_lab, "POST", "/api/v1/faults", {"Spec": "mail:reply=451:times=2"}
    )
    assert answer.status == 201
    added = answer.json()
    assert added["Spec"] == "smtp.mail:reply=451:times=2"
    assert (added["Hits"], added["Remaining"]) == (0, 2)
    for expected in (451, 451, 250):
        assert await mail_from_code(mail_lab) == expected
    listing = (await call(mail_lab, "GET", "/api/v1/faults")).json()
    assert [(f["ID"], f["Hits"], f["Remaining"]) for f in listing["Faults"]] == [
        (added["ID"], 2, 0)
    ]
    assert listing["Hits"] == {"smtp.mail": 2}
    one = await call(mail_lab, "GET", f"/api/v1/faults/{added['ID']}")
    assert one.json()["Hits"] == 2
    gone = await call(mail_lab, "DELETE", f"/api/v1/faults/{added['ID']}")
    assert gone.status == 200
    assert (await call(mail_lab, "GET", f"/api/v1/faults/{added['ID']}")).status == 404
    assert (await call(mail_lab, "DELETE", "/api/v1/faults/nope")).status == 404
    bad = await call(mail_lab, "POST", "/api/v1/faults", {"Spec": "rcpt:reply=250"})
    assert (bad.status, bad.text) == (
        400,
        "SMTP reply code 250 is not a 4xx or 5xx code\n",
    )
    assert (await call(mail_lab, "POST", "/api/v1/faults", {"spec": 1})).status == 400
    for spec in ("rcpt:drop", "imap.noop:reply=BAD"):
        await call(mail_lab, "POST", "/api/v1/faults", {"Spec": spec})
    assert len(mail_lab.faults) == 2
    assert (await call(mail_lab, "DELETE", "/api/v1/faults")).status == 200
    assert list(mail_lab.faults) == []


@pytest_twisted.ensureDeferred
async def test_faults_checked_host_and_origin(mail_lab: MailLab) -> None:
    """
    The fault resources sit behind the API's Host and Origin checks: a
    foreign Host, or a PUT from another site, is refused and changes
    nothing.
    """
    answer = await call(
        mail_lab, "GET", "/api/v1/faults", headers={"Host": "evil.example"}
    )
    assert answer.status == 421
    answer = await call(
        mail_lab,
        "PUT",
        "/api/v1/chaos",
        {"Sender": {"ErrorCode": 451, "Probability": 100}},
        headers={"Origin": "http://evil.example"},
    )
    assert answer.status == 403
    assert list(mail_lab.faults) == []


@pytest_twisted.ensureDeferred
async def test_listener_faults_never_touch_http(mail_lab: MailLab) -> None:
    """
    Faults on every SMTP and IMAP stage (drops, delays, throttling) leave
    the HTTP API answering as usual, while the SMTP listener is faulted.
    """
    for spec in [
        "smtp.connect:drop=abort",
        "imap.connect:drop",
        "ehlo:throttle=1",
        "imap.fetch:delay=60",
        "imap.noop:reply=BYE",
    ]:
        mail_lab.faults.add(spec)

    def smtp_refused() -> bool:
        try:
            with smtplib.SMTP("127.0.0.1", mail_lab.smtp_port, timeout=5) as client:
                client.noop()
        except (smtplib.SMTPException, OSError):
            return True
        return False

    assert await deferToThread(smtp_refused)
    for path in ("/api/v1/messages", "/api/v1/info", "/api/v1/faults", "/api/v1/chaos"):
        answer = await call(mail_lab, "GET", path)
        assert answer.status == 200, path
    assert len(mail_lab.faults) == 5


@pytest_twisted.ensureDeferred
async def test_reset_removes_faults(mail_lab: MailLab) -> None:
    """
    MailLab.reset (what the fixture does between tests) removes every
    fault, chaos triggers included.
    """
    mail_lab.faults.add("rcpt:reply=451")
    await call(
        mail_lab,
        "PUT",
        "/api/v1/chaos",
        {"Sender": {"ErrorCode": 451, "Probability": 50}},
    )
    mail_lab.reset()
    assert list(mail_lab.faults) == []
    triggers = (await call(mail_lab, "GET", "/api/v1/chaos")).json()
    assert triggers["Sender"]["Probability"] == 0


NODE_SCRIPT = """
import { MailpitClient } from "mailpit-api";
const client = new MailpitClient(process.argv[2]);
const before = await client.getChaosTriggers();
const set = await client.setChaosTriggers({
  Recipient: { ErrorCode: 452, Probability: 100 },
  Authentication: { ErrorCode: 454, Probability: 25 },
});
console.log(JSON.stringify({ before, set }));
"""

RESET_SCRIPT = """
import { MailpitClient } from "mailpit-api";
const client = new MailpitClient(process.argv[2]);
console.log(JSON.stringify(await client.setChaosTriggers()));
"""


def run_node(script: str, url: str, tmp_path: Path) -> Any:
    path = NODE_DIR / f".chaos-{tmp_path.name}.mjs"
    path.write_text(script)
    try:
        result = subprocess.run(
            ["node", str(path), url],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=NODE_DIR,
            check=False,
        )
    finally:
        path.unlink()
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest_twisted.ensureDeferred
async def test_mailpit_api_client(mail_lab: MailLab, tmp_path: Path) -> None:
    """
    The npm mailpit-api client's getChaosTriggers and setChaosTriggers
    work against the lab unchanged, and what they set faults SMTP.
    """
    if shutil.which("node") is None:
        pytest.skip("node is not installed (Debian package nodejs)")
    if not (NODE_DIR / "node_modules" / "mailpit-api").is_dir():
        pytest.skip("npm ci --prefix tests/interop/node has not been run")
    url = f"http://127.0.0.1:{mail_lab.http_port}"
    answer = await deferToThread(run_node, NODE_SCRIPT, url, tmp_path)
    assert answer["before"]["Recipient"] == {"ErrorCode": 451, "Probability": 0}
    assert answer["set"] == {
        "Sender": {"ErrorCode": 451, "Probability": 0},
        "Recipient": {"ErrorCode": 452, "Probability": 100},
        "Authentication": {"ErrorCode": 454, "Probability": 25},
    }
    assert await mail_from_code(mail_lab, "rcpt") == 452
    reset = await deferToThread(run_node, RESET_SCRIPT, url, tmp_path)
    assert reset["Recipient"]["Probability"] == 0
    assert list(mail_lab.faults) == []
