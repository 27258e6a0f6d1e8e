"""
Tests for L{twisted_netlab.mail.lab.store.folder}: the counts a folder keeps
(L{Folder.status}, L{Folder.total_size}), its snapshots, its flag words,
and how it follows the disk, checked against a fresh store over the same
directory (which reads everything from scratch) while this process,
another lab process (a second store) and other programs (files made,
renamed and removed directly) change the Maildir.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from array import array
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.store import uidlist
from twisted_netlab.mail.lab.store.maildir import (
    Envelope,
    FolderChange,
    MailStore,
    MessageGone,
    crlf_size,
)
from twisted_netlab.mail.lab.store.names import flags_from_info

USER = "carol@netlab.test"
FLAGS = ("\\Seen", "\\Deleted", "\\Flagged", "\\Answered", "$Label", "Work")


def message(n: int) -> bytes:
    return b"Subject: message %d\r\n\r\n" % n + b"line\n" * (n % 4)


def recount(store: MailStore) -> dict[str, object]:
    """The counts of the user's INBOX made from scratch by a fresh store."""
    folder = store.folder(USER)
    entries = folder.entries()
    unseen = [e for e in entries if "\\Seen" not in e.flags]
    return {
        "uids": [e.uid for e in entries],
        "flags": {e.uid: set(e.flags) for e in entries},
        "messages": len(entries),
        "unseen": len(unseen),
        "deleted": sum(1 for e in entries if "\\Deleted" in e.flags),
        "recent": sum(1 for e in entries if e.subdir == "new"),
        "first_unseen": entries.index(unseen[0]) + 1 if unseen else None,
        "size": sum(crlf_size(folder.read(e.uid)) for e in entries),
    }


def kept(store: MailStore) -> dict[str, object]:
    """The same counts as the folder keeps them."""
    folder = store.folder(USER)
    status = folder.status()
    uids = folder.uids()
    return {
        "uids": uids,
        "flags": {uid: set(folder.flags(uid)) for uid in uids},
        "messages": status.messages,
        "unseen": status.unseen,
        "deleted": status.deleted,
        "recent": status.recent,
        "first_unseen": status.first_unseen,
        "size": folder.total_size(),
    }


class FolderMachine(RuleBasedStateMachine):
    """
    One folder followed by this process while it, another lab process and
    other programs change it; after every step (and a refresh) it agrees
    with a fresh store, and what its listeners heard adds up.
    """

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="netlab-folder-"))
        self.store = MailStore(self.root)
        self.store.ensure_user(USER)
        self.other = MailStore(self.root)
        self.folder = self.store.folder(USER)
        self.heard: list[FolderChange] = []
        self.folder.add_listener(self.heard.append)
        self.known = set(self.folder.uids())
        self.flags_known: dict[int, tuple[str, ...]] = {}
        self.dropped = 0

    def teardown(self) -> None:
        shutil.rmtree(self.root, True)

    def path(self, subdir: str = "") -> Path:
        return self.root / USER / subdir

    def some_file(self, data: st.DataObject) -> Path | None:
        files = [p for d in ("new", "cur") for p in sorted(self.path(d).iterdir())]
        return data.draw(st.sampled_from(files)) if files else None

    # -- this process -------------------------------------------------------------

    @rule(n=st.integers(0, 50), flags=st.sets(st.sampled_from(FLAGS), max_size=2))
    def deliver(self, n: int, flags: set[str]) -> None:
        self.folder.deliver(message(n), sorted(flags))

    @rule(data=st.data(), flags=st.sets(st.sampled_from(FLAGS), max_size=3))
    def set_flags(self, data: st.DataObject, flags: set[str]) -> None:
        uids = self.folder.uids()
        if uids:
            chosen = data.draw(st.sets(st.sampled_from(uids), min_size=1))
            self.folder.set_flags({uid: sorted(flags) for uid in chosen})

    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        uids = self.folder.uids()
        if uids:
            self.folder.remove(data.draw(st.sets(st.sampled_from(uids), min_size=1)))

    @rule(data=st.data())
    def mark_seen_by_session(self, data: st.DataObject) -> None:
        uids = self.folder.uids()
        if uids:
            self.folder.mark_seen_by_session(data.draw(st.sets(st.sampled_from(uids))))

    # -- another lab process (a store of its own over the same directory) ---------

    @rule(n=st.integers(0, 50))
    def other_delivers(self, n: int) -> None:
        self.other.deliver(USER, message(n))

    @rule(data=st.data(), flags=st.sets(st.sampled_from(FLAGS), max_size=2))
    def other_sets_flags(self, data: st.DataObject, flags: set[str]) -> None:
        folder = self.other.folder(USER)
        folder.refresh()
        uids = folder.uids()
        if uids:
            uid = data.draw(st.sampled_from(uids))
            folder.set_flags({uid: sorted(flags)})

    # -- other programs -----------------------------------------------------------

    @rule(n=st.integers(0, 50), place=st.sampled_from(["new", "cur"]))
    def program_drops(self, n: int, place: str) -> None:
        self.dropped += 1
        name = f"1800000000.M{self.dropped}P99.elsewhere"
        if place == "cur":
            name += ":2,S"
        (self.path(place) / name).write_bytes(message(n))

    @rule(data=st.data(), info=st.sampled_from(["", "S", "FS", "T", "RS", "P"]))
    def program_renames(self, data: st.DataObject, info: str) -> None:
        path = self.some_file(data)
        if path is not None:
            key = path.name.split(":", 1)[0]
            os.rename(path, self.path("cur") / f"{key}:2,{info}")

    @rule(data=st.data())
    def program_removes(self, data: st.DataObject) -> None:
        path = self.some_file(data)
        if path is not None:
            path.unlink()

    @rule(data=st.data())
    def program_links(self, data: st.DataObject) -> None:
        """A program renaming by link and unlink: both names, for a moment."""
        path = self.some_file(data)
        if path is not None:
            key = path.name.split(":", 1)[0]
            target = self.path("cur") / f"{key}:2,F"
            if target != path:
                os.link(path, target)
                self.folder.refresh()
                path.unlink()

    @rule()
    def other_compacts(self) -> None:
        """Another process rewrites the UID list (same UIDs)."""
        folder = self.other.folder(USER)
        folder.refresh()
        with folder._locked():
            folder._uids.compact({e.key: e.uid for e in folder.entries()})

    # -- what must hold ------------------------------------------------------------

    @invariant()
    def agrees_with_a_fresh_store(self) -> None:
        self.folder.refresh()
        ours = kept(self.store)
        assert ours == recount(MailStore(self.root)), ours
        assert ours == kept(MailStore(self.root)), ours

    @invariant()
    def listeners_heard_it_all(self) -> None:
        """
        The changes heard, applied to the UIDs known, give the UIDs now; every
        message whose flags changed was heard of.
        """
        known = set(self.known)
        reported: set[int] = set()
        for change in self.heard:
            assert not known.intersection(change.new), (change, known)
            assert known.issuperset(change.gone), (change, known)
            known |= set(change.new)
            known -= set(change.gone)
            reported |= set(change.flags)
        self.heard.clear()
        self.known = set(self.folder.uids())
        assert known == self.known, (known, self.known)
        flags = {uid: self.folder.flags(uid) for uid in self.known}
        changed = {
            uid
            for uid, now in flags.items()
            if uid in self.flags_known and self.flags_known[uid] != now
        }
        assert changed <= reported, (changed, reported)
        self.flags_known = flags

    @invariant()
    def snapshot_and_words(self) -> None:
        snapshot = self.folder.snapshot()
        status = self.folder.status()
        assert list(snapshot.uids) == self.folder.uids()
        assert len(snapshot.recent) == status.recent
        assert snapshot.first_unseen == status.first_unseen
        words = self.folder.flag_words(snapshot.uids)
        assert [self.folder.flags_of_word(w) for w in words] == [
            self.folder.flags(uid) for uid in snapshot.uids
        ]


TestFolderMachine = FolderMachine.TestCase
TestFolderMachine.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)


class FolderTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="netlab-folder-"))
        self.addCleanup(shutil.rmtree, self.root, True)
        self.store = MailStore(self.root)
        self.store.ensure_user(USER)
        self.folder = self.store.folder(USER)

    def test_counts_follow_changes(self) -> None:
        """
        The kept counts after deliveries (with and without flags), flag
        changes and removals.
        """
        for n in range(4):
            self.folder.deliver(message(n))
        self.folder.deliver(message(9), ["\\Seen"])
        status = self.folder.status()
        self.assertEqual(
            (status.messages, status.recent, status.unseen, status.first_unseen),
            (5, 4, 4, 1),
        )
        self.folder.set_flags({1: ["\\Seen"], 2: ["\\Deleted", "\\Seen"]})
        status = self.folder.status()
        self.assertEqual(
            (status.recent, status.unseen, status.deleted, status.first_unseen),
            (2, 2, 1, 3),
        )
        self.folder.remove([3])
        status = self.folder.status()
        self.assertEqual(
            (status.messages, status.unseen, status.first_unseen), (4, 1, 3)
        )
        self.assertEqual(status.uidnext, 6)
        self.assertEqual(status.highest_modseq, self.folder.highest_modseq())

    def test_file_missed_by_a_listing(self) -> None:
        """
        A file missing from a listing (renamed by another program while the
        directory was read) is looked for again before it is called gone:
        found again, under its old name or a new one, it keeps its UID.
        """
        for n in range(3):
            self.folder.deliver(message(n))
        self.folder.refresh()
        real = self.folder._list_names
        new, _ = real()
        first, second = self.folder.entry(1).name, self.folder.entry(2).name
        missing = {first, second}
        os.rename(
            self.root / USER / "new" / second,
            self.root / USER / "cur" / (second + ":2,S"),
        )
        calls: list[int] = []

        def listing() -> tuple[set[str], set[str]]:
            calls.append(1)
            if len(calls) == 1:
                return new - missing, set()
            return real()

        self.patch(self.folder, "_list_names", listing)
        change = self.folder.refresh(force=True)
        self.assertEqual(len(calls), 2)
        self.assertEqual(change, FolderChange(flags=(2,)))
        self.assertEqual(self.folder.uids(), [1, 2, 3])
        self.assertEqual(self.folder.flags(2), ("\\Seen",))

    def test_size_of_names_without_sizes(self) -> None:
        """
        A file whose name records no size (another program's) is measured
        once, with CRLF line ends; the others are counted from their names.
        """
        self.folder.deliver(b"a\nb\n")
        (self.root / USER / "new" / "1.M1P1.host").write_bytes(b"x\ny\nz\n")
        self.folder.refresh(force=True)
        self.assertEqual(self.folder.total_size(), 6 + 9)
        os.unlink(self.root / USER / "new" / "1.M1P1.host")
        self.folder.refresh(force=True)
        self.assertEqual(self.folder.total_size(), 6)

    def test_unchanged_directories_not_listed(self) -> None:
        """
        Once its directories' times are old enough to trust, a refresh does
        not list them again: a change that kept them (as a file's own
        rename cannot) goes unseen until they change.
        """
        self.folder.deliver(message(1))
        for subdir in ("new", "cur"):
            os.utime(self.root / USER / subdir, (1_000_000, 1_000_000))
        self.folder.refresh()
        listed: list[str] = []
        real = os.listdir

        def counting(path: str) -> list[str]:
            listed.append(path)
            return real(path)

        self.patch(os, "listdir", counting)
        self.assertEqual(self.folder.refresh(), FolderChange())
        self.assertEqual(self.folder.status().messages, 1)
        self.assertEqual(listed, [])
        self.folder.refresh(force=True)
        self.assertEqual(len(listed), 2)

    def test_changes_since_snapshot(self) -> None:
        """
        L{Folder.changes_since} names what came and went after a snapshot
        (for a session that listens only after it took it).
        """
        for n in range(3):
            self.folder.deliver(message(n))
        snapshot = self.folder.snapshot()
        self.assertEqual(self.folder.changes_since(snapshot), FolderChange())
        self.folder.remove([2])
        self.folder.deliver(message(7))
        self.assertEqual(
            self.folder.changes_since(snapshot), FolderChange(new=(4,), gone=(2,))
        )
        self.assertEqual(snapshot.uids, array("I", [1, 2, 3]))

    def test_flag_words_of_other_runs(self) -> None:
        """
        Flag words for UIDs that are not a run of the folder's own (some
        gone) are given one by one, -1 for the gone.
        """
        for n in range(4):
            self.folder.deliver(message(n), ["\\Seen"] if n % 2 else [])
        self.folder.remove([2])
        words = self.folder.flag_words(array("I", [1, 2, 3, 4]))
        self.assertEqual(words[1], -1)
        self.assertEqual(
            [self.folder.flags_of_word(w) for w in (words[0], words[2], words[3])],
            [(), (), ("\\Seen",)],
        )

    def test_key_known_to_the_list_keeps_its_uid(self) -> None:
        """
        A file that comes back under a key the UID list knows (moved away
        and back by another program) gets its UID again, as before.
        """
        self.folder.refresh()
        self.folder.deliver(message(1))
        uid = self.folder.deliver(message(2))
        (name,) = [
            n
            for n in os.listdir(self.root / USER / "new")
            if (self.root / USER / "new" / n).read_bytes() == message(2)
        ]
        os.rename(self.root / USER / "new" / name, self.root / name)
        self.assertEqual(self.folder.refresh(force=True).gone, (uid,))
        os.rename(self.root / name, self.root / USER / "cur" / (name + ":2,S"))
        self.assertEqual(self.folder.refresh(force=True).new, (uid,))
        self.assertEqual(self.folder.flags(uid), ("\\Seen",))

    def test_many_lines_from_another_process(self) -> None:
        """
        When another process appended more lines than are handed over, the
        folder reads the whole UID list and still numbers every file as the
        other process did.
        """
        self.patch(uidlist, "_FRESH_LIMIT", 3)
        self.folder.refresh()
        other = MailStore(self.root)
        uids = [other.deliver(USER, message(n)) for n in range(6)]
        self.folder._uids.read()  # the lines, read before their files are seen
        self.assertEqual(self.folder.refresh(force=True).new, tuple(uids))
        self.assertEqual(self.folder.read(uids[-1]), message(5))

    def test_envelope_after_another_process_compacts(self) -> None:
        """
        Envelopes are found by where their lines are; after another process
        rewrote the UID list, they are found in the new file.
        """
        envelope = Envelope("from@netlab.test", (USER,), "127.0.0.1", False, None, 1.0)
        self.folder.deliver(message(1))
        uid = self.store.deliver_many(message(2), [USER], envelope=envelope)[USER]
        self.assertEqual(self.folder.envelope(uid), envelope)
        other = MailStore(self.root).folder(USER)
        with other._locked():
            other._uids.compact({e.key: e.uid for e in other.entries()})
        self.assertEqual(self.folder.envelope(uid), envelope)
        self.folder.remove([uid])
        self.assertIsNone(self.folder.envelope(uid))
        with self.assertRaises(MessageGone):
            self.folder.flags(uid)

    def test_names_from_other_programs_kept(self) -> None:
        """
        Info letters the lab does not know (and an info without C{2,}) stay
        in the name through the lab's flag changes.
        """
        odd = self.root / USER / "cur" / "1.M1P1.host:2,SX"
        odd.write_bytes(message(1))
        self.folder.refresh(force=True)
        self.assertEqual(self.folder.flags(1), ("\\Seen",))
        self.folder.set_flags({1: ["\\Flagged"]})
        self.assertEqual(os.listdir(self.root / USER / "cur"), ["1.M1P1.host:2,FX"])
        self.assertEqual(flags_from_info("FX"), self.folder.flags(1))
