"""
C{twistd netlab}: the whole suite in one process, with one log.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService, MultiService

from twisted_netlab.echo import EchoFactory
from twisted_netlab.endpoints import check_endpoints, listening_services
from twisted_netlab.hello import HelloFactory
from twisted_netlab.tap import PluginOptions
from twisted_netlab.tap import echo as echo_tap
from twisted_netlab.tap import hello as hello_tap


class Options(PluginOptions):
    synopsis = "[--hello ENDPOINT]... [--echo ENDPOINT]..."
    longdesc = (
        "Run every netlab server at once: the greeting server on "
        f"{hello_tap.DEFAULT_LISTEN} and the echo server on "
        f"{echo_tap.DEFAULT_LISTEN}, with their default settings."
    )

    def __init__(self) -> None:
        super().__init__()
        self["hello"] = []
        self["echo"] = []

    def opt_hello(self, description: str) -> None:
        """
        Where the greeting server listens (repeatable).
        """
        self["hello"].append(description)

    def opt_echo(self, description: str) -> None:
        """
        Where the echo server listens (repeatable).
        """
        self["echo"].append(description)

    def postOptions(self) -> None:
        self["hello"] = self["hello"] or [hello_tap.DEFAULT_LISTEN]
        self["echo"] = self["echo"] or [echo_tap.DEFAULT_LISTEN]
        check_endpoints(self["hello"] + self["echo"])


def makeService(config: Options, reactor: Any = None) -> IService:
    if reactor is None:
        from twisted.internet import reactor
    suite = MultiService()
    for service in [
        *listening_services("netlab", reactor, config["hello"], HelloFactory()),
        *listening_services(
            "netlab", reactor, config["echo"], EchoFactory(reactor=reactor)
        ),
    ]:
        service.setServiceParent(suite)
    return suite
