"""
Shared pieces of the checks' tests: the lab's Received: line, and a reactor
whose thread pool runs work at once.
"""

from __future__ import annotations

from typing import Any

from twisted.python.failure import Failure

#: The lab's Received: line as smtp.py writes it (the for clause when the
#: copy is for one recipient).
LAB_RECEIVED = (
    b"Received: from client.example.org ([127.0.0.1])\r\n"
    b"\tby lab.example.test (netlab mail lab) with ESMTPS\r\n"
    b"\tfor <bob@example.test>; Mon, 01 Jan 2024 10:00:01 -0000\r\n"
)


class FakeThreadPool:
    def callInThreadWithCallback(
        self, on_result: Any, f: Any, *a: Any, **kw: Any
    ) -> None:
        try:
            result = f(*a, **kw)
        except BaseException:
            on_result(False, Failure())
        else:
            on_result(True, result)


class FakeReactor:
    """
    IReactorThreads, synchronously: work "in a thread" runs at once.
    """

    def __init__(self) -> None:
        self.pool = FakeThreadPool()

    def getThreadPool(self) -> FakeThreadPool:
        return self.pool

    def callFromThread(self, f: Any, *a: Any, **kw: Any) -> None:
        f(*a, **kw)
