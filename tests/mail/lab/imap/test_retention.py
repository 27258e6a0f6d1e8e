"""
Tests for retention pruning seen through the lab's IMAP server: a FETCH
(L{twisted_netlab.mail.lab.imap.fetch}) holds its messages against pruning
while it sends them, and pruned messages are expunged from open sessions.
"""

from __future__ import annotations

from typing import Any

from tests.mail.lab.imaptesting import SIMPLE, USER, ServerFixture
from twisted_netlab.mail.lab.store.maildir import Retention


class FetchHoldsTests(ServerFixture):
    def setUp(self) -> None:
        super().setUp()
        for _ in range(3):
            self.store.deliver(USER, SIMPLE)
        self.select()
        self.folder = self.store.folder(USER)

    def pause_fetch(self) -> None:
        """
        Make a FETCH stop at its first write, as if the client read slowly.
        """
        original = self.transport.writeSequence
        paused: list[bool] = []

        def write_and_pause(data: Any) -> None:
            original(data)
            if not paused:
                paused.append(True)
                self.transport.producer.pauseProducing()  # type: ignore[union-attr]

        self.transport.writeSequence = write_and_pause  # type: ignore[method-assign]

    def test_fetch_holds_until_sent(self) -> None:
        """
        While a FETCH is being sent, its messages are in use and pruning
        leaves them alone; once it is done they are released and pruning
        catches up.
        """
        self.pause_fetch()
        self.server.dataReceived(b"f FETCH 1:* BODY.PEEK[]\r\n")
        self.assertEqual([self.folder.in_use(uid) for uid in (1, 2, 3)], [True] * 3)
        self.store.retention = Retention(max_messages=1)
        self.assertEqual(self.folder.prune(), [])
        self.transport.producer.resumeProducing()  # type: ignore[union-attr]
        self.assertIn(b"f OK FETCH completed", self.transport.value())
        self.assertFalse(self.folder.in_use(1))
        self.assertEqual(self.folder.uids(), [3])

    def test_disconnect_releases(self) -> None:
        """
        A client that goes away in the middle of a FETCH releases its
        messages.
        """
        self.pause_fetch()
        self.server.dataReceived(b"f FETCH 1:* BODY.PEEK[]\r\n")
        self.transport.producer.stopProducing()  # type: ignore[union-attr]
        self.assertFalse(any(self.folder.in_use(uid) for uid in (1, 2, 3)))

    def test_pruned_messages_expunged(self) -> None:
        """
        Messages removed by pruning are EXPUNGEd in an open session (at its
        next NOOP), as other removals are.
        """
        self.store.retention = Retention(max_messages=2)
        self.store.deliver(USER, SIMPLE)
        response = self.command(b"n NOOP")
        self.assertIn(b"* 1 EXPUNGE\r\n", response)
        self.assertIn(b"n OK", response)
        self.assertEqual(self.folder.uids(), [3, 4])
