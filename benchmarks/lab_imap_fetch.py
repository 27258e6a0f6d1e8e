"""
How fast an imaplib client fetches a whole mailbox from the mail lab's IMAP
server: N messages (default 5,000) on loopback, one ``UID FETCH 1:*
(BODY.PEEK[])`` after SELECT, timed from connecting to the last byte.

    .venv/bin/python benchmarks/lab_imap_fetch.py [--messages N] [--size BYTES]

The server runs in this process's reactor; the client runs in a thread.
"""

from __future__ import annotations

import argparse
import imaplib
import mailbox
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet import defer, task, threads

from twisted_netlab.mail.lab.account import LabRealm
from twisted_netlab.mail.lab.imap import LabIMAPFactory
from twisted_netlab.mail.lab.maildir import MailStore

USER = "bench@netlab.test"
PASSWORD = "bench"


def make_message(n: int, size: int) -> bytes:
    header = (
        f"From: sender{n}@example.test\r\nTo: {USER}\r\n"
        f"Subject: message {n}\r\nMessage-ID: <{n}@example.test>\r\n\r\n"
    ).encode()
    line = b"x" * 70 + b"\r\n"
    return header + line * max(1, (size - len(header)) // len(line))


def fetch_all(port: int) -> tuple[float, int, int]:
    start = time.perf_counter()
    client = imaplib.IMAP4("127.0.0.1", port)
    client.login(USER, PASSWORD)
    client.select("INBOX")
    _, data = client.uid("FETCH", "1:*", "(BODY.PEEK[])")
    elapsed = time.perf_counter() - start
    client.logout()
    messages = [item for item in data if isinstance(item, tuple)]
    return elapsed, len(messages), sum(len(m[1]) for m in messages)


async def main(reactor: Any, count: int, size: int) -> None:
    directory = Path(tempfile.mkdtemp(prefix="netlab-bench-"))
    try:
        store = MailStore(directory)
        store.ensure_user(USER)
        box = mailbox.Maildir(store.user_path(USER), create=False)
        for n in range(count):
            box.add(make_message(n, size))
        checker = InMemoryUsernamePasswordDatabaseDontUse(**{USER: PASSWORD.encode()})
        portal = Portal(LabRealm(store), [checker])
        factory = LabIMAPFactory(
            portal=portal, tls=None, allow_plaintext_auth=True, reactor=reactor
        )
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        number = port.getHost().port
        first = await threads.deferToThread(fetch_all, number)
        print(f"first open (assigns {count} UIDs): {first[0]:.3f} s")
        runs = [await threads.deferToThread(fetch_all, number) for _ in range(3)]
        best = min(runs)
        seconds, fetched, total = best
        print(
            f"fetched {fetched} messages ({total / 1e6:.1f} MB) in {seconds:.3f} s "
            f"(best of 3): {fetched / seconds:.0f} messages/s"
        )
        await defer.maybeDeferred(port.stopListening)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--size", type=int, default=4096)
    args = parser.parse_args()
    task.react(
        lambda reactor: defer.ensureDeferred(main(reactor, args.messages, args.size))
    )
