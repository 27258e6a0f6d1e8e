"""
Tests for C{netlab fetch} (L{twisted_netlab.cli.fetch}): options, what is
printed, and how C{run} drives a session (a fake one here; the command runs
against Dovecot in tests/interop/test_fetch_dovecot.py).
"""

from __future__ import annotations

import io
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.testing import MemoryReactorClock
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from tests.scratch import fresh_path
from twisted_netlab.cli import fetch as fetch_cli
from twisted_netlab.errors import ServerRefused
from twisted_netlab.mail import fetch as imap_api
from twisted_netlab.mail import store as store_api
from twisted_netlab.mail.fetch import (
    Mailbox,
    MessageSummary,
    SearchQuery,
    SelectedMailbox,
)
from twisted_netlab.mail.store import SaveReport, SaveTarget

BASE = ["--server", "imap.example", "--user", "alice", "--password-env", "PW"]


def parse(*args: str) -> fetch_cli.Options:
    options = fetch_cli.Options()
    options.parseOptions(list(args))
    return options


def summary(uid: int, **kw: Any) -> MessageSummary:
    values: dict[str, Any] = {
        "uid": uid,
        "flags": ("\\Seen",),
        "size": 1234,
        "sender": "Jörg <j@example.org>",
        "recipients": "alice@example.org",
        "subject": f"Message {uid}",
        "date": datetime(2024, 5, 1, 9, 30, tzinfo=UTC),
    }
    values.update(kw)
    return MessageSummary(**values)


#: Runs the netlab command, then prints the modules it imported.
COUNT_MODULES = (
    "import atexit, json, sys\n"
    "atexit.register(lambda: sys.__stderr__.write("
    "'MODULES ' + json.dumps(sorted(sys.modules)) + '\\n'))\n"
    "from twisted_netlab.cli import main\n"
    "main(sys.argv[1:])\n"
)


def imported_by(*args: str) -> set[str]:
    """
    The modules the C{netlab ARGS} command imports, in a process of its
    own.
    """
    import subprocess

    result = subprocess.run(
        [sys.executable, "-c", COUNT_MODULES, *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PW": "secret"},
    )
    for line in result.stderr.splitlines():
        if line.startswith("MODULES "):
            return set(json.loads(line.removeprefix("MODULES ")))
    raise AssertionError(f"no module list from netlab {args}: {result.stderr}")


#: What reading mail never needs: the SMTP client, the mail lab, the web.
NEVER_FOR_FETCH = {
    "twisted.mail.smtp",
    "twisted.web",
    "twisted_netlab.mail.lab",
    "twisted_netlab.mail.send",
    "twisted_netlab.mail.smtpclient",
    "twisted_netlab.mail.compose",
}


class ImportTests(SynchronousTestCase):
    def test_help_is_light(self) -> None:
        """
        C{netlab fetch --help} (and a usage error) imports neither the
        reactor nor Deferreds, TLS, the IMAP client or the store: only the
        options.
        """
        for args in (["fetch", "--help"], ["fetch", "--limit", "x"]):
            modules = imported_by(*args)
            self.assertIn("twisted_netlab.cli.fetch", modules, args)
            heavy = {
                "twisted.internet.reactor",
                "twisted.internet.defer",
                "twisted.internet.endpoints",
                "OpenSSL",
                "twisted.mail.imap4",
                "twisted_netlab.mail.fetch",
                "twisted_netlab.mail.store",
                *NEVER_FOR_FETCH,
            }
            self.assertEqual(heavy & modules, set(), args)

    def test_fetch_imports(self) -> None:
        """
        A fetch that saves to a Maildir (here one that fails to connect, so
        as to need no server: the whole command up to the connection) loads
        the IMAP client, TLS and the store, and never the SMTP side, the
        lab, the web, the C{mailbox} module or the email package's policies
        (summaries only).
        """
        target = fresh_path(self)
        modules = imported_by(
            "fetch", *BASE[:1], "127.0.0.1:1", *BASE[2:],
            "--save", f"maildir:{target}", "--timeout", "5",
        )  # fmt: skip
        for needed in (
            "twisted.internet.reactor",
            "OpenSSL",
            "twisted_netlab.mail.fetch",
            "twisted_netlab.mail.store",
        ):
            self.assertIn(needed, modules)
        unwanted = {*NEVER_FOR_FETCH, "mailbox", "email.policy"}
        self.assertEqual(unwanted & modules, set())

    def test_default_ports(self) -> None:
        """
        The command's default ports (kept apart so that --help needs no IMAP
        client) are the client's.
        """
        self.assertEqual(fetch_cli.DEFAULT_PORTS, imap_api.DEFAULT_PORTS)


class OptionsTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """
        Implicit TLS on 993 by default, and on port 993; STARTTLS and no TLS
        on 143; INBOX; no search means ALL.
        """
        cases = [
            ([], "implicit", 993),
            (["--tls", "starttls"], "starttls", 143),
            (["--tls", "none", "--insecure-plaintext-auth"], "none", 143),
            (["--server", "imap.example:993"], "implicit", 993),
            (["--server", "imap.example:1143"], "implicit", 1143),
            (["--server", "imap.example:1143", "--tls", "starttls"], "starttls", 1143),
        ]
        for extra, tls, port in cases:
            options = parse(*BASE, *extra)
            self.assertEqual((options["tls"], options["port"]), (tls, port), extra)
        options = parse(*BASE)
        self.assertEqual(options["mailbox"], "INBOX")
        self.assertEqual(options["query"].args, (b"ALL",))
        self.assertIsNone(options["target"])

    def test_parsed_values(self) -> None:
        """
        --search (repeatable), --limit and --save are parsed and checked.
        """
        options = parse(
            *BASE, "--search", "UNSEEN", "--search", "FROM 'Jane Doe'",
            "--limit", "5", "--save", "mbox:/tmp/x", "--new-only",
        )  # fmt: skip
        self.assertEqual(
            options["query"], SearchQuery.parse(["UNSEEN", "FROM 'Jane Doe'"])
        )
        self.assertEqual(options["limit"], 5)
        self.assertEqual(options["target"], SaveTarget("mbox", Path("/tmp/x")))

    def test_usage_errors(self) -> None:
        """
        Missing or contradictory options and bad values are usage errors
        with a message saying what is wrong; none needs the network.
        """
        cases = [
            (["--server", "imap.example"], "--user is required"),
            (["--user", "alice"], "--server is required"),
            ([*BASE, "--list", "--save", "eml:x"], "--list cannot go with --save"),
            ([*BASE, "--list", "--search", "ALL"], "--list cannot go with --search"),
            ([*BASE, "--limit", "0"], "--limit must be a whole number above 0"),
            ([*BASE, "--limit", "x"], "--limit must be a whole number above 0"),
            ([*BASE, "--new-only"], "--new-only needs --save"),
            ([*BASE, "--save", "mh:x"], "expected maildir:DIR, mbox:FILE or eml:DIR"),
            ([*BASE, "--search", "SINCE soon"], "SINCE needs a date"),
            ([*BASE, "--tls", "none"], "--insecure-plaintext-auth"),
        ]
        for args, message in cases:
            error = self.assertRaises(usage.UsageError, parse, *args)
            self.assertIn(message, str(error), args)

    def test_no_password_option(self) -> None:
        """
        There is no option that takes the password itself.
        """
        self.assertRaises(usage.UsageError, parse, *BASE, "--password", "secret")


class OutputTests(SynchronousTestCase):
    def test_mailbox_lines(self) -> None:
        """
        --list prints mailboxes as LIST lines, as imaplib shows them:
        flags, quoted delimiter (NIL when none), name quoted when needed.
        """
        self.assertEqual(
            fetch_cli.format_mailbox(Mailbox("INBOX", ".", ("\\HasNoChildren",))),
            '(\\HasNoChildren) "." INBOX',
        )
        self.assertEqual(
            fetch_cli.format_mailbox(Mailbox('Sent "old"', None, ())),
            '() NIL "Sent \\"old\\""',
        )
        self.assertEqual(
            fetch_cli.format_mailbox(Mailbox("Entwürfe", "/", ())), '() "/" Entwürfe'
        )

    def test_table(self) -> None:
        """
        Summaries print as an aligned table with flags as Maildir letters;
        a long sender is cut, a missing date shown as '-'.
        """
        rows = fetch_cli.summary_table(
            [
                summary(9, flags=("\\Seen", "\\Flagged")),
                summary(10, flags=(), date=None, sender="x" * 40, size=5),
            ]
        )
        self.assertEqual(
            rows,
            [
                "UID  FLAGS  DATE              FROM                            SIZE  SUBJECT",  # noqa: E501
                "  9  FS     2024-05-01 09:30  Jörg <j@example.org>            1234  Message 9",  # noqa: E501
                " 10  -      -                 " + "x" * 29 + "…     5  Message 10",
            ],
        )  # fmt: skip

    def test_json(self) -> None:
        """
        --json prints one object per message with every field.
        """
        self.assertEqual(
            json.loads(fetch_cli.summary_json(summary(3))),
            {
                "uid": 3,
                "flags": ["\\Seen"],
                "size": 1234,
                "date": "2024-05-01T09:30:00+00:00",
                "from": "Jörg <j@example.org>",
                "to": "alice@example.org",
                "subject": "Message 3",
            },
        )

    def test_report_line(self) -> None:
        """
        A --save run ends with one line saying what was saved.
        """
        report = SaveReport("INBOX", "maildir:/m", 5, 2, 7, 9, True)
        self.assertEqual(
            fetch_cli.report_line(report, True),
            "saved 5 messages from INBOX to maildir:/m, skipped 2 already there "
            "(UIDVALIDITY changed: started over)",
        )
        nothing = SaveReport("INBOX", "maildir:/m", 0, 0, 7, 9, False)
        self.assertEqual(
            fetch_cli.report_line(nothing, True), "no new messages in INBOX"
        )
        self.assertEqual(fetch_cli.report_line(nothing, False), "no messages in INBOX")
        one = SaveReport("INBOX", "maildir:/m", 1, 0, 7, 9, False)
        self.assertEqual(
            fetch_cli.report_line(one, True), "saved 1 message from INBOX to maildir:/m"
        )


class FakeTTY(io.StringIO):
    def isatty(self) -> bool:
        return True


class ProgressTests(SynchronousTestCase):
    def test_terminal(self) -> None:
        """
        On a terminal, a large fetch shows one updated progress line.
        """
        stream = FakeTTY()
        progress = fetch_cli.ProgressLine(stream, threshold=2)
        progress(0, 4, 0, 4_000_000)
        progress(4, 4, 4_000_000, 4_000_000)
        self.assertEqual(
            stream.getvalue(),
            "\rnetlab fetch: 0/4 messages, 0.0/4.0 MB"
            "\rnetlab fetch: 4/4 messages, 4.0/4.0 MB\n",
        )

    def test_not_on_pipes_or_small_fetches(self) -> None:
        """
        Piped output, or a small fetch, shows no progress.
        """
        piped = io.StringIO()
        fetch_cli.ProgressLine(piped, threshold=2)(1, 4, 1, 4)
        small = FakeTTY()
        fetch_cli.ProgressLine(small, threshold=10)(1, 4, 1, 4)
        self.assertEqual((piped.getvalue(), small.getvalue()), ("", ""))


class FakeSession:
    host = "imap.example"

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.selected: SelectedMailbox | None = None
        self.closed = False

    async def login(self, user: str, password: str, *, allow_plaintext: bool) -> None:
        self.calls.append(("login", user, password, allow_plaintext))

    async def list_mailboxes(self) -> list[Mailbox]:
        self.calls.append(("list",))
        return [Mailbox("INBOX", ".", ("\\HasNoChildren",)), Mailbox("A b", ".", ())]

    async def select(self, mailbox: str, *, read_only: bool) -> SelectedMailbox:
        self.calls.append(("select", mailbox, read_only))
        if mailbox == "Nope":
            raise ServerRefused("cannot open mailbox 'Nope': no such mailbox")
        self.selected = SelectedMailbox(mailbox, 3, 7, 4, read_only)
        return self.selected

    async def search(self, query: SearchQuery) -> list[int]:
        self.calls.append(("search", query.text))
        return [1, 2, 3]

    async def fetch_summaries(self, uids: list[int]) -> list[MessageSummary]:
        self.calls.append(("summaries", uids))
        return [summary(uid) for uid in uids]

    async def mark_seen(self, uids: list[int]) -> None:
        self.calls.append(("seen", uids))

    async def logout(self) -> None:
        self.calls.append(("logout",))

    def close(self) -> None:
        self.closed = True


class RunTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()
        self.patch(sys, "stdout", self.stdout)
        self.patch(sys, "stderr", self.stderr)
        self.patch(
            os, "environ", {"PW": "secret", "XDG_STATE_HOME": str(fresh_path(self))}
        )
        self.session = FakeSession()
        self.connects: list[dict[str, Any]] = []

        async def connect(reactor: Any, host: str, port: int, **kw: Any) -> FakeSession:
            self.connects.append({"host": host, "port": port, **kw})
            return self.session

        self.patch(imap_api, "connect", connect)

    def run_(self, *args: str) -> Deferred[int]:
        return Deferred.fromCoroutine(
            fetch_cli.run(MemoryReactorClock(), parse(*BASE, *args))
        )

    def test_list(self) -> None:
        """
        --list logs in, lists and logs out; the connection is made as the
        options say, verified TLS by default.
        """
        self.assertEqual(self.successResultOf(self.run_("--list")), 0)
        self.assertEqual(
            self.stdout.getvalue(), '(\\HasNoChildren) "." INBOX\n() "." "A b"\n'
        )
        self.assertEqual(
            self.session.calls,
            [("login", "alice", "secret", False), ("list",), ("logout",)],
        )
        self.assertEqual(
            self.connects,
            [
                {
                    "host": "imap.example",
                    "port": 993,
                    "tls": "implicit",
                    "cafile": None,
                    "verify": True,
                    "timeout": 30.0,
                    "trace": None,
                }
            ],
        )
        self.assertTrue(self.session.closed)

    def test_list_json(self) -> None:
        """
        --list --json prints one JSON object per mailbox.
        """
        self.successResultOf(self.run_("--list", "--json"))
        first = json.loads(self.stdout.getvalue().splitlines()[0])
        self.assertEqual(
            first, {"name": "INBOX", "delimiter": ".", "flags": ["\\HasNoChildren"]}
        )

    def test_summaries(self) -> None:
        """
        By default the mailbox is examined read-only and the newest --limit
        matching messages are summarised in a table.
        """
        self.successResultOf(
            self.run_("--mailbox", "Archive", "--search", "UNSEEN", "--limit", "2")
        )
        self.assertEqual(
            self.session.calls[1:],
            [
                ("select", "Archive", True),
                ("search", "UNSEEN"),
                ("summaries", [2, 3]),
                ("logout",),
            ],
        )
        lines = self.stdout.getvalue().splitlines()
        self.assertEqual(len(lines), 3)
        self.assertTrue(lines[0].startswith("UID  FLAGS  DATE"))

    def test_mark_seen(self) -> None:
        """
        --mark-seen opens the mailbox read-write and marks what was shown.
        """
        self.successResultOf(self.run_("--mark-seen", "--json"))
        self.assertIn(("select", "INBOX", False), self.session.calls)
        self.assertIn(("seen", [1, 2, 3]), self.session.calls)
        self.assertEqual(len(self.stdout.getvalue().splitlines()), 3)

    def test_save(self) -> None:
        """
        --save --new-only hands the store and this account's state to
        save_messages, and prints its report.
        """
        seen: dict[str, Any] = {}

        async def save_messages(
            reactor: Any, session: Any, store: Any, **kw: Any
        ) -> SaveReport:
            seen.update(kw, store=store)
            return SaveReport("INBOX", str(store.target), 3, 0, 7, 3, False)

        self.patch(store_api, "save_messages", save_messages)
        target = str(fresh_path(self))
        self.successResultOf(self.run_("--save", f"maildir:{target}", "--new-only"))
        self.assertEqual(
            self.stdout.getvalue(), f"saved 3 messages from INBOX to maildir:{target}\n"
        )
        self.assertEqual(seen["state"].account, "alice@imap.example")
        self.assertEqual(seen["state"].mailbox, "INBOX")
        self.assertEqual(seen["store"].target, SaveTarget("maildir", Path(target)))
        self.assertFalse(seen["mark_seen"])
        self.assertIsNone(seen["state"]._lock)  # released at the end

    def test_no_such_mailbox(self) -> None:
        """
        A refused mailbox ends the command with that error; the connection is
        closed and the state released.
        """
        d = self.run_(
            "--mailbox", "Nope", "--save", f"eml:{fresh_path(self)!s}", "--new-only"
        )
        error = self.failureResultOf(d, ServerRefused).value
        self.assertEqual(error.exit_code, 6)
        self.assertTrue(self.session.closed)

    def test_verbose(self) -> None:
        """
        -v hands a trace writer to the session, which prints to stderr.
        """
        self.successResultOf(self.run_("--list", "-v"))
        trace = self.connects[0]["trace"]
        trace("C: 0001 LIST")
        self.assertEqual(self.stderr.getvalue(), "C: 0001 LIST\n")
