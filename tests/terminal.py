"""
A user at a terminal, for tests of commands that prompt with getpass.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure


class Terminal(ProcessProtocol):
    """
    Drive a process spawned with C{usePTY=True}: type C{answer} and a
    newline each time C{prompt} appears, keep all output, fire C{ended}
    with the exit code.
    """

    def __init__(self, prompt: bytes, answer: bytes) -> None:
        self.prompt = prompt
        self.answer = answer
        self.output = b""
        self.prompts = 0
        self.ended: Deferred[int | None] = Deferred()

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        self.output += data
        if self.output.count(self.prompt) > self.prompts:
            self.prompts += 1
            assert self.transport is not None
            self.transport.write(self.answer + b"\n")

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(getattr(reason.value, "exitCode", None))
