"""
The IMAP session against the mail lab (the packaged C{mail_lab} fixture), on
a loopback socket in the same reactor: STARTTLS with a verified certificate,
LOGINDISABLED before it, and whole messages byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from tests.mail.lab.imaptesting import MULTIPART, PASSWORD, SIMPLE, USER
from twisted_netlab.errors import AuthenticationFailed
from twisted_netlab.mail.fetch import connect
from twisted_netlab.mail.lab.store.maildir import MailStore
from twisted_netlab.mail.store import (
    FetchState,
    SaveTarget,
    open_store,
    save_messages,
)


def reactor() -> Any:
    from twisted.internet import reactor

    return reactor


@pytest.fixture
def mail_lab_options() -> dict[str, Any]:
    return {"domains": ["netlab.test"], "users": {USER: PASSWORD.decode()}}


@dataclass
class Lab:
    store: MailStore
    port: int
    ca: Path
    directory: Path


@pytest.fixture
def lab(mail_lab: Any, tmp_path: Path) -> Lab:
    """
    The packaged C{mail_lab} fixture (the lab as users run it), seen
    through the parts these tests use.
    """
    return Lab(mail_lab.store, mail_lab.imap_port, mail_lab.ca_path, tmp_path)


@pytest_twisted.ensureDeferred
async def test_fetch_from_the_lab(lab: Lab) -> None:
    """
    Over STARTTLS the lab's mail is listed, searched, summarised and
    fetched byte for byte; a --new-only save and its rerun behave.
    """
    messages = [MULTIPART, SIMPLE, MULTIPART.replace(b"a multipart", b"again")]
    for data in messages:
        lab.store.deliver(USER, data)
    s = await connect(
        reactor(), "localhost", lab.port, tls="starttls", cafile=str(lab.ca), timeout=10
    )
    assert s.secure
    await s.login(USER, PASSWORD.decode())
    assert "INBOX" in [box.name for box in await s.list_mailboxes()]
    selected = await s.select("INBOX")
    assert (selected.exists, selected.read_only) == (3, True)
    uids = await s.search()
    assert await s.search('SUBJECT "simple"') == [uids[1]]
    [summary] = await s.fetch_summaries([uids[0]])
    assert (summary.subject, summary.sender) == (
        "a multipart",
        "Bob Example <bob@example.test>",
    )
    assert [m.data for m in await s.fetch_messages(uids)] == messages

    target = SaveTarget("maildir", lab.directory / "saved")
    for expected in (3, 0):
        store = open_store(target)
        state = FetchState.open(lab.directory / "state", "alice@localhost", "INBOX")
        try:
            report = await save_messages(reactor(), s, store, state=state)
        finally:
            state.close()
            store.close()
        assert report.saved == expected
    await s.logout()


@pytest_twisted.ensureDeferred
async def test_logindisabled(lab: Lab) -> None:
    """
    Without TLS the lab announces LOGINDISABLED, and the client does not
    send LOGIN even when plaintext was allowed.
    """
    s = await connect(reactor(), "localhost", lab.port, tls="none", timeout=10)
    with pytest.raises(AuthenticationFailed) as caught:
        await s.login(USER, PASSWORD.decode(), allow_plaintext=True)
    assert "does not allow LOGIN without TLS (try --tls starttls)" in str(caught.value)
    s.close()
