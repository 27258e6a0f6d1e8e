"""
C{twistd netlab-hello}: the greeting server.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService

from twisted_netlab.endpoints import listening_services, multi_service
from twisted_netlab.hello import DEFAULT_GREETING, HelloFactory
from twisted_netlab.tap import ListenOptions

DEFAULT_LISTEN = "tcp:7070:interface=127.0.0.1"


class Options(ListenOptions):
    synopsis = "[--listen ENDPOINT]... [--greeting TEXT]"
    longdesc = (
        "Greet every client with one line, then close the connection "
        "(the course page's HelloHandler). Listens on "
        f"{DEFAULT_LISTEN} unless --listen is given."
    )
    defaultListen = DEFAULT_LISTEN
    optParameters = [
        [
            "greeting",
            "g",
            DEFAULT_GREETING.decode("ascii").rstrip("\r\n"),
            "The greeting line (UTF-8); CRLF is appended.",
        ],
    ]

    def postOptions(self) -> None:
        super().postOptions()
        self["greeting_bytes"] = self["greeting"].encode("utf-8") + b"\r\n"


def make_factory(config: Options) -> HelloFactory:
    return HelloFactory(greeting=config["greeting_bytes"])


def makeService(config: Options, reactor: Any = None) -> IService:
    if reactor is None:
        from twisted.internet import reactor
    return multi_service(
        listening_services(
            "netlab-hello", reactor, config["listen"], make_factory(config)
        )
    )
