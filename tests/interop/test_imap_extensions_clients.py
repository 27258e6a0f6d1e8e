"""
The lab's IMAP extensions and the issue-10 syntax fixes, exercised with
clients nobody here wrote: imapclient (which uses LITERAL+, MOVE, UIDPLUS,
CONDSTORE, ESEARCH-free SEARCH with literals, ID, ENABLE, UNSELECT and
SPECIAL-USE when offered), imaplib (synchronizing literals, quoted names,
C{*:*}), imap-tools, aioimaplib and curl (SASL-IR). Each runs in a thread
against the in-process lab, over STARTTLS with the lab's CA.
"""

from __future__ import annotations

import asyncio
import imaplib
import re
import shutil
import ssl
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import imapclient  # type: ignore[import-untyped]
import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from twisted_netlab.mail.lab.service import EPHEMERAL, MailLab
from twisted_netlab.mail.lab.store.maildir import MailStore

T = TypeVar("T")

ALICE, ALICE_PW = "alice@example.test", "alice-password"


def message(subject: str, n: int = 0) -> bytes:
    return (
        f"From: bob@example.test\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
        f"Message-ID: <ext-{n}@example.test>\r\n\r\nbody {n}\r\n"
    ).encode()


UTF8 = (
    b"From: bob@example.test\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9_cr=C3=A8me?=\r\n"
    b"\r\n"
    b"body\r\n"
)


def in_thread(f: Callable[..., T], *args: Any) -> Any:
    return deferToThread(f, *args)


def context(lab: MailLab) -> ssl.SSLContext:
    assert lab.ca_path is not None
    return ssl.create_default_context(cafile=str(lab.ca_path))


def imapclient_session(lab: MailLab) -> imapclient.IMAPClient:
    client = imapclient.IMAPClient("localhost", port=lab.imap_port, ssl=False)
    client.starttls(ssl_context=context(lab))
    client.login(ALICE, ALICE_PW)
    return client


def deliver(lab: MailLab, *bodies: bytes) -> None:
    for body in bodies:
        lab.store.deliver(ALICE, body)


@pytest_twisted.ensureDeferred
async def test_imapclient_extensions(mail_lab: MailLab) -> None:
    """
    imapclient sees the extensions and uses them: ID, ENABLE CONDSTORE,
    APPEND with keywords (APPENDUID), COPY, MOVE, UID EXPUNGE,
    UNSELECT, SPECIAL-USE lookups; keywords come back in FLAGS.
    """
    deliver(mail_lab, message("one", 1), message("two", 2), message("three", 3))
    mail_lab.store.create_mailbox(ALICE, "Sent")

    def session() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        with imapclient_session(mail_lab) as client:
            caps = set(client.capabilities())
            seen["caps"] = caps
            seen["id"] = client.id_({"name": "imapclient"})
            seen["enabled"] = client.enable("CONDSTORE")
            seen["sent"] = client.find_special_folder(imapclient.imapclient.SENT)
            client.create_folder("Archive")
            seen["append"] = client.append(
                "INBOX", message("appended", 4), flags=[b"$Forwarded", b"abc"]
            )
            client.select_folder("INBOX")
            seen["flags"] = client.get_flags([4])
            client.add_flags([1], [b"$Junk", b"\\Deleted"])
            client.copy([2], "Archive")
            seen["move"] = client.move([3], "Archive")
            client.add_flags([2], [b"\\Deleted"])
            client.uid_expunge([1])
            seen["left"] = client.search("ALL")
            client.unselect_folder()
            client.select_folder("Archive")
            seen["archived"] = client.search("ALL")
        return seen

    seen = await in_thread(session)
    for name in (b"LITERAL+", b"UIDPLUS", b"MOVE", b"CONDSTORE", b"SPECIAL-USE"):
        assert name in seen["caps"]
    assert b"netlab mail lab" in seen["id"][0]
    assert seen["enabled"] == [b"CONDSTORE"]
    assert seen["sent"] == "Sent"
    assert b"[APPENDUID " in seen["append"]
    assert set(seen["flags"][4]) == {b"$Forwarded", b"abc"}
    assert seen["left"] == [2, 4]
    assert seen["archived"] == [1, 2]
    folder = MailStore(mail_lab.store.root).folder(ALICE)
    assert folder.entry(4).flags == ("$Forwarded", "abc")


@pytest_twisted.ensureDeferred
async def test_imapclient_condstore(mail_lab: MailLab) -> None:
    """
    imapclient's CONDSTORE resync: SELECT gives HIGHESTMODSEQ, FETCH with
    CHANGEDSINCE returns only what changed, with MODSEQ; SEARCH MODSEQ
    agrees; the values are the same after the lab restarts.
    """
    deliver(mail_lab, message("a", 1), message("b", 2), message("c", 3))

    def session() -> tuple[int, dict[int, Any], list[int], int]:
        with imapclient_session(mail_lab) as client:
            client.enable("CONDSTORE")
            selected = client.select_folder("INBOX")
            highest = selected[b"HIGHESTMODSEQ"]
            client.add_flags([2], [b"\\Seen"])
            changed = client.fetch(
                [1, 2, 3], ["FLAGS", "MODSEQ"], modifiers=[f"CHANGEDSINCE {highest}"]
            )
            found = client.search(["MODSEQ", str(highest + 1)])
            status = client.folder_status("INBOX", [b"HIGHESTMODSEQ"])
        return highest, changed, found, status[b"HIGHESTMODSEQ"]

    highest, changed, found, after = await in_thread(session)
    assert list(changed) == [2]
    assert changed[2][b"MODSEQ"][0] > highest
    assert found == [2]
    assert after == changed[2][b"MODSEQ"][0]
    await mail_lab.stop()
    await mail_lab.start()

    def again() -> int:
        with imapclient_session(mail_lab) as client:
            selected = client.select_folder("INBOX")
            return int(selected[b"HIGHESTMODSEQ"])

    assert await in_thread(again) == after


@pytest_twisted.ensureDeferred
async def test_imapclient_search_non_ascii(mail_lab: MailLab) -> None:
    """
    imapclient sends a non-ASCII criterion as a literal (LITERAL+, since
    offered); the lab reads it and matches the decoded subject.
    """
    deliver(mail_lab, message("plain", 1), UTF8)

    def session() -> list[int]:
        with imapclient_session(mail_lab) as client:
            client.select_folder("INBOX", readonly=True)
            return list(client.search(["SUBJECT", "crème"], charset="UTF-8"))

    assert await in_thread(session) == [2]


@pytest_twisted.ensureDeferred
async def test_imaplib_syntax(mail_lab: MailLab) -> None:
    """
    imaplib: a synchronizing literal in UID SEARCH gets its continuation
    and matches; a name with escaped quotes is created, listed in a form
    that selects it; C{UID FETCH *:*} fetches the last message; COPY
    answers with COPYUID; SEARCH RETURN gets an ESEARCH response.
    """
    deliver(mail_lab, message("plain", 1), UTF8)

    def session() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        with imaplib.IMAP4("localhost", mail_lab.imap_port, timeout=30) as imap:
            imap.starttls(ssl_context=context(mail_lab))
            imap.login(ALICE, ALICE_PW)
            imap.select("INBOX")
            imap.literal = "café".encode()  # type: ignore[assignment]
            seen["search"] = imap.uid("SEARCH", "CHARSET", "UTF-8", "SUBJECT")
            seen["noop"] = imap.noop()[0]
            seen["fetch"] = imap.uid("FETCH", "*:*", "(UID)")
            seen["copy"] = imap.copy("1", "INBOX")
            typ, data = imap._simple_command("SEARCH", "RETURN", "(MIN COUNT)", "ALL")
            seen["esearch"] = imap._untagged_response(typ, data, "ESEARCH")
            seen["create"] = imap.create('"foo \\"bar\\""')[0]
            _, listed = imap.list('""', '"foo*"')
            seen["listed"] = listed
            assert isinstance(listed[0], bytes)
            name = listed[0].split(b'"." ', 1)[1].decode()
            seen["select"] = imap.select(name)[0]
        return seen

    seen = await in_thread(session)
    assert seen["search"] == ("OK", [b"2"])
    assert seen["noop"] == "OK"
    assert seen["fetch"] == ("OK", [b"2 (UID 2)"])
    typ, (esearch,) = seen["esearch"]
    assert typ == "OK" and re.fullmatch(rb'\(TAG "\w+"\) MIN 1 COUNT 3', esearch)
    assert seen["create"] == "OK"
    assert seen["listed"] == [b'(\\HasNoChildren) "." "foo \\"bar\\""']
    assert seen["select"] == "OK"
    validity = mail_lab.store.folder(ALICE).uidvalidity
    assert seen["copy"] == ("OK", [b"[COPYUID %d 1 3] COPY completed" % validity])
    assert 'foo "bar"' in mail_lab.store.mailboxes(ALICE)


@pytest_twisted.ensureDeferred
async def test_imap_tools(mail_lab: MailLab) -> None:
    """
    imap-tools moves (MOVE), copies, flags with keywords and searches by
    keyword and by a non-ASCII subject.
    """
    import imap_tools

    deliver(mail_lab, message("one", 1), UTF8, message("three", 3))
    mail_lab.store.create_mailbox(ALICE, "Archive")

    def session() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        box = imap_tools.MailBoxStartTls(
            "localhost", port=mail_lab.imap_port, ssl_context=context(mail_lab)
        )
        with box.login(ALICE, ALICE_PW, initial_folder="INBOX") as mailbox:
            mailbox.flag(["1"], ["$Label1"], True)
            seen["keyword"] = [
                m.uid for m in mailbox.fetch(imap_tools.AND(keyword="$Label1"))
            ]
            seen["utf8"] = [
                m.uid
                for m in mailbox.fetch(imap_tools.AND(subject="crème"), charset="utf8")
            ]
            mailbox.move(["3"], "Archive")
            seen["left"] = [m.uid for m in mailbox.fetch(headers_only=True)]
        return seen

    seen = await in_thread(session)
    assert seen["keyword"] == ["1"]
    assert seen["utf8"] == ["2"]
    assert seen["left"] == ["1", "2"]
    assert len(mail_lab.messages(ALICE, "Archive")) == 1


@pytest_twisted.ensureDeferred
async def test_aioimaplib(tmp_path: Path) -> None:
    """
    aioimaplib (asyncio) over implicit TLS: ID, APPEND (APPENDUID) with a
    keyword, UID MOVE and UID EXPUNGE.
    """
    from twisted.internet import reactor

    mail_lab = MailLab(
        reactor,
        state=tmp_path / "lab",
        domains=["example.test"],
        users={ALICE: ALICE_PW},
        smtp=[],
        imap=[],
        imaps=[EPHEMERAL],
    )
    await mail_lab.start()
    try:
        await _aioimaplib_session(mail_lab)
    finally:
        await mail_lab.stop()


async def _aioimaplib_session(mail_lab: MailLab) -> None:
    import aioimaplib  # type: ignore[import-untyped]

    deliver(mail_lab, message("one", 1), message("two", 2))
    mail_lab.store.create_mailbox(ALICE, "Archive")

    async def talk() -> dict[str, Any]:
        seen: dict[str, Any] = {}
        client = aioimaplib.IMAP4_SSL(
            host="localhost",
            port=mail_lab.imaps_port,
            ssl_context=context(mail_lab),
            timeout=30,
        )
        await client.wait_hello_from_server()
        await client.login(ALICE, ALICE_PW)
        seen["id"] = await client.id(name="aioimaplib")
        seen["append"] = await client.append(
            message("appended", 3), mailbox="INBOX", flags="($Forwarded)"
        )
        await client.select("INBOX")
        seen["move"] = await client.uid("move", "1", "Archive")
        await client.uid("store", "2", "+FLAGS.SILENT", "(\\Deleted)")
        seen["expunge"] = await client.uid("expunge", "2")
        await client.logout()
        return seen

    seen = await in_thread(asyncio.run, talk())
    assert seen["id"].result == "OK"
    assert seen["append"].result == "OK"
    assert any(b"APPENDUID" in line for line in seen["append"].lines)
    assert seen["move"].result == "OK"
    assert seen["expunge"].result == "OK"
    assert mail_lab.store.folder(ALICE).uids() == [3]
    assert mail_lab.store.folder(ALICE).entry(3).flags == ("$Forwarded",)
    assert len(mail_lab.messages(ALICE, "Archive")) == 1


@pytest_twisted.ensureDeferred
async def test_curl_sasl_ir(mail_lab: MailLab, tmp_path: Path) -> None:
    """
    curl with --sasl-ir logs in with AUTHENTICATE PLAIN and the initial
    response on the command line, and lists the mailboxes.
    """
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed (Debian package curl)")
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine localhost login {ALICE} password {ALICE_PW}\n")

    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                curl,
                "--silent",
                "--show-error",
                "--verbose",
                "--ssl-reqd",
                "--cacert",
                str(mail_lab.ca_path),
                "--netrc-file",
                str(netrc),
                "--sasl-ir",
                "--login-options",
                "AUTH=PLAIN",
                f"imap://localhost:{mail_lab.imap_port}/",
            ],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    result = await in_thread(run)
    assert result.returncode == 0, result.stderr
    assert "AUTHENTICATE PLAIN " in result.stderr
    assert "+ " not in [line[:4] for line in result.stderr.splitlines()]
    assert '"INBOX"' in result.stdout


MBSYNC_TWO_WAY = """\
IMAPAccount lab
Host localhost
Port {port}
User {user}
Pass {password}
SSLType STARTTLS
CertificateFile {ca}

IMAPStore lab-far
Account lab

MaildirStore lab-near
Path {near}/
Inbox {near}/INBOX

Channel lab
Far :lab-far:
Near :lab-near:
Patterns INBOX
Create Near
Sync All
Expunge Both
SyncState *
"""


@pytest_twisted.ensureDeferred
async def test_mbsync_uidplus(mail_lab: MailLab, tmp_path: Path) -> None:
    """
    mbsync (1.4) both ways: a message made locally is uploaded (APPEND,
    whose UIDPLUS APPENDUID it takes instead of searching for its X-TUID),
    a local flag reaches the lab, a message trashed locally is expunged on
    the lab; a further sync changes nothing. (mbsync 1.4 uses neither MOVE
    nor CONDSTORE; imapclient covers those above.)
    """
    mbsync = shutil.which("mbsync")
    if mbsync is None:
        pytest.skip("mbsync is not installed (Debian package isync)")
    deliver(mail_lab, message("keep", 1), message("trash", 2))
    near = tmp_path / "near"
    near.mkdir()
    config = tmp_path / "mbsyncrc"
    config.write_text(
        MBSYNC_TWO_WAY.format(
            port=mail_lab.imap_port,
            user=ALICE,
            password=ALICE_PW,
            ca=mail_lab.ca_path,
            near=near,
        )
    )

    def sync() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [mbsync, "-D", "-c", str(config), "-a"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    first = await in_thread(sync)
    assert first.returncode == 0, first.stdout + first.stderr
    inbox = near / "INBOX"
    files = {p.read_bytes().split(b"Subject: ")[1][:4]: p for p in inbox.rglob("*,*")}
    keep, trash = files[b"keep"], files[b"tras"]
    keep.rename(inbox / "cur" / (keep.name.split(":")[0] + ":2,F"))
    trash.rename(inbox / "cur" / (trash.name.split(":")[0] + ":2,ST"))
    (inbox / "new" / "1700000000.local.host").write_bytes(
        message("made-here", 3).replace(b"\r\n", b"\n")
    )

    second = await in_thread(sync)
    log = second.stdout + second.stderr
    assert second.returncode == 0, log
    assert "APPENDUID" in log
    folder = mail_lab.store.folder(ALICE)
    folder.refresh()
    subjects = {
        u: mail_lab.store.folder(ALICE).read(u).split(b"Subject: ")[1][:4]
        for u in folder.uids()
    }
    assert sorted(subjects.values()) == [b"keep", b"made"]
    kept = next(u for u, s in subjects.items() if s == b"keep")
    assert "\\Flagged" in folder.entry(kept).flags

    before = mail_lab.messages(ALICE)
    third = await in_thread(sync)
    assert third.returncode == 0, third.stdout + third.stderr
    assert mail_lab.messages(ALICE) == before
