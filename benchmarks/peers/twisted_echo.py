"""
The textbook Twisted echo server: a C{LineReceiver} that answers every line
with C{S:} and the line, on the default reactor.
"""

from __future__ import annotations

import sys

from twisted.internet import protocol, reactor
from twisted.protocols.basic import LineReceiver


class Echo(LineReceiver):
    delimiter = b"\n"

    def lineReceived(self, line: bytes) -> None:
        self.sendLine(b"S:" + line)


class EchoFactory(protocol.ServerFactory):
    protocol = Echo


if __name__ == "__main__":
    reactor.listenTCP(
        int(sys.argv[1]), EchoFactory(), backlog=int(sys.argv[2]), interface="127.0.0.1"
    )
    reactor.run()
