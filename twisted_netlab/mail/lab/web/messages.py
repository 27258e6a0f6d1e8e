"""
The API's lists of messages, each a page of summaries
(L{LabAPI.page}), and what is done to many messages at once:

    GET    /api/v1/messages[?mailbox=A]     the newest first
    PUT    /api/v1/messages                 {"IDs", "Read"} or {"Search", "Read"}
    DELETE /api/v1/messages                 {"IDs"}, or every message
    GET    /api/v1/search?query=Q           the messages that match
    DELETE /api/v1/search?query=Q           delete them
    GET    /api/v1/wait?query=Q&count=N&timeout=S
                                            the search's page once N messages
                                            match (408 after S seconds)
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.server import Request

from twisted_netlab.mail.lab.store.search import QueryError, parse_query
from twisted_netlab.mail.lab.web.api import MAX_LIMIT, LabAPI
from twisted_netlab.mail.lab.web.route import (
    BadRequest,
    Route,
    ids,
    int_parameter,
    json_body,
    parameter,
    send_json,
    send_text,
)

#: The longest a wait may be asked to last (seconds).
MAX_WAIT_SECONDS = 3600.0


class MessagesRoute(Route):
    """
    C{/api/v1/messages}: list, mark read or unread, delete.
    """

    answers_head = False

    def __init__(self, api: LabAPI) -> None:
        super().__init__()
        self.api = api

    def render_GET(self, request: Request) -> bytes:
        mailbox = parameter(request, "mailbox") or None
        entries = self.api.catalog.entries(mailbox)
        return send_json(request, self.api.page(request, entries))

    def render_PUT(self, request: Request) -> bytes:
        api = self.api
        body = json_body(request)
        read = body.get("Read", False)
        if not isinstance(read, bool):
            raise BadRequest("Read must be true or false")
        chosen = ids(body)
        if chosen:
            entries = [api.entry(i) for i in chosen]
        elif isinstance(body.get("Search"), str):
            try:
                entries = api.catalog.search(parse_query(body["Search"]))
            except QueryError as e:
                raise BadRequest(f"bad query: {e}") from None
        else:
            entries = api.catalog.entries()
        api.catalog.set_read(entries, read)
        return send_text(request, "ok")

    def render_DELETE(self, request: Request) -> bytes:
        api = self.api
        chosen = ids(json_body(request))
        entries = [api.entry(i) for i in chosen] if chosen else api.catalog.entries()
        api.catalog.delete(entries)
        return send_text(request, "ok")


class SearchRoute(Route):
    """
    C{/api/v1/search}: the messages a query matches, or delete them.
    """

    answers_head = False

    def __init__(self, api: LabAPI) -> None:
        super().__init__()
        self.api = api

    def render_GET(self, request: Request) -> bytes | Deferred[dict[str, Any]]:
        api = self.api
        query = api.query(request, required=True)
        loading = api.facts_loading() if api.facts_loading is not None else None
        if loading is None:
            return send_json(request, api.page(request, api.catalog.search(query)))
        # Right after a start, the facts are being read from the facts file:
        # searching once they are is quicker than reading them row by row.
        return loading.addCallback(
            lambda _: api.page(request, api.catalog.search(query))
        )

    def render_DELETE(self, request: Request) -> bytes:
        api = self.api
        query = api.query(request, required=True)
        api.catalog.delete(api.catalog.search(query))
        return send_text(request, "ok")


class WaitRoute(Route):
    """
    C{GET /api/v1/wait}: a long poll, answered once enough messages match.
    """

    answers_head = False  # it could wait for long, to send nothing

    def __init__(self, api: LabAPI) -> None:
        super().__init__()
        self.api = api

    def render_GET(self, request: Request) -> Deferred[dict[str, Any]]:
        api = self.api
        query = api.query(request, required=False)
        count = int_parameter(request, "count", 1, MAX_LIMIT)
        if count < 1:
            raise BadRequest("count must be at least 1")
        raw_timeout = parameter(request, "timeout")
        try:
            timeout = float(raw_timeout) if raw_timeout else 30.0
        except ValueError:
            raise BadRequest(
                f"timeout must be a number of seconds, not {raw_timeout!r}"
            ) from None
        if not 0 < timeout <= MAX_WAIT_SECONDS:
            raise BadRequest(
                f"timeout must be above 0 and at most {MAX_WAIT_SECONDS:g}"
            )
        d = api.catalog.wait(query, count=count, timeout=timeout)
        return d.addCallback(lambda entries: api.page(request, entries))
