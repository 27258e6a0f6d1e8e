"""
A folder's keywords: its C{dovecot-keywords} file, which gives each IMAP
keyword (a flag without a backslash) one of the 26 lowercase info letters
of Maildir file names, as Dovecot keeps it.
"""

from __future__ import annotations

import os
from pathlib import Path

from twisted_netlab.durable import replace_file
from twisted_netlab.mail.lab.store.errors import KeywordLimit

#: How many keywords a folder holds: one per lowercase letter.
MAX_KEYWORDS = 26


class KeywordTable:
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
            if self.by_index or self._stamp is not None:
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
            if index.isdigit() and int(index) < MAX_KEYWORDS and name:
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
            free = [i for i in range(MAX_KEYWORDS) if i not in self.by_index]
            if not free:
                raise KeywordLimit(
                    f"no room for keyword {name!r}: a folder holds {MAX_KEYWORDS}"
                )
            self.by_index[free[0]] = name
            self._by_name[name.lower()] = free[0]
            added = True
        if added:
            text = "".join(f"{i} {n}\n" for i, n in sorted(self.by_index.items()))
            replace_file(self.path, text.encode("utf-8"))
            self._stamp = None
            self.load()
