"""
Tests for L{twisted_netlab.mail.lab.imap.updates}: IDLE, and what NOOP and
IDLE report of changes by other sessions, threads and processes.
"""

from __future__ import annotations

import threading
from typing import Any

from tests.mail.lab.imaptesting import (
    MULTIPART,
    SIMPLE,
    USER,
    ServerFixture,
)


class IdleTests(ServerFixture):
    """
    IDLE and the other ways changes reach a session.
    """

    def setUp(self) -> None:
        super().setUp()
        self.store.deliver(USER, SIMPLE)
        self.select()

    def test_idle_push_on_delivery(self) -> None:
        """
        A delivery through the store reaches a session in IDLE at once.
        """
        self.assertEqual(self.command(b"i IDLE"), b"+ idling\r\n")
        self.transport.clear()
        self.store.deliver(USER, MULTIPART)
        self.assertEqual(self.transport.value(), b"* 2 EXISTS\r\n* 2 RECENT\r\n")
        self.assertEqual(self.command(b"DONE"), b"i OK IDLE terminated\r\n")
        self.assertIn(b"FLAGS (\\Recent)", self.command(b"f FETCH 2 FLAGS"))

    def test_idle_sees_other_sessions(self) -> None:
        """
        Flag changes and expunges by another session reach a session in IDLE.
        """
        other, _ = self.connect()
        self.select(server=other)
        self.command(b"i IDLE")
        self.transport.clear()
        self.command(b"a STORE 1 +FLAGS (\\Deleted)", other)
        self.assertEqual(
            self.transport.value(), b"* 1 FETCH (FLAGS (\\Deleted \\Recent))\r\n"
        )
        self.transport.clear()
        self.command(b"b EXPUNGE", other)
        self.assertEqual(self.transport.value(), b"* 1 EXPUNGE\r\n")
        self.assertEqual(self.command(b"done"), b"i OK IDLE terminated\r\n")

    def test_idle_polls_for_other_processes(self) -> None:
        """
        A file dropped into the Maildir by another program reaches a session
        in IDLE at the next poll.
        """
        import mailbox

        self.command(b"i IDLE")
        self.transport.clear()
        mailbox.Maildir(self.root / USER, create=False).add(SIMPLE)
        self.assertEqual(self.transport.value(), b"")
        self.clock.advance(self.factory.poll_interval)
        self.assertEqual(self.transport.value(), b"* 2 EXISTS\r\n* 2 RECENT\r\n")
        self.command(b"DONE")
        self.assertIsNone(self.server._poll_call)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    def test_recent_claimed_by_one_session(self) -> None:
        """
        A message delivered while two sessions have the mailbox selected is
        \\Recent in only one of them.
        """
        other, other_transport = self.connect()
        self.select(server=other)
        self.transport.clear()
        other_transport.clear()
        self.store.deliver(USER, SIMPLE)
        self.assertEqual(
            sorted([self.transport.value(), other_transport.value()]),
            [b"* 2 EXISTS\r\n* 0 RECENT\r\n", b"* 2 EXISTS\r\n* 2 RECENT\r\n"],
        )

    def test_idle_needs_done(self) -> None:
        """
        Anything but DONE ends IDLE with BAD.
        """
        self.command(b"i IDLE")
        self.assertEqual(
            self.command(b"x NOOP"), b"i BAD IDLE ended: expected DONE\r\n"
        )
        self.assertEqual(self.command(b"y NOOP"), b"y OK NOOP completed\r\n")

    def test_delivery_from_another_thread(self) -> None:
        """
        A delivery in another thread reaches the session through
        C{callFromThread}, in the reactor thread.
        """
        calls: list[Any] = []

        class FakeReactor:
            def callFromThread(self, f: Any, *args: Any) -> None:
                calls.append((f, args))

        self.server.account.reactor = FakeReactor()  # type: ignore[union-attr]
        self.transport.clear()
        thread = threading.Thread(target=self.store.deliver, args=(USER, MULTIPART))
        thread.start()
        thread.join()
        self.assertEqual(self.transport.value(), b"")
        self.assertEqual(len(calls), 1)
        f, args = calls[0]
        f(*args)
        self.assertEqual(self.transport.value(), b"* 2 EXISTS\r\n* 2 RECENT\r\n")

    def test_exists_during_fetch_waits(self) -> None:
        """
        EXISTS for a delivery made while a FETCH is being sent comes before
        the FETCH's tagged OK, not inside a FETCH response.
        """
        paused: list[bool] = []
        original = self.transport.writeSequence

        def write_and_pause(data: Any) -> None:
            original(data)
            if not paused:
                paused.append(True)
                self.transport.producer.pauseProducing()  # type: ignore[union-attr]

        self.transport.writeSequence = write_and_pause  # type: ignore[method-assign]
        self.transport.clear()
        self.server.dataReceived(b"f FETCH 1 BODY.PEEK[]\r\n")
        self.store.deliver(USER, SIMPLE)
        self.assertNotIn(b"EXISTS", self.transport.value())
        self.transport.producer.resumeProducing()  # type: ignore[union-attr]
        self.assertTrue(
            self.transport.value().endswith(
                b"* 2 EXISTS\r\n* 2 RECENT\r\nf OK FETCH completed\r\n"
            )
        )
