"""
Tests for L{twisted_netlab.mail.lab.faults}: the fault model, its spec
syntax, the transport that delays, throttles and cuts, and the SMTP and IMAP
listeners' hooks at each stage (in memory, with a L{Clock}).
"""

from __future__ import annotations

import base64
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from tests.mail.lab.imaptesting import SIMPLE, USER, ServerFixture
from tests.mail.lab.smtp.test_server import (
    MESSAGE,
    TLS,
    Deliveries,
    Session,
    shared_users,
)
from twisted_netlab.mail.lab.faults import (
    GREYLIST_REPLY,
    Attempt,
    Delay,
    Drop,
    Fault,
    Faults,
    FaultSpecError,
    Reply,
    ShapedTransport,
    Throttle,
    parse_fault,
    plain_user,
)
from twisted_netlab.mail.lab.smtp.server import LabSMTPFactory

CLIENT = Attempt(client="127.0.0.1")


class SpecTests(SynchronousTestCase):
    def test_examples(self) -> None:
        """
        The documented examples parse into the faults they describe.
        """
        self.assertEqual(
            parse_fault("rcpt:reply=451:times=2"),
            Fault("smtp", "rcpt", Reply(451), times=2),
        )
        self.assertEqual(
            parse_fault("message:drop=abort:p=0.1"),
            Fault("smtp", "message", Drop(abort=True), probability=0.1),
        )
        self.assertEqual(
            parse_fault("smtp.mail:greylist=2"),
            Fault("smtp", "mail", Reply(*GREYLIST_REPLY), greylist=2),
        )
        self.assertEqual(
            parse_fault("imap.fetch:drop:after-bytes=1000"),
            Fault("imap", "fetch", Drop(after_bytes=1000)),
        )
        self.assertEqual(
            parse_fault("rcpt:reply=550 5.1.1 No such user:to=*@bad.example"),
            Fault(
                "smtp",
                "rcpt",
                Reply(550, "5.1.1 No such user"),
                recipient="*@bad.example",
            ),
        )

    def test_stages(self) -> None:
        """
        Stages may carry their protocol; HELO is the EHLO stage, IMAP
        commands other than the groups are named (in capitals), and each
        action and selection key is read.
        """
        cases = {
            "smtp.connect:drop": Fault("smtp", "connect", Drop()),
            "SMTP.HELO:delay=2.5": Fault("smtp", "ehlo", Delay(2.5)),
            "auth:reply=454:user=alice@*": Fault(
                "smtp", "auth", Reply(454), user="alice@*"
            ),
            "data:throttle=100:client=10.0.0.0/8": Fault(
                "smtp", "data", Throttle(100), client="10.0.0.0/8"
            ),
            "imap.connect:reply=BYE go away": Fault(
                "imap", "connect", Reply("BYE", "go away")
            ),
            "login:reply=no [UNAVAILABLE] later": Fault(
                "imap", "login", Reply("NO", "[UNAVAILABLE] later")
            ),
            "imap.noop:reply=BAD:p=50%": Fault(
                "imap", "NOOP", Reply("BAD"), probability=0.5
            ),
            "select:drop=close:client=[::1]": Fault(
                "imap", "select", Drop(), client="::1"
            ),
            "append:reply=NO no\\: full": Fault(
                "imap", "append", Reply("NO", "no: full")
            ),
            "mail:reply=451:from=*@slow.example:times=1": Fault(
                "smtp", "mail", Reply(451), sender="*@slow.example", times=1
            ),
        }
        for spec, fault in cases.items():
            self.assertEqual(parse_fault(spec), fault, spec)

    def test_round_trip(self) -> None:
        """
        A fault's spec() reads back as the same fault.
        """
        for spec in [
            "rcpt:reply=550 5.1.1 No such user\\: really:to=*@bad.example",
            "smtp.mail:greylist=2",
            "smtp.rcpt:greylist=1:reply=450",
            "imap.fetch:drop=abort:after-bytes=10",
            "select:drop:client=[::1]",
            "message:delay=3:p=0.25:times=4:from=a@b:user=u",
            "imap.examine:throttle=10",
        ]:
            fault = parse_fault(spec)
            self.assertEqual(parse_fault(fault.spec()), fault, fault.spec())

    def test_bad_specs(self) -> None:
        """
        Every bad spec is refused with one line that says what is wrong.
        """
        cases = {
            "": "empty fault spec",
            "rcpt": "needs an action",
            "connect:drop": "say smtp.connect or imap.connect",
            "smtp.fetch:drop": "unknown SMTP stage 'fetch'",
            "imap.frobnicate:drop": "unknown IMAP stage 'frobnicate'",
            "pop3.connect:drop": "unknown protocol 'pop3'",
            "rcpt:reply=45:times=2": "the code must be 3 digits",
            "rcpt:reply=250": "not a 4xx or 5xx code",
            "rcpt:reply=461": "not a 4xx or 5xx code",
            "rcpt:reply=451:tmes=2": "unknown item 'tmes=2'",
            "rcpt:reply=550 No: really": "unknown item ' really'",
            "rcpt:reply=451:drop": "one action per fault, not reply and drop",
            "rcpt:reply=451:times=0": "times= must be at least 1",
            "rcpt:reply=451:times=two": "times= needs a whole number",
            "rcpt:reply=451:times=1:times=2": "times is given twice",
            "rcpt:reply=451:p=0": "p=0: must be more than 0",
            "rcpt:reply=451:p=lots": "p=lots: not a probability",
            "rcpt:drop=slowly": "drop=slowly: close or abort",
            "rcpt:delay=soon": "delay=soon: not a number",
            "rcpt:delay=0": "delay must be more than 0",
            "rcpt:throttle=0": "throttle= must be at least 1",
            "rcpt:reply=451:after-bytes=10": "after-bytes= goes with drop",
            "login:reply=OK": "IMAP reply 'OK' is not NO, BAD or BYE",
            "imap.connect:reply=NO": "imap.connect can only reply=BYE",
            "imap.login:greylist=2": "greylist is for smtp.mail",
            "ehlo:reply=451:to=*": "to= is for smtp.rcpt",
            "ehlo:reply=451:from=*": "from= is for smtp.mail",
            "rcpt:reply=451:to=": "to= needs a pattern",
            "rcpt:reply=451:client=[::1": "needs its ']'",
            "rcpt:reply=451 a\\b": "'\\' comes before",
            "rcpt:reply=451 caf\u00e9": "printable ASCII",
        }
        for spec, reason in cases.items():
            with self.assertRaises(FaultSpecError, msg=spec) as caught:
                parse_fault(spec)
            text = str(caught.exception)
            self.assertIn(reason, text, spec)
            self.assertNotIn("\n", text)

    def test_reply_text_without_line_breaks(self) -> None:
        """
        A reply's text can never carry CR or LF (or other control
        characters), however the fault is made.
        """
        for text in ["try\r\n250 OK", "a\nb", "tab\there"]:
            with self.assertRaises(FaultSpecError):
                Fault("smtp", "rcpt", Reply(451, text))
            with self.assertRaises(FaultSpecError):
                Fault("imap", "login", Reply("NO", text))

    def test_plain_user(self) -> None:
        """
        The user of an AUTH PLAIN initial response is read for user=
        matching; anything else gives none.
        """
        response = base64.b64encode(b"\0alice@example.test\0pw")
        self.assertEqual(plain_user(b"PLAIN " + response), "alice@example.test")
        self.assertIsNone(plain_user(b"LOGIN"))
        self.assertIsNone(plain_user(b"PLAIN"))
        self.assertIsNone(plain_user(b"PLAIN !!!"))
        self.assertIsNone(plain_user(b"PLAIN " + base64.b64encode(b"no-nuls")))


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
        from twisted_netlab.mail.lab import faults as module

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


@implementer(IPushProducer)
class Producer:
    paused = False
    stopped = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        self.stopped = True


class ShapedTransportTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.real = StringTransport()
        self.shaped = ShapedTransport(self.real, self.clock)

    def test_unshaped_passes_through(self) -> None:
        """
        Until it is told to shape, writes go straight through; other
        attributes are the real transport's.
        """
        self.shaped.write(b"abc")
        self.shaped.writeSequence([b"d", b"e"])
        self.assertEqual(self.real.value(), b"abcde")
        self.assertEqual(self.shaped.getPeer(), self.real.getPeer())

    def test_hold(self) -> None:
        """
        hold(N) keeps what is written back for N seconds, then sends it; a
        close asked for meanwhile happens after it.
        """
        self.shaped.hold(2)
        self.shaped.write(b"250 OK\r\n")
        self.shaped.loseConnection()
        self.clock.advance(1.9)
        self.assertEqual(self.real.value(), b"")
        self.assertFalse(self.real.disconnecting)
        self.clock.advance(0.1)
        self.assertEqual(self.real.value(), b"250 OK\r\n")
        self.assertTrue(self.real.disconnecting)

    def test_throttle(self) -> None:
        """
        throttle(R) sends R bytes per second, in tenths of a second.
        """
        self.shaped.throttle(100)
        self.shaped.write(b"x" * 35)
        self.assertEqual(len(self.real.value()), 10)
        self.shaped.write(b"y")
        self.assertEqual(len(self.real.value()), 10)
        self.clock.advance(0.1)
        self.assertEqual(len(self.real.value()), 20)
        self.clock.pump([0.1] * 10)
        self.assertEqual(self.real.value(), b"x" * 35 + b"y")
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_cut_after(self) -> None:
        """
        cut_after(N) lets N more bytes out, then closes (or aborts); more
        writes are dropped.
        """
        self.shaped.write(b"before ")
        self.shaped.cut_after(5, abort=True)
        self.shaped.write(b"abc")
        self.shaped.write(b"defgh")
        self.shaped.write(b"more")
        self.assertEqual(self.real.value(), b"before abcde")
        self.assertTrue(self.real.disconnected)

    def test_cut_clean(self) -> None:
        """
        A clean cut closes without an abort.
        """
        self.shaped.cut_after(0, abort=False)
        self.assertTrue(self.real.disconnecting)
        self.assertFalse(self.real.disconnected)

    def test_producer_paused_when_full(self) -> None:
        """
        A streaming producer is paused while too much is held, resumed once
        it has gone out, and paused while the real transport asks.
        """
        producer = Producer()
        self.shaped.registerProducer(producer, True)
        gate = self.real.producer
        assert gate is not None
        self.shaped.throttle(1_000_000)
        self.shaped.write(b"x" * 200_000)
        self.assertTrue(producer.paused)
        self.clock.pump([0.1] * 2)
        self.assertFalse(producer.paused)
        gate.pauseProducing()
        self.assertTrue(producer.paused)
        gate.resumeProducing()
        self.assertFalse(producer.paused)
        gate.stopProducing()
        self.assertTrue(producer.stopped)
        self.shaped.unregisterProducer()
        self.assertIsNone(self.real.producer)

    def test_pausing_reads_passes_through(self) -> None:
        """
        pauseProducing and resumeProducing on the shaped transport pause and
        resume reading from the connection, as on the real one (a protocol
        holding back pipelined commands uses them).
        """
        self.shaped.pauseProducing()
        self.assertEqual(self.real.producerState, "paused")
        self.shaped.resumeProducing()
        self.assertEqual(self.real.producerState, "producing")


class SMTPFaultTests(SynchronousTestCase):
    """
    The SMTP listener's hooks: each stage, each action.
    """

    def setUp(self) -> None:
        self.clock = Clock()
        self.faults = Faults(reactor=self.clock)
        self.deliveries = Deliveries()

    def session(self, *specs: str, peer: Any = None, **kwargs: Any) -> Session:
        for spec in specs:
            self.faults.add(spec)
        factory = LabSMTPFactory(
            users=shared_users(),
            domains=["example.test", "other.test"],
            deliver=self.deliveries,
            tls=TLS,
            hostname="mail.example.test",
            reactor=self.clock,
            faults=self.faults,
            **kwargs,
        )
        return Session(factory, peer)

    def transaction(self, s: Session, *recipients: bytes) -> list[int]:
        codes = [s.code(b"EHLO client.test"), s.code(b"MAIL FROM:<a@remote.test>")]
        codes += [s.code(b"RCPT TO:<" + r + b">") for r in recipients]
        codes.append(s.code(b"DATA"))
        if codes[-1] == 354:
            codes.append(int(s.send(*MESSAGE, b".")[:3]))
        return codes

    def test_connect_reply(self) -> None:
        """
        smtp.connect:reply answers instead of the greeting and closes.
        """
        s = self.session("smtp.connect:reply=421")
        self.assertTrue(s.greeting.startswith(b"421 4.3.0 "), s.greeting)
        self.assertTrue(s.closed)

    def test_connect_drop(self) -> None:
        """
        smtp.connect:drop closes before any greeting; drop=abort resets.
        """
        s = self.session("smtp.connect:drop:times=1")
        self.assertEqual(s.greeting, b"")
        self.assertTrue(s.closed)
        self.assertFalse(s.transport.disconnected)
        s = self.session("smtp.connect:drop=abort")
        self.assertEqual(s.greeting, b"")
        self.assertTrue(s.transport.disconnected)

    def test_connect_delay(self) -> None:
        """
        smtp.connect:delay holds the greeting back for that long.
        """
        s = self.session("smtp.connect:delay=3")
        self.assertEqual(s.greeting, b"")
        self.clock.advance(3)
        self.assertTrue(s.take().startswith(b"220 mail.example.test"))

    def test_ehlo(self) -> None:
        """
        smtp.ehlo faults EHLO and HELO alike; the next attempt is served.
        """
        s = self.session("smtp.ehlo:reply=554 5.7.1 Not you:times=2")
        self.assertEqual(s.send(b"EHLO client.test"), b"554 5.7.1 Not you\r\n")
        self.assertEqual(s.code(b"HELO client.test"), 554)
        self.assertEqual(s.code(b"EHLO client.test"), 250)

    def test_auth(self) -> None:
        """
        smtp.auth answers AUTH, matching the user named by AUTH PLAIN.
        """
        s = self.session("auth:reply=454:user=alice@*", allow_plaintext_auth=True)
        s.code(b"EHLO client.test")
        self.assertEqual(s.login(), 454)
        self.assertEqual(s.login(b"bob@example.test", b"bob-pw"), 235)

    def test_mail(self) -> None:
        """
        smtp.mail answers MAIL FROM; matching by sender.
        """
        s = self.session("mail:reply=451:from=*@slow.test")
        s.code(b"EHLO client.test")
        self.assertEqual(s.code(b"MAIL FROM:<x@slow.test>"), 451)
        self.assertEqual(s.code(b"MAIL FROM:<x@fast.test>"), 250)

    def test_rcpt_affects_only_that_recipient(self) -> None:
        """
        A RCPT fault refuses the recipient it matches; the others of the
        same message are accepted and get the message.
        """
        s = self.session("rcpt:reply=550 5.1.1 No such user:to=bob@*")
        codes = self.transaction(s, b"alice@example.test", b"bob@example.test")
        self.assertEqual(codes, [250, 250, 250, 550, 354, 250])
        self.assertEqual(
            [address for address, _ in self.deliveries.stored], ["alice@example.test"]
        )

    def test_data(self) -> None:
        """
        smtp.data answers DATA; the transaction is over (MAIL starts anew).
        """
        s = self.session("data:reply=452:times=1")
        codes = self.transaction(s, b"alice@example.test")
        self.assertEqual(codes, [250, 250, 250, 452])
        self.assertEqual(s.code(b"RCPT TO:<alice@example.test>"), 503)
        self.assertEqual(
            self.transaction(s, b"alice@example.test"), [250, 250, 250, 354, 250]
        )

    def test_message_stores_nothing(self) -> None:
        """
        smtp.message answers after the final dot, and nothing is stored; the
        next message on the same connection is stored.
        """
        s = self.session("message:reply=451:times=1")
        self.assertEqual(
            self.transaction(s, b"alice@example.test"), [250, 250, 250, 354, 451]
        )
        self.assertEqual(self.deliveries.stored, [])
        self.assertEqual(
            self.transaction(s, b"alice@example.test"), [250, 250, 250, 354, 250]
        )
        self.assertEqual(len(self.deliveries.stored), 1)

    def test_message_drop_stores_nothing(self) -> None:
        """
        smtp.message:drop closes at the final dot, storing nothing.
        """
        s = self.session("message:drop=abort")
        s.code(b"EHLO client.test")
        s.code(b"MAIL FROM:<a@remote.test>")
        s.code(b"RCPT TO:<alice@example.test>")
        s.code(b"DATA")
        self.assertEqual(s.send(*MESSAGE, b"."), b"")
        self.assertTrue(s.transport.disconnected)
        self.assertEqual(self.deliveries.stored, [])

    def test_bdat_message_stores_nothing(self) -> None:
        """
        A message sent with BDAT (CHUNKING) is faulted at the message stage
        after its last chunk, with its envelope: nothing is stored; the
        next one is.
        """
        s = self.session("message:reply=554 5.7.1 Not today:to=alice@*:times=1")
        for expected in (554, 250):
            s.code(b"EHLO client.test")
            s.code(b"MAIL FROM:<a@remote.test>")
            s.code(b"RCPT TO:<alice@example.test>")
            s.protocol.dataReceived(
                b"BDAT 27 LAST\r\nSubject: chunked\r\n\r\nhello\r\n"
            )
            self.assertEqual(int(s.take()[:3]), expected)
        self.assertEqual(len(self.deliveries.stored), 1)

    def test_message_matches_recipients(self) -> None:
        """
        At the message stage to= matches any of the message's recipients.
        """
        s = self.session("message:reply=554:to=bob@*")
        self.assertEqual(
            self.transaction(s, b"alice@example.test"), [250, 250, 250, 354, 250]
        )
        self.assertEqual(
            self.transaction(s, b"alice@example.test", b"bob@example.test")[-1], 554
        )

    def test_refused_commands_not_faulted(self) -> None:
        """
        A command the server refuses anyway gets its usual answer, not the
        fault: MAIL before EHLO, RCPT before MAIL, DATA before RCPT, bad
        syntax, EHLO without a name.
        """
        s = self.session(
            "ehlo:reply=421",
            "mail:reply=421",
            "rcpt:reply=421",
            "data:reply=421",
        )
        self.assertEqual(s.code(b"MAIL FROM:<a@remote.test>"), 503)
        self.assertEqual(s.code(b"EHLO"), 501)
        self.faults.clear()
        self.faults.add("mail:reply=421")
        self.faults.add("rcpt:reply=421")
        self.faults.add("data:reply=421")
        s.code(b"EHLO client.test")
        self.assertEqual(s.code(b"RCPT TO:<alice@example.test>"), 503)
        self.assertEqual(s.code(b"DATA"), 503)
        self.assertEqual(s.code(b"MAIL FRM:<a@remote.test>"), 501)
        self.assertFalse(s.closed)
        self.assertEqual([h.hits for h in self.faults], [0, 0, 0])

    def test_421_closes(self) -> None:
        """
        A 421 reply closes the connection, as RFC 5321 says it does.
        """
        s = self.session("mail:reply=421")
        s.code(b"EHLO client.test")
        self.assertEqual(s.code(b"MAIL FROM:<a@remote.test>"), 421)
        self.assertTrue(s.closed)

    def test_delay_reply(self) -> None:
        """
        delay holds the reply of its stage (and what follows) back.
        """
        s = self.session("rcpt:delay=5")
        s.code(b"EHLO client.test")
        s.code(b"MAIL FROM:<a@remote.test>")
        self.assertEqual(s.send(b"RCPT TO:<alice@example.test>", b"NOOP"), b"")
        self.clock.advance(4)
        self.assertEqual(s.take(), b"")
        self.clock.advance(1)
        self.assertEqual(s.take().count(b"250 "), 2)

    def test_throttle_session(self) -> None:
        """
        throttle slows the rest of the session to that many bytes/s.
        """
        s = self.session("ehlo:throttle=50")
        first = s.send(b"EHLO client.test")
        self.assertEqual(len(first), 5)
        self.clock.pump([0.1] * 10)
        self.assertEqual(len(s.take()), 50)
        self.clock.pump([0.1] * 100)
        s.take()
        reply = s.send(b"NOOP")
        self.assertEqual(len(reply), 5)
        self.clock.pump([0.1] * 10)
        whole = reply + s.take()
        self.assertTrue(whole.startswith(b"250 ") and whole.endswith(b"OK\r\n"))

    def test_client_match(self) -> None:
        """
        client= selects by the connection's peer address.
        """
        self.faults.add("smtp.connect:drop:client=192.0.2.0/24")
        far = self.session(peer=IPv4Address("TCP", "192.0.2.10", 1000))
        near = self.session(peer=IPv6Address("TCP", "::1", 1000))
        self.assertTrue(far.closed)
        self.assertTrue(near.greeting.startswith(b"220"))

    def test_serves_others_after_drop(self) -> None:
        """
        After a dropped connection the server goes on serving new ones.
        """
        self.faults.add("mail:drop=abort:times=1")
        s = self.session()
        s.code(b"EHLO client.test")
        s.send(b"MAIL FROM:<a@remote.test>")
        self.assertTrue(s.transport.disconnected)
        again = self.session()
        self.assertEqual(
            self.transaction(again, b"alice@example.test"), [250, 250, 250, 354, 250]
        )


class IMAPFaultTests(ServerFixture):
    """
    The IMAP listener's hooks.
    """

    def setUp(self) -> None:
        super().setUp()
        self.faults = Faults(reactor=self.clock)
        self.factory.faults = self.faults
        for _ in range(3):
            self.store.deliver(USER, SIMPLE)

    def reconnect(self, *specs: str) -> bytes:
        for spec in specs:
            self.faults.add(spec)
        self.server, self.transport = self.connect()
        value = self.transport.value()
        self.transport.clear()
        return value

    def test_connect(self) -> None:
        """
        imap.connect:reply=BYE greets with BYE and closes; drop closes at
        once.
        """
        self.assertEqual(
            self.reconnect("imap.connect:reply=BYE busy:times=1"), b"* BYE busy\r\n"
        )
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.reconnect("imap.connect:drop=abort"), b"")
        self.assertTrue(self.transport.disconnected)

    def test_login(self) -> None:
        """
        imap.login answers LOGIN (matching the user it names) and
        AUTHENTICATE with NO, BAD or BYE.
        """
        self.faults.add("login:reply=NO [UNAVAILABLE] later:user=alice@*:times=1")
        response = self.command(b'l1 LOGIN "' + USER.encode() + b'" "x"')
        self.assertEqual(response, b"l1 NO [UNAVAILABLE] later\r\n")
        self.faults.add("login:reply=BAD:times=1")
        self.assertTrue(self.command(b"a1 AUTHENTICATE PLAIN").startswith(b"a1 BAD"))
        self.faults.add("login:reply=BYE bye")
        self.assertEqual(self.command(b"a2 AUTHENTICATE PLAIN"), b"* BYE bye\r\n")
        self.assertTrue(self.transport.disconnecting)

    def test_select(self) -> None:
        """
        imap.select answers SELECT and EXAMINE; the user is the logged-in
        one.
        """
        self.login()
        self.faults.add("select:reply=NO [INUSE] busy:user=" + USER)
        self.assertEqual(self.command(b"s1 SELECT INBOX"), b"s1 NO [INUSE] busy\r\n")
        self.assertEqual(self.command(b"s2 EXAMINE INBOX"), b"s2 NO [INUSE] busy\r\n")

    def test_fetch_drop_in_literal(self) -> None:
        """
        imap.fetch:drop:after-bytes=N lets N bytes of the FETCH out, in the
        middle of a message's literal, then closes; UID FETCH is FETCH.
        """
        self.select()
        self.faults.add("fetch:drop:after-bytes=60")
        response = self.command(b"f1 UID FETCH 1:* (BODY.PEEK[])")
        self.assertEqual(len(response), 60)
        self.assertIn(b"{", response)
        self.assertNotIn(b"f1 OK", response)
        self.assertTrue(self.transport.disconnecting)

    def test_fetch_delay(self) -> None:
        """
        imap.fetch:delay holds the FETCH's answer back.
        """
        self.select()
        self.faults.add("fetch:delay=2")
        self.assertEqual(self.command(b"f1 FETCH 1 (UID)"), b"")
        self.clock.advance(2)
        self.assertIn(b"f1 OK", self.transport.value())

    def test_append(self) -> None:
        """
        imap.append answers APPEND before the literal is asked for; nothing
        is stored.
        """
        self.login()
        self.faults.add("append:reply=NO [OVERQUOTA] full")
        response = self.command(b"a1 APPEND INBOX {10}")
        self.assertEqual(response, b"a1 NO [OVERQUOTA] full\r\n")
        self.assertEqual(len(self.store.messages(USER, "INBOX")), 3)

    def test_append_with_literal_plus(self) -> None:
        """
        An APPEND refused while its literal is on the way unasked (LITERAL+):
        the literal's octets are skipped, never read as commands, and the
        session goes on.
        """
        self.login()
        self.faults.add("append:reply=NO full")
        response = self.send(
            b"a1 APPEND INBOX {17+}\r\nb1 DELETE INBOX\r\n\r\nn1 NOOP\r\n"
        )
        self.assertEqual(response, b"a1 NO full\r\nn1 OK NOOP completed\r\n")
        self.assertFalse(self.transport.disconnecting)
        self.assertEqual(len(self.store.messages(USER, "INBOX")), 3)

    def test_named_command(self) -> None:
        """
        imap.NAME faults that command only, in whatever state it is valid.
        """
        self.faults.add("imap.noop:reply=BAD nope")
        self.assertEqual(self.command(b"n1 NOOP"), b"n1 BAD nope\r\n")
        self.assertIn(b"c1 OK", self.command(b"c1 CAPABILITY"))

    def test_unknown_command_untouched(self) -> None:
        """
        A command the server would refuse anyway (not valid in this state)
        is not faulted: the client sees the server's usual answer.
        """
        self.faults.add("fetch:reply=NO faulted")
        response = self.command(b"f1 FETCH 1 (UID)")
        self.assertNotIn(b"faulted", response)
        self.assertIn(b"f1 BAD", response)

    def test_connect_delay(self) -> None:
        """
        imap.connect:delay holds the greeting back.
        """
        self.assertEqual(self.reconnect("imap.connect:delay=1.5"), b"")
        self.clock.advance(1.5)
        self.assertTrue(self.transport.value().startswith(b"* OK"))

    def test_throttle(self) -> None:
        """
        A throttled IMAP session gets its answers at that many bytes/s.
        """
        self.login()
        self.faults.add("imap.select:throttle=100")
        first = self.command(b"s1 SELECT INBOX")
        self.assertEqual(len(first), 10)
        self.clock.pump([0.1] * 100)
        self.assertIn(b"s1 OK [READ-WRITE]", self.transport.value())
