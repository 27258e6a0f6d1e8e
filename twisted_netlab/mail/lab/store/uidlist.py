"""
A folder's UID list: the C{netlab-uidlist} file that gives each message
file its IMAP UID, and the UIDVALIDITY of a user's new mailboxes.

The first line is C{netlab-uidlist 1 UIDVALIDITY UIDNEXT}; then one line
C{UID KEY} for each message, in the order UIDs were given (the key is the
unique part of the file name, before the colon), followed by
C{E UID JSON} if the message came with an SMTP envelope. Lines are only
appended, under the folder's lock, whatever process appends them; the file
is rewritten (atomically, keeping UIDNEXT) only to drop the lines of
messages long gone, so UIDs are never reused.
"""

from __future__ import annotations

import fcntl
import os
import time
from contextlib import suppress
from pathlib import Path

from twisted_netlab.durable import replace_file
from twisted_netlab.mail.lab.store.envelope import Envelope
from twisted_netlab.mail.lab.store.names import UIDVALIDITY_LOCK_NAME, UIDVALIDITY_NAME

_UIDLIST_MAGIC = "netlab-uidlist 1"
# Starts a UID list line that holds the SMTP envelope of a message.
_ENVELOPE_TAG = "E "
# Compact a UID list once it holds this many lines of vanished messages (and
# more of them than of live ones).
_COMPACT_AFTER = 1000


def _header(uidvalidity: int, uidnext: int) -> str:
    return f"{_UIDLIST_MAGIC} {uidvalidity} {uidnext}\n"


class UIDList:
    """
    A folder's UID list file, and what has been read of it.

    L{Folder<twisted_netlab.mail.lab.store.folder.Folder>} holds the
    folder's lock (its mutex and C{fcntl.flock}) around every call made with
    C{locked} and around L{append}, L{compact} and L{create}.

    @ivar uid_by_key: the UID of each message key read so far.
    @ivar envelopes: UID -> the JSON text of its SMTP envelope (its C{E} line).
    """

    def __init__(self, path: Path, user_directory: Path) -> None:
        self.path = path
        self._user_directory = user_directory
        self._forget()

    def _forget(self, inode: int = -1) -> None:
        """
        Forget what was read: the next L{read} starts at the beginning.
        """
        self.uidvalidity = 0
        self.header_uidnext = 1
        self.uid_by_key: dict[str, int] = {}
        self.envelopes: dict[int, str] = {}
        self.max_uid = 0
        self.offset = 0
        self.inode = inode
        self.lines = 0

    @property
    def uidnext(self) -> int:
        return max(self.header_uidnext, self.max_uid + 1)

    def read(self, *, locked: bool = False) -> None:
        """
        Read what was appended to the UID list since the last read (all of
        it, if the file was replaced by a compaction).

        Under the lock (C{locked}), a torn last line, left by a writer that
        died, is cut off so that the next append starts a line of its own;
        a missing file is created with a new UIDVALIDITY.
        """
        try:
            f = open(self.path, "rb")  # noqa: SIM115  closed below
        except FileNotFoundError:
            if not locked:
                return
            self.create()
            return
        with f:
            st = os.fstat(f.fileno())
            if st.st_ino != self.inode or st.st_size < self.offset:
                self._forget(inode=st.st_ino)
            if st.st_size == self.offset:
                return
            f.seek(self.offset)
            data = f.read()
        end = data.rfind(b"\n") + 1
        for line in data[:end].split(b"\n")[:-1]:
            self._parse_line(line)
        self.offset += end
        if locked and end < len(data):
            os.truncate(self.path, self.offset)
        if locked and self.uidvalidity == 0:
            # Header missing or unreadable: start a new list (new UIDVALIDITY).
            self.create()

    def _parse_line(self, line: bytes) -> None:
        text = line.decode("utf-8", "surrogateescape")
        if self.lines == 0 and self.offset == 0:
            self.lines = 1
            fields = text.split(" ")
            if text.startswith(_UIDLIST_MAGIC + " ") and len(fields) == 4:
                try:
                    self.uidvalidity = int(fields[2])
                    self.header_uidnext = int(fields[3])
                except ValueError:
                    pass
            return
        self.lines += 1
        if text.startswith(_ENVELOPE_TAG):
            # "E UID JSON": the envelope of the message on the line before.
            # Readers that predate envelopes skip it (no numeric UID).
            uid_text, _, envelope = text[len(_ENVELOPE_TAG) :].partition(" ")
            with suppress(ValueError):
                self.envelopes[int(uid_text)] = envelope
            return
        uid_text, _, key = text.partition(" ")
        try:
            uid = int(uid_text)
        except ValueError:
            return
        if uid < 1 or not key:
            return
        self.uid_by_key[key] = uid
        if uid > self.max_uid:
            self.max_uid = uid

    def create(self) -> None:
        """
        Start the list again with a new UIDVALIDITY (keeping UIDNEXT, if a
        list was read).
        """
        uidvalidity = next_uidvalidity(self._user_directory)
        uidnext = self.uidnext if self.uidvalidity else 1
        replace_file(self.path, _header(uidvalidity, uidnext).encode())
        self._forget()
        self.read()

    def append(
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
        L{read}.
        """
        first = self.uidnext
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
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            os.write(fd, data)
            if sync:
                os.fsync(fd)
        finally:
            os.close(fd)
        self.read(locked=True)
        return uids

    def wants_compaction(self, live: int) -> bool:
        """
        Whether the list holds so many lines of vanished messages, beside
        C{live} messages, that it should be compacted.
        """
        dead = len(self.uid_by_key) - live
        return dead > _COMPACT_AFTER and dead > live

    def compact(self, live: dict[str, int]) -> None:
        """
        Rewrite the UID list with the lines of C{live} messages only (and any
        line appended since they were scanned). Call with the lock held.
        """
        self.read(locked=True)
        seen_max = max(live.values(), default=0)
        keep = {
            key: uid
            for key, uid in self.uid_by_key.items()
            if key in live or uid > seen_max
        }
        lines = [_header(self.uidvalidity, self.uidnext)]
        envelopes = self.envelopes
        lines.extend(
            f"{uid} {key}\n"
            + (f"{_ENVELOPE_TAG}{uid} {envelopes[uid]}\n" if uid in envelopes else "")
            for key, uid in sorted(keep.items(), key=lambda i: i[1])
        )
        replace_file(self.path, "".join(lines).encode("utf-8", "surrogateescape"))
        self._forget()
        self.read(locked=True)


def new_uidlist(path: Path, user_directory: Path | None) -> None:
    """
    Write the UID list of a new mailbox: a new UIDVALIDITY, UIDNEXT 1.
    """
    uidvalidity = next_uidvalidity(user_directory)
    replace_file(path, _header(uidvalidity, 1).encode())


def next_uidvalidity(user_directory: Path | None) -> int:
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
