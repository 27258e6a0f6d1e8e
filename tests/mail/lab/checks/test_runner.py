"""
Tests for L{twisted_netlab.mail.lab.checks.runner}: the checks run on
request with the message's envelope, answers cached per message (ID and
content stamp, check and options), bounded, expiring where they depend on
the network, and not kept when the check could not be done.
"""

from __future__ import annotations

from typing import Any, cast

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.checks.context import (
    Arrival,
    CheckContext,
    CheckError,
    CheckSettings,
)
from twisted_netlab.mail.lab.checks.runner import (
    NETWORK_TTL,
    CheckRunner,
    UnknownCheck,
    arrival_of,
)
from twisted_netlab.mail.lab.store.catalog import Entry
from twisted_netlab.mail.lab.store.envelope import Envelope
from twisted_netlab.mail.lab.store.errors import MessageGone

ENVELOPE = Envelope(
    "app@sender.test",
    ("bob@example.test", "hidden@else.test"),
    "192.0.2.7",
    True,
    None,
    1.0,
    helo="mta.sender.test",
    smtputf8=True,
)


class FakeFolder:
    def __init__(self) -> None:
        self.stamps = {1: (100, 1)}

    def stamp(self, uid: int) -> tuple[int, int]:
        if uid not in self.stamps:
            raise MessageGone(f"message UID {uid} is gone")
        return self.stamps[uid]


class FakeEntry:
    """What the runner reads of a catalog entry."""

    def __init__(self, message_id: str = "m1", envelope: Any = ENVELOPE) -> None:
        self.id = message_id
        self.uid = 1
        self.folder = FakeFolder()
        self.envelope = envelope
        self.content = b"Subject: one\r\n\r\nbody\r\n"
        self.reads = 0

    def raw(self) -> bytes:
        self.reads += 1
        return self.content


class Recorder:
    """Fake check functions: each call is recorded and answered later."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, bytes, CheckContext, Deferred[Any]]] = []

    def check(self, name: str) -> Any:
        def run(raw: bytes, context: CheckContext) -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            self.calls.append((name, raw, context, d))
            return d

        return run

    def table(self) -> dict[str, Any]:
        return {n: self.check(n) for n in ("html", "links", "spam", "auth", "lint")}


def entry_of(fake: FakeEntry) -> Entry:
    return cast(Entry, fake)


class RunnerTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.recorder = Recorder()
        self.entry = FakeEntry()

    def runner(self, **kwargs: Any) -> CheckRunner:
        kwargs.setdefault("checks", self.recorder.table())
        return CheckRunner(self.clock, **kwargs)

    def answer(self, index: int, value: dict[str, Any]) -> None:
        self.recorder.calls[index][3].callback(value)


class ArrivalTests(SynchronousTestCase):
    def test_from_envelope(self) -> None:
        """
        The arrival is the envelope's MAIL FROM, RCPT TO, client IP, HELO
        and SMTPUTF8.
        """
        self.assertEqual(
            arrival_of(ENVELOPE),
            Arrival(
                "app@sender.test",
                ("bob@example.test", "hidden@else.test"),
                "192.0.2.7",
                "mta.sender.test",
                True,
            ),
        )

    def test_unix_client_and_no_envelope(self) -> None:
        """
        A UNIX-socket client (C{"unix"}) has no client IP; an envelope
        kept before HELO was recorded has no HELO; no envelope at all is
        an empty arrival.
        """
        old = Envelope("a@b.test", ("c@d.test",), "unix", False, None, 1.0)
        self.assertEqual(arrival_of(old), Arrival("a@b.test", ("c@d.test",), "", ""))
        self.assertEqual(arrival_of(None), Arrival())


class RunTests(RunnerTestCase):
    def test_runs_with_context(self) -> None:
        """
        A check gets the stored bytes and a context with the lab's reactor,
        the message's arrival, the settings and the request's options.
        """
        settings = CheckSettings(spamassassin=("127.0.0.1", 783))
        d = self.runner(settings=settings).run(
            entry_of(self.entry), "links", {"follow": "true"}
        )
        [(name, raw, context, _)] = self.recorder.calls
        self.assertEqual((name, raw), ("links", self.entry.content))
        self.assertIs(context.reactor, self.clock)
        self.assertEqual(context.arrival, arrival_of(ENVELOPE))
        self.assertIs(context.settings, settings)
        self.assertEqual(context.options, {"follow": "true"})
        self.assertNoResult(d)
        self.answer(0, {"Errors": 0, "Links": []})
        self.assertEqual(self.successResultOf(d), {"Errors": 0, "Links": []})

    def test_cached(self) -> None:
        """
        The second request for the same check of the same message is
        answered from the cache: the check runs once, the bytes are read
        once.
        """
        runner = self.runner()
        first = runner.run(entry_of(self.entry), "lint")
        self.answer(0, {"Errors": 0})
        self.assertEqual(self.successResultOf(first), {"Errors": 0})
        again = runner.run(entry_of(self.entry), "lint")
        self.assertEqual(self.successResultOf(again), {"Errors": 0})
        self.assertEqual(len(self.recorder.calls), 1)
        self.assertEqual((self.entry.reads, runner.computed, runner.hits), (1, 1, 1))

    def test_rewritten_message_checked_again(self) -> None:
        """
        A message whose file changed (a new size or modification time: its
        content stamp) is checked again, with its new bytes.
        """
        runner = self.runner()
        runner.run(entry_of(self.entry), "html")
        self.answer(0, {"Total": 1})
        self.entry.folder.stamps[1] = (120, 2)
        self.entry.content = b"Subject: two\r\n\r\nbody\r\n"
        d = runner.run(entry_of(self.entry), "html")
        self.assertEqual(len(self.recorder.calls), 2)
        self.assertEqual(self.recorder.calls[1][1], self.entry.content)
        self.answer(1, {"Total": 2})
        self.assertEqual(self.successResultOf(d), {"Total": 2})

    def test_per_message_check_and_options(self) -> None:
        """
        Answers are kept apart by message, by check, and for the link
        check by its follow option (C{"true"} and C{True} are the same);
        other checks take no options, so options do not split their cache.
        """
        runner = self.runner()
        other = FakeEntry("m2")
        runner.run(entry_of(self.entry), "lint")
        runner.run(entry_of(other), "lint")
        runner.run(entry_of(self.entry), "html")
        runner.run(entry_of(self.entry), "links", {"follow": True})
        runner.run(entry_of(self.entry), "links", {"follow": False})
        for index in range(5):
            self.answer(index, {"n": index})
        runner.run(entry_of(self.entry), "links", {"follow": "true"})
        runner.run(entry_of(self.entry), "lint", {"follow": True})
        self.assertEqual(len(self.recorder.calls), 5)
        self.assertEqual(len(runner), 5)

    def test_shared_computation(self) -> None:
        """
        Requests for an answer being computed wait for that computation;
        one that is cancelled (its client went away) does not stop it for
        the others.
        """
        runner = self.runner()
        first = runner.run(entry_of(self.entry), "spam")
        second = runner.run(entry_of(self.entry), "spam")
        third = runner.run(entry_of(self.entry), "spam")
        self.assertEqual(len(self.recorder.calls), 1)
        second.cancel()
        self.failureResultOf(second, CancelledError)
        self.answer(0, {"Error": "", "Score": 1.0})
        self.assertEqual(self.successResultOf(first)["Score"], 1.0)
        self.assertEqual(self.successResultOf(third)["Score"], 1.0)

    def test_bounded(self) -> None:
        """
        The cache keeps at most C{cache_size} answers; the least recently
        used goes first.
        """
        runner = self.runner(cache_size=2)
        entries = [FakeEntry(f"m{n}") for n in range(3)]
        for index, entry in enumerate(entries[:2]):
            runner.run(entry_of(entry), "lint")
            self.answer(index, {"n": index})
        runner.run(entry_of(entries[0]), "lint")  # m0 used again: m1 is older
        runner.run(entry_of(entries[2]), "lint")
        self.answer(2, {"n": 2})
        self.assertEqual(len(runner), 2)
        runner.run(entry_of(entries[0]), "lint")
        self.assertEqual(len(self.recorder.calls), 3)
        runner.run(entry_of(entries[1]), "lint")
        self.assertEqual(len(self.recorder.calls), 4)

    def test_clear(self) -> None:
        """
        L{CheckRunner.clear} forgets every answer.
        """
        runner = self.runner()
        runner.run(entry_of(self.entry), "lint")
        self.answer(0, {})
        runner.clear()
        runner.run(entry_of(self.entry), "lint")
        self.assertEqual((len(self.recorder.calls), len(runner)), (2, 0))


class ExpiryTests(RunnerTestCase):
    def ask(self, runner: CheckRunner, name: str, answer: dict[str, Any]) -> None:
        before = len(self.recorder.calls)
        d = runner.run(entry_of(self.entry), name)
        if len(self.recorder.calls) > before:
            self.answer(before, answer)
        self.successResultOf(d)

    def test_links_expire(self) -> None:
        """
        A link check's answer is kept for NETWORK_TTL seconds, then the
        links are fetched again.
        """
        runner = self.runner()
        self.ask(runner, "links", {"Errors": 0, "Links": []})
        self.clock.advance(NETWORK_TTL - 1)
        self.ask(runner, "links", {})
        self.assertEqual(len(self.recorder.calls), 1)
        self.clock.advance(1)
        self.ask(runner, "links", {"Errors": 0, "Links": []})
        self.assertEqual(len(self.recorder.calls), 2)

    def test_auth_expires_only_with_the_resolver(self) -> None:
        """
        With the system's resolver, an auth answer expires like the links';
        with a records file, it is kept while the message does not change.
        """
        resolver = self.runner()
        self.ask(resolver, "auth", {"DKIM": [], "SPF": {}, "DMARC": {}})
        records = self.runner(settings=CheckSettings(dns_records={}))
        self.ask(records, "auth", {"DKIM": [], "SPF": {}, "DMARC": {}})
        self.clock.advance(NETWORK_TTL * 10)
        self.ask(resolver, "auth", {"DKIM": [], "SPF": {}, "DMARC": {}})
        self.ask(records, "auth", {})
        self.assertEqual(len(self.recorder.calls), 3)

    def test_offline_kept(self) -> None:
        """
        HTML, lint and spam answers do not expire.
        """
        runner = self.runner()
        for name in ("html", "lint", "spam"):
            self.ask(runner, name, {"Error": ""})
        self.clock.advance(86400 * 365)
        for name in ("html", "lint", "spam"):
            self.ask(runner, name, {})
        self.assertEqual(len(self.recorder.calls), 3)


class NotKeptTests(RunnerTestCase):
    def test_spam_error(self) -> None:
        """
        A spam answer with an Error (no spamd, spamd down) is not kept: the
        next request asks spamd again.
        """
        runner = self.runner()
        runner.run(entry_of(self.entry), "spam")
        self.answer(0, {"Error": "cannot connect to spamd", "Score": 0})
        runner.run(entry_of(self.entry), "spam")
        self.assertEqual(len(self.recorder.calls), 2)

    def test_auth_temperror(self) -> None:
        """
        An auth answer with a temperror anywhere (DNS did not answer) is
        not kept.
        """
        runner = self.runner(settings=CheckSettings(dns_records={}))
        for answer in (
            {"DKIM": [{"Result": "temperror"}], "SPF": {}, "DMARC": {}},
            {"DKIM": [], "SPF": {"Result": "temperror"}, "DMARC": {}},
            {"DKIM": [], "SPF": {}, "DMARC": {"Result": "temperror"}},
        ):
            before = len(self.recorder.calls)
            runner.run(entry_of(self.entry), "auth")
            self.assertEqual(len(self.recorder.calls), before + 1)
            self.answer(before, answer)
        self.assertEqual(len(runner), 0)

    def test_failure(self) -> None:
        """
        A check that fails (a CheckError) fails every request waiting for
        it, and nothing is kept.
        """
        runner = self.runner()
        first = runner.run(entry_of(self.entry), "lint")
        second = runner.run(entry_of(self.entry), "lint")
        self.recorder.calls[0][3].errback(CheckError("the lint check failed"))
        self.failureResultOf(first, CheckError)
        self.failureResultOf(second, CheckError)
        runner.run(entry_of(self.entry), "lint")
        self.assertEqual((len(self.recorder.calls), len(runner)), (2, 0))

    def test_raising_check(self) -> None:
        """
        A check function that raises instead of returning a Deferred fails
        the request with what it raised.
        """

        def broken(raw: bytes, context: CheckContext) -> Deferred[Any]:
            raise CheckError("no such setting")

        runner = self.runner(checks={"lint": broken})
        self.failureResultOf(runner.run(entry_of(self.entry), "lint"), CheckError)

    def test_unknown_check(self) -> None:
        """
        A name that is no check fails with UnknownCheck, naming the checks.
        """
        failure = self.failureResultOf(
            self.runner().run(entry_of(self.entry), "virus"), UnknownCheck
        )
        self.assertEqual(
            str(failure.value),
            "no check named 'virus': the checks are html, links, spam, auth, lint",
        )

    def test_gone(self) -> None:
        """
        A message deleted meanwhile fails with MessageGone.
        """
        self.entry.folder.stamps.clear()
        self.failureResultOf(
            self.runner().run(entry_of(self.entry), "lint"), MessageGone
        )


class DefaultChecksTests(SynchronousTestCase):
    def test_real_modules(self) -> None:
        """
        Without a table, the runner runs the checks' own modules: the spam
        check without spamd says how to turn it on (and is not kept).
        """
        runner = CheckRunner(Clock())
        answer = self.successResultOf(runner.run(entry_of(FakeEntry()), "spam"))
        self.assertIn("--spamassassin HOST:PORT", answer["Error"])
        self.assertEqual(len(runner), 0)
