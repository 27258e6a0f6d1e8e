"""
The twistd plugins' option parsers and service makers, one module per plugin
(C{twisted/plugins/netlab_plugins.py} names them).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

from twisted.python import usage

from twisted_netlab.endpoints import check_endpoints
from twisted_netlab.errors import exit_for_closed_stdout


class PluginOptions(usage.Options):
    """
    Options of a twistd plugin.

    Run by twistd (which sets C{parent}), a usage error ends the program with
    one line on standard error and exit status 1, instead of twistd's full
    usage text; parsed on their own, the options raise L{usage.UsageError}.
    Options twistd has parsed install netlab's epoll reactor
    (L{twisted_netlab.reactor.install_default}: unless C{--reactor} chose
    one, or C{NETLAB_LEAN_REACTOR=0}).
    """

    def parseOptions(self, options: Sequence[str] | None = None) -> None:
        if getattr(self, "parent", None) is not None:
            # Before the options' own checks, which import the reactor.
            from twisted_netlab.reactor import install_default

            install_default()
        try:
            super().parseOptions(options)
        except BrokenPipeError:
            exit_for_closed_stdout()
        except usage.UsageError as e:
            parent = getattr(self, "parent", None)
            if parent is None:
                raise
            name = getattr(parent, "subCommand", None) or "plugin"
            sys.stderr.write(f"twistd {name}: {e}\nTry 'twistd {name} --help'.\n")
            raise SystemExit(1) from None


class ListenOptions(PluginOptions):
    """
    Options with a repeatable C{--listen ENDPOINT}; C{defaultListen} applies
    when none is given.
    """

    defaultListen: str = ""

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []

    def opt_listen(self, description: str) -> None:
        """
        A server endpoint description to listen on (repeatable), e.g.
        tcp:7071:interface=127.0.0.1, tcp6:7071:interface=\\:\\:1,
        unix:/run/netlab.sock, ssl:7443:privateKey=key.pem:certKey=cert.pem.
        """
        self["listen"].append(description)

    opt_l = opt_listen

    def postOptions(self) -> None:
        if not self["listen"]:
            self["listen"] = [self.defaultListen]
        check_endpoints(self["listen"])


def int_option(options: usage.Options, name: str, minimum: int) -> int:
    """
    Convert option C{name} to an int of at least C{minimum}, or raise a usage
    error naming the option.
    """
    raw = options[name]
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise usage.UsageError(
            f"--{name} must be a whole number, not {raw!r}"
        ) from None
    if value < minimum:
        raise usage.UsageError(f"--{name} must be at least {minimum}, not {value}")
    return value


def seconds_option(options: usage.Options, name: str) -> float:
    """
    Convert option C{name} to a non-negative number of seconds, or raise a
    usage error naming the option.
    """
    raw = options[name]
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise usage.UsageError(
            f"--{name} must be a number of seconds, not {raw!r}"
        ) from None
    if not value >= 0 or value == float("inf"):
        raise usage.UsageError(f"--{name} must be a finite number >= 0, not {raw!r}")
    return value
