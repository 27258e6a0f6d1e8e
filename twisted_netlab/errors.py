"""
The exceptions twisted_netlab raises for failures a user must act on.

Each has a one-line C{str()} that the C{netlab} command prints as it is, and
an exit status the command ends with.
"""

from __future__ import annotations

import os
import sys
from typing import NoReturn

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_SOFTWARE = 70


class NetlabError(Exception):
    """
    A failure with a one-line explanation for the user.

    @cvar exit_code: the C{netlab} command's exit status for this failure.
    """

    exit_code: int = 1

    def __str__(self) -> str:
        text = super().__str__()
        return " ".join(text.split()) if "\n" in text else text


class UsageProblem(NetlabError):
    """
    A bad option value or an input file that cannot be read.
    """

    exit_code = EXIT_USAGE


class ConnectionFailed(NetlabError):
    """
    The server could not be reached: unknown host, refused, timed out, or the
    connection dropped.
    """

    exit_code = 3


class TLSFailed(NetlabError):
    """
    TLS could not be set up as required: handshake failure, an untrusted or
    mismatched certificate, STARTTLS not offered, TLS support missing.
    """

    exit_code = 4


class AuthenticationFailed(NetlabError):
    """
    The server rejected the credentials, or offered no acceptable way to log in.
    """

    exit_code = 5


class ServerRefused(NetlabError):
    """
    The server refused the request itself: recipients refused, no such
    mailbox, bad search criteria, a message too big.
    """

    exit_code = 6


class LocalWriteFailed(NetlabError):
    """
    Something could not be written locally: an unwritable or full target.
    """

    exit_code = 7


def exit_for_closed_stdout() -> NoReturn:
    """
    The reader of our output went away (C{netlab ... | head}): stop quietly
    with status 1, as Unix tools do, without a traceback from the flush at
    exit.
    """
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    raise SystemExit(1)
