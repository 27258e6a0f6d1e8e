"""
Options shared by the commands that talk to a mail server (C{netlab send},
C{netlab fetch}): where the server is, how TLS is done, who logs in and where
the password comes from.

A password never comes from the command line: it is prompted for with
C{getpass} (as the course page does), or read from an environment variable
or a file.
"""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import ClassVar

from twisted.python import usage

from twisted_netlab.errors import UsageProblem

TLS_MODES = ("implicit", "starttls", "none")


def parse_server(text: str, default_port: int | None) -> tuple[str, int | None]:
    """
    Split C{HOST[:PORT]} (C{[v6addr]:PORT} for IPv6) into host and port.

    @raise usage.UsageError: on an empty host or a bad port.
    """
    host, port_text = text, ""
    if text.startswith("["):
        close = text.find("]")
        if close < 0:
            raise usage.UsageError(f"--server {text!r}: missing ']'")
        host, rest = text[1:close], text[close + 1 :]
        if rest and not rest.startswith(":"):
            raise usage.UsageError(f"--server {text!r}: expected ':PORT' after ']'")
        port_text = rest[1:]
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    if not host:
        raise usage.UsageError(f"--server {text!r}: no host name")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise usage.UsageError(f"--server {text!r}: bad port {port_text!r}")
    return host, int(port_text)


class ServerConnectionOptions(usage.Options):
    """
    C{--server}, C{--tls}, C{--cafile}, C{--insecure-skip-verify},
    C{--user}, C{--password-env}, C{--password-file}, C{--timeout}, C{-v},
    C{--insecure-plaintext-auth}.

    Subclasses set C{defaultTLS} and C{defaultPorts} (port by TLS mode) and
    C{implicitTLSPort} (the port on which C{--tls} defaults to implicit).
    After parsing, C{self["host"]}, C{self["port"]} and C{self["tls"]} are set.
    """

    defaultTLS: ClassVar[str] = "starttls"
    defaultPorts: ClassVar[dict[str, int]] = {}
    implicitTLSPort: ClassVar[int | None] = None

    optParameters = [
        ["server", "s", None, "The server, HOST[:PORT] ([IPv6]:PORT)."],
        ["tls", None, None, "implicit, starttls or none (see --help of the command)."],
        ["cafile", None, None, "Trust the certificates in this PEM file."],
        ["user", "u", None, "The login name."],
        [
            "password-env",
            None,
            None,
            "Read the password from this environment variable.",
        ],
        [
            "password-file",
            None,
            None,
            "Read the password from the first line of this file.",
        ],
        ["timeout", None, "30", "Seconds to wait for the server at each step."],
    ]
    optFlags = [
        [
            "insecure-skip-verify",
            None,
            "Do not verify the server's certificate (unsafe).",
        ],
        ["verbose", "v", "Print the protocol conversation, credentials masked."],
        [
            "insecure-plaintext-auth",
            None,
            "Allow sending the password without TLS (with --tls none; unsafe).",
        ],
    ]

    def postOptions(self) -> None:
        if not self["server"]:
            raise usage.UsageError("--server is required")
        tls = self["tls"]
        if tls is not None and tls not in TLS_MODES:
            raise usage.UsageError(
                f"--tls must be one of {', '.join(TLS_MODES)}, not {tls!r}"
            )
        host, port = parse_server(self["server"], None)
        if tls is None:
            tls = (
                "implicit"
                if port is not None and port == self.implicitTLSPort
                else self.defaultTLS
            )
        self["host"], self["tls"] = host, tls
        self["port"] = port if port is not None else self.defaultPorts[tls]
        if self["password-env"] and self["password-file"]:
            raise usage.UsageError("give --password-env or --password-file, not both")
        if (self["password-env"] or self["password-file"]) and not self["user"]:
            raise usage.UsageError("a password source needs --user")
        try:
            self["timeout"] = float(self["timeout"])
        except ValueError:
            raise usage.UsageError(
                f"--timeout must be a number of seconds, not {self['timeout']!r}"
            ) from None
        if not self["timeout"] > 0:
            raise usage.UsageError("--timeout must be more than 0")
        if self["cafile"] and self["insecure-skip-verify"]:
            raise usage.UsageError(
                "--cafile and --insecure-skip-verify contradict each other"
            )
        if tls == "none" and (self["cafile"] or self["insecure-skip-verify"]):
            raise usage.UsageError(
                "--cafile and --insecure-skip-verify need TLS, not --tls none"
            )
        if tls == "none" and self["user"] and not self["insecure-plaintext-auth"]:
            raise usage.UsageError(
                "--tls none would send the password in the clear; "
                "add --insecure-plaintext-auth to allow it"
            )


def read_password(options: usage.Options) -> str | None:
    """
    The password for C{options["user"]}: from C{--password-env},
    C{--password-file}, or else prompted for on the terminal with getpass.
    L{None} when there is no C{--user}.

    @raise UsageProblem: the variable is unset, the file unreadable, or there
        is no terminal to prompt on.
    """
    user = options["user"]
    if not user:
        return None
    if options["password-env"]:
        name = options["password-env"]
        if name not in os.environ:
            raise UsageProblem(
                f"environment variable {name} (--password-env) is not set"
            )
        return os.environ[name]
    if options["password-file"]:
        path = options["password-file"]
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            raise UsageProblem(f"cannot read password file {path}: {reason}") from None
        lines = text.splitlines()
        return lines[0] if lines else ""
    try:
        with open("/dev/tty", "rb"):
            pass
    except OSError:
        raise UsageProblem(
            "no terminal to prompt for the password on; "
            "use --password-env VAR or --password-file FILE"
        ) from None
    try:
        return getpass.getpass(f"Password for {user}: ")
    except (EOFError, KeyboardInterrupt):
        raise UsageProblem("no password given") from None
