"""
C{netlab fetch}: read mail from an IMAP server.

Lists mailboxes (C{--list}), prints summaries of the messages in one
(a table, or JSON lines), or saves them whole (C{--save}), optionally only
those not saved before (C{--new-only}).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from typing import TYPE_CHECKING, Any, TextIO

from twisted.python import usage

from twisted_netlab.cli.connection import ServerConnectionOptions, read_password
from twisted_netlab.errors import EXIT_OK, UsageProblem

if TYPE_CHECKING:
    from twisted_netlab.mail.fetch import Mailbox, MessageSummary
    from twisted_netlab.mail.store import FetchState, MessageStore, SaveReport

# The IMAP client, TLS and the store are imported when a fetch runs, not
# for --help or a usage error (python -X importtime: about half of the
# start-up; tests/cli/test_fetch.py pins what each imports).

#: The default port for each --tls mode (L{twisted_netlab.mail.fetch}'s
#: C{DEFAULT_PORTS}, which a test holds this to).
DEFAULT_PORTS = {"implicit": 993, "starttls": 143, "none": 143}

#: Fetches of at least this many messages show progress on a terminal.
PROGRESS_THRESHOLD = 200


class Options(ServerConnectionOptions):
    synopsis = (
        "--server HOST[:PORT] --user NAME [--password-env VAR | --password-file "
        "FILE] [--tls implicit|starttls|none] [--cafile PEM] "
        "[--insecure-skip-verify] [--insecure-plaintext-auth] [--mailbox INBOX] "
        "[--list] [--search CRITERIA]... [--limit N] "
        "[--save maildir:DIR | mbox:FILE | eml:DIR] [--new-only] [--mark-seen] "
        "[--json] [--timeout S] [-v]"
    )
    longdesc = (
        "Read mail from an IMAP server. TLS is implicit by default (port 993); "
        "--tls starttls uses port 143 and requires STARTTLS; the server's "
        "certificate and name are verified. --tls none (port 143) is plaintext "
        "and needs --insecure-plaintext-auth to log in. "
        "By default prints a summary of each "
        "message in the mailbox; --list lists mailboxes; --save writes whole "
        "messages. Mailboxes are opened read-only unless --mark-seen is given. "
        "Search keys (--search, repeatable, all must match): ALL, SEEN, UNSEEN, "
        "FLAGGED, ANSWERED, NEW, SINCE/BEFORE/ON DATE (2024-05-31), "
        "FROM/TO/CC/SUBJECT/BODY/TEXT STRING, NOT KEY, OR KEY KEY, ( ... ). "
        "Exit status: 0 done, 2 usage, 3 connection, 4 TLS, 5 login, "
        "6 refused by the server (no such mailbox, bad search), 7 local write."
    )
    defaultTLS = "implicit"
    defaultPorts = DEFAULT_PORTS
    implicitTLSPort = 993

    optParameters = [
        *ServerConnectionOptions.optParameters,
        ["mailbox", "m", "INBOX", "The mailbox to read."],
        ["limit", None, None, "At most this many messages (the newest ones; "
         "with --new-only the oldest new ones)."],
        ["save", None, None, "Save whole messages: maildir:DIR, mbox:FILE or eml:DIR."],
    ]  # fmt: skip
    optFlags = [
        *ServerConnectionOptions.optFlags,
        ["list", None, "List the mailboxes."],
        ["new-only", None, "With --save: only messages not saved by an earlier run."],
        ["mark-seen", None, "Mark the messages fetched as seen (\\Seen)."],
        ["json", None, "Print one JSON object per line."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["search"] = []

    def opt_search(self, criteria: str) -> None:
        """
        Criteria, e.g. 'FROM "Jane Doe" SINCE 2024-05-01' (repeatable; all must match).
        """
        self["search"].append(criteria)

    def postOptions(self) -> None:
        super().postOptions()
        if not self["user"]:
            raise usage.UsageError("--user is required")
        if self["list"]:
            clash = [
                f"--{name}"
                for name in ("save", "limit", "new-only", "mark-seen")
                if self[name]
            ]
            if self["search"]:
                clash.insert(0, "--search")
            if clash:
                raise usage.UsageError(f"--list cannot go with {', '.join(clash)}")
        if self["limit"] is not None:
            try:
                self["limit"] = int(self["limit"])
            except ValueError:
                self["limit"] = 0
            if self["limit"] <= 0:
                raise usage.UsageError("--limit must be a whole number above 0")
        if self["new-only"] and not self["save"]:
            raise usage.UsageError("--new-only needs --save")
        from twisted_netlab.mail.fetch import SearchQuery
        from twisted_netlab.mail.store import SaveTarget

        try:
            self["target"] = SaveTarget.parse(self["save"]) if self["save"] else None
            self["query"] = SearchQuery.parse(self["search"])
        except UsageProblem as e:
            raise usage.UsageError(str(e)) from None


_FLAG_LETTERS = {
    "\\Draft": "D",
    "\\Flagged": "F",
    "\\Answered": "R",
    "\\Seen": "S",
    "\\Deleted": "T",
}


def _flag_letters(flags: tuple[str, ...]) -> str:
    """
    Flags as Maildir letters (D draft, F flagged, R answered, S seen,
    T deleted), C{-} for none.
    """
    return "".join(sorted(_FLAG_LETTERS[f] for f in flags if f in _FLAG_LETTERS)) or "-"


def _quote(name: str) -> str:
    if name and all(c.isprintable() and c not in ' "\\(){%*' for c in name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_mailbox(box: Mailbox) -> str:
    """
    A mailbox as the course page's imaplib example prints it (a LIST line):
    C{(\\HasNoChildren) "." INBOX}.
    """
    delimiter = "NIL" if box.delimiter is None else _quote_always(box.delimiter)
    return f"({' '.join(box.flags)}) {delimiter} {_quote(box.name)}"


def _quote_always(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def summary_json(summary: MessageSummary) -> str:
    """
    One summary as a JSON object on one line.
    """
    return json.dumps(
        {
            "uid": summary.uid,
            "flags": list(summary.flags),
            "size": summary.size,
            "date": summary.date.isoformat() if summary.date else None,
            "from": summary.sender,
            "to": summary.recipients,
            "subject": summary.subject,
        },
        ensure_ascii=False,
    )


def summary_table(summaries: list[MessageSummary]) -> list[str]:
    """
    Summaries as the lines of a table: UID, flags, date, sender, size, subject.
    """
    rows = [("UID", "FLAGS", "DATE", "FROM", "SIZE", "SUBJECT")]
    for s in summaries:
        sender = s.sender if len(s.sender) <= 30 else s.sender[:29] + "…"
        rows.append(
            (
                str(s.uid),
                _flag_letters(s.flags),
                s.date.strftime("%Y-%m-%d %H:%M") if s.date else "-",
                sender or "-",
                str(s.size),
                s.subject,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for row in rows:
        cells = [
            row[0].rjust(widths[0]),
            row[1].ljust(widths[1]),
            row[2].ljust(widths[2]),
            row[3].ljust(widths[3]),
            row[4].rjust(widths[4]),
            row[5],
        ]
        lines.append("  ".join(cells).rstrip())
    return lines


class ProgressLine:
    """
    A one-line progress display on a terminal, for large fetches only.
    """

    def __init__(self, stream: TextIO, threshold: int = PROGRESS_THRESHOLD) -> None:
        self.stream = stream
        self.threshold = threshold
        self.shown = False

    def __call__(
        self, done: int, total: int, done_bytes: int, total_bytes: int
    ) -> None:
        if total < self.threshold or not self.stream.isatty():
            return
        self.shown = True
        self.stream.write(
            f"\rnetlab fetch: {done}/{total} messages, "
            f"{done_bytes / 1e6:.1f}/{total_bytes / 1e6:.1f} MB"
        )
        if done == total:
            self.stream.write("\n")
        self.stream.flush()

    def end(self) -> None:
        """
        Leave the line (after an error in the middle).
        """
        if self.shown:
            self.stream.write("\n")
            self.shown = False


def report_line(report: SaveReport, new_only: bool) -> str:
    """
    What a --save run did, in one line.
    """
    if report.saved == 0 and report.skipped == 0:
        what = "no new messages" if new_only else "no messages"
        return f"{what} in {report.mailbox}"
    noun = "message" if report.saved == 1 else "messages"
    line = f"saved {report.saved} {noun} from {report.mailbox} to {report.target}"
    if report.skipped:
        line += f", skipped {report.skipped} already there"
    if report.restarted:
        line += " (UIDVALIDITY changed: started over)"
    return line


def _open_save(options: Any) -> tuple[MessageStore | None, FetchState | None]:
    from twisted_netlab.mail.store import (
        FetchState,
        account_name,
        default_state_directory,
        open_store,
    )

    target = options["target"]
    if target is None:
        return None, None
    store = open_store(target)
    if not options["new-only"]:
        return store, None
    try:
        state = FetchState.open(
            default_state_directory(),
            account_name(options["user"], options["host"]),
            options["mailbox"],
        )
    except BaseException:
        store.close()
        raise
    return store, state


async def run(reactor: Any, options: Any) -> int:
    from twisted_netlab.mail.fetch import connect
    from twisted_netlab.mail.store import save_messages

    out = sys.stdout
    store, state = _open_save(options)
    try:
        password = read_password(options) or ""
        trace = (
            (lambda line: print(line, file=sys.stderr)) if options["verbose"] else None
        )
        session = await connect(
            reactor,
            options["host"],
            options["port"],
            tls=options["tls"],
            cafile=options["cafile"],
            verify=not options["insecure-skip-verify"],
            timeout=options["timeout"],
            trace=trace,
        )
        try:
            await session.login(
                options["user"],
                password,
                allow_plaintext=options["insecure-plaintext-auth"],
            )
            if options["list"]:
                for box in await session.list_mailboxes():
                    out.write(
                        (_mailbox_json(box) if options["json"] else format_mailbox(box))
                        + "\n"
                    )
                await session.logout()
                return EXIT_OK
            mailbox = options["mailbox"]
            await session.select(mailbox, read_only=not options["mark-seen"])
            if store is not None:
                progress = ProgressLine(sys.stderr)
                try:
                    report = await save_messages(
                        reactor,
                        session,
                        store,
                        criteria=options["query"],
                        limit=options["limit"],
                        state=state,
                        mark_seen=options["mark-seen"],
                        progress=progress,
                    )
                finally:
                    progress.end()
                if options["json"]:
                    out.write(json.dumps(dataclasses.asdict(report)) + "\n")
                else:
                    out.write(report_line(report, options["new-only"]) + "\n")
            else:
                uids = await session.search(options["query"])
                if options["limit"] is not None:
                    uids = uids[-options["limit"] :]
                summaries = await session.fetch_summaries(uids)
                if options["mark-seen"]:
                    await session.mark_seen(uids)
                if options["json"]:
                    for summary in summaries:
                        out.write(summary_json(summary) + "\n")
                elif summaries:
                    out.write("\n".join(summary_table(summaries)) + "\n")
                else:
                    sys.stderr.write(f"netlab fetch: no messages in {mailbox} match\n")
            await session.logout()
        finally:
            session.close()
    finally:
        if state is not None:
            state.close()
        if store is not None:
            store.close()
    return EXIT_OK


def _mailbox_json(box: Mailbox) -> str:
    return json.dumps(
        {"name": box.name, "delimiter": box.delimiter, "flags": list(box.flags)},
        ensure_ascii=False,
    )
