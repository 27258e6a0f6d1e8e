"""
The mail lab's IMAP server (IMAP4rev1, and IMAP4rev2 once enabled): Twisted's
C{IMAP4Server} over the lab's accounts (L{LabRealm}), with the lab's policies.

L{LabIMAPServer} is composed of one mixin per command family, each in its own
module, over the shared state of L{session.IMAPSession} and the argument
parsers of L{arguments}; its factory, L{LabIMAPFactory}, carries the settings.
What they add to, or fix in, C{twisted.mail.imap4.IMAP4Server}:

  - L{connection}: bounds on command lines (C{max_line_length}), on commands
    queued behind a long FETCH and on literals refused unread; tags and
    command names checked; connections idle too long are closed; the fault
    hooks.
  - L{arguments} (with L{syntax}): quoted strings with escapes, literals
    anywhere in SEARCH, LITERAL+, C{*:*}, string literals (Twisted's 4096)
    and APPEND literals (C{max_message_size}) bounded, negative literal
    sizes refused; mailbox names checked (canonical modified UTF-7, or UTF-8
    under IMAP4rev2, no way out of the user's Maildir) before any command
    uses them: a NO otherwise.
  - L{auth}: LOGIN and AUTHENTICATE (PLAIN, LOGIN; SASL-IR) only once TLS is
    on (STARTTLS or implicit TLS) unless plaintext is explicitly allowed;
    LOGINDISABLED and no AUTH= before; commands pipelined behind STARTTLS
    are discarded; ENABLE and ID.
  - L{mailboxes}: SELECT reports PERMANENTFLAGS (with C{\\*}: keywords are
    kept), UIDNEXT, UNSEEN and HIGHESTMODSEQ; UNSELECT; LIST
    (LIST-EXTENDED, LIST-STATUS) and STATUS quote names so that they can be
    sent back.
  - L{fetch}: FETCH rendered here: partial fetches (C{BODY[]<0.100>}),
    sections of parts, C{\\Seen} set by C{BODY[]}, C{BODYSTRUCTURE}/C{ENVELOPE}
    from the stored bytes, BINARY, and streaming with backpressure, fast for
    thousands of messages; C{MODSEQ} and C{CHANGEDSINCE} (CONDSTORE).
  - L{flags}: STORE (keywords, UNCHANGEDSINCE).
  - L{search}: SEARCH, with ESEARCH's RETURN, SEARCHRES and CONDSTORE's
    MODSEQ.
  - L{transfer}: COPY and MOVE (COPYUID), APPEND (APPENDUID), UID EXPUNGE.
  - L{updates}: NOOP, CHECK and IDLE report changes made by other sessions
    and programs (EXPUNGE included); IDLE is told at once of deliveries in
    this process.

Each mixin's overrides come before C{IMAP4Server} in the method resolution
order, so they win over Twisted's; the two hooks that more than one family
needs (C{connectionLost}, C{timeoutConnection}) call C{super()}.
"""

from __future__ import annotations

from typing import Any

from twisted.cred.portal import Portal
from twisted.internet.interfaces import IAddress, IReactorTime
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.mail import imap4

from twisted_netlab.mail.lab.faults import Faults
from twisted_netlab.mail.lab.imap.auth import AuthMixin
from twisted_netlab.mail.lab.imap.connection import ConnectionMixin
from twisted_netlab.mail.lab.imap.fetch import FetchMixin
from twisted_netlab.mail.lab.imap.flags import FlagsMixin
from twisted_netlab.mail.lab.imap.mailboxes import MailboxMixin
from twisted_netlab.mail.lab.imap.search import SearchMixin
from twisted_netlab.mail.lab.imap.transfer import TransferMixin
from twisted_netlab.mail.lab.imap.updates import UpdatesMixin

DEFAULT_MAX_LINE_LENGTH = 65536
DEFAULT_MAX_MESSAGE_SIZE = 64 * 1024 * 1024
DEFAULT_LOGIN_TIMEOUT = 60.0
DEFAULT_IDLE_TIMEOUT = 30 * 60.0
DEFAULT_POLL_INTERVAL = 10.0


class LabIMAPServer(
    UpdatesMixin,
    ConnectionMixin,
    AuthMixin,
    MailboxMixin,
    FetchMixin,
    FlagsMixin,
    SearchMixin,
    TransferMixin,
):
    """
    One IMAP connection to the mail lab; settings come from its
    L{LabIMAPFactory}.
    """

    IDENT = b"netlab mail lab IMAP4rev1 ready"
    factory: LabIMAPFactory

    def __init__(self, factory: LabIMAPFactory) -> None:
        super().__init__(
            chal={
                b"PLAIN": imap4.PLAINCredentials,
                b"LOGIN": imap4.LOGINCredentials,
            },
            contextFactory=factory.tls,
        )
        self.factory = factory
        self.portal = factory.portal  # type: ignore[assignment]
        self.MAX_LENGTH = factory.max_line_length
        self.timeOut = factory.login_timeout  # type: ignore[assignment]
        self.POSTAUTH_TIMEOUT = factory.idle_timeout  # type: ignore[assignment]
        self.callLater = factory.reactor.callLater  # type: ignore[assignment]


class LabIMAPFactory(ServerFactory):
    """
    Build L{LabIMAPServer}s and hold their settings.

    @param portal: logs users in; its realm must give C{IAccount} avatars
        (L{LabRealm}).
    @param tls: server TLS options for STARTTLS; L{None} offers no STARTTLS.
    @param allow_plaintext_auth: allow LOGIN and AUTHENTICATE without TLS
        (only sensible on loopback).
    @param implicit_tls: the factory is served behind TLS (an C{ssl:}
        endpoint), so logging in is allowed from the start.
    @param reactor: schedules timeouts and polls; the global one by default.
    @param max_message_size: the largest APPEND accepted.
    @param max_line_length: the longest command line accepted.
    @param login_timeout: seconds a connection may idle before logging in.
    @param idle_timeout: seconds a logged-in connection may idle (IDLE
        included: clients renew it every 29 minutes).
    @param poll_interval: seconds between looks at the disk for changes by
        other processes while a client is in IDLE; 0 turns that off.
    @param faults: the faults asked at each command (L{None}: none).
    """

    log = Logger()

    def __init__(
        self,
        *,
        portal: Portal,
        tls: Any | None,
        allow_plaintext_auth: bool = False,
        implicit_tls: bool = False,
        reactor: IReactorTime | None = None,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        login_timeout: float = DEFAULT_LOGIN_TIMEOUT,
        idle_timeout: float = DEFAULT_IDLE_TIMEOUT,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        faults: Faults | None = None,
    ) -> None:
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        if max_message_size < 1 or max_line_length < 1024:
            raise ValueError(
                "max_message_size must be positive, max_line_length >= 1024"
            )
        self.portal = portal
        self.tls = tls
        self.allow_plaintext_auth = allow_plaintext_auth
        self.implicit_tls = implicit_tls
        self.reactor: IReactorTime = reactor
        self.max_message_size = max_message_size
        self.max_line_length = max_line_length
        self.login_timeout = login_timeout
        self.idle_timeout = idle_timeout
        self.poll_interval = poll_interval
        self.faults = faults
        if tls is None and not implicit_tls and not allow_plaintext_auth:
            self.log.warn(
                "IMAP has neither TLS nor plaintext login allowed: nobody can log in"
            )

    def buildProtocol(self, addr: IAddress | None) -> LabIMAPServer:  # type: ignore[override]
        return LabIMAPServer(self)


__all__ = ["LabIMAPFactory", "LabIMAPServer"]
