"""
C{netlab mail-user add|remove|list [--state DIR] [ADDRESS]}: the mail lab's
users.

The password for C{add} is prompted for twice on the terminal (getpass), or
read from the first line of standard input when that is not a terminal
(C{printf '%s\\n' "$PW" | netlab mail-user add alice@netlab.test}); it is
never taken from the command line.  Changes apply to a running lab at once.
"""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Any

from twisted.python import usage

from twisted_netlab.errors import UsageProblem
from twisted_netlab.mail.lab.users import UsersFile, normalize_address

ACTIONS = ("add", "remove", "list")
DEFAULT_STATE = "netlab-state"


class _ActionOptions(usage.Options):
    optParameters = [
        ["state", "d", DEFAULT_STATE, "The lab's state directory."],
    ]

    action = ""
    synopsis = ""

    def __init__(self) -> None:
        super().__init__()
        self["address"] = None

    def getSynopsis(self) -> str:
        return f"Usage: netlab mail-user {self.action} {self.synopsis}"


class _UserOptions(_ActionOptions):
    def parseArgs(self, *args: str) -> None:
        if len(args) != 1:
            raise usage.UsageError(f"{self.action} needs one ADDRESS")
        (address,) = args
        try:
            self["address"] = normalize_address(address)
        except UsageProblem as e:
            raise usage.UsageError(str(e)) from None


class AddOptions(_UserOptions):
    action = "add"
    synopsis = "[--state DIR] ADDRESS"


class RemoveOptions(_UserOptions):
    action = "remove"
    synopsis = "[--state DIR] ADDRESS"


class ListOptions(_ActionOptions):
    action = "list"
    synopsis = "[--state DIR]"

    def parseArgs(self, *extra: str) -> None:
        if extra:
            raise usage.UsageError("list takes no address")


class Options(usage.Options):
    synopsis = "add|remove|list [--state DIR] [ADDRESS]"
    longdesc = (
        "Manage the mail lab's users (DIR/users; DIR is ./netlab-state unless "
        "--state says otherwise). 'add' creates a user or sets its password: "
        "prompted for on the terminal, or read from the first line of "
        "standard input. 'remove' removes a user (its mail stays). 'list' "
        "prints every user's address."
    )
    subCommands = [
        ("add", None, AddOptions, "Add a user, or set its password."),
        ("remove", None, RemoveOptions, "Remove a user (its mail stays)."),
        ("list", None, ListOptions, "Print every user's address."),
    ]

    def postOptions(self) -> None:
        if self.subCommand is None:
            raise usage.UsageError(f"no action given ({', '.join(ACTIONS)})")
        assert self.subOptions is not None
        self["action"] = self.subCommand
        self["state"] = self.subOptions["state"]
        self["address"] = self.subOptions["address"]


def read_new_password(address: str) -> str:
    """
    The new password for C{address}: prompted for twice when standard input
    is a terminal, else the first line of standard input.

    @raise UsageProblem: no password, or the two entries differ.
    """
    if sys.stdin is not None and sys.stdin.isatty():
        try:
            first = getpass.getpass(f"New password for {address}: ")
            second = getpass.getpass("Again: ")
        except (EOFError, KeyboardInterrupt):
            raise UsageProblem("no password given") from None
        if first != second:
            raise UsageProblem("the two passwords differ")
        password = first
    else:
        line = sys.stdin.readline() if sys.stdin is not None else ""
        password = line.removesuffix("\n").removesuffix("\r")
    if not password:
        raise UsageProblem("no password given (empty)")
    return password


def _ensure_mailbox(state: Path, address: str) -> None:
    """
    Make the user's mailbox now, so that IMAP clients find an empty INBOX.
    """
    from twisted_netlab.mail.lab.store.maildir import MailStore

    try:
        MailStore(state / "mail").ensure_user(address)
    except OSError as e:
        raise UsageProblem(
            f"cannot make the mailbox of {address} in {state / 'mail'}: {e.strerror}"
        ) from None


async def run(reactor: Any, options: Options) -> int:
    state = Path(options["state"])
    users = UsersFile(state / "users")
    action, address = options["action"], options["address"]
    if action == "list":
        for each in users.addresses():
            sys.stdout.write(f"{each}\n")
        return 0
    if action == "remove":
        users.remove(address)
        sys.stdout.write(f"removed {address} (its mail stays in {state / 'mail'})\n")
        return 0
    existed = address in users
    password = read_new_password(address)
    users.add(address, password)
    _ensure_mailbox(state, address)
    sys.stdout.write(f"{'changed the password of' if existed else 'added'} {address}\n")
    return 0
