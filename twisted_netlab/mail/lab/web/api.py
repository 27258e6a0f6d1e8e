"""
The lab's HTTP API over its store: L{LabAPI}, what every route shares (the
catalog, the query and paging parameters, the lab's info, the event
streams).  The routes themselves are the modules beside this one, put
together in L{twisted_netlab.mail.lab.web.v1}; the map is in
L{twisted_netlab.mail.lab.web}.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.web.server import Request

from twisted_netlab import __version__
from twisted_netlab.mail.lab.stats import RuntimeStats
from twisted_netlab.mail.lab.store.catalog import Catalog, Entry
from twisted_netlab.mail.lab.store.maildir import MessageGone
from twisted_netlab.mail.lab.store.parsed import ParsedMessage
from twisted_netlab.mail.lab.store.search import (
    AllOf,
    InMailbox,
    Query,
    QueryError,
    parse_query,
)
from twisted_netlab.mail.lab.store.tags import tag_counts
from twisted_netlab.mail.lab.web.events import EventStreams
from twisted_netlab.mail.lab.web.route import (
    BadRequest,
    NotFound,
    int_parameter,
    parameter,
)
from twisted_netlab.mail.lab.web.shapes import summary

#: The most messages one page may hold (C{limit}), and one wait await
#: (C{count}).
MAX_LIMIT = 10_000


class _WallClock:
    """A clock for reactors that have none (C{MemoryReactor})."""

    def seconds(self) -> float:
        return time.time()


def clock_of(reactor: Any) -> Any:
    """C{reactor} if it keeps time, else the wall clock."""
    return reactor if IReactorTime.providedBy(reactor) else _WallClock()


class LabAPI:
    """
    What the API's routes share over a L{Catalog}. Runs in the reactor
    thread.

    @param reactor: for the keep-alive timer of event streams.
    @param database: what C{/api/v1/info} names as the database.
    """

    def __init__(self, catalog: Catalog, reactor: Any, *, database: str = "") -> None:
        self.catalog = catalog
        self.reactor = reactor
        self.database = database
        #: The open C{/api/v1/events} streams.
        self.events = EventStreams(catalog, reactor)
        #: More fields for C{/api/v1/info} (the lab's C{SearchFacts}).
        self.extra_info: Callable[[], dict[str, Any]] | None = None
        #: While the lab loads its search facts, a Deferred that fires once
        #: it is done (else None): searches wait for it.
        self.facts_loading: Callable[[], Deferred[None] | None] | None = None
        #: Runs and caches the message checks (a L{CheckRunner
        #: <twisted_netlab.mail.lab.checks.runner.CheckRunner>}, set by the
        #: lab; made with the default settings when first needed if not).
        self.checks: Any = None
        #: The lab's runtime counters (C{/api/v1/info}, C{/metrics}).
        self.stats = RuntimeStats(clock_of(reactor))
        #: Measures the state directory in bytes (C{DatabaseSize}); None:
        #: reported as 0.
        self.database_size: Callable[[], Deferred[int]] | None = None
        #: Releases stored messages (L{twisted_netlab.mail.lab.relay.Relay});
        #: None without C{--relay}.
        self.relay: Any = None
        #: Stores the message of a C{POST /api/v1/send} as if received:
        #: C{(composed, request) -> Deferred of its ID}; None: not served.
        self.accept_sent: Callable[[Any, Request], Deferred[str]] | None = None
        #: Mailpit's C{Label} (C{/api/v1/webui}).
        self.label = ""

    def query(self, request: Request, *, required: bool) -> Query:
        """
        The request's search: C{query} in the HTTP query language (times in
        C{tz}), within C{mailbox} when given.
        """
        text = parameter(request, "query")
        if text is None:
            if required:
                raise BadRequest("query is required")
            text = ""
        tz: Any = datetime.UTC
        zone = parameter(request, "tz")
        if zone:
            try:
                import zoneinfo

                tz = zoneinfo.ZoneInfo(zone)
            except (ValueError, KeyError, zoneinfo.ZoneInfoNotFoundError):
                raise BadRequest(f"unknown time zone {zone!r}") from None
        try:
            query = parse_query(text, tz)
        except QueryError as e:
            raise BadRequest(f"bad query: {e}") from None
        mailbox = parameter(request, "mailbox")
        if mailbox:
            query = AllOf((query, InMailbox(mailbox)))
        return query

    def entry(self, message_id: str) -> Entry:
        """
        The message C{message_id} names (or C{latest}).

        @raise NotFound: there is none.
        """
        entry = self.catalog.get(message_id)
        if entry is None:
            raise NotFound(f"no message {message_id}")
        return entry

    def parsed(self, entry: Entry) -> ParsedMessage:
        """
        C{entry}'s message, parsed.

        @raise NotFound: it was deleted meanwhile.
        """
        try:
            return entry.parsed()
        except MessageGone:
            raise NotFound(f"no message {entry.id}") from None

    def page(self, request: Request, entries: Sequence[Entry]) -> dict[str, Any]:
        """
        The JSON of a list of messages (Mailpit's C{MessagesSummary}): the
        page of C{entries} that C{start} and C{limit} ask for, with counts.
        """
        start = int_parameter(request, "start", 0, 10**9)
        limit = int_parameter(request, "limit", 50, MAX_LIMIT)
        everything = self.catalog.entries()
        unread = sum(1 for e in everything if not e.read)
        if len(entries) == len(everything):
            matched_unread = unread
        else:
            matched_unread = sum(1 for e in entries if not e.read)
        return {
            "total": len(everything),
            "unread": unread,
            "count": len(entries[start : start + limit]),
            "messages_count": len(entries),
            "messages_unread": matched_unread,
            "start": start,
            "tags": sorted(tag_counts(self.catalog)),
            "messages": [summary(e) for e in entries[start : start + limit]],
        }

    def info(self, database_size: int = 0) -> dict[str, Any]:
        """
        The JSON of C{/api/v1/info} (Mailpit's C{AppInformation}, plus
        L{extra_info}), with the state's size C{database_size}.
        """
        total, unread = self.catalog.counts()
        extra = self.extra_info() if self.extra_info is not None else {}
        return (
            self.stats.as_json(
                version=f"twisted_netlab {__version__}",
                database=self.database,
                database_size=database_size,
                messages=total,
                unread=unread,
                tags=tag_counts(self.catalog),
            )
            | extra
        )

    def measured(self) -> Deferred[int]:
        """The state's size in bytes (L{database_size}), once measured."""
        if self.database_size is None:
            return succeed(0)
        return self.database_size()

    @property
    def stream_count(self) -> int:
        """
        How many event streams are open.
        """
        return self.events.count

    def close(self) -> None:
        """
        End every event stream (the server is stopping).
        """
        self.events.close()
