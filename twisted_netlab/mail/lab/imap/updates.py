"""
Staying in sync with the store: NOOP, CHECK and IDLE report what other
sessions and programs changed in the selected mailbox (EXPUNGE included).
IDLE is told at once of deliveries and expunges in this process, and looks
at the disk every C{poll_interval} seconds for other processes' changes.
"""

from __future__ import annotations

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure

from twisted_netlab.mail.lab.imap.account import LabMailbox
from twisted_netlab.mail.lab.imap.arguments import ArgumentParsers
from twisted_netlab.mail.lab.imap.session import command_entry


class UpdatesMixin(ArgumentParsers):
    """
    NOOP, CHECK, IDLE (with its poll of the disk) and the mailbox
    listener's news of messages come and gone.
    """

    _poll_call: IDelayedCall | None = None
    _idling = False

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._stop_polling()
        super().connectionLost(reason)

    def timeoutConnection(self) -> None:
        self._stop_polling()
        super().timeoutConnection()

    def _sync_mailbox(self) -> None:
        """
        Report what others changed in the selected mailbox, expunges included.
        """
        mbox = self.mbox
        if isinstance(mbox, LabMailbox):
            mbox.poll()
            for seq in mbox.take_expunged():
                self.sendUntaggedResponse(b"%d EXPUNGE" % (seq,))

    def do_NOOP(self, tag: bytes) -> None:
        self._sync_mailbox()
        self.sendPositiveResponse(tag, b"NOOP completed")

    unauth_NOOP = command_entry(
        do_NOOP,
    )
    auth_NOOP = unauth_NOOP
    select_NOOP = unauth_NOOP
    logout_NOOP = unauth_NOOP

    def do_CHECK(self, tag: bytes) -> None:
        self._sync_mailbox()
        self.sendPositiveResponse(tag, b"CHECK completed")

    select_CHECK = command_entry(
        do_CHECK,
    )

    def do_IDLE(self, tag: bytes) -> None:
        self._sync_mailbox()
        self.sendContinuationRequest(b"idling")
        self.parseTag = tag
        self.lastState = self.parseState
        self.parseState = "idle"
        self._idling = True
        self._schedule_poll()

    select_IDLE = command_entry(
        do_IDLE,
    )
    auth_IDLE = select_IDLE

    def parse_idle(self, line: bytes) -> None:
        self._stop_polling()
        self._idling = False
        self.parseState = self.lastState
        del self.lastState
        tag = self.parseTag
        del self.parseTag
        if line.strip().upper() == b"DONE":
            self.sendPositiveResponse(tag, b"IDLE terminated")
        else:
            self.sendBadResponse(tag, b"IDLE ended: expected DONE")

    def _schedule_poll(self) -> None:
        interval = self.factory.poll_interval
        if interval and self.mbox is not None:
            self._poll_call = self.factory.reactor.callLater(interval, self._poll_idle)

    def _poll_idle(self) -> None:
        self._poll_call = None
        if self._idling:
            self._sync_mailbox()
            self._schedule_poll()

    def _stop_polling(self) -> None:
        if self._poll_call is not None and self._poll_call.active():
            self._poll_call.cancel()
        self._poll_call = None

    def expunges_pending(self) -> None:
        """
        Messages of the selected mailbox were expunged elsewhere: tell the
        client now if it is in IDLE (otherwise at its next NOOP or CHECK).
        """
        if self._idling and isinstance(self.mbox, LabMailbox):
            for seq in self.mbox.take_expunged():
                self.sendUntaggedResponse(b"%d EXPUNGE" % (seq,))

    def newMessages(self, exists: int | None, recent: int | None) -> None:
        super().newMessages(exists, None if self.rev2 else recent)
