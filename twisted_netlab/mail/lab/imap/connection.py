"""
The IMAP connection itself, below the commands: logging it, its bounds
(command lines, commands queued behind a long FETCH, literals refused before
they were read), the tags and command names accepted, and the fault hooks
(L{twisted_netlab.mail.lab.faults}) asked at the greeting and at each
command.
"""

from __future__ import annotations

import re
from typing import Any

from twisted.internet.protocol import connectionDone
from twisted.mail import imap4
from twisted.python.failure import Failure

from twisted_netlab.addresses import describe_address
from twisted_netlab.mail.lab.faults import imap_fault
from twisted_netlab.mail.lab.imap.arguments import ArgumentParsers
from twisted_netlab.mail.lab.imap.session import IMAPSession
from twisted_netlab.mail.lab.imap.syntax import literal_at_end

# Commands a client may queue behind a FETCH that is still being sent.
_MAX_QUEUED_COMMANDS = 1000
#: A command tag: ASCII, no SP, CTL, "(", ")", "{", "%", "*", '"', "\\" or "+".
_TAG = re.compile(rb'[^\x00-\x20\x7f-\xff(){%*"\\+]+\Z')


class _DiscardedLiteral:
    """
    The octets of a literal nobody will read, counted and dropped; then the
    rest of its line goes to C{after} (which may find another literal).
    """

    def __init__(self, size: int, after: Any) -> None:
        self.size = size
        self.after = after

    def write(self, data: bytes) -> bytes | None:
        if len(data) < self.size:
            self.size -= len(data)
            return None
        passon = data[self.size :]
        self.size = 0
        return passon

    def callback(self, line: bytes) -> None:
        self.after(line)


class ConnectionMixin(ArgumentParsers):
    """
    Connection events, line framing and command dispatch.
    """

    def connectionMade(self) -> None:
        self.factory.log.debug(
            "IMAP connection from {peer}",
            peer=describe_address(self.transport.getPeer()),
        )
        super().connectionMade()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.mbox is not None:
            self.mbox.removeListener(self)
            self.mbox = None
        super().connectionLost(reason)

    def timeoutConnection(self) -> None:
        self.factory.log.info(
            "Closing IMAP connection from {peer}: idle too long",
            peer=describe_address(self.transport.getPeer()),
        )
        super().timeoutConnection()

    def lineLengthExceeded(self, line: bytes) -> None:
        self.sendLine(b"* BYE Line too long: the limit is %d bytes" % self.MAX_LENGTH)
        self.transport.loseConnection()

    def lineReceived(self, line: bytes) -> None:
        if self.blocked is not None and len(self.blocked) >= _MAX_QUEUED_COMMANDS:
            self.sendLine(b"* BYE Too many commands sent ahead")
            self.transport.loseConnection()
            return
        super().lineReceived(line)

    def parse_command(self, line: bytes) -> Any:
        words = line.split(None, 1)
        if words and not _TAG.match(words[0]):
            # Not a tag (RFC 3501: ASTRING-CHARs but "+"): never run it, or
            # "* IDLE" would start an IDLE whose answers no client can match.
            self.sendBadResponse(None, b"Invalid tag")
            self._discard_unread_literal(line)
            return None
        result = super().parse_command(line)
        self._discard_unread_literal(line)
        return result

    def parse_pending(self, line: bytes) -> None:
        super().parse_pending(line)
        self._discard_unread_literal(line)

    def _discard_unread_literal(self, line: bytes) -> None:
        """
        A command refused before its arguments were all read may have sent
        a non-synchronizing literal (C{{n+}}) at the end of C{line}: read
        and drop its octets (and the rest of the command after them), so
        that they are not taken for commands. Too large to drop: close.
        """
        if self.parseState != "command" or self.transport.disconnecting:
            return
        announced = literal_at_end(line)
        if announced is None or announced.synchronizing:
            return
        if announced.size > self.factory.max_message_size:
            self.sendLine(b"* BYE [TOOBIG] literal too large to skip")
            self.transport.loseConnection()
            return
        self.parseState = "pending"
        self._pendingLiteral = _DiscardedLiteral(  # type: ignore[assignment]
            announced.size, self._discard_unread_literal
        )
        self.setRawMode()

    def lookupCommand(self, cmd: bytes) -> Any:
        if not cmd.isalpha() or not cmd.isascii():
            return None
        return super().lookupCommand(cmd)

    def sendContinuationRequest(self, msg: bytes | None = b"Ready") -> None:
        # RFC 3501: "+" SP, even with an empty challenge (Twisted sends "+").
        self.sendLine(b"+ " + (msg or b""))

    # --- faults (lab.faults) ----------------------------------------------------

    def sendServerGreeting(self) -> None:
        if imap_fault(self, "connect", None):
            return
        super().sendServerGreeting()

    def dispatchCommand(
        self, tag: bytes, cmd: bytes, rest: bytes | None, uid: int | None = None
    ) -> Any:
        if (
            self.factory.faults
            and cmd != b"UID"
            and self.lookupCommand(cmd) is not None
            and imap_fault(self, cmd.decode("ascii"), tag, user=_user(self, cmd, rest))
        ):
            return None
        return super().dispatchCommand(tag, cmd, rest, uid)


def _user(server: IMAPSession, cmd: bytes, rest: bytes | None) -> str | None:
    """
    Who the session is (or, at LOGIN, says it is), for faults to match.
    """
    address = getattr(server.account, "address", None)
    if isinstance(address, str):
        return address
    if cmd == b"LOGIN" and rest and not rest.startswith(b"{"):
        try:
            return imap4.splitQuoted(rest)[0].decode("utf-8", "replace")
        except (IndexError, imap4.MismatchedQuoting):
            return None
    return None
