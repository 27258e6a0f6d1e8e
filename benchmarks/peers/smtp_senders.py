"""
The SMTP load: SENDERS processes, each an smtplib client sending its share
of MESSAGES messages of about SIZE bytes to RECIPIENT, PER_CONNECTION
messages on each connection (then QUIT and a new connection), all starting
at once.

    python smtp_senders.py PORT SENDERS MESSAGES PER_CONNECTION SIZE RECIPIENT

Prints one JSON object: seconds from the start signal to the last sender's
end, messages accepted, the senders' CPU seconds, and the first error if any.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import resource
import smtplib
import sys
import threading
import time

PORT, SENDERS, MESSAGES, PER_CONNECTION, SIZE = map(int, sys.argv[1:6])
RECIPIENT = sys.argv[6]
LINE = b"The quick brown fox jumps over the lazy dog. 0123456789\r\n"


def message(sender: int, n: int) -> bytes:
    head = (
        f"From: Sender {sender} <sender{sender}@bench.example>\r\n"
        f"To: <{RECIPIENT}>\r\n"
        f"Subject: load {sender}.{n}\r\n"
        f"Message-ID: <{sender}.{n}.{os.getpid()}@bench.example>\r\n\r\n"
    ).encode()
    return head + LINE * max(1, (SIZE - len(head)) // len(LINE))


def send(
    sender: int,
    count: int,
    start: threading.Barrier,
    results: multiprocessing.Queue[tuple[int, str | None]],
) -> None:
    try:
        sent = 0
        bodies = [message(sender, n) for n in range(count)]
        start.wait(60)
        while sent < count:
            with smtplib.SMTP("127.0.0.1", PORT, timeout=120) as client:
                for body in bodies[sent : sent + PER_CONNECTION]:
                    client.sendmail(f"sender{sender}@bench.example", [RECIPIENT], body)
                    sent += 1
        results.put((sent, None))
    except Exception as e:  # reported, not raised: the parent sums up
        results.put((sent, f"{type(e).__name__}: {e}"))


def main() -> None:
    multiprocessing.set_start_method("fork")
    start = multiprocessing.Barrier(SENDERS + 1)  # all ready, then all go
    results: multiprocessing.Queue[tuple[int, str | None]] = multiprocessing.Queue()
    shares = [MESSAGES // SENDERS + (i < MESSAGES % SENDERS) for i in range(SENDERS)]
    workers = [
        multiprocessing.Process(target=send, args=(i, share, start, results))
        for i, share in enumerate(shares)
    ]
    for w in workers:
        w.start()
    start.wait(60)
    began = time.perf_counter()
    outcomes = [results.get() for _ in workers]
    seconds = time.perf_counter() - began
    for w in workers:
        w.join()
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    errors = [e for _, e in outcomes if e]
    print(
        json.dumps(
            {
                "seconds": seconds,
                "accepted": sum(n for n, _ in outcomes),
                "senders_cpu": usage.ru_utime + usage.ru_stime,
                "error": errors[0] if errors else None,
            }
        )
    )


main()
