"""
Model checking of the mail lab's store through its doors: a Hypothesis
state machine drives two IMAP sessions and SMTP deliveries against one
Maildir store in memory (deliver, APPEND, STORE of flags and keywords,
COPY, MOVE, EXPUNGE, CREATE, RENAME, SELECT in either session, restart)
and, after every step, checks that the sessions, a simple model and the
disk (read by a fresh L{MailStore}, as another process would) agree on
UIDs, UIDVALIDITY, UIDNEXT, MODSEQ and HIGHESTMODSEQ, EXISTS, flags and
message bytes, and on the counts the folders keep: SELECT's EXISTS, RECENT
and UNSEEN, and STATUS's MESSAGES, RECENT, UNSEEN, DELETED, SIZE, UIDNEXT
and HIGHESTMODSEQ for every mailbox.

The CI run is bounded by the settings below; for a longer search run
C{python -m tests.fuzz --minutes 10} (see L{tests.fuzz}).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
)
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet.task import Clock

from tests.mail.lab.imapwire import (
    IMAPSession,
    Reply,
    dot_stuffed,
    fetch_items,
    parse_tokens,
    smtp_conversation,
)
from twisted_netlab.mail.lab.imap.account import LabRealm
from twisted_netlab.mail.lab.imap.server import LabIMAPFactory
from twisted_netlab.mail.lab.smtp.server import LabSMTPFactory
from twisted_netlab.mail.lab.store.maildir import (
    INBOX,
    Envelope,
    MailStore,
    crlf_size,
)
from twisted_netlab.mail.lab.users import UsersFile

USER = "alice@example.test"
PASSWORD = "alice-password"
SYSTEM_FLAGS = ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")
KEYWORDS = ("$Forwarded", "$Junk", "NonJunk", "label1")
#: Names CREATE and RENAME choose from (RENAME moves inferiors along).
NAMES = ("Archive", "Work", "Work.2026", "Trash", "Old", "Old.Work")

_users_directory: Path | None = None


def shared_users_file() -> UsersFile:
    """
    One users file for every example (its scrypt hash is slow to make).
    """
    global _users_directory
    if _users_directory is None:
        _users_directory = Path(tempfile.mkdtemp(prefix="netlab-model-users-"))
        atexit.register(shutil.rmtree, _users_directory, True)
        UsersFile(_users_directory / "users").add(USER, PASSWORD)
    return UsersFile(_users_directory / "users")


class Lab:
    """
    The lab's IMAP and SMTP servers over one store in C{root}, as
    C{MailLab} wires them (a new one over the same directory is a restart).
    """

    def __init__(self, root: Path) -> None:
        self.store = MailStore(root)
        self.store.ensure_user(USER)
        checker = InMemoryUsernamePasswordDatabaseDontUse(**{USER: PASSWORD.encode()})
        clock = Clock()
        self.imap = LabIMAPFactory(
            portal=Portal(LabRealm(self.store), [checker]),
            tls=None,
            allow_plaintext_auth=True,
            reactor=clock,
        )
        self.smtp = LabSMTPFactory(
            users=shared_users_file(),
            domains=["example.test"],
            deliver=self.deliver,
            tls=None,
            hostname="lab.example.test",
            reactor=clock,
        )

    def deliver(
        self, message: bytes, copies: Mapping[str, bytes], envelope: Envelope
    ) -> dict[str, int]:
        """
        Deliver as C{MailLab} does, without its group commit's timer.
        """
        return self.store.deliver_many(
            message, list(copies), envelope=envelope, prefixes=copies
        )


def norm(flags: object) -> frozenset[str]:
    """
    Flags compared case-insensitively, without the session-only \\Recent.
    """
    assert isinstance(flags, (list, tuple, set, frozenset)), flags
    result = set()
    for flag in flags:
        text = flag.decode() if isinstance(flag, bytes) else str(flag)
        if text.lower() != "\\recent":
            result.add(text.lower())
    return frozenset(result)


@dataclass
class Message:
    """
    The model of one stored message.
    """

    data: bytes
    #: SMTP prepends a Received: header: then only the end must match.
    exact: bool
    flags: frozenset[str]
    #: The MODSEQ once observed (None until then, or after a change)...
    modseq: int | None = None
    #: ... which must then be above this.
    above: int = 0
    #: Delivered by SMTP (not a copy): it has its envelope.
    delivered: bool = False

    def observe_modseq(self, value: int, where: str) -> None:
        if self.modseq is None:
            assert value > self.above, f"{where}: MODSEQ {value} <= {self.above}"
            self.modseq = value
        else:
            assert value == self.modseq, f"{where}: MODSEQ {value} != {self.modseq}"

    def check_data(self, data: bytes, where: str) -> None:
        if self.exact:
            assert data == self.data, f"{where}: {data[:80]!r} != {self.data[:80]!r}"
        else:
            assert data.startswith(b"Received: "), f"{where}: {data[:80]!r}"
            assert data.endswith(self.data), f"{where}: {data[-80:]!r}"


@dataclass
class Box:
    """
    The model of one mailbox.
    """

    uidvalidity: int | None = None
    uidnext: int = 1
    messages: dict[int, Message] = field(default_factory=dict)
    #: The HIGHESTMODSEQ last observed (None: not yet), and whether it
    #: must have grown since.
    highest: int | None = None
    changed: bool = False
    #: The messages no session has seen (files in new/): \Recent for the
    #: next session that selects the mailbox.
    recent: set[int] = field(default_factory=set)

    def add(
        self, data: bytes, exact: bool, flags: frozenset[str], *, claimed: bool
    ) -> int:
        """
        A new message; recent unless it has flags (its file goes to cur/)
        or a session with the mailbox selected claims it at once.
        """
        uid = self.uidnext
        self.uidnext += 1
        self.messages[uid] = Message(data, exact, flags, above=self.highest or 0)
        if not flags and not claimed:
            self.recent.add(uid)
        self.changed = True
        return uid

    def first_unseen(self) -> int | None:
        """The sequence number of the first message without \\Seen."""
        for seq, uid in enumerate(sorted(self.messages), 1):
            if "\\seen" not in self.messages[uid].flags:
                return seq
        return None

    def set_flags(self, uid: int, flags: frozenset[str]) -> None:
        # Any STORE moves the file to cur/: no longer recent.
        self.recent.discard(uid)
        message = self.messages[uid]
        if flags != message.flags:
            message.flags = flags
            message.modseq = None
            message.above = self.highest or 0
            self.changed = True

    def remove(self, uid: int) -> None:
        del self.messages[uid]
        self.recent.discard(uid)
        self.changed = True

    def observe(self, uidvalidity: int, highest: int | None, where: str) -> None:
        if self.uidvalidity is None:
            self.uidvalidity = uidvalidity
        assert uidvalidity == self.uidvalidity, f"{where}: UIDVALIDITY changed"
        if highest is None:
            return
        top = max((m.modseq or 0 for m in self.messages.values()), default=0)
        assert highest >= top, f"{where}: HIGHESTMODSEQ {highest} < MODSEQ {top}"
        if self.highest is None:
            pass
        elif self.changed:
            assert highest > self.highest, f"{where}: HIGHESTMODSEQ did not grow"
        else:
            assert highest == self.highest, f"{where}: HIGHESTMODSEQ moved alone"
        self.highest = highest
        self.changed = False


def quoted(name: str) -> bytes:
    return b'"' + name.encode().replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def uid_set(uids: list[int]) -> bytes:
    return b",".join(b"%d" % uid for uid in sorted(uids))


def flag_list(flags: frozenset[str] | list[str]) -> bytes:
    return b"(" + b" ".join(f.encode() for f in sorted(flags)) + b")"


class Session:
    """
    A logged-in IMAP session and what it believes: the mailbox it selected
    and the UIDs by sequence number (kept up by EXPUNGE responses).
    """

    def __init__(self, lab: Lab, name: str) -> None:
        self.imap = IMAPSession(lab.imap, name)
        assert self.imap.greeting.startswith(b"* OK"), self.imap.greeting
        self.imap.ok(b"LOGIN " + quoted(USER) + b" " + quoted(PASSWORD))
        self.imap.ok(b"ENABLE CONDSTORE")
        self.selected: str | None = None
        self.view: list[int] = []
        self.exists = 0

    def run(self, line: bytes, *literals: bytes) -> Reply:
        """
        Run a command; follow the EXPUNGE and EXISTS responses it gets.
        """
        reply = self.imap.command(line, *literals)
        for response in reply.untagged:
            words = response.split(b" ", 3)
            if len(words) >= 3 and words[1].isdigit():
                number, kind = int(words[1]), words[2].strip().upper()
                if kind == b"EXPUNGE":
                    assert 1 <= number <= len(self.view), response
                    del self.view[number - 1]
                    self.exists -= 1
                elif kind == b"EXISTS":
                    assert number >= self.exists, f"EXISTS went down: {response!r}"
                    self.exists = number
        return reply

    def ok(self, line: bytes, *literals: bytes) -> Reply:
        reply = self.run(line, *literals)
        assert reply.status == b"OK", f"{line[:200]!r} got {reply.tagged!r}"
        return reply


messages = st.builds(
    lambda subject, lines: (
        b"Subject: "
        + subject.encode()
        + b"\r\nMessage-ID: <m@example.test>\r\n\r\n"
        + b"".join(line + b"\r\n" for line in lines)
    ),
    st.text("abcxyz ", min_size=1, max_size=12),
    st.lists(
        st.sampled_from(
            [b"", b".", b"..", b".dot first", b"hello", b"caf\xc3\xa9", b"a b\tc"]
        ),
        max_size=6,
    ),
)
flag_sets = st.frozensets(st.sampled_from(SYSTEM_FLAGS + KEYWORDS), max_size=4)
sessions = st.sampled_from([0, 1])


class LabModel(RuleBasedStateMachine):
    """
    Two IMAP sessions and SMTP deliveries against one store, with a model.
    """

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="netlab-model-"))
        self.lab = Lab(self.root)
        self.boxes: dict[str, Box] = {INBOX: Box()}
        self.sessions = [Session(self.lab, "a"), Session(self.lab, "b")]

    def teardown(self) -> None:
        for session in self.sessions:
            session.imap.close()
        shutil.rmtree(self.root, True)

    # -- helpers ----------------------------------------------------------------

    def selected(self, index: int) -> tuple[Session, Box]:
        session = self.sessions[index]
        assert session.selected is not None
        return session, self.boxes[session.selected]

    def pick_uids(self, box: Box, data: st.DataObject) -> list[int]:
        uids = sorted(box.messages)
        if not uids:
            return []
        return sorted(data.draw(st.sets(st.sampled_from(uids), min_size=1)))

    def selectable_session(self, data: st.DataObject) -> int:
        """
        A session with a mailbox selected (the first SELECTs INBOX if none
        has one).
        """
        chosen = [i for i, s in enumerate(self.sessions) if s.selected is not None]
        if not chosen:
            self.select_box(0, False, INBOX)
            chosen = [0]
        return data.draw(st.sampled_from(chosen))

    def claimed(self, name: str) -> bool:
        """
        Whether a session has mailbox C{name} selected (read-write): it
        takes new messages as its \\Recent ones as they come.
        """
        return any(s.selected == name for s in self.sessions)

    def add_copies(
        self, reply: Reply, source: Box, uids: list[int], target_name: str
    ) -> None:
        target = self.boxes[target_name]
        claimed = self.claimed(target_name)
        new = [
            target.add(
                source.messages[uid].data,
                source.messages[uid].exact,
                source.messages[uid].flags,
                claimed=claimed,
            )
            for uid in uids
        ]
        code = reply.code(b"COPYUID")
        assert code is not None, reply.tagged
        validity, old_set, new_set = code.split()
        if target.uidvalidity is not None:
            assert int(validity) == target.uidvalidity
        assert expand(old_set) == uids, (code, uids)
        assert expand(new_set) == new, (code, new)

    # -- rules ------------------------------------------------------------------

    @rule(message=messages)
    def deliver(self, message: bytes) -> None:
        """
        An SMTP delivery to the user: 250 after the final dot.
        """
        replies = smtp_conversation(
            self.lab.smtp,
            [
                b"EHLO client.example.test",
                b"MAIL FROM:<sender@example.org>",
                b"RCPT TO:<" + USER.encode() + b">",
                b"DATA",
                *dot_stuffed(message),
                b".",
                b"QUIT",
            ],
        )
        assert replies[0].startswith(b"220"), replies
        final = replies[-2]
        assert final.startswith(b"250"), replies
        inbox = self.boxes[INBOX]
        uid = inbox.add(message, False, frozenset(), claimed=self.claimed(INBOX))
        inbox.messages[uid].delivered = True

    @rule(
        index=sessions,
        message=messages,
        flags=flag_sets,
        plus=st.booleans(),
        data=st.data(),
    )
    def append(
        self,
        index: int,
        message: bytes,
        flags: frozenset[str],
        plus: bool,
        data: st.DataObject,
    ) -> None:
        """
        APPEND with flags and keywords, by a synchronising literal or a
        LITERAL+ one: APPENDUID names the model's next UID.
        """
        name = data.draw(st.sampled_from(sorted(self.boxes)))
        box = self.boxes[name]
        session = self.sessions[index]
        head = b"APPEND " + quoted(name) + b" " + flag_list(flags) + b" "
        if plus:
            reply = session.ok(head + b"{%d+}\r\n" % len(message) + message)
        else:
            reply = session.ok(head + b"{%d}\x00" % len(message), message)
        uid = box.add(message, True, norm(flags), claimed=self.claimed(name))
        code = reply.code(b"APPENDUID")
        assert code is not None, reply.tagged
        validity, appended = (int(v) for v in code.split())
        assert appended == uid, (code, uid)
        box.observe(validity, None, "APPENDUID")

    @rule(
        mode=st.sampled_from([b"+FLAGS", b"-FLAGS", b"FLAGS"]),
        silent=st.booleans(),
        flags=flag_sets,
        data=st.data(),
    )
    def store(
        self, mode: bytes, silent: bool, flags: frozenset[str], data: st.DataObject
    ) -> None:
        """
        UID STORE of flags and keywords; unless .SILENT, a FETCH FLAGS for
        each message that matches the model.
        """
        session, box = self.selected(self.selectable_session(data))
        uids = self.pick_uids(box, data)
        if not uids:
            return
        item = mode + (b".SILENT" if silent else b"")
        reply = session.ok(
            b"UID STORE " + uid_set(uids) + b" " + item + b" " + flag_list(flags)
        )
        wanted = norm(flags)
        for uid in uids:
            old = box.messages[uid].flags
            new = (
                old | wanted
                if mode == b"+FLAGS"
                else (old - wanted if mode == b"-FLAGS" else wanted)
            )
            box.set_flags(uid, new)
        if not silent:
            seen = {}
            for response in reply.untagged:
                if b" FETCH " in response:
                    items = fetch_items(parse_tokens(response))
                    if b"UID" in items:
                        seen[int(items[b"UID"])] = norm(items[b"FLAGS"])
            for uid in uids:
                assert seen.get(uid) == box.messages[uid].flags, (uid, seen, reply)

    @rule(move=st.booleans(), data=st.data())
    def copy(self, move: bool, data: st.DataObject) -> None:
        """
        UID COPY or UID MOVE to another mailbox: COPYUID maps the model's
        UIDs; MOVE expunges the originals from the session.
        """
        session, box = self.selected(self.selectable_session(data))
        uids = self.pick_uids(box, data)
        if not uids:
            return
        target = data.draw(
            st.sampled_from([n for n in sorted(self.boxes) if n != session.selected])
            if len(self.boxes) > 1
            else st.just(session.selected)
        )
        assert target is not None
        if move and target == session.selected:
            return
        command = b"UID MOVE " if move else b"UID COPY "
        before = list(session.view)
        reply = session.ok(command + uid_set(uids) + b" " + quoted(target))
        self.add_copies(reply, box, uids, target)
        if move:
            for uid in uids:
                box.remove(uid)
            assert session.view == [u for u in before if u not in uids], (
                session.view,
                before,
                uids,
            )

    @rule(data=st.data())
    def expunge(self, data: st.DataObject) -> None:
        """
        EXPUNGE removes exactly the model's \\Deleted messages, reported by
        sequence numbers that follow.
        """
        session, box = self.selected(self.selectable_session(data))
        before = list(session.view)
        session.ok(b"EXPUNGE")
        gone = [uid for uid, m in box.messages.items() if "\\deleted" in m.flags]
        for uid in gone:
            box.remove(uid)
        assert session.view == [u for u in before if u not in gone], (before, gone)

    @rule(name=st.sampled_from(NAMES))
    def create(self, name: str) -> None:
        """
        CREATE of a new name: it (and any missing parent) then exists.
        """
        if name in self.boxes:
            reply = self.sessions[0].run(b"CREATE " + quoted(name))
            assert reply.status == b"NO", reply.tagged
            return
        self.sessions[0].ok(b"CREATE " + quoted(name))
        self.add_with_parents(name)

    def add_with_parents(self, name: str) -> None:
        levels = name.split(".")
        for depth in range(1, len(levels) + 1):
            self.boxes.setdefault(".".join(levels[:depth]), Box())

    @rule(index=sessions, data=st.data())
    def rename(self, index: int, data: st.DataObject) -> None:
        """
        RENAME of a mailbox no session has open: it and its inferiors keep
        their messages, UIDs, UIDVALIDITY and flags under the new names.
        """
        busy = {s.selected for s in self.sessions}
        candidates = [
            n
            for n in sorted(self.boxes)
            if n != INBOX
            and not any(
                b is not None and (b == n or b.startswith(n + ".")) for b in busy
            )
        ]
        if not candidates:
            return
        old = data.draw(st.sampled_from(candidates))
        moving = [n for n in self.boxes if n == old or n.startswith(old + ".")]
        targets = [
            new
            for new in NAMES
            if new not in self.boxes
            and not new.startswith(old + ".")
            and all(new + n[len(old) :] not in self.boxes for n in moving)
        ]
        if not targets:
            return
        new = data.draw(st.sampled_from(targets))
        self.sessions[index].ok(b"RENAME " + quoted(old) + b" " + quoted(new))
        for name in sorted(moving):
            self.boxes[new + name[len(old) :]] = self.boxes.pop(name)
        self.add_with_parents(new)

    @rule(index=sessions, examine=st.booleans(), data=st.data())
    def select(self, index: int, examine: bool, data: st.DataObject) -> None:
        """
        SELECT (or EXAMINE): EXISTS, RECENT, UNSEEN, UIDVALIDITY, UIDNEXT and
        HIGHESTMODSEQ are the model's; a SELECT takes the recent messages.
        """
        self.select_box(index, examine, data.draw(st.sampled_from(sorted(self.boxes))))

    def select_box(self, index: int, examine: bool, name: str) -> None:
        box = self.boxes[name]
        session = self.sessions[index]
        verb = b"EXAMINE " if examine else b"SELECT "
        reply = session.imap.command(verb + quoted(name))
        assert reply.status == b"OK", reply.tagged
        session.selected = name if not examine else None
        exists = [
            int(r.split()[1]) for r in reply.untagged if r.split()[2:3] == [b"EXISTS"]
        ]
        assert exists == [len(box.messages)], (exists, reply)
        recent = [
            int(r.split()[1]) for r in reply.untagged if r.split()[2:3] == [b"RECENT"]
        ]
        assert recent == [len(box.recent)], (recent, sorted(box.recent), reply)
        unseen = reply.code(b"UNSEEN")
        first = box.first_unseen()
        assert (None if unseen is None else int(unseen)) == first, (unseen, first)
        if not examine:
            box.recent.clear()
        validity = reply.code(b"UIDVALIDITY")
        uidnext = reply.code(b"UIDNEXT")
        highest = reply.code(b"HIGHESTMODSEQ")
        assert validity and uidnext and highest, reply
        assert int(uidnext) == box.uidnext, (uidnext, box.uidnext)
        box.observe(int(validity), int(highest), f"SELECT {name}")
        if session.selected is not None:
            session.view = sorted(box.messages)
            session.exists = len(box.messages)
        else:
            session.imap.ok(b"UNSELECT")
            session.view, session.exists = [], 0

    @rule()
    def restart(self) -> None:
        """
        A restart: the sessions are cut, a new store and servers read the
        same directory, and the sessions log in again.
        """
        for session in self.sessions:
            session.imap.close()
        self.lab = Lab(self.root)
        self.sessions = [Session(self.lab, "a"), Session(self.lab, "b")]

    # -- what must hold after every step -----------------------------------------

    @invariant()
    def disk_agrees(self) -> None:
        """
        A fresh store over the directory sees what the model holds.
        """
        store = MailStore(self.root)
        assert sorted(store.mailboxes(USER)) == sorted(self.boxes), (
            store.mailboxes(USER),
            sorted(self.boxes),
        )
        for name, box in self.boxes.items():
            folder = store.folder(USER, name)
            where = f"disk {name}"
            assert folder.uids() == sorted(box.messages), (where, folder.uids())
            assert folder.uidnext == box.uidnext, (where, folder.uidnext, box.uidnext)
            for uid, message in box.messages.items():
                assert norm(folder.entry(uid).flags) == message.flags, (
                    where,
                    uid,
                    folder.entry(uid).flags,
                    message.flags,
                )
                message.check_data(folder.read(uid), f"{where} UID {uid}")
                envelope = folder.envelope(uid)
                if message.delivered:
                    assert envelope is not None, (where, uid)
                    assert envelope.mail_from == "sender@example.org", envelope
                    assert envelope.rcpt_to == (USER,), envelope
                message.observe_modseq(folder.modseq(uid), f"{where} UID {uid}")
            box.observe(folder.uidvalidity, folder.highest_modseq(), where)
            counts = folder.status()
            assert (counts.messages, counts.recent, counts.first_unseen) == (
                len(box.messages),
                len(box.recent),
                box.first_unseen(),
            ), (where, counts, sorted(box.recent))

    @invariant()
    def status_agrees(self) -> None:
        """
        STATUS of every mailbox answers the model's counts (and the disk's
        size), from either session, whatever it has selected.
        """
        session = self.sessions[len(self.boxes) % 2]
        store = MailStore(self.root)
        for name, box in self.boxes.items():
            reply = session.ok(
                b"STATUS " + quoted(name) + b" (MESSAGES RECENT UIDNEXT UIDVALIDITY"
                b" UNSEEN DELETED SIZE HIGHESTMODSEQ)"
            )
            [line] = [r for r in reply.untagged if r.startswith(b"* STATUS ")]
            inner = line[line.rindex(b"(") + 1 : line.rindex(b")")].split()
            got = {
                inner[i].decode(): int(inner[i + 1]) for i in range(0, len(inner), 2)
            }
            where = f"STATUS {name}"
            folder = store.folder(USER, name)
            expected = {
                "MESSAGES": len(box.messages),
                "RECENT": len(box.recent),
                "UIDNEXT": box.uidnext,
                "UNSEEN": sum(
                    1 for m in box.messages.values() if "\\seen" not in m.flags
                ),
                "DELETED": sum(
                    1 for m in box.messages.values() if "\\deleted" in m.flags
                ),
                "SIZE": sum(crlf_size(folder.read(uid)) for uid in box.messages),
            }
            assert {k: got[k] for k in expected} == expected, (where, got, expected)
            box.observe(got["UIDVALIDITY"], got["HIGHESTMODSEQ"], where)

    @invariant()
    def sessions_agree(self) -> None:
        """
        After a NOOP each session with a mailbox open has its EXPUNGEs and
        new EXISTS, and a FETCH shows the model's UIDs, flags and MODSEQs in
        order, the sequence numbers matching what it was told.
        """
        for session in self.sessions:
            if session.selected is None:
                continue
            box = self.boxes[session.selected]
            session.ok(b"NOOP")
            where = f"session {session.imap.name} {session.selected}"
            assert session.exists == len(box.messages), (where, session.exists)
            if not box.messages:
                assert session.view == [], (where, session.view)
                continue
            reply = session.ok(b"FETCH 1:* (UID FLAGS MODSEQ)")
            fetched: dict[int, dict[bytes, Any]] = {}
            for response in reply.untagged:
                tokens = parse_tokens(response)
                number = tokens[1]
                if len(tokens) > 2 and tokens[2] == b"FETCH":
                    assert isinstance(number, bytes), response
                    fetched[int(number)] = fetch_items(tokens)
            assert sorted(fetched) == list(range(1, len(box.messages) + 1)), (
                where,
                sorted(fetched),
            )
            uids = [int(fetched[n][b"UID"]) for n in sorted(fetched)]
            assert uids == sorted(box.messages), (where, uids)
            assert uids[: len(session.view)] == session.view, (where, session.view)
            session.view = uids
            for items in fetched.values():
                uid = int(items[b"UID"])
                message = box.messages[uid]
                assert norm(items[b"FLAGS"]) == message.flags, (where, uid, items)
                (modseq,) = items[b"MODSEQ"]
                message.observe_modseq(int(modseq), f"{where} UID {uid}")


def expand(sequence_set: bytes) -> list[int]:
    """
    The numbers of a sequence set without C{*} (C{1:3,7}).
    """
    result: list[int] = []
    for part in sequence_set.split(b","):
        low, _, high = part.partition(b":")
        first, last = int(low), int(high or low)
        result.extend(range(min(first, last), max(first, last) + 1))
    return result


#: Bounded for CI (a few tens of seconds); tests.fuzz runs it for longer.
CI_SETTINGS = settings(
    max_examples=int(os.environ.get("NETLAB_MODEL_EXAMPLES", "40")),
    stateful_step_count=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TestLabModel = LabModel.TestCase
TestLabModel.settings = CI_SETTINGS
