"""
The IMAP session and C{netlab fetch} against Dovecot, an IMAP server no one
here wrote, on loopback ports with implicit TLS and STARTTLS, certificates
from a CA the tests create, and a Maildir the tests fill: listing, status,
search, 1,000 messages fetched and compared byte for byte, saving to
Maildir and mbox, C{--new-only} reruns, a changed UIDVALIDITY, and the
errors a real server causes.

One Dovecot serves the whole module; tests that change mail use mailboxes
of their own.
"""

from __future__ import annotations

import mailbox
import os
import socket
import sys
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.utils import getProcessOutputAndValue

from tests import dovecot
from tests.dovecot import Dovecot, make_message
from tests.terminal import Terminal
from twisted_netlab.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    ServerRefused,
    TLSFailed,
)
from twisted_netlab.mail.fetch import IMAPSession, Mailbox, connect
from twisted_netlab.mail.store import (
    FetchState,
    SaveTarget,
    open_store,
    save_messages,
)

pytestmark = pytest.mark.skipif(
    dovecot.skip_reason() is not None, reason=str(dovecot.skip_reason())
)

REPO = Path(__file__).parents[2]
INBOX_SIZE = 1000


def day(text: str) -> float:
    return datetime.fromisoformat(f"{text}T12:00:00+00:00").timestamp()


@pytest.fixture(scope="module")
def server() -> Iterator[Dovecot]:
    d = Dovecot().start()
    try:
        # Some messages a little over 64 kB, so literals span many reads.
        d.inbox = d.fill(  # type: ignore[attr-defined]
            make_message(i, size=70_000 if i % 100 == 0 else 1500 + i)
            for i in range(1, INBOX_SIZE + 1)
        )
        d.mailbox_path("Entwürfe")
        d.mailbox_path("Sent Items")
        search = [
            ("alice", "bob", "Report Q1", "2024-01-10", False),
            ("bob", "alice", "=?utf-8?q?Gr=C3=BC=C3=9Fe?= aus", "2024-02-10", False),
            ("alice", "bob", "Lunch", "2024-03-01", True),
            ("dave", "carol", "Minutes", "2024-05-01", False),
        ]  # fmt: skip
        for sender, to, subject, received, seen in search:
            data = (
                f"From: {sender}@example.org\r\nTo: {to}@example.org\r\n"
                f"Subject: {subject}\r\n\r\nHello.\r\n"
            ).encode()
            d.deliver(data, "Search", seen=seen, received=day(received))
        yield d
    finally:
        d.remove()


def reactor() -> Any:
    from twisted.internet import reactor

    return reactor


async def session(server: Dovecot, tls: str = "implicit", **kw: Any) -> IMAPSession:
    port = server.imaps_port if tls == "implicit" else server.imap_port
    kw.setdefault("cafile", str(server.ca))
    s = await connect(reactor(), "localhost", port, tls=tls, timeout=10, **kw)
    await s.login(server.user, server.password)
    return s


@pytest_twisted.ensureDeferred
async def test_list_and_status(server: Dovecot) -> None:
    """
    LIST shows every mailbox with its flags and delimiter, names decoded
    from modified UTF-7; STATUS counts INBOX and reports Dovecot's own
    UIDVALIDITY.
    """
    s = await session(server)
    boxes = await s.list_mailboxes()
    assert Mailbox("Entwürfe", ".", ("\\HasNoChildren",)) in boxes
    assert {b.name for b in boxes} == {"INBOX", "Entwürfe", "Sent Items", "Search"}
    status = await s.status("INBOX")
    assert (status.messages, status.unseen) == (INBOX_SIZE, INBOX_SIZE)
    assert status.uidvalidity == server.uidvalidity("INBOX")
    assert status.uidnext == INBOX_SIZE + 1
    await s.logout()


@pytest_twisted.ensureDeferred
async def test_search(server: Dovecot) -> None:
    """
    Searches by flag, sender, recipient, subject (encoded words and
    non-ASCII included), date, and their combinations find what Dovecot
    finds.
    """
    s = await session(server, tls="starttls")
    await s.select("Search")
    cases = {
        "ALL": [1, 2, 3, 4],
        "UNSEEN": [1, 2, 4],
        "FROM alice": [1, 3],
        "TO carol": [4],
        "OR FROM bob TO carol": [2, 4],
        "NOT FROM alice": [2, 4],
        "SUBJECT 'report'": [1],
        "SUBJECT Grüße": [2],
        "SINCE 2024-02-01 BEFORE 2024-04-01": [2, 3],
        "(FROM alice SEEN) OR SUBJECT Minutes SUBJECT Lunch": [3],
    }
    for criteria, uids in cases.items():
        assert await s.search(criteria) == uids, criteria
    assert await s.search(["UNSEEN", "FROM alice"]) == [1]
    assert await s.search(min_uid=3) == [3, 4]
    assert await s.search(min_uid=5) == []
    await s.logout()


@pytest_twisted.ensureDeferred
async def test_fetch_1000_byte_for_byte(server: Dovecot) -> None:
    """
    1,000 messages fetched in batches are byte for byte what Dovecot holds,
    in UID order; summaries decode what they show; EXAMINE leaves \\Seen
    alone.
    """
    s = await session(server)
    selected = await s.select("INBOX")
    assert (selected.exists, selected.read_only) == (INBOX_SIZE, True)
    uids = await s.search()
    assert uids == list(range(1, INBOX_SIZE + 1))
    messages = await s.fetch_messages(uids)
    assert [m.uid for m in messages] == uids
    assert [m.data for m in messages] == server.inbox  # type: ignore[attr-defined]
    summaries = await s.fetch_summaries([1, 500])
    assert [x.subject for x in summaries] == ["Message 1", "Message 500"]
    assert summaries[0].sender == "Sender 1 <sender1@example.org>"
    assert summaries[1].size == len(server.inbox[499])  # type: ignore[attr-defined]
    assert (await s.status("INBOX")).unseen == INBOX_SIZE
    await s.logout()


@pytest_twisted.ensureDeferred
async def test_save_maildir_and_mbox(server: Dovecot, tmp_path: Path) -> None:
    """
    Saving INBOX to a Maildir gives files identical to Dovecot's; to an
    mbox, messages identical but for the mbox format's From quoting.
    """
    s = await session(server)
    await s.select("INBOX")
    inbox: list[bytes] = server.inbox  # type: ignore[attr-defined]
    for kind in ("maildir", "mbox"):
        store = open_store(SaveTarget(kind, tmp_path / kind))
        try:
            report = await save_messages(reactor(), s, store)
        finally:
            store.close()
        assert (report.saved, report.skipped) == (INBOX_SIZE, 0)
    saved_maildir = mailbox.Maildir(tmp_path / "maildir", create=False)
    assert sorted(
        saved_maildir.get_bytes(k) for k in saved_maildir.iterkeys()
    ) == sorted(inbox)
    saved_mbox = mailbox.mbox(tmp_path / "mbox", create=False)
    assert [saved_mbox.get_bytes(k) for k in saved_mbox.iterkeys()] == [
        store.stored_form(m) for m in inbox
    ]
    await s.logout()


async def save_new(
    server: Dovecot, mailbox_name: str, target: SaveTarget, state_dir: Path, **kw: Any
) -> Any:
    s = await session(server)
    await s.select(mailbox_name, read_only=not kw.get("mark_seen"))
    store = open_store(target)
    state = FetchState.open(state_dir, "alice@localhost", mailbox_name)
    try:
        return await save_messages(reactor(), s, store, state=state, **kw)
    finally:
        state.close()
        store.close()
        await s.logout()


def maildir_messages(path: Path) -> list[bytes]:
    return sorted(
        p.read_bytes() for sub in ("new", "cur") for p in (path / sub).iterdir()
    )


@pytest_twisted.ensureDeferred
async def test_new_only(server: Dovecot, tmp_path: Path) -> None:
    """
    With a state, a rerun fetches nothing; new mail is fetched alone; the
    target ends up with every message once.
    """
    first = server.fill(
        (make_message(i, subject=f"grow {i}") for i in range(20)), "Grow"
    )
    target = SaveTarget("maildir", tmp_path / "md")
    report = await save_new(server, "Grow", target, tmp_path / "state")
    assert (report.saved, report.last_uid) == (20, 20)
    report = await save_new(server, "Grow", target, tmp_path / "state")
    assert (report.saved, report.skipped, report.last_uid) == (0, 0, 20)
    more = server.fill((make_message(i, subject=f"late {i}") for i in range(3)), "Grow")
    report = await save_new(server, "Grow", target, tmp_path / "state")
    assert (report.saved, report.last_uid) == (3, 23)
    assert maildir_messages(target.path) == sorted(first + more)


@pytest_twisted.ensureDeferred
async def test_uidvalidity_changed(server: Dovecot, tmp_path: Path) -> None:
    """
    When the mailbox's UIDVALIDITY changes, the next --new-only run starts
    over: it fetches everything but saves only what the target lacks.
    """
    old = server.fill(
        (make_message(i, subject=f"renum {i}") for i in range(10)), "Renum"
    )
    target = SaveTarget("mbox", tmp_path / "mbox")
    report = await save_new(server, "Renum", target, tmp_path / "state")
    assert report.saved == 10
    server.set_uidvalidity("Renum", report.uidvalidity + 1000)
    new = server.fill([make_message(99, subject="after the change")], "Renum")
    report = await save_new(server, "Renum", target, tmp_path / "state")
    assert report.restarted
    assert (report.saved, report.skipped, report.last_uid) == (1, 10, 11)
    saved = mailbox.mbox(target.path, create=False)
    assert len(saved) == 11
    report = await save_new(server, "Renum", target, tmp_path / "state")
    assert (report.saved, report.restarted) == (0, False)
    assert [saved.get_bytes(k) for k in saved.iterkeys()] == old + new


@pytest_twisted.ensureDeferred
async def test_mark_seen(server: Dovecot, tmp_path: Path) -> None:
    """
    Saving leaves messages unseen; with mark_seen they are \\Seen after.
    """
    server.fill((make_message(i) for i in range(3)), "Marking")
    target = SaveTarget("eml", tmp_path / "eml")
    await save_new(server, "Marking", target, tmp_path / "s1")
    s = await session(server)
    assert (await s.status("Marking")).unseen == 3
    await save_new(server, "Marking", target, tmp_path / "s2", mark_seen=True)
    assert (await s.status("Marking")).unseen == 0
    await s.logout()
    assert sorted(p.name for p in target.path.iterdir()) == [
        "1-1.eml", "1.eml", "2-1.eml", "2.eml", "3-1.eml", "3.eml",
    ]  # fmt: skip


@pytest_twisted.ensureDeferred
async def test_wrong_password(server: Dovecot) -> None:
    """
    A wrong password is an AuthenticationFailed quoting Dovecot.
    """
    s = await connect(
        reactor(), "localhost", server.imaps_port, cafile=str(server.ca), timeout=10
    )
    with pytest.raises(AuthenticationFailed) as caught:
        await s.login("alice", "wrong")
    assert "rejected the login of 'alice': [AUTHENTICATIONFAILED]" in str(caught.value)
    s.close()


@pytest_twisted.ensureDeferred
async def test_untrusted_certificate(server: Dovecot) -> None:
    """
    Dovecot's certificate is not trusted without --cafile, over implicit
    TLS and STARTTLS alike; nor is a name the certificate does not hold.
    """
    for tls, port in (("implicit", server.imaps_port), ("starttls", server.imap_port)):
        with pytest.raises(TLSFailed) as caught:
            await connect(reactor(), "localhost", port, tls=tls, timeout=10)
        assert "certificate verify failed" in str(caught.value), tls
    with pytest.raises(TLSFailed) as caught:
        await connect(
            reactor(), "127.0.0.2", server.imaps_port, cafile=str(server.ca), timeout=10
        )
    assert str(caught.value) == (
        "TLS with 127.0.0.2 failed: the certificate does not match the host name"
    )


@pytest_twisted.ensureDeferred
async def test_unreachable() -> None:
    """
    A port nobody listens on is a ConnectionFailed.
    """
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(ConnectionFailed) as caught:
        await connect(reactor(), "127.0.0.1", port, timeout=10)
    assert (
        str(caught.value)
        == f"cannot connect to 127.0.0.1 port {port}: connection refused"
    )


@pytest_twisted.ensureDeferred
async def test_no_such_mailbox(server: Dovecot) -> None:
    """
    Opening a mailbox Dovecot does not have is a ServerRefused.
    """
    s = await session(server)
    with pytest.raises(ServerRefused) as caught:
        await s.select("Nope")
    assert "cannot open mailbox 'Nope': " in str(caught.value)
    await s.logout()


# --- the command, as a new user runs it ---------------------------------------


async def netlab(
    server: Dovecot, tmp_path: Path, *args: str, **env: str
) -> tuple[int, str, str]:
    environment = {
        **os.environ,
        "PW": server.password,
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    environment.update(env)
    out, err, code = await getProcessOutputAndValue(
        sys.executable,
        [
            "-m",
            "twisted_netlab",
            "fetch",
            "--user",
            "alice",
            "--password-env",
            "PW",
            *args,
        ],
        env=environment,
        path=str(REPO),
    )
    return code, out.decode(), err.decode()


@pytest_twisted.ensureDeferred
async def test_command_done_when(server: Dovecot, tmp_path: Path) -> None:
    """
    As the issue's "done when" asks: over implicit TLS, netlab fetch --list
    lists the mailboxes as imaplib shows them, and --save maildir:DIR
    --new-only saves INBOX, byte for byte; a second run fetches nothing.
    """
    where = ["--server", f"localhost:{server.imaps_port}", "--cafile", str(server.ca)]
    code, out, err = await netlab(server, tmp_path, *where, "--list")
    assert (code, err) == (0, "")
    assert '(\\HasNoChildren) "." INBOX\n' in out
    assert '(\\HasNoChildren) "." Entwürfe\n' in out
    assert '(\\HasNoChildren) "." "Sent Items"\n' in out

    save = [*where, "--save", f"maildir:{tmp_path / 'Mail'}", "--new-only"]
    code, out, err = await netlab(server, tmp_path, *save)
    assert (code, err) == (0, "")
    assert (
        out
        == f"saved {INBOX_SIZE} messages from INBOX to maildir:{tmp_path / 'Mail'}\n"
    )
    assert maildir_messages(tmp_path / "Mail") == sorted(server.inbox)  # type: ignore[attr-defined]
    code, out, err = await netlab(server, tmp_path, *save)
    assert (code, out, err) == (0, "no new messages in INBOX\n", "")
    assert len(maildir_messages(tmp_path / "Mail")) == INBOX_SIZE


@pytest_twisted.ensureDeferred
async def test_command_summaries(server: Dovecot, tmp_path: Path) -> None:
    """
    By default the command prints a table of the newest --limit matching
    messages (STARTTLS here); --json one object per line.
    """
    where = ["--server", f"localhost:{server.imap_port}", "--tls", "starttls"]
    where += ["--cafile", str(server.ca), "--mailbox", "Search"]
    code, out, err = await netlab(server, tmp_path, *where, "--search", "FROM alice")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split() == ["UID", "FLAGS", "DATE", "FROM", "SIZE", "SUBJECT"]
    assert [line.split()[0] for line in lines[1:]] == ["1", "3"]
    assert lines[2].split()[1] == "S"
    code, out, err = await netlab(server, tmp_path, *where, "--json", "--limit", "1")
    assert code == 0
    assert out.count("\n") == 1 and '"subject": "Minutes"' in out


@pytest_twisted.ensureDeferred
async def test_command_errors(server: Dovecot, tmp_path: Path) -> None:
    """
    Each failure is one line on stderr and its documented exit status:
    2 bad search, 3 unreachable, 4 untrusted certificate, 5 wrong
    password, 6 no such mailbox, 7 unwritable target.
    """
    implicit = ["--server", f"localhost:{server.imaps_port}"]
    trusted = [*implicit, "--cafile", str(server.ca)]
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    cases = [
        (
            [*trusted, "--search", "FROM"],
            {},
            2,
            "bad search criteria 'FROM': FROM needs a value",
        ),
        (["--server", f"127.0.0.1:{closed}"], {}, 3, "connection refused"),
        (implicit, {}, 4, "certificate verify failed"),
        (trusted, {"PW": "wrong"}, 5, "rejected the login of 'alice'"),
        ([*trusted, "--mailbox", "Nope"], {}, 6, "cannot open mailbox 'Nope'"),
        ([*trusted, "--save", f"eml:{blocker}/x"], {}, 7, "cannot write to eml:"),
    ]
    for args, env, status, message in cases:
        code, _, err = await netlab(server, tmp_path, *args, **env)
        assert code == status, (args, err)
        assert message in err, (args, err)
        assert err.count("\n") <= 2 and "Traceback" not in err, err


@pytest_twisted.ensureDeferred
async def test_command_prompts(server: Dovecot) -> None:
    """
    Without --password-env or --password-file the password is prompted for
    on the terminal, not echoed; -v shows the conversation, password masked.
    """
    terminal = Terminal(b"Password for alice: ", server.password.encode())
    reactor().spawnProcess(
        terminal,
        sys.executable,
        [
            sys.executable, "-m", "twisted_netlab", "fetch", "--list", "-v",
            "--server", f"localhost:{server.imaps_port}", "--cafile", str(server.ca),
            "--user", "alice",
        ],
        env=dict(os.environ),
        path=str(REPO),
        usePTY=True,
    )  # fmt: skip
    terminal.ended.addTimeout(60, reactor())
    code = await terminal.ended
    output = terminal.output.decode("utf-8", "replace")
    assert code == 0, output
    assert "C: 0001 LOGIN alice ****" in output
    assert '(\\HasNoChildren) "." INBOX' in output
    assert server.password not in output


@pytest_twisted.ensureDeferred
async def test_saved_maildir_served_by_dovecot(tmp_path: Path) -> None:
    """
    A Maildir that netlab saved is mail Dovecot serves as it is: saved into
    a mailbox of a second Dovecot, imaplib (not our client) reads there
    every message, byte for byte, as new (\\Recent) mail.
    """
    import imaplib
    import ssl

    with Dovecot() as source, Dovecot() as reader:
        sent = source.fill(make_message(i, size=2000 + i) for i in range(1, 41))
        s = await session(source)
        await s.select("INBOX")
        store = open_store(SaveTarget("maildir", reader.mailbox_path("Copied")))
        try:
            report = await save_messages(reactor(), s, store)
        finally:
            store.close()
        await s.logout()
        assert report.saved == len(sent)

        context = ssl.create_default_context(cafile=str(reader.ca))
        client = imaplib.IMAP4_SSL("localhost", reader.imaps_port, ssl_context=context)
        try:
            client.login(reader.user, reader.password)
            status, data = client.select("Copied", readonly=True)
            assert (status, int(data[0] or 0)) == ("OK", len(sent))
            status, recent = client.response("RECENT")
            assert recent == [str(len(sent)).encode()]
            status, parts = client.uid("FETCH", "1:*", "(BODY.PEEK[])")
            assert status == "OK"
            served = [p[1] for p in parts if isinstance(p, tuple)]
        finally:
            client.logout()
    assert sorted(served) == sorted(sent)
