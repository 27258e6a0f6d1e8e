"""
What the mail lab's store calls things: users' addresses and mailbox names
(checked so that neither can leave the user's Maildir), the Maildir++
directory names of folders (modified UTF-7), the names of the store's own
files in a Maildir, IMAP system flags as Maildir info letters, and the names
of new message files (with their sizes in them).
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted_netlab.durable import maildir_name
from twisted_netlab.mail.lab.store.errors import InvalidName, MailStoreError

INBOX = "INBOX"
HIERARCHY_DELIMITER = "."
UIDLIST_NAME = "netlab-uidlist"
LOCK_NAME = "netlab-uidlist.lock"
UIDVALIDITY_NAME = "netlab-uidvalidity"
UIDVALIDITY_LOCK_NAME = "netlab-uidvalidity.lock"
SUBSCRIPTIONS_NAME = "subscriptions"
KEYWORDS_NAME = "dovecot-keywords"
MODSEQ_NAME = "netlab-modseq"

_MAX_NAME_LENGTH = 200

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


def message_name(size: int, virtual_size: int) -> str:
    """
    A new message file name (the key of its UID): L{maildir_name} with
    random bits, since the store never retries a taken name, and with
    C{S=} and C{W=}, the size on disk and the size with CRLF line ends (as
    Dovecot does), so that L{size_from_name} answers without a read.
    """
    return maildir_name(sizes=(size, virtual_size), random_part=True)


def size_from_name(key: str, tag: str) -> int | None:
    """
    The number a message file name records after C{tag} (C{"S="} or
    C{"W="}), or L{None}.
    """
    for part in key.split(",")[1:]:
        if part.startswith(tag):
            try:
                return int(part[len(tag) :])
            except ValueError:
                return None
    return None
