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

import bisect
import fcntl
import os
import time
from array import array
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
# Lines appended by other processes kept for the folder's next look at most;
# beyond that it reads the whole file.
_FRESH_LIMIT = 10_000


def _header(uidvalidity: int, uidnext: int) -> str:
    return f"{_UIDLIST_MAGIC} {uidvalidity} {uidnext}\n"


class UIDList:
    """
    A folder's UID list file, and what has been read of it.

    L{Folder<twisted_netlab.mail.lab.store.folder.Folder>} holds the
    folder's lock (its mutex and C{fcntl.flock}) around every call made with
    C{locked} and around L{append}, L{compact} and L{create}.

    Nothing is kept per line but where each envelope is (12 bytes): the
    folder keeps the UIDs of the messages it has, L{take_fresh} hands it
    the lines other processes appended, and L{key_map} reads the whole file
    for the rest (at the first scan, or for a file whose key is unknown).

    @ivar generation: grows each time the file is read from its start again
        (it was replaced or truncated).
    """

    def __init__(self, path: Path, user_directory: Path) -> None:
        self.path = path
        self._user_directory = user_directory
        self.generation = 0
        self._forget()

    def _forget(self, inode: int = -1) -> None:
        """
        Forget what was read: the next L{read} starts at the beginning.
        """
        self.uidvalidity = 0
        self.header_uidnext = 1
        self.max_uid = 0
        self.offset = 0
        self.inode = inode
        self.lines = 0
        #: Lines naming a UID and a key read so far (live or not).
        self.key_lines = 0
        # The UIDs that have an envelope (ascending) and where its line starts.
        self._envelope_uids = array("I")
        self._envelope_offsets = array("Q")
        # (UID, key) of the lines other processes appended since the last
        # take_fresh; None: not known (see take_fresh).
        self._fresh: list[tuple[int, str]] | None = None
        self.generation += 1

    @property
    def uidnext(self) -> int:
        return max(self.header_uidnext, self.max_uid + 1)

    def read(self, *, locked: bool = False, own: bool = False) -> None:
        """
        Read what was appended to the UID list since the last read (all of
        it, if the file was replaced by a compaction). With C{own}, the new
        lines are this process's own (just appended under the lock) and
        are not handed out by L{take_fresh}.

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
        self._parse(data[:end], None if own else self._fresh)
        if self._fresh is not None and len(self._fresh) > _FRESH_LIMIT:
            # The folder reads the whole file instead.
            self._fresh = None
        self.offset += end
        if locked and end < len(data):
            os.truncate(self.path, self.offset)
        if locked and self.uidvalidity == 0:
            # Header missing or unreadable: start a new list (new UIDVALIDITY).
            self.create()

    def _parse(self, data: bytes, fresh: list[tuple[int, str]] | None) -> None:
        """
        Take in whole lines read at C{self.offset}: the header, the largest
        UID, where envelopes are; the (UID, key) pairs go to C{fresh}.
        """
        position = self.offset
        lines = data.split(b"\n")[:-1]
        if lines and self.lines == 0 and position == 0:
            header = lines.pop(0)
            position += len(header) + 1
            self.lines = 1
            fields = header.split(b" ")
            if header.startswith(_UIDLIST_MAGIC.encode() + b" ") and len(fields) == 4:
                try:
                    self.uidvalidity = int(fields[2])
                    self.header_uidnext = int(fields[3])
                except ValueError:
                    pass
        self.lines += len(lines)
        max_uid = self.max_uid
        key_lines = 0
        for line in lines:
            if line.startswith(b"E "):
                # "E UID JSON": the envelope of the message on the line
                # before. Readers that predate envelopes skip it (no
                # numeric UID).
                with suppress(ValueError):
                    self._note_envelope(int(line[2:].partition(b" ")[0]), position)
            else:
                uid_text, _, key = line.partition(b" ")
                try:
                    uid = int(uid_text)
                except ValueError:
                    uid = 0
                if uid > 0 and key:
                    key_lines += 1
                    if uid > max_uid:
                        max_uid = uid
                    if fresh is not None:
                        fresh.append((uid, key.decode("utf-8", "surrogateescape")))
            position += len(line) + 1
        self.max_uid = max_uid
        self.key_lines += key_lines

    def take_fresh(self) -> list[tuple[int, str]] | None:
        """
        The (UID, key) of the lines read since the last call that this
        process did not append; L{None} if that is not known (nothing was
        taken since the file was read from its start, or too many lines
        came): then L{key_map} has the whole file.
        """
        fresh, self._fresh = self._fresh, []
        return fresh

    def _note_envelope(self, uid: int, position: int) -> None:
        uids = self._envelope_uids
        if not uids or uids[-1] < uid:
            uids.append(uid)
            self._envelope_offsets.append(position)
            return
        i = bisect.bisect_left(uids, uid)
        if i < len(uids) and uids[i] == uid:
            self._envelope_offsets[i] = position
        else:
            uids.insert(i, uid)
            self._envelope_offsets.insert(i, position)

    def envelope_text(self, uid: int) -> str | None:
        """
        The JSON text of the envelope of message C{uid} (its C{E} line), or
        L{None}.
        """
        for _ in range(2):
            i = bisect.bisect_left(self._envelope_uids, uid)
            if i == len(self._envelope_uids) or self._envelope_uids[i] != uid:
                self.read()
                continue
            try:
                with open(self.path, "rb") as f:
                    if os.fstat(f.fileno()).st_ino != self.inode:
                        self.read()
                        continue
                    f.seek(self._envelope_offsets[i])
                    line = f.readline()
            except FileNotFoundError:
                return None
            text = line.rstrip(b"\n").decode("utf-8", "surrogateescape")
            tag = f"{_ENVELOPE_TAG}{uid} "
            if text.startswith(tag):
                return text[len(tag) :]
            self.read()
        return None

    def key_map(self, keys: set[str] | None = None) -> dict[str, int]:
        """
        The UID of every key in the file as it is now (of C{keys} only, if
        given), read from its start; the last line of a key wins.
        """
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        found: dict[str, int] = {}
        lines = data[: data.rfind(b"\n") + 1].split(b"\n")[1:-1]
        for line in lines:
            if line.startswith(b"E "):
                continue
            uid_text, _, raw = line.partition(b" ")
            key = raw.decode("utf-8", "surrogateescape")
            if not key or (keys is not None and key not in keys):
                continue
            try:
                uid = int(uid_text)
            except ValueError:
                continue
            if uid > 0:
                found[key] = uid
        return found

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
        self.read(locked=True, own=True)
        return uids

    def wants_compaction(self, live: int) -> bool:
        """
        Whether the list holds so many lines of vanished messages, beside
        C{live} messages, that it should be compacted.
        """
        dead = self.key_lines - live
        return dead > _COMPACT_AFTER and dead > live

    def compact(self, live: dict[str, int]) -> None:
        """
        Rewrite the UID list with the lines of C{live} messages only (and any
        line appended since they were scanned). Call with the lock held.
        """
        self.read(locked=True)
        data = self.path.read_bytes()
        seen_max = max(live.values(), default=0)
        keys: dict[str, int] = {}
        envelopes: dict[int, str] = {}
        for line in data[: data.rfind(b"\n") + 1].split(b"\n")[1:-1]:
            text = line.decode("utf-8", "surrogateescape")
            if text.startswith(_ENVELOPE_TAG):
                uid_text, _, envelope = text[len(_ENVELOPE_TAG) :].partition(" ")
                with suppress(ValueError):
                    envelopes[int(uid_text)] = envelope
                continue
            pair = _parse_pair(text)
            if pair is not None:
                keys[pair[1]] = pair[0]
        keep = {key: uid for key, uid in keys.items() if key in live or uid > seen_max}
        lines = [_header(self.uidvalidity, self.uidnext)]
        lines.extend(
            f"{uid} {key}\n"
            + (f"{_ENVELOPE_TAG}{uid} {envelopes[uid]}\n" if uid in envelopes else "")
            for key, uid in sorted(keep.items(), key=lambda i: i[1])
        )
        replace_file(self.path, "".join(lines).encode("utf-8", "surrogateescape"))
        self._forget()
        self.read(locked=True, own=True)


def _parse_pair(text: str) -> tuple[int, str] | None:
    """The (UID, key) of a C{UID KEY} line, or L{None}."""
    uid_text, _, key = text.partition(" ")
    try:
        uid = int(uid_text)
    except ValueError:
        return None
    if uid < 1 or not key:
        return None
    return uid, key


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
