"""
Tests for the capture side of L{twisted_netlab.mail.lab.store.maildir}: envelopes
kept in the UID list, delivery of one message to several mailboxes (one copy
each, all or nothing), retention pruning and the "in use" registry.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from tests.mail.lab.store.test_maildir import USER, StoreTestCase, message
from twisted_netlab.mail.lab.store import maildir, uidlist
from twisted_netlab.mail.lab.store.maildir import (
    UIDLIST_NAME,
    Delivery,
    Envelope,
    FolderChange,
    MailStore,
    Retention,
)

OTHER = "bob@netlab.test"
ENVELOPE = Envelope(
    mail_from="app@sender.test",
    rcpt_to=("Alice@netlab.test", "bcc@hidden.example", "bob@netlab.test"),
    client="127.0.0.1",
    tls=True,
    auth_user=None,
    received=1764000000.25,
)


class EnvelopeTests(StoreTestCase):
    def test_round_trip(self) -> None:
        """
        The envelope given with a delivery comes back from C{envelope}, the
        same through a store opened afresh (it is on disk), and through
        L{MailStore.envelope}.
        """
        self.store.ensure_user(USER)
        uid = self.store.folder(USER).deliver(message(1), envelope=ENVELOPE)
        self.assertEqual(self.store.folder(USER).envelope(uid), ENVELOPE)
        self.assertEqual(self.reopen().folder(USER).envelope(uid), ENVELOPE)
        self.assertEqual(self.reopen().envelope(USER, uid), ENVELOPE)

    def test_one_write_with_the_uid(self) -> None:
        """
        The envelope is one line of the UID list right after the message's
        UID line (written and synced with it), which a reader that predates
        envelopes skips: it has no numeric UID.
        """
        self.store.ensure_user(USER)
        uid = self.store.folder(USER).deliver(message(1), envelope=ENVELOPE)
        lines = (self.root / USER / UIDLIST_NAME).read_text().splitlines()
        self.assertTrue(lines[-2].startswith(f"{uid} "))
        self.assertTrue(lines[-1].startswith(f"E {uid} {{"))
        self.assertFalse(lines[-1].split(" ")[0].isdigit())

    def test_helo_and_smtputf8(self) -> None:
        """
        The HELO name and SMTPUTF8 are kept (as the optional keys C{helo}
        and C{utf8}); a line written before they were kept reads as not
        recorded and not SMTPUTF8, and one without them writes no such key.
        """
        self.store.ensure_user(USER)
        full = dataclasses.replace(ENVELOPE, helo="mta.sender.test", smtputf8=True)
        uid = self.store.folder(USER).deliver(message(1), envelope=full)
        self.assertEqual(self.reopen().folder(USER).envelope(uid), full)
        line = (self.root / USER / UIDLIST_NAME).read_text().splitlines()[-1]
        self.assertIn('"helo":"mta.sender.test","utf8":true', line)
        self.assertNotIn("helo", ENVELOPE.to_json())
        self.assertNotIn("utf8", ENVELOPE.to_json())
        old = (
            '{"from":"a@b.test","to":["c@d.test"],"client":"unix","tls":false,'
            '"auth":null,"at":1.5}'
        )
        self.assertEqual(
            Envelope.from_json(old),
            Envelope("a@b.test", ("c@d.test",), "unix", False, None, 1.5),
        )

    def test_none_without_envelope(self) -> None:
        """
        A message stored without an envelope (IMAP APPEND, a file dropped in
        by another program) has none; nor has an unknown UID.
        """
        uid = self.store.deliver(USER, message(1))
        (self.root / USER / "new" / "1.dropped.host").write_bytes(message(2))
        folder = self.store.folder(USER)
        folder.refresh(force=True)
        self.assertIsNone(folder.envelope(uid))
        self.assertIsNone(folder.envelope(folder.uids()[-1]))
        self.assertIsNone(folder.envelope(999))
        self.assertIsNone(self.store.envelope("nobody@netlab.test", 1))

    def test_old_list_readable(self) -> None:
        """
        A UID list written before envelopes existed (no E lines) reads as
        before.
        """
        uids = [self.store.deliver(USER, message(n)) for n in range(3)]
        text = (self.root / USER / UIDLIST_NAME).read_text()
        self.assertNotIn("\nE ", text)
        folder = self.reopen().folder(USER)
        self.assertEqual(folder.uids(), uids)
        self.assertEqual([folder.envelope(uid) for uid in uids], [None] * 3)

    def test_unreadable_envelope_line(self) -> None:
        """
        A damaged E line gives no envelope and does not disturb the UIDs.
        """
        uid = self.store.deliver(USER, message(1))
        with open(self.root / USER / UIDLIST_NAME, "a") as f:
            f.write(f"E {uid} {{not json\nE x y\n")
        folder = self.reopen().folder(USER)
        self.assertEqual(folder.uids(), [uid])
        self.assertIsNone(folder.envelope(uid))

    def test_envelope_goes_with_its_message(self) -> None:
        """
        A removed message's envelope is gone at once, and compaction of the
        UID list drops its line while keeping the live ones' envelopes.
        """
        self.store.ensure_user(USER)
        folder = self.store.folder(USER)
        self.patch(uidlist, "_COMPACT_AFTER", 2)
        uids = [folder.deliver(message(n), envelope=ENVELOPE) for n in range(6)]
        folder.remove(uids[:5])
        self.assertIsNone(folder.envelope(uids[0]))
        folder.refresh(force=True)
        text = (self.root / USER / UIDLIST_NAME).read_text()
        self.assertEqual(text.count("\nE "), 1, text)
        self.assertEqual(self.reopen().folder(USER).envelope(uids[5]), ENVELOPE)

    def test_non_ascii(self) -> None:
        """
        UTF-8 addresses (SMTPUTF8) survive the round trip.
        """
        envelope = Envelope(
            "jos\u00e9@ejemplo.example",
            ("\u7528\u6237@x.example",),
            "::1",
            False,
            "a@b",
            1.0,
        )
        self.store.ensure_user(USER)
        uid = self.store.folder(USER).deliver(message(1), envelope=envelope)
        self.assertEqual(self.reopen().folder(USER).envelope(uid), envelope)


class DeliverManyTests(StoreTestCase):
    def test_one_copy_per_mailbox(self) -> None:
        """
        An address named twice, in any case, gets one copy; each copy starts
        with its own prefix and has the envelope.
        """
        uids = self.store.deliver_many(
            message(1),
            [USER, OTHER, USER.upper()],
            envelope=ENVELOPE,
            prefixes={USER: b"Received: a\r\n", OTHER: b"Received: b\r\n"},
        )
        self.assertEqual(uids, {USER: 1, OTHER: 1})
        self.assertEqual(self.store.messages(USER), [b"Received: a\r\n" + message(1)])
        self.assertEqual(self.store.messages(OTHER), [b"Received: b\r\n" + message(1)])
        self.assertEqual(self.store.envelope(OTHER, 1), ENVELOPE)
        size = len(b"Received: a\r\n" + message(1))
        self.assertEqual(self.store.folder(USER).size(1), size)

    def test_all_or_nothing(self) -> None:
        """
        When storing one copy fails after another was made visible, the
        visible one is taken back, nobody is told of it, nothing is left in
        tmp/, and the error is raised: a retry does not store it twice.
        """
        self.store.ensure_user(USER)
        self.store.ensure_user(OTHER)
        heard: list[FolderChange] = []
        self.store.folder(USER).add_listener(heard.append)
        other = self.store.folder(OTHER)

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise OSError(28, "No space left on device")

        self.patch(other, "_commit", broken)
        with self.assertRaises(OSError):
            self.store.deliver_many(message(1), [USER, OTHER], envelope=ENVELOPE)
        self.assertEqual(heard, [])
        for address in (USER, OTHER):
            self.assertEqual(self.reopen().messages(address), [], address)
            self.assertEqual(os.listdir(self.root / address / "tmp"), [])
        self.patch(other, "_commit", type(other)._commit.__get__(other))
        self.store.deliver_many(message(1), [USER, OTHER], envelope=ENVELOPE)
        self.assertEqual(self.reopen().messages(USER), [message(1)])
        self.assertEqual(len(heard), 1)

    def test_listeners_told_after_all_stored(self) -> None:
        """
        Sessions hear of a copy only once every copy is on disk.
        """
        self.store.ensure_user(USER)
        self.store.ensure_user(OTHER)
        seen: list[int] = []

        def listener(change: FolderChange) -> None:
            seen.append(len(os.listdir(self.root / OTHER / "new")))

        self.store.folder(USER).add_listener(listener)
        self.store.deliver_many(message(1), [USER, OTHER])
        self.assertEqual(seen, [1])


class RetentionTests(StoreTestCase):
    def store_with(self, **limits: Any) -> MailStore:
        self.store.retention = Retention(**limits)
        self.store.ensure_user(USER)
        return self.store

    def test_max_messages_never_exceeded(self) -> None:
        """
        With max_messages, the oldest go as new ones arrive, before the new
        one is visible: a burst never takes the mailbox over the limit, and
        sessions hear of the removal.
        """
        store = self.store_with(max_messages=3)
        folder = store.folder(USER)
        counts: list[int] = []
        gone: list[int] = []

        def listener(change: FolderChange) -> None:
            counts.append(len(folder.uids()))
            gone.extend(change.gone)

        folder.add_listener(listener)
        for n in range(10):
            store.deliver(USER, message(n))
        self.assertEqual(folder.uids(), [8, 9, 10])
        self.assertLessEqual(max(counts), 3)
        self.assertEqual(gone, list(range(1, 8)))
        self.assertEqual(self.reopen().messages(USER), [message(n) for n in (7, 8, 9)])

    def test_deliver_many_prunes(self) -> None:
        """
        Deliveries to several mailboxes prune each of them.
        """
        store = self.store_with(max_messages=2)
        for n in range(4):
            store.deliver_many(message(n), [USER, OTHER])
        for address in (USER, OTHER):
            self.assertEqual(store.messages(address), [message(2), message(3)])

    def test_in_use_skipped_then_caught_up(self) -> None:
        """
        A message in use is not pruned (a younger one goes instead, so the
        limit holds); once released, pruning catches up with it.
        """
        store = self.store_with(max_messages=2)
        folder = store.folder(USER)
        store.deliver(USER, message(1))
        store.deliver(USER, message(2))
        folder.hold([1])
        self.assertTrue(folder.in_use(1))
        store.deliver(USER, message(3))
        self.assertEqual(folder.uids(), [1, 3])
        store.deliver(USER, message(4))
        self.assertEqual(folder.uids(), [1, 4])
        folder.release([1])
        self.assertFalse(folder.in_use(1))
        self.assertEqual(folder.uids(), [1, 4])  # within the limit: kept
        store.deliver(USER, message(5))
        self.assertEqual(folder.uids(), [4, 5])

    def test_hold_counts(self) -> None:
        """
        Held twice, a message stays in use until released twice;
        C{holding} holds for a C{with} block.
        """
        store = self.store_with(max_age=10)
        folder = store.folder(USER)
        uid = store.deliver(USER, message(1))
        folder.hold([uid])
        with folder.holding([uid]):
            self.assertTrue(folder.in_use(uid))
        self.assertTrue(folder.in_use(uid))
        folder.release([uid])
        self.assertFalse(folder.in_use(uid))

    def test_max_age(self) -> None:
        """
        With max_age, C{MailStore.prune} removes messages older than it from
        every mailbox, skipping those in use until they are released.
        """
        store = self.store
        store.create_mailbox(USER, "Archive")
        old = 1_000_000.0
        folder = store.folder(USER)
        folder.deliver(message(1), internal_date=old)
        folder.deliver(message(2), internal_date=old)
        archive = store.folder(USER, "Archive")
        archive.deliver(message(3), internal_date=old)
        folder.deliver(message(4))
        store.retention = Retention(max_age=60)
        folder.hold([2])
        removed = store.prune(now=old + 120)
        self.assertEqual(removed, {(USER, "INBOX"): [1], (USER, "Archive"): [1]})
        self.assertEqual(folder.uids(), [2, 3])
        folder.release([2])
        self.assertEqual(folder.uids(), [3])

    def test_no_limits(self) -> None:
        """
        Without limits, nothing is ever pruned.
        """
        self.store.ensure_user(USER)
        for n in range(5):
            self.store.deliver(USER, message(n))
        self.assertEqual(self.store.prune(), {})
        self.assertEqual(self.store.folder(USER).prune(), [])
        self.assertEqual(len(self.store.folder(USER).uids()), 5)


class DeliverBatchTests(StoreTestCase):
    def test_group_commit_syncs(self) -> None:
        """
        A batch of N deliveries to one mailbox costs N file syncs, one for
        the UID list and one for the directory, and gets UIDs in order.
        """
        self.store.ensure_user(USER)
        self.store.folder(USER).refresh()
        calls: list[int] = []
        real = os.fsync

        def counting(fd: int) -> None:
            calls.append(fd)
            real(fd)

        self.patch(os, "fsync", counting)
        results = self.store.deliver_batch(
            [Delivery(message(n), [USER], ENVELOPE) for n in range(5)]
        )
        self.assertEqual(results, [{USER: uid} for uid in range(1, 6)])
        self.assertEqual(len(calls), 5 + 2)
        self.assertEqual(self.reopen().messages(USER), [message(n) for n in range(5)])
        self.assertEqual(self.reopen().envelope(USER, 5), ENVELOPE)

    def test_each_delivery_on_its_own(self) -> None:
        """
        A delivery that fails (a bad address, a mailbox whose commit fails)
        fails alone, all or nothing; the others of the batch are stored.
        """
        self.store.ensure_user(USER)
        self.store.ensure_user(OTHER)
        other = self.store.folder(OTHER)

        def broken(*args: Any, **kwargs: Any) -> Any:
            raise OSError(5, "Input/output error")

        self.patch(other, "_commit", broken)
        results = self.store.deliver_batch(
            [
                Delivery(message(1), [USER]),
                Delivery(message(2), ["../escape"]),
                Delivery(message(3), [USER, OTHER]),
                Delivery(message(4), [USER, USER.upper()]),
            ]
        )
        self.assertEqual(results[0], {USER: 1})
        self.assertIsInstance(results[1], maildir.InvalidName)
        self.assertIsInstance(results[2], OSError)
        self.assertEqual(results[3], {USER: 3})
        self.assertEqual(self.reopen().messages(USER), [message(1), message(4)])
        self.assertEqual(os.listdir(self.root / USER / "tmp"), [])
        self.assertEqual(os.listdir(self.root / OTHER / "tmp"), [])

    def test_failed_sync(self) -> None:
        """
        When syncing a mailbox's UID list or directory fails, the deliveries
        with a copy there fail (their other copies taken back); the others
        are stored.
        """
        self.store.ensure_user(USER)
        self.store.ensure_user(OTHER)
        real = maildir._sync_all
        broken = self.root / OTHER / "new"

        def failing(paths: list[Any]) -> dict[Any, BaseException]:
            problems = real(paths)
            problems[broken] = OSError(5, "Input/output error")
            return problems

        self.patch(maildir, "_sync_all", failing)
        results = self.store.deliver_batch(
            [Delivery(message(1), [USER]), Delivery(message(2), [USER, OTHER])]
        )
        self.assertEqual(results[0], {USER: 1})
        self.assertIsInstance(results[1], OSError)
        self.assertEqual(self.reopen().messages(USER), [message(1)])
        self.assertEqual(self.reopen().messages(OTHER), [])
