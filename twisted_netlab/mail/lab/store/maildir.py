"""
The mail lab's message store: one Maildir per user, with IMAP UIDs.

Layout under the store's root (the state directory's C{mail/})::

    <address>/                  the user's Maildir, which is INBOX
        cur/ new/ tmp/
        netlab-uidlist          UIDVALIDITY, UIDNEXT, the UID of each message
                                and the SMTP envelope of each delivered one
        netlab-uidlist.lock     taken (fcntl.flock) to assign UIDs
        netlab-uidvalidity      the last UIDVALIDITY given to a mailbox of this user
        netlab-modseq           MODSEQs of changed messages (CONDSTORE), per folder
        dovecot-keywords        keyword of each info letter a-z, per folder
        subscriptions           subscribed mailbox names, one a line
        .Sent/                  other mailboxes: Maildir++ folders, names in
        .Archive.2024/          modified UTF-7, hierarchy delimiter "."

Messages are files as in any Maildir: delivered into C{tmp/}, renamed into
C{new/}, moved to C{cur/} once an IMAP session has seen them, flags in the
name's info (C{:2,FRS}). A message's UID is keyed by the unique part of its
file name (before the colon), so renames by flag changes, by this server or by
any other Maildir program, never change it. The UID list is append-only: a
delivery appends one line under the lock, whatever process it runs in; files
that other programs drop into the Maildir get UIDs the next time the folder is
scanned, in name order. Lines of messages long gone are dropped when the list
is compacted (atomically, keeping UIDNEXT), so UIDs are never reused.

The stdlib C{mailbox} module creates the Maildirs and folders; delivery is
done here because C{mailbox.Maildir.add} neither syncs to disk nor tells us
the file name before the message becomes visible.
"""

from __future__ import annotations

import bisect
import errno
import fcntl
import itertools
import json
import mailbox as stdlib_mailbox
import os
import secrets
import shutil
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from twisted_netlab.durable import fsync_directory, replace_file
from twisted_netlab.errors import ServerRefused

INBOX = "INBOX"
HIERARCHY_DELIMITER = "."
UIDLIST_NAME = "netlab-uidlist"
LOCK_NAME = "netlab-uidlist.lock"
UIDVALIDITY_NAME = "netlab-uidvalidity"
UIDVALIDITY_LOCK_NAME = "netlab-uidvalidity.lock"
SUBSCRIPTIONS_NAME = "subscriptions"
KEYWORDS_NAME = "dovecot-keywords"
MODSEQ_NAME = "netlab-modseq"

_T = TypeVar("_T")

_UIDLIST_MAGIC = "netlab-uidlist 1"
# Threads that write and sync the files of one batch of deliveries.
_STAGING_THREADS = 8
# Starts a UID list line that holds the SMTP envelope of a message.
_ENVELOPE_TAG = "E "
_MAX_NAME_LENGTH = 200
# Compact a UID list once it holds this many lines of vanished messages (and
# more of them than of live ones).
_COMPACT_AFTER = 1000
# A directory changed less than this many seconds ago may change again within
# the same timestamp: do not trust its mtime to skip a rescan.
_DIRTY_WINDOW = 2.0

# IMAP system flags and their Maildir info letters.
FLAG_LETTERS = {
    "\\Draft": "D",
    "\\Flagged": "F",
    "\\Answered": "R",
    "\\Seen": "S",
    "\\Deleted": "T",
}
_LETTER_FLAGS = {letter: flag for flag, letter in FLAG_LETTERS.items()}
SYSTEM_FLAGS = tuple(FLAG_LETTERS)


class MailStoreError(ServerRefused):
    """
    A request the mail store refuses: a bad or unknown mailbox, a bad address.
    """


class InvalidName(MailStoreError):
    """
    A mailbox name or address that could leave the user's Maildir or that
    the store cannot hold.
    """


class NoSuchMailbox(MailStoreError):
    """
    The mailbox does not exist.
    """


class MailboxExists(MailStoreError):
    """
    A mailbox of that name already exists.
    """


class MailboxHasChildren(MailStoreError):
    """
    The mailbox has inferior mailboxes; delete them first.
    """


class MessageGone(MailStoreError):
    """
    The message was expunged (or removed by another program).
    """


def validate_address(address: str) -> str:
    """
    Return the canonical (lowercased) form of a user's address, which names
    the user's Maildir.

    @raise InvalidName: the address is empty, too long, or could name
        anything but one directory directly under the store's root.
    """
    canonical = address.strip().lower()
    if (
        not canonical
        or len(canonical) > _MAX_NAME_LENGTH
        or canonical.startswith(".")
        or any(c in canonical for c in "/\\")
        or any(ord(c) < 0x20 or ord(c) == 0x7F for c in canonical)
    ):
        raise InvalidName(f"not a usable address for a mailbox: {address!r}")
    return canonical


def validate_mailbox_name(name: str) -> str:
    """
    Return the canonical form of an IMAP mailbox name (C{INBOX} in any case
    becomes C{INBOX}).

    Names are hierarchical with C{.} as the delimiter. A name is refused when
    it is empty, has an empty level (C{a..b}, a leading or trailing C{.}),
    contains C{/}, a control character or a wildcard, or is too long:
    whatever the name, its folder is one directory directly inside the
    user's Maildir.

    @raise InvalidName: the name is refused.
    """
    if name.upper() == INBOX:
        return INBOX
    problem = None
    if not name:
        problem = "empty name"
    elif len(name) > _MAX_NAME_LENGTH:
        problem = "name too long"
    elif "/" in name:
        problem = "names may not contain /"
    elif any(c in name for c in "%*"):
        problem = "names may not contain wildcards"
    elif any(ord(c) < 0x20 or 0x7F <= ord(c) < 0xA0 for c in name):
        problem = "names may not contain control characters"
    elif "" in name.split(HIERARCHY_DELIMITER):
        problem = "names may not have an empty level (.. or a leading or trailing .)"
    if problem is not None:
        raise InvalidName(f"bad mailbox name {name!r}: {problem}")
    return name


def encode_folder_name(name: str) -> str:
    """
    The Maildir++ directory name (C{.Name} in modified UTF-7) of a mailbox.
    """
    import twisted.mail.imap4  # noqa: F401  registers the imap4-utf-7 codec

    return "." + name.encode("imap4-utf-7").decode("ascii")


def decode_folder_name(directory: str) -> str | None:
    """
    The mailbox name of a Maildir++ directory name, or L{None} if it is not
    one this store would have made.
    """
    import twisted.mail.imap4  # noqa: F401  registers the imap4-utf-7 codec

    if not directory.startswith(".") or directory in (".", ".."):
        return None
    encoded = directory[1:]
    try:
        name: str = encoded.encode("ascii").decode("imap4-utf-7")
        if name.encode("imap4-utf-7").decode("ascii") != encoded:
            return None
        return validate_mailbox_name(name)
    except (UnicodeError, ValueError, MailStoreError):
        return None


def flags_from_info(info: str) -> tuple[str, ...]:
    """
    The IMAP system flags in a Maildir info string's letters (after C{2,}).
    """
    return tuple(_LETTER_FLAGS[c] for c in sorted(set(info)) if c in _LETTER_FLAGS)


def info_with_flags(info: str, flags: Iterable[str]) -> str:
    """
    Maildir info letters for C{flags}, keeping letters of C{info} that are
    not IMAP system flags (such as C{P}, passed, and keyword letters).
    """
    letters = {c for c in info if c not in _LETTER_FLAGS}
    for flag in flags:
        letter = _flag_letter(flag)
        if letter is not None:
            letters.add(letter)
    return "".join(sorted(letters))


def _flag_letter(flag: str) -> str | None:
    for known, letter in FLAG_LETTERS.items():
        if known.lower() == flag.lower():
            return letter
    return None


def crlf_size(data: bytes) -> int:
    """
    The size of C{data} once every bare LF is made CRLF, as IMAP sends it.
    """
    return len(data) + data.count(b"\n") - data.count(b"\r\n")


def _ignoring_missing() -> suppress:
    return suppress(FileNotFoundError)


_HOSTNAME = (
    socket.gethostname().replace("/", "\\057").replace(":", "\\072") or "localhost"
)
_counter = itertools.count()


def _unique_name(size: int, virtual_size: int) -> str:
    """
    A new Maildir file name: time, microseconds, process, counter and random
    bits make it unique across processes and threads; C{S=} and C{W=} record
    the size on disk and the size with CRLF line ends (as Dovecot does).
    """
    now = time.time()
    seconds = int(now)
    micro = int((now - seconds) * 1_000_000)
    return (
        f"{seconds}.M{micro}P{os.getpid()}Q{next(_counter)}"
        f"R{secrets.token_hex(4)}.{_HOSTNAME},S={size},W={virtual_size}"
    )


def _size_from_name(key: str, tag: str) -> int | None:
    for part in key.split(",")[1:]:
        if part.startswith(tag):
            try:
                return int(part[len(tag) :])
            except ValueError:
                return None
    return None


@dataclass
class StoredMessage:
    """
    One message file of a folder, as last seen on disk.

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


FolderListener = Callable[[FolderChange], None]
#: Called with (address, mailbox, change) for a change in any folder.
StoreListener = Callable[[str, str, FolderChange], None]


@dataclass(frozen=True)
class Envelope:
    """
    The SMTP envelope a message arrived with, kept with the message.

    @ivar mail_from: the reverse path of C{MAIL FROM} (C{""} for C{<>}).
    @ivar rcpt_to: every accepted C{RCPT TO} address, in order (so that Bcc
        recipients can be seen), not only those of this copy's mailbox.
    @ivar client: the client's address (an IP address, or C{"unix"}).
    @ivar tls: whether the session was encrypted.
    @ivar auth_user: the address the client authenticated as, if it did.
    @ivar received: when the message was accepted (seconds since the epoch).
    """

    mail_from: str
    rcpt_to: tuple[str, ...]
    client: str
    tls: bool
    auth_user: str | None
    received: float

    def to_json(self) -> str:
        """
        The envelope as one line of ASCII JSON (never a newline in it).
        """
        return json.dumps(
            {
                "from": self.mail_from,
                "to": list(self.rcpt_to),
                "client": self.client,
                "tls": self.tls,
                "auth": self.auth_user,
                "at": self.received,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Envelope | None:
        """
        The envelope of a UID list line, or L{None} if it is unreadable.
        """
        try:
            data = json.loads(text)
            auth = data.get("auth")
            envelope = cls(
                mail_from=str(data["from"]),
                rcpt_to=tuple(str(address) for address in data["to"]),
                client=str(data.get("client", "")),
                tls=bool(data.get("tls", False)),
                auth_user=None if auth is None else str(auth),
                received=float(data["at"]),
            )
        except (ValueError, TypeError, KeyError, AttributeError):
            return None
        return envelope


@dataclass(frozen=True)
class Delivery:
    """
    One message for the INBOXes of C{addresses} (see L{MailStore.deliver_many}).
    """

    message: bytes
    addresses: Iterable[str]
    envelope: Envelope | None = None
    prefixes: Mapping[str, bytes] | None = None


@dataclass(frozen=True)
class Retention:
    """
    How much mail a mailbox keeps: at most C{max_messages} messages, none
    older than C{max_age} seconds (L{None}: no limit). The oldest go first.
    """

    max_messages: int | None = None
    max_age: float | None = None

    def __bool__(self) -> bool:
        return self.max_messages is not None or self.max_age is not None


@dataclass
class _UIDList:
    """
    What has been read of a folder's UID list file.
    """

    uidvalidity: int = 0
    header_uidnext: int = 1
    uid_by_key: dict[str, int] = field(default_factory=dict)
    #: UID -> the JSON text of its SMTP envelope (its C{E} line).
    envelopes: dict[int, str] = field(default_factory=dict)
    max_uid: int = 0
    offset: int = 0
    inode: int = -1
    lines: int = 0

    @property
    def uidnext(self) -> int:
        return max(self.header_uidnext, self.max_uid + 1)


class Folder:
    """
    One mailbox: a Maildir directory and its UID list.

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
        self._uids = _UIDList()
        self._entries: dict[int, StoredMessage] = {}
        self._by_key: dict[str, int] = {}
        self._sorted: list[int] = []
        self._stamp: tuple[int, int] | None = None
        self._scanned = False
        self._listeners: list[FolderListener] = []
        self._keywords = _KeywordTable(path / KEYWORDS_NAME)
        self._modseqs = _ModseqLog(path / MODSEQ_NAME)
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

    # --- the UID list --------------------------------------------------------

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

    def _sync_uidlist(self, *, locked: bool = False) -> None:
        """
        Read what was appended to the UID list since the last read (all of
        it, if the file was replaced by a compaction).

        Under the lock (C{locked}), a torn last line, left by a writer that
        died, is cut off so that the next append starts a line of its own;
        a missing file is created with a new UIDVALIDITY.
        """
        state = self._uids
        try:
            f = open(self._uidlist_path, "rb")  # noqa: SIM115  closed below
        except FileNotFoundError:
            if not locked:
                return
            self._create_uidlist()
            return
        with f:
            st = os.fstat(f.fileno())
            if st.st_ino != state.inode or st.st_size < state.offset:
                state = self._uids = _UIDList(inode=st.st_ino)
            if st.st_size == state.offset:
                return
            f.seek(state.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        for line in data[:end].split(b"\n")[:-1]:
            self._parse_uidlist_line(state, line)
        state.offset += end
        if locked and end < len(data):
            os.truncate(self._uidlist_path, state.offset)
        if locked and state.uidvalidity == 0:
            # Header missing or unreadable: start a new list (new UIDVALIDITY).
            self._create_uidlist()

    @staticmethod
    def _parse_uidlist_line(state: _UIDList, line: bytes) -> None:
        text = line.decode("utf-8", "surrogateescape")
        if state.lines == 0 and state.offset == 0:
            state.lines = 1
            fields = text.split(" ")
            if text.startswith(_UIDLIST_MAGIC + " ") and len(fields) == 4:
                try:
                    state.uidvalidity = int(fields[2])
                    state.header_uidnext = int(fields[3])
                except ValueError:
                    pass
            return
        state.lines += 1
        if text.startswith(_ENVELOPE_TAG):
            # "E UID JSON": the envelope of the message on the line before.
            # Readers that predate envelopes skip it (no numeric UID).
            uid_text, _, envelope = text[len(_ENVELOPE_TAG) :].partition(" ")
            with suppress(ValueError):
                state.envelopes[int(uid_text)] = envelope
            return
        uid_text, _, key = text.partition(" ")
        try:
            uid = int(uid_text)
        except ValueError:
            return
        if uid < 1 or not key:
            return
        state.uid_by_key[key] = uid
        if uid > state.max_uid:
            state.max_uid = uid

    def _create_uidlist(self) -> None:
        user_directory = self.path if self.name == INBOX else self.path.parent
        uidvalidity = _next_uidvalidity(user_directory)
        uidnext = self._uids.uidnext if self._uids.uidvalidity else 1
        replace_file(
            self._uidlist_path,
            f"{_UIDLIST_MAGIC} {uidvalidity} {uidnext}\n".encode(),
        )
        self._uids = _UIDList()
        self._sync_uidlist()

    def _append_uids(
        self,
        keys: list[str],
        envelopes: list[Envelope | None] | None = None,
        *,
        sync: bool = True,
    ) -> list[int]:
        """
        Give each key the next UID and append them to the list, synced, each
        followed by the C{E} line of its envelope (if any): one write and one
        fsync for all of them. Call with the lock held, right after
        L{_sync_uidlist}.
        """
        state = self._uids
        first = state.uidnext
        uids = list(range(first, first + len(keys)))
        if envelopes is None:
            envelopes = [None] * len(keys)
        text = "".join(
            f"{uid} {key}\n"
            + (
                ""
                if envelope is None
                else f"{_ENVELOPE_TAG}{uid} {envelope.to_json()}\n"
            )
            for uid, key, envelope in zip(uids, keys, envelopes, strict=True)
        )
        data = text.encode("utf-8", "surrogateescape")
        fd = os.open(self._uidlist_path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        self._sync_uidlist(locked=True)
        return uids

    def _compact(self, live: dict[str, int]) -> None:
        """
        Rewrite the UID list with the lines of C{live} messages only (and any
        line appended since they were scanned). Call with the lock held.
        """
        self._sync_uidlist(locked=True)
        state = self._uids
        seen_max = max(live.values(), default=0)
        keep = {
            key: uid
            for key, uid in state.uid_by_key.items()
            if key in live or uid > seen_max
        }
        lines = [f"{_UIDLIST_MAGIC} {state.uidvalidity} {state.uidnext}\n"]
        envelopes = state.envelopes
        lines.extend(
            f"{uid} {key}\n"
            + (f"{_ENVELOPE_TAG}{uid} {envelopes[uid]}\n" if uid in envelopes else "")
            for key, uid in sorted(keep.items(), key=lambda i: i[1])
        )
        replace_file(
            self._uidlist_path, "".join(lines).encode("utf-8", "surrogateescape")
        )
        self._uids = _UIDList()
        self._sync_uidlist(locked=True)

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

    def _list_files(self) -> dict[str, tuple[str, str]]:
        """
        Map each message key to its (subdirectory, file name). C{new/} is
        listed first, so a file moved to C{cur/} meanwhile is seen at least once.
        """
        found: dict[str, tuple[str, str]] = {}
        for subdir in ("new", "cur"):
            try:
                entries = os.scandir(self.path / subdir)
            except FileNotFoundError:
                if not self.path.is_dir():
                    raise NoSuchMailbox(
                        f"mailbox {self.name} no longer exists"
                    ) from None
                continue
            with entries:
                for entry in entries:
                    name = entry.name
                    if name.startswith(".") or "\n" in name:
                        continue
                    key = name.split(":", 1)[0]
                    found[key] = (subdir, name)
        return found

    def refresh(self, *, force: bool = False) -> FolderChange:
        """
        Bring the folder up to date with the disk: give UIDs to files that
        have none, notice flag changes and vanished files. Cheap when the
        directories did not change. Listeners hear of any change.
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
            found = self._list_files()
            self._modseqs.load()
            vanished = [k for k in self._by_key if k not in found]
            if vanished:
                # A file renamed during the listing can be missed: look again
                # before calling anything gone.
                again = self._list_files()
                for key in vanished:
                    if key in again:
                        found[key] = again[key]
            self._sync_uidlist()
            unknown = [k for k in found if k not in self._uids.uid_by_key]
            if unknown or not self._uids.uidvalidity:
                with self._locked():
                    self._sync_uidlist(locked=True)
                    unknown = sorted(k for k in found if k not in self._uids.uid_by_key)
                    if unknown:
                        self._append_uids(unknown)
            change = self._replace_entries(found)
            if not self._scanned:
                # The first scan only learns what is there.
                change = FolderChange()
            elif change.flags or change.gone:
                self._record_modseqs([*change.flags, *change.gone])
            self._stamp = stamp
            self._scanned = True
            uid_by_key = self._uids.uid_by_key
            dead = len(uid_by_key) - len(self._entries)
            if dead > _COMPACT_AFTER and dead > len(self._entries):
                with self._locked():
                    self._compact({e.key: e.uid for e in self._entries.values()})
        self._notify(change)
        return change

    def _replace_entries(self, found: dict[str, tuple[str, str]]) -> FolderChange:
        uid_by_key = self._uids.uid_by_key
        entries: dict[int, StoredMessage] = {}
        for key, (subdir, name) in found.items():
            uid = uid_by_key.get(key)
            if uid is None:
                continue
            info = name.split(":2,", 1)[1] if ":2," in name else ""
            entries[uid] = StoredMessage(
                uid, key, subdir, info, name, self._keywords.names_in(info)
            )
        old = self._entries
        new = tuple(sorted(uid for uid in entries if uid not in old))
        gone = tuple(sorted(uid for uid in old if uid not in entries))
        flags = tuple(
            sorted(
                uid
                for uid, entry in entries.items()
                if uid in old and old[uid].flags != entry.flags
            )
        )
        self._entries = entries
        self._by_key = {e.key: uid for uid, e in entries.items()}
        self._sorted = sorted(entries)
        return FolderChange(new=new, flags=flags, gone=gone)

    def _ensure_scanned(self) -> None:
        if not self._scanned:
            self.refresh()

    def uids(self) -> list[int]:
        """
        The UIDs of the folder's messages, in ascending order.
        """
        with self._mutex:
            self._ensure_scanned()
            return list(self._sorted)

    def entry(self, uid: int) -> StoredMessage:
        """
        What the folder knows of message C{uid}.

        @raise MessageGone: no such message.
        """
        with self._mutex:
            self._ensure_scanned()
            try:
                return self._entries[uid]
            except KeyError:
                raise MessageGone(f"message UID {uid} is gone") from None

    def _file_path(self, entry: StoredMessage) -> str:
        # Plain strings: pathlib costs more than the read on the FETCH path.
        return f"{self._directory}/{entry.subdir}/{entry.name}"

    # --- messages ------------------------------------------------------------

    def read(self, uid: int) -> bytes:
        """
        The bytes of message C{uid}, as stored.

        @raise MessageGone: it was expunged or removed.
        """
        for attempt in range(3):
            entry = self.entry(uid)
            try:
                with open(self._file_path(entry), "rb", buffering=0) as f:
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
            entry = self.entry(uid)
            try:
                return os.stat(self._file_path(entry)).st_mtime
            except FileNotFoundError:
                if attempt < 2:
                    self.refresh(force=True)
        raise MessageGone(f"message UID {uid} is gone")

    def size(self, uid: int) -> int | None:
        """
        The message's size with CRLF line ends if its file name records it
        (C{W=}), else L{None}.
        """
        return _size_from_name(self.entry(uid).key, "W=")

    def stamp(self, uid: int) -> tuple[int, int]:
        """
        What identifies the content of message C{uid}'s file: its size and
        modification time (nanoseconds). Flag changes (renames) keep it.

        @raise MessageGone: it was expunged or removed.
        """
        for attempt in range(3):
            entry = self.entry(uid)
            try:
                status = os.stat(self._file_path(entry))
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
        name = _unique_name(len(message), crlf_size(message))
        temporary = self.path / "tmp" / name
        try:
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                view = memoryview(message)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
                os.fsync(fd)
            finally:
                os.close(fd)
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
                self._sync_uidlist(locked=True)
                (uid,) = self._append_uids([name], [envelope])
                os.rename(temporary, target)
            fsync_directory(target.parent)
        except BaseException:
            with _ignoring_missing():
                os.unlink(temporary)
            raise
        with self._mutex:
            if self._scanned:
                self._entries[uid] = StoredMessage(
                    uid,
                    name,
                    target.parent.name,
                    info,
                    target.name,
                    self._keywords.names_in(info),
                )
                self._by_key[name] = uid
                self._sorted.append(uid)
                if len(self._sorted) > 1 and self._sorted[-2] > uid:
                    self._sorted.sort()
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
                    entry = self._entries.get(uid)
                    if entry is None:
                        break
                    info = self._info_with_flags(entry.info, wanted)
                    if info == entry.info and entry.subdir == "cur":
                        result[uid] = entry.flags
                        break
                    new_name = f"{entry.key}:2,{info}"
                    try:
                        os.rename(
                            self._file_path(entry), f"{self._directory}/cur/{new_name}"
                        )
                    except FileNotFoundError:
                        if attempt < 2:
                            self.refresh(force=True)
                        continue
                    before = entry.flags
                    entry.subdir, entry.info, entry.name = "cur", info, new_name
                    entry.keywords = self._keywords.names_in(info)
                    result[uid] = entry.flags
                    if entry.flags != before:
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
            moves = {
                uid: self._entries[uid].flags
                for uid in uids
                if uid in self._entries and self._entries[uid].subdir == "new"
            }
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
                entry = self._entries.get(uid)
                if entry is None:
                    continue
                try:
                    os.unlink(self._file_path(entry))
                except FileNotFoundError:
                    self.refresh(force=True)
                    entry = self._entries.get(uid)
                    if entry is None:
                        continue
                    with _ignoring_missing():
                        os.unlink(self._file_path(entry))
                del self._entries[uid]
                self._by_key.pop(entry.key, None)
                removed.append(uid)
                self._uids.envelopes.pop(uid, None)
            if removed:
                gone = set(removed)
                self._sorted = [uid for uid in self._sorted if uid not in gone]
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
            if uid not in self._entries:
                return None
            text = self._uids.envelopes.get(uid)
            if text is None:
                self._sync_uidlist()
                text = self._uids.envelopes.get(uid)
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
            uids = list(self._sorted)
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

    # --- delivery in steps (one message for several mailboxes) -------------------

    def _stage(self, parts: Iterable[bytes]) -> tuple[str, Path]:
        """
        Write the concatenation of C{parts} into C{tmp/}, synced; return its
        file name and path. Nothing is visible yet.
        """
        chunks = [part for part in parts if part]
        size = sum(len(part) for part in chunks)
        virtual = sum(crlf_size(part) for part in chunks)
        name = _unique_name(size, virtual)
        temporary = self.path / "tmp" / name
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            for part in chunks:
                view = memoryview(part)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with _ignoring_missing():
                os.unlink(temporary)
            raise
        os.close(fd)
        return name, temporary

    def _commit(
        self,
        staged: list[tuple[str, Path]],
        envelopes: list[Envelope | None],
        *,
        sync: bool = True,
    ) -> list[int]:
        """
        Give staged messages their UIDs (one append for all of them,
        envelopes included, synced unless C{sync} is false: then the caller
        syncs the UID list) and rename them into C{new/}. The caller syncs
        C{new/}, then L{_publish}es them (or L{_retract}s them).
        """
        if self.retention:
            self.prune(room=len(staged))
        with self._locked():
            self._sync_uidlist(locked=True)
            uids = self._append_uids([name for name, _ in staged], envelopes, sync=sync)
            for name, temporary in staged:
                os.rename(temporary, f"{self._directory}/new/{name}")
        return uids

    def _publish(self, delivered: list[tuple[int, str]]) -> None:
        """
        Tell the cache and the listeners of committed messages (UID, name).
        """
        with self._mutex:
            if self._scanned:
                for uid, name in delivered:
                    if uid in self._entries:
                        continue  # a refresh found it first
                    self._entries[uid] = StoredMessage(uid, name, "new", "", name)
                    self._by_key[name] = uid
                    self._sorted.append(uid)
                self._sorted.sort()
        self._notify(FolderChange(new=tuple(uid for uid, _ in delivered)))

    def _retract(self, name: str) -> None:
        """
        Remove a committed but unpublished message (its delivery failed
        elsewhere); its UID is never reused.
        """
        with _ignoring_missing():
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
            return len(self._keywords.by_index) < _MAX_KEYWORDS

    def modseq(self, uid: int) -> int:
        """
        The MODSEQ of message C{uid} (RFC 7162): derived from its UID until
        its flags first change, then the value recorded for that change.
        Changes recorded by other processes are read when the folder is
        refreshed (as their renames are).
        """
        with self._mutex:
            return self._modseqs.modseq(uid)

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

    def _define_keywords(self, flags: Iterable[str]) -> None:
        """
        Give every keyword among C{flags} a letter, writing
        C{dovecot-keywords} under the folder's lock if one is new.

        @raise KeywordLimit: no letter is left for a new keyword.
        @raise InvalidName: a keyword that cannot be stored (space, control
            character, parenthesis...).
        """
        wanted = [f for f in flags if f and not f.startswith("\\")]
        if not wanted:
            return
        self._keywords.load()
        missing = [f for f in wanted if self._keywords.letter_of(f) is None]
        if not missing:
            return
        for name in missing:
            if any(c in name for c in ' ()"{%*]\\') or not name.isprintable():
                raise InvalidName(f"not a usable keyword: {name!r}")
        with self._locked():
            self._keywords.define(missing)

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
            self._sync_uidlist(locked=True)
            self._modseqs.record(uids, self._uids.uidnext, sync=sync)


class KeywordLimit(MailStoreError):
    """
    A folder already has 26 keywords, as many as Maildir has letters for.
    """


_MAX_KEYWORDS = 26


class _KeywordTable:
    """
    A folder's C{dovecot-keywords} file, as Dovecot keeps it: one line
    C{<index> <keyword>} per keyword; keyword C{i} is the info letter
    C{chr(ord("a") + i)} in message file names.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.by_index: dict[int, str] = {}
        self._by_name: dict[str, int] = {}
        self._stamp: tuple[int, int, int] | None = None

    def load(self) -> None:
        """Read the file again if it changed."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self.by_index, self._by_name, self._stamp = {}, {}, None
            return
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp == self._stamp:
            return
        by_index: dict[int, str] = {}
        try:
            text = self.path.read_bytes().decode("utf-8", "replace")
        except FileNotFoundError:
            text = ""
        for line in text.splitlines():
            index, _, name = line.partition(" ")
            if index.isdigit() and int(index) < _MAX_KEYWORDS and name:
                by_index[int(index)] = name
        self.by_index = by_index
        self._by_name = {name.lower(): i for i, name in by_index.items()}
        self._stamp = stamp

    def names(self) -> list[str]:
        return [self.by_index[i] for i in sorted(self.by_index)]

    def names_in(self, info: str) -> tuple[str, ...]:
        """The keywords that the lowercase letters of C{info} stand for."""
        indexes = sorted({ord(c) - 97 for c in info if "a" <= c <= "z"})
        if not indexes:
            return ()
        if any(i not in self.by_index for i in indexes):
            self.load()
        return tuple(self.by_index[i] for i in indexes if i in self.by_index)

    def letter_of(self, name: str) -> str | None:
        index = self._by_name.get(name.lower())
        return None if index is None else chr(97 + index)

    def define(self, names: list[str]) -> None:
        """
        Add C{names} (under the folder's lock) and write the file.

        @raise KeywordLimit: there is no room for them.
        """
        self.load()
        added = False
        for name in names:
            if name.lower() in self._by_name:
                continue
            free = [i for i in range(_MAX_KEYWORDS) if i not in self.by_index]
            if not free:
                raise KeywordLimit(
                    f"no room for keyword {name!r}: a folder holds {_MAX_KEYWORDS}"
                )
            self.by_index[free[0]] = name
            self._by_name[name.lower()] = free[0]
            added = True
        if added:
            text = "".join(f"{i} {n}\n" for i, n in sorted(self.by_index.items()))
            replace_file(self.path, text.encode("utf-8"))
            self._stamp = None
            self.load()


_MODSEQ_MAGIC = "netlab-modseq 1"


class _ModseqLog:
    """
    A folder's MODSEQs (RFC 7162), kept so that a delivery costs nothing.

    A message that never changed has a MODSEQ derived from its UID: each
    change recorded in the log file (C{<uidnext> <modseq> <uid>}, appended
    under the folder's lock) also marks where UIDs stood, and messages
    delivered after it count on from its MODSEQ. A changed message's MODSEQ
    is the last one recorded for it. So MODSEQs only grow, deliveries
    included, and only flag changes and expunges write.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._inode = -1
        self._loaded = False
        self._starts: list[int] = []
        self._values: list[int] = []
        self._by_uid: dict[int, int] = {}

    def load(self) -> None:
        """Read what was appended since the last look."""
        try:
            f = open(self.path, "rb")  # noqa: SIM115  closed below
        except FileNotFoundError:
            self._loaded = True
            return
        with f:
            st = os.fstat(f.fileno())
            if st.st_ino != self._inode or st.st_size < self._offset:
                self._offset, self._inode = 0, st.st_ino
                self._starts, self._values, self._by_uid = [], [], {}
            if st.st_size > self._offset:
                f.seek(self._offset)
                data = f.read()
            else:
                data = b""
        self._loaded = True
        end = data.rfind(b"\n") + 1
        for line in data[:end].split(b"\n")[:-1]:
            fields = line.split(b" ")
            if len(fields) != 3 or not all(x.isdigit() for x in fields):
                continue
            start, value, uid = (int(x) for x in fields)
            if self._values and value < self._values[-1]:
                continue
            self._starts.append(start)
            self._values.append(value)
            self._by_uid[uid] = value
        self._offset += end

    def _delivered(self, uid: int) -> int:
        i = bisect.bisect_right(self._starts, uid) - 1
        if i < 0:
            return uid + 1
        return self._values[i] + uid - self._starts[i] + 1

    def modseq(self, uid: int) -> int:
        if not self._loaded:
            self.load()
        value = self._by_uid.get(uid)
        return value if value is not None else self._delivered(uid)

    def highest(self, uidnext: int) -> int:
        if not self._loaded:
            self.load()
        if not self._starts:
            return max(uidnext, 1)
        return self._values[-1] + max(0, uidnext - self._starts[-1])

    def record(self, uids: list[int], uidnext: int, *, sync: bool = False) -> int:
        """
        Give C{uids} the next MODSEQ (under the folder's lock), synced to
        disk if C{sync}.
        """
        self.load()
        value = self.highest(uidnext) + 1
        data = "".join(f"{uidnext} {value} {uid}\n" for uid in uids).encode("ascii")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            st = os.fstat(fd)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        if st.st_ino == self._inode and st.st_size == self._offset:
            # Nobody else writes under the lock: what we wrote is all that is new.
            self._offset += len(data)
            for uid in uids:
                self._starts.append(uidnext)
                self._values.append(value)
                self._by_uid[uid] = value
        else:
            self.load()
        return value


def _next_uidvalidity(user_directory: Path | None) -> int:
    """
    A new UIDVALIDITY: the time in seconds, but always above the last one
    given to a mailbox of the same user (so that a mailbox deleted and
    created again within a second still gets a new one).
    """
    now = int(time.time())
    if user_directory is None:
        return now
    path = user_directory / UIDVALIDITY_NAME
    fd = os.open(user_directory / UIDVALIDITY_LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            last = int(path.read_text().strip() or 0)
        except (FileNotFoundError, ValueError):
            last = 0
        value = max(now, last + 1)
        replace_file(path, b"%d\n" % value)
        return value
    finally:
        os.close(fd)


class MailStore:
    """
    Every user's Maildir under one root directory.

    Folder objects are cached, so every session of this process shares one
    view of each mailbox and hears of every change made through the store.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._folders: dict[Path, Folder] = {}
        self._mutex = threading.Lock()
        self._store_listeners: list[StoreListener] = []
        self._retention = Retention()

    # --- users ---------------------------------------------------------------

    def user_path(self, address: str) -> Path:
        """
        The directory of C{address}'s Maildir (INBOX).
        """
        return self.root / validate_address(address)

    def ensure_user(self, address: str) -> None:
        """
        Create the user's Maildir (INBOX) if missing. Idempotent.
        """
        path = self.user_path(address)
        if (path / "cur").is_dir():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        _create_maildir(path, folder=False)

    def has_user(self, address: str) -> bool:
        """
        Whether the user's Maildir exists.
        """
        return (self.user_path(address) / "cur").is_dir()

    # --- mailboxes -----------------------------------------------------------

    def folder(self, address: str, mailbox: str = INBOX) -> Folder:
        """
        The folder of C{address}'s C{mailbox}.

        @raise NoSuchMailbox: it does not exist.
        @raise InvalidName: the address or mailbox name is refused.
        """
        name = validate_mailbox_name(mailbox)
        user = self.user_path(address)
        path = user if name == INBOX else user / encode_folder_name(name)
        if not (path / "cur").is_dir():
            raise NoSuchMailbox(f"no mailbox {name}")
        with self._mutex:
            folder = self._folders.get(path)
            if folder is None:
                folder = self._folders[path] = Folder(path, name)
                folder.add_listener(self._forwarder(validate_address(address), name))
                folder.retention = self._retention
            return folder

    def _forget(self, path: Path) -> None:
        with self._mutex:
            for cached in list(self._folders):
                if cached == path:
                    del self._folders[cached]

    def mailboxes(self, address: str) -> list[str]:
        """
        The names of C{address}'s mailboxes, INBOX first, then sorted.
        """
        user = self.user_path(address)
        names = []
        try:
            entries = list(os.scandir(user))
        except FileNotFoundError:
            return []
        for entry in entries:
            name = decode_folder_name(entry.name)
            if (
                name is not None
                and name != INBOX
                and os.path.isdir(os.path.join(entry.path, "cur"))
            ):
                names.append(name)
        return [INBOX, *sorted(names)]

    def create_mailbox(self, address: str, mailbox: str) -> None:
        """
        Create C{mailbox}, and its missing superiors.

        @raise MailboxExists: it already exists.
        """
        name = validate_mailbox_name(mailbox)
        if name == INBOX:
            raise MailboxExists("INBOX always exists")
        self.ensure_user(address)
        user = self.user_path(address)
        levels = name.split(HIERARCHY_DELIMITER)
        for depth in range(1, len(levels)):
            parent = HIERARCHY_DELIMITER.join(levels[:depth])
            if parent.upper() == INBOX:
                continue
            path = user / encode_folder_name(parent)
            if not (path / "cur").is_dir():
                _create_maildir(path, folder=True, exist_ok=True)
        path = user / encode_folder_name(name)
        if (path / "cur").is_dir():
            raise MailboxExists(f"mailbox {name} already exists")
        _create_maildir(path, folder=True)

    def delete_mailbox(self, address: str, mailbox: str) -> None:
        """
        Delete C{mailbox} and its messages.

        @raise MailboxHasChildren: it has inferior mailboxes.
        """
        name = validate_mailbox_name(mailbox)
        if name == INBOX:
            raise MailStoreError("INBOX cannot be deleted")
        folder = self.folder(address, name)
        prefix = name + HIERARCHY_DELIMITER
        if any(other.startswith(prefix) for other in self.mailboxes(address)):
            raise MailboxHasChildren(f"mailbox {name} has children, delete them first")
        folder.refresh()
        gone = tuple(folder.uids())
        doomed = folder.path.with_name(f"netlab-deleted-{secrets.token_hex(8)}")
        os.rename(folder.path, doomed)
        fsync_directory(folder.path.parent)
        self._forget(folder.path)
        folder._notify(FolderChange(gone=gone))
        shutil.rmtree(doomed, ignore_errors=True)

    def rename_mailbox(self, address: str, old: str, new: str) -> None:
        """
        Rename C{old} (and its inferiors) to C{new}; UIDs and UIDVALIDITY
        stay. INBOX cannot be renamed here.

        @raise MailboxExists: C{new} (or an inferior's new name) exists.
        """
        old_name = validate_mailbox_name(old)
        new_name = validate_mailbox_name(new)
        if INBOX in (old_name, new_name):
            raise MailStoreError("INBOX cannot be renamed")
        self.folder(address, old_name)
        user = self.user_path(address)
        names = self.mailboxes(address)
        prefix = old_name + HIERARCHY_DELIMITER
        moves = [
            (name, new_name + name[len(old_name) :])
            for name in names
            if name == old_name or name.startswith(prefix)
        ]
        for _, target in moves:
            validate_mailbox_name(target)
            if target in names or target == INBOX:
                raise MailboxExists(f"mailbox {target} already exists")
        new_levels = new_name.split(HIERARCHY_DELIMITER)
        for depth in range(1, len(new_levels)):
            parent = HIERARCHY_DELIMITER.join(new_levels[:depth])
            if parent == old_name or parent.startswith(prefix):
                raise MailStoreError("a mailbox cannot be moved inside itself")
        for source, target in moves:
            source_path = user / encode_folder_name(source)
            os.rename(source_path, user / encode_folder_name(target))
            self._forget(source_path)
        fsync_directory(user)
        for depth in range(1, len(new_levels)):
            parent = HIERARCHY_DELIMITER.join(new_levels[:depth])
            path = user / encode_folder_name(parent)
            if parent.upper() != INBOX and not (path / "cur").is_dir():
                _create_maildir(path, folder=True, exist_ok=True)

    # --- subscriptions -------------------------------------------------------

    def subscriptions(self, address: str) -> list[str]:
        """
        The mailbox names C{address} subscribed to.
        """
        path = self.user_path(address) / SUBSCRIPTIONS_NAME
        try:
            lines = path.read_bytes().split(b"\n")
        except FileNotFoundError:
            return []
        names = []
        for line in lines:
            if line:
                try:
                    names.append(line.decode("imap4-utf-7"))
                except (UnicodeError, ValueError):
                    continue
        return names

    def set_subscribed(self, address: str, mailbox: str, subscribed: bool) -> None:
        """
        Subscribe C{address} to C{mailbox}, or unsubscribe.
        """
        import twisted.mail.imap4  # noqa: F401  registers the imap4-utf-7 codec

        name = validate_mailbox_name(mailbox)
        self.ensure_user(address)
        names = [n for n in self.subscriptions(address) if n != name]
        if subscribed:
            names.append(name)
        data = b"".join(n.encode("imap4-utf-7") + b"\n" for n in names)
        replace_file(self.user_path(address) / SUBSCRIPTIONS_NAME, data)

    # --- the contract with the SMTP side ---------------------------------------

    def deliver(self, address: str, message: bytes, mailbox: str = INBOX) -> int:
        """
        Store one message atomically and durably (write in tmp/, fsync,
        rename into new/, fsync the directory), assign and persist its UID
        (durably, before returning), tell open IMAP sessions of that mailbox
        (EXISTS / IDLE push), and return the UID. Blocking; raises OSError
        on a disk failure (then nothing is visible). Safe against concurrent
        deliveries from several processes.

        The user's INBOX is created if missing; another mailbox must exist
        (L{NoSuchMailbox} otherwise).
        """
        if validate_mailbox_name(mailbox) == INBOX:
            self.ensure_user(address)
        return self.folder(address, mailbox).deliver(message)

    def messages(self, address: str, mailbox: str = INBOX) -> list[bytes]:
        """
        The bytes of every message in the mailbox, in UID order (none for a
        user who never got any mail).
        """
        if validate_mailbox_name(mailbox) == INBOX and not self.has_user(address):
            return []
        folder = self.folder(address, mailbox)
        folder.refresh()
        result = []
        for uid in folder.uids():
            try:
                result.append(folder.read(uid))
            except MessageGone:
                continue
        return result

    # --- store-wide views (the HTTP API) ----------------------------------------

    def addresses(self) -> list[str]:
        """
        The addresses of every user with a Maildir, sorted.
        """
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        return sorted(
            entry.name
            for entry in entries
            if "@" in entry.name
            and not entry.name.startswith(".")
            and os.path.isdir(os.path.join(entry.path, "cur"))
        )

    def add_listener(self, listener: StoreListener) -> None:
        """
        Call C{listener(address, mailbox, change)} after every change to any
        folder of this store (in the thread that made it; for changes found
        on disk, in the thread that refreshed the folder).
        """
        with self._mutex:
            self._store_listeners.append(listener)

    def remove_listener(self, listener: StoreListener) -> None:
        with self._mutex, suppress(ValueError):
            self._store_listeners.remove(listener)

    def _forget_user(self, path: Path) -> None:
        """
        Drop the cached folders of the user whose Maildir is C{path} (it was
        removed): the next L{folder} call reads the disk again.
        """
        with self._mutex:
            for cached in list(self._folders):
                if cached == path or cached.parent == path:
                    del self._folders[cached]

    def _forwarder(self, address: str, mailbox: str) -> FolderListener:
        def forward(change: FolderChange) -> None:
            with self._mutex:
                listeners = list(self._store_listeners)
            for listener in listeners:
                listener(address, mailbox, change)

        return forward

    # --- capture: several recipients, envelopes, retention ----------------------

    def deliver_many(
        self,
        message: bytes,
        addresses: Iterable[str],
        *,
        envelope: Envelope | None = None,
        prefixes: Mapping[str, bytes] | None = None,
    ) -> dict[str, int]:
        """
        Store C{message} once in the INBOX of each of C{addresses} (an address
        named twice, in any case, gets one copy), with C{envelope}, and
        return each mailbox's UID by canonical address. Each copy starts with
        C{prefixes[address]} if given (its C{Received:} header).

        All or nothing: every copy is written and synced, then given its UID
        and made visible, then the directories are synced, and only then are
        sessions told. If anything fails, the copies made visible are taken
        back and the error is raised, so that a retried delivery is not
        stored twice. Blocking.
        """
        [result] = self.deliver_batch(
            [Delivery(message, addresses, envelope, prefixes)]
        )
        if isinstance(result, BaseException):
            raise result
        return result

    def deliver_batch(
        self, deliveries: Iterable[Delivery]
    ) -> list[dict[str, int] | BaseException]:
        """
        Store several deliveries (each as L{deliver_many} would) together:
        their files are written and synced concurrently, each mailbox's UID
        list gets one synced append for all of them and each directory one
        sync, so that N messages cost about N + 2 syncs instead of 3N (group
        commit). Each delivery is all or nothing on its own: the result, in
        order, is its UIDs by address, or the error that made it fail (then
        none of its copies is visible). Blocking.
        """
        items = list(deliveries)
        results: list[dict[str, int] | BaseException] = [{} for _ in items]
        failed: dict[int, BaseException] = {}
        plans: list[tuple[int, str, Folder, bytes]] = []
        for i, item in enumerate(items):
            try:
                wanted = {
                    validate_address(k): v for k, v in (item.prefixes or {}).items()
                }
                seen: set[str] = set()
                for address in item.addresses:
                    canonical = validate_address(address)
                    if canonical in seen:
                        continue
                    seen.add(canonical)
                    self.ensure_user(canonical)
                    folder = self.folder(canonical)
                    plans.append((i, canonical, folder, wanted.get(canonical, b"")))
            except Exception as e:
                failed[i] = e
        plans = [plan for plan in plans if plan[0] not in failed]
        # Write and sync every copy, concurrently: the file system commits
        # the syncs of several files together.
        staged: dict[int, tuple[str, Path]] = {}

        def stage(index: int) -> None:
            i, _, folder, prefix = plans[index]
            try:
                staged[index] = folder._stage([prefix, items[i].message])
            except Exception as e:
                failed.setdefault(i, e)

        _concurrently(stage, range(len(plans)))
        # One append to each folder's UID list for all its copies.
        by_folder: dict[Path, list[int]] = {}
        for index, (i, _, folder, _) in enumerate(plans):
            if i not in failed:
                by_folder.setdefault(folder.path, []).append(index)
        committed: dict[int, tuple[int, str]] = {}
        done: list[tuple[Folder, list[int]]] = []
        for indexes in by_folder.values():
            folder = plans[indexes[0]][2]
            indexes = [index for index in indexes if plans[index][0] not in failed]
            if not indexes:
                continue
            try:
                uids = folder._commit(
                    [staged[index] for index in indexes],
                    [items[plans[index][0]].envelope for index in indexes],
                    sync=False,
                )
            except Exception as e:
                _abandon(folder, [staged[index] for index in indexes])
                for index in indexes:
                    failed.setdefault(plans[index][0], e)
                continue
            for index, uid in zip(indexes, uids, strict=True):
                committed[index] = (uid, staged[index][0])
            done.append((folder, indexes))
        # The UID lists and the directories, synced together: a message is
        # durable (file, UID, name in new/) once both are.
        problems = _sync_all(
            [f._uidlist_path for f, _ in done] + [f.path / "new" for f, _ in done]
        )
        for folder, indexes in done:
            problem = problems.get(folder._uidlist_path) or problems.get(
                folder.path / "new"
            )
            if problem is None:
                continue
            _abandon(folder, [staged[index] for index in indexes])
            for index in indexes:
                failed.setdefault(plans[index][0], problem)
                committed.pop(index, None)
        # Take back the copies of deliveries that failed elsewhere; tell
        # sessions of the rest.
        retracted: set[Path] = set()
        publish: dict[Path, tuple[Folder, list[tuple[int, str]]]] = {}
        for index, (i, address, folder, _) in enumerate(plans):
            if i in failed:
                if index in committed:
                    folder._retract(committed[index][1])
                    retracted.add(folder.path)
                elif index in staged:
                    with _ignoring_missing():
                        os.unlink(staged[index][1])
                continue
            uid, name = committed[index]
            result = results[i]
            assert isinstance(result, dict)
            result[address] = uid
            publish.setdefault(folder.path, (folder, []))[1].append((uid, name))
        for path in retracted:
            with suppress(OSError):
                fsync_directory(path / "new")
        for folder, delivered in publish.values():
            folder._publish(delivered)
        for i, error in failed.items():
            results[i] = error
        return results

    def envelope(self, address: str, uid: int, mailbox: str = INBOX) -> Envelope | None:
        """
        The SMTP envelope of message C{uid} of C{address}'s C{mailbox}, or
        L{None}.
        """
        try:
            return self.folder(address, mailbox).envelope(uid)
        except NoSuchMailbox:
            return None

    @property
    def retention(self) -> Retention:
        """
        What every mailbox keeps (see L{Folder.prune}); no limit by default.
        """
        return self._retention

    @retention.setter
    def retention(self, retention: Retention) -> None:
        with self._mutex:
            self._retention = retention
            for folder in self._folders.values():
                folder.retention = retention

    def prune(self, now: float | None = None) -> dict[tuple[str, str], list[int]]:
        """
        Apply the retention limits to every mailbox of every user now (for
        the age limit's timer); return the UIDs removed by (address, mailbox).
        """
        removed: dict[tuple[str, str], list[int]] = {}
        if not self._retention:
            return removed
        try:
            users = sorted(entry.name for entry in os.scandir(self.root))
        except FileNotFoundError:
            return removed
        for address in users:
            if address.startswith(".") or not self.has_user(address):
                continue
            for mailbox in self.mailboxes(address):
                try:
                    folder = self.folder(address, mailbox)
                    gone = folder.prune(now=now)
                except MailStoreError:
                    continue
                if gone:
                    removed[(address, mailbox)] = gone
        return removed


def _abandon(folder: Folder, staged: list[tuple[str, Path]]) -> None:
    """
    Remove staged or committed (unpublished) copies of a failed delivery.
    """
    for name, temporary in staged:
        with _ignoring_missing():
            os.unlink(temporary)
        folder._retract(name)


_io_pool: ThreadPoolExecutor | None = None
_io_pool_lock = threading.Lock()


def _concurrently(work: Callable[[_T], None], items: Iterable[_T]) -> None:
    """
    Call C{work} on every item of C{items}, at once in the threads of one
    pool shared by every store (started on first use, so that no thread is
    started per batch), and return when all are done. C{work} reports its
    own errors.
    """
    global _io_pool
    todo = list(items)
    if len(todo) <= 1:
        for item in todo:
            work(item)
        return
    with _io_pool_lock:
        if _io_pool is None:
            _io_pool = ThreadPoolExecutor(
                _STAGING_THREADS, thread_name_prefix="netlab-maildir-io"
            )
        pool = _io_pool
    for _ in pool.map(work, todo):
        pass


def _sync_all(paths: list[Path]) -> dict[Path, BaseException]:
    """
    fsync every file or directory of C{paths} at once (in threads, so that
    the file system commits them together); return the errors by path.
    """
    problems: dict[Path, BaseException] = {}

    def sync(path: Path) -> None:
        try:
            fd = os.open(path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as e:
            problems[path] = e

    _concurrently(sync, paths)
    return problems


def _create_maildir(path: Path, *, folder: bool, exist_ok: bool = False) -> None:
    """
    Create a Maildir (with C{mailbox.Maildir}) and its UID list in a
    temporary directory beside C{path}, then rename it into place, so that
    no half-made mailbox is ever visible.
    """
    if exist_ok and (path / "cur").is_dir():
        return
    staging = path.with_name(f"netlab-new-{secrets.token_hex(8)}")
    user_directory = path.parent if folder else None
    try:
        stdlib_mailbox.Maildir(staging, create=True)
        if folder:
            (staging / "maildirfolder").touch()
        uidvalidity = _next_uidvalidity(user_directory)
        replace_file(
            staging / UIDLIST_NAME, f"{_UIDLIST_MAGIC} {uidvalidity} 1\n".encode()
        )
        try:
            os.rename(staging, path)
        except OSError as e:
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                if exist_ok or (not folder and (path / "cur").is_dir()):
                    return
                raise MailboxExists(f"{path.name} already exists") from None
            raise
        fsync_directory(path.parent)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


__all__ = [
    "FLAG_LETTERS",
    "HIERARCHY_DELIMITER",
    "INBOX",
    "SYSTEM_FLAGS",
    "Delivery",
    "Envelope",
    "Folder",
    "FolderChange",
    "InvalidName",
    "KeywordLimit",
    "MailStore",
    "MailStoreError",
    "MailboxExists",
    "MailboxHasChildren",
    "MessageGone",
    "NoSuchMailbox",
    "Retention",
    "StoreListener",
    "StoredMessage",
    "validate_address",
    "validate_mailbox_name",
]
