"""
A folder's keywords: its C{dovecot-keywords} file, which gives each IMAP
keyword (a flag without a backslash) one of the 26 lowercase info letters
of Maildir file names, as Dovecot keeps it.

Keywords are also the HTTP API's tags (Mailpit's model): a tag is the
keyword of the same name, but that a space in a tag (which Mailpit allows
and an IMAP atom does not) is L{SPACE_IN_KEYWORD} in the keyword
(L{keyword_for_tag}, L{tag_for_keyword}).  Mailpit's tag characters are
letters, digits, C{-}, C{_}, C{.}, C{@} and the space, so the mapping
never makes two tags one keyword.
"""

from __future__ import annotations

import os
from pathlib import Path

from twisted_netlab.durable import replace_file
from twisted_netlab.mail.lab.store.errors import KeywordExists, KeywordLimit

#: How many keywords a folder holds: one per lowercase letter.
MAX_KEYWORDS = 26
#: What a space of a tag is in its keyword (an atom character that
#: Mailpit's tags never have).
SPACE_IN_KEYWORD = "~"


def keyword_for_tag(tag: str) -> str:
    """The IMAP keyword that stands for the tag C{tag}."""
    return tag.replace(" ", SPACE_IN_KEYWORD)


def tag_for_keyword(keyword: str) -> str:
    """The tag the IMAP keyword C{keyword} shows as."""
    return keyword.replace(SPACE_IN_KEYWORD, " ")


def is_keyword(flag: str) -> bool:
    """Whether an IMAP flag is a keyword (not a system flag)."""
    return bool(flag) and not flag.startswith("\\")


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

    def define(self, names: list[str], *, partial: bool = False) -> list[str]:
        """
        Add C{names} (under the folder's lock) and write the file; return
        those of C{names} that have a letter now.

        @param partial: define those that fit and leave the others out,
            instead of defining none.
        @raise KeywordLimit: there is no room for them (not with C{partial}).
        """
        self.load()
        by_index = dict(self.by_index)
        by_name = dict(self._by_name)
        kept = []
        for name in names:
            if name.lower() in by_name:
                kept.append(name)
                continue
            free = [i for i in range(MAX_KEYWORDS) if i not in by_index]
            if not free:
                if partial:
                    continue
                raise KeywordLimit(
                    f"no room for keyword {name!r}: a folder holds {MAX_KEYWORDS} "
                    "keywords (one per Maildir letter), all in use"
                )
            by_index[free[0]] = name
            by_name[name.lower()] = free[0]
            kept.append(name)
        if by_index != self.by_index:
            self.by_index = by_index
            self._write()
        return kept

    def has(self, name: str) -> bool:
        """Whether keyword C{name} (any case) has a letter."""
        return name.lower() in self._by_name

    def defined_as(self, name: str) -> str | None:
        """Keyword C{name} as this folder spells it (any case), or None."""
        index = self._by_name.get(name.lower())
        return None if index is None else self.by_index[index]

    def _write(self) -> None:
        text = "".join(f"{i} {n}\n" for i, n in sorted(self.by_index.items()))
        replace_file(self.path, text.encode("utf-8"))
        self._stamp = None
        self.load()

    def rename(self, old: str, new: str, *, check_only: bool = False) -> str | None:
        """
        Call keyword C{old} C{new} from now on (under the folder's lock);
        its letter stays, so no message file changes.  Returns the letter,
        or None when the folder has no such keyword.

        @param check_only: change nothing, only say (and raise).
        @raise KeywordExists: another keyword of the folder is called C{new}.
        """
        self.load()
        index = self._by_name.get(old.lower())
        if index is None:
            return None
        taken = self._by_name.get(new.lower())
        if taken is not None and taken != index:
            raise KeywordExists(f"tag already exists: {tag_for_keyword(new)}")
        if not check_only and self.by_index[index] != new:
            self.by_index[index] = new
            self._write()
        return chr(97 + index)

    def forget(self, names: list[str]) -> None:
        """
        Free the letters of keywords C{names} (under the folder's lock): no
        message of the folder may carry them any more.
        """
        self.load()
        known = self._by_name
        indexes = {known[n.lower()] for n in names if n.lower() in known}
        if not indexes:
            return
        for index in indexes:
            del self.by_index[index]
        self._write()
