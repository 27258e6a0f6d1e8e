"""
What every command family of the lab's IMAP server shares: the settings it
reads from its factory, the extensions the client has enabled, and how
mailbox names and flags are shown to this session.

L{IMAPSession} is the base of the command-family mixins (L{arguments},
L{connection}, L{auth}, L{mailboxes}, L{fetch}, L{flags}, L{search},
L{transfer}, L{updates}); L{server.LabIMAPServer} is composed of them.
"""

from __future__ import annotations

from typing import Any, Protocol

from twisted.internet.interfaces import IReactorTime
from twisted.logger import Logger
from twisted.mail import imap4

from twisted_netlab.mail.lab.faults import Faults
from twisted_netlab.mail.lab.imap.account import LabMailbox


class ServerSettings(Protocol):
    """
    The settings of L{server.LabIMAPFactory} that the command families read
    (as C{self.factory}).
    """

    log: Logger
    reactor: IReactorTime
    implicit_tls: bool
    allow_plaintext_auth: bool
    max_message_size: int
    poll_interval: float
    faults: Faults | None


def command_entry(*parts: Any) -> Any:
    """
    An C{IMAP4Server} command table entry: the handler, then its argument
    parsers and fixed arguments.
    """
    return parts


def ascii_bytes(error: BaseException) -> bytes:
    """An error's text as it goes into a response."""
    return str(error).encode("ascii", "backslashreplace")


def flags_item(flags: list[str]) -> bytes:
    """The C{FLAGS (...)} item of a FETCH response."""
    return b"FLAGS (" + " ".join(flags).encode("utf-8") + b")"


class IMAPSession(imap4.IMAP4Server):
    """
    C{IMAP4Server} with the state the lab's command families share: what
    was enabled (ENABLE, or implied by CONDSTORE's use) and the flags last
    shown for the selected mailbox.
    """

    factory: ServerSettings
    transport: Any
    mbox: Any

    enabled: frozenset[bytes] = frozenset()

    @property
    def condstore(self) -> bool:
        """Whether this session has CONDSTORE on (RFC 7162 section 3)."""
        return b"CONDSTORE" in self.enabled

    @property
    def rev2(self) -> bool:
        """
        Whether the client enabled IMAP4rev2: SEARCH answers with ESEARCH,
        no C{\\Recent} or RECENT, mailbox names in UTF-8, C{[CLOSED]}.
        """
        return b"IMAP4REV2" in self.enabled

    @property
    def utf8_names(self) -> bool:
        """
        Whether mailbox names are UTF-8 rather than modified UTF-7: once
        IMAP4rev2 or UTF8=ACCEPT (RFC 6855) is enabled.
        """
        return bool({b"IMAP4REV2", b"UTF8=ACCEPT"} & self.enabled)

    def wire_name(self, name: str) -> bytes:
        """A mailbox name as sent: UTF-8 once enabled, else modified UTF-7."""
        return name.encode("utf-8" if self.utf8_names else "imap4-utf-7")

    def visible_flags(self, flags: list[str]) -> list[str]:
        """C{flags} as this session shows them (no C{\\Recent} in IMAP4rev2)."""
        if self.rev2:
            return [f for f in flags if f != "\\Recent"]
        return flags

    def _enable_condstore(self) -> None:
        if not self.condstore:
            self.enabled = self.enabled | {b"CONDSTORE"}

    def _send_flags(self, mbox: LabMailbox) -> None:
        """
        The FLAGS and PERMANENTFLAGS responses: system flags and the
        mailbox's keywords; C{\\*} while new keywords can be stored.
        """
        flags = " ".join(mbox.getFlags()).encode("utf-8")
        self.sendUntaggedResponse(b"FLAGS (" + flags + b")")
        self._shown_flags = flags
        permanent = flags if mbox.isWriteable() else b""
        if mbox.isWriteable() and mbox.can_add_keywords():
            permanent += b" \\*"
        self.sendPositiveResponse(
            None, b"[PERMANENTFLAGS (" + permanent.strip() + b")] Flags kept"
        )

    _shown_flags = b""

    def _flags_grew(self) -> None:
        """Tell the client of keywords defined since it last heard (STORE)."""
        mbox = self.mbox
        if (
            isinstance(mbox, LabMailbox)
            and " ".join(mbox.getFlags()).encode("utf-8") != self._shown_flags
        ):
            self._send_flags(mbox)
