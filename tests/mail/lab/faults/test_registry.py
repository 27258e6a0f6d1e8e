"""
Tests for L{twisted_netlab.mail.lab.faults.registry}: which attempts a
fault selects, its handle, and the hits logged and counted.
"""

from __future__ import annotations

from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.faults import (
    GREYLIST_REPLY,
    Attempt,
    Drop,
    Fault,
    Faults,
    FaultSpecError,
    Reply,
    parse_fault,
)

CLIENT = Attempt(client="127.0.0.1")


class SelectionTests(SynchronousTestCase):
    def hits(self, faults: Faults, stage: str, attempts: list[Attempt]) -> list[bool]:
        return [faults.check("smtp", stage, a) is not None for a in attempts]

    def test_every_time(self) -> None:
        """
        A fault without a selection hits every attempt at its stage, and
        only at its stage and protocol.
        """
        faults = Faults(["rcpt:reply=451"])
        self.assertEqual(self.hits(faults, "rcpt", [CLIENT] * 3), [True] * 3)
        self.assertIsNone(faults.check("smtp", "mail", CLIENT))
        self.assertIsNone(faults.check("imap", "rcpt", CLIENT))

    def test_times(self) -> None:
        """
        times=N hits the next N attempts, then none; the handle counts.
        """
        faults = Faults()
        handle = faults.add("rcpt:reply=451:times=2")
        self.assertEqual(
            self.hits(faults, "rcpt", [CLIENT] * 4), [True, True, False, False]
        )
        self.assertEqual(handle.hits, 2)
        self.assertTrue(handle.exhausted)

    def test_probability_is_seeded(self) -> None:
        """
        p=P hits about P of the attempts; the same seed repeats the same
        choices, another seed makes others.
        """

        def run(seed: int) -> list[bool]:
            faults = Faults(["rcpt:reply=451:p=0.3"], seed=seed)
            return self.hits(faults, "rcpt", [CLIENT] * 1000)

        first = run(7)
        self.assertEqual(first, run(7))
        self.assertNotEqual(first, run(8))
        self.assertTrue(200 < sum(first) < 400, sum(first))

    def test_greylist(self) -> None:
        """
        greylist=N refuses the first N attempts of each sender+recipient
        pair, then accepts that pair; other pairs count on their own.
        """
        faults = Faults(["smtp.rcpt:greylist=2"])

        def attempt(sender: str, recipient: str) -> Attempt:
            return Attempt("127.0.0.1", sender, (recipient,))

        a_b = attempt("a@x.test", "b@y.test")
        a_c = attempt("a@x.test", "c@y.test")
        self.assertEqual(
            self.hits(faults, "rcpt", [a_b, a_b, a_c, a_b, a_c, a_c, a_b]),
            [True, True, True, False, True, False, False],
        )
        hit = faults.check("smtp", "rcpt", attempt("A@X.test", "d@y.test"))
        assert hit is not None
        self.assertEqual(hit.fault.action, Reply(*GREYLIST_REPLY))

    def test_greylist_memory_bounded(self) -> None:
        """
        A greylisting fault remembers a bounded number of pairs, forgetting
        the least recently seen first.
        """
        from twisted_netlab.mail.lab.faults import registry as module

        self.patch(module, "_MAX_PAIRS", 2)
        faults = Faults(["smtp.mail:greylist=1"])
        a, b, c = (Attempt("127.0.0.1", s) for s in ("a@x", "b@x", "c@x"))
        self.assertEqual(
            self.hits(faults, "mail", [a, b, a, c, a, b]),
            [True, True, False, True, False, True],
        )

    def test_patterns(self) -> None:
        """
        from=, to=, user= are fnmatch patterns (any case); to= at the message
        stage matches any recipient; client= is an address, a network (IPv4
        or IPv6) or a pattern.
        """
        faults = Faults()
        faults.add("message:reply=554:from=*@spam.test:to=boss@*")
        self.assertEqual(
            self.hits(
                faults,
                "message",
                [
                    Attempt("1.2.3.4", "x@SPAM.test", ("a@b", "Boss@corp.test")),
                    Attempt("1.2.3.4", "x@spam.test", ("a@b",)),
                    Attempt("1.2.3.4", "x@ham.test", ("boss@corp.test",)),
                ],
            ),
            [True, False, False],
        )
        faults.clear()
        faults.add("mail:reply=451:user=alice@*")
        self.assertEqual(
            self.hits(
                faults,
                "mail",
                [
                    Attempt("1.2.3.4", "s", user="alice@example.test"),
                    Attempt("1.2.3.4", "s", user="bob@example.test"),
                    Attempt("1.2.3.4", "s", user=None),
                ],
            ),
            [True, False, False],
        )
        for client, hits in {
            "10.0.0.0/8": [True, False, False, False],
            "::1": [False, False, True, False],
            "192.168.1.*": [False, True, False, False],
            "unix": [False, False, False, True],
        }.items():
            faults.clear()
            faults.add(Fault("smtp", "ehlo", Drop(), client=client))
            self.assertEqual(
                self.hits(
                    faults,
                    "ehlo",
                    [
                        Attempt("10.1.2.3"),
                        Attempt("192.168.1.9"),
                        Attempt("::1"),
                        Attempt("unix"),
                    ],
                ),
                hits,
                client,
            )

    def test_imap_groups_and_commands(self) -> None:
        """
        imap.select covers SELECT and EXAMINE, imap.login LOGIN and
        AUTHENTICATE; a named command covers that command only.
        """
        faults = Faults(["select:reply=NO", "imap.noop:reply=BAD"])
        for stage, hit in {
            "SELECT": True,
            "EXAMINE": True,
            "NOOP": True,
            "FETCH": False,
            "connect": False,
        }.items():
            self.assertEqual(faults.check("imap", stage, CLIENT) is not None, hit)
        faults = Faults(["imap.examine:reply=NO", "login:drop"])
        self.assertIsNone(faults.check("imap", "SELECT", CLIENT))
        self.assertIsNotNone(faults.check("imap", "EXAMINE", CLIENT))
        self.assertIsNotNone(faults.check("imap", "AUTHENTICATE", CLIENT))

    def test_first_added_wins(self) -> None:
        """
        When several faults select an attempt, the first added acts, and
        only it counts the hit.
        """
        faults = Faults()
        first = faults.add("rcpt:reply=451:times=1")
        second = faults.add("rcpt:reply=550")
        hit = faults.check("smtp", "rcpt", CLIENT)
        self.assertIs(hit, first)
        self.assertIs(faults.check("smtp", "rcpt", CLIENT), second)
        self.assertEqual((first.hits, second.hits), (1, 1))

    def test_handles(self) -> None:
        """
        add() gives a handle: remove() takes the fault out, and so does the
        end of a with block; clear() removes all; get() finds one by id;
        keywords build a fault too.
        """
        faults = Faults()
        with faults.add("rcpt:reply=451") as handle:
            self.assertEqual(list(faults), [handle])
            self.assertIs(faults.get(handle.id), handle)
            self.assertIsNotNone(faults.check("smtp", "rcpt", CLIENT))
        self.assertEqual(list(faults), [])
        self.assertIsNone(faults.check("smtp", "rcpt", CLIENT))
        self.assertEqual(handle.hits, 1)
        handle.remove()  # again: nothing
        other = faults.add(stage="smtp.mail", action=Reply(451), times=2)
        self.assertEqual(other.fault, parse_fault("mail:reply=451:times=2"))
        faults.add("rcpt:drop")
        self.assertEqual(len(faults), 2)
        self.assertTrue(faults.remove(other.id))
        self.assertFalse(faults.remove(other.id))
        faults.check("smtp", "rcpt", CLIENT)
        self.assertEqual(faults.hits, {"smtp.rcpt": 2})
        faults.clear()
        self.assertEqual(len(faults), 0)
        self.assertEqual(faults.hits, {})
        with self.assertRaises(FaultSpecError):
            faults.add("rcpt:reply=451", times=2)
        with self.assertRaises(FaultSpecError):
            faults.add(action=Drop())

    def test_hits_logged_and_counted(self) -> None:
        """
        Every hit is logged (which fault, where, for which client, what it
        did) and counted on the handle and per stage.
        """
        faults = Faults()
        handle = faults.add("rcpt:reply=451 4.3.0 later:times=2")
        with capturedLogs() as events:
            for _ in range(3):
                faults.check("smtp", "rcpt", Attempt("192.0.2.7"))
        hits = [e for e in events if "hit" in e.get("log_format", "")]
        self.assertEqual(len(hits), 2)
        self.assertEqual(hits[0]["id"], handle.id)
        self.assertEqual(hits[0]["where"], "smtp.rcpt")
        self.assertEqual(hits[0]["client"], "192.0.2.7")
        self.assertEqual(hits[0]["action"], "reply=451 4.3.0 later")
        self.assertEqual(faults.hits, {"smtp.rcpt": 2})
        self.assertEqual(handle.to_json()["Hits"], 2)
        self.assertEqual(handle.to_json()["Remaining"], 0)
