"""
Tests for L{twisted_netlab.mail.lab.store.catalog}: every user's INBOX as one view,
its IDs, events and waiters.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.store.catalog import Catalog, Event, WaitTimeout
from twisted_netlab.mail.lab.store.maildir import MailStore
from twisted_netlab.mail.lab.store.search import Everything, FactsCache, parse_query

ANN = "ann@example.test"
BOB = "bob@example.test"


def message(subject: str) -> bytes:
    return f"Subject: {subject}\r\nTo: {ANN}\r\n\r\nbody of {subject}\r\n".encode()


class CatalogTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="netlab-catalog-"))
        self.addCleanup(shutil.rmtree, self.root, True)
        self.store = MailStore(self.root / "mail")
        self.store.ensure_user(ANN)
        self.store.ensure_user(BOB)
        self.clock = Clock()
        self.catalog = Catalog(self.store, self.clock, cache=FactsCache())
        self.events: list[Event] = []
        self.catalog.subscribe(self.events.extend)

    def test_lists_every_inbox_newest_first(self) -> None:
        """
        Messages of every user are listed newest first, each with its
        mailbox; ?mailbox filters.
        """
        self.store.deliver(ANN, message("one"))
        self.store.deliver(BOB, message("two"))
        entries = self.catalog.entries()
        self.assertEqual([e.facts.subject for e in entries], ["two", "one"])
        self.assertEqual([e.mailbox for e in entries], [BOB, ANN])
        self.assertEqual([e.facts.subject for e in self.catalog.entries(ANN)], ["one"])
        self.assertEqual(self.catalog.mailboxes(), [ANN, BOB])

    def test_same_file_time_ordered_by_delivery(self) -> None:
        """
        Two deliveries whose files share a modification time (the file
        system's clock is coarser than two deliveries) still list newest
        first: the delivery time in the Maildir name breaks the tie.
        """
        for _ in range(5):
            self.store.deliver(ANN, message("one"))
            self.store.deliver(BOB, message("two"))
            for address in (ANN, BOB):
                for path in (self.store.user_path(address) / "new").iterdir():
                    os.utime(path, (1_700_000_000, 1_700_000_000))
            subjects = [
                e.facts.subject for e in Catalog(self.store, self.clock).entries()
            ]
            self.assertEqual(subjects[:2], ["two", "one"])

    def test_ids_stable_across_restarts(self) -> None:
        """
        A new catalog over the same store (a restart) gives the same IDs;
        flag changes do not change them.
        """
        self.store.deliver(ANN, message("one"))
        [entry] = self.catalog.entries()
        self.catalog.set_read([entry], True)
        again = Catalog(MailStore(self.root / "mail"), self.clock)
        [same] = again.entries()
        self.assertEqual(same.id, entry.id)
        self.assertTrue(same.read)
        self.assertEqual(len(entry.id), 20)

    def test_read_and_delete_reach_the_store(self) -> None:
        """
        Marking read sets \\Seen on the file; deleting removes it; both are
        published as events.
        """
        self.store.deliver(ANN, message("one"))
        [entry] = self.catalog.entries()
        self.events.clear()
        self.catalog.set_read([entry], True)
        folder = self.store.folder(ANN)
        self.assertIn("\\Seen", folder.entry(entry.uid).flags)
        self.assertEqual([(e.kind, e.entry) for e in self.events], [("update", entry)])
        self.catalog.delete([entry])
        self.assertEqual(folder.uids(), [])
        self.assertEqual(self.events[-1], Event("delete", ids=(entry.id,)))
        self.assertEqual(self.catalog.entries(), [])

    def test_changes_made_elsewhere(self) -> None:
        """
        Flags changed through the store (IMAP) are published as updates; a
        file another program drops into new/ is found on the next read;
        a file still in tmp/ (being delivered) is never listed.
        """
        uid = self.store.deliver(ANN, message("one"))
        self.catalog.entries()
        self.events.clear()
        self.store.folder(ANN).set_flags({uid: ["\\Seen"]})
        self.assertEqual([e.kind for e in self.events], ["update"])
        inbox = self.store.user_path(ANN)
        (inbox / "tmp" / "123.half").write_bytes(b"Subject: half\r\n")
        (inbox / "new" / "124.other").write_bytes(message("dropped"))
        os.utime(inbox / "new", (1, 1))
        self.assertEqual(len(self.catalog.entries()), 1)  # rescans at most 1/s
        self.clock.advance(1)
        subjects = [e.facts.subject for e in self.catalog.entries()]
        self.assertEqual(sorted(subjects), ["dropped", "one"])

    def test_search(self) -> None:
        """
        search() applies a query to the whole catalog.
        """
        self.store.deliver(ANN, message("alpha"))
        self.store.deliver(BOB, message("beta"))
        found = self.catalog.search(parse_query("subject:beta"))
        self.assertEqual([e.mailbox for e in found], [BOB])

    def test_wait_answers_at_once(self) -> None:
        """
        A wait whose count is already met fires at once, with every match.
        """
        self.store.deliver(ANN, message("alpha"))
        d = self.catalog.wait(parse_query("alpha"))
        self.assertEqual([e.facts.subject for e in self.successResultOf(d)], ["alpha"])
        self.assertEqual(self.catalog.waiter_count, 0)

    def test_wait_counts_old_and_new(self) -> None:
        """
        A wait for two messages counts the one already there and fires when
        the second arrives, not before; non-matching mail does not count.
        """
        self.store.deliver(ANN, message("alpha 1"))
        d = self.catalog.wait(parse_query("alpha"), count=2, timeout=5)
        self.assertNoResult(d)
        self.store.deliver(BOB, message("beta"))
        self.assertNoResult(d)
        self.store.deliver(BOB, message("alpha 2"))
        found = self.successResultOf(d)
        self.assertEqual([e.facts.subject for e in found], ["alpha 2", "alpha 1"])
        self.assertEqual(self.catalog.waiter_count, 0)
        self.assertFalse(self.clock.getDelayedCalls())

    def test_wait_sees_deletions(self) -> None:
        """
        A match deleted before the count is met no longer counts.
        """
        self.store.deliver(ANN, message("alpha"))
        d = self.catalog.wait(parse_query("alpha"), count=2, timeout=5)
        self.catalog.delete(self.catalog.entries())
        self.store.deliver(ANN, message("alpha again"))
        self.assertNoResult(d)

    def test_wait_times_out(self) -> None:
        """
        Past its timeout a wait fails with a one-line L{WaitTimeout} and is
        forgotten.
        """
        d = self.catalog.wait(Everything(), count=1, timeout=2)
        self.clock.advance(1.9)
        self.assertNoResult(d)
        self.clock.advance(0.2)
        failure = self.failureResultOf(d, WaitTimeout)
        self.assertEqual(
            str(failure.value), "timed out after 2 s: 0 of 1 message matched"
        )
        self.assertEqual(self.catalog.waiter_count, 0)

    def test_cancelled_wait_leaves_nothing(self) -> None:
        """
        Cancelling a wait (a client that went away) removes the waiter and
        its timer.
        """
        d = self.catalog.wait(Everything(), count=1, timeout=30)
        self.assertEqual(self.catalog.waiter_count, 1)
        d.cancel()
        self.failureResultOf(d)
        self.assertEqual(self.catalog.waiter_count, 0)
        self.assertFalse(self.clock.getDelayedCalls())

    def test_deliveries_from_other_threads(self) -> None:
        """
        A change reported in another thread is only marked; the catalog
        catches up in the reactor thread (callFromThread), and publishes it.
        """
        calls: list[object] = []

        class Reactor(Clock):
            def callFromThread(self, f: object, *a: object) -> None:
                calls.append(f)

        catalog = Catalog(self.store, Reactor(), cache=FactsCache())
        seen: list[Event] = []
        catalog.subscribe(seen.extend)
        catalog.entries()
        self.store.deliver(ANN, message("threaded"))
        self.store.deliver(ANN, message("threaded 2"))
        self.assertEqual(len(calls), 1)
        self.assertEqual(seen, [])
        calls[0]()  # type: ignore[operator]
        self.assertEqual([e.kind for e in seen], ["new", "new"])
