"""
Tests for L{twisted_netlab.mail.lab.faults.spec} and the checks of
L{twisted_netlab.mail.lab.faults.model}: specs read and written back, bad
specs refused with a one-line reason.
"""

from __future__ import annotations

import base64

from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.faults import (
    GREYLIST_REPLY,
    Delay,
    Drop,
    Fault,
    FaultSpecError,
    Reply,
    Throttle,
    parse_fault,
    plain_user,
)


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
