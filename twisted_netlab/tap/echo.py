"""
C{twistd netlab-echo}: the line echo server.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from twisted_netlab.echo import (
    DEFAULT_IDLE_TIMEOUT,
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_LINE_LENGTH,
    DEFAULT_PREFIX,
    EchoFactory,
)
from twisted_netlab.endpoints import listening_services, multi_service
from twisted_netlab.tap import ListenOptions, int_option, seconds_option

DEFAULT_LISTEN = "tcp:7071:interface=127.0.0.1"


class Options(ListenOptions):
    synopsis = (
        "[--listen ENDPOINT]... [--prefix S:] [--max-line-length N] "
        "[--idle-timeout S] [--max-connections N] [--workers N]"
    )
    longdesc = (
        "Answer every line with a prefix and the line, byte for byte (the "
        "course page's EchoHandler), for thousands of clients on one reactor. "
        f"Listens on {DEFAULT_LISTEN} unless --listen is given."
    )
    defaultListen = DEFAULT_LISTEN
    optParameters = [
        [
            "prefix",
            "p",
            DEFAULT_PREFIX.decode("ascii"),
            "Put before every echoed line (UTF-8).",
        ],
        [
            "max-line-length",
            None,
            str(DEFAULT_MAX_LINE_LENGTH),
            "Longest line in bytes; a longer one gets an ERROR line and a close.",
        ],
        [
            "idle-timeout",
            None,
            str(int(DEFAULT_IDLE_TIMEOUT)),
            "Close a connection silent for this many seconds (0: never).",
        ],
        [
            "max-connections",
            None,
            str(DEFAULT_MAX_CONNECTIONS),
            "Connections served at once (by all workers together); more are "
            "closed at once and logged.",
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
        prefix = self["prefix"].encode("utf-8")
        if b"\n" in prefix:
            raise usage.UsageError("--prefix must not contain a newline")
        self["prefix_bytes"] = prefix
        self["max-line-length"] = int_option(self, "max-line-length", 1)
        self["idle-timeout"] = seconds_option(self, "idle-timeout")
        self["max-connections"] = int_option(self, "max-connections", 1)
        self["workers"] = int_option(self, "workers", 1)


def make_factory(config: Options, reactor: Any) -> EchoFactory:
    return EchoFactory(
        prefix=config["prefix_bytes"],
        max_line_length=config["max-line-length"],
        idle_timeout=config["idle-timeout"],
        max_connections=config["max-connections"],
        reactor=reactor,
    )


def worker_options(config: Options, index: int) -> list[str]:
    """
    The options of worker C{index} of C{--workers N}: the same settings, and
    its share of C{--max-connections}.
    """
    from twisted_netlab.workers import shares

    share = shares(config["max-connections"], config["workers"])[index]
    return [
        f"--prefix={config['prefix']}",
        f"--max-line-length={config['max-line-length']}",
        f"--idle-timeout={config['idle-timeout']!r}",
        f"--max-connections={share}",
    ]


def makeService(config: Options, reactor: Any = None) -> IService:
    if reactor is None:
        from twisted.internet import reactor
    if config["workers"] > 1:
        from twisted_netlab.workers import WorkerPool

        return WorkerPool(
            "netlab-echo",
            reactor,
            config["listen"],
            config["workers"],
            lambda index: worker_options(config, index),
        )
    return multi_service(
        listening_services(
            "netlab-echo", reactor, config["listen"], make_factory(config, reactor)
        )
    )
