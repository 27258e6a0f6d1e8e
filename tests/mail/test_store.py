"""
Tests for L{twisted_netlab.mail.store}: saving byte for byte to Maildir,
mbox and .eml files, the C{--new-only} state, and how saving and the state
behave when writes fail or a run is cut short.
"""

from __future__ import annotations

import errno
import json
import mailbox
import os
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from tests.scratch import fresh_path
from twisted_netlab.errors import LocalWriteFailed, ServerRefused, UsageProblem
from twisted_netlab.mail.fetch import FetchedMessage, SelectedMailbox
from twisted_netlab.mail.store import (
    FetchState,
    MaildirStore,
    SaveTarget,
    account_name,
    default_state_directory,
    open_store,
    save_batch,
    save_messages,
)

ODD = b"From: a@example.org\r\nSubject: odd\r\n\r\nFrom here\r\n>From there\r\n\xff\x00"


def message(uid: int, data: bytes | None = None) -> FetchedMessage:
    if data is None:
        data = b"Subject: message %d\r\n\r\nbody %d\r\n" % (uid, uid)
    return FetchedMessage(uid, (), data)


def maildir_contents(path: Path) -> list[bytes]:
    return sorted(
        p.read_bytes() for sub in ("new", "cur") for p in (path / sub).iterdir()
    )


class TargetTests(SynchronousTestCase):
    def test_parse(self) -> None:
        """
        C{--save} takes maildir:DIR, mbox:FILE or eml:DIR, with ~ expanded.
        """
        self.assertEqual(
            SaveTarget.parse("maildir:/tmp/m"), SaveTarget("maildir", Path("/tmp/m"))
        )
        self.assertEqual(SaveTarget.parse("mbox:~/x").path, Path.home() / "x")
        self.assertEqual(str(SaveTarget.parse("eml:d")), "eml:d")
        for bad in ("maildir", "mh:/tmp/x", "mbox:", "/tmp/x"):
            error = self.assertRaises(UsageProblem, SaveTarget.parse, bad)
            self.assertIn("expected maildir:DIR, mbox:FILE or eml:DIR", str(error))


class StoreTests(SynchronousTestCase):
    def target(self, kind: str) -> SaveTarget:
        return SaveTarget(kind, fresh_path(self) / "target")

    def test_maildir_byte_for_byte(self) -> None:
        """
        Messages land in the Maildir's new/ exactly as fetched, and
        C{mailbox.Maildir} reads them back the same.
        """
        target = self.target("maildir")
        store = open_store(target)
        data = [message(1).data, ODD, message(3).data]
        written, failure = store.add_all(
            [message(i + 1, d) for i, d in enumerate(data)]
        )
        store.sync()
        store.close()
        self.assertEqual((written, failure), ({1, 2, 3}, None))
        self.assertEqual(maildir_contents(target.path), sorted(data))
        box = mailbox.Maildir(target.path, create=False)
        self.assertEqual(sorted(box.get_bytes(k) for k in box.iterkeys()), sorted(data))

    def test_maildir_names(self) -> None:
        """
        Each message gets a name of its own, made as C{mailbox.Maildir}
        makes them (C{SECONDS.MMICROSECONDSPPIDQCOUNT.HOST}), and nothing is
        left in tmp/.
        """
        target = self.target("maildir")
        store = open_store(target)
        self.addCleanup(store.close)
        store.add_all([message(uid) for uid in range(1, 21)])
        names = os.listdir(target.path / "new")
        self.assertEqual(len(set(names)), 20)
        for name in names:
            self.assertRegex(name, rf"^\d+\.M\d+P{os.getpid()}Q\d+\.[^/:]+$")
        self.assertEqual(os.listdir(target.path / "tmp"), [])

    def test_maildir_write_fails(self) -> None:
        """
        A message that cannot be written and synced is not delivered: nothing
        appears in new/, its file in tmp/ is removed, and the failure says
        why.
        """
        target = self.target("maildir")
        store = open_store(target)
        self.addCleanup(store.close)

        def full(fd: int) -> None:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        self.patch(os, "fsync", full)
        written, failure = store.add_all([message(1)])
        self.assertEqual(written, set())
        assert failure is not None
        self.assertIn("(the target is full)", str(failure))
        self.assertEqual(os.listdir(target.path / "new"), [])
        self.assertEqual(os.listdir(target.path / "cur"), [])
        self.assertEqual(os.listdir(target.path / "tmp"), [])

    def test_maildir_short_writes(self) -> None:
        """
        A message written in pieces (C{os.write} may write less than asked)
        is saved whole, byte for byte, and C{mailbox.Maildir} reads it as
        new mail, headers and all.
        """
        import twisted_netlab.mail.store as store_module

        target = self.target("maildir")
        store = open_store(target)
        self.addCleanup(store.close)
        real_write = os.write
        self.patch(store_module.os, "write", lambda fd, data: real_write(fd, data[:7]))
        big = ODD + b"x" * 100_000 + b"\r\n"
        self.assertEqual(store.add_all([message(1, big)]), ({1}, None))
        self.patch(store_module.os, "write", real_write)
        box = mailbox.Maildir(target.path, create=False)
        [key] = box.keys()
        self.assertEqual(box.get_bytes(key), big)
        self.assertEqual(box.get_message(key).get_subdir(), "new")
        self.assertEqual(box.get_message(key)["Subject"], "odd")

    def test_maildir_synced_before_visible(self) -> None:
        """
        Each message file is fsynced before it is linked into new/ (so a
        crash never leaves part of a message visible), L{MaildirStore.sync}
        fsyncs new/ itself, and with a state, both happen before the state
        on disk advances past the batch.
        """
        import twisted_netlab.mail.store as store_module

        events: list[tuple[str, str]] = []
        real_fsync, real_link, real_replace = (
            os.fsync,
            os.link,
            store_module.replace_file,
        )

        def fsync(fd: int) -> None:
            events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
            real_fsync(fd)

        def link(source: str, destination: str) -> None:
            events.append(("link", os.path.realpath(destination)))
            real_link(source, destination)

        def replace_file(path: Path, data: bytes, **kw: Any) -> None:
            events.append(("state", str(json.loads(data)["last_uid"])))
            real_replace(path, data, **kw)

        self.patch(os, "fsync", fsync)
        self.patch(os, "link", link)
        self.patch(store_module, "replace_file", replace_file)
        state = FetchState.open(fresh_path(self), "alice@h", "INBOX")
        self.addCleanup(state.close)
        state.restart(7)
        target = self.target("maildir")
        store = open_store(target)
        store.writers = 1
        self.addCleanup(store.close)
        events.clear()
        self.assertEqual(
            save_batch(store, [message(1), message(2)], state=state), (2, 0)
        )
        new = os.path.realpath(target.path / "new")
        tmp = os.path.realpath(target.path / "tmp")
        kinds = [kind for kind, _ in events]
        # the journal first, then per message: its file synced, then linked
        self.assertEqual(events[0], ("state", "0"))
        links = [i for i, (kind, _) in enumerate(events) if kind == "link"]
        self.assertEqual(len(links), 2)
        for i in links:
            kind, path = events[i - 1]
            self.assertEqual(kind, "fsync")
            self.assertEqual(os.path.basename(path), os.path.basename(events[i][1]))
            self.assertEqual(os.path.dirname(path), tmp)
            self.assertEqual(os.path.dirname(events[i][1]), new)
        # then new/ synced, then (and only then) the state advances
        directory_sync = events.index(("fsync", new))
        advance = events.index(("state", "2"))
        self.assertLess(links[-1], directory_sync)
        self.assertLess(directory_sync, advance)
        self.assertEqual(kinds.count("state"), 2)
        self.assertEqual(
            maildir_contents(target.path), [message(1).data, message(2).data]
        )

    def test_maildir_failure_mid_batch(self) -> None:
        """
        A write that fails part-way through a batch (the disk fills in the
        middle of the third message) leaves nothing half-visible: new/
        holds the two messages before it, whole, tmp/ is empty, and the
        state covers those two only, the rest of the batch pending.
        """
        import twisted_netlab.mail.store as store_module

        state = FetchState.open(fresh_path(self), "alice@h", "INBOX")
        self.addCleanup(state.close)
        state.restart(7)
        target = self.target("maildir")
        store = open_store(target)
        store.writers = 1
        self.addCleanup(store.close)
        real_write = os.write
        calls = []

        def write(fd: int, data: bytes) -> int:
            calls.append(fd)
            if len(calls) == 3:
                real_write(fd, bytes(data[:5]))
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(fd, data)

        self.patch(store_module.os, "write", write)
        batch = [message(uid) for uid in (1, 2, 3, 4)]
        error = self.assertRaises(
            LocalWriteFailed, save_batch, store, batch, state=state
        )
        self.assertIn("(the target is full)", str(error))
        self.assertEqual(
            maildir_contents(target.path), [message(1).data, message(2).data]
        )
        self.assertEqual(os.listdir(target.path / "tmp"), [])
        self.assertEqual((state.last_uid, state.pending), (2, [3, 4]))
        box = mailbox.Maildir(target.path, create=False)
        self.assertEqual(len(box), 2)

    def test_maildir_link_fails(self) -> None:
        """
        A message whose link into new/ fails is not saved, and its file in
        tmp/ is removed.
        """
        target = self.target("maildir")
        store = open_store(target)
        self.addCleanup(store.close)

        def link(source: str, destination: str) -> None:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        self.patch(os, "link", link)
        written, failure = store.add_all([message(1)])
        self.assertEqual(written, set())
        assert failure is not None
        self.assertIn("Input/output error", str(failure))
        for sub in ("tmp", "new", "cur"):
            self.assertEqual(os.listdir(target.path / sub), [], sub)

    def test_maildir_without_hard_links(self) -> None:
        """
        On a file system without hard links (C{link} refused with EPERM),
        the message is renamed into new/ instead, as C{mailbox} does.
        """
        target = self.target("maildir")
        store = open_store(target)
        self.addCleanup(store.close)

        def link(source: str, destination: str) -> None:
            raise PermissionError(errno.EPERM, os.strerror(errno.EPERM))

        self.patch(os, "link", link)
        self.assertEqual(store.add_all([message(1)]), ({1}, None))
        self.assertEqual(maildir_contents(target.path), [message(1).data])
        self.assertEqual(os.listdir(target.path / "tmp"), [])

    def test_maildir_name_taken(self) -> None:
        """
        A name already taken in tmp/ or in new/ is never overwritten: the
        message gets the next name; after three taken names the write fails
        and leaves nothing of its own behind.
        """
        import twisted_netlab.mail.store as store_module

        target = self.target("maildir")
        store = open_store(target)
        self.addCleanup(store.close)
        names = iter("abcdefg")
        self.patch(store_module, "maildir_name", lambda: next(names))
        (target.path / "tmp" / "a").write_bytes(b"someone else's")
        (target.path / "new" / "b").write_bytes(b"an older message")
        self.assertEqual(store.add_all([message(1)]), ({1}, None))
        self.assertEqual((target.path / "new" / "c").read_bytes(), message(1).data)
        self.assertEqual((target.path / "new" / "b").read_bytes(), b"an older message")
        self.assertEqual(os.listdir(target.path / "tmp"), ["a"])

        for name in "de":
            (target.path / "tmp" / name).write_bytes(b"taken")
        (target.path / "new" / "f").write_bytes(b"taken")
        written, failure = store.add_all([message(2)])
        self.assertEqual(written, set())
        assert failure is not None
        self.assertIn("no unique name", str(failure))
        self.assertEqual(sorted(os.listdir(target.path / "tmp")), ["a", "d", "e"])
        self.assertEqual((target.path / "new" / "f").read_bytes(), b"taken")

    def test_maildir_existing_directory(self) -> None:
        """
        An existing empty directory becomes a Maildir.
        """
        target = self.target("maildir")
        target.path.mkdir(parents=True)
        store = open_store(target)
        store.add_all([message(1)])
        store.close()
        self.assertEqual(maildir_contents(target.path), [message(1).data])

    def test_mbox(self) -> None:
        """
        An mbox gets each message with only the mbox format's own change:
        lines starting with "From " quoted; C{stored_form} says exactly what
        C{mailbox.mbox} gives back.
        """
        target = self.target("mbox")
        store = open_store(target)
        starts_with_from = b"From someone\r\nSubject: x\r\n\r\nno newline at end"
        messages = [message(1), message(2, ODD), message(3, starts_with_from)]
        store.add_all(messages)
        store.sync()
        store.close()
        box = mailbox.mbox(target.path)
        stored = [box.get_bytes(key) for key in box.iterkeys()]
        self.assertEqual(stored, [store.stored_form(m.data) for m in messages])
        self.assertEqual(stored[0], message(1).data)
        self.assertIn(b"\r\n>From here\r\n>From there", stored[1])
        self.assertTrue(stored[2].startswith(b">From someone\r\n"))
        self.assertEqual(len(stored), 3)

    def test_mbox_appends(self) -> None:
        """
        Saving to an existing mbox appends to it.
        """
        target = self.target("mbox")
        for uid in (1, 2):
            store = open_store(target)
            store.add_all([message(uid)])
            store.close()
        box = mailbox.mbox(target.path)
        self.assertEqual(
            [box.get_bytes(k) for k in box.iterkeys()],
            [message(1).data, message(2).data],
        )

    def test_eml(self) -> None:
        """
        .eml files are named by UID, byte for byte; a taken name gets a
        suffix instead of being overwritten.
        """
        target = self.target("eml")
        store = open_store(target)
        store.add_all([message(5, ODD), message(6)])
        store.add_all([message(5, b"another")])
        store.sync()
        store.close()
        self.assertEqual((target.path / "5.eml").read_bytes(), ODD)
        self.assertEqual((target.path / "6.eml").read_bytes(), message(6).data)
        self.assertEqual((target.path / "5-1.eml").read_bytes(), b"another")
        self.assertEqual(
            sorted(p.name for p in target.path.iterdir()), ["5-1.eml", "5.eml", "6.eml"]
        )

    def test_unwritable_target(self) -> None:
        """
        A target that cannot be created is a L{LocalWriteFailed} naming it.
        """
        blocker = fresh_path(self)
        blocker.write_text("a file, not a directory")
        for kind in ("maildir", "mbox", "eml"):
            target = SaveTarget(kind, blocker / "inside")
            error = self.assertRaises(LocalWriteFailed, open_store, target)
            self.assertEqual(
                str(error), f"cannot write to {target}: Not a directory", kind
            )

    def test_mbox_is_directory(self) -> None:
        """
        An mbox target that is a directory is refused.
        """
        target = SaveTarget("mbox", fresh_path(self))
        target.path.mkdir()
        error = self.assertRaises(LocalWriteFailed, open_store, target)
        self.assertIn("it is a directory", str(error))

    def test_mbox_locked(self) -> None:
        """
        An mbox another program has locked is not written to.
        """
        target = self.target("mbox")
        first = open_store(target)
        self.addCleanup(first.close)
        error = self.assertRaises(LocalWriteFailed, open_store, target)
        self.assertIn("another program has it locked", str(error))

    def test_full_disk(self) -> None:
        """
        A full disk is a L{LocalWriteFailed} that says so; the messages
        written before it are reported written, later ones are not.
        """
        store = open_store(self.target("mbox"))
        self.addCleanup(store.close)
        real_add = store._box.add  # type: ignore[attr-defined]
        calls = []

        def add(data: bytes) -> str:
            calls.append(data)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return str(real_add(data))

        store._box.add = add  # type: ignore[attr-defined]
        written, failure = store.add_all([message(1), message(2), message(3)])
        self.assertEqual(written, {1})
        assert failure is not None
        self.assertIn("No space left on device (the target is full)", str(failure))
        self.assertEqual(len(calls), 2)

    def test_holds(self) -> None:
        """
        C{holds} finds the messages the target held when first asked, by
        size and digest; it reads only files of a matching size.
        """
        for kind in ("maildir", "mbox", "eml"):
            target = self.target(kind)
            store = open_store(target)
            store.add_all([message(1), message(2, ODD)])
            store.sync()
            store.close()
            store = open_store(target)
            wanted = [store.digest(m) for m in (message(1).data, ODD, b"other")]
            self.assertEqual(store.holds(wanted), {wanted[0][1], wanted[1][1]}, kind)
            store.close()


class StateTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = fresh_path(self)

    def open(self, mailbox: str = "INBOX") -> FetchState:
        state = FetchState.open(self.directory, "alice@imap.example", mailbox)
        self.addCleanup(state.close)
        return state

    def test_new_state(self) -> None:
        """
        A new state knows no UIDVALIDITY and no UID.
        """
        state = self.open()
        self.assertEqual(
            (state.uidvalidity, state.last_uid, state.pending), (None, 0, [])
        )

    def test_persisted(self) -> None:
        """
        What is committed is there for the next run, in a small JSON file
        that names the account and mailbox; nothing temporary is left.
        """
        state = self.open()
        state.restart(77)
        state.begin([3, 1, 2])
        state.commit(2, [3])
        state.close()
        again = self.open()
        self.assertEqual(
            (again.uidvalidity, again.last_uid, again.pending), (77, 2, [3])
        )
        data = json.loads(again.path.read_text())
        self.assertEqual(
            (data["account"], data["mailbox"]), ("alice@imap.example", "INBOX")
        )
        self.assertEqual(
            sorted(p.suffix for p in self.directory.iterdir()), [".json", ".lock"]
        )

    def test_per_mailbox(self) -> None:
        """
        Each mailbox of an account has its own state.
        """
        inbox = self.open()
        inbox.restart(1)
        inbox.commit(9)
        self.assertEqual(self.open("Archive").last_uid, 0)

    def test_restart(self) -> None:
        """
        A new UIDVALIDITY forgets the UIDs.
        """
        state = self.open()
        state.restart(1)
        state.commit(50, [51])
        state.restart(2)
        self.assertEqual((state.uidvalidity, state.last_uid, state.pending), (2, 0, []))

    def test_locked(self) -> None:
        """
        A second run on the same account and mailbox is refused while the
        first holds the state.
        """
        self.open()
        error = self.assertRaises(
            LocalWriteFailed,
            FetchState.open,
            self.directory,
            "alice@imap.example",
            "INBOX",
        )
        self.assertIn("another netlab fetch is saving 'INBOX'", str(error))

    def test_damaged(self) -> None:
        """
        A damaged state file is reported, not silently reset.
        """
        state = self.open()
        state.restart(1)
        state.close()
        state.path.write_text("{not json")
        error = self.assertRaises(
            UsageProblem, FetchState.open, self.directory, "alice@imap.example", "INBOX"
        )
        self.assertIn("is damaged; delete it to fetch everything again", str(error))

    def test_state_directory(self) -> None:
        """
        State lives under $XDG_STATE_HOME, else ~/.local/state; accounts
        are named user@host (no port: IMAPS and STARTTLS reach the same
        mailbox).
        """
        self.patch(os, "environ", {"XDG_STATE_HOME": "/x"})
        self.assertEqual(default_state_directory(), Path("/x/netlab/fetch"))
        self.patch(os, "environ", {"HOME": "/home/a"})
        self.assertEqual(
            default_state_directory(), Path("/home/a/.local/state/netlab/fetch")
        )
        self.assertEqual(account_name("alice", "imap.example"), "alice@imap.example")


class RecordingStore(MaildirStore):
    """
    A Maildir store that records what the state file said at each write,
    and can be told to fail.
    """

    def __init__(self, target: SaveTarget, state: FetchState) -> None:
        super().__init__(target)
        self.state = state
        self.seen: list[tuple[int, int, list[int]]] = []
        self.fail_on: set[int] = set()

    def add(self, message: FetchedMessage) -> None:
        on_disk = json.loads(self.state.path.read_text())
        self.seen.append((message.uid, on_disk["last_uid"], on_disk["pending"]))
        if message.uid in self.fail_on:
            raise LocalWriteFailed(
                f"cannot write to {self.target}: disk on fire at UID {message.uid}"
            )
        super().add(message)


class SaveBatchTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.state = FetchState.open(fresh_path(self), "alice@h", "INBOX")
        self.addCleanup(self.state.close)
        self.state.restart(7)
        self.target = SaveTarget("maildir", fresh_path(self))
        self.store = RecordingStore(self.target, self.state)
        self.store.writers = 1
        self.addCleanup(self.store.close)

    def test_state_advances_after_writes(self) -> None:
        """
        While messages are written, the state on disk still has the old UID
        and lists the batch as pending; afterwards it covers the batch.
        """
        batch = [message(1), message(2), message(4)]
        self.assertEqual(save_batch(self.store, batch, state=self.state), (3, 0))
        self.assertEqual(
            self.store.seen, [(1, 0, [1, 2, 4]), (2, 0, [1, 2, 4]), (4, 0, [1, 2, 4])]
        )
        self.assertEqual((self.state.last_uid, self.state.pending), (4, []))
        self.assertEqual(
            maildir_contents(self.target.path), sorted(m.data for m in batch)
        )

    def test_failure_mid_batch(self) -> None:
        """
        When a write fails, the state covers exactly the messages before it,
        and the rest stay pending; the error is raised.
        """
        self.store.fail_on = {3}
        batch = [message(1), message(2), message(3), message(4)]
        error = self.assertRaises(
            LocalWriteFailed, save_batch, self.store, batch, state=self.state
        )
        self.assertIn("disk on fire", str(error))
        self.assertEqual((self.state.last_uid, self.state.pending), (2, [3, 4]))
        self.assertEqual(
            maildir_contents(self.target.path),
            sorted([message(1).data, message(2).data]),
        )

    def test_parallel_failure(self) -> None:
        """
        With several writers, a failure still stops the state at the first
        failed message, whatever was written after it.
        """
        self.store.writers = 4
        self.store.fail_on = {2}
        batch = [message(1), message(2), message(3)]
        self.assertRaises(
            LocalWriteFailed, save_batch, self.store, batch, state=self.state
        )
        self.assertEqual((self.state.last_uid, self.state.pending), (1, [2, 3]))

    def test_writers_take_slices(self) -> None:
        """
        Several writers each write one contiguous slice of a batch, in
        order: a failure stops its own slice only, and the failure reported
        is the first in the batch's order, whichever happened first.
        """
        self.store.writers = 2
        self.store.fail_on = {2}
        batch = [message(1), message(2), message(3), message(4)]
        written, failure = self.store.add_all(batch)
        self.assertEqual(written, {1, 3, 4})
        assert failure is not None
        self.assertIn("disk on fire", str(failure))
        self.assertEqual(sorted(uid for uid, _, _ in self.store.seen), [1, 2, 3, 4])

        self.store.seen.clear()
        self.store.fail_on = {1, 3}
        written, failure = self.store.add_all([message(uid) for uid in range(1, 5)])
        self.assertEqual(written, set())
        self.assertEqual(sorted(uid for uid, _, _ in self.store.seen), [1, 3])
        assert failure is not None
        self.assertIn("disk on fire at UID 1", str(failure))

    def test_interrupted_run_not_saved_twice(self) -> None:
        """
        A run killed after writing but before the state advanced leaves the
        batch pending; the next run, asked to recheck those UIDs, skips the
        messages the store has and saves only the others.
        """
        batch = [message(1), message(2), message(3)]
        self.state.begin([1, 2, 3])
        self.store.add_all(batch[:2])  # then the process is killed
        self.state.close()
        self.store.close()

        state = FetchState.open(self.state.path.parent, "alice@h", "INBOX")
        self.addCleanup(state.close)
        self.assertEqual((state.last_uid, state.pending), (0, [1, 2, 3]))
        store = open_store(self.target)
        self.addCleanup(store.close)
        pending = set(state.pending)
        self.assertEqual(
            save_batch(store, batch, state=state, recheck=pending.__contains__), (1, 2)
        )
        self.assertEqual(
            maildir_contents(self.target.path), sorted(m.data for m in batch)
        )
        self.assertEqual((state.last_uid, state.pending), (3, []))

    def test_no_state(self) -> None:
        """
        Without a state (no --new-only) messages are simply written.
        """
        self.assertEqual(save_batch(self.store, [message(1)]), (1, 0))


class FakeSession:
    """
    Just enough of an L{IMAPSession} for L{save_messages}: a mailbox of
    messages by UID.
    """

    host = "imap.example"

    def __init__(self, uidvalidity: int, messages: dict[int, bytes]) -> None:
        self.messages = messages
        self.selected = SelectedMailbox(
            "INBOX", len(messages), uidvalidity, None, False
        )
        self.searches: list[int] = []
        self.fetched: list[int] = []
        self.marked: list[int] = []

    async def search(self, criteria: Any, *, min_uid: int = 1) -> list[int]:
        self.searches.append(min_uid)
        return [u for u in sorted(self.messages) if u >= min_uid]

    async def message_sizes(self, uids: Sequence[int]) -> dict[int, int]:
        return {u: len(self.messages[u]) for u in uids}

    async def iter_messages(
        self, uids: Sequence[int], *, sizes: Any = None
    ) -> AsyncIterator[list[FetchedMessage]]:
        for start in range(0, len(uids), 2):
            batch = [
                FetchedMessage(u, (), self.messages[u]) for u in uids[start : start + 2]
            ]
            self.fetched.extend(m.uid for m in batch)
            yield batch

    async def mark_seen(self, uids: Sequence[int]) -> None:
        self.marked.extend(uids)


class SyncPool:
    """
    A thread pool that runs everything at once, in the calling thread.
    """

    def callInThreadWithCallback(
        self, onResult: Any, f: Any, *a: Any, **kw: Any
    ) -> None:
        try:
            result = f(*a, **kw)
        except BaseException as e:
            from twisted.python.failure import Failure

            onResult(False, Failure(e))
        else:
            onResult(True, result)


class SyncThreadsReactor(MemoryReactorClock):
    def getThreadPool(self) -> SyncPool:
        return SyncPool()

    def callFromThread(self, f: Any, *args: Any, **kw: Any) -> None:
        f(*args, **kw)


class SaveMessagesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.state_dir = fresh_path(self)
        self.target = SaveTarget("maildir", fresh_path(self))
        self.reactor = SyncThreadsReactor()

    def run_(self, session: FakeSession, **kw: Any) -> Any:
        store = open_store(self.target)
        state = FetchState.open(self.state_dir, "alice@h", "INBOX")
        try:
            d = Deferred.fromCoroutine(
                save_messages(self.reactor, session, store, state=state, **kw)  # type: ignore[arg-type]
            )
            return self.successResultOf(d)
        finally:
            state.close()
            store.close()

    def test_new_only(self) -> None:
        """
        The first run saves everything, a rerun fetches nothing, and a run
        after new mail fetches only the new message.
        """
        session = FakeSession(9, {1: b"a\r\n", 2: b"b\r\n", 3: b"c\r\n"})
        report = self.run_(session)
        self.assertEqual((report.saved, report.skipped, report.last_uid), (3, 0, 3))
        session.fetched.clear()
        report = self.run_(session)
        self.assertEqual(
            (report.saved, session.fetched, session.searches[-1]), (0, [], 4)
        )
        session.messages[5] = b"e\r\n"
        report = self.run_(session)
        self.assertEqual((report.saved, session.fetched), (1, [5]))
        self.assertEqual(
            maildir_contents(self.target.path), sorted(session.messages.values())
        )

    def test_uidvalidity_changed(self) -> None:
        """
        When UIDVALIDITY changes, everything is fetched again but only what
        the target does not hold is saved.
        """
        self.run_(FakeSession(9, {1: b"a\r\n", 2: b"b\r\n"}))
        renumbered = FakeSession(10, {1: b"b\r\n", 2: b"a\r\n", 3: b"c\r\n"})
        report = self.run_(renumbered)
        self.assertTrue(report.restarted)
        self.assertEqual((report.saved, report.skipped, report.uidvalidity), (1, 2, 10))
        self.assertEqual(renumbered.searches, [1])
        self.assertEqual(
            maildir_contents(self.target.path), [b"a\r\n", b"b\r\n", b"c\r\n"]
        )

    def test_limit_and_mark_seen(self) -> None:
        """
        With a state, --limit takes the oldest new messages, so the next run
        continues after them; --mark-seen marks each saved batch.
        """
        session = FakeSession(9, {u: b"%d\r\n" % u for u in range(1, 6)})
        report = self.run_(session, limit=3, mark_seen=True)
        self.assertEqual(
            (report.saved, report.last_uid, session.marked), (3, 3, [1, 2, 3])
        )
        report = self.run_(session, limit=3)
        self.assertEqual(session.fetched[-2:], [4, 5])

    def test_progress(self) -> None:
        """
        Progress is reported once at the start and after each batch.
        """
        calls: list[tuple[int, int, int, int]] = []
        self.run_(
            FakeSession(9, {1: b"ab", 2: b"cd", 3: b"e"}),
            progress=lambda *a: calls.append(a),
        )
        self.assertEqual(calls, [(0, 3, 0, 5), (2, 3, 4, 5), (3, 3, 5, 5)])

    def test_no_uidvalidity(self) -> None:
        """
        --new-only cannot trust a server that gives no UIDVALIDITY.
        """
        store = open_store(self.target)
        self.addCleanup(store.close)
        state = FetchState.open(self.state_dir, "alice@h", "INBOX")
        self.addCleanup(state.close)
        d = Deferred.fromCoroutine(
            save_messages(self.reactor, FakeSession(0, {}), store, state=state)  # type: ignore[arg-type]
        )
        self.failureResultOf(d, ServerRefused)
