"""
Listening on endpoint descriptions, for the twistd plugins.

Every plugin takes C{--listen ENDPOINT} (repeatable) with any Twisted server
endpoint description.  A bad description is a usage error found while the
options are parsed; a port that cannot be bound ends twistd with a one-line
message and exit status 1 instead of twistd's traceback.

The listeners' TCP, TLS and UNIX connections use the write-through transport
of L{twisted_netlab.transport} (C{NETLAB_WRITE_THROUGH=0} turns it off).
"""

from __future__ import annotations

import ipaddress
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.endpoints import (
    SSL4ServerEndpoint,
    TCP4ServerEndpoint,
    TCP6ServerEndpoint,
    UNIXServerEndpoint,
    serverFromString,
)
from twisted.internet.interfaces import IStreamServerEndpoint
from twisted.internet.protocol import Factory
from twisted.python import usage

from twisted_netlab.errors import NetlabError
from twisted_netlab.transport import write_through_reactor


def parse_endpoint(reactor: Any, description: str) -> IStreamServerEndpoint:
    """
    Parse a server endpoint description.  Its connections (C{tcp:},
    C{tcp6:}, C{ssl:}, C{unix:}, C{systemd:}...) use the write-through
    transport when C{reactor} is a real one and it is not turned off.

    @raise usage.UsageError: with a one-line message naming the description,
        when it is malformed, of an unknown type, or names files (TLS
        certificates, for instance) that cannot be read.
    """
    try:
        return serverFromString(write_through_reactor(reactor), description)
    except IndexError as e:
        if description.startswith("systemd:"):
            reason = "systemd passed no listening socket with that index"
        else:
            reason = str(e) or type(e).__name__
        raise usage.UsageError(f"bad endpoint {description!r}: {reason}") from e
    except Exception as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise usage.UsageError(f"bad endpoint {description!r}: {reason}") from e


def check_endpoints(descriptions: Iterable[str]) -> None:
    """
    Parse every description once, for C{postOptions}, so that a bad one is a
    usage error before anything starts.
    """
    from twisted.internet import reactor

    for description in descriptions:
        parse_endpoint(reactor, description)


class ListeningService(StreamServerEndpointService):
    """
    Listen on one endpoint; if listening fails when the service starts, stop
    the program with a one-line message naming the plugin and the endpoint.
    """

    _raiseSynchronously = True

    def __init__(
        self,
        program: str,
        description: str,
        endpoint: IStreamServerEndpoint,
        factory: Factory[Any],
    ) -> None:
        super().__init__(endpoint, factory)
        self.program = program
        self.description = description

    def privilegedStartService(self) -> None:
        try:
            super().privilegedStartService()
        except Exception as e:
            error = StartupError(
                f"{self.program}: cannot listen on {self.description!r}: {e}"
            )
            _print_without_traceback(error)
            raise error from None


class StartupError(NetlabError):
    """
    A server could not start (its port is taken, say).
    """


def _print_without_traceback(error: BaseException) -> None:
    """
    Make the interpreter print C{error} as one line, not a traceback, if it
    ends up uncaught.

    twistd lets startup errors propagate: in the foreground the interpreter
    prints them with a traceback; daemonized, twistd first reports the
    exception's last line to the waiting parent, which is why this is an
    exception and not C{SystemExit} (on which that parent waits forever).
    """
    previous = sys.excepthook

    def excepthook(kind: type[BaseException], value: BaseException, tb: Any) -> None:
        if value is error:
            sys.stderr.write(f"{value}\n")
        else:
            previous(kind, value, tb)

    sys.excepthook = excepthook


def listening_services(
    program: str,
    reactor: Any,
    descriptions: Sequence[str],
    factory: Factory[Any],
) -> list[ListeningService]:
    """
    One L{ListeningService} per endpoint description, all serving C{factory}.
    """
    return [
        ListeningService(program, d, parse_endpoint(reactor, d), factory)
        for d in descriptions
    ]


def multi_service(services: Iterable[Any]) -> MultiService:
    """
    A L{MultiService} holding C{services}.
    """
    parent = MultiService()
    for s in services:
        s.setServiceParent(parent)
    return parent


def is_loopback_endpoint(reactor: Any, description: str) -> bool:
    """
    Whether the server endpoint C{description} only accepts connections from
    this machine: TCP on a loopback interface (C{127.0.0.0/8}, C{::1},
    C{localhost}) or a UNIX socket.  Anything else, including TCP on every
    interface (no C{interface=}), is not.
    """
    endpoint = parse_endpoint(reactor, description)
    if isinstance(endpoint, UNIXServerEndpoint):
        return True
    if isinstance(
        endpoint, (TCP4ServerEndpoint, TCP6ServerEndpoint, SSL4ServerEndpoint)
    ):
        interface = getattr(endpoint, "_interface", "")
        if interface == "localhost":
            return True
        try:
            return ipaddress.ip_address(interface.split("%")[0]).is_loopback
        except ValueError:
            return False
    return False
