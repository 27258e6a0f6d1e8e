"""
The greeting server (the course page's ``HelloHandler``): greet, then hang up.
"""

from __future__ import annotations

from twisted.internet.interfaces import IAddress
from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger

DEFAULT_GREETING = b"Hello Client! I am a HelloHandler\r\n"


def describe_address(address: IAddress) -> str:
    """
    Render a peer address for a log line: ``host:port`` for IP addresses,
    the socket path (or ``unix socket``) for UNIX addresses.
    """
    host = getattr(address, "host", None)
    port = getattr(address, "port", None)
    if host is not None and port is not None:
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    name = getattr(address, "name", None)
    if name:
        return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)
    return "unix socket" if type(address).__name__ == "UNIXAddress" else str(address)


class HelloProtocol(Protocol):
    """
    Write the factory's greeting as soon as the client connects, then close.
    """

    factory: HelloFactory

    def connectionMade(self) -> None:
        self.factory.log.info(
            "Serving client: {address}",
            address=describe_address(self.transport.getPeer()),  # type: ignore[union-attr]
        )
        self.transport.write(self.factory.greeting)  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


class HelloFactory(ServerFactory[HelloProtocol]):
    """
    Build L{HelloProtocol}s.

    @param greeting: the exact bytes every client receives, terminator included.
        The default is the course page's C{Hello Client! I am a HelloHandler}
        line, ended with CRLF.
    """

    protocol = HelloProtocol
    log = Logger()

    def __init__(self, *, greeting: bytes = DEFAULT_GREETING) -> None:
        if not isinstance(greeting, bytes):
            raise TypeError(f"greeting must be bytes, not {type(greeting).__name__}")
        self.greeting = greeting
