"""
Tests for the test-inbox side of L{twisted_netlab.mail.lab.service.MailLab}:
search, wait_for, clear, reset; and the C{mail_lab} fixture's reuse.
"""

from __future__ import annotations

from typing import Any

import pytest
import pytest_twisted

from twisted_netlab.mail.lab.service import MailLab
from twisted_netlab.mail.lab.store.catalog import WaitTimeout
from twisted_netlab.mail.lab.store.maildir import Envelope
from twisted_netlab.mail.lab.store.search import QueryError
from twisted_netlab.mail.lab.web.shapes import detail

ALICE = "alice@example.test"
BOB = "bob@example.test"


def message(subject: str, body: str = "hello") -> bytes:
    return f"To: {BOB}\r\nSubject: {subject}\r\n\r\n{body}\r\n".encode()


@pytest_twisted.ensureDeferred
async def test_search_and_captured_messages(mail_lab: MailLab) -> None:
    """
    search() returns captured messages newest first: raw bytes as stored,
    the parsed view's fields at hand, the mailbox.
    """
    mail_lab.store.deliver(BOB, message("=?utf-8?q?caf=C3=A9?="))
    mail_lab.store.deliver(ALICE, message("other"))
    [found] = mail_lab.search("café")
    assert found.subject == "café"
    assert found.text.strip() == "hello"
    assert found.mailbox == BOB
    assert found.raw == mail_lab.store.messages(BOB)[0]
    assert found.parsed.to[0].address == BOB
    assert [m.subject for m in mail_lab.search()] == ["other", "café"]
    with pytest.raises(QueryError):
        mail_lab.search("is:nonsense")


@pytest_twisted.ensureDeferred
async def test_wait_for(mail_lab: MailLab) -> None:
    """
    wait_for fires once enough messages match, counting those already
    there; it times out with WaitTimeout.
    """
    mail_lab.store.deliver(BOB, message("order 1"))
    waiting = mail_lab.wait_for("subject:order", count=2, timeout=10)
    assert not waiting.called
    mail_lab.store.deliver(BOB, message("order 2"))
    found = await waiting
    assert [m.subject for m in found] == ["order 2", "order 1"]
    with pytest.raises(WaitTimeout):
        await mail_lab.wait_for("subject:never", timeout=0.1)


@pytest_twisted.ensureDeferred
async def test_clear(mail_lab: MailLab) -> None:
    """
    clear() deletes every message of every user and mailbox; users stay.
    """
    mail_lab.store.deliver(BOB, message("a"))
    mail_lab.store.create_mailbox(ALICE, "Archive")
    mail_lab.store.deliver(ALICE, message("b"), "Archive")
    mail_lab.clear()
    assert mail_lab.search() == []
    assert mail_lab.store.messages(ALICE, "Archive") == []
    assert sorted(mail_lab.users.addresses()) == [ALICE, BOB]


@pytest_twisted.ensureDeferred
async def test_fixture_first_of_two(mail_lab: MailLab) -> None:
    """
    (With the next test.) Leave mail, a mailbox and a user behind.
    """
    assert mail_lab.store.deliver(BOB, message("left behind")) == 1
    mail_lab.store.create_mailbox(BOB, "Old")
    mail_lab.add_user("carol@example.test", "carol-password")
    test_fixture_first_of_two.lab = mail_lab


@pytest_twisted.ensureDeferred
async def test_fixture_reset_between_tests(mail_lab: MailLab) -> None:
    """
    The next test gets the same lab (no new server), reset: no mail, no
    extra mailbox or user, UIDs from 1 again.
    """
    assert mail_lab is getattr(test_fixture_first_of_two, "lab", mail_lab)
    assert mail_lab.search() == []
    assert mail_lab.store.mailboxes(BOB) == ["INBOX"]
    assert sorted(mail_lab.users.addresses()) == [ALICE, BOB]
    assert mail_lab.store.deliver(BOB, message("fresh")) == 1
    [found] = mail_lab.search()
    assert found.subject == "fresh"


class TestFreshLab:
    @pytest.fixture
    def mail_lab_options(self) -> dict[str, Any]:
        return {
            "domains": ["example.test"],
            "users": {ALICE: "alice-password"},
            "fresh": True,
        }

    @pytest_twisted.ensureDeferred
    async def test_fresh(self, mail_lab: MailLab) -> None:
        """
        "fresh": True in the options gives the test a lab of its own.
        """
        assert mail_lab is not getattr(test_fixture_first_of_two, "lab", None)
        assert mail_lab.users.addresses() == [ALICE]


@pytest_twisted.ensureDeferred
async def test_envelope_shown(mail_lab: MailLab) -> None:
    """
    The envelope the store keeps with a message is in the detail's
    Envelope, in search results, and matched by to: (Bcc recipients).
    """
    envelope = Envelope(ALICE, (BOB, "hidden@else.test"), "127.0.0.1", True, ALICE, 0.0)
    mail_lab.store.deliver_many(message("bcc'd"), [BOB], envelope=envelope)
    [entry] = mail_lab.catalog.entries()
    shown = detail(entry, entry.parsed())["Envelope"]
    assert shown == {
        "MailFrom": ALICE,
        "RcptTo": [BOB, "hidden@else.test"],
        "Client": "127.0.0.1",
        "TLS": True,
        "AuthUser": ALICE,
        "Received": "1970-01-01T00:00:00.000Z",
        "Via": "smtp",
    }
    [found] = mail_lab.search("to:hidden@else.test")
    assert found.envelope == envelope
