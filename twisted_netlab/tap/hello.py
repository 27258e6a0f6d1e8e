"""
C{twistd netlab-hello}: the greeting server.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService

from twisted_netlab.endpoints import listening_services, multi_service
from twisted_netlab.hello import DEFAULT_GREETING, HelloFactory
from twisted_netlab.tap import ListenOptions, int_option

DEFAULT_LISTEN = "tcp:7070:interface=127.0.0.1"


class Options(ListenOptions):
    synopsis = "[--listen ENDPOINT]... [--greeting TEXT] [--workers N]"
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
        [
            "workers",
            None,
            "1",
            "Worker processes sharing the listening sockets (1: serve in this "
            "process).",
        ],
    ]

    def postOptions(self) -> None:
        super().postOptions()
        self["greeting_bytes"] = self["greeting"].encode("utf-8") + b"\r\n"
        self["workers"] = int_option(self, "workers", 1)


def make_factory(config: Options, reactor: Any = None) -> HelloFactory:
    return HelloFactory(greeting=config["greeting_bytes"])


def worker_options(config: Options, index: int) -> list[str]:
    """
    The options of each worker of C{--workers N}: the same greeting.
    """
    return [f"--greeting={config['greeting']}"]


def makeService(config: Options, reactor: Any = None) -> IService:
    if reactor is None:
        from twisted.internet import reactor
    if config["workers"] > 1:
        from twisted_netlab.workers import WorkerPool

        return WorkerPool(
            "netlab-hello",
            reactor,
            config["listen"],
            config["workers"],
            lambda index: worker_options(config, index),
        )
    return multi_service(
        listening_services(
            "netlab-hello", reactor, config["listen"], make_factory(config)
        )
    )
