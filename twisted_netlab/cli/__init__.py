"""
The C{netlab} command: C{usage.Options} with one subcommand per task, run
with L{twisted.internet.task.react}.

A subcommand is a module with an C{Options} class and an
C{async def run(reactor, options) -> int}; it is named in L{COMMANDS} and
imported only when used.  It gets the reactor wrapped by
L{twisted_netlab.transport.write_through_reactor}, so that its connections
write at once (C{NETLAB_WRITE_THROUGH=0} turns that off), on netlab's
epoll reactor (L{twisted_netlab.reactor}; C{NETLAB_LEAN_REACTOR=0} keeps
Twisted's).  Failures reach
the user as one line on standard error and an exit status (see
L{twisted_netlab.errors}); a traceback only with C{-v}.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any, NoReturn

import twisted
from twisted.python import usage

from twisted_netlab import __version__
from twisted_netlab.errors import (
    EXIT_SOFTWARE,
    EXIT_USAGE,
    NetlabError,
    exit_for_closed_stdout,
)

#: name -> (module, one-line description); the module has Options and run().
COMMANDS: dict[str, tuple[str, str]] = {
    "send": ("twisted_netlab.cli.send", "Compose a message and send it over SMTP."),
    "fetch": ("twisted_netlab.cli.fetch", "Read mail from an IMAP server."),
    "mail-user": (
        "twisted_netlab.cli.mailuser",
        "Add, remove or list the mail lab's users.",
    ),
}


def _subcommands() -> list[tuple[str, None, Any, str]]:
    entries = []
    for name, (module, description) in COMMANDS.items():
        entries.append((name, None, _lazy_options(module), description))
    return entries


def _lazy_options(module: str) -> Any:
    def build() -> usage.Options:
        return importlib.import_module(module).Options()

    return build


class NetlabOptions(usage.Options):
    synopsis = "Usage: netlab [options]"
    longdesc = (
        "The twisted_netlab command line. 'netlab COMMAND --help' for each command."
    )

    def __init__(self) -> None:
        super().__init__()
        self.subCommands = _subcommands()

    def opt_version(self) -> NoReturn:
        """
        Print the version and exit.
        """
        print(f"netlab {__version__} (Twisted {twisted.__version__})")
        sys.exit(0)

    def postOptions(self) -> None:
        if self.subCommand is None:
            names = ", ".join(COMMANDS) or "none yet"
            raise usage.UsageError(f"no command given (commands: {names})")


def _verbose(options: Any) -> bool:
    try:
        return bool(options["verbose"])
    except KeyError:
        return False


async def _run(reactor: Any, name: str, options: usage.Options) -> None:
    from twisted_netlab.transport import write_through_reactor

    module = importlib.import_module(COMMANDS[name][0])
    try:
        code = await module.run(write_through_reactor(reactor), options)
    except NetlabError as e:
        sys.stderr.write(f"netlab {name}: {e}\n")
        raise SystemExit(e.exit_code) from None
    except (SystemExit, KeyboardInterrupt):
        raise
    except BrokenPipeError:
        exit_for_closed_stdout()
    except Exception as e:
        if _verbose(options):
            import traceback

            traceback.print_exc()
        sys.stderr.write(
            f"netlab {name}: unexpected error: {type(e).__name__}: {e}"
            f"{'' if _verbose(options) else ' (run with -v for details)'}\n"
        )
        raise SystemExit(EXIT_SOFTWARE) from None
    raise SystemExit(code)


def main(argv: Sequence[str] | None = None) -> NoReturn:
    """
    Run the C{netlab} command with C{argv} (default: C{sys.argv[1:]}).
    """
    args = list(sys.argv[1:] if argv is None else argv)
    options = NetlabOptions()
    try:
        options.parseOptions(args)
    except BrokenPipeError:
        exit_for_closed_stdout()
    except usage.UsageError as e:
        command = f"netlab {options.subCommand}" if options.subCommand else "netlab"
        sys.stderr.write(f"{command}: {e}\nTry '{command} --help'.\n")
        sys.exit(EXIT_USAGE)
    name, sub = options.subCommand, options.subOptions
    assert name is not None
    # Only now the reactor (netlab's, as the servers run on): --help and
    # usage errors do without it.
    from twisted.internet.defer import Deferred
    from twisted.internet.task import react

    from twisted_netlab.reactor import install_default

    install_default()

    react(lambda reactor: Deferred.fromCoroutine(_run(reactor, name, sub)))
