"""
The counts the lab's IMAP server keeps (SELECT's EXISTS, RECENT, UNSEEN
and UIDNEXT; STATUS's MESSAGES, RECENT, UNSEEN, UIDNEXT, DELETED and SIZE)
as imaplib sees them: against Dovecot's, over copies of the same Maildir
(messages left by another program, flags and expunges through IMAP, files
dropped, renamed and removed by another program while sessions are open);
and as mail comes by SMTP (smtplib) and is read and deleted over HTTP
(urllib) and POP3 (poplib).

One difference is by design and left out: a file another program puts
straight into C{cur/} is C{\\Recent} for Dovecot (no session of Dovecot's
saw it), not for the lab, which calls recent what is in C{new/}; every file
the test drops later goes to C{new/}.
"""

from __future__ import annotations

import contextlib
import imaplib
import json
import os
import poplib
import re
import smtplib
import ssl
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from tests.dovecot import MAIL_GID, MAIL_UID, Dovecot, make_message, skip_reason
from twisted_netlab.mail.lab.service import EPHEMERAL, MailLab
from twisted_netlab.mail.lab.store.maildir import crlf_size

USER, PASSWORD = "counts@example.test", "counts-password"
STATUS_ITEMS = "(MESSAGES RECENT UNSEEN UIDNEXT)"

#: The Maildir both servers start from: (index, place, info letters).
START = [
    (1, "new", None),
    (2, "new", None),
    (3, "cur", "S"),
    (4, "cur", ""),
    (5, "cur", "ST"),
    (6, "cur", "F"),
    (7, "cur", "RS"),
    (8, "new", None),
]


@pytest.fixture
def mail_lab_options() -> dict[str, Any]:
    return {
        "domains": ["example.test"],
        "users": {USER: PASSWORD},
        "imaps": [EPHEMERAL],
        "pop3s": [EPHEMERAL],
        "fresh": True,
    }


class RecordingIMAP(imaplib.IMAP4_SSL):
    """imaplib's client, keeping its untagged responses in order."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.in_order: list[tuple[str, bytes]] = []
        super().__init__(*args, **kwargs)

    def _append_untagged(self, typ: str, dat: Any) -> None:
        self.in_order.append((typ, dat))
        super()._append_untagged(typ, dat)  # type: ignore[misc]


def file_name(index: int, data: bytes, info: str | None) -> str:
    name = f"{1_600_000_000 + index}.M{index}P1.other,S={len(data)},W={len(data)}"
    return name if info is None else f"{name}:2,{info}"


class Peer:
    """One server as the test drives it: its Maildir and imaplib sessions."""

    def __init__(
        self,
        name: str,
        maildir: Path,
        connect: Callable[[], RecordingIMAP],
        owner: tuple[int, int] | None,
    ) -> None:
        self.name, self.maildir = name, maildir
        self.connect, self.owner = connect, owner

    def put(self, index: int, place: str, info: str | None) -> None:
        """Another program delivers message C{index} into C{place}."""
        data = make_message(index)
        path = self.maildir / place / file_name(index, data, info)
        path.write_bytes(data)
        if self.owner is not None:
            os.chown(path, *self.owner)

    def find(self, index: int) -> Path:
        prefix = f"{1_600_000_000 + index}.M{index}P1."
        for place in ("new", "cur"):
            for entry in (self.maildir / place).iterdir():
                if entry.name.startswith(prefix):
                    return entry
        raise AssertionError(f"{self.name}: no file of message {index}")

    def rename_info(self, index: int, info: str) -> None:
        """Another program changes message C{index}'s flags (a rename)."""
        path = self.find(index)
        data = path.read_bytes()
        os.rename(path, self.maildir / "cur" / file_name(index, data, info))

    def remove(self, index: int) -> None:
        """Another program deletes message C{index}'s file."""
        os.unlink(self.find(index))


def status(session: imaplib.IMAP4) -> dict[str, int]:
    typ, data = session.status("INBOX", STATUS_ITEMS)
    assert typ == "OK", data
    text = data[0].decode() if isinstance(data[0], bytes) else str(data[0])
    inner = text[text.index("(") + 1 : text.rindex(")")].split()
    return {inner[i]: int(inner[i + 1]) for i in range(0, len(inner), 2)}


def select(session: imaplib.IMAP4, readonly: bool = False) -> dict[str, Any]:
    typ, data = session.select("INBOX", readonly=readonly)
    assert typ == "OK", data
    responses: dict[str, list[Any]] = session.untagged_responses
    unseen = responses.get("UNSEEN", [None])[-1]
    exists: Any = data[0]
    found = {
        "EXISTS": int(exists),
        "RECENT": int(responses["RECENT"][-1]),
        "UNSEEN": None if unseen is None else int(unseen),
        "UIDNEXT": int(responses["UIDNEXT"][-1]),
    }
    responses.clear()
    return found


def noop_exists(session: RecordingIMAP, before: int) -> int:
    """
    The message count a client keeps after a NOOP (its EXPUNGE and EXISTS
    responses, in the order they came).
    """
    session.in_order.clear()
    typ, data = session.noop()
    assert typ == "OK", data
    count = before
    for kind, value in session.in_order:
        if kind == "EXPUNGE":
            count -= 1
        elif kind == "EXISTS":
            count = int(value)
    session.untagged_responses.clear()
    return count


def flags_of(session: imaplib.IMAP4) -> dict[int, str]:
    typ, data = session.uid("FETCH", "1:*", "(FLAGS)")
    assert typ == "OK", data
    found = {}
    for line in data:
        text = line.decode() if isinstance(line, bytes) else str(line)
        match = re.search(r"UID (\d+)", text)
        flags = re.search(r"FLAGS \(([^)]*)\)", text)
        assert match and flags, text
        found[int(match.group(1))] = " ".join(
            sorted(f for f in flags.group(1).split() if f != "\\Recent")
        )
    return found


def scenario(peer: Peer) -> list[tuple[str, Any]]:
    """
    The same steps on one server; what a client saw at each.
    """
    seen: list[tuple[str, Any]] = []
    for index, place, info in START:
        peer.put(index, place, info)
    first = peer.connect()
    other = peer.connect()
    try:
        got = status(other)
        seen.append(("STATUS of a never-seen Maildir", {**got, "RECENT": None}))
        opened = select(first)
        seen.append(("SELECT", {**opened, "RECENT": None}))
        seen.append(("STATUS once a session saw it", status(other)))
        seen.append(("EXAMINE", select(other, readonly=True)))
        assert other.unselect()[0] == "OK"
        assert first.unselect()[0] == "OK"
        # Another program, with no session in the mailbox: two deliveries,
        # a flag change, a removal.
        peer.put(9, "new", None)
        peer.put(10, "new", None)
        peer.rename_info(4, "S")
        peer.remove(6)
        seen.append(("STATUS after another program", status(other)))
        opened = select(first)
        seen.append(("SELECT after another program", opened))
        # And with a session in it: the session that syncs first (here at
        # its NOOP) gets the new message as \Recent.
        peer.put(11, "new", None)
        peer.rename_info(2, "F")
        peer.remove(1)
        exists = noop_exists(first, opened["EXISTS"])
        seen.append(("EXISTS after NOOP", exists))
        seen.append(("STATUS after the NOOP", status(other)))
        seen.append(("flags", flags_of(first)))
        # Flags and an expunge through IMAP.
        assert first.uid("STORE", "1:2", "+FLAGS.SILENT", "(\\Seen)")[0] == "OK"
        assert first.uid("STORE", "8", "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
        seen.append(("STATUS after STORE", status(other)))
        assert first.expunge()[0] == "OK"
        seen.append(("STATUS after EXPUNGE", status(other)))
        seen.append(("SELECT again", select(other)))
        seen.append(("flags at the end", flags_of(other)))
    finally:
        for session in (first, other):
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                session.logout()
    return seen


@pytest_twisted.ensureDeferred
async def test_counts_as_dovecot(mail_lab: MailLab) -> None:
    """
    Step by step, imaplib sees the same SELECT and STATUS counts from the
    lab as from Dovecot over the same Maildir, as the mail is changed by
    another program and through IMAP (and the same flags by UID).
    """
    missing = skip_reason()
    if missing:
        pytest.skip(missing)
    dovecot = Dovecot(user="counts", password="counts-password")
    dovecot.start()
    try:
        lab_context = ssl.create_default_context(cafile=str(mail_lab.ca_path))
        dovecot_context = ssl.create_default_context(cafile=str(dovecot.ca))

        def lab_session() -> RecordingIMAP:
            session = RecordingIMAP(
                "localhost", mail_lab.imaps_port, ssl_context=lab_context
            )
            session.login(USER, PASSWORD)
            return session

        def dovecot_session() -> RecordingIMAP:
            session = RecordingIMAP(
                "127.0.0.1", dovecot.imaps_port, ssl_context=dovecot_context
            )
            session.login(dovecot.user, dovecot.password)
            return session

        mail_lab.store.ensure_user(USER)
        lab = Peer("lab", mail_lab.store.user_path(USER), lab_session, None)
        peer = Peer(
            "Dovecot",
            dovecot.mailbox_path("INBOX"),
            dovecot_session,
            (MAIL_UID, MAIL_GID),
        )
        ours = await deferToThread(scenario, lab)
        theirs = await deferToThread(scenario, peer)
    finally:
        dovecot.remove()
    for (step, mine), (_, expected) in zip(ours, theirs, strict=True):
        assert mine == expected, (step, mine, expected)
    # And not trivially: the steps saw mail come, change and go.
    steps = dict(ours)
    assert steps["STATUS of a never-seen Maildir"]["MESSAGES"] == 8
    assert steps["STATUS after another program"]["RECENT"] == 2
    assert steps["SELECT after another program"]["RECENT"] == 2
    assert steps["EXISTS after NOOP"] == 9
    assert steps["STATUS after EXPUNGE"]["MESSAGES"] == 7  # 5 and 8 were deleted


def api(lab: MailLab, path: str, method: str = "GET", body: Any = None) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://localhost:{lab.http_port}{path}",
        data=data,
        method=method,
        headers={"Content-Type": "application/json"} if data else {},
    )
    with urllib.request.urlopen(request, timeout=30) as answer:
        payload = answer.read()
        if answer.headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(payload)
        return payload


def doors(lab: MailLab) -> list[tuple[str, dict[str, int]]]:
    """
    Mail through SMTP, HTTP, POP3 and another IMAP session; STATUS after
    each, from a session that has INBOX selected and one that has not.
    """
    context = ssl.create_default_context(cafile=str(lab.ca_path))
    seen: list[tuple[str, dict[str, int]]] = []
    items = "(MESSAGES RECENT UNSEEN UIDNEXT DELETED SIZE)"

    def counts(session: imaplib.IMAP4) -> dict[str, int]:
        typ, data = session.status("INBOX", items)
        assert typ == "OK", data
        text = data[0].decode() if isinstance(data[0], bytes) else str(data[0])
        inner = text[text.index("(") + 1 : text.rindex(")")].split()
        found = {inner[i]: int(inner[i + 1]) for i in range(0, len(inner), 2)}
        # SIZE: the messages as stored, with CRLF line ends.
        folder = lab.store.folder(USER)
        stored = sum(crlf_size(folder.read(uid)) for uid in folder.uids())
        assert found.pop("SIZE") == stored, (found, stored)
        return found

    with smtplib.SMTP("localhost", lab.smtp_port, timeout=30) as smtp:
        smtp.starttls(context=context)
        for n in range(6):
            smtp.sendmail(
                "app@sender.example",
                [USER],
                b"Subject: door %d\r\n\r\nbody %d\r\n" % (n, n),
            )
    watcher = imaplib.IMAP4_SSL("localhost", lab.imaps_port, ssl_context=context)
    watcher.login(USER, PASSWORD)
    seen.append(("after SMTP", counts(watcher)))
    reader = imaplib.IMAP4_SSL("localhost", lab.imaps_port, ssl_context=context)
    reader.login(USER, PASSWORD)
    reader.select("INBOX")
    seen.append(("after a SELECT", counts(watcher)))
    listed = api(lab, "/api/v1/messages")["messages"]
    by_subject = {m["Subject"]: m["ID"] for m in listed}
    api(lab, "/api/v1/messages", "PUT", {"IDs": [by_subject["door 0"]], "Read": True})
    api(lab, "/api/v1/messages", "DELETE", {"IDs": [by_subject["door 5"]]})
    seen.append(("after HTTP", counts(watcher)))
    pop = poplib.POP3_SSL("localhost", lab.pop3s_port, context=context)
    pop.user(USER)
    pop.pass_(PASSWORD)
    pop.retr(2)
    pop.dele(3)
    pop.quit()
    seen.append(("after POP3", counts(watcher)))
    assert reader.uid("STORE", "5", "+FLAGS", "(\\Deleted \\Seen)")[0] == "OK"
    seen.append(("after STORE", counts(watcher)))
    _, data = reader.fetch("1:*", "(FLAGS)")
    seen.append(("fetched", {"messages": len(data)}))
    assert reader.expunge()[0] == "OK"
    seen.append(("after EXPUNGE", counts(watcher)))
    for session in (watcher, reader):
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            session.logout()
    return seen


@pytest_twisted.ensureDeferred
async def test_counts_through_every_door(mail_lab: MailLab) -> None:
    """
    STATUS answers exactly as the mail comes by SMTP, is marked read and
    deleted over HTTP, retrieved and deleted over POP3, and flagged and
    expunged by another IMAP session (SIZE: the messages as stored, with
    CRLF line ends).
    """
    steps = await deferToThread(doors, mail_lab)
    assert steps == [
        ("after SMTP", counted(6, 6, 6, 7, 0)),
        ("after a SELECT", counted(6, 0, 6, 7, 0)),
        ("after HTTP", counted(5, 0, 4, 7, 0)),
        ("after POP3", counted(4, 0, 2, 7, 0)),
        ("after STORE", counted(4, 0, 1, 7, 1)),
        ("fetched", {"messages": 4}),
        ("after EXPUNGE", counted(3, 0, 1, 7, 0)),
    ], steps
    folder = mail_lab.store.folder(USER)
    assert [folder.flags(uid) for uid in folder.uids()] == [
        ("\\Seen",),
        ("\\Seen",),
        (),
    ]


def counted(
    messages: int, recent: int, unseen: int, uidnext: int, deleted: int
) -> dict[str, int]:
    """A STATUS answer (its SIZE checked against the store already)."""
    return {
        "MESSAGES": messages,
        "RECENT": recent,
        "UNSEEN": unseen,
        "UIDNEXT": uidnext,
        "DELETED": deleted,
    }
