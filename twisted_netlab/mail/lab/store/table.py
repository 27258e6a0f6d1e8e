"""
The messages of one folder as last seen on disk, kept compact: UIDs, file
names and flag bits in parallel arrays sorted by UID, and the counts that
IMAP's SELECT, EXAMINE and STATUS answer from (messages, unseen, recent,
deleted, size, the first unseen message), kept as messages come, go and
change, as Dovecot's index keeps them.

A message costs its file name (one C{str}), a 4-byte UID, an 8-byte word of
flag bits and a byte for its place (C{new/} or C{cur/}): about 130 bytes,
and no Python object of its own.
"""

from __future__ import annotations

import bisect
from array import array
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from itertools import compress

#: The Maildir info letters a flag word holds, one bit each, in this order:
#: the system flags' capitals (and P, passed) then the 26 keyword letters.
LETTERS = "DFPRST" + "abcdefghijklmnopqrstuvwxyz"
_BIT = {letter: 1 << i for i, letter in enumerate(LETTERS)}
#: The bits of the info letters.
LETTER_MASK = (1 << len(LETTERS)) - 1
#: The first keyword letter's bit; keyword C{i} of C{dovecot-keywords} is
#: bit C{KEYWORD_SHIFT + i}.
KEYWORD_SHIFT = LETTERS.index("a")
SEEN = _BIT["S"]
DELETED = _BIT["T"]
_SYSTEM_FLAGS = (
    (_BIT["D"], "\\Draft"),
    (_BIT["F"], "\\Flagged"),
    (_BIT["R"], "\\Answered"),
    (_BIT["S"], "\\Seen"),
    (_BIT["T"], "\\Deleted"),
)
# bytes.translate table turning the places of messages in new/ (1) into
# those in cur/.
_OTHER_PLACE = bytes([1, 0]) + bytes(254)

# The flag bits of an info string, for the info strings seen so far (there
# are few distinct ones).
_info_bits: dict[str, int] = {}
_INFO_CACHE_LIMIT = 4096


def info_of(name: str) -> str:
    """The Maildir info letters of a file name (after C{:2,}), or C{""}."""
    _, separator, info = name.partition(":2,")
    return info if separator else ""


def word_of(name: str) -> int:
    """
    The flag word of a message file: a bit for each info letter of its name
    (other characters are kept in the name only).
    """
    info = info_of(name)
    bits = _info_bits.get(info)
    if bits is None:
        bits = 0
        for c in info:
            bits |= _BIT.get(c, 0)
        if len(_info_bits) < _INFO_CACHE_LIMIT:
            _info_bits[info] = bits
    return bits


def flags_of_word(word: int, keywords: dict[int, str]) -> tuple[tuple[str, ...], bool]:
    """
    The IMAP flags of a flag word: its system flags, then the keywords
    (C{keywords}: the folder's keyword of each letter index), as
    L{flags_from_info<names.flags_from_info>} and the keyword table give
    them; and whether every keyword letter had a keyword.
    """
    flags = [name for bit, name in _SYSTEM_FLAGS if word & bit]
    complete = True
    letters = word >> KEYWORD_SHIFT
    index = 0
    while letters:
        if letters & 1:
            name = keywords.get(index)
            if name is None:
                complete = False
            else:
                flags.append(name)
        letters >>= 1
        index += 1
    return tuple(flags), complete


def key_of(name: str) -> str:
    """The unique part of a message file name (before the colon)."""
    return name.split(":", 1)[0]


def _virtual_size(name: str) -> int | None:
    """
    L{size_from_name}C{(key_of(name), "W=")}, without splitting the name (it
    is counted for every message of a folder listed anew).
    """
    end = name.find(":")
    if end < 0:
        end = len(name)
    start = name.find(",W=", 0, end)
    if start < 0:
        return None
    start += 3
    stop = name.find(",", start, end)
    try:
        return int(name[start : stop if stop >= 0 else end])
    except ValueError:
        return None


class MessageTable:
    """
    A folder's messages: C{uids} ascending, with C{names} (file names),
    C{words} (flag bits, L{word_of}) and C{places} (1 for a file in
    C{new/}, 0 in C{cur/}) at the same positions, and the counts.

    Not thread-safe: the L{Folder<folder.Folder>} holds its mutex around
    every call.

    @ivar version: grows with every change (a cheap "has anything changed").
    @ivar unseen: messages without C{\\Seen}.
    @ivar deleted: messages with C{\\Deleted}.
    @ivar recent: messages in C{new/}.
    """

    def __init__(self) -> None:
        self.uids = array("I")
        self.names: list[str] = []
        self.words = array("Q")
        self.places = bytearray()
        self.version = 0
        self.unseen = 0
        self.deleted = 0
        self.recent = 0
        # The size with CRLF line ends of messages whose names record it
        # (W=), and the UIDs of those whose names do not.
        self._named_size = 0
        self._unsized: set[int] = set()
        # No message with a UID below this one lacks \Seen.
        self._unseen_low = 0

    def __len__(self) -> int:
        return len(self.uids)

    # --- looking up -------------------------------------------------------------

    def position(self, uid: int) -> int:
        """The position of message C{uid}, or -1."""
        uids = self.uids
        if uids and uids[-1] == uid:
            return len(uids) - 1
        i = bisect.bisect_left(uids, uid)
        if i < len(uids) and uids[i] == uid:
            return i
        return -1

    def positions(self, uids: Iterable[int]) -> Iterator[int]:
        """The position of each of C{uids} (ascending), or -1 for those gone."""
        table = self.uids
        end = len(table)
        i = 0
        for uid in uids:
            if i < end and table[i] != uid:
                i = bisect.bisect_left(table, uid, i)
            if i < end and table[i] == uid:
                yield i
                i += 1
            else:
                yield -1

    def names_by_place(self) -> tuple[set[str], set[str]]:
        """The names of the files in C{new/}, and of those in C{cur/}."""
        places = bytes(self.places)
        return (
            set(compress(self.names, places)),
            set(compress(self.names, places.translate(_OTHER_PLACE))),
        )

    def first_unseen(self) -> int:
        """The position of the first message without C{\\Seen}, or -1."""
        uids, words = self.uids, self.words
        i = bisect.bisect_left(uids, self._unseen_low)
        end = len(uids)
        while i < end and words[i] & SEEN:
            i += 1
        if i == end:
            self._unseen_low = uids[-1] + 1 if end else 0
            return -1
        self._unseen_low = uids[i]
        return i

    def size(self, measure: Callable[[int], int | None]) -> int:
        """
        The folder's size with CRLF line ends: from the names, and from
        C{measure(uid)} for messages whose names do not record it (None:
        gone meanwhile).
        """
        total = self._named_size
        for uid in list(self._unsized):
            size = measure(uid)
            if size is not None:
                total += size
        return total

    # --- changing ---------------------------------------------------------------

    def _count(
        self,
        uid: int,
        name: str,
        word: int,
        new: int,
        sign: int,
        *,
        sized: bool = True,
    ) -> None:
        if not word & SEEN:
            self.unseen += sign
            if sign > 0 and uid < self._unseen_low:
                self._unseen_low = uid
        if word & DELETED:
            self.deleted += sign
        if new:
            self.recent += sign
        if not sized:
            return
        size = _virtual_size(name)
        if size is None:
            if sign > 0:
                self._unsized.add(uid)
            else:
                self._unsized.discard(uid)
        else:
            self._named_size += sign * size

    def add(self, uid: int, name: str, new: bool | int) -> None:
        """Add message C{uid}, whose file is C{name} (in C{new/} if C{new})."""
        word = word_of(name)
        uids = self.uids
        if not uids or uids[-1] < uid:
            uids.append(uid)
            self.names.append(name)
            self.words.append(word)
            self.places.append(new)
        else:
            i = bisect.bisect_left(uids, uid)
            if i < len(uids) and uids[i] == uid:
                self.update(i, name, new, same_key=False)
                return
            uids.insert(i, uid)
            self.names.insert(i, name)
            self.words.insert(i, word)
            self.places.insert(i, new)
        self._count(uid, name, word, new, 1)
        self.version += 1

    def update(
        self, position: int, name: str, new: bool | int, *, same_key: bool = True
    ) -> int:
        """
        Message at C{position} is now file C{name} (renamed: the same key,
        unless C{same_key} is false); return its old word.
        """
        uid = self.uids[position]
        old_name, old = self.names[position], self.words[position]
        word = word_of(name)
        # A rename keeps the key, and so the size in it.
        self._count(uid, old_name, old, self.places[position], -1, sized=not same_key)
        self.names[position] = name
        self.words[position] = word
        self.places[position] = new
        self._count(uid, name, word, new, 1, sized=not same_key)
        self.version += 1
        return old

    def remove(self, positions: Iterable[int]) -> list[int]:
        """Remove the messages at C{positions}; return their UIDs."""
        doomed = sorted(set(positions))
        if not doomed:
            return []
        uids, names, words, places = self.uids, self.names, self.words, self.places
        removed = []
        for i in doomed:
            self._count(uids[i], names[i], words[i], places[i], -1)
            removed.append(uids[i])
        if len(doomed) <= 32:
            for i in reversed(doomed):
                del uids[i], names[i], words[i], places[i]
        else:
            gone = set(doomed)
            keep = [i for i in range(len(uids)) if i not in gone]
            self.uids = array("I", [uids[i] for i in keep])
            self.names = [names[i] for i in keep]
            self.words = array("Q", [words[i] for i in keep])
            self.places = bytearray(places[i] for i in keep)
        self.version += 1
        return removed

    def replace(self, entries: Iterable[tuple[int, str, bool]]) -> None:
        """
        Hold exactly C{entries} (UID, file name, in C{new/}), in any order.
        """
        ordered = sorted(entries)
        self.uids = array("I", [uid for uid, _, _ in ordered])
        self.names = names = [name for _, name, _ in ordered]
        self.words = words = array("Q", [word_of(name) for name in names])
        self.places = bytearray(1 if new else 0 for _, _, new in ordered)
        self.recent = self.places.count(1)
        by_word = Counter(words)
        self.unseen = sum(n for word, n in by_word.items() if not word & SEEN)
        self.deleted = sum(n for word, n in by_word.items() if word & DELETED)
        self._named_size = 0
        self._unsized = set()
        for uid, name in zip(self.uids, names, strict=True):
            size = _virtual_size(name)
            if size is None:
                self._unsized.add(uid)
            else:
                self._named_size += size
        self._unseen_low = 0
        self.version += 1
