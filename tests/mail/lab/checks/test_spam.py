"""
Tests for L{twisted_netlab.mail.lab.checks.spam}: the SPAMC/SPAMD protocol
in memory, and the spam check against Debian's real spamd.
"""

from __future__ import annotations

import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import CancelledError
from twisted.internet.endpoints import TCP4ClientEndpoint
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.checks import spam
from twisted_netlab.mail.lab.checks.context import CheckContext, CheckSettings
from twisted_netlab.mail.lab.checks.spam import (
    HOW_TO_TURN_ON,
    Rule,
    SpamcFactory,
    SpamdError,
    SpamdReply,
    check_spam,
    parse_reply,
    parse_report,
    parse_verdict,
    spam_result,
)

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"

#: spamd 4.0.1's REPORT body for a GTUBE message, as it came on this machine
REPORT = """\
Spam detection software, running on the system "vm",
has identified this incoming email as possible spam.  The original
message has been attached to this so you can view it or label
similar future email.  If you have any questions, see
@@CONTACT_ADDRESS@@ for details.

Content preview:  XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X

Content analysis details:   (1002.3 points, 5.0 required)

 pts rule name              description
---- ---------------------- --------------------------------------------------
-0.0 NO_RECEIVED            Informational: message has no Received headers
 0.1 MISSING_MID            Missing Message-Id: header
 1.4 MISSING_DATE           Missing Date: header
1000 GTUBE                  BODY: Generic Test for Unsolicited Bulk Email
 2.5 A_VERY_LONG_RULE_NAME_INDEED The description of a rule whose name is
                            longer than its column, going on over two
                            lines
 0.0 TVD_SPACE_RATIO        No description available.

"""


def reply_bytes(body: str = REPORT, spam_header: str = "True ; 1002.3 / 5.0") -> bytes:
    data = body.encode()
    return (
        b"SPAMD/1.1 0 EX_OK\r\nContent-length: %d\r\nSpam: %s\r\n\r\n"
        % (len(data), spam_header.encode())
    ) + data


class ParseTests(SynchronousTestCase):
    """
    Parsing spamd's replies.
    """

    def test_reply(self) -> None:
        """
        Status, headers by lowercased name, and the body as long as its
        Content-length says.
        """
        reply = parse_reply(reply_bytes("abc") + b"trailing")
        self.assertEqual(reply.code, 0)
        self.assertEqual(reply.message, "EX_OK")
        self.assertEqual(reply.headers["spam"], "True ; 1002.3 / 5.0")
        self.assertEqual(reply.body, b"abc")

    def test_error_reply(self) -> None:
        """
        An error reply is its status line alone.
        """
        reply = parse_reply(b"SPAMD/1.0 76 Bad header line: BOGUS SPAMC/1.5\r\n")
        self.assertEqual(
            (reply.code, reply.message), (76, "Bad header line: BOGUS SPAMC/1.5")
        )
        self.assertEqual(reply.headers, {})

    def test_bad_replies(self) -> None:
        """
        Something that is no SPAMD reply, or is cut short, is a SpamdError
        saying so.
        """
        cases = {
            b"": "without a reply",
            b"HTTP/1.1 200 OK\r\n\r\n": "not a SPAMD reply",
            b"SPAMD/1.1 x EX_OK\r\n\r\n": "not a SPAMD reply",
            b"SPAMD/1.1 0 EX_OK\r\nno colon here\r\n\r\n": "bad header line",
            b"SPAMD/1.1 0 EX_OK\r\nContent-length: 10\r\n\r\nabc": "cut short",
            b"SPAMD/1.1 0 EX_OK\r\nContent-length: ten\r\n\r\n": "bad Content-length",
        }
        for data, words in cases.items():
            error = self.assertRaises(SpamdError, parse_reply, data)
            self.assertIn(words, str(error), data)

    def test_verdict(self) -> None:
        """
        C{Spam:} headers as spamd writes them.
        """
        self.assertEqual(
            parse_verdict("True ; 1003.5 / 5.0"), spam.Verdict(True, 1003.5, 5.0)
        )
        self.assertEqual(
            parse_verdict("False ; -0.1 / 5.0"), spam.Verdict(False, -0.1, 5.0)
        )
        self.assertEqual(parse_verdict("Yes ; 6 / 5"), spam.Verdict(True, 6.0, 5.0))
        for bad in ("", "True", "True ; x / 5.0", "Maybe ; 1 / 5", "True ; 1"):
            self.assertRaises(SpamdError, parse_verdict, bad)

    def test_report(self) -> None:
        """
        The table's rules with their points and descriptions, a long name
        and a description over several lines included; nothing else of the
        report.
        """
        rules = parse_report(REPORT)
        self.assertEqual(
            [r.name for r in rules],
            [
                "NO_RECEIVED",
                "MISSING_MID",
                "MISSING_DATE",
                "GTUBE",
                "A_VERY_LONG_RULE_NAME_INDEED",
                "TVD_SPACE_RATIO",
            ],
        )
        self.assertEqual(
            rules[3],
            Rule("GTUBE", 1000.0, "BODY: Generic Test for Unsolicited Bulk Email"),
        )
        self.assertEqual(rules[1].score, 0.1)
        self.assertEqual(
            rules[4].description,
            "The description of a rule whose name is longer than its column, "
            "going on over two lines",
        )

    def test_report_without_table(self) -> None:
        """
        A report with no rule table has no rules.
        """
        self.assertEqual(parse_report("nothing here\n\n"), [])

    def test_result_shape(self) -> None:
        """
        The answer has exactly the fields of Mailpit's SpamAssassinResponse,
        its rules those of Rule; a rule's -0.0 is 0.
        """
        result = spam_result(parse_reply(reply_bytes()), "h:1")
        self.assertEqual(set(result), {"Error", "IsSpam", "Score", "Rules"})
        self.assertEqual(
            (result["Error"], result["IsSpam"], result["Score"]), ("", True, 1002.3)
        )
        for rule in result["Rules"]:
            self.assertEqual(set(rule), {"Name", "Score", "Description"})
            self.assertIsInstance(rule["Score"], float)
        self.assertEqual(str(result["Rules"][0]["Score"]), "0.0")

    def test_result_of_a_refusal(self) -> None:
        """
        spamd's refusal and a reply without its verdict are Errors.
        """
        refused = spam_result(SpamdReply(76, "Bad header line: x"), "h:1")
        self.assertEqual(
            refused["Error"], "spamd at h:1 refused the message: Bad header line: x"
        )
        unjudged = spam_result(SpamdReply(0, "EX_OK", {}, b""), "h:1")
        self.assertIn("bad Spam header", unjudged["Error"])
        self.assertFalse(unjudged["IsSpam"])


class ProtocolTests(SynchronousTestCase):
    """
    L{SpamcProtocol} over a StringTransport.
    """

    def connect(self, command: bytes, message: bytes = b"", user: str = "") -> Any:
        protocol = SpamcFactory(command, message, user).buildProtocol(None)
        assert protocol is not None
        transport = StringTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def test_request(self) -> None:
        """
        The request is the command, SPAMC/1.5, the message's length, a blank
        line and the message, byte for byte.
        """
        _, transport = self.connect(b"REPORT", b"Subject: x\r\n\r\nbody\r\n")
        self.assertEqual(
            transport.value(),
            b"REPORT SPAMC/1.5\r\nContent-length: 20\r\n\r\nSubject: x\r\n\r\nbody\r\n",
        )

    def test_user_and_ping(self) -> None:
        """
        A user goes in a User header; PING has no body.
        """
        _, transport = self.connect(b"CHECK", b"x", user="alice")
        self.assertEqual(
            transport.value(),
            b"CHECK SPAMC/1.5\r\nContent-length: 1\r\nUser: alice\r\n\r\nx",
        )
        _, transport = self.connect(b"PING")
        self.assertEqual(transport.value(), b"PING SPAMC/1.5\r\n\r\n")

    def test_unknown_command(self) -> None:
        """
        Only spamd's commands can be sent.
        """
        self.assertRaises(ValueError, SpamcFactory, b"TELL")

    def test_reply_in_pieces(self) -> None:
        """
        The reply may come in any pieces; it is parsed when spamd closes.
        """
        protocol, _ = self.connect(b"REPORT", b"x")
        data = reply_bytes()
        for i in range(0, len(data), 7):
            protocol.dataReceived(data[i : i + 7])
        self.assertNoResult(protocol.reply)
        protocol.connectionLost(Failure(ConnectionDone()))
        reply = self.successResultOf(protocol.reply)
        self.assertEqual(reply.body, REPORT.encode())

    def test_lost_before_reply(self) -> None:
        """
        A connection lost before any reply fails with its reason.
        """
        protocol, _ = self.connect(b"REPORT", b"x")
        protocol.connectionLost(Failure(ConnectionLost()))
        self.failureResultOf(protocol.reply, ConnectionLost)

    def test_closed_without_reply(self) -> None:
        """
        A clean close with nothing said is a SpamdError.
        """
        protocol, _ = self.connect(b"REPORT", b"x")
        protocol.connectionLost(Failure(ConnectionDone()))
        self.failureResultOf(protocol.reply, SpamdError)

    def test_too_long(self) -> None:
        """
        A reply longer than any spamd sends aborts the connection.
        """
        protocol, transport = self.connect(b"REPORT", b"x")
        protocol.dataReceived(b"x" * (spam.MAX_REPLY + 1))
        self.assertTrue(transport.disconnecting)
        protocol.connectionLost(Failure(ConnectionLost()))
        failure = self.failureResultOf(protocol.reply, SpamdError)
        self.assertIn("longer than", str(failure.value))

    def test_cancel_aborts(self) -> None:
        """
        Cancelling the reply (a timeout) drops the connection.
        """
        protocol, transport = self.connect(b"REPORT", b"x")
        protocol.reply.cancel()
        self.failureResultOf(protocol.reply, CancelledError)
        self.assertTrue(transport.disconnecting)


class FakeSpamd(Protocol):
    """
    A stand-in spamd: reads a request, checks its length, answers REPORT.
    """

    def __init__(self) -> None:
        self.received = b""

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        head, _, body = self.received.partition(b"\r\n\r\n")
        length = int(head.split(b"Content-length: ")[1].split(b"\r\n")[0])
        if len(body) >= length:
            self.transport.write(reply_bytes())  # type: ignore[union-attr]
            self.transport.loseConnection()  # type: ignore[union-attr]


class InMemoryTests(SynchronousTestCase):
    """
    The client against a stand-in spamd, connected in memory by iosim.
    """

    def test_exchange(self) -> None:
        """
        The whole message reaches the server and its report comes back.
        """
        message = b"Subject: hi\r\n\r\n" + b"x" * 100_000
        client = SpamcFactory(b"REPORT", message).buildProtocol(None)
        assert client is not None
        server = FakeSpamd()
        pump = iosim.connect(
            server, iosim.makeFakeServer(server), client, iosim.makeFakeClient(client)
        )
        pump.flush()
        reply = self.successResultOf(client.reply)
        self.assertTrue(server.received.endswith(message))
        self.assertEqual(spam_result(reply, "x:1")["Rules"][3]["Name"], "GTUBE")


class SettingsTests(SynchronousTestCase):
    """
    The check without a spamd.
    """

    def test_off(self) -> None:
        """
        Without --spamassassin, the answer's Error says how to turn it on.
        """
        result = self.successResultOf(
            spam.check(b"Subject: x\r\n\r\nx", CheckContext(reactor=None))
        )
        self.assertEqual(
            result,
            {"Error": HOW_TO_TURN_ON, "IsSpam": False, "Score": 0.0, "Rules": []},
        )
        self.assertIn("--spamassassin HOST:PORT", result["Error"])


def the_reactor() -> Any:
    from twisted.internet import reactor

    return reactor


@pytest_twisted.ensureDeferred
async def test_refused() -> None:
    """
    A spamd that is not there is an Error in the answer, not a failure.
    """
    port = the_reactor().listenTCP(
        0, Factory.forProtocol(Protocol), interface="127.0.0.1"
    )
    number = port.getHost().port
    await port.stopListening()
    result = await check_spam(b"x", the_reactor(), ("127.0.0.1", number))
    assert (
        result["Error"]
        == f"cannot connect to spamd at 127.0.0.1:{number}: connection refused"
    )
    assert result["IsSpam"] is False


@pytest_twisted.ensureDeferred
async def test_timeout() -> None:
    """
    A spamd that never answers is given up after the timeout: an Error.
    """
    silent = the_reactor().listenTCP(
        0, Factory.forProtocol(Protocol), interface="127.0.0.1"
    )
    try:
        number = silent.getHost().port
        result = await check_spam(
            b"x", the_reactor(), ("127.0.0.1", number), timeout=0.5
        )
    finally:
        await silent.stopListening()
    assert result["Error"] == f"spamd at 127.0.0.1:{number} did not answer within 0.5 s"


# --- Debian's spamd ----------------------------------------------------------------


def mail(body: str, subject: str) -> bytes:
    composed = EmailMessage()
    composed["From"] = "Ann Example <ann@example.org>"
    composed["To"] = "bob@example.org"
    composed["Subject"] = subject
    composed["Date"] = format_datetime(datetime.datetime.now().astimezone())
    composed["Message-ID"] = make_msgid(domain="example.org")
    composed.set_content(body)
    return composed.as_bytes().replace(b"\n", b"\r\n")


HAM = (
    "Hi Bob,\n\nthe minutes of Tuesday's meeting are below. We agreed to move the "
    "review to Thursday afternoon and to ask Carol for the figures.\n\n"
    "See you then,\nAnn\n"
)


@pytest_twisted.ensureDeferred
async def test_spamd_gtube(spamd: tuple[str, int]) -> None:
    """
    GTUBE, the standard test spam, is spam to the real spamd, with the GTUBE
    rule and its 1000 points in the answer.
    """
    context = CheckContext(the_reactor(), settings=CheckSettings(spamassassin=spamd))
    result = await spam.check(mail(f"Buy now!\n{GTUBE}\n", "offer"), context)
    assert result["Error"] == ""
    assert result["IsSpam"] is True
    assert result["Score"] >= 1000
    gtube = [r for r in result["Rules"] if r["Name"] == "GTUBE"]
    assert gtube == [
        {
            "Name": "GTUBE",
            "Score": 1000.0,
            "Description": "BODY: Generic Test for Unsolicited Bulk Email",
        }
    ]
    assert sum(r["Score"] for r in result["Rules"]) == pytest.approx(
        result["Score"], abs=0.2
    )


@pytest_twisted.ensureDeferred
async def test_spamd_ham(spamd: tuple[str, int]) -> None:
    """
    An ordinary mail is ham to the real spamd, below its threshold.
    """
    context = CheckContext(the_reactor(), settings=CheckSettings(spamassassin=spamd))
    result = await spam.check(mail(HAM, "Minutes of Tuesday"), context)
    assert result["Error"] == ""
    assert result["IsSpam"] is False
    assert result["Score"] < 5
    assert "GTUBE" not in {r["Name"] for r in result["Rules"]}


@pytest_twisted.ensureDeferred
async def test_spamd_commands_agree(spamd: tuple[str, int]) -> None:
    """
    The real spamd's SYMBOLS list is the REPORT table's rule names, and
    CHECK gives the same verdict as REPORT; PING is answered PONG.
    """
    host, port = spamd
    raw = mail(f"{GTUBE}\n", "three ways")
    report = await spam.spamd_request(the_reactor(), host, port, b"REPORT", raw)
    symbols = await spam.spamd_request(the_reactor(), host, port, b"SYMBOLS", raw)
    checked = await spam.spamd_request(the_reactor(), host, port, b"CHECK", raw)
    pong = await spam.spamd_request(the_reactor(), host, port, b"PING")
    names = {r.name for r in parse_report(report.body.decode())}
    assert names == set(symbols.body.decode().strip().split(","))
    assert parse_verdict(checked.headers["spam"]) == parse_verdict(
        report.headers["spam"]
    )
    assert checked.body == b""
    assert pong.message == "PONG"


@pytest_twisted.ensureDeferred
async def test_spamd_refuses_bad_requests(spamd: tuple[str, int]) -> None:
    """
    What the real spamd says to a request it does not accept: a reply with
    a non-zero code, which the check turns into an Error.
    """
    host, port = spamd
    factory = SpamcFactory(b"REPORT", b"x")
    factory.command = b"NONSENSE"  # past the factory's own check
    protocol = await TCP4ClientEndpoint(the_reactor(), host, port).connect(factory)
    assert isinstance(protocol, spam.SpamcProtocol)
    reply = await protocol.reply
    assert reply.code != 0
    assert reply.code == 76  # EX_PROTOCOL
    assert reply.message == "Bad header line: NONSENSE SPAMC/1.5"
    result = spam_result(reply, f"{host}:{port}")
    assert result["Error"].startswith(f"spamd at {host}:{port} refused the message: ")
