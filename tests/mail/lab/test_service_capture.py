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
from twisted.trial.unittest import SynchronousTestCase

from tests.scratch import fresh_path
from twisted_netlab.errors import UsageProblem
from twisted_netlab.mail.lab.maildir import Envelope, Retention
from twisted_netlab.mail.lab.service import MailLab
from twisted_netlab.mail.lab.smtp import LabSMTPFactory
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
        uids = factory.deliver(
            b"Subject: x\r\n\r\nhi\r\n",
            {"alice@example.test": b"Received: by lab\r\n"},
            ENVELOPE,
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
        path = folder._file_path(folder.entry(uid))
        os.utime(path, (1.0, 1.0))
        lab.startService()
        self.assertEqual(folder.uids(), [])
        self.assertIn("removed 1 old messages from alice@example.test", self.logged())
        uid = folder.deliver(b"Subject: old too\r\n\r\n")
        os.utime(folder._file_path(folder.entry(uid)), (1.0, 1.0))
        reactor.advance(10)
        self.assertEqual(folder.uids(), [])
        lab.stopService()
        self.assertEqual(reactor.getDelayedCalls(), [])
