"""
Tests for L{twisted_netlab.mail.lab.relay}: the relay options, a release
refused before anything is sent, a release driven in memory, and the
forwarder's retries, bounds and counters on a L{Clock}.

The same code against real SMTP servers (aiosmtpd with STARTTLS, implicit
TLS and AUTH; Postfix's smtp-sink) is in tests/interop/test_relay_peers.py.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    ServerRefused,
    TLSFailed,
    UsageProblem,
)
from twisted_netlab.mail.lab.relay import (
    NO_RELAY,
    Forwarder,
    Relay,
    RelayConfig,
    ReleaseRefused,
    parse_forward,
    parse_relay,
    parse_relay_allow,
    parse_relay_tls,
    read_password_file,
    relay_config_from_options,
    webui_no_relay,
)
from twisted_netlab.mail.lab.stats import DeliveryCounters
from twisted_netlab.mail.outgoing import RecipientOutcome, SendResult

RAW = (
    b"Received: from app by lab; Mon, 1 Dec 2026 10:00:00 +0000\r\n"
    b"From: App <app@example.org>\r\nTo: someone@example.com\r\n"
    b"Message-ID: <1@example.org>\r\nSubject: hi\r\n\r\n.dot\r\nbody\r\n"
)


def one_line(error: BaseException) -> str:
    text = str(error)
    assert "\n" not in text, text
    return text


class OptionsTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)

    def password_file(self, text: str) -> str:
        path = self.directory / "password"
        path.write_text(text)
        return str(path)

    def problem(self, function: Any, *args: Any, **kwargs: Any) -> str:
        with self.assertRaises(UsageProblem) as caught:
            function(*args, **kwargs)
        return one_line(caught.exception)

    def test_parse_relay(self) -> None:
        """
        C{--relay} takes HOST, HOST:PORT and [IPv6]:PORT; a bad port or no
        host is a one-line problem naming the option.
        """
        self.assertEqual(parse_relay("smtp.example:2525"), ("smtp.example", 2525))
        self.assertEqual(parse_relay("smtp.example"), ("smtp.example", None))
        self.assertEqual(parse_relay("[::1]:25"), ("::1", 25))
        for bad in ("", ":25", "h:0", "h:70000", "h:x", "[::1", "[::1]x", "a b:25"):
            self.assertIn("--relay", self.problem(parse_relay, bad))

    def test_parse_small_options(self) -> None:
        """
        C{--relay-tls}, C{--relay-allow} and C{--forward} check their values.
        """
        self.assertEqual(parse_relay_tls("tls"), "tls")
        self.assertEqual(
            self.problem(parse_relay_tls, "implicit"),
            "--relay-tls must be one of starttls, tls, none, not 'implicit'",
        )
        self.assertTrue(parse_relay_allow(r"@example\.com$").search("a@example.com"))
        self.assertIn(
            "is not a regular expression", self.problem(parse_relay_allow, "([")
        )
        self.assertEqual(parse_forward("Ops <ops@example.org>"), "ops@example.org")
        self.assertEqual(
            self.problem(parse_forward, "ops"),
            "--forward 'ops' is not an email address",
        )

    def test_password_file(self) -> None:
        """
        The password is the file's first line; a missing file or an empty
        first line is a problem.
        """
        self.assertEqual(
            read_password_file(self.password_file("s3cret\nx\n")), "s3cret"
        )
        self.assertIn(
            "first line is empty",
            self.problem(read_password_file, self.password_file("\n")),
        )
        self.assertIn(
            "cannot read --relay-password-file",
            self.problem(read_password_file, str(self.directory / "missing")),
        )

    def test_no_relay(self) -> None:
        """
        Without C{--relay} there is no relay, and each relay option alone is
        a problem: nothing is ever relayed unless asked.
        """
        self.assertIsNone(relay_config_from_options(relay=None))
        for option, value in [
            ("tls", "none"),
            ("user", "u"),
            ("password_file", "f"),
            ("allow", "x"),
            ("cafile", "c"),
            ("forward", ["a@example.org"]),
            ("allow_plaintext_auth", True),
        ]:
            text = self.problem(
                relay_config_from_options, relay=None, **{option: value}
            )
            self.assertRegex(text, r"^--[a-z-]+ needs --relay HOST:PORT$")

    def test_defaults(self) -> None:
        """
        By default the relay needs STARTTLS with a verified certificate on
        port 587; C{tls} defaults to port 465, C{none} to 25.
        """
        config = relay_config_from_options(relay="smtp.example")
        assert config is not None
        self.assertEqual(
            (config.tls, config.port, config.cafile), ("starttls", 587, None)
        )
        implicit = relay_config_from_options(relay="smtp.example", tls="tls")
        assert implicit is not None
        self.assertEqual(implicit.port, 465)
        plain = relay_config_from_options(relay="smtp.example:26", tls="none")
        assert plain is not None
        self.assertEqual(plain.port, 26)

    def test_login(self) -> None:
        """
        A login needs a user and a password file; the password stays out of
        C{repr}; without TLS it needs the explicit plaintext option.
        """
        path = self.password_file("s3cret\n")
        config = relay_config_from_options(
            relay="h:25", user="alice", password_file=path
        )
        assert config is not None
        self.assertEqual((config.user, config.password), ("alice", "s3cret"))
        self.assertNotIn("s3cret", repr(config))
        self.assertIn(
            "--relay-password-file",
            self.problem(relay_config_from_options, relay="h", user="alice"),
        )
        self.assertIn(
            "needs --relay-user",
            self.problem(relay_config_from_options, relay="h", password_file=path),
        )
        self.assertIn(
            "--relay-insecure-plaintext-auth",
            self.problem(
                relay_config_from_options,
                relay="h",
                tls="none",
                user="alice",
                password_file=path,
            ),
        )
        allowed = relay_config_from_options(
            relay="h",
            tls="none",
            user="alice",
            password_file=path,
            allow_plaintext_auth=True,
        )
        assert allowed is not None
        self.assertTrue(allowed.allow_plaintext_auth)

    def test_contradictions(self) -> None:
        """
        A CA file without TLS, a CA file that does not exist and a forward
        address the allowlist refuses are problems.
        """
        ca = self.password_file("not checked here")
        self.assertIn(
            "needs TLS",
            self.problem(relay_config_from_options, relay="h", tls="none", cafile=ca),
        )
        self.assertIn(
            "no such file",
            self.problem(relay_config_from_options, relay="h", cafile=ca + ".missing"),
        )
        self.assertEqual(
            self.problem(
                relay_config_from_options,
                relay="h",
                allow=r"@lab\.test$",
                forward=["ops@example.org"],
            ),
            r"--forward ops@example.org does not match --relay-allow @lab\.test$",
        )
        config = relay_config_from_options(
            relay="h",
            allow=r"@example\.org$",
            forward=["a@example.org", "A <a@example.org>"],
        )
        assert config is not None
        self.assertEqual(config.forward, ("a@example.org",))

    def test_webui(self) -> None:
        """
        The web UI configuration says whether and where messages are relayed
        and the allowlist, in Mailpit's MessageRelay shape.
        """
        config = RelayConfig("smtp.example", 587, allow=re.compile("x"))
        shape = config.webui_message_relay()
        self.assertEqual(set(shape), set(webui_no_relay()))
        self.assertEqual(
            (shape["Enabled"], shape["SMTPServer"], shape["AllowedRecipients"]),
            (True, "smtp.example:587", "x"),
        )
        self.assertFalse(webui_no_relay()["Enabled"])
        self.assertIn("--relay", NO_RELAY)
        self.assertEqual(RelayConfig("::1", 25, tls="none").server, "[::1]:25")


class ReleaseTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.reactor = MemoryReactorClock()
        self.relay = Relay(
            RelayConfig(
                "127.0.0.1", 2525, tls="none", allow=re.compile(r"@example\.com$")
            ),
            self.reactor,
        )

    def refused(self, deferred: Deferred[Any]) -> str:
        failure = self.failureResultOf(deferred, ReleaseRefused)
        self.reactor.advance(0)
        self.assertEqual(self.reactor.tcpClients, [], "connected after all")
        return one_line(failure.value)

    def test_refused_before_connecting(self) -> None:
        """
        No recipient, a malformed one, a recipient the allowlist refuses
        (even one among allowed ones) and a message without a sender are
        refused with L{ReleaseRefused} before any connection is made.
        """
        release = self.relay.release
        self.assertEqual(
            self.refused(release(RAW, [])),
            "no recipients given to release the message to",
        )
        self.assertIn("no recipients", self.refused(release(RAW, "a@example.com")))
        self.assertEqual(
            self.refused(release(RAW, ["a@example.com", 5])),  # type: ignore[list-item]
            "the recipients must be email addresses (strings)",
        )
        self.assertEqual(
            self.refused(release(RAW, ["a@example.com", "nope"])),
            "invalid email address: 'nope'",
        )
        self.assertEqual(
            self.refused(
                release(RAW, ["a@example.com", "b@example.org", "c@evil.test"])
            ),
            "Addresses do not match the relay allowlist "
            r"(--relay-allow @example\.com$): b@example.org, c@evil.test",
        )
        self.assertIn(
            "no From or Sender address",
            self.refused(release(b"Subject: x\r\n\r\nx\r\n", ["a@example.com"])),
        )

    def test_released_in_memory(self) -> None:
        """
        An allowed release connects to the relay, sends from the message's
        From address (or the sender given) to the recipients, each once,
        and the data is the stored bytes, dot-stuffed.
        """
        released = self.relay.release(
            RAW, ["A <a@example.com>", "a@example.com", "b@example.com"]
        )
        transport = self.connect()
        lines = self.converse(
            transport,
            ["220 relay ESMTP", "250 relay", "250 ok", "250 ok", "250 ok", "354 go"],
        )
        self.assertEqual(
            lines[1:5],
            [
                b"MAIL FROM:<app@example.org>",
                b"RCPT TO:<a@example.com>",
                b"RCPT TO:<b@example.com>",
                b"DATA",
            ],
        )
        self.assertEqual(
            transport.value(), RAW.replace(b"\r\n.dot", b"\r\n..dot") + b".\r\n"
        )
        self.converse(transport, ["250 2.0.0 queued"])
        self.protocol.connectionLost(None)  # type: ignore[arg-type]
        result = self.successResultOf(released)
        self.assertTrue(result.all_accepted)

    def test_all_refused(self) -> None:
        """
        A relay that refuses every recipient fails the release with
        L{ServerRefused} carrying its reply.
        """
        released = self.relay.release(
            RAW, ["a@example.com"], mail_from="bounce@example.org"
        )
        transport = self.connect()
        lines = self.converse(
            transport,
            ["220 relay ESMTP", "250 relay", "250 ok", "550 5.1.1 no such user"],
        )
        self.assertEqual(lines[1], b"MAIL FROM:<bounce@example.org>")
        self.protocol.connectionLost(None)  # type: ignore[arg-type]
        failure = self.failureResultOf(released, ServerRefused)
        self.assertEqual(
            str(failure.value),
            "127.0.0.1:2525 refused every recipient: 550 5.1.1 no such user",
        )

    def connect(self) -> StringTransport:
        self.reactor.advance(0)
        [(host, port, factory, _, _)] = self.reactor.tcpClients
        self.assertEqual((host, port), ("127.0.0.1", 2525))
        protocol = factory.buildProtocol(IPv4Address("TCP", host, port))
        assert protocol is not None
        self.protocol = protocol
        transport = StringTransport()
        protocol.makeConnection(transport)
        return transport

    def converse(
        self, transport: StringTransport, replies: Sequence[str]
    ) -> list[bytes]:
        """
        Play the relay's C{replies} one by one; return the client's lines.
        """
        sent: list[bytes] = []
        for reply in replies:
            transport.clear()
            self.protocol.dataReceived(reply.encode() + b"\r\n")
            while transport.producer is not None:
                transport.producer.resumeProducing()
            if not reply.startswith("354"):
                sent.extend(transport.value().split(b"\r\n")[:-1])
        return sent


class FakeRelay:
    """
    A relay whose sends the test answers: C{calls} holds each send's
    arguments and its Deferred.
    """

    server = "relay.example:587"

    def __init__(self) -> None:
        self.calls: list[tuple[bytes, tuple[str, ...], str, Deferred[SendResult]]] = []
        self.cancelled: list[Deferred[SendResult]] = []

    def send(
        self, raw: bytes, recipients: Sequence[str], mail_from: str
    ) -> Deferred[SendResult]:
        d: Deferred[SendResult] = Deferred(self.cancelled.append)
        self.calls.append((raw, tuple(recipients), mail_from, d))
        return d

    def answer(self, index: int, *outcomes: tuple[str, int]) -> None:
        """
        Fire send C{index} with a result of C{(address, code)} outcomes.
        """
        result = SendResult(
            tuple(
                RecipientOutcome(a, code < 300, code, "text") for a, code in outcomes
            ),
            "250 queued",
        )
        self.calls[index][3].callback(result)


def accepted(*addresses: str) -> tuple[tuple[str, int], ...]:
    return tuple((a, 250) for a in addresses)


class ForwarderTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.relay = FakeRelay()
        self.counters = DeliveryCounters()
        self.forwarder = Forwarder(
            self.relay,
            self.clock,
            addresses=("ops@example.org", "qa@example.org"),
            counters=self.counters,
            attempts=3,
            first_retry=10,
            max_retry=15,
        )

    def logged(self, action: Any) -> list[str]:
        with capturedLogs() as events:
            action()
        return [formatEvent(e) for e in events]

    def test_forwarded(self) -> None:
        """
        C{feed} returns at once, having started the send: the stored bytes,
        unchanged, from the envelope sender to every forward address; the
        outcome is one log line and a count.
        """
        self.forwarder.feed(RAW, "app@example.org", label="ID1")
        [(raw, to, sender, _)] = self.relay.calls
        self.assertEqual(
            (raw, to, sender), (RAW, self.forwarder.addresses, "app@example.org")
        )
        self.assertEqual(self.forwarder.pending, 1)
        lines = self.logged(
            lambda: self.relay.answer(0, *accepted("ops@example.org", "qa@example.org"))
        )
        self.assertEqual(
            lines,
            ["forwarded ID1 to ops@example.org, qa@example.org via relay.example:587"],
        )
        self.assertEqual(self.counters, DeliveryCounters(sent=1))
        self.assertEqual(self.forwarder.pending, 0)

    def test_temporary_failure_retried_with_backoff(self) -> None:
        """
        A connection failure is tried again after the first delay, then
        after twice that (capped at the maximum); only recipients refused
        for now are tried again; each retry is logged and counted.
        """
        self.forwarder.feed(RAW, "app@example.org", label="ID1")
        lines = self.logged(
            lambda: self.relay.calls[0][3].errback(ConnectionFailed("relay down"))
        )
        self.assertEqual(
            lines,
            [
                "forwarding ID1 to ops@example.org, qa@example.org via "
                "relay.example:587 failed for now: relay down; attempt 2 of 3 in 10 s"
            ],
        )
        self.clock.advance(9.9)
        self.assertEqual(len(self.relay.calls), 1)
        self.clock.advance(0.1)
        self.assertEqual(len(self.relay.calls), 2)
        self.relay.answer(1, ("ops@example.org", 250), ("qa@example.org", 451))
        self.assertEqual(self.counters.retried, 2)
        self.clock.advance(14.9)
        self.assertEqual(len(self.relay.calls), 2, "the delay doubles up to 15 s")
        self.clock.advance(0.1)
        self.assertEqual(self.relay.calls[2][1], ("qa@example.org",))
        self.relay.answer(2, *accepted("qa@example.org"))
        self.assertEqual(self.counters, DeliveryCounters(sent=1, retried=2))

    def test_attempts_run_out(self) -> None:
        """
        After the last attempt a temporary failure is final: the message
        counts as failed, logged once with the reason and the tally.
        """
        self.forwarder.feed(RAW, "app@example.org", label="ID1")
        self.relay.answer(0, ("ops@example.org", 250), ("qa@example.org", 451))
        self.clock.advance(10)
        self.relay.answer(1, ("qa@example.org", 451))
        self.clock.advance(15)
        lines = self.logged(lambda: self.relay.answer(2, ("qa@example.org", 451)))
        self.assertEqual(
            lines,
            [
                "forwarding ID1 to qa@example.org via relay.example:587 failed after "
                "3 attempts: 451 text (delivered to ops@example.org)"
            ],
        )
        self.assertEqual(self.counters, DeliveryCounters(failed=1, retried=2))
        self.assertEqual(self.forwarder.pending, 0)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_permanent_failures_not_retried(self) -> None:
        """
        A 5xx refusal, a TLS failure and a refused login are final at once.
        """
        for index, outcome in enumerate(
            [
                TLSFailed("bad certificate"),
                AuthenticationFailed("login refused"),
                ServerRefused("sender refused"),
            ]
        ):
            self.forwarder.feed(RAW, "app@example.org")
            self.relay.calls[-1][3].errback(outcome)
            self.assertEqual(self.counters.failed, index + 1)
        self.forwarder.feed(RAW, "app@example.org")
        self.relay.answer(3, ("ops@example.org", 550), ("qa@example.org", 250))
        self.assertEqual(self.counters, DeliveryCounters(failed=4))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_concurrency_and_bound(self) -> None:
        """
        At most C{concurrency} sends run at once, the rest wait in order;
        past C{max_pending} a message is dropped with a counted log line.
        """
        forwarder = Forwarder(
            self.relay,
            self.clock,
            addresses=("ops@example.org",),
            counters=self.counters,
            concurrency=2,
            max_pending=3,
        )
        for n in range(3):
            forwarder.feed(RAW, f"s{n}@example.org")
        self.assertEqual(
            [c[2] for c in self.relay.calls], ["s0@example.org", "s1@example.org"]
        )
        lines = self.logged(lambda: forwarder.feed(RAW, "s3@example.org", label="ID4"))
        self.assertEqual(lines, ["not forwarding ID4: 3 messages are waiting already"])
        self.assertEqual(self.counters.dropped, 1)
        self.relay.answer(0, *accepted("ops@example.org"))
        self.assertEqual(self.relay.calls[2][2], "s2@example.org")

    def test_sender_and_label_from_headers(self) -> None:
        """
        An empty envelope sender (a bounce) is replaced by the message's
        From address; the log names the message by its Message-ID.
        """
        self.forwarder.feed(RAW, "")
        self.assertEqual(self.relay.calls[0][2], "app@example.org")
        lines = self.logged(
            lambda: self.relay.answer(0, *accepted("ops@example.org", "qa@example.org"))
        )
        self.assertIn("forwarded <1@example.org> to", lines[0])
        lines = self.logged(lambda: self.forwarder.feed(b"Subject: x\r\n\r\n", ""))
        self.assertEqual(
            lines, ["not forwarding a message of 14 bytes: it has no sender address"]
        )

    def test_feed_never_raises(self) -> None:
        """
        Whatever goes wrong inside, C{feed} logs and counts it: the SMTP
        delivery that called it is never disturbed.
        """

        class Broken(FakeRelay):
            def send(self, *args: Any) -> Deferred[SendResult]:
                raise RuntimeError("bug")

        forwarder = Forwarder(
            Broken(), self.clock, addresses=("ops@example.org",), counters=self.counters
        )
        with capturedLogs() as events:
            forwarder.feed(RAW, "app@example.org")
        self.assertEqual(self.counters.failed, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertTrue(any("log_failure" in e for e in events))

    def test_stop(self) -> None:
        """
        C{stop} cancels the sends in progress and the retries, counts what
        was pending as dropped, and takes no more; C{when_idle} fires.
        """
        self.forwarder.feed(RAW, "a@example.org")
        self.forwarder.feed(RAW, "b@example.org")
        self.relay.calls[1][3].errback(ConnectionFailed("down"))
        idle = self.forwarder.when_idle()
        self.assertNoResult(idle)
        lines = self.logged(self.forwarder.stop)
        self.assertEqual(lines, ["forwarding stopped: 2 messages not forwarded"])
        self.successResultOf(idle)
        self.assertEqual(self.relay.cancelled, [self.relay.calls[0][3]])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.forwarder.feed(RAW, "c@example.org")
        self.assertEqual(len(self.relay.calls), 2)
        self.assertEqual(self.counters, DeliveryCounters(retried=1, dropped=3))

    def test_needs_addresses(self) -> None:
        """
        A forwarder without addresses is a usage problem.
        """
        self.assertRaises(UsageProblem, Forwarder, self.relay, self.clock, addresses=())
