"""
C{netlab send} against the mail lab, as a new user would try it: STARTTLS
with the lab's certificate verified, AUTH with a password typed at the
getpass prompt, a message with an attachment.  Uses the C{mail_lab} pytest
fixture that the package ships.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.utils import getProcessOutputAndValue

from tests.terminal import Terminal

REPO = Path(__file__).parents[2]
ALICE = "alice@example.test"
PASSWORD = "alice-password"


def without_received(stored: bytes) -> bytes:
    """
    The stored message minus the C{Received:} header the lab puts on top.
    """
    lines = stored.split(b"\r\n")
    assert lines[0].startswith(b"Received: ")
    rest = 1
    while lines[rest][:1] in (b" ", b"\t"):
        rest += 1
    return b"\r\n".join(lines[rest:])


@pytest.fixture
def mail_lab_options() -> dict[str, Any]:
    return {
        "domains": ["example.test"],
        "users": {ALICE: PASSWORD, "bob@example.test": "x"},
    }


@pytest_twisted.ensureDeferred
async def test_send_to_lab_with_prompt(mail_lab: Any, tmp_path: Path) -> None:
    """
    The issue's "done when": C{netlab send} prompts for the password,
    delivers a message with an attachment to the lab over STARTTLS with
    AUTH (certificate verified with C{--cafile}), and the stored message is
    byte for byte what C{--dry-run} printed (plus the lab's Received line).
    """
    from twisted.internet import reactor

    attachment = tmp_path / "data.bin"
    attachment.write_bytes(bytes(range(256)) * 64)
    args = [
        "-m",
        "twisted_netlab",
        "send",
        "--server",
        f"127.0.0.1:{mail_lab.smtp_port}",
        "--cafile",
        str(mail_lab.ca_path),
        "--from",
        ALICE,
        "--to",
        "Bob Müller <bob@example.test>",
        "--bcc",
        ALICE,
        "--subject",
        "Grüße",
        "--body",
        "Süßes Tiramisù\n.leading dot\n",
        "--attach",
        str(attachment),
        "--header",
        "Date: Tue, 01 Jan 2030 00:00:00 +0000",
        "--header",
        "Message-ID: <lab-test@example.test>",
    ]
    terminal = Terminal(f"Password for {ALICE}: ".encode(), PASSWORD.encode())
    reactor.spawnProcess(
        terminal,
        sys.executable,
        [sys.executable, *args, "--user", ALICE],
        env=dict(os.environ),
        path=str(REPO),
        usePTY=True,
    )
    terminal.ended.addTimeout(60, reactor)
    code = await terminal.ended
    output = terminal.output.decode("utf-8", "replace")
    assert code == 0, output
    assert terminal.prompts == 1
    assert PASSWORD not in output
    assert "accepted bob@example.test" in output
    assert f"accepted {ALICE}" in output

    dry, err, dry_code = await getProcessOutputAndValue(
        sys.executable, [*args, "--dry-run"], env=dict(os.environ), path=str(REPO)
    )
    assert dry_code == 0, err
    [to_bob] = mail_lab.messages("bob@example.test")
    [to_alice] = mail_lab.messages(ALICE)
    assert without_received(to_bob) == dry
    assert without_received(to_alice) == dry
    assert b"Bcc" not in dry
