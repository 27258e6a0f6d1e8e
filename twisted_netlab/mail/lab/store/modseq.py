"""
A folder's MODSEQs (RFC 7162, CONDSTORE): its C{netlab-modseq} log, which
records flag changes and expunges only, so that a delivery writes nothing
here.
"""

from __future__ import annotations

import bisect
import os
from array import array
from pathlib import Path

_MODSEQ_MAGIC = "netlab-modseq 1"
# MODSEQs of changed messages kept in a dict before they are merged into the
# sorted arrays.
_MERGE_AFTER = 4096


class ModseqLog:
    """
    A folder's MODSEQs (RFC 7162), kept so that a delivery costs nothing.

    A message that never changed has a MODSEQ derived from its UID: each
    change recorded in the log file (C{<uidnext> <modseq> <uid>}, appended
    under the folder's lock) also marks where UIDs stood, and messages
    delivered after it count on from its MODSEQ. A changed message's MODSEQ
    is the last one recorded for it. So MODSEQs only grow, deliveries
    included, and only flag changes and expunges write.

    In memory, a changed message costs 12 bytes (two sorted arrays, with
    the latest changes in a small dict until they are merged), and a change
    of many messages at once one entry.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._inode = -1
        self._loaded = False
        self._clear()

    def _clear(self) -> None:
        # Where UIDs stood at each change and its MODSEQ (both ascending).
        self._starts = array("Q")
        self._values = array("Q")
        # The MODSEQ of each changed message: merged (sorted arrays), and
        # the latest ones.
        self._changed_uids = array("Q")
        self._changed_values = array("Q")
        self._latest: dict[int, int] = {}

    def _note(self, start: int, value: int, uid: int) -> None:
        if self._starts and self._starts[-1] == start:
            # Only the last change with this start counts for deliveries.
            self._values[-1] = value
        else:
            self._starts.append(start)
            self._values.append(value)
        self._latest[uid] = value
        if len(self._latest) > _MERGE_AFTER:
            self._merge()

    def _merge(self) -> None:
        merged = dict(zip(self._changed_uids, self._changed_values, strict=True))
        merged.update(self._latest)
        uids = sorted(merged)
        self._changed_uids = array("Q", uids)
        self._changed_values = array("Q", [merged[uid] for uid in uids])
        self._latest = {}

    def _changed(self, uid: int) -> int | None:
        value = self._latest.get(uid)
        if value is not None:
            return value
        uids = self._changed_uids
        i = bisect.bisect_left(uids, uid)
        if i < len(uids) and uids[i] == uid:
            return int(self._changed_values[i])
        return None

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
                self._clear()
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
            self._note(start, value, uid)
        self._offset += end

    def _delivered(self, uid: int) -> int:
        i = bisect.bisect_right(self._starts, uid) - 1
        if i < 0:
            return uid + 1
        return int(self._values[i] + uid - self._starts[i] + 1)

    def modseq(self, uid: int) -> int:
        if not self._loaded:
            self.load()
        value = self._changed(uid)
        return value if value is not None else self._delivered(uid)

    def highest(self, uidnext: int) -> int:
        if not self._loaded:
            self.load()
        if not self._starts:
            return max(uidnext, 1)
        return int(self._values[-1] + max(0, uidnext - self._starts[-1]))

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
                self._note(uidnext, value, uid)
        else:
            self.load()
        return value
