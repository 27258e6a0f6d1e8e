"""
An experiment, not a server anyone should run: C{twistd netlab-echo} with
Twisted's TCP transport patched to send at once when nothing is buffered,
instead of waiting for the next reactor iteration (what Twisted issue #5303
asks for).  It measures how much of netlab-echo's cost per reply is Twisted's
write-later design: two epoll_ctl calls and one more event per reply.

``python netlab_echo_write_now.py PORT BACKLOG`` (plain TCP only).  It
turns netlab's own write-through transport off (C{NETLAB_WRITE_THROUGH=0}),
so that the patched Twisted transport is the one measured.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from twisted.internet import tcp
from twisted.internet.abstract import FileDescriptor


def write(self: Any, data: bytes) -> None:
    if (
        not self.dataBuffer
        and not self._tempDataBuffer
        and self.connected
        and not self.disconnecting
        and not self._writeDisconnected
        and not self.TLS
        and type(data) is bytes
    ):
        try:
            sent = self.socket.send(data)
        except OSError:
            sent = 0  # EAGAIN, or an error doWrite will find and report
        if sent == len(data):
            return
        data = data[sent:]
    FileDescriptor.write(self, data)


tcp.Connection.write = write  # type: ignore[method-assign]

if __name__ == "__main__":
    os.environ["NETLAB_WRITE_THROUGH"] = "0"
    from twisted.scripts.twistd import run

    port, backlog = sys.argv[1], sys.argv[2]
    sys.argv = [
        "twistd",
        "--nodaemon",
        "--pidfile=",
        "--logfile=-",
        "--reactor=epoll",
        "netlab-echo",
        f"--listen=tcp:{port}:interface=127.0.0.1:backlog={backlog}",
        "--idle-timeout=0",
        "--max-connections=20000",
    ]
    run()
