"""
The twisted.mail delivery side of the lab's SMTP server: where each
recipient's copy goes (L{LabDelivery}, C{IMessageDelivery}) and one
message arriving for all its recipients (L{Transaction}, with a
L{LabMessage}, C{IMessageSMTP}, per recipient): its bytes held once, and
stored once per mailbox when the last recipient has seen its end.

The connection it arrives on (L{server.LabESMTP
<twisted_netlab.mail.lab.smtp.server.LabESMTP>}) tells it the limits, and
is asked to store the message (L{Store}): it knows the envelope and the
C{Received:} lines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.cred.portal import IRealm
from twisted.internet import defer
from twisted.mail import smtp
from twisted.mail.interfaces import IMessageDelivery, IMessageSMTP
from zope.interface import implementer

from twisted_netlab.mail.lab.store.maildir import Envelope

#: Stores one message in the INBOX of each mailbox address of C{copies}
#: (address -> the C{Received:} header that starts its copy), with the
#: envelope, durably, all or nothing; returns (or a Deferred of) the UID of
#: each copy by address, and raises (or fails) when it could not store them.
Deliver = Callable[[bytes, Mapping[str, bytes], Envelope], Any]

#: The mailbox address that mail for an address goes to (or raises
#: C{smtp.SMTPBadRcpt}): the factory's L{LabSMTPFactory.local_recipient
#: <twisted_netlab.mail.lab.smtp.server.LabSMTPFactory.local_recipient>}.
Route = Callable[[smtp.Address], str]
#: Stores a transaction's message (C{body}) once per mailbox; a Deferred of
#: what L{Deliver} returns.
Store = Callable[["Transaction", bytes], defer.Deferred[Any]]


class Transaction:
    """
    One message arriving for all its recipients: its bytes, held once, and
    the recipients' L{LabMessage}s.  When the last of them has seen the end
    of the message, it is stored once per mailbox, with its envelope.
    """

    def __init__(self, max_size: int, smtputf8: bool, store: Store) -> None:
        self.max_size = max_size
        self.smtputf8 = smtputf8
        self.store = store
        self.size = 0
        self.members: list[LabMessage] = []
        self._ended = 0
        self._lines: list[bytes] | None = []
        self._joined: bytes | None = None

    def join(self, message: LabMessage) -> None:
        self.members.append(message)

    def add(self, message: LabMessage, line: bytes) -> None:
        if not self.members or message is not self.members[0] or self._lines is None:
            return
        self.add_bytes(line, 2)

    def add_bytes(self, data: bytes, extra: int = 0) -> None:
        """
        Keep C{data} (a line, or a BDAT chunk), counting C{extra} more bytes
        (its line end).

        @raise smtp.SMTPServerError: 552 once the message is too big; all of
            it is dropped then.
        """
        if self._lines is None:
            return
        self.size += len(data) + extra
        if self.size > self.max_size:
            self.discard()
            raise smtp.SMTPServerError(
                552,
                b"5.3.4 Message too big: the limit is %d bytes; nothing was stored"
                % (self.max_size,),
            )
        self._lines.append(data)

    def data(self, separator: bytes = b"\r\n") -> bytes:
        if self._joined is None:
            assert self._lines is not None, "the message was discarded"
            if separator:
                self._lines.append(b"")
            self._joined = separator.join(self._lines)
            self._lines = None
        return self._joined

    def discard(self) -> None:
        self._lines = None
        self._joined = None

    def end(self, message: LabMessage) -> defer.Deferred[Any]:
        """
        One recipient saw the end of the message; after the last one, store
        it.
        """
        self._ended += 1
        if self._ended < len(self.members):
            return defer.succeed(None)
        return self.deliver(self.data())

    def deliver(self, body: bytes) -> defer.Deferred[Any]:
        """
        Store C{body} once per mailbox of the recipients, with the envelope.
        """
        self.discard()
        return self.store(self, body)

    def mailboxes(self) -> dict[str, list[LabMessage]]:
        """
        The recipients, by the mailbox their copy goes to.
        """
        by_mailbox: dict[str, list[LabMessage]] = {}
        for member in self.members:
            by_mailbox.setdefault(member.address, []).append(member)
        return by_mailbox


@implementer(IMessageSMTP)
class LabMessage:
    """
    One recipient's part in a message arriving by SMTP: the mailbox its
    copy goes to, in a L{Transaction} shared with the other recipients.
    """

    def __init__(
        self,
        transaction: Transaction,
        address: str,
        user: smtp.User,
        sender: str | None,
    ) -> None:
        self.transaction = transaction
        self.address = address
        self.user = user
        self.sender = sender
        transaction.join(self)

    def lineReceived(self, line: bytes) -> None:
        self.transaction.add(self, line)

    def eomReceived(self) -> defer.Deferred[Any]:
        return self.transaction.end(self)

    def connectionLost(self) -> None:
        self.transaction.discard()


@implementer(IMessageDelivery)
class LabDelivery:
    """
    Where mail goes: to existing users of the local domains, or to the
    catch-all.

    One per connection; C{sender} is the authenticated address (after
    C{AUTH}), or L{None}.
    """

    def __init__(self, route: Route, sender: str | None) -> None:
        self.route = route
        self.sender = sender

    def receivedHeader(self, helo: Any, origin: Any, recipients: Any) -> None:
        """
        Nothing: each mailbox's copy gets its own C{Received:} header when
        it is stored, so that the size limit counts the client's bytes only.
        """
        return None

    def validateFrom(self, helo: Any, origin: smtp.Address) -> smtp.Address:
        return origin

    def validateTo(self, user: smtp.User) -> Callable[[], LabMessage]:
        address = self.route(user.dest)
        protocol = user.protocol
        sender = self.sender

        def message() -> LabMessage:
            return LabMessage(protocol.transaction, address, user, sender)

        return message


@implementer(IRealm)
class LabSMTPRealm:
    """
    Gives an authenticated SMTP client a L{LabDelivery} for its address.
    """

    def __init__(self, route: Route) -> None:
        self.route = route

    def requestAvatar(
        self, avatarId: bytes | tuple[()], mind: object, *interfaces: Any
    ) -> tuple[Any, LabDelivery, Callable[[], None]]:
        if IMessageDelivery not in interfaces or not isinstance(avatarId, bytes):
            raise NotImplementedError("the SMTP realm gives users IMessageDelivery")
        sender = avatarId.decode("ascii")
        return IMessageDelivery, LabDelivery(self.route, sender), lambda: None
