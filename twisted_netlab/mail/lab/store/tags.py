"""
Tags, as Mailpit has them, kept as IMAP keywords of the Maildir: a tag is
the keyword of the same name (a space in it is L{SPACE_IN_KEYWORD
<keywords.SPACE_IN_KEYWORD>}), so tags survive a restart, IMAP clients see
them as keywords, and a keyword a client sets is a tag.

Mailpit's rules for names (internal/tools/tags.go, internal/storage/tags.go)
are kept: L{clean_tag} turns every character but letters, digits, C{-},
C{_}, C{.}, C{@} and the space into a space, squeezes spaces and trims, and
keeps 100 characters; names are compared without regard to case (the
first spelling wins: a folder's keyword keeps the case it was first given)
and listed sorted (byte order, as Go's C{sort.Strings}).

A new message gets its tags at delivery, from (L{Tagger}):

  - its C{X-Tags} header (comma-separated);
  - plus-addressing: C{dev+feature1@example.com} gives C{feature1} (every
    C{+} part, for From, To, Cc and Bcc and every envelope recipient);
  - the C{--tag TAG=QUERY} rules (L{TagRule}): a message the query (the
    HTTP search language) matches gets TAG;

with C{--tags-disable x-tags,plus-addresses} turning the first two off
(L{parse_tags_disable}).  The store asks the tagger in its write path
(L{MailStore.deliver_batch<maildir.MailStore.deliver_batch>}, in its
staging threads), so the letters are in the file's name from the start.

The API's changes go through the folders (L{set_tags}, L{rename_tag},
L{delete_tag}); names it is given are cleaned as Mailpit cleans them,
except a name that is already a keyword of the message's folder, which is
taken as it is (so that tags set by IMAP clients, such as C{$Forwarded},
survive a round trip through C{PUT /api/v1/tags}).  Past 26 keywords in a
folder (Maildir's letters), the letters no message carries are freed; when
all 26 are in use, the API's change is refused (L{KeywordLimit
<errors.KeywordLimit>}) and a delivery is stored without the tags that
find no letter (logged).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from typing import TYPE_CHECKING, Any

from twisted_netlab.errors import EXIT_USAGE, NetlabError, UsageProblem
from twisted_netlab.mail.lab.store.errors import NoSuchKeyword
from twisted_netlab.mail.lab.store.keywords import (
    is_keyword,
    keyword_for_tag,
    tag_for_keyword,
)
from twisted_netlab.mail.lab.store.search import (
    Query,
    QueryError,
    SearchFacts,
    parse_facts,
    parse_query,
)

if TYPE_CHECKING:
    from twisted_netlab.mail.lab.store.catalog import Catalog, Entry
    from twisted_netlab.mail.lab.store.folder import Folder
    from twisted_netlab.mail.lab.store.maildir import MailStore

#: The longest tag (Mailpit's).
MAX_TAG_LENGTH = 100
_NOT_TAG = re.compile(r"[^a-zA-Z0-9\- _.@]")
_SPACES = re.compile(r"\s+")
_VALID = re.compile(r"[a-zA-Z0-9\- _.@]{1,100}\Z")
#: Mailpit's plus-address rule: what follows the first C{+} of the local
#: part, up to the C{@}, split at each further C{+}.
_PLUS = re.compile(r"(.*?)\+(.*?)@")
#: C{--tags-disable} values, as Mailpit spells them.
DISABLE_NAMES = {
    "x-tags": "x-tags",
    "xtags": "x-tags",
    "plus-addresses": "plus-addresses",
    "plus-addressing": "plus-addresses",
}


class TagError(NetlabError):
    """
    A tag request that cannot be done (an invalid new name); the HTTP API
    answers it with 400 and C{str()}.
    """

    exit_code = EXIT_USAGE


def clean_tag(text: str) -> str:
    """
    C{text} as Mailpit makes a tag of it: characters other than letters,
    digits, C{-}, C{_}, C{.}, C{@} and the space become spaces, runs of
    spaces one, the ends trimmed, and at most 100 characters kept.
    """
    return _SPACES.sub(" ", _NOT_TAG.sub(" ", text)).strip()[:MAX_TAG_LENGTH].strip()


def valid_tag(text: str) -> bool:
    """Whether C{text} is a tag name as Mailpit allows it."""
    return _VALID.match(text) is not None


def unique_tags(names: Iterable[str]) -> list[str]:
    """
    C{names} cleaned (L{clean_tag}), the invalid ones left out, each once
    without regard to case (the first spelling kept), sorted.
    """
    kept: dict[str, str] = {}
    for name in names:
        cleaned = clean_tag(name)
        if cleaned and valid_tag(cleaned):
            kept.setdefault(cleaned.lower(), cleaned)
    return sorted(kept.values())


def tags_of(flags: Iterable[str]) -> list[str]:
    """The tags of a message with IMAP C{flags}: its keywords, sorted."""
    return sorted(tag_for_keyword(f) for f in flags if is_keyword(f))


def plus_tags(address: str) -> list[str]:
    """The tags of a plus-address (C{dev+a+b@x}: C{a}, C{b})."""
    match = _PLUS.match(address)
    return match.group(2).split("+") if match else []


# --- the options ---------------------------------------------------------------


@dataclass(frozen=True)
class TagRule:
    """
    C{--tag TAGS=QUERY}: a new message that C{query} matches gets C{tags}.
    """

    tags: tuple[str, ...]
    text: str
    query: Query = field(compare=False, repr=False)


def parse_tag_rule(text: str) -> TagRule:
    """
    C{--tag TAG=QUERY} (C{TAG1,TAG2=QUERY} for several): the tags before
    the first C{=}, the search after it (the HTTP search language).

    @raise UsageProblem: no C{=}, no valid tag, or a query that cannot be
        parsed; one line naming the option.
    """
    names, equals, query_text = text.partition("=")
    if not equals or not query_text.strip():
        raise UsageProblem(f"--tag {text!r}: give TAG=QUERY (a search)")
    tags = tuple(unique_tags(names.split(",")))
    if not tags:
        raise UsageProblem(
            f"--tag {text!r}: no valid tag before '=' (letters, digits, "
            "spaces, -, _, . and @)"
        )
    try:
        query = parse_query(query_text.strip())
    except QueryError as e:
        raise UsageProblem(f"--tag {text!r}: bad query: {e}") from None
    return TagRule(tags, query_text.strip(), query)


def parse_tags_disable(text: str) -> frozenset[str]:
    """
    C{--tags-disable x-tags,plus-addresses}: which automatic tags are off.

    @raise UsageProblem: an unknown name.
    """
    found = set()
    for part in text.lower().split(","):
        name = part.strip()
        if not name:
            continue
        if name not in DISABLE_NAMES:
            raise UsageProblem(
                f"--tags-disable: unknown {name!r} (x-tags, plus-addresses)"
            )
        found.add(DISABLE_NAMES[name])
    return frozenset(found)


# --- at delivery ---------------------------------------------------------------


@dataclass
class _Arriving:
    """A message being delivered, as the matcher sees it (for the rules)."""

    facts: SearchFacts
    envelope: Any
    mailbox: str
    received: float
    flags: tuple[str, ...] = ()


class Tagger:
    """
    The tags of each delivered message (the store's L{tagger
    <maildir.MailStore.tagger>}): from its X-Tags header, its
    plus-addresses and the rules, as IMAP keywords, by copy.

    Headers are read without parsing the body; the body is parsed (once
    per message, in the store's staging thread) only when there are rules.
    """

    def __init__(
        self,
        rules: Sequence[TagRule] = (),
        *,
        x_tags: bool = True,
        plus_addresses: bool = True,
    ) -> None:
        self.rules = tuple(rules)
        self.x_tags = x_tags
        self.plus_addresses = plus_addresses

    def __bool__(self) -> bool:
        return bool(self.rules or self.x_tags or self.plus_addresses)

    def tags(
        self, message: bytes, envelope: Any = None, mailbox: str = ""
    ) -> list[str]:
        """The tags one copy of C{message} for C{mailbox} gets, sorted."""
        keywords = self(message, envelope, [mailbox])[mailbox]
        return [tag_for_keyword(k) for k in keywords]

    def __call__(
        self, message: bytes, envelope: Any, addresses: Sequence[str]
    ) -> dict[str, list[str]]:
        names: list[str] = []
        if self.x_tags or self.plus_addresses:
            headers = BytesHeaderParser(policy=compat32).parsebytes(message)
            if self.x_tags:
                for value in headers.get_all("X-Tags", []):
                    names.extend(str(value).split(","))
            if self.plus_addresses:
                found = [
                    a for _, a in getaddresses(_all(headers, "From", "To", "Cc", "Bcc"))
                ]
                if envelope is not None:
                    found.extend(envelope.rcpt_to)
                for address in found:
                    names.extend(plus_tags(address))
        by_address = {address: list(names) for address in addresses}
        if self.rules:
            arriving = _Arriving(
                parse_facts(message),
                envelope,
                "",
                envelope.received if envelope is not None else 0.0,
            )
            for address in addresses:
                arriving.mailbox = address
                for rule in self.rules:
                    if rule.query.matches(arriving):
                        by_address[address].extend(rule.tags)
        return {
            address: [keyword_for_tag(t) for t in unique_tags(found)]
            for address, found in by_address.items()
        }


def _all(headers: Any, *names: str) -> list[str]:
    values: list[str] = []
    for name in names:
        values.extend(str(v) for v in headers.get_all(name, []))
    return values


# --- the API's changes -----------------------------------------------------------


def _keyword_in(folder: Folder, name: str) -> str | None:
    """
    The keyword the tag name C{name} stands for in C{folder}: a keyword it
    already has (any case), else Mailpit's cleaned name; None when nothing
    is left of it.
    """
    spelled = folder.spelled(keyword_for_tag(name.strip())) if name.strip() else None
    if spelled is not None:
        return spelled
    cleaned = clean_tag(name)
    if not cleaned or not valid_tag(cleaned):
        return None
    keyword = keyword_for_tag(cleaned)
    return folder.spelled(keyword) or keyword


def set_tags(catalog: Catalog, entries: Iterable[Entry], names: Sequence[str]) -> None:
    """
    Give each of C{entries} exactly the tags C{names} (its other keywords
    go; its system flags stay), in the store: IMAP sees them.  New
    keywords are given letters in every folder first, so a folder without
    room refuses the change before any message changes.

    @raise KeywordLimit: a folder has no letter left for a new tag.
    """
    by_folder: dict[Folder, list[Entry]] = {}
    for entry in entries:
        by_folder.setdefault(entry.folder, []).append(entry)
    changes: dict[Folder, dict[int, list[str]]] = {}
    for folder, mine in by_folder.items():
        chosen: dict[str, str] = {}
        for name in names:
            keyword = _keyword_in(folder, name)
            if keyword is not None:
                chosen.setdefault(keyword.lower(), keyword)
        keywords = list(chosen.values())
        folder.define_keywords(keywords)
        changes[folder] = {
            e.uid: [f for f in e.flags if not is_keyword(f)] + keywords for e in mine
        }
    for folder, wanted in changes.items():
        folder.set_flags(wanted)
    catalog.sync(rescan=False)


def _folders(store: MailStore) -> list[Folder]:
    folders = []
    for address in store.addresses():
        for mailbox in store.mailboxes(address):
            try:
                folders.append(store.folder(address, mailbox))
            except NetlabError:
                continue
    return folders


def rename_tag(store: MailStore, old: str, new: str) -> None:
    """
    Call tag C{old} C{new} in every folder of every user that has it (the
    keyword's letter stays: no message file is renamed).

    @raise TagError: C{new} is not a valid tag name.
    @raise NoSuchKeyword: no folder has C{old}.
    @raise KeywordExists: a folder has C{old} and another tag called C{new}.
    """
    cleaned = clean_tag(new)
    if not cleaned or not valid_tag(cleaned):
        raise TagError(f"invalid tag name: {new}")
    if old == cleaned:
        return
    old_keyword, new_keyword = keyword_for_tag(old), keyword_for_tag(cleaned)
    having = [
        f
        for f in _folders(store)
        if f.rename_keyword(old_keyword, new_keyword, check_only=True)
    ]
    if not having:
        raise NoSuchKeyword(f"tag not found: {old}")
    for folder in having:
        folder.rename_keyword(old_keyword, new_keyword)


def delete_tag(store: MailStore, name: str) -> None:
    """
    Take tag C{name} off every message of every folder (the messages
    stay) and free its letter.

    @raise NoSuchKeyword: no folder has it.
    """
    keyword = keyword_for_tag(name)
    removed = [f.remove_keyword(keyword) for f in _folders(store)]
    if not any(removed):
        raise NoSuchKeyword(f"tag not found: {name}")


def tag_counts(catalog: Catalog) -> dict[str, int]:
    """
    How many messages of the catalog carry each tag (spellings that differ
    only in case counted as one, shown as the first in sorted order).
    """
    merged: dict[str, tuple[str, int]] = {}
    for keyword, count in sorted(catalog.tag_counts().items()):
        if count <= 0:
            continue
        tag = tag_for_keyword(keyword)
        name, total = merged.get(tag.lower(), (tag, 0))
        merged[tag.lower()] = (name, total + count)
    return dict(sorted(merged.values()))


__all__ = [
    "DISABLE_NAMES",
    "MAX_TAG_LENGTH",
    "TagError",
    "TagRule",
    "Tagger",
    "clean_tag",
    "delete_tag",
    "parse_tag_rule",
    "parse_tags_disable",
    "plus_tags",
    "rename_tag",
    "set_tags",
    "tag_counts",
    "tags_of",
    "unique_tags",
    "valid_tag",
]
