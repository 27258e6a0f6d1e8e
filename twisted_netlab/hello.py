"""
The greeting server (the course page's ``HelloHandler``): greet, then hang up.
"""

from __future__ import annotations

from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger

from twisted_netlab.addresses import describe_address

DEFAULT_GREETING = b"Hello Client! I am a HelloHandler\r\n"


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
