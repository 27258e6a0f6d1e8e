"""
Tests for C{netlab send} (L{twisted_netlab.cli.send}): options, what is
handed to L{send_message}, what is printed, and the command end to end in a
subprocess for its error paths.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.cli import send as send_cli
from twisted_netlab.errors import ServerRefused, UsageProblem
from twisted_netlab.mail.compose import compose
from twisted_netlab.mail.send import RecipientOutcome, SendResult, message_bytes

BASE = ["--server", "mail.example", "--from", "a@example.org", "--to", "b@example.org"]
BASE += ["--subject", "Hello"]
FIXED = ["--header", "Date: Tue, 01 Jan 2030 00:00:00 +0000"]
FIXED += ["--header", "Message-ID: <fixed@example.org>"]


def parse(*args: str) -> send_cli.Options:
    options = send_cli.Options()
    options.parseOptions(list(args))
    return options


class OptionsTestCase(SynchronousTestCase):
    def test_default_ports(self) -> None:
        """
        STARTTLS on 587 by default; implicit TLS on 465, and on port 465 by
        default; no TLS on 25; a given port is kept.
        """
        cases = [
            ([], "starttls", 587),
            (["--tls", "implicit"], "implicit", 465),
            (["--tls", "none"], "none", 25),
            (["--server", "mail.example:465"], "implicit", 465),
            (["--server", "mail.example:2525"], "starttls", 2525),
            (["--server", "[::1]:2525", "--tls", "none"], "none", 2525),
        ]
        for extra, tls, port in cases:
            options = parse(*BASE, *extra)
            self.assertEqual((options["tls"], options["port"]), (tls, port), extra)

    def test_required(self) -> None:
        """
        --server, --from, --to and --subject are required.
        """
        for name in ["--server", "--from", "--to", "--subject"]:
            index = BASE.index(name)
            args = BASE[:index] + BASE[index + 2 :]
            with self.assertRaises(usage.UsageError) as caught:
                parse(*args)
            self.assertIn(name, str(caught.exception))

    def test_repeatable(self) -> None:
        """
        --to, --cc, --bcc, --attach and --header may be repeated.
        """
        options = parse(
            *BASE,
            *[
                "--to",
                "c@example.org",
                "--cc",
                "d@example.org",
                "--cc",
                "e@example.org",
            ],
            *["--bcc", "f@example.org", "--attach", "x", "--attach", "y"],
            *["--header", "X-A: 1", "--header", "X-B:two: parts"],
        )
        self.assertEqual(options["to"], ["b@example.org", "c@example.org"])
        self.assertEqual(options["cc"], ["d@example.org", "e@example.org"])
        self.assertEqual(options["bcc"], ["f@example.org"])
        self.assertEqual(options["attach"], ["x", "y"])
        self.assertEqual(options["header"], [("X-A", "1"), ("X-B", "two: parts")])

    def test_bad_combinations(self) -> None:
        """
        Contradictory or malformed options are usage errors: body twice, a
        header without a colon, a password in the clear without
        --insecure-plaintext-auth.
        """
        for extra in [
            ["--body", "x", "--body-file", "f"],
            ["--header", "NoColon"],
            ["--header", ": value"],
            ["--tls", "none", "--user", "alice"],
        ]:
            self.assertRaises(usage.UsageError, parse, *BASE, *extra)
        options = parse(
            *BASE, "--tls", "none", "--user", "alice", "--insecure-plaintext-auth"
        )
        self.assertTrue(options["insecure-plaintext-auth"])


class RunTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.stdout = io.TextIOWrapper(io.BytesIO(), encoding="utf-8")
        self.stderr = io.StringIO()
        self.patch(sys, "stdout", self.stdout)
        self.patch(sys, "stderr", self.stderr)
        self.calls: list[dict[str, Any]] = []
        self.result = SendResult(
            (
                RecipientOutcome("b@example.org", True, 250, "OK"),
                RecipientOutcome("c@example.org", True, 250, "OK"),
            ),
            "250 queued",
        )
        self.patch(send_cli, "send_message", self.fake_send)
        self.directory = Path(tempfile.mkdtemp())
        self.addCleanup(shutil.rmtree, self.directory)

    def fake_send(
        self, reactor: Any, message: Any, **kwargs: Any
    ) -> Deferred[SendResult]:
        self.calls.append({"message": message, **kwargs})
        if kwargs.get("transcript"):
            kwargs["transcript"]("C: QUIT")
        return succeed(self.result)

    def run_command(self, *args: str) -> Deferred[int]:
        return Deferred.fromCoroutine(send_cli.run(MemoryReactorClock(), parse(*args)))

    def output(self) -> bytes:
        self.stdout.flush()
        buffer = self.stdout.buffer
        assert isinstance(buffer, io.BytesIO)
        return buffer.getvalue()

    def test_dry_run(self) -> None:
        """
        --dry-run prints exactly the bytes that would be sent (Bcc absent),
        asks for no password and connects nowhere.
        """
        attachment = self.directory / "data.bin"
        attachment.write_bytes(bytes(range(256)))
        args = [*BASE, *FIXED, "--bcc", "hidden@example.org", "--body", "Grüße"]
        args += ["--attach", str(attachment), "--user", "alice", "--dry-run"]
        self.patch(send_cli, "read_password", lambda options: self.fail("prompted"))
        self.assertEqual(self.successResultOf(self.run_command(*args)), 0)
        expected = message_bytes(compose(send_cli.draft_from(parse(*args))))
        self.assertEqual(self.output(), expected)
        self.assertNotIn(b"hidden", expected)
        self.assertEqual(self.calls, [])

    def test_send_arguments(self) -> None:
        """
        The message, envelope (Bcc included), server, TLS and login settings
        reach send_message; the password comes from read_password.
        """
        self.patch(os, "environ", {"PW": "s3cret"})
        args = [*BASE, "--cc", "C <c@example.org>", "--bcc", "d@example.org"]
        args += ["--from", "Me <me@example.org>", "--user", "alice"]
        args += ["--password-env", "PW", "--insecure-skip-verify", "--timeout", "5"]
        self.assertEqual(self.successResultOf(self.run_command(*args)), 0)
        [call] = self.calls
        self.assertNotIn("Bcc", call["message"])
        self.assertEqual(
            {k: v for k, v in call.items() if k not in ("message", "transcript")},
            {
                "host": "mail.example",
                "port": 587,
                "tls": "starttls",
                "username": "alice",
                "password": "s3cret",
                "sender": "me@example.org",
                "recipients": ["b@example.org", "c@example.org", "d@example.org"],
                "cafile": None,
                "verify": False,
                "timeout": 5.0,
                "allow_plaintext_auth": False,
            },
        )
        self.assertIsNone(call["transcript"])

    def test_verbose(self) -> None:
        """
        -v sends the transcript to standard error.
        """
        self.successResultOf(self.run_command(*BASE, "-v"))
        self.assertEqual(self.stderr.getvalue(), "C: QUIT\n")

    def test_all_accepted(self) -> None:
        """
        One line per recipient; exit status 0 when all accepted.
        """
        self.assertEqual(self.successResultOf(self.run_command(*BASE)), 0)
        self.assertEqual(
            self.output().decode(), "accepted b@example.org\naccepted c@example.org\n"
        )

    def test_some_refused(self) -> None:
        """
        Some recipients refused: every line printed, then L{ServerRefused}
        saying how many.
        """
        self.result = SendResult(
            (
                RecipientOutcome("b@example.org", True, 250, "OK"),
                RecipientOutcome("c@example.org", False, 550, "5.1.1 no such user"),
            ),
            "250 queued",
        )
        failure = self.failureResultOf(self.run_command(*BASE), ServerRefused)
        self.assertEqual(str(failure.value), "1 of 2 recipients refused")
        self.assertEqual(
            self.output().decode(),
            "accepted b@example.org\nrefused  c@example.org: 550 5.1.1 no such user\n",
        )

    def test_all_refused(self) -> None:
        """
        All recipients refused is told apart from some refused.
        """
        self.result = SendResult((RecipientOutcome("b@example.org", False, 550, "no"),))
        failure = self.failureResultOf(self.run_command(*BASE), ServerRefused)
        self.assertEqual(
            str(failure.value), "all 1 recipients refused; nothing was delivered"
        )

    def test_body_sources(self) -> None:
        """
        The body comes from --body, --body-file or standard input (-); the
        HTML alternative from --html-file.
        """
        body = self.directory / "body.txt"
        body.write_text("from a file ✓\n", encoding="utf-8")
        html = self.directory / "body.html"
        html.write_text("<p>✓</p>", encoding="utf-8")
        draft = send_cli.draft_from(
            parse(*BASE, "--body-file", str(body), "--html-file", str(html))
        )
        self.assertEqual((draft.text, draft.html), ("from a file ✓\n", "<p>✓</p>"))
        self.patch(sys, "stdin", io.TextIOWrapper(io.BytesIO("stdin ✓\n".encode())))
        self.assertEqual(
            send_cli.draft_from(parse(*BASE, "--body-file", "-")).text, "stdin ✓\n"
        )
        self.assertEqual(
            send_cli.draft_from(parse(*BASE, "--body", "inline")).text, "inline"
        )

    def test_unreadable_inputs(self) -> None:
        """
        A missing or non-UTF-8 body or HTML file, or a missing attachment, is
        L{UsageProblem} naming the file; nothing is sent.
        """
        latin1 = self.directory / "latin1.txt"
        latin1.write_bytes("Grüße".encode("latin-1"))
        missing = str(self.directory / "missing")
        for extra in [
            ["--body-file", missing],
            ["--body-file", str(latin1)],
            ["--html-file", missing],
            ["--attach", missing],
        ]:
            failure = self.failureResultOf(
                self.run_command(*BASE, *extra), UsageProblem
            )
            self.assertIn(extra[1], str(failure.value))
        self.assertEqual(self.calls, [])

    def test_bad_address(self) -> None:
        """
        A malformed address is L{UsageProblem}.
        """
        failure = self.failureResultOf(
            self.run_command(*BASE, "--cc", "not an address"), UsageProblem
        )
        self.assertEqual(str(failure.value), "not an email address: 'not an address'")


def netlab(args: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """
    Run C{python -m twisted_netlab send ARGS}.
    """
    return subprocess.run(
        [sys.executable, "-m", "twisted_netlab", "send", *args],
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


class CommandTestCase(SynchronousTestCase):
    """
    The command in a subprocess: one line on standard error, no traceback,
    the documented exit status.
    """

    def assertOneLineError(
        self, process: subprocess.CompletedProcess[str], code: int, text: str
    ) -> None:
        self.assertEqual(process.returncode, code, process.stderr)
        self.assertNotIn("Traceback", process.stderr)
        self.assertEqual(process.stderr.count("\n"), 1, process.stderr)
        self.assertIn(text, process.stderr)

    def test_connection_refused(self) -> None:
        """
        A refused connection exits 3.
        """
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))  # bound, not listening: refused
            port = closed.getsockname()[1]
            process = netlab(["--server", f"127.0.0.1:{port}", *BASE[2:]])
        self.assertOneLineError(
            process, 3, f"netlab send: 127.0.0.1:{port} refused the connection"
        )

    def test_unknown_host(self) -> None:
        """
        A host name that does not resolve exits 3.
        """
        process = netlab([*BASE, "--server", "nowhere.invalid"])
        self.assertOneLineError(
            process, 3, "netlab send: cannot find the host nowhere.invalid"
        )

    def test_unreadable_attachment(self) -> None:
        """
        An attachment that cannot be read exits 2 before connecting.
        """
        process = netlab([*BASE, "--attach", "/nonexistent/file.pdf"])
        self.assertOneLineError(
            process,
            2,
            "netlab send: cannot read attachment /nonexistent/file.pdf: "
            "No such file or directory",
        )

    def test_usage_error(self) -> None:
        """
        A missing option exits 2 with a pointer to --help.
        """
        process = netlab(BASE[:-2])
        self.assertEqual(process.returncode, 2)
        self.assertEqual(
            process.stderr,
            "netlab send: --subject is required\nTry 'netlab send --help'.\n",
        )

    def test_no_terminal_for_password(self) -> None:
        """
        With --user and no password source nor terminal to prompt on, the
        command exits 2 telling where else the password can come from.
        """
        with socket.socket() as closed:
            closed.bind(("127.0.0.1", 0))
            port = closed.getsockname()[1]
            process = netlab(
                [*BASE, "--server", f"127.0.0.1:{port}", "--user", "alice"],
                start_new_session=True,  # no controlling terminal
                stdin=subprocess.DEVNULL,
            )
        self.assertOneLineError(process, 2, "no terminal to prompt for the password on")

    def test_dry_run(self) -> None:
        """
        --dry-run prints the message and exits 0.
        """
        process = netlab([*BASE, *FIXED, "--bcc", "hidden@example.org", "--dry-run"])
        self.assertEqual(process.returncode, 0, process.stderr)
        self.assertIn("Message-ID: <fixed@example.org>", process.stdout)
        self.assertNotIn("hidden", process.stdout)
