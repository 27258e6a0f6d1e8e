"""
One mailbox of the mail lab's store: a Maildir directory, the UIDs of its
messages (L{uidlist}), their flags and keywords (L{keywords}), their MODSEQs
(L{modseq}) and envelopes; what the protocol servers read and change.

Messages are files as in any Maildir: delivered into C{tmp/}, renamed into
C{new/}, moved to C{cur/} once an IMAP session has seen them, flags in the
name's info (C{:2,FRS}). A message's UID is keyed by the unique part of its
file name (before the colon), so renames by flag changes, by this server or
by any other Maildir program, never change it. Files that other programs
drop into the Maildir get UIDs the next time the folder is scanned, in name
order.

What the folder knows of its messages is kept compact (L{table}), with the
counts that IMAP's SELECT, EXAMINE and STATUS answer from (L{status}); the
directories are listed again only when their modification times changed,
and then only the files that came, went or were renamed cost more than a
set lookup.

This module is long because L{Folder} is one lock's state: the listing, the
compact table, the UID list, flags, keywords and MODSEQs change together
under that lock, and the methods that change them (deliver, store flags,
expunge, rescan) must each keep all of them in step; the parts that stand
alone are already their own modules (L{table}, L{uidlist}, L{keywords},
L{modseq}, L{envelope}, L{names}).
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from itertools import compress
from pathlib import Path

from twisted_netlab.durable import fsync_directory, write_new_file
from twisted_netlab.mail.lab.store.envelope import Envelope, Retention
from twisted_netlab.mail.lab.store.errors import InvalidName, MessageGone, NoSuchMailbox
from twisted_netlab.mail.lab.store.keywords import MAX_KEYWORDS, KeywordTable
from twisted_netlab.mail.lab.store.modseq import ModseqLog
from twisted_netlab.mail.lab.store.names import (
    INBOX,
    KEYWORDS_NAME,
    LOCK_NAME,
    MODSEQ_NAME,
    UIDLIST_NAME,
    crlf_size,
    flags_from_info,
    info_with_flags,
    message_name,
    size_from_name,
)
from twisted_netlab.mail.lab.store.table import (
    KEYWORD_SHIFT,
    MessageTable,
    flags_of_word,
    info_of,
    key_of,
)
from twisted_netlab.mail.lab.store.uidlist import UIDList

# A directory changed less than this many seconds ago may change again within
# the same timestamp: do not trust its mtime to skip a rescan.
_DIRTY_WINDOW = 2.0


@dataclass
class StoredMessage:
    """
    One message file of a folder, as last seen on disk (a snapshot: the
    folder keeps its messages in a L{MessageTable}).

    @ivar uid: its IMAP UID.
    @ivar key: the unique part of its file name (before the colon).
    @ivar subdir: C{"new"} or C{"cur"}.
    @ivar info: the Maildir info letters after C{:2,} (empty for C{new/}).
    @ivar name: the file name.
    @ivar keywords: the keywords (IMAP flags without a backslash) its info's
        lowercase letters stand for, in the folder's C{dovecot-keywords}.
    """

    uid: int
    key: str
    subdir: str
    info: str
    name: str
    keywords: tuple[str, ...] = ()

    @property
    def flags(self) -> tuple[str, ...]:
        """Its system flags, then its keywords."""
        return flags_from_info(self.info) + self.keywords

    @property
    def recent(self) -> bool:
        return self.subdir == "new"


@dataclass(frozen=True)
class FolderChange:
    """
    What changed in a folder: sent to its listeners.

    @ivar new: UIDs of messages that appeared.
    @ivar flags: UIDs whose flags changed.
    @ivar gone: UIDs of messages that disappeared.
    """

    new: tuple[int, ...] = ()
    flags: tuple[int, ...] = ()
    gone: tuple[int, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.new or self.flags or self.gone)


#: Called with the change, for a change in one folder.
FolderListener = Callable[[FolderChange], None]


@dataclass(frozen=True)
class FolderStatus:
    """
    A folder's counts, kept as messages come, go and change: what SELECT,
    EXAMINE and STATUS answer.

    @ivar first_unseen: the sequence number (position in UID order, from 1)
        of the first message without C{\\Seen}, or L{None}.
    """

    messages: int
    recent: int
    unseen: int
    deleted: int
    uidnext: int
    uidvalidity: int
    highest_modseq: int
    first_unseen: int | None


@dataclass(frozen=True)
class FolderSnapshot:
    """
    The folder at one moment, for a session that starts following it: its
    UIDs (ascending, a copy), those of its messages in C{new/}, the first
    unseen message and the table's version (see L{Folder.changes_since}).
    """

    uids: array[int]
    recent: set[int]
    first_unseen: int | None
    version: int


class _ListingChanged(Exception):
    """The UID list was replaced while a folder was being brought up to date."""


class Folder:
    """
    One mailbox: a Maildir directory and its UID list (L{UIDList}).

    Methods are safe to call from several threads; the UID list is shared
    with other processes through C{fcntl.flock}. Every change made here is
    reported to the folder's listeners (in the thread that made it).
    """

    def __init__(self, path: Path, name: str) -> None:
        self.path = path
        self.name = name
        self._uidlist_path = path / UIDLIST_NAME
        self._directory = str(path)
        self._mutex = threading.RLock()
        self._uids = UIDList(self._uidlist_path, path if name == INBOX else path.parent)
        self._table = MessageTable()
        # The UID list's generation the table was last brought in line with.
        self._generation = -1
        self._stamp: tuple[int, int] | None = None
        self._scanned = False
        self._listeners: list[FolderListener] = []
        self._keywords = KeywordTable(path / KEYWORDS_NAME)
        self._modseqs = ModseqLog(path / MODSEQ_NAME)
        # The flags of each flag word, for the keyword table they were made
        # with.
        self._flags_by_word: dict[int, tuple[str, ...]] = {}
        self._flags_for: dict[int, str] | None = None
        # Sizes read from the files of messages whose names lack W=.
        self._measured: dict[int, int] = {}
        #: What the folder keeps (set by its L{MailStore}); see L{prune}.
        self.retention = Retention()
        self._held: Counter[int] = Counter()
        self._prune_pending = False

    # --- listeners -----------------------------------------------------------

    def add_listener(self, listener: FolderListener) -> None:
        with self._mutex:
            self._listeners.append(listener)

    def remove_listener(self, listener: FolderListener) -> None:
        with self._mutex, suppress(ValueError):
            self._listeners.remove(listener)

    def _notify(self, change: FolderChange) -> None:
        if not change:
            return
        with self._mutex:
            listeners = list(self._listeners)
        for listener in listeners:
            listener(change)

    # --- the lock (the UID list, keywords and MODSEQs are changed under it) ----

    @contextmanager
    def _locked(self) -> Iterator[None]:
        """
        Hold the folder's mutex and its UID list lock (against other
        processes and other L{Folder} objects on the same directory).
        """
        with self._mutex:
            fd = os.open(self.path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    # --- scanning ------------------------------------------------------------

    @property
    def uidvalidity(self) -> int:
        with self._mutex:
            if not self._uids.uidvalidity:
                self.refresh()
            return self._uids.uidvalidity

    @property
    def uidnext(self) -> int:
        with self._mutex:
            if not self._scanned:
                self.refresh()
            return self._uids.uidnext

    def _directory_stamp(self) -> tuple[int, int] | None:
        """
        The modification times of C{new/} and C{cur/}, or L{None} if either
        changed too recently to be trusted (or is missing).
        """
        try:
            new = os.stat(self.path / "new").st_mtime_ns
            cur = os.stat(self.path / "cur").st_mtime_ns
        except FileNotFoundError:
            return None
        if time.time() - max(new, cur) / 1e9 < _DIRTY_WINDOW:
            return None
        return (new, cur)

    def _list_names(self) -> tuple[set[str], set[str]]:
        """
        The names in C{new/} and in C{cur/} (C{new/} is listed first, so a
        file moved to C{cur/} meanwhile is seen at least once), as they are
        (L{_usable} tells the message files).
        """
        listed: list[set[str]] = []
        for subdir in ("new", "cur"):
            try:
                listed.append(set(os.listdir(f"{self._directory}/{subdir}")))
            except FileNotFoundError:
                if not self.path.is_dir():
                    raise NoSuchMailbox(
                        f"mailbox {self.name} no longer exists"
                    ) from None
                listed.append(set())
        return listed[0], listed[1]

    def refresh(self, *, force: bool = False) -> FolderChange:
        """
        Bring the folder up to date with the disk: give UIDs to files that
        have none, notice flag changes and vanished files. Cheap when the
        directories did not change (their modification times, trusted once
        a moment old); otherwise the cost is a listing and the files that
        changed. Listeners hear of any change.
        """
        with self._mutex:
            stamp = self._directory_stamp()
            if (
                not force
                and self._scanned
                and stamp is not None
                and stamp == self._stamp
            ):
                return FolderChange()
            listing = self._list_names()
            self._modseqs.load()
            self._uids.read()
            fresh = self._uids.take_fresh()
            change: FolderChange | None = None
            if (
                self._scanned
                and fresh is not None
                and self._generation == self._uids.generation
            ):
                with suppress(_ListingChanged):
                    change = self._sync(listing, fresh)
            if change is None:
                change = self._rebuild(listing)
            if not self._scanned:
                # The first scan only learns what is there.
                change = FolderChange()
            elif change.flags or change.gone:
                self._record_modseqs([*change.flags, *change.gone])
            self._stamp = stamp
            self._scanned = True
            table = self._table
            if self._uids.wants_compaction(len(table)):
                with self._locked():
                    self._uids.compact(
                        {
                            key_of(n): u
                            for u, n in zip(table.uids, table.names, strict=True)
                        }
                    )
                    # Same UIDs: the table still holds.
                    self._uids.take_fresh()
                    self._generation = self._uids.generation
        self._notify(change)
        return change

    @staticmethod
    def _usable(name: str) -> bool:
        return not name.startswith(".") and "\n" not in name

    def _assign(
        self, unknown: set[str], known: dict[str, int], generation: int
    ) -> dict[str, int]:
        """
        The UIDs of message files whose keys (C{unknown}) the folder has not
        seen: C{known}'s (read from the UID list of C{generation}), the UID
        list's, or new ones, appended under the lock.

        @raise _ListingChanged: the UID list was replaced since C{known}
            was read.
        """
        found = {k: known[k] for k in unknown if k in known}
        missing = unknown.difference(found)
        if not missing and self._uids.uidvalidity:
            return found
        with self._locked():
            self._uids.read(locked=True)
            if self._uids.generation != generation:
                raise _ListingChanged()
            for uid, key in self._uids.take_fresh() or ():
                if key in missing:
                    found[key] = uid
            missing.difference_update(found)
            if missing:
                found.update(self._uids.key_map(missing))
                missing.difference_update(found)
            if missing:
                ordered = sorted(missing)
                found.update(zip(ordered, self._uids.append(ordered), strict=True))
        return found

    def _rebuild(self, listing: tuple[set[str], set[str]]) -> FolderChange:
        """
        Make the table anew from a listing and the whole UID list (the first
        scan, or the UID list was replaced).
        """
        new_names, cur_names = listing
        found: dict[str, tuple[str, bool]] = {}
        for names, new in ((new_names, True), (cur_names, False)):
            for name in names:
                if self._usable(name):
                    found[key_of(name)] = (name, new)
        table = self._table
        old_keys = {key_of(name) for name in table.names}
        if not old_keys.issubset(found):
            # A file renamed during the listing can be missed: look again
            # before calling anything gone.
            again_new, again_cur = self._list_names()
            for names, new in ((again_new, True), (again_cur, False)):
                for name in names:
                    key = key_of(name)
                    if key in old_keys and key not in found and self._usable(name):
                        found[key] = (name, new)
        while True:
            generation = self._uids.generation
            known = self._uids.key_map()
            try:
                uid_by_key = self._assign(set(found), known, generation)
                break
            except _ListingChanged:
                # Replaced by another process: read it again.
                self._uids.read()
        self._uids.take_fresh()
        self._generation = self._uids.generation
        old = dict(zip(table.uids, table.words, strict=True))
        table.replace(
            (uid_by_key[key], name, new)
            for key, (name, new) in found.items()
            if key in uid_by_key
        )
        new_words = dict(zip(table.uids, table.words, strict=True))
        flags_of = self._flags_of_word
        return FolderChange(
            new=tuple(sorted(uid for uid in new_words if uid not in old)),
            flags=tuple(
                sorted(
                    uid
                    for uid, word in new_words.items()
                    if uid in old and flags_of(old[uid]) != flags_of(word)
                )
            ),
            gone=tuple(sorted(uid for uid in old if uid not in new_words)),
        )

    def _sync(
        self, listing: tuple[set[str], set[str]], fresh: list[tuple[int, str]]
    ) -> FolderChange:
        """
        Bring the table in line with a listing, looking only at the files
        that came, went or were renamed since the table was made; C{fresh}:
        the lines other processes appended to the UID list since.

        @raise _ListingChanged: the UID list was replaced meanwhile.
        """
        table = self._table
        new_names, cur_names = listing
        known_new, known_cur = table.names_by_place()
        appeared_new = new_names - known_new
        appeared_cur = cur_names - known_cur
        vanished = (known_new - new_names) | (known_cur - cur_names)
        if not (appeared_new or appeared_cur or vanished):
            return FolderChange()
        # Files of the same key: the one in cur/ wins (listed last).
        appeared: dict[str, tuple[str, bool]] = {}
        for names, new in ((appeared_new, True), (appeared_cur, False)):
            for name in names:
                if self._usable(name):
                    appeared[key_of(name)] = (name, new)
        if len(vanished) > 16:
            index = {name: i for i, name in enumerate(table.names)}
            where = index.__getitem__
        else:
            where = table.names.index
        lost = {key_of(name): where(name) for name in vanished}
        moves: list[tuple[int, str, bool]] = []
        for key in [k for k in appeared if k in lost]:
            name, new = appeared.pop(key)
            moves.append((lost.pop(key), name, new))
        if lost:
            # A file renamed during the listing can be missed: look again
            # before calling anything gone.
            again_new, again_cur = self._list_names()
            for names, known, new in (
                (again_new, known_new, True),
                (again_cur, known_cur, False),
            ):
                for name in names - known:
                    key = key_of(name)
                    if key in lost and self._usable(name):
                        moves.append((lost.pop(key), name, new))
            for key, position in list(lost.items()):
                name = table.names[position]
                if name in (again_new if table.places[position] else again_cur):
                    del lost[key]  # back where it was
        added: list[tuple[int, str, bool]] = []
        if appeared:
            uid_by_key = self._assign(
                set(appeared), {k: u for u, k in fresh}, self._generation
            )
            for key, (name, new) in appeared.items():
                uid = uid_by_key.get(key)
                if uid is None:
                    continue
                position = table.position(uid)
                if position >= 0:
                    # Another name for a message the folder has (a link
                    # made before an unlink): the newest listing wins.
                    lost = {k: p for k, p in lost.items() if p != position}
                    moves.append((position, name, new))
                else:
                    added.append((uid, name, new))
        flags_of = self._flags_of_word
        changed = []
        for position, name, new in moves:
            old = table.update(position, name, new)
            if flags_of(old) != flags_of(table.words[position]):
                changed.append(table.uids[position])
        gone = table.remove(lost.values())
        for uid, name, new in sorted(added):
            table.add(uid, name, new)
        return FolderChange(
            new=tuple(uid for uid, _, _ in sorted(added)),
            flags=tuple(sorted(changed)),
            gone=tuple(sorted(gone)),
        )

    def _ensure_scanned(self) -> None:
        if not self._scanned:
            self.refresh()

    # --- what the folder holds -------------------------------------------------

    def uids(self) -> list[int]:
        """
        The UIDs of the folder's messages, in ascending order.
        """
        with self._mutex:
            self._ensure_scanned()
            return self._table.uids.tolist()

    def __len__(self) -> int:
        with self._mutex:
            self._ensure_scanned()
            return len(self._table)

    def _stored(self, position: int) -> StoredMessage:
        table = self._table
        name = table.names[position]
        info = info_of(name)
        return StoredMessage(
            table.uids[position],
            key_of(name),
            "new" if table.places[position] else "cur",
            info,
            name,
            self._keywords.names_in(info),
        )

    def entry(self, uid: int) -> StoredMessage:
        """
        What the folder knows of message C{uid}.

        @raise MessageGone: no such message.
        """
        with self._mutex:
            self._ensure_scanned()
            position = self._table.position(uid)
            if position < 0:
                raise MessageGone(f"message UID {uid} is gone")
            return self._stored(position)

    def entries(self) -> list[StoredMessage]:
        """
        What the folder knows of each of its messages, in UID order (one
        look, for those that need them all).
        """
        with self._mutex:
            self._ensure_scanned()
            return [self._stored(i) for i in range(len(self._table))]

    def _flags_of_word(self, word: int) -> tuple[str, ...]:
        """The flags of a flag word (L{table.word_of}), keywords by name."""
        keywords = self._keywords.by_index
        if keywords is not self._flags_for:
            self._flags_by_word = {}
            self._flags_for = keywords
        flags = self._flags_by_word.get(word)
        if flags is None:
            flags, complete = flags_of_word(word, keywords)
            if not complete:
                # A letter another process gave a keyword since we looked.
                self._keywords.load()
                flags, complete = flags_of_word(word, self._keywords.by_index)
            if complete and self._keywords.by_index is keywords:
                self._flags_by_word[word] = flags
        return flags

    def flags(self, uid: int) -> tuple[str, ...]:
        """
        The flags of message C{uid}: its system flags, then its keywords.

        @raise MessageGone: no such message.
        """
        with self._mutex:
            self._ensure_scanned()
            position = self._table.position(uid)
            if position < 0:
                raise MessageGone(f"message UID {uid} is gone")
            return self._flags_of_word(self._table.words[position])

    def is_new(self, uid: int) -> bool:
        """Whether message C{uid} is in C{new/} (no session has seen it)."""
        with self._mutex:
            self._ensure_scanned()
            position = self._table.position(uid)
            return position >= 0 and bool(self._table.places[position])

    def flag_words(self, uids: Sequence[int]) -> Sequence[int]:
        """
        The flag word of each of C{uids} (ascending), -1 for those gone;
        L{flags_of_word} gives their flags. Fast when C{uids} is an
        C{array("I")} run of the folder's own (the usual FETCH 1:*).
        """
        with self._mutex:
            self._ensure_scanned()
            table = self._table
            if not uids:
                return []
            start = table.position(uids[0])
            if start >= 0:
                run = table.uids[start : start + len(uids)]
                if run == uids:
                    return table.words[start : start + len(uids)]
            words = table.words
            return [words[p] if p >= 0 else -1 for p in table.positions(uids)]

    def flags_of_word(self, word: int) -> tuple[str, ...]:
        """The flags a flag word from L{flag_words} stands for."""
        with self._mutex:
            return self._flags_of_word(word)

    @property
    def version(self) -> int:
        """Grows with every change the folder knows of."""
        with self._mutex:
            return self._table.version

    def keyword_version(self) -> object:
        """
        What changes when a keyword is defined (so that flags rendered from
        flag words must be rendered again).
        """
        with self._mutex:
            self._keywords.load()
            return self._keywords.by_index

    def status(self) -> FolderStatus:
        """
        The folder's counts (kept, not counted): messages, recent (in
        C{new/}), unseen, deleted, UIDNEXT, UIDVALIDITY, HIGHESTMODSEQ and
        the first unseen message.
        """
        with self._mutex:
            self._ensure_scanned()
            table = self._table
            first = table.first_unseen()
            return FolderStatus(
                messages=len(table),
                recent=table.recent,
                unseen=table.unseen,
                deleted=table.deleted,
                uidnext=self._uids.uidnext,
                uidvalidity=self._uids.uidvalidity,
                highest_modseq=self._modseqs.highest(self._uids.uidnext),
                first_unseen=None if first < 0 else first + 1,
            )

    def total_size(self) -> int:
        """
        The size of every message with CRLF line ends, as STATUS's SIZE
        gives it: from the file names (W=), read from the files for the
        few whose names lack it (once).
        """

        def measure(uid: int) -> int | None:
            size = self._measured.get(uid)
            if size is None:
                try:
                    size = crlf_size(self.read(uid))
                except MessageGone:
                    return None
                self._measured[uid] = size
            return size

        with self._mutex:
            self._ensure_scanned()
            if len(self._measured) > 2 * len(self._table) + 64:
                live = set(self._table.uids)
                self._measured = {u: n for u, n in self._measured.items() if u in live}
            return self._table.size(measure)

    def snapshot(self) -> FolderSnapshot:
        """The folder as a session starting to follow it sees it (one look)."""
        with self._mutex:
            self._ensure_scanned()
            table = self._table
            uids = table.uids[:]
            if table.recent == 0:
                recent: set[int] = set()
            elif table.recent == len(table):
                recent = set(uids)
            else:
                recent = set(compress(uids, table.places))
            first = table.first_unseen()
            return FolderSnapshot(
                uids, recent, None if first < 0 else first + 1, table.version
            )

    def changes_since(self, snapshot: FolderSnapshot) -> FolderChange:
        """
        The messages that came and went since C{snapshot} was taken (for a
        session that took it before it listened).
        """
        with self._mutex:
            table = self._table
            if table.version == snapshot.version:
                return FolderChange()
            before = set(snapshot.uids)
            now = set(table.uids)
            return FolderChange(
                new=tuple(sorted(now - before)), gone=tuple(sorted(before - now))
            )

    def file_path(self, uid: int) -> str:
        """
        The path of message C{uid}'s file (plain strings: pathlib costs more
        than the read on the FETCH path).

        @raise MessageGone: no such message.
        """
        with self._mutex:
            self._ensure_scanned()
            table = self._table
            position = table.position(uid)
            if position < 0:
                raise MessageGone(f"message UID {uid} is gone")
            subdir = "new" if table.places[position] else "cur"
            return f"{self._directory}/{subdir}/{table.names[position]}"

    # --- messages ------------------------------------------------------------

    def read(self, uid: int) -> bytes:
        """
        The bytes of message C{uid}, as stored.

        @raise MessageGone: it was expunged or removed.
        """
        for attempt in range(3):
            path = self.file_path(uid)
            try:
                with open(path, "rb", buffering=0) as f:
                    return f.readall()
            except FileNotFoundError:
                # Renamed (flags) or removed by someone else: look again.
                if attempt < 2:
                    self.refresh(force=True)
        raise MessageGone(f"message UID {uid} is gone")

    def internal_date(self, uid: int) -> float:
        """
        The message's internal date (its file's modification time).
        """
        for attempt in range(3):
            path = self.file_path(uid)
            try:
                return os.stat(path).st_mtime
            except FileNotFoundError:
                if attempt < 2:
                    self.refresh(force=True)
        raise MessageGone(f"message UID {uid} is gone")

    def size(self, uid: int) -> int | None:
        """
        The message's size with CRLF line ends if its file name records it
        (C{W=}), else L{None}.
        """
        with self._mutex:
            self._ensure_scanned()
            position = self._table.position(uid)
            if position < 0:
                raise MessageGone(f"message UID {uid} is gone")
            return size_from_name(key_of(self._table.names[position]), "W=")

    def stamp(self, uid: int) -> tuple[int, int]:
        """
        What identifies the content of message C{uid}'s file: its size and
        modification time (nanoseconds). Flag changes (renames) keep it.

        @raise MessageGone: it was expunged or removed.
        """
        for attempt in range(3):
            path = self.file_path(uid)
            try:
                status = os.stat(path)
            except FileNotFoundError:
                if attempt < 2:
                    self.refresh(force=True)
                continue
            return (status.st_size, status.st_mtime_ns)
        raise MessageGone(f"message UID {uid} is gone")

    def deliver(
        self,
        message: bytes,
        flags: Iterable[str] = (),
        internal_date: float | None = None,
        *,
        envelope: Envelope | None = None,
    ) -> int:
        """
        Store C{message} atomically and durably and return its UID.
        C{envelope} is kept with it (L{envelope}), in the same synced write
        as its UID. With a L{retention} limit, the oldest messages beyond it
        go first, so that the folder never holds more than the limit.

        The message is written and synced in C{tmp/}; under the lock it gets
        the next UID (appended to the list, synced), then is renamed into
        C{new/} (C{cur/} if it has flags), and the directory is synced. A
        failure leaves nothing visible.
        """
        flags = list(flags)
        with self._mutex:
            self._define_keywords(flags)
        name, temporary = self._stage([message])
        try:
            if internal_date is not None:
                os.utime(temporary, (internal_date, internal_date))
            info = self._info_with_flags("", flags)
            if info:
                target = self.path / "cur" / f"{name}:2,{info}"
            else:
                target = self.path / "new" / name
            if self.retention:
                self.prune(room=1)
            with self._locked():
                self._uids.read(locked=True)
                (uid,) = self._uids.append([name], [envelope])
                # A rename, where netlab fetch links (it must not replace a
                # file of the same name): this name has random bits, and the
                # file must appear under the lock, right after its UID.
                os.rename(temporary, target)
            fsync_directory(target.parent)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(temporary)
            raise
        with self._mutex:
            if self._scanned:
                self._table.add(uid, target.name, target.parent.name == "new")
        self._notify(FolderChange(new=(uid,)))
        return uid

    def set_flags(
        self, changes: Mapping[int, Iterable[str]]
    ) -> dict[int, tuple[str, ...]]:
        """
        Give each message C{uid} exactly the flags C{changes[uid]} (IMAP
        system flags and keywords; other backslash flags are ignored) and
        return the flags each now has. A message in C{new/} moves to
        C{cur/}. Messages gone meanwhile are left out of the result. Each
        message whose flags changed gets a new MODSEQ.

        @raise KeywordLimit: a keyword is new and the folder has no letter
            left for it (nothing is changed then).
        """
        result: dict[int, tuple[str, ...]] = {}
        changed: list[int] = []
        changes = {uid: list(flags) for uid, flags in changes.items()}
        with self._mutex:
            self._ensure_scanned()
            self._define_keywords(f for flags in changes.values() for f in flags)
            for uid, wanted in changes.items():
                for attempt in range(3):
                    table = self._table
                    position = table.position(uid)
                    if position < 0:
                        break
                    name = table.names[position]
                    new = table.places[position]
                    current = info_of(name)
                    info = self._info_with_flags(current, wanted)
                    if info == current and not new:
                        result[uid] = self._flags_of_word(table.words[position])
                        break
                    new_name = f"{key_of(name)}:2,{info}"
                    subdir = "new" if new else "cur"
                    try:
                        os.rename(
                            f"{self._directory}/{subdir}/{name}",
                            f"{self._directory}/cur/{new_name}",
                        )
                    except FileNotFoundError:
                        if attempt < 2:
                            self.refresh(force=True)
                        continue
                    before = self._flags_of_word(
                        table.update(position, new_name, False)
                    )
                    after = self._flags_of_word(table.words[position])
                    result[uid] = after
                    if after != before:
                        changed.append(uid)
                    break
            self._record_modseqs(changed)
        self._notify(FolderChange(flags=tuple(changed)))
        return result

    def mark_seen_by_session(self, uids: Iterable[int]) -> None:
        """
        Move messages from C{new/} to C{cur/} (they are no longer recent),
        keeping their flags.
        """
        with self._mutex:
            self._ensure_scanned()
            table = self._table
            moves = {}
            for uid in uids:
                position = table.position(uid)
                if position >= 0 and table.places[position]:
                    moves[uid] = self._flags_of_word(table.words[position])
        if moves:
            self.set_flags(moves)

    def remove(self, uids: Iterable[int], *, sync: bool = True) -> list[int]:
        """
        Delete the files of messages C{uids}; return the UIDs removed.
        Without C{sync}, the removal is not made durable at once (pruning:
        a message that comes back after a crash is pruned again).
        """
        removed: list[int] = []
        with self._mutex:
            self._ensure_scanned()
            for uid in uids:
                try:
                    path = self.file_path(uid)
                except MessageGone:
                    continue
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    self.refresh(force=True)
                    try:
                        path = self.file_path(uid)
                    except MessageGone:
                        continue
                    with suppress(FileNotFoundError):
                        os.unlink(path)
                removed.append(uid)
            if removed:
                table = self._table
                table.remove(p for p in map(table.position, removed) if p >= 0)
                self._record_modseqs(removed, sync=sync)
        if removed and sync:
            for subdir in ("new", "cur"):
                fsync_directory(self.path / subdir)
        self._notify(FolderChange(gone=tuple(removed)))
        return removed

    # --- envelopes, messages in use, retention ---------------------------------

    def envelope(self, uid: int) -> Envelope | None:
        """
        The SMTP envelope message C{uid} arrived with, or L{None} (not
        delivered by SMTP, or gone).
        """
        with self._mutex:
            self._ensure_scanned()
            if self._table.position(uid) < 0:
                return None
            text = self._uids.envelope_text(uid)
        return None if text is None else Envelope.from_json(text)

    def hold(self, uids: Iterable[int]) -> None:
        """
        Mark messages as in use (a client is reading them): L{prune} leaves
        them alone until they are L{release}d, as often as they were held.
        """
        with self._mutex:
            self._held.update(uids)

    def release(self, uids: Iterable[int]) -> None:
        """
        Undo one L{hold} of C{uids}; pruning that had to skip them catches up.
        """
        with self._mutex:
            self._held.subtract(uids)
            for uid in [uid for uid, count in self._held.items() if count <= 0]:
                del self._held[uid]
            catch_up = self._prune_pending
        if catch_up:
            self.prune()

    @contextmanager
    def holding(self, uids: Iterable[int]) -> Iterator[None]:
        """
        L{hold} C{uids} for the duration of a C{with} block.
        """
        held = list(uids)
        self.hold(held)
        try:
            yield
        finally:
            self.release(held)

    def in_use(self, uid: int) -> bool:
        """
        Whether message C{uid} is held (see L{hold}).
        """
        with self._mutex:
            return self._held[uid] > 0 if uid in self._held else False

    def prune(self, *, room: int = 0, now: float | None = None) -> list[int]:
        """
        Remove the oldest messages (by UID) beyond the folder's L{retention}:
        past C{max_messages} (leaving C{room} for messages about to arrive)
        and older than C{max_age} (by internal date). Messages in use are
        skipped (a younger one goes instead, for the count) and pruned once
        released. Listeners hear of the removal. Returns the UIDs removed.
        """
        retention = self.retention
        if not retention:
            return []
        with self._mutex:
            self._ensure_scanned()
            uids = self._table.uids[:]
            held = self._held
            doomed: list[int] = []
            skipped = False
            if retention.max_age is not None:
                cutoff = (time.time() if now is None else now) - retention.max_age
                for uid in uids:
                    try:
                        old = self.internal_date(uid) < cutoff
                    except MessageGone:
                        continue
                    if not old:
                        break
                    if uid in held:
                        skipped = True
                    else:
                        doomed.append(uid)
            if retention.max_messages is not None:
                excess = len(uids) - len(doomed) + room - retention.max_messages
                chosen = set(doomed)
                for uid in uids:
                    if excess <= 0:
                        break
                    if uid in chosen:
                        continue
                    if uid in held:
                        skipped = True
                        continue
                    doomed.append(uid)
                    excess -= 1
            self._prune_pending = skipped
        if not doomed:
            return []
        return self.remove(sorted(doomed), sync=False)

    # --- delivery in steps (one message for several mailboxes; see
    # MailStore.deliver_batch) --------------------------------------------------

    def _stage(self, parts: Iterable[bytes]) -> tuple[str, Path]:
        """
        Write the concatenation of C{parts} into C{tmp/}, synced; return its
        file name and path. Nothing is visible yet. (L{deliver}'s first step
        too.)
        """
        chunks = [part for part in parts if part]
        size = sum(len(part) for part in chunks)
        virtual = sum(crlf_size(part) for part in chunks)
        name = message_name(size, virtual)
        temporary = self.path / "tmp" / name
        # 0o600, where netlab fetch's Maildir files are 0o666 (less the
        # umask): the lab's state directory is the server's alone.
        write_new_file(temporary, chunks, mode=0o600)
        return name, temporary

    def _commit(
        self,
        staged: list[tuple[str, Path]],
        envelopes: list[Envelope | None],
        *,
        sync: bool = True,
        infos: list[str] | None = None,
    ) -> list[tuple[int, str]]:
        """
        Give staged messages their UIDs (one append for all of them,
        envelopes included, synced unless C{sync} is false: then the caller
        syncs the UID list) and rename them into C{new/}, with the info
        letters of C{infos} (keywords, defined beforehand) in their names.
        Returns each one's UID and file name.  The caller syncs C{new/},
        then L{_publish}es them (or L{_retract}s them).
        """
        if self.retention:
            self.prune(room=len(staged))
        names = [
            f"{name}:2,{info}" if info else name
            for (name, _), info in zip(
                staged, infos if infos is not None else [""] * len(staged), strict=True
            )
        ]
        with self._locked():
            self._uids.read(locked=True)
            uids = self._uids.append([name for name, _ in staged], envelopes, sync=sync)
            for (_, temporary), name in zip(staged, names, strict=True):
                os.rename(temporary, f"{self._directory}/new/{name}")
        return list(zip(uids, names, strict=True))

    def _publish(self, delivered: list[tuple[int, str]]) -> None:
        """
        Tell the cache and the listeners of committed messages (UID, file
        name).
        """
        with self._mutex:
            if self._scanned:
                table = self._table
                for uid, name in sorted(delivered):
                    if table.position(uid) < 0:  # else a refresh found it first
                        table.add(uid, name, True)
        self._notify(FolderChange(new=tuple(uid for uid, _ in delivered)))

    def _retract(self, name: str) -> None:
        """
        Remove a committed but unpublished message (file name C{name}: its
        delivery failed elsewhere); its UID is never reused.
        """
        with suppress(FileNotFoundError):
            os.unlink(f"{self._directory}/new/{name}")

    # --- keywords and MODSEQ ---------------------------------------------------

    def keywords(self) -> list[str]:
        """
        The keywords defined in this folder (its C{dovecot-keywords}).
        """
        with self._mutex:
            self._keywords.load()
            return self._keywords.names()

    def can_add_keywords(self) -> bool:
        """
        Whether a new keyword would still get a letter (Maildir has 26).
        """
        with self._mutex:
            self._keywords.load()
            return len(self._keywords.by_index) < MAX_KEYWORDS

    def modseq(self, uid: int) -> int:
        """
        The MODSEQ of message C{uid} (RFC 7162): derived from its UID until
        its flags first change, then the value recorded for that change.
        Changes recorded by other processes are read when the folder is
        refreshed (as their renames are).
        """
        with self._mutex:
            return self._modseqs.modseq(uid)

    def modseqs(self, uids: Iterable[int]) -> list[int]:
        """The MODSEQ of each of C{uids} (one look, for a FETCH of many)."""
        with self._mutex:
            modseq = self._modseqs.modseq
            return [modseq(uid) for uid in uids]

    def highest_modseq(self) -> int:
        """
        The folder's HIGHESTMODSEQ: above every message's MODSEQ and every
        expunge; it grows with each delivery and each change.
        """
        with self._mutex:
            self._ensure_scanned()
            return self._modseqs.highest(self._uids.uidnext)

    def _info_with_flags(self, info: str, flags: Iterable[str]) -> str:
        """
        Maildir info letters for C{flags}: system flags as L{info_with_flags}
        makes them, keywords as their C{dovecot-keywords} letters (defined
        beforehand by L{_define_keywords}); other letters of C{info} kept.
        """
        flags = list(flags)
        base = info_with_flags(info, flags)
        letters = {c for c in base if not ("a" <= c <= "z")}
        for flag in flags:
            if flag and not flag.startswith("\\"):
                letter = self._keywords.letter_of(flag)
                if letter is not None:
                    letters.add(letter)
        return "".join(sorted(letters))

    def define_keywords(self, names: Iterable[str]) -> None:
        """
        Give every keyword of C{names} a letter now (before setting it on
        messages, so that a change across folders is refused before any of
        them changes).

        @raise KeywordLimit: no letter is left for a new keyword, even once
            the letters no message carries are freed.
        @raise InvalidName: a keyword that cannot be stored.
        """
        with self._mutex:
            self._define_keywords(names)

    def spelled(self, keyword: str) -> str | None:
        """
        Keyword C{keyword} as this folder spells it (keywords are matched
        without regard to case), or None if it has no such keyword.
        """
        with self._mutex:
            self._keywords.load()
            return self._keywords.defined_as(keyword)

    def _define_keywords(
        self, flags: Iterable[str], *, partial: bool = False
    ) -> list[str]:
        """
        Give every keyword among C{flags} a letter, writing
        C{dovecot-keywords} under the folder's lock if one is new; when the
        26 letters are all taken, those no message carries any more are
        freed first.  Returns the keywords among C{flags} that have a
        letter now.

        @param partial: give letters to those that fit, leave the others
            out, instead of raising.
        @raise KeywordLimit: no letter is left for a new keyword (not with
            C{partial}).
        @raise InvalidName: a keyword that cannot be stored (space, control
            character, parenthesis...).
        """
        wanted = [f for f in flags if f and not f.startswith("\\")]
        if not wanted:
            return []
        self._keywords.load()
        missing = [f for f in wanted if self._keywords.letter_of(f) is None]
        if not missing:
            return wanted
        for name in missing:
            if any(c in name for c in ' ()"{%*]\\') or not name.isprintable():
                raise InvalidName(f"not a usable keyword: {name!r}")
        new = len({name.lower() for name in missing})
        with self._locked():
            self._keywords.load()
            if len(self._keywords.by_index) + new <= MAX_KEYWORDS:
                self._keywords.define(missing)
                return wanted
        self._reclaim_keywords()
        with self._locked():
            self._keywords.define(missing, partial=partial)
        return [f for f in wanted if self._keywords.has(f)]

    def _reclaim_keywords(self) -> None:
        """
        Free the letters of keywords that no message of the folder carries
        any more (Maildir has 26).  Call with the mutex held and without
        the UID list lock.
        """
        self.refresh(force=True)
        bits = 0
        for word in self._table.words:
            bits |= word
        used = {
            chr(97 + i) for i in range(MAX_KEYWORDS) if bits >> (KEYWORD_SHIFT + i) & 1
        }
        with self._locked():
            self._keywords.load()
            unused = [
                name
                for index, name in self._keywords.by_index.items()
                if chr(97 + index) not in used
            ]
            self._keywords.forget(unused)

    def rename_keyword(self, old: str, new: str, *, check_only: bool = False) -> bool:
        """
        Call keyword C{old} C{new}: its letter stays, so no message file
        is renamed; the messages that carry it are told of as changed (new
        MODSEQs).  Returns whether the folder has C{old}.

        @param check_only: change nothing, only say (and raise).
        @raise KeywordExists: another keyword of the folder is called C{new}.
        """
        if any(c in new for c in ' ()"{%*]\\') or not new or not new.isprintable():
            raise InvalidName(f"not a usable keyword: {new!r}")
        with self._mutex:
            self._ensure_scanned()
            with self._locked():
                letter = self._keywords.rename(old, new, check_only=check_only)
            if letter is None:
                return False
            if check_only:
                return True
            bit = 1 << (KEYWORD_SHIFT + ord(letter) - 97)
            table = self._table
            changed = [
                uid
                for uid, word in zip(table.uids, table.words, strict=True)
                if word & bit
            ]
            if changed:
                table.version += 1
            self._record_modseqs(changed)
        self._notify(FolderChange(flags=tuple(changed)))
        return True

    def remove_keyword(self, keyword: str) -> bool:
        """
        Take keyword C{keyword} off every message of the folder (renaming
        their files) and free its letter.  Returns whether the folder had
        it.
        """
        with self._mutex:
            self._ensure_scanned()
            self._keywords.load()
            letter = self._keywords.letter_of(keyword)
            if letter is None:
                return False
            lowered = keyword.lower()
            bit = 1 << (KEYWORD_SHIFT + ord(letter) - 97)
            table = self._table
            changes = {
                uid: [f for f in self._flags_of_word(word) if f.lower() != lowered]
                for uid, word in zip(table.uids, table.words, strict=True)
                if word & bit
            }
            if changes:
                self.set_flags(changes)
            if not any(word & bit for word in self._table.words):
                with self._locked():
                    self._keywords.forget([keyword])
        return True

    def _record_modseqs(self, uids: Iterable[int], *, sync: bool = False) -> None:
        """
        Give messages C{uids} (changed or expunged) one new MODSEQ. Synced
        to disk only with C{sync} (expunges, whose removals are synced too);
        a flag change is a rename that is not synced either, and a FETCH of
        C{BODY[]} changes one message's flags at a time. Call without the
        UID list lock held.
        """
        uids = list(uids)
        if not uids:
            return
        with self._locked():
            self._uids.read(locked=True)
            self._modseqs.record(uids, self._uids.uidnext, sync=sync)
