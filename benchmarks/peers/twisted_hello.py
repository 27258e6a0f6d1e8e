"""
The textbook Twisted greeting server: a C{Protocol} that writes the greeting
in C{connectionMade} and closes, on the default reactor.
"""

from __future__ import annotations

import sys

from twisted.internet import protocol, reactor


class Hello(protocol.Protocol):
    def connectionMade(self) -> None:
        self.transport.write(b"Hello Client! I am a HelloHandler\r\n")  # type: ignore[union-attr]
        self.transport.loseConnection()  # type: ignore[union-attr]


class HelloFactory(protocol.ServerFactory):
    protocol = Hello


if __name__ == "__main__":
    reactor.listenTCP(
        int(sys.argv[1]),
        HelloFactory(),
        backlog=int(sys.argv[2]),
        interface="127.0.0.1",
    )
    reactor.run()
