"""
The lab's one message matcher, over decoded text.

Every search of the lab goes through here: the HTTP search language
(L{parse_query}, Mailpit's syntax) and the IMAP server's SEARCH keys both
build L{Query} trees whose leaves match L{SearchFacts}: the message's headers
with RFC 2047 encoded words decoded, and its bodies decoded from
quoted-printable or base64 and from their charset into text (HTML reduced
to its visible text as well). Matching is a case-insensitive substring test
(Unicode case folding), as IMAP SEARCH asks.

Facts are made once per stored message and kept in a L{FactsCache}, bounded
by the amount of text it holds, keyed by the stored file (its folder and
Maildir key) and checked against what identifies its content (its size and
modification time, at most once a second), so a search over a large store
reads and parses each message once, and a file rewritten behind the lab's
back is parsed again.
Beyond memory, the lab keeps them in its facts file (L{FactsBacking},
L{twisted_netlab.mail.lab.store.factsfile}), so that they outlive a restart.
"""

from __future__ import annotations

import datetime
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from twisted_netlab.errors import NetlabError
from twisted_netlab.mail.lab.store.keywords import is_keyword, keyword_for_tag
from twisted_netlab.mail.lab.store.parsed import Address, ParsedMessage, html_to_text

#: Headers whose decoded values the facts keep for HEADER searches of IMAP
#: (every other header is found in the whole header text).
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmg]?)(i?b)?$", re.I)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


class QueryError(NetlabError):
    """
    A search query that cannot be parsed; C{str()} is a one-line reason.
    """


@dataclass(frozen=True)
class SearchFacts:
    """
    What the matcher (and a message list) needs of one message, decoded.

    The C{*_folded} strings are case-folded for matching; the others are as
    the message has them, for display.
    """

    from_: Address | None
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    bcc: tuple[Address, ...]
    reply_to: tuple[Address, ...]
    subject: str
    message_id: str
    date: datetime.datetime | None
    snippet: str
    attachment_count: int
    inline_count: int
    size: int
    headers_folded: tuple[tuple[str, str], ...]
    body_folded: str
    attachment_names_folded: str
    #: "name <address>" lines of each address field, case-folded
    addresses_folded: dict[str, str]
    subject_folded: str
    message_id_folded: str

    @classmethod
    def from_parsed(cls, parsed: ParsedMessage) -> SearchFacts:
        body = parsed.text
        if parsed.html:
            body += "\n" + parsed.html + "\n" + html_to_text(parsed.html)
        return cls(
            from_=parsed.from_,
            to=parsed.to,
            cc=parsed.cc,
            bcc=parsed.bcc,
            reply_to=parsed.reply_to,
            subject=parsed.subject,
            message_id=parsed.message_id,
            date=parsed.date,
            snippet=parsed.snippet,
            attachment_count=len(parsed.attachments),
            inline_count=len(parsed.inline),
            size=parsed.size,
            headers_folded=tuple(
                (name.lower(), value.casefold()) for name, value in parsed.headers
            ),
            body_folded=body.casefold(),
            attachment_names_folded="\n".join(
                p.file_name for p in (*parsed.attachments, *parsed.inline)
            ).casefold(),
            addresses_folded={
                "from": _addresses_text((parsed.from_,)),
                "to": _addresses_text(parsed.to),
                "cc": _addresses_text(parsed.cc),
                "bcc": _addresses_text(parsed.bcc),
                "reply-to": _addresses_text(parsed.reply_to),
            },
            subject_folded=parsed.subject.casefold(),
            message_id_folded=parsed.message_id.casefold(),
        )

    def header(self, name: str) -> str | None:
        """
        The case-folded decoded values of every C{name} header, joined by
        newlines; None when the message has no such header.
        """
        key = name.lower()
        values = [value for field, value in self.headers_folded if field == key]
        return "\n".join(values) if values else None

    @property
    def header_text(self) -> str:
        return "\n".join(f"{name}: {value}" for name, value in self.headers_folded)

    @property
    def weight(self) -> int:
        """About how many characters the facts hold (for the cache budget)."""
        return (
            len(self.body_folded)
            + sum(len(n) + len(v) for n, v in self.headers_folded)
            + len(self.snippet)
            + 200
        )


class Candidate(Protocol):
    """
    A stored message as the matcher sees it.
    """

    @property
    def facts(self) -> SearchFacts: ...

    @property
    def flags(self) -> Sequence[str]: ...

    @property
    def received(self) -> float: ...

    @property
    def envelope(self) -> Any: ...

    @property
    def mailbox(self) -> str: ...


#: What identifies a stored file's content: its size and modification time
#: (nanoseconds), as L{Folder.stamp} gives them.
Stamp = tuple[int, int]


class FactsBacking(Protocol):
    """
    Where a L{FactsCache} keeps facts beyond its memory (the lab's facts
    file, L{twisted_netlab.mail.lab.store.factsfile.FactsFile}): looked up before a
    message is parsed, told of every message parsed.
    """

    def load(self, key: tuple[str, str], stamp: Stamp) -> SearchFacts | None:
        """The facts kept for C{key} if they were made of the same C{stamp}."""

    def save(self, key: tuple[str, str], stamp: Stamp, facts: SearchFacts) -> None:
        """Keep C{facts} of C{key} as it is at C{stamp} (without blocking)."""


def parse_facts(data: bytes) -> SearchFacts:
    """The facts of a message's bytes (the email package parses them)."""
    return SearchFacts.from_parsed(ParsedMessage(data))


#: How often (seconds) facts in memory are checked against their file: a
#: file rewritten behind the lab's back is parsed again within this time (as
#: the catalog sees files added or removed by other programs).
RECHECK_INTERVAL = 1.0


class FactsCache:
    """
    Facts of stored messages, least recently used dropped first once they
    hold more than C{max_chars} characters. Thread-safe.

    Keys of stored messages are (folder path, Maildir key), and facts are
    kept with the L{Stamp} of the file they were made of: looked up with
    C{stamp_of} (the file's stamp now), facts are checked against the file
    when they were last checked more than C{recheck} seconds ago, and made
    of a different stamp (the file was rewritten) they are never returned:
    the message is parsed again. Facts missing from memory are looked up in
    the L{FactsBacking} attached for the folder's store (L{attach}) before
    C{parse} runs, and what is parsed is handed to it.

    @ivar parses: how many messages C{parse} was called for.
    @param clock: monotonic seconds, for C{recheck}.
    """

    def __init__(
        self,
        max_chars: int = 64 * 1024 * 1024,
        parse: Callable[[bytes], SearchFacts] = parse_facts,
        *,
        recheck: float = RECHECK_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_chars = max_chars
        self.parse = parse
        self.recheck = recheck
        self.clock = clock
        self.parses = 0
        #: key -> (facts, stamp, when last checked, weight)
        self._entries: OrderedDict[
            Hashable, tuple[SearchFacts, Stamp | None, float, int]
        ] = OrderedDict()
        self._chars = 0
        self._lock = threading.Lock()
        self._backings: dict[str, FactsBacking] = {}

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def chars(self) -> int:
        return self._chars

    def attach(self, root: str, backing: FactsBacking) -> None:
        """
        Look up and keep the facts of folders under the directory C{root}
        in C{backing}.
        """
        with self._lock:
            self._backings[root.rstrip("/") + "/"] = backing

    def detach(self, root: str) -> None:
        with self._lock:
            self._backings.pop(root.rstrip("/") + "/", None)

    def _backing(self, key: Hashable) -> FactsBacking | None:
        if not self._backings or not isinstance(key, tuple):
            return None
        folder = key[0]
        for root, backing in list(self._backings.items()):
            if folder.startswith(root):
                return backing
        return None

    def peek(self, key: Hashable, stamp: Stamp | None = None) -> SearchFacts | None:
        """
        The facts of C{key} in memory (made of C{stamp}, if given), or None.
        """
        with self._lock:
            found = self._entries.get(key)
        if found is None or (stamp is not None and found[1] != stamp):
            return None
        return found[0]

    def get(
        self,
        key: Hashable,
        load: Callable[[], bytes],
        stamp_of: Callable[[], Stamp] | None = None,
    ) -> SearchFacts:
        """
        The facts of the message C{key}, parsing C{load()} the first time
        (and again once the file's stamp, C{stamp_of()}, changed).

        @raise MessageGone: from C{load} or C{stamp_of}.
        """
        now = self.clock()
        with self._lock:
            found = self._entries.get(key)
            if found is not None and (
                stamp_of is None or now - found[2] < self.recheck
            ):
                self._entries.move_to_end(key)
                return found[0]
        stamp = stamp_of() if stamp_of is not None else None
        if found is not None and found[1] == stamp:
            with self._lock:
                if self._entries.get(key) is found:
                    self._entries[key] = (found[0], stamp, now, found[3])
                    self._entries.move_to_end(key)
            return found[0]
        backing = self._backing(key) if stamp is not None else None
        facts = None
        if backing is not None:
            assert stamp is not None
            facts = backing.load(key, stamp)  # type: ignore[arg-type]
        if facts is None:
            facts = self.make(load())
            if backing is not None:
                assert stamp is not None
                backing.save(key, stamp, facts)  # type: ignore[arg-type]
        self.put(key, facts, stamp)
        return facts

    def make(self, data: bytes) -> SearchFacts:
        """
        The facts of a message's bytes, parsed (and counted in C{parses}).
        """
        facts = self.parse(data)
        with self._lock:
            self.parses += 1
        return facts

    def put(
        self, key: Hashable, facts: SearchFacts, stamp: Stamp | None = None
    ) -> None:
        """
        Keep C{facts} of C{key} (made of a file with C{stamp}, checked now)
        in memory, within the budget; a message larger than an eighth of it
        is not kept.
        """
        weight = facts.weight
        if weight > self.max_chars // 8:
            return
        now = self.clock()
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._chars -= old[3]
            self._entries[key] = (facts, stamp, now, weight)
            self._chars += weight
            while self._chars > self.max_chars and self._entries:
                _, dropped = self._entries.popitem(last=False)
                self._chars -= dropped[3]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._chars = 0


class StampedFolder(Protocol):
    """What L{facts_of} needs of a store folder (L{folder.Folder})."""

    @property
    def path(self) -> Any: ...

    def entry(self, uid: int) -> Any: ...

    def read(self, uid: int) -> bytes: ...

    def stamp(self, uid: int) -> Stamp: ...


def facts_of(folder: StampedFolder, uid: int, cache: FactsCache) -> SearchFacts:
    """
    The facts of message C{uid} of C{folder}, through C{cache}: checked
    against the file (L{RECHECK_INTERVAL}), so a file rewritten behind the
    lab's back is parsed again.

    @raise MessageGone: the message is gone.
    """
    key = (str(folder.path), folder.entry(uid).key)
    return cache.get(key, lambda: folder.read(uid), lambda: folder.stamp(uid))


#: The process's cache, shared by IMAP SEARCH and the HTTP API.
facts_cache = FactsCache()


def contains(haystack: str | None, needle: str) -> bool:
    """
    The matcher's one comparison: C{needle} occurs in C{haystack} (already
    case-folded), ignoring case.
    """
    return haystack is not None and needle.casefold() in haystack


# --- the query tree -----------------------------------------------------------


class Query:
    """
    A search: L{matches} says whether a message is found.
    """

    def matches(self, message: Candidate) -> bool:
        raise NotImplementedError


class Everything(Query):
    def matches(self, message: Candidate) -> bool:
        return True


@dataclass(frozen=True)
class AllOf(Query):
    parts: tuple[Query, ...]

    def matches(self, message: Candidate) -> bool:
        return all(q.matches(message) for q in self.parts)


@dataclass(frozen=True)
class AnyOf(Query):
    parts: tuple[Query, ...]

    def matches(self, message: Candidate) -> bool:
        return any(q.matches(message) for q in self.parts)


@dataclass(frozen=True)
class Not(Query):
    query: Query

    def matches(self, message: Candidate) -> bool:
        return not self.query.matches(message)


@dataclass(frozen=True)
class HeaderContains(Query):
    """
    A header's decoded value contains C{needle} (any value, with an empty
    needle: the header is present). IMAP's HEADER, FROM, SUBJECT...
    """

    name: str
    needle: str

    def matches(self, message: Candidate) -> bool:
        return contains(message.facts.header(self.name), self.needle)


@dataclass(frozen=True)
class BodyContains(Query):
    """
    The decoded body text contains C{needle}. IMAP's BODY.
    """

    needle: str

    def matches(self, message: Candidate) -> bool:
        return contains(message.facts.body_folded, self.needle)


@dataclass(frozen=True)
class TextContains(Query):
    """
    The decoded headers or body contain C{needle}. IMAP's TEXT.
    """

    needle: str

    def matches(self, message: Candidate) -> bool:
        facts = message.facts
        return contains(facts.body_folded, self.needle) or contains(
            facts.header_text, self.needle
        )


def _addresses_text(addresses: Iterable[Address | None]) -> str:
    return "\n".join(
        f"{a.name} <{a.address}>" for a in addresses if a is not None
    ).casefold()


@dataclass(frozen=True)
class Words(Query):
    """
    A free word or phrase (Mailpit's search without a prefix): in the
    subject, an address, the Message-ID, the body or an attachment's name.
    """

    needle: str

    def matches(self, message: Candidate) -> bool:
        facts = message.facts
        return (
            contains(facts.subject_folded, self.needle)
            or contains(facts.body_folded, self.needle)
            or any(contains(v, self.needle) for v in facts.addresses_folded.values())
            or contains(facts.message_id_folded, self.needle)
            or contains(facts.attachment_names_folded, self.needle)
        )


@dataclass(frozen=True)
class AddressContains(Query):
    """
    An address field (C{from}, C{to}, C{cc}, C{bcc}, C{reply-to}) contains
    C{needle}; with C{envelope}, the SMTP envelope's sender (C{from}) or
    recipients (C{to}) count too.
    """

    field: str
    needle: str
    envelope: bool = False

    def matches(self, message: Candidate) -> bool:
        if contains(message.facts.addresses_folded[self.field], self.needle):
            return True
        if not self.envelope:
            return False
        envelope = message.envelope
        if envelope is None:
            return False
        if self.field == "from":
            values: Iterable[str] = (envelope.mail_from,)
        else:
            values = envelope.rcpt_to
        return any(contains(v.casefold(), self.needle) for v in values)


@dataclass(frozen=True)
class MessageIDIs(Query):
    value: str

    def matches(self, message: Candidate) -> bool:
        return message.facts.message_id_folded == self.value.casefold()


@dataclass(frozen=True)
class HasFlag(Query):
    """
    The message has the IMAP flag C{flag}: a system flag exactly, a
    keyword (a tag: C{tag:NAME}) without regard to case, as IMAP compares
    them.
    """

    flag: str

    def matches(self, message: Candidate) -> bool:
        if self.flag.startswith("\\"):
            return self.flag in message.flags
        wanted = self.flag.lower()
        return any(f.lower() == wanted for f in message.flags)


@dataclass(frozen=True)
class Tagged(Query):
    """The message has a keyword (a tag): C{is:tagged}."""

    def matches(self, message: Candidate) -> bool:
        return any(is_keyword(f) for f in message.flags)


def envelope_only(facts: SearchFacts | ParsedMessage, envelope: Any) -> tuple[str, ...]:
    """
    The envelope recipients that the message's To, Cc and Bcc do not name
    (compared without regard to case): Bcc recipients the sender left out
    of the headers, which Mailpit adds to the message's Bcc.
    """
    if envelope is None:
        return ()
    named = {a.address.lower() for a in (*facts.to, *facts.cc, *facts.bcc)}
    found: dict[str, str] = {}
    for address in envelope.rcpt_to:
        if address.lower() not in named:
            found.setdefault(address.lower(), address)
    return tuple(found.values())


@dataclass(frozen=True)
class BccContains(Query):
    """
    C{bcc:}: the Bcc header, or an envelope recipient that To, Cc and Bcc
    do not name (L{envelope_only}), contains C{needle}.
    """

    needle: str

    def matches(self, message: Candidate) -> bool:
        facts = message.facts
        if contains(facts.addresses_folded["bcc"], self.needle):
            return True
        return any(
            contains(a.casefold(), self.needle)
            for a in envelope_only(facts, message.envelope)
        )


@dataclass(frozen=True)
class HasAttachment(Query):
    inline: bool = False

    def matches(self, message: Candidate) -> bool:
        facts = message.facts
        return bool(facts.inline_count if self.inline else facts.attachment_count)


@dataclass(frozen=True)
class ReceivedBefore(Query):
    moment: float

    def matches(self, message: Candidate) -> bool:
        return message.received < self.moment


@dataclass(frozen=True)
class ReceivedAfter(Query):
    moment: float

    def matches(self, message: Candidate) -> bool:
        return message.received >= self.moment


@dataclass(frozen=True)
class Larger(Query):
    size: int

    def matches(self, message: Candidate) -> bool:
        return message.facts.size > self.size


@dataclass(frozen=True)
class Smaller(Query):
    size: int

    def matches(self, message: Candidate) -> bool:
        return message.facts.size < self.size


@dataclass(frozen=True)
class InMailbox(Query):
    address: str

    def matches(self, message: Candidate) -> bool:
        return message.mailbox.lower() == self.address.lower()


# --- Mailpit's search language ------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?P<neg>[-!]?)(?:(?P<key>[A-Za-z][A-Za-z-]*):)?"""
    r"""(?:"(?P<quoted>[^"]*)"|(?P<word>[^\s"]*))"""
)
_ADDRESS_KEYS = {"from", "to", "cc", "bcc", "reply-to"}
_KNOWN_KEYS = _ADDRESS_KEYS | {
    "subject",
    "message-id",
    "is",
    "has",
    "before",
    "after",
    "larger",
    "smaller",
    "mailbox",
    "addressed",
    "tag",
}


def _tokens(query: str) -> Iterable[tuple[bool, str | None, str, bool]]:
    """
    (negated, key, value, quoted) for each term of C{query}.
    """
    position = 0
    text = query.strip()
    while position < len(text):
        if text[position].isspace():
            position += 1
            continue
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise QueryError(f"cannot read the query at {text[position:]!r}")
        rest = text[match.end() : match.end() + 1]
        quoted = match.group("quoted")
        if quoted is None and rest == '"':
            raise QueryError(f"unterminated quote in the query at {text[position:]!r}")
        if rest and not rest.isspace():
            raise QueryError(f"unterminated quote in the query at {text[position:]!r}")
        position = match.end()
        key = match.group("key")
        value = quoted if quoted is not None else match.group("word")
        negated = bool(match.group("neg"))
        if key is not None and key.lower() not in _KNOWN_KEYS:
            # Not one of ours (a URL, a time of day): a free word.
            value = f"{key}:{value}"
            key = None
        if key is None and not value:
            if negated:
                raise QueryError("'-' needs a term after it")
            continue
        yield negated, (key.lower() if key else None), value, quoted is not None


def parse_size(value: str) -> int:
    """
    A size such as C{500}, C{10K}, C{2.5MB} or C{1G}, in bytes (K = 1024).

    @raise QueryError: it is not one.
    """
    match = _SIZE.match(value.strip())
    if match is None:
        raise QueryError(f"bad size {value!r} (a number, optionally K, M or G)")
    return int(float(match.group(1)) * _UNITS[match.group(2).lower()])


def parse_moment(value: str, tz: datetime.tzinfo = datetime.UTC) -> float:
    """
    The time C{value} names: a date (C{2024-05-01}, midnight in C{tz}) or
    an ISO 8601 date and time (C{2024-05-01T13:30}, C{...Z}, C{...+02:00}).

    @raise QueryError: it is neither.
    """
    text = value.strip()
    try:
        if len(text) == 10:
            day = datetime.date.fromisoformat(text)
            return datetime.datetime(
                day.year, day.month, day.day, tzinfo=tz
            ).timestamp()
        moment = datetime.datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        raise QueryError(
            f"bad date {value!r} (YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS][+HH:MM])"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=tz)
    return moment.timestamp()


def parse_query(query: str, tz: datetime.tzinfo = datetime.UTC) -> Query:
    """
    Parse a search in Mailpit's language into a L{Query}.

    Terms are ANDed: free words and C{"quoted phrases"} (subject, addresses,
    Message-ID, body, attachment names); C{from:} (the From header or the
    envelope's MAIL FROM), C{to:} (the To header or any envelope recipient:
    Bcc recipients included), C{cc:}, C{bcc:} (the Bcc header or an
    envelope recipient To, Cc and Bcc do not name), C{reply-to:},
    C{addressed:} (To, Cc, Bcc or envelope recipient), C{subject:},
    C{message-id:} (exact); C{tag:NAME} (any case);
    C{is:read}, C{is:unread}, C{is:starred}, C{is:unstarred},
    C{is:tagged}, C{is:untagged};
    C{has:attachment}, C{has:inline}; C{before:DATE}, C{after:DATE};
    C{larger:SIZE}, C{smaller:SIZE}; C{mailbox:ADDRESS}. C{-} before a term
    negates it. An empty query matches everything.

    @raise QueryError: the query cannot be parsed (one-line reason).
    """
    terms: list[Query] = []
    for negated, key, value, _quoted in _tokens(query):
        term = _term(key, value, tz)
        terms.append(Not(term) if negated else term)
    if not terms:
        return Everything()
    if len(terms) == 1:
        return terms[0]
    return AllOf(tuple(terms))


def _term(key: str | None, value: str, tz: datetime.tzinfo) -> Query:
    if key is None:
        return Words(value)
    if not value:
        raise QueryError(f"{key}: needs a value")
    if key in ("from", "to"):
        return AddressContains(key, value, envelope=True)
    if key == "bcc":
        return BccContains(value)
    if key == "tag":
        keyword = keyword_for_tag(value.strip())
        # A tag is a keyword, never a system flag (tag:\\Seen finds none).
        return HasFlag(keyword) if is_keyword(keyword) else Not(Everything())
    if key in _ADDRESS_KEYS:
        return AddressContains(key, value)
    if key == "addressed":
        return AnyOf(
            (
                AddressContains("to", value, envelope=True),
                AddressContains("cc", value),
                AddressContains("bcc", value),
            )
        )
    if key == "subject":
        return HeaderContains("subject", value)
    if key == "message-id":
        return MessageIDIs(value.strip().strip("<>"))
    if key == "is":
        flags = {
            "read": HasFlag("\\Seen"),
            "unread": Not(HasFlag("\\Seen")),
            "seen": HasFlag("\\Seen"),
            "unseen": Not(HasFlag("\\Seen")),
            "starred": HasFlag("\\Flagged"),
            "unstarred": Not(HasFlag("\\Flagged")),
            "tagged": Tagged(),
            "untagged": Not(Tagged()),
        }
        if value.lower() not in flags:
            raise QueryError(
                f"unknown is:{value} (is:read, is:unread, is:starred, "
                "is:unstarred, is:tagged, is:untagged)"
            )
        return flags[value.lower()]
    if key == "has":
        kinds = {
            "attachment": HasAttachment(),
            "attachments": HasAttachment(),
            "inline": HasAttachment(inline=True),
        }
        if value.lower() not in kinds:
            raise QueryError(f"unknown has:{value} (has:attachment, has:inline)")
        return kinds[value.lower()]
    if key == "before":
        return ReceivedBefore(parse_moment(value, tz))
    if key == "after":
        return ReceivedAfter(parse_moment(value, tz))
    if key == "larger":
        return Larger(parse_size(value))
    if key == "smaller":
        return Smaller(parse_size(value))
    assert key == "mailbox"
    return InMailbox(value)


__all__ = [
    "AddressContains",
    "BccContains",
    "BodyContains",
    "Candidate",
    "FactsBacking",
    "FactsCache",
    "HeaderContains",
    "Query",
    "QueryError",
    "SearchFacts",
    "Stamp",
    "StampedFolder",
    "Tagged",
    "TextContains",
    "contains",
    "envelope_only",
    "facts_cache",
    "facts_of",
    "parse_facts",
    "parse_moment",
    "parse_query",
    "parse_size",
]
