"""
IMAP accounts over the mail store: L{LabRealm} gives each logged-in user a
L{LabAccount} (C{IAccount}) over their Maildir++ folders; selecting a mailbox
gives a L{LabMailbox} (C{IMailbox}), one session's view of a L{Folder} with
its own message sequence numbers, whose messages are L{LabMessage}s
(C{IMessage}).
"""

from __future__ import annotations

import bisect
import contextlib
import datetime
import email.utils
import re
import threading
from array import array
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from twisted.cred.portal import IRealm
from twisted.internet import defer
from twisted.internet.interfaces import IReactorFromThreads
from twisted.mail import imap4
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_netlab.mail.lab.imap.message import MessagePart, to_crlf
from twisted_netlab.mail.lab.store import search
from twisted_netlab.mail.lab.store.maildir import (
    DELETED,
    HIERARCHY_DELIMITER,
    INBOX,
    SEEN,
    SYSTEM_FLAGS,
    Folder,
    FolderChange,
    FolderStatus,
    InvalidName,
    MailboxExists,
    MailboxHasChildren,
    MailStore,
    MailStoreError,
    MessageGone,
    NoSuchMailbox,
    validate_mailbox_name,
)

RECENT = "\\Recent"
#: The mailboxes LIST marks with a SPECIAL-USE attribute (RFC 6154), by name;
#: C{twistd netlab} creates them for the user it makes.
SPECIAL_USE = {
    "Drafts": "\\Drafts",
    "Junk": "\\Junk",
    "Sent": "\\Sent",
    "Trash": "\\Trash",
}
_MONTH_NAMES: tuple[str, ...] = ("jan", "feb", "mar", "apr", "may", "jun")
_MONTH_NAMES += ("jul", "aug", "sep", "oct", "nov", "dec")
_MONTHS = {name: number for number, name in enumerate(_MONTH_NAMES, 1)}
_APPEND_DATE = re.compile(
    rb"^ ?(\d{1,2})-([A-Za-z]{3})-(\d{4}) (\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)$"
)


def _search_set(text: bytes, last: int) -> imap4.MessageSet:
    """
    The sequence (or UID) set of a SEARCH key; one that does not parse is
    the query's error (the client gets BAD), not a server error.
    """
    try:
        return imap4.parseIdList(text, last)
    except (imap4.IllegalIdentifierError, ValueError):
        shown = text.decode("ascii", "replace")
        raise imap4.IllegalQueryError(f"bad sequence set {shown!r}") from None


def _ascii(text: str) -> str:
    """C{text} made ASCII for a protocol line (Twisted insists on ASCII)."""
    return text.encode("ascii", "backslashreplace").decode("ascii")


def _mailbox_exception(error: MailStoreError) -> imap4.MailboxException:
    """The NO for a refusal, with RFC 9051's response code for its kind."""
    code = ""
    for kind, name in _RESPONSE_CODES:
        if isinstance(error, kind):
            code = f"[{name}] "
            break
    return imap4.MailboxException(code + _ascii(str(error)))


_RESPONSE_CODES: tuple[tuple[type[MailStoreError], str], ...] = (
    (MailboxExists, "ALREADYEXISTS"),
    (NoSuchMailbox, "NONEXISTENT"),
    (MailboxHasChildren, "HASCHILDREN"),
    (InvalidName, "CANNOT"),
)


@implementer(IRealm)
class LabRealm:
    """
    The realm of the lab's IMAP server: an avatar ID (the login address) gets
    a L{LabAccount} over that user's Maildir, created if missing.

    @param reactor: used to pass mailbox changes made in other threads (a
        delivery in a thread pool) to the sessions; the global reactor by
        default.
    """

    def __init__(
        self, store: MailStore, *, reactor: IReactorFromThreads | None = None
    ) -> None:
        self.store = store
        self.reactor = reactor

    def requestAvatar(  # type: ignore[override]
        self, avatarId: bytes | str, mind: object, *interfaces: Any
    ) -> tuple[Any, LabAccount, Callable[[], None]]:
        if imap4.IAccount not in interfaces:
            raise NotImplementedError("the mail lab only serves IMAP accounts")
        address = avatarId.decode("utf-8") if isinstance(avatarId, bytes) else avatarId
        self.store.ensure_user(address)
        account = LabAccount(self.store, address, reactor=self.reactor)
        return imap4.IAccount, account, account.logout


@implementer(imap4.IMailboxInfo)
class _MailboxInfo:
    """
    What LIST says of a mailbox: its attributes and the delimiter.
    """

    def __init__(self, attributes: Sequence[str]) -> None:
        self.attributes = list(attributes)

    def getFlags(self) -> list[str]:
        return self.attributes

    def getHierarchicalDelimiter(self) -> str:
        return HIERARCHY_DELIMITER


def _wildcard_pattern(pattern: str) -> re.Pattern[str]:
    parts = []
    for c in pattern:
        if c == "*":
            parts.append(".*")
        elif c == "%":
            parts.append("[^" + re.escape(HIERARCHY_DELIMITER) + "]*")
        else:
            parts.append(re.escape(c))
    return re.compile("".join(parts), re.DOTALL)


@implementer(imap4.IAccount, imap4.INamespacePresenter)
class LabAccount:
    """
    One user's mailboxes, as IMAP sees them.
    """

    def __init__(
        self,
        store: MailStore,
        address: str,
        *,
        reactor: IReactorFromThreads | None = None,
    ) -> None:
        self.store = store
        self.address = address
        self.reactor = reactor
        self._open: list[LabMailbox] = []

    def logout(self) -> None:
        """Close every mailbox view still open (the connection ended)."""
        for mailbox in list(self._open):
            mailbox.close()

    # --- IAccount --------------------------------------------------------------

    def addMailbox(self, name: str, mbox: object = None) -> bool:
        return self.create(name)

    def create(self, pathspec: str) -> bool:
        name = pathspec
        if name.endswith(HIERARCHY_DELIMITER):
            name = name[:-1]
        try:
            self.store.create_mailbox(self.address, name)
        except MailStoreError as e:
            raise _mailbox_exception(e) from None
        return True

    def select(self, name: str, rw: bool = True) -> LabMailbox | None:
        try:
            folder = self.store.folder(self.address, name)
            return LabMailbox(self, folder, writeable=bool(rw))
        except MailStoreError:
            return None

    def status(self, name: str, items: Iterable[str]) -> dict[str, int]:
        """
        STATUS of mailbox C{name}: the values of C{items} (C{MESSAGES},
        C{UNSEEN}...), by upper-case name, from the counts the folder keeps
        (no session view is made).

        @raise NoSuchMailbox: there is no such mailbox.
        @raise imap4.IllegalQueryError: an unknown item.
        """
        folder = self.store.folder(self.address, name)
        folder.refresh()
        return status_items(folder, folder.status(), items)

    def delete(self, name: str) -> bool:
        try:
            self.store.delete_mailbox(self.address, name)
        except MailStoreError as e:
            raise _mailbox_exception(e) from None
        return True

    def rename(self, oldname: str, newname: str) -> bool:
        try:
            self.store.rename_mailbox(self.address, oldname, newname)
        except MailStoreError as e:
            raise _mailbox_exception(e) from None
        return True

    def isSubscribed(self, name: str) -> bool:
        try:
            canonical = validate_mailbox_name(name)
        except MailStoreError:
            return False
        return canonical in self.store.subscriptions(self.address)

    def subscribe(self, name: str) -> bool:
        """
        Subscribe to an existing mailbox (RFC 3501 lets the server check;
        clients such as imapclient expect it to).
        """
        try:
            self.store.folder(self.address, name)
            self.store.set_subscribed(self.address, name, True)
        except MailStoreError as e:
            raise _mailbox_exception(e) from None
        return True

    def unsubscribe(self, name: str) -> bool:
        try:
            self.store.set_subscribed(self.address, name, False)
        except MailStoreError as e:
            raise _mailbox_exception(e) from None
        return True

    def listMailboxes(self, ref: str, wildcard: str) -> list[tuple[str, _MailboxInfo]]:
        if not wildcard:
            # LIST "" "": the hierarchy delimiter and the root.
            return [("", _MailboxInfo(["\\Noselect"]))]
        existing = self.store.mailboxes(self.address)
        names = set(existing)
        implied = set()
        for name in existing:
            levels = name.split(HIERARCHY_DELIMITER)
            for depth in range(1, len(levels)):
                parent = HIERARCHY_DELIMITER.join(levels[:depth])
                if parent not in names:
                    implied.add(parent)
        everything = sorted(names | implied, key=lambda n: (n != INBOX, n))
        pattern = _wildcard_pattern(ref + wildcard)
        result = []
        for name in everything:
            candidate = name
            if name == INBOX and pattern.fullmatch("INBOX") is None:
                # INBOX matches in any case.
                if not any(
                    pattern.fullmatch(v) for v in ("inbox", "Inbox", name.lower())
                ):
                    continue
            elif pattern.fullmatch(candidate) is None:
                continue
            prefix = name + HIERARCHY_DELIMITER
            has_children = any(other.startswith(prefix) for other in everything)
            attributes = ["\\HasChildren" if has_children else "\\HasNoChildren"]
            if name in implied:
                attributes.insert(0, "\\Noselect")
            elif name in SPECIAL_USE:
                attributes.append(SPECIAL_USE[name])
            result.append((name, _MailboxInfo(attributes)))
        return result

    # --- INamespacePresenter ---------------------------------------------------

    def getPersonalNamespaces(self) -> list[list[str]]:
        return [["", HIERARCHY_DELIMITER]]

    def getSharedNamespaces(self) -> None:
        return None

    def getUserNamespaces(self) -> None:
        return None


@implementer(
    imap4.IMailbox,
    imap4.ISearchableMailbox,
    imap4.IMessageCopier,
    imap4.ICloseableMailbox,
)
class LabMailbox:
    """
    One session's view of a folder: the sequence numbers it has told the
    client about, its C{\\Recent} messages, and what it still has to tell
    (new messages at once, expunges when the protocol allows).

    Changes made to the folder by anyone in this process (a delivery, another
    session) arrive through the folder's listeners; those made by other
    processes are noticed by L{poll}.
    """

    def __init__(self, account: LabAccount, folder: Folder, *, writeable: bool) -> None:
        self.account = account
        self.folder = folder
        self.writeable = writeable
        folder.refresh()
        self._snapshot = folder.snapshot()
        #: The UIDs of the messages this session has been told of, by
        #: sequence number (from 0).
        self._uids: array[int] = self._snapshot.uids
        self._recent = self._snapshot.recent
        self._gone: set[int] = set()
        self._listeners: list[Any] = []
        self._thread = threading.get_ident()
        self._quiet = False
        self._closed = False
        #: The UIDs saved by C{SEARCH RETURN (SAVE)} (SEARCHRES's C{$}).
        self.saved_uids: list[int] = []

    # --- keeping the view up to date -----------------------------------------

    def _folder_changed(self, change: FolderChange) -> None:
        if threading.get_ident() != self._thread:
            reactor = self.account.reactor
            if reactor is None:
                from twisted.internet import reactor as global_reactor

                reactor = global_reactor  # type: ignore[assignment]
            assert reactor is not None
            reactor.callFromThread(self._folder_changed, change)
            return
        if self._closed:
            return
        if change.new:
            added = []
            view = self._uids
            for uid in change.new:
                if not view or view[-1] < uid:
                    view.append(uid)
                elif self._sequence_number(uid) is None:
                    bisect.insort(view, uid)
                else:
                    continue
                added.append(uid)
            if added:
                # Recent for this session only if no other session claimed it.
                recent = [uid for uid in added if self.folder.is_new(uid)]
                self._recent.update(recent)
                if self.writeable and self._listeners:
                    self.folder.mark_seen_by_session(recent)
                for listener in self._listeners:
                    listener.newMessages(len(self._uids), len(self._recent))
        if change.flags and not self._quiet:
            changed: dict[int, list[str]] = {}
            for uid in change.flags:
                seq = self._sequence_number(uid)
                if seq is not None:
                    changed[seq] = self._flags_of(uid)
            if changed:
                for listener in self._listeners:
                    listener.flagsChanged(changed)
        if change.gone and not self._quiet:
            self._gone.update(
                uid for uid in change.gone if self._sequence_number(uid) is not None
            )
            for listener in list(self._listeners):
                pending = getattr(listener, "expunges_pending", None)
                if pending is not None:
                    pending()

    def poll(self) -> None:
        """
        Look for changes made by other processes or programs (reported to
        the listeners like any other).
        """
        try:
            self.folder.refresh()
        except NoSuchMailbox:
            self._gone.update(self._uids)

    def take_expunged(self) -> list[int]:
        """
        Forget messages that were expunged by others and return the
        C{EXPUNGE} responses to send now, in order.
        """
        responses = []
        for uid in sorted(self._gone, reverse=True):
            seq = self._sequence_number(uid)
            if seq is not None:
                responses.append(seq)
                del self._uids[seq - 1]
                self._recent.discard(uid)
        self._gone.clear()
        return responses

    def _sequence_number(self, uid: int) -> int | None:
        i = bisect.bisect_left(self._uids, uid)
        if i < len(self._uids) and self._uids[i] == uid:
            return i + 1
        return None

    def _flags_of(self, uid: int) -> list[str]:
        try:
            flags = list(self.folder.flags(uid))
        except MessageGone:
            flags = []
        if uid in self._recent:
            flags.append(RECENT)
        return flags

    # --- IMailboxInfo ----------------------------------------------------------

    def getFlags(self) -> list[str]:
        return [*SYSTEM_FLAGS, *self.folder.keywords()]

    def getHierarchicalDelimiter(self) -> str:
        return HIERARCHY_DELIMITER

    def can_add_keywords(self) -> bool:
        """Whether STORE and APPEND may still bring new keywords (C{\\*})."""
        return self.folder.can_add_keywords()

    def modseq(self, uid: int) -> int:
        """Message C{uid}'s MODSEQ (CONDSTORE)."""
        return self.folder.modseq(uid)

    def highest_modseq(self) -> int:
        """The mailbox's HIGHESTMODSEQ (CONDSTORE)."""
        return self.folder.highest_modseq()

    # --- IMailbox --------------------------------------------------------------

    def getUIDValidity(self) -> int:
        return self.folder.uidvalidity

    def getUIDNext(self) -> int:
        return self.folder.uidnext

    def getUID(self, message: int) -> int:
        return self._uids[message - 1]

    def getMessageCount(self) -> int:
        return len(self._uids)

    def getRecentCount(self) -> int:
        return len(self._recent)

    def getUnseenCount(self) -> int:
        return self.folder.status().unseen

    def first_unseen(self) -> int | None:
        """The sequence number of the first message without C{\\Seen}."""
        if self.folder.version == self._snapshot.version:
            # As the folder was when the view was made: kept, not looked for.
            return self._snapshot.first_unseen
        words = self.folder.flag_words(self._uids)
        for seq, word in enumerate(words, 1):
            if word >= 0 and not word & SEEN:
                return seq
        return None

    def isWriteable(self) -> bool:
        return self.writeable

    def destroy(self) -> None:
        pass

    def requestStatus(self, names: Iterable[str]) -> dict[str, int]:
        return status_items(self.folder, self.folder.status(), names)

    def addListener(self, listener: Any) -> None:
        if not self._listeners:
            self.folder.add_listener(self._folder_changed)
            # What came or went since the view was made, before we listened.
            missed = self.folder.changes_since(self._snapshot)
            if missed:
                self._listeners.append(listener)
                self._folder_changed(missed)
                self._listeners.remove(listener)
            if self.writeable:
                # This session saw them: later sessions will not call them recent.
                self.folder.mark_seen_by_session(self._recent)
            if self not in self.account._open:
                self.account._open.append(self)
        self._listeners.append(listener)

    def removeListener(self, listener: Any) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)
        if not self._listeners:
            self.close()

    def close(self) -> None:
        """Stop following the folder (ICloseableMailbox)."""
        self.folder.remove_listener(self._folder_changed)
        self._listeners.clear()
        self._closed = True
        if self in self.account._open:
            self.account._open.remove(self)

    def addMessage(
        self, message: Any, flags: Iterable[str] = (), date: bytes | None = None
    ) -> defer.Deferred[int]:
        try:
            data = message.read() if hasattr(message, "read") else bytes(message)
            internal = None if date is None else parse_append_date(date)
            uid = self.folder.deliver(
                data, [f for f in flags if f != RECENT], internal_date=internal
            )
        except Exception:
            return defer.fail(Failure())
        return defer.succeed(uid)

    def copy(self, messageObject: LabMessage) -> int:
        source = messageObject.mailbox.folder
        uid = messageObject.getUID()
        return self.folder.deliver(
            source.read(uid),
            source.flags(uid),
            internal_date=source.internal_date(uid),
        )

    def expunge(self, uids: Iterable[int] | None = None) -> list[int]:
        """
        Remove the messages flagged C{\\Deleted} (only those among C{uids},
        if given: UID EXPUNGE); return the EXPUNGE responses to send.
        """
        if not self.writeable:
            raise imap4.ReadOnlyMailbox()
        wanted = None if uids is None else set(uids)
        if not self.folder.status().deleted:
            return []
        words = self.folder.flag_words(self._uids)
        doomed = [
            uid
            for uid, word in zip(self._uids, words, strict=True)
            if word >= 0
            and word & DELETED
            and uid not in self._gone
            and (wanted is None or uid in wanted)
        ]
        return self.remove_messages(doomed)

    def remove_messages(self, doomed: list[int]) -> list[int]:
        """
        Remove messages C{doomed} (UIDs, ascending) whatever their flags
        (MOVE); return the EXPUNGE responses (sequence numbers) to send.
        """
        if not self.writeable:
            raise imap4.ReadOnlyMailbox()
        self._quiet = True
        try:
            removed = set(self.folder.remove(doomed))
        finally:
            self._quiet = False
        responses = []
        for uid in doomed:
            if uid in removed:
                seq = self._sequence_number(uid)
                if seq is not None:
                    responses.append(seq)
                    del self._uids[seq - 1]
                    self._recent.discard(uid)
        return responses

    def position_ranges(
        self, messages: imap4.MessageSet, uid: bool
    ) -> list[tuple[int, int]]:
        """
        Where the messages of C{messages} (a set of UIDs if C{uid}) are in
        this view: ascending, disjoint C{(start, stop)} ranges of positions
        (sequence numbers less one), without iterating over the set's ranges
        (C{1:4294967295} is a usual UID set).
        """
        view = self._uids
        if not view:
            return []
        last = view[-1] if uid else len(view)
        with contextlib.suppress(ValueError):  # already set by an earlier use
            messages.last = last
        spans = []
        for low, high in messages.ranges:
            if uid:
                start = bisect.bisect_left(view, low)
                stop = bisect.bisect_right(view, high)
            else:
                start, stop = max(low, 1) - 1, min(high, len(view))
            if start < stop:
                spans.append((start, stop))
        spans.sort()
        merged: list[tuple[int, int]] = []
        for start, stop in spans:
            if merged and start <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(stop, merged[-1][1]))
            else:
                merged.append((start, stop))
        return merged

    def _select(self, messages: imap4.MessageSet, uid: bool) -> list[int]:
        """
        The sequence numbers in C{messages} (a set of UIDs if C{uid}),
        ascending.
        """
        return [
            seq
            for start, stop in self.position_ranges(messages, uid)
            for seq in range(start + 1, stop + 1)
        ]

    def view(self) -> array[int]:
        """
        The UIDs of the messages this session was told of, by sequence
        number (from 0); the session's own: do not change it.
        """
        return self._uids

    def recent_uids(self) -> set[int]:
        """The messages that are C{\\Recent} in this session (live)."""
        return self._recent

    def gone_uids(self) -> frozenset[int]:
        """The messages of the view expunged by others, not yet reported."""
        return frozenset(self._gone)

    def fetch(
        self, messages: imap4.MessageSet, uid: bool
    ) -> list[tuple[int, LabMessage]]:
        return [
            (seq, LabMessage(self, self._uids[seq - 1]))
            for seq in self._select(messages, uid)
            if self._uids[seq - 1] not in self._gone
        ]

    def store(
        self, messages: imap4.MessageSet, flags: Iterable[str], mode: int, uid: bool
    ) -> dict[int, list[str]]:
        if not self.writeable:
            raise imap4.ReadOnlyMailbox()
        uids = [self._uids[seq - 1] for seq in self._select(messages, uid)]
        result = self.store_uids(uids, flags, mode)
        return {self._sequence_number(u) or 0: f for u, f in result.items()}

    def selected(self, messages: imap4.MessageSet, uid: bool) -> list[int]:
        """
        The UIDs of the messages in C{messages} (a set of UIDs if C{uid}),
        ascending, leaving out those expunged by others.
        """
        return [
            u
            for seq in self._select(messages, uid)
            if (u := self._uids[seq - 1]) not in self._gone
        ]

    def sequence_number(self, uid: int) -> int | None:
        """The sequence number of message C{uid} in this view."""
        return self._sequence_number(uid)

    def store_uids(
        self, uids: Iterable[int], flags: Iterable[str], mode: int
    ) -> dict[int, list[str]]:
        """
        Replace (C{mode} 0), add (1) or remove (-1) C{flags} on messages
        C{uids}; return each one's flags now, by UID.

        @raise KeywordLimit: a new keyword finds no room.
        """
        if not self.writeable:
            raise imap4.ReadOnlyMailbox()
        given = [f for f in flags if f.lower() != RECENT.lower()]
        changes: dict[int, list[str]] = {}
        for message_uid in uids:
            if message_uid in self._gone:
                continue
            try:
                current = list(self.folder.flags(message_uid))
            except MessageGone:
                continue
            if mode == 0:
                wanted = given
            elif mode > 0:
                wanted = current + given
            else:
                removed = {f.lower() for f in given}
                wanted = [f for f in current if f.lower() not in removed]
            changes[message_uid] = wanted
        self._quiet = True
        try:
            result = self.folder.set_flags(changes)
        finally:
            self._quiet = False
        return {u: self._flags_of(u) for u in result}

    def set_seen(self, uid: int) -> bool:
        """
        Give message C{uid} C{\\Seen} (a C{BODY[]} fetch) if it lacks it;
        return whether its flags changed.
        """
        try:
            current = self.folder.flags(uid)
        except MessageGone:
            return False
        if "\\Seen" in current:
            return False
        self._quiet = True
        try:
            self.folder.set_flags({uid: [*current, "\\Seen"]})
        finally:
            self._quiet = False
        return True

    # --- ISearchableMailbox ----------------------------------------------------

    def search(self, query: list[Any], uid: bool) -> list[int]:
        matcher = _SearchProgram(self, list(query))
        return [
            seq
            for seq, u in enumerate(self._uids, 1)
            if u not in self._gone and matcher.matches(seq, LabMessage(self, u))
        ]


def status_items(
    folder: Folder, status: FolderStatus, names: Iterable[str]
) -> dict[str, int]:
    """
    The STATUS items C{names} (RFC 3501, RFC 7162's HIGHESTMODSEQ, RFC
    8438's SIZE, RFC 9051's DELETED) of a folder, from its kept counts, by
    upper-case name.

    @raise imap4.IllegalQueryError: an unknown item.
    """
    values: dict[str, Callable[[], int]] = {
        "MESSAGES": lambda: status.messages,
        "RECENT": lambda: status.recent,
        "UIDNEXT": lambda: status.uidnext,
        "UIDVALIDITY": lambda: status.uidvalidity,
        "UNSEEN": lambda: status.unseen,
        "HIGHESTMODSEQ": lambda: status.highest_modseq,
        "SIZE": folder.total_size,
        "DELETED": lambda: status.deleted,
    }
    result = {}
    for name in names:
        getter = values.get(name.upper())
        if getter is None:
            raise imap4.IllegalQueryError(f"unknown STATUS item {_ascii(name)}")
        result[name.upper()] = getter()
    return result


def parse_append_date(date: bytes) -> float:
    """
    The time of an APPEND C{date-time} (C{"17-Jul-1996 02:44:25 -0700"}).

    @raise ValueError: it is not one.
    """
    match = _APPEND_DATE.match(date)
    month = _MONTHS.get(match.group(2).decode().lower()) if match else None
    if match is None or month is None:
        raise ValueError(f"bad date-time {_ascii(date.decode('latin-1'))}")
    day, _, year, hour, minute, second, sign, zh, zm = match.groups()
    offset = datetime.timedelta(hours=int(zh), minutes=int(zm))
    zone = datetime.timezone(-offset if sign == b"-" else offset)
    moment = datetime.datetime(
        int(year), month, int(day), int(hour), int(minute), int(second), tzinfo=zone
    )
    return moment.timestamp()


@implementer(imap4.IMessagePart)
class LabMessagePart:
    """
    A MIME part of a message, for Twisted's C{IMessagePart} users.
    """

    def __init__(self, part: MessagePart) -> None:
        self._part: MessagePart | None = part

    @property
    def part(self) -> MessagePart:
        assert self._part is not None
        return self._part

    def getHeaders(self, negate: bool, *names: str) -> dict[str, str]:
        wanted = {n.lower() for n in names}
        headers: dict[str, str] = {}
        for name, value in self.part.headers.items():
            key = name.lower()
            if (key in wanted) != negate and key not in headers:
                headers[key] = re.sub(r"\r?\n(?=[ \t])", "", str(value))
        return headers

    def getBodyFile(self) -> Any:
        from io import BytesIO

        return BytesIO(self.part.body)

    def getSize(self) -> int:
        return len(self.part.raw)

    def isMultipart(self) -> bool:
        return bool(self.part.children)

    def getSubPart(self, part: int) -> LabMessagePart:
        if not self.part.children:
            raise TypeError("not a multipart message")
        return LabMessagePart(self.part.children[part])


@implementer(imap4.IMessage, imap4.IMessageFile)
class LabMessage(LabMessagePart):
    """
    A message of a mailbox view; its bytes are read when first needed.
    """

    def __init__(self, mailbox: LabMailbox, uid: int) -> None:
        self.mailbox = mailbox
        self.uid = uid
        self._data: bytes | None = None
        self._part = None

    @property
    def data(self) -> bytes:
        """The message with CRLF line ends.

        @raise MessageGone: it was removed meanwhile.
        """
        if self._data is None:
            self._data = to_crlf(self.mailbox.folder.read(self.uid))
        return self._data

    @property
    def part(self) -> MessagePart:
        if self._part is None:
            self._part = MessagePart(self.data)
        return self._part

    @property
    def facts(self) -> search.SearchFacts:
        """The decoded facts the lab's matcher reads (cached per file)."""
        return search.facts_of(self.mailbox.folder, self.uid, search.facts_cache)

    def getUID(self) -> int:
        return self.uid

    def getFlags(self) -> list[str]:
        return self.mailbox._flags_of(self.uid)

    def getInternalDate(self) -> str:
        return email.utils.formatdate(self.internal_date())

    def internal_date(self) -> float:
        return self.mailbox.folder.internal_date(self.uid)

    def getSize(self) -> int:
        size = self.mailbox.folder.size(self.uid)
        return size if size is not None else len(self.data)

    def open(self) -> Any:
        from io import BytesIO

        return BytesIO(self.data)


class _SearchProgram:
    """
    The SEARCH keys of RFC 3501 (section 6.4.4), evaluated against messages.
    """

    _FLAG_KEYS = {
        "ANSWERED": ("\\Answered", True),
        "DELETED": ("\\Deleted", True),
        "DRAFT": ("\\Draft", True),
        "FLAGGED": ("\\Flagged", True),
        "RECENT": (RECENT, True),
        "SEEN": ("\\Seen", True),
        "UNANSWERED": ("\\Answered", False),
        "UNDELETED": ("\\Deleted", False),
        "UNDRAFT": ("\\Draft", False),
        "UNFLAGGED": ("\\Flagged", False),
        "UNSEEN": ("\\Seen", False),
    }
    _HEADER_KEYS = {"BCC", "CC", "FROM", "SUBJECT", "TO"}

    def __init__(self, mailbox: LabMailbox, query: list[Any]) -> None:
        self.mailbox = mailbox
        self.count = mailbox.getMessageCount()
        self.max_uid = mailbox._uids[-1] if mailbox._uids else 0
        tokens = list(query)
        self.tests: list[Callable[[int, LabMessage], bool]] = []
        while tokens:
            self.tests.append(self._parse(tokens))
        if not self.tests:
            raise imap4.IllegalQueryError("empty search")

    def matches(self, seq: int, message: LabMessage) -> bool:
        try:
            return all(test(seq, message) for test in self.tests)
        except MessageGone:
            return False

    def _parse(self, tokens: list[Any]) -> Callable[[int, LabMessage], bool]:
        token = tokens.pop(0)
        if isinstance(token, list):
            group = list(token)
            tests = []
            while group:
                tests.append(self._parse(group))
            if not tests:
                raise imap4.IllegalQueryError("empty search group")
            return lambda s, m: all(t(s, m) for t in tests)
        if isinstance(token, bytes):
            key = token.decode("ascii", "replace").upper()
        else:
            key = str(token).upper()
        if key == "$":
            # SEARCHRES: the result the session saved last.
            saved = set(getattr(self.mailbox, "saved_uids", ()))
            return lambda s, m: m.uid in saved
        if key[:1].isdigit() or key[:1] == "*":
            ids = _search_set(key.encode(), self.count)
            return lambda s, m: s in ids
        if key == "ALL":
            return lambda s, m: True
        if key in self._FLAG_KEYS:
            flag, present = self._FLAG_KEYS[key]
            return lambda s, m: (flag in m.getFlags()) == present
        if key == "NEW":
            return lambda s, m: RECENT in (f := m.getFlags()) and "\\Seen" not in f
        if key == "OLD":
            return lambda s, m: RECENT not in m.getFlags()
        if key in ("KEYWORD", "UNKEYWORD"):
            flag = self._argument(tokens).decode("ascii", "replace").lower()
            present = key == "KEYWORD"
            return lambda s, m: (flag in _lowered(m.getFlags())) == present
        if key == "MODSEQ":
            # MODSEQ [entry-name entry-type] value (RFC 7162): per-flag
            # MODSEQs are not kept, so the entry is accepted and ignored.
            if (
                len(tokens) >= 3
                and isinstance(tokens[0], bytes)
                and not (tokens[0][:1].isdigit())
            ):
                del tokens[:2]
            try:
                floor = int(self._argument(tokens))
            except ValueError:
                raise imap4.IllegalQueryError("MODSEQ needs a number") from None
            mailbox = self.mailbox
            return lambda s, m: mailbox.modseq(m.uid) >= floor
        # Text keys: the lab's one matcher, over decoded text (search.py).
        text_query: search.Query | None = None
        if key in self._HEADER_KEYS:
            text_query = search.HeaderContains(key, self._text(tokens))
        elif key == "HEADER":
            field = self._argument(tokens).decode("ascii", "replace")
            text_query = search.HeaderContains(field, self._text(tokens))
        elif key == "BODY":
            text_query = search.BodyContains(self._text(tokens))
        elif key == "TEXT":
            text_query = search.TextContains(self._text(tokens))
        if text_query is not None:
            # Text keys read only the message's facts.
            text_matches = text_query.matches
            return lambda s, m: text_matches(cast(search.Candidate, m))
        if key in ("LARGER", "SMALLER"):
            try:
                size = int(self._argument(tokens))
            except ValueError:
                raise imap4.IllegalQueryError(f"{key} needs a number") from None
            if key == "LARGER":
                return lambda s, m: m.getSize() > size
            return lambda s, m: m.getSize() < size
        if key in ("BEFORE", "ON", "SINCE"):
            day = _search_date(self._argument(tokens))
            compare = _date_comparison(key)
            return lambda s, m: compare(_internal_day(m), day)
        if key in ("SENTBEFORE", "SENTON", "SENTSINCE"):
            day = _search_date(self._argument(tokens))
            compare = _date_comparison(key[4:])
            return lambda s, m: (
                (sent := _sent_day(m)) is not None and compare(sent, day)
            )
        if key == "UID":
            argument = self._argument(tokens)
            if argument == b"$":
                saved = set(getattr(self.mailbox, "saved_uids", ()))
                return lambda s, m: m.uid in saved
            ids = _search_set(argument, self.max_uid)
            return lambda s, m: m.uid in ids
        if key == "NOT":
            test = self._parse(tokens)
            return lambda s, m: not test(s, m)
        if key == "OR":
            first = self._parse(tokens)
            second = self._parse(tokens)
            return lambda s, m: first(s, m) or second(s, m)
        raise imap4.IllegalQueryError(f"unknown search key {_ascii(key)}")

    @staticmethod
    def _argument(tokens: list[Any]) -> bytes:
        if not tokens or isinstance(tokens[0], list):
            raise imap4.IllegalQueryError("search key needs an argument")
        value = tokens.pop(0)
        return value if isinstance(value, bytes) else str(value).encode()

    def _text(self, tokens: list[Any]) -> str:
        return self._argument(tokens).decode("utf-8", "replace").lower()


def _lowered(flags: Iterable[str]) -> set[str]:
    return {f.lower() for f in flags}


def _search_date(value: bytes) -> datetime.date:
    text = value.decode("ascii", "replace").strip('"')
    try:
        day, month, year = text.split("-")
        return datetime.date(int(year), _MONTHS[month.lower()], int(day))
    except (ValueError, KeyError):
        raise imap4.IllegalQueryError(f"bad date {_ascii(text)}") from None


def _date_comparison(key: str) -> Callable[[datetime.date, datetime.date], bool]:
    if key == "BEFORE":
        return lambda a, b: a < b
    if key == "ON":
        return lambda a, b: a == b
    return lambda a, b: a >= b


def _internal_day(message: LabMessage) -> datetime.date:
    return datetime.datetime.fromtimestamp(message.internal_date(), datetime.UTC).date()


def _sent_day(message: LabMessage) -> datetime.date | None:
    value = message.part.header("date")
    if not value:
        return None
    try:
        return email.utils.parsedate_to_datetime(value).date()
    except (TypeError, ValueError, IndexError):
        return None


__all__ = [
    "LabAccount",
    "LabMailbox",
    "LabMessage",
    "LabRealm",
    "parse_append_date",
    "status_items",
]
