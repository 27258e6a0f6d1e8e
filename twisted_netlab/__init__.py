"""
twisted_netlab: the course page's network programs, done properly on Twisted.

A greeting server and a line echo server as embeddable factories, twistd
plugins for every server, SMTP sending and IMAP fetching as Deferred and
coroutine APIs, and a small mail lab server (L{twisted_netlab.mail.lab}).

The public names below are imported when first used, so that C{import
twisted_netlab} (done by every C{netlab} command and by the pytest plugin)
stays cheap and never installs a reactor.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from twisted_netlab.echo import EchoFactory, EchoProtocol
    from twisted_netlab.hello import HelloFactory, HelloProtocol
    from twisted_netlab.mail.compose import Draft, compose
    from twisted_netlab.mail.fetch import IMAPSession, connect
    from twisted_netlab.mail.send import SendResult, send_message
    from twisted_netlab.transport import write_through_reactor

_PUBLIC = {
    "EchoFactory": "twisted_netlab.echo",
    "EchoProtocol": "twisted_netlab.echo",
    "HelloFactory": "twisted_netlab.hello",
    "HelloProtocol": "twisted_netlab.hello",
    "Draft": "twisted_netlab.mail.compose",
    "compose": "twisted_netlab.mail.compose",
    "send_message": "twisted_netlab.mail.send",
    "SendResult": "twisted_netlab.mail.send",
    "connect": "twisted_netlab.mail.fetch",
    "IMAPSession": "twisted_netlab.mail.fetch",
    "write_through_reactor": "twisted_netlab.transport",
}

__all__ = [
    "Draft",
    "EchoFactory",
    "EchoProtocol",
    "HelloFactory",
    "HelloProtocol",
    "IMAPSession",
    "SendResult",
    "__version__",
    "compose",
    "connect",
    "send_message",
    "write_through_reactor",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'twisted_netlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
