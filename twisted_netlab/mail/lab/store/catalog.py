"""
The lab's messages across users, as the HTTP API and the Python API see
them: a view over the store (every user's INBOX), never a copy of it.

Each message gets an ID that stays the same across restarts (a digest of
its user and its Maildir key, which flag changes never touch). Reading a
message's flags, marking it read or deleting it goes to the store, so IMAP
sees it, and what IMAP does is seen here. Changes are published to
subscribers (the event stream) and to waiters (L{Catalog.wait}), which are
told of every message that arrives after they started waiting.

Everything here runs in the reactor thread; the store's listener, which may
be called in a delivery thread, only marks a user dirty and asks the
reactor to catch up.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.logger import Logger

from twisted_netlab.errors import NetlabError
from twisted_netlab.mail.lab.store.maildir import (
    INBOX,
    Folder,
    FolderChange,
    MailStore,
    MailStoreError,
    MessageGone,
)
from twisted_netlab.mail.lab.store.parsed import ParsedMessage
from twisted_netlab.mail.lab.store.search import (
    FactsCache,
    Query,
    SearchFacts,
    facts_cache,
)

log = Logger()

SEEN = "\\Seen"
#: Look at the disk for changes made by other programs at most this often
#: (seconds); changes made through the store are seen at once.
RESCAN_INTERVAL = 1.0


class WaitTimeout(NetlabError):
    """
    Not enough messages matched before the wait's timeout.
    """


def message_id_for(address: str, key: str) -> str:
    """
    The catalog ID of the message with Maildir key C{key} in C{address}'s
    INBOX: 20 hex digits, the same on every run.
    """
    return hashlib.sha256(f"{address}\0{key}".encode()).hexdigest()[:20]


@dataclass(eq=False)
class Entry:
    """
    One message of the catalog: where it is stored, and its ID.
    """

    id: str
    address: str
    uid: int
    key: str
    received: float
    folder: Folder
    cache: FactsCache = field(repr=False)

    # --- what the matcher reads (search.Candidate) ---------------------------

    @property
    def mailbox(self) -> str:
        return self.address

    @property
    def facts(self) -> SearchFacts:
        # Checked against the file (at most once a second): rewritten, it is
        # parsed again.
        return self.cache.get((str(self.folder.path), self.key), self.raw, self._stamp)

    def _stamp(self) -> tuple[int, int]:
        return self.folder.stamp(self.uid)

    @property
    def flags(self) -> tuple[str, ...]:
        try:
            return self.folder.entry(self.uid).flags
        except MessageGone:
            return ()

    @property
    def read(self) -> bool:
        return SEEN in self.flags

    @property
    def envelope(self) -> Any:
        """
        The SMTP envelope kept with the message (None if the store keeps
        none for it).
        """
        lookup = getattr(self.folder, "envelope", None)
        if lookup is None:
            return None
        try:
            return lookup(self.uid)
        except MailStoreError:
            return None

    def raw(self) -> bytes:
        """
        The message's bytes as stored.

        @raise MessageGone: it was deleted.
        """
        return self.folder.read(self.uid)

    def parsed(self) -> ParsedMessage:
        return ParsedMessage(self.raw())


@dataclass(frozen=True)
class CapturedMessage:
    """
    A message of the lab for tests: its raw bytes as stored, the parsed
    view, and the SMTP envelope, with the parsed view's fields at hand
    (C{subject}, C{from_}, C{to}, C{cc}, C{bcc}, C{text}, C{html},
    C{attachments}, ...).

    @ivar id: its ID in the HTTP API.
    @ivar mailbox: the lab user it is stored for.
    """

    id: str
    mailbox: str
    uid: int
    received: float
    raw: bytes = field(repr=False)
    parsed: ParsedMessage = field(repr=False)
    envelope: Any = None

    @classmethod
    def of(cls, entry: Entry) -> CapturedMessage:
        raw = entry.raw()
        return cls(
            entry.id,
            entry.address,
            entry.uid,
            entry.received,
            raw,
            ParsedMessage(raw),
            entry.envelope,
        )

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name == "parsed":
            raise AttributeError(name)
        return getattr(self.parsed, name)


@dataclass(frozen=True)
class Event:
    """
    A change the catalog publishes: C{kind} is C{"new"} (C{entry}),
    C{"update"} (C{entry}, its read state changed) or C{"delete"} (C{ids}).
    """

    kind: str
    entry: Entry | None = None
    ids: tuple[str, ...] = ()


Subscriber = Callable[[Sequence[Event]], None]


class _Waiter:
    def __init__(
        self, query: Query, count: int, matched: dict[str, Entry], d: Deferred[Any]
    ) -> None:
        self.query = query
        self.count = count
        self.matched = matched
        self.deferred = d
        self.timer: Any = None


_DELIVERED_AT = re.compile(r"(\d+)\.M(\d+)")


def newest_first(entry: Entry) -> tuple[float, int, int]:
    """
    The sort key of the newest-first order: the internal date, then the
    microsecond of delivery that the Maildir file name records (two
    deliveries to different users can share a file timestamp), then the UID.
    """
    match = _DELIVERED_AT.match(entry.key)
    delivered = int(match[1]) * 1_000_000 + int(match[2]) if match else 0
    return (entry.received, delivered, entry.uid)


class Catalog:
    """
    Every user's INBOX of C{store}, newest first.

    @param reactor: schedules catch-ups after changes made in other threads,
        and wait timeouts.
    """

    def __init__(
        self, store: MailStore, reactor: Any, cache: FactsCache = facts_cache
    ) -> None:
        self.store = store
        self.reactor = reactor
        self.cache = cache
        self._by_user: dict[str, dict[int, Entry]] = {}
        self._by_id: dict[str, Entry] = {}
        self._ordered: list[Entry] | None = []
        self._dirty: set[str] = set()
        #: UIDs that appeared and went, by user, as the store reported them:
        #: applied without a look at the rest of the folder.
        self._pending: dict[str, tuple[list[int], list[int]]] = {}
        self._flagged: dict[str, set[int]] = {}
        self._lock = threading.Lock()
        self._scheduled = False
        self._subscribers: list[Subscriber] = []
        self._waiters: list[_Waiter] = []
        self._known_users: set[str] = set()
        self._rescanned: dict[str, float] = {}
        store.add_listener(self._store_changed)

    def close(self) -> None:
        """
        Stop listening to the store; pending waits fail.
        """
        self.store.remove_listener(self._store_changed)
        for waiter in list(self._waiters):
            waiter.deferred.cancel()

    # --- keeping up with the store ------------------------------------------

    def _store_changed(self, address: str, mailbox: str, change: FolderChange) -> None:
        if mailbox != INBOX:
            return
        with self._lock:
            if change.new or change.gone:
                # The change names its UIDs, so catching up costs what
                # changed, not the size of the folder.
                new, gone = self._pending.setdefault(address, ([], []))
                new.extend(change.new)
                gone.extend(change.gone)
            if change.flags:
                self._flagged.setdefault(address, set()).update(change.flags)
            if self._scheduled:
                return
            self._scheduled = True
        call = getattr(self.reactor, "callFromThread", None)
        if call is None:  # a single-threaded test reactor
            self._catch_up()
        else:
            call(self._catch_up)

    def _catch_up(self) -> None:
        with self._lock:
            self._scheduled = False
        self.sync(rescan=False)

    def sync(self, *, rescan: bool = True) -> None:
        """
        Bring the catalog up to date: with C{rescan}, look at the disk
        (cheap when nothing changed; files other programs added or removed
        are found); then publish what changed.
        """
        users = self.store.addresses()
        if rescan:
            now = self.reactor.seconds()
            for address in users:
                if (
                    now - self._rescanned.get(address, -RESCAN_INTERVAL)
                    < RESCAN_INTERVAL
                ):
                    continue
                self._rescanned[address] = now
                try:
                    self.store.folder(address).refresh()
                except MailStoreError:
                    continue
        with self._lock:
            dirty = self._dirty | (set(users) - self._known_users)
            dirty |= self._known_users - set(users)
            self._dirty = set()
            pending, self._pending = self._pending, {}
            flagged, self._flagged = self._flagged, {}
        events: list[Event] = []
        for address in sorted(dirty):
            pending.pop(address, None)
            events.extend(self._sync_user(address, address in users))
        for address, (new, gone) in sorted(pending.items()):
            events.extend(self._apply(address, address in users, new, gone))
        for address, uids in flagged.items():
            entries = self._by_user.get(address, {})
            for uid in sorted(uids):
                entry = entries.get(uid)
                if entry is not None:
                    events.append(Event("update", entry))
        self._known_users = set(users)
        if events:
            self._publish(events)

    def warm_up(self, keeper: Any = None) -> None:
        """
        Parse every message not yet in the facts cache, in a thread of the
        reactor's pool (where it has one), so that the first search over a
        large store is as fast as the next ones.

        @param keeper: a L{twisted_netlab.mail.lab.store.factsfile.FactsKeeper}:
            it does the work in its thread instead, loading the facts its
            file has kept and parsing only the others. The oldest messages
            go first: a search that comes meanwhile starts from the newest.
        """
        if keeper is not None:
            keeper.warm([(e.folder, e.uid) for e in reversed(self.entries())])
            return
        if not IReactorThreads.providedBy(self.reactor):
            return
        entries = self.entries()

        def warm() -> None:
            for entry in entries:
                try:
                    entry.facts  # noqa: B018  computed for the cache
                except MailStoreError:
                    continue

        self.reactor.callInThread(warm)

    def reload(self) -> None:
        """
        Look at every user again, as after the store was changed behind its
        back (files removed by hand): what is gone is published as deleted.
        """
        with self._lock:
            self._dirty |= self._known_users | set(self._by_user)
        self._rescanned.clear()
        self.sync()

    def _apply(
        self, address: str, exists: bool, new: list[int], gone: list[int]
    ) -> list[Event]:
        """
        Apply the UIDs the store reported as C{new} and C{gone} for
        C{address}, looking only at those; fall back to L{_sync_user} where
        the folder is not the one the catalog knows (made anew, or gone).
        """
        known = self._by_user.get(address, {})
        try:
            folder = self.store.folder(address) if exists else None
        except MailStoreError:
            folder = None
        sample = next(iter(known.values()), None)
        if folder is None or (sample is not None and sample.folder is not folder):
            return self._sync_user(address, exists)
        events: list[Event] = []
        added: list[Entry] = []
        for uid in dict.fromkeys(new):
            if uid in known:
                continue
            entry = self._entry(address, folder, uid)
            if entry is None:
                continue
            known = self._by_user.setdefault(address, known)
            known[uid] = entry
            self._by_id[entry.id] = entry
            added.append(entry)
        removed = [known.pop(uid) for uid in dict.fromkeys(gone) if uid in known]
        for entry in removed:
            self._by_id.pop(entry.id, None)
        if removed:
            events.append(Event("delete", ids=tuple(e.id for e in removed)))
            self._ordered = None
        gone_now = {e.id for e in removed}
        added = [e for e in added if e.id not in gone_now]
        events.extend(Event("new", e) for e in added)
        if added and self._ordered is not None:
            added.sort(key=newest_first, reverse=True)
            if not self._ordered or newest_first(added[-1]) > newest_first(
                self._ordered[0]
            ):
                # The usual case, new mail newer than any: no sort of all.
                self._ordered[:0] = added
            else:
                self._ordered = None
        if address in self._by_user and not self._by_user[address]:
            del self._by_user[address]
        return events

    def _entry(self, address: str, folder: Folder, uid: int) -> Entry | None:
        """
        The catalog's entry for message C{uid} of C{address}'s C{folder}, or
        L{None} if it is gone.
        """
        try:
            stored = folder.entry(uid)
            received = folder.internal_date(uid)
        except MessageGone:
            return None
        return Entry(
            message_id_for(address, stored.key),
            address,
            uid,
            stored.key,
            received,
            folder,
            self.cache,
        )

    def _sync_user(self, address: str, exists: bool) -> list[Event]:
        known = self._by_user.setdefault(address, {})
        try:
            folder = self.store.folder(address) if exists else None
            uids = folder.uids() if folder is not None else []
        except MailStoreError:
            folder, uids = None, []
        present = set(uids)
        events: list[Event] = []
        if folder is not None:
            # A folder made anew (UIDVALIDITY changed) reuses UIDs.
            for uid in present & known.keys():
                if known[uid].folder is not folder:
                    present.discard(uid)
        gone = [uid for uid in known if uid not in present]
        if gone:
            ids = tuple(known[uid].id for uid in gone)
            for uid in gone:
                self._by_id.pop(known.pop(uid).id, None)
            events.append(Event("delete", ids=ids))
        if folder is not None:
            for uid in uids:
                if uid in known and known[uid].folder is folder:
                    continue
                entry = self._entry(address, folder, uid)
                if entry is None:
                    continue
                known[uid] = entry
                self._by_id[entry.id] = entry
                events.append(Event("new", entry))
        if events:
            self._ordered = None
        if not known:
            del self._by_user[address]
        return events

    # --- reading --------------------------------------------------------------

    def entries(self, mailbox: str | None = None) -> list[Entry]:
        """
        Every message, newest first (only C{mailbox}'s, if given).
        """
        self.sync()
        if self._ordered is None:
            self._ordered = sorted(self._by_id.values(), key=newest_first, reverse=True)
        if mailbox is None:
            return list(self._ordered)
        wanted = mailbox.lower()
        return [e for e in self._ordered if e.address == wanted]

    def get(self, message_id: str) -> Entry | None:
        """
        The message C{message_id} (or C{"latest"}: the newest), or None.
        """
        if message_id == "latest":
            entries = self.entries()
            return entries[0] if entries else None
        self.sync()
        return self._by_id.get(message_id)

    def search(self, query: Query, mailbox: str | None = None) -> list[Entry]:
        """
        The messages C{query} matches, newest first.
        """
        found = []
        for entry in self.entries(mailbox):
            try:
                if query.matches(entry):
                    found.append(entry)
            except MessageGone:
                continue
        return found

    def counts(self) -> tuple[int, int]:
        """
        (total, unread) over the whole catalog.
        """
        entries = self.entries()
        unread = sum(1 for e in entries if not e.read)
        return len(entries), unread

    def tag_counts(self) -> dict[str, int]:
        """
        How many messages carry each keyword (IMAP flags without a
        backslash: the tags).
        """
        counts: dict[str, int] = {}
        for entry in self.entries():
            for flag in entry.flags:
                if not flag.startswith("\\"):
                    counts[flag] = counts.get(flag, 0) + 1
        return dict(sorted(counts.items()))

    def mailboxes(self) -> list[str]:
        """
        The lab users' addresses (each one's INBOX is a mailbox here).
        """
        return self.store.addresses()

    # --- changing ---------------------------------------------------------------

    def set_read(self, entries: Iterable[Entry], read: bool) -> None:
        """
        Set or clear C{\\Seen} on C{entries}, in the store.
        """
        by_folder: dict[Folder, dict[int, list[str]]] = {}
        for entry in entries:
            flags = [f for f in entry.flags if f != SEEN]
            if read:
                flags.append(SEEN)
            if set(flags) != set(entry.flags):
                by_folder.setdefault(entry.folder, {})[entry.uid] = flags
        for folder, changes in by_folder.items():
            folder.set_flags(changes)
        self.sync(rescan=False)

    def delete(self, entries: Iterable[Entry]) -> None:
        """
        Delete C{entries} from the store (IMAP sees them expunged).
        """
        by_folder: dict[Folder, list[int]] = {}
        for entry in entries:
            by_folder.setdefault(entry.folder, []).append(entry.uid)
        for folder, uids in by_folder.items():
            folder.remove(uids)
        self.sync(rescan=False)

    # --- subscribers and waiters --------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """
        Call C{subscriber(events)} after each batch of changes; returns the
        function that unsubscribes.
        """
        self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            if subscriber in self._subscribers:
                self._subscribers.remove(subscriber)

        return unsubscribe

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    @property
    def waiter_count(self) -> int:
        return len(self._waiters)

    def _publish(self, events: Sequence[Event]) -> None:
        for waiter in list(self._waiters):
            self._advance(waiter, events)
        for subscriber in list(self._subscribers):
            try:
                subscriber(events)
            except Exception:
                log.failure("a catalog subscriber failed")

    def _advance(self, waiter: _Waiter, events: Sequence[Event]) -> None:
        for event in events:
            if event.kind == "delete":
                for gone in event.ids:
                    waiter.matched.pop(gone, None)
            elif event.entry is not None:
                try:
                    hit = waiter.query.matches(event.entry)
                except MessageGone:
                    hit = False
                if hit:
                    waiter.matched[event.entry.id] = event.entry
                else:
                    waiter.matched.pop(event.entry.id, None)
        if len(waiter.matched) >= waiter.count:
            self._finish(waiter)
            waiter.deferred.callback(self._ordered_matches(waiter))

    def _ordered_matches(self, waiter: _Waiter) -> list[Entry]:
        return sorted(waiter.matched.values(), key=newest_first, reverse=True)

    def _finish(self, waiter: _Waiter) -> None:
        if waiter in self._waiters:
            self._waiters.remove(waiter)
        if waiter.timer is not None and waiter.timer.active():
            waiter.timer.cancel()

    def wait(
        self,
        query: Query,
        count: int = 1,
        timeout: float = 10.0,
        mailbox: str | None = None,
    ) -> Deferred[list[Entry]]:
        """
        A Deferred that fires with the matching messages (newest first) as
        soon as at least C{count} of the whole store match C{query}; or fails
        with L{WaitTimeout} after C{timeout} seconds. Messages that arrive
        while the search runs are not missed: the waiter hears of every
        change after the search. Cancelling the Deferred forgets the waiter.
        """
        if mailbox is not None:
            from twisted_netlab.mail.lab.store.search import AllOf, InMailbox

            query = AllOf((query, InMailbox(mailbox)))

        def cancel(d: Deferred[Any]) -> None:
            self._finish(waiter)

        d: Deferred[list[Entry]] = Deferred(cancel)
        matched = {e.id: e for e in self.search(query)}
        waiter = _Waiter(query, count, matched, d)
        if len(matched) >= count:
            d.callback(self._ordered_matches(waiter))
            return d
        self._waiters.append(waiter)

        def expire() -> None:
            self._finish(waiter)
            found = len(waiter.matched)
            d.errback(
                WaitTimeout(
                    f"timed out after {timeout:g} s: {found} of {count} "
                    f"message{'s' if count != 1 else ''} matched"
                )
            )

        waiter.timer = self.reactor.callLater(timeout, expire)
        return d


__all__ = [
    "CapturedMessage",
    "Catalog",
    "Entry",
    "Event",
    "WaitTimeout",
    "message_id_for",
]
