"""
A network link with latency, in user space: every byte received on one side
is sent on from the other side DELAY_MS milliseconds later, in both
directions, so a round trip through the link takes 2 x DELAY_MS longer.

    python delay_link.py LISTEN_PORT TARGET_PORT DELAY_MS

Listens on 127.0.0.1:LISTEN_PORT and connects each client to
127.0.0.1:TARGET_PORT.  Bandwidth is not limited and nothing is dropped
(it buffers whatever arrives); TCP's congestion control over a long path is
not modelled, only the time a byte takes to cross.  Used by the mail fetch
benchmark because this kernel has no netem queueing discipline.

Single-threaded, select() (microsecond timeouts, unlike epoll's
milliseconds).  Prints "ready" once listening; SIGTERM ends it.
"""

import collections
import contextlib
import ctypes
import select
import signal
import socket
import sys
import time

LISTEN_PORT, TARGET_PORT = int(sys.argv[1]), int(sys.argv[2])
DELAY = float(sys.argv[3]) / 1000
CHUNK = 256 * 1024


class Direction:
    """
    Bytes read from C{source}, due to be written to C{sink}.
    """

    def __init__(self, source: socket.socket, sink: socket.socket) -> None:
        self.source, self.sink = source, sink
        # (due, bytes), due times ascending
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.eof = False  # the source has closed its side
        self.eof_due = 0.0  # ...and the close is passed on then
        self.done = False  # ...and it was

    def next_due(self) -> float | None:
        if self.queue:
            return self.queue[0][0]
        if self.eof and not self.done:
            return self.eof_due
        return None

    def read(self, now: float) -> None:
        try:
            data = self.source.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data:
            self.queue.append((now + DELAY, data))
        else:
            self.eof, self.eof_due = True, now + DELAY

    def flush(self, now: float) -> bool:
        """
        Write what is due; True if the sink cannot take more now.
        """
        while self.queue and self.queue[0][0] <= now:
            due, data = self.queue[0]
            try:
                sent = self.sink.send(data)
            except (BlockingIOError, InterruptedError):
                return True
            except OSError:
                self.queue.clear()
                self.eof, self.eof_due = True, now
                return False
            if sent < len(data):
                self.queue[0] = (due, data[sent:])
                return True
            self.queue.popleft()
        if self.eof and not self.queue and not self.done and self.eof_due <= now:
            self.done = True
            with contextlib.suppress(OSError):
                self.sink.shutdown(socket.SHUT_WR)
        return False


class Link:
    """
    One client's connection and the one to the target made for it.
    """

    def __init__(self, client: socket.socket) -> None:
        self.client = client
        self.server = socket.create_connection(("127.0.0.1", TARGET_PORT))
        for s in (self.client, self.server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
        self.up = Direction(self.client, self.server)
        self.down = Direction(self.server, self.client)
        self.directions = (self.up, self.down)

    def finished(self) -> bool:
        return self.up.done and self.down.done

    def close(self) -> None:
        self.client.close()
        self.server.close()


def main() -> None:
    # Wake up on time: no timer slack (the default is 50 us).
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(29, 1, 0, 0, 0)  # PR_SET_TIMERSLACK
    signal.signal(signal.SIGTERM, lambda *args: sys.exit(0))
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", LISTEN_PORT))
    listener.listen(64)
    listener.setblocking(False)
    print("ready", flush=True)
    links: list[Link] = []
    while True:
        now = time.monotonic()
        readers, writers = [listener], []
        due: list[float] = []
        for link in links:
            for d in link.directions:
                if not d.eof:
                    readers.append(d.source)
                blocked = d.flush(now)
                if blocked:
                    writers.append(d.sink)
                when = d.next_due()
                if when is not None and not blocked:
                    due.append(when)
        for link in [link for link in links if link.finished()]:
            link.close()
            links.remove(link)
        timeout = max(0.0, min(due) - time.monotonic()) if due else None
        readable, _, _ = select.select(readers, writers, [], timeout)
        now = time.monotonic()
        for s in readable:
            if s is listener:
                try:
                    client, _ = listener.accept()
                except OSError:
                    continue
                try:
                    links.append(Link(client))
                except OSError:
                    client.close()
                continue
            for link in links:
                for d in link.directions:
                    if d.source is s and not d.eof:
                        d.read(now)


if __name__ == "__main__":
    main()
