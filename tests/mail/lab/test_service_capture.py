"""
Tests for L{twisted_netlab.mail.lab.service}'s capture options: the
catch-all address, the recipient limit and retention.
"""

from __future__ import annotations

import os
import re
from typing import Any, cast

from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.scratch import fresh_path
from twisted_netlab.errors import UsageProblem
from twisted_netlab.mail.lab.service import GroupCommit, MailLab
from twisted_netlab.mail.lab.smtp.server import LabSMTPFactory
from twisted_netlab.mail.lab.store.maildir import (
    Delivery,
    Envelope,
    InvalidName,
    MailStore,
    Retention,
)
from twisted_netlab.mail.lab.users import UsersFile

USERS = {"alice@example.test": "alice-pw"}
ENVELOPE = Envelope("a@b.example", ("x@y.example",), "127.0.0.1", False, None, 1.0)


class CaptureOptionTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.state = fresh_path(self)
        self.events: list[LogEvent] = []
        observer = cast(ILogObserver, self.events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def lab(self, reactor: Any = None, **kwargs: Any) -> MailLab:
        settings: dict[str, Any] = {
            "state": self.state,
            "domains": ["example.test"],
            "users": USERS,
        }
        settings.update(kwargs)
        return MailLab(reactor or MemoryReactorClock(), **settings)

    def smtp(self, lab: MailLab) -> LabSMTPFactory:
        lab.prepare()
        [factory] = lab.factories["smtp"]
        assert isinstance(factory, LabSMTPFactory)
        return factory

    def logged(self) -> str:
        return "\n".join(formatEvent(e) for e in self.events)

    def test_catch_all_existing_user(self) -> None:
        """
        A catch-all that is a lab user is used as it is: no user is made.
        """
        lab = self.lab(catch_all="Alice@example.test", max_recipients=7)
        factory = self.smtp(lab)
        self.assertEqual(factory.catch_all, "alice@example.test")
        self.assertEqual(lab.catch_all, "alice@example.test")
        self.assertEqual(factory.max_recipients, 7)
        self.assertNotIn("made the mail user", self.logged())

    def test_catch_all_made_a_user(self) -> None:
        """
        A catch-all that is not a user yet becomes one, its generated
        password logged once (the password works); it may be at any domain.
        """
        lab = self.lab(catch_all="inbox@captured.example")
        self.assertEqual(self.smtp(lab).catch_all, "inbox@captured.example")
        match = re.search(
            r"made the mail user (\S+) with password (\S+) ", self.logged()
        )
        assert match is not None
        self.assertEqual(match.group(1), "inbox@captured.example")
        self.assertTrue(UsersFile(self.state / "users").verify(*match.groups()))
        self.assertTrue(lab.store.has_user("inbox@captured.example"))
        self.events.clear()
        self.lab(catch_all="inbox@captured.example").prepare()
        self.assertNotIn("made the mail user", self.logged())

    def test_catch_all_first_user(self) -> None:
        """
        C{catch_all=True} captures into the first user, made if there is
        none (as C{twistd netlab} does).
        """
        self.assertEqual(
            self.smtp(self.lab(catch_all=True)).catch_all, "alice@example.test"
        )
        other = fresh_path(self)
        lab = MailLab(
            MemoryReactorClock(),
            state=other,
            domains=["example.test"],
            create_first_user=True,
            catch_all=True,
        )
        self.assertEqual(self.smtp(lab).catch_all, "lab@example.test")
        self.assertEqual(self.logged().count("made the mail user"), 1)

    def test_bad_catch_all(self) -> None:
        """
        A catch-all that is not an address is a one-line usage problem.
        """
        with self.assertRaises(UsageProblem):
            self.lab(catch_all="not an address").prepare()

    def test_no_catch_all(self) -> None:
        """
        By default there is no catch-all.
        """
        self.assertIsNone(self.smtp(self.lab()).catch_all)

    def test_delivery_logged_and_stored(self) -> None:
        """
        The lab's deliver stores one copy per mailbox with the envelope and
        logs the sender and each mailbox's UID.
        """
        lab = self.lab(catch_all=True)
        factory = self.smtp(lab)
        uids = self.successResultOf(
            factory.deliver(
                b"Subject: x\r\n\r\nhi\r\n",
                {"alice@example.test": b"Received: by lab\r\n"},
                ENVELOPE,
            )
        )
        self.assertEqual(uids, {"alice@example.test": 1})
        self.assertEqual(lab.store.envelope("alice@example.test", 1), ENVELOPE)
        self.assertIn(
            "from <a@b.example> for alice@example.test (UID 1)", self.logged()
        )

    def test_max_messages(self) -> None:
        """
        max_messages becomes the store's retention: deliveries keep each
        mailbox at the limit.
        """
        lab = self.lab(max_messages=2)
        lab.prepare()
        self.assertEqual(lab.store.retention, Retention(max_messages=2))
        for n in range(4):
            lab.store.deliver("alice@example.test", b"Subject: %d\r\n\r\n" % n)
        self.assertEqual(lab.store.folder("alice@example.test").uids(), [3, 4])

    def test_max_age_timer(self) -> None:
        """
        With max_age, the running lab prunes old mail on a timer (at start,
        then every tenth of max_age, at least each second and at most each
        minute), and stops the timer when it stops.
        """
        reactor = MemoryReactorClock()
        lab = self.lab(reactor, max_age=100.0)
        lab.prepare()
        folder = lab.store.folder("alice@example.test")
        uid = folder.deliver(b"Subject: old\r\n\r\n")
        path = folder.file_path(uid)
        os.utime(path, (1.0, 1.0))
        lab.startService()
        self.assertEqual(folder.uids(), [])
        self.assertIn("removed 1 old messages from alice@example.test", self.logged())
        uid = folder.deliver(b"Subject: old too\r\n\r\n")
        os.utime(folder.file_path(uid), (1.0, 1.0))
        reactor.advance(10)
        self.assertEqual(folder.uids(), [])
        lab.stopService()
        self.assertEqual(reactor.getDelayedCalls(), [])


class QueuedPool:
    """
    A thread pool that runs nothing until told to (L{run_next}).
    """

    def __init__(self) -> None:
        self.calls: list[tuple[Any, Any, tuple[Any, ...]]] = []

    def callInThreadWithCallback(self, on_result: Any, f: Any, *args: Any) -> None:
        self.calls.append((on_result, f, args))

    def run_next(self) -> None:
        on_result, f, args = self.calls.pop(0)
        try:
            result = f(*args)
        except BaseException as e:
            on_result(False, Failure(e))
        else:
            on_result(True, result)

    def stop(self) -> None:
        pass


class GroupCommitTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.store = MailStore(fresh_path(self))
        self.store.ensure_user("alice@example.test")
        self.reactor = MemoryReactorClock()
        self.reactor.callFromThread = lambda f, *a, **k: f(*a, **k)  # type: ignore[attr-defined]
        self.commit = GroupCommit(self.store, self.reactor)
        self.pool = QueuedPool()
        self.commit._pool = self.pool  # type: ignore[assignment]

    def delivery(self, n: int) -> Delivery:
        return Delivery(b"Subject: %d\r\n\r\n" % n, ["alice@example.test"], ENVELOPE)

    def test_batches_while_busy(self) -> None:
        """
        The first delivery goes at once; those that arrive while it is being
        stored go together in the next batch; each Deferred fires with its
        own UIDs once its batch is stored.
        """
        first = self.commit.deliver(self.delivery(1))
        self.assertEqual(len(self.pool.calls), 1)
        second = self.commit.deliver(self.delivery(2))
        third = self.commit.deliver(self.delivery(3))
        self.assertEqual(len(self.pool.calls), 1)
        self.assertNoResult(second)
        self.pool.run_next()
        self.assertEqual(self.successResultOf(first), {"alice@example.test": 1})
        [(_, _, (batch,))] = self.pool.calls
        self.assertEqual(len(batch), 2)
        self.assertNoResult(third)
        self.pool.run_next()
        self.assertEqual(self.successResultOf(second), {"alice@example.test": 2})
        self.assertEqual(self.successResultOf(third), {"alice@example.test": 3})
        self.assertEqual(self.pool.calls, [])

    def test_failure_is_per_delivery(self) -> None:
        """
        A delivery that fails fails its own Deferred only.
        """
        self.commit._busy = True
        bad = self.commit.deliver(Delivery(b"x", ["../nope"]))
        good = self.commit.deliver(self.delivery(1))
        self.commit._flush()
        self.pool.run_next()
        self.failureResultOf(bad, InvalidName)
        self.assertEqual(self.successResultOf(good), {"alice@example.test": 1})

    def test_stopped(self) -> None:
        """
        Deliveries still waiting when the lab stops fail (no 250).
        """
        self.commit._busy = True
        waiting = self.commit.deliver(self.delivery(1))
        self.commit.stop()
        self.commit._flush()
        self.failureResultOf(waiting, RuntimeError)
