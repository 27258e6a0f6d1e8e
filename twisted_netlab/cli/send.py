"""
C{netlab send}: compose a message and send it through an SMTP server.

Prints one line per recipient; exits 0 only when every recipient accepted
the message (exit statuses in L{twisted_netlab.errors}).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, ClassVar

from twisted.python import usage

from twisted_netlab.cli.connection import ServerConnectionOptions, read_password
from twisted_netlab.errors import ServerRefused, UsageProblem
from twisted_netlab.mail.compose import Draft, compose
from twisted_netlab.mail.send import DEFAULT_PORTS, message_bytes, send_message


class Options(ServerConnectionOptions):
    synopsis = (
        "--server HOST[:PORT] --from ADDR --to ADDR... [--cc ADDR]... "
        "[--bcc ADDR]... --subject TEXT [--body TEXT | --body-file FILE|-] "
        "[--html-file FILE] [--attach FILE]... [--header 'Name: value']... "
        "[--user NAME] [--password-env VAR | --password-file FILE] "
        "[--tls starttls|implicit|none] [--cafile PEM] [--insecure-skip-verify] "
        "[--insecure-plaintext-auth] "
        "[--timeout S] [--dry-run] [-v]"
    )
    longdesc = (
        "Send a message. TLS is required: STARTTLS by default (port 587), "
        "implicit TLS from the first byte with --tls implicit (the default on "
        "port 465); the server's certificate and name are verified. "
        "--tls none (port 25) sends in the clear and, with --user, also needs "
        "--insecure-plaintext-auth. With --user the password comes from "
        "--password-env, --password-file or a prompt, never from the command "
        "line. Exit status: 0 every recipient accepted, 2 usage error, "
        "3 connection failed, 4 TLS failed, 5 authentication failed, "
        "6 recipients (or the message) refused."
    )
    defaultTLS = "starttls"
    defaultPorts: ClassVar[dict[str, int]] = DEFAULT_PORTS
    implicitTLSPort = 465

    optParameters = [
        ["from", None, None, "The sender, ADDR or 'Name <ADDR>'."],
        ["subject", None, None, "The subject."],
        ["body", None, None, "The plain text body."],
        [
            "body-file",
            None,
            None,
            "Read the plain text body (UTF-8) from FILE, - for stdin.",
        ],
        ["html-file", None, None, "Add an HTML alternative read from FILE (UTF-8)."],
    ]
    optFlags = [
        ["dry-run", None, "Print the message that would be sent, and exit."],
    ]

    def __init__(self) -> None:
        super().__init__()
        for name in ("to", "cc", "bcc", "attach", "header"):
            self[name] = []

    def opt_to(self, address: str) -> None:
        """
        A recipient (repeatable).
        """
        self["to"].append(address)

    def opt_cc(self, address: str) -> None:
        """
        A copy recipient (repeatable).
        """
        self["cc"].append(address)

    def opt_bcc(self, address: str) -> None:
        """
        A blind copy recipient: gets the message, never named in it (repeatable).
        """
        self["bcc"].append(address)

    def opt_attach(self, path: str) -> None:
        """
        Attach a file; its MIME type is guessed from its name (repeatable).
        """
        self["attach"].append(path)

    def opt_header(self, header: str) -> None:
        """
        An extra header, 'Name: value' (repeatable).
        """
        name, colon, value = header.partition(":")
        if not colon or not name.strip():
            raise usage.UsageError(f"--header {header!r}: expected 'Name: value'")
        self["header"].append((name.strip(), value.strip()))

    def postOptions(self) -> None:
        super().postOptions()
        for required in ("from", "subject"):
            if self[required] is None:
                raise usage.UsageError(f"--{required} is required")
        if not self["to"]:
            raise usage.UsageError("--to is required")
        if self["body"] is not None and self["body-file"] is not None:
            raise usage.UsageError("give --body or --body-file, not both")


def _read_text(path: str, what: str) -> str:
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
        return data.decode("utf-8")
    except OSError as e:
        raise UsageProblem(f"cannot read {what} {path}: {e.strerror}") from None
    except UnicodeDecodeError:
        raise UsageProblem(f"{what} {path} is not UTF-8 text") from None


def draft_from(options: Options) -> Draft:
    """
    The L{Draft} the options describe, files read.

    @raise UsageProblem: a file cannot be read.
    """
    text = options["body"]
    if options["body-file"] is not None:
        text = _read_text(options["body-file"], "body file")
    html = None
    if options["html-file"] is not None:
        html = _read_text(options["html-file"], "HTML file")
    return Draft(
        sender=options["from"],
        to=options["to"],
        cc=options["cc"],
        bcc=options["bcc"],
        subject=options["subject"],
        text=text,
        html=html,
        attachments=options["attach"],
        headers=options["header"],
    )


def _print_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


async def run(reactor: Any, options: Options) -> int:
    draft = draft_from(options)
    message = compose(draft)
    if options["dry-run"]:
        sys.stdout.buffer.write(message_bytes(message))
        sys.stdout.flush()
        return 0
    recipients = draft.recipients()
    result = await send_message(
        reactor,
        message,
        host=options["host"],
        port=options["port"],
        tls=options["tls"],
        username=options["user"],
        password=read_password(options),
        sender=draft.envelope_sender(),
        recipients=recipients,
        cafile=options["cafile"],
        verify=not options["insecure-skip-verify"],
        timeout=options["timeout"],
        allow_plaintext_auth=options["insecure-plaintext-auth"],
        transcript=_print_stderr if options["verbose"] else None,
    )
    for outcome in result.recipients:
        print(outcome)
    sys.stdout.flush()
    if result.all_accepted:
        return 0
    total = len(result.recipients)
    if result.all_refused:
        raise ServerRefused(f"all {total} recipients refused; nothing was delivered")
    raise ServerRefused(f"{len(result.refused)} of {total} recipients refused")
