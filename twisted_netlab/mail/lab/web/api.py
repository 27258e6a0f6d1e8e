"""
The mail lab's HTTP API on twisted.web: Mailpit's v1 shape over the lab's
store, plus paths of our own.

Mailpit's (paths, parameters and JSON field names as in its
C{server/ui/api/v1/swagger.json}):
    GET/PUT/DELETE /api/v1/messages, GET/DELETE /api/v1/search,
    GET /api/v1/message/{ID} (or C{latest}), .../headers, .../raw,
    .../part/{PartID}, GET /api/v1/info, /livez, /readyz,
    /view/{ID}.html, /view/{ID}.txt.
Ours:
    GET /api/v1/wait?query=Q&count=N&timeout=S   long-poll: the search's JSON
        once N messages match Q (408 after S seconds)
    GET /api/v1/events                           Server-Sent Events
    GET /api/v1/mailboxes, and ?mailbox=ADDRESS on messages/search/wait
    "Mailbox" in summaries, "Envelope" in the detail.

Every request must name this server in its C{Host} (against DNS rebinding)
and a request that changes something is refused from another C{Origin}
(against CSRF). Message HTML is only served with a Content-Security-Policy
that runs no script and loads nothing remote; parts are always downloads.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, static
from twisted.web.guard import BasicCredentialFactory, HTTPAuthSessionWrapper
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import implementer

from twisted_netlab import __version__
from twisted_netlab.mail.lab.store.catalog import Catalog, Entry, Event, WaitTimeout
from twisted_netlab.mail.lab.store.maildir import MessageGone
from twisted_netlab.mail.lab.store.parsed import Address, ParsedMessage
from twisted_netlab.mail.lab.store.search import (
    AllOf,
    InMailbox,
    Query,
    QueryError,
    parse_query,
)

log = Logger()

#: The policy of message HTML: no script, nothing remote, styles inline.
VIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "font-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox"
)
#: The same with remote images, styles and fonts allowed (the inbox page's
#: "load remote content", C{/view/ID.html?remote=1}): still no script.
VIEW_REMOTE_CSP = (
    VIEW_CSP.replace(
        "style-src 'unsafe-inline'", "style-src 'unsafe-inline' http: https:"
    )
    .replace("img-src 'self' data:", "img-src 'self' data: http: https:")
    .replace("font-src data:", "font-src data: http: https:")
)
#: The policy of every other answer from the API (JSON, raw, parts).
API_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
#: The policy of the inbox page (static files of our own).
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
    "frame-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; "
    "frame-ancestors 'none'"
)
KEEP_ALIVE_SECONDS = 15.0
MAX_LIMIT = 10_000
MAX_WAIT_SECONDS = 3600.0
_STATE_CHANGING = {b"POST", b"PUT", b"DELETE", b"PATCH"}
_CID = re.compile(r"""(["'(])cid:([^"')\s]+)""", re.I)


class BadRequest(Exception):
    """
    A request with a bad parameter: 400 with C{str()} as its one line.
    """


class NotFound(Exception):
    """
    No such message, part or path: 404.
    """


def _when(timestamp: float) -> str:
    return (
        datetime.datetime.fromtimestamp(timestamp, datetime.UTC)
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def _address(value: Address | None) -> dict[str, str]:
    if value is None:
        return {"Name": "", "Address": ""}
    return {"Name": value.name, "Address": value.address}


def _addresses(values: Iterable[Address]) -> list[dict[str, str]]:
    return [_address(v) for v in values]


def summary(entry: Entry) -> dict[str, Any]:
    """
    The JSON of a message in a list (Mailpit's C{MessageSummary}, plus
    C{Mailbox}).
    """
    facts = entry.facts
    return {
        "ID": entry.id,
        "MessageID": facts.message_id,
        "Read": entry.read,
        "From": _address(facts.from_),
        "To": _addresses(facts.to),
        "Cc": _addresses(facts.cc),
        "Bcc": _addresses(facts.bcc),
        "ReplyTo": _addresses(facts.reply_to),
        "Subject": facts.subject,
        "Created": _when(entry.received),
        "Tags": [],
        "Size": facts.size,
        "Attachments": facts.attachment_count,
        "Snippet": facts.snippet,
        "Mailbox": entry.address,
    }


def envelope_json(envelope: Any) -> dict[str, Any] | None:
    """
    The JSON of a message's SMTP envelope (None when none was kept).
    """
    if envelope is None:
        return None
    return {
        "MailFrom": envelope.mail_from,
        "RcptTo": list(envelope.rcpt_to),
        "Client": envelope.client,
        "TLS": bool(envelope.tls),
        "AuthUser": envelope.auth_user,
        "Received": _when(envelope.received),
    }


def detail(entry: Entry, parsed: ParsedMessage) -> dict[str, Any]:
    """
    The JSON of one message (Mailpit's C{Message}, plus C{Mailbox} and
    C{Envelope}).
    """
    date = parsed.date
    return {
        "ID": entry.id,
        "MessageID": parsed.message_id,
        "Read": entry.read,
        "From": _address(parsed.from_),
        "To": _addresses(parsed.to),
        "Cc": _addresses(parsed.cc),
        "Bcc": _addresses(parsed.bcc),
        "ReplyTo": _addresses(parsed.reply_to),
        "ReturnPath": parsed.return_path,
        "Subject": parsed.subject,
        "ListUnsubscribe": {
            "Header": parsed.header("list-unsubscribe"),
            "Links": [],
            "Errors": "",
            "HeaderPost": parsed.header("list-unsubscribe-post"),
        },
        "Date": date.isoformat() if date is not None else _when(entry.received),
        "Tags": [],
        "Username": "",
        "Text": parsed.text,
        "HTML": parsed.html,
        "Size": parsed.size,
        "Inline": [_part(p) for p in parsed.inline],
        "Attachments": [_part(p) for p in parsed.attachments],
        "Mailbox": entry.address,
        "Envelope": envelope_json(entry.envelope),
    }


def _part(part: Any) -> dict[str, Any]:
    return {
        "PartID": part.part_id,
        "FileName": part.file_name,
        "ContentType": part.content_type,
        "ContentID": part.content_id,
        "Size": part.size,
    }


def _int_parameter(request: Request, name: str, default: int, maximum: int) -> int:
    raw = _parameter(request, name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {raw!r}") from None
    if value < 0 or value > maximum:
        raise BadRequest(f"{name} must be between 0 and {maximum}")
    return value


def _parameter(request: Request, name: str) -> str | None:
    values = (request.args or {}).get(name.encode())
    if not values:
        return None
    try:
        return str(values[0].decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest(f"{name} is not UTF-8") from None


def _json_body(request: Request) -> dict[str, Any]:
    """
    The request's JSON object; a form-encoded body (as some Mailpit clients
    send: C{ids=...&Read=True}) is read as the same fields.
    """
    assert request.content is not None
    data = request.content.read()
    if not data.strip():
        return {}
    kind = (request.getHeader(b"content-type") or b"").split(b";")[0].strip()
    if kind.lower() == b"application/x-www-form-urlencoded":
        return _form_body(data)
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def _form_body(data: bytes) -> dict[str, Any]:
    try:
        fields = urllib.parse.parse_qs(data.decode("utf-8"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the request body is not a form") from None
    body: dict[str, Any] = {}
    for name, values in fields.items():
        key = {"ids": "IDs", "read": "Read", "search": "Search"}.get(name.lower(), name)
        if key == "IDs":
            body[key] = values
        elif key == "Read":
            if values[-1].lower() not in ("true", "false", "1", "0"):
                raise BadRequest("Read must be true or false")
            body[key] = values[-1].lower() in ("true", "1")
        else:
            body[key] = values[-1]
    return body


def canonical_header_name(name: str) -> str:
    """
    C{name} as Mailpit (Go's net/textproto) spells header keys:
    C{message-ID} -> C{Message-Id}.
    """
    return "-".join(word[:1].upper() + word[1:].lower() for word in name.split("-"))


def _ids(body: dict[str, Any]) -> list[str] | None:
    ids = body.get("IDs")
    if ids is None:
        return None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        raise BadRequest("IDs must be an array of message IDs")
    return ids


def _content_disposition(kind: str, file_name: str) -> bytes:
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", file_name) or "part"
    quoted = urllib.parse.quote(file_name, safe="")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quoted}".encode()


class LabAPI:
    """
    The API's behaviour over a L{Catalog}; L{APIResource} maps requests to
    it. Runs in the reactor thread.

    @param reactor: for the keep-alive timer of event streams.
    @param extra_info: more fields for C{/api/v1/info}.
    """

    def __init__(self, catalog: Catalog, reactor: Any, *, database: str = "") -> None:
        self.catalog = catalog
        self.reactor = reactor
        self.database = database
        self.started = time.time()
        self._streams: list[Request] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._keep_alive: LoopingCall | None = None
        #: More fields for C{/api/v1/info} (the lab's C{SearchFacts}).
        self.extra_info: Callable[[], dict[str, Any]] | None = None
        #: While the lab loads its search facts, a Deferred that fires once
        #: it is done (else None): searches wait for it.
        self.facts_loading: Callable[[], Deferred[None] | None] | None = None

    # --- helpers ---------------------------------------------------------------

    def _query(self, request: Request, *, required: bool) -> Query:
        text = _parameter(request, "query")
        if text is None:
            if required:
                raise BadRequest("query is required")
            text = ""
        tz: Any = datetime.UTC
        zone = _parameter(request, "tz")
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
        mailbox = _parameter(request, "mailbox")
        if mailbox:
            query = AllOf((query, InMailbox(mailbox)))
        return query

    def _entry(self, message_id: str) -> Entry:
        entry = self.catalog.get(message_id)
        if entry is None:
            raise NotFound(f"no message {message_id}")
        return entry

    def _page(self, request: Request, entries: Sequence[Entry]) -> dict[str, Any]:
        start = _int_parameter(request, "start", 0, 10**9)
        limit = _int_parameter(request, "limit", 50, MAX_LIMIT)
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
            "tags": [],
            "messages": [summary(e) for e in entries[start : start + limit]],
        }

    # --- messages -------------------------------------------------------------

    def list_messages(self, request: Request) -> dict[str, Any]:
        mailbox = _parameter(request, "mailbox") or None
        return self._page(request, self.catalog.entries(mailbox))

    def search(self, request: Request) -> dict[str, Any] | Deferred[dict[str, Any]]:
        query = self._query(request, required=True)
        loading = self.facts_loading() if self.facts_loading is not None else None
        if loading is None:
            return self._page(request, self.catalog.search(query))
        # Right after a start, the facts are being read from the facts file:
        # searching once they are is quicker than reading them row by row.
        return loading.addCallback(
            lambda _: self._page(request, self.catalog.search(query))
        )

    def delete_search(self, request: Request) -> str:
        query = self._query(request, required=True)
        self.catalog.delete(self.catalog.search(query))
        return "ok"

    def set_read(self, request: Request) -> str:
        body = _json_body(request)
        read = body.get("Read", False)
        if not isinstance(read, bool):
            raise BadRequest("Read must be true or false")
        ids = _ids(body)
        if ids:
            entries = [self._entry(i) for i in ids]
        elif isinstance(body.get("Search"), str):
            try:
                entries = self.catalog.search(parse_query(body["Search"]))
            except QueryError as e:
                raise BadRequest(f"bad query: {e}") from None
        else:
            entries = self.catalog.entries()
        self.catalog.set_read(entries, read)
        return "ok"

    def delete_messages(self, request: Request) -> str:
        ids = _ids(_json_body(request))
        entries = [self._entry(i) for i in ids] if ids else self.catalog.entries()
        self.catalog.delete(entries)
        return "ok"

    def message(self, message_id: str) -> dict[str, Any]:
        entry = self._entry(message_id)
        parsed = self._parsed(entry)
        if not entry.read:
            # Mailpit's rule: opening a message marks it read.
            self.catalog.set_read([entry], True)
        return detail(entry, parsed)

    def _parsed(self, entry: Entry) -> ParsedMessage:
        try:
            return entry.parsed()
        except MessageGone:
            raise NotFound(f"no message {entry.id}") from None

    def headers(self, message_id: str) -> dict[str, list[str]]:
        parsed = self._parsed(self._entry(message_id))
        grouped: dict[str, list[str]] = {}
        for name, value in parsed.headers:
            grouped.setdefault(canonical_header_name(name), []).append(value)
        return dict(sorted(grouped.items()))

    def raw(self, message_id: str) -> bytes:
        return self._parsed(self._entry(message_id)).raw

    def part(self, message_id: str, part_id: str) -> Any:
        parsed = self._parsed(self._entry(message_id))
        part = parsed.part(part_id)
        if part is None:
            raise NotFound(f"message {message_id} has no part {part_id}")
        return part

    def info(self) -> dict[str, Any]:
        total, unread = self.catalog.counts()
        extra = self.extra_info() if self.extra_info is not None else {}
        return {
            "Version": f"twisted_netlab {__version__}",
            "LatestVersion": "",
            "Database": self.database,
            "DatabaseSize": 0,
            "Messages": total,
            "Unread": unread,
            "Tags": {},
            "RuntimeStats": {
                "Uptime": int(time.time() - self.started),
                "Memory": 0,
                "MessagesDeleted": 0,
                "SMTPAccepted": 0,
                "SMTPAcceptedSize": 0,
                "SMTPRejected": 0,
                "SMTPIgnored": 0,
            },
        } | extra

    def mailboxes(self) -> dict[str, Any]:
        entries = self.catalog.entries()
        result = []
        for address in self.catalog.mailboxes():
            mine = [e for e in entries if e.address == address]
            result.append(
                {
                    "Address": address,
                    "Total": len(mine),
                    "Unread": sum(1 for e in mine if not e.read),
                }
            )
        return {"mailboxes": result}

    # --- views ----------------------------------------------------------------

    def view_html(self, message_id: str) -> str:
        entry = self._entry(message_id)
        parsed = self._parsed(entry)
        if not parsed.html:
            raise NotFound(f"message {message_id} has no HTML part")
        cids = {p.content_id: p for p in parsed.inline if p.content_id}

        def link(match: re.Match[str]) -> str:
            part = cids.get(urllib.parse.unquote(match.group(2)))
            if part is None:
                return match.group(0)
            if part.content_type.lower().startswith("image/"):
                # Inline images travel inside the view: the inbox page shows
                # it in a sandboxed (opaque-origin) frame, which the parts'
                # Cross-Origin-Resource-Policy (same-origin) rightly refuses.
                data = base64.b64encode(bytes(part.content)).decode("ascii")
                return f"{match.group(1)}data:{part.content_type};base64,{data}"
            return (
                f"{match.group(1)}/api/v1/message/{entry.id}/part/"
                f"{urllib.parse.quote(part.part_id)}"
            )

        return _CID.sub(link, parsed.html)

    def view_text(self, message_id: str) -> str:
        parsed = self._parsed(self._entry(message_id))
        if not parsed.text:
            raise NotFound(f"message {message_id} has no text part")
        return parsed.text

    # --- waiting and events ---------------------------------------------------

    def wait(self, request: Request) -> Deferred[dict[str, Any]]:
        query = self._query(request, required=False)
        count = _int_parameter(request, "count", 1, MAX_LIMIT)
        if count < 1:
            raise BadRequest("count must be at least 1")
        raw_timeout = _parameter(request, "timeout")
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
        d = self.catalog.wait(query, count=count, timeout=timeout)
        return d.addCallback(lambda entries: self._page(request, entries))

    def open_stream(self, request: Request) -> None:
        """
        Start an event stream on C{request}; it ends when the client goes.
        """
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        request.setHeader(b"x-accel-buffering", b"no")
        request.write(b": netlab mail lab events\n\n")
        producer = _StreamProducer()
        request.registerProducer(producer, True)
        request.netlab_stream = producer  # type: ignore[attr-defined]
        self._streams.append(request)
        if self._unsubscribe is None:
            self._unsubscribe = self.catalog.subscribe(self._broadcast)
        if self._keep_alive is None:
            self._keep_alive = LoopingCall(self._send_keep_alive)
            self._keep_alive.clock = self.reactor
            self._keep_alive.start(KEEP_ALIVE_SECONDS, now=False)

        def gone(_: object) -> None:
            self._close_stream(request)

        request.notifyFinish().addBoth(gone)

    def _close_stream(self, request: Request) -> None:
        if request in self._streams:
            self._streams.remove(request)
        if not self._streams:
            if self._unsubscribe is not None:
                self._unsubscribe()
                self._unsubscribe = None
            if self._keep_alive is not None and self._keep_alive.running:
                self._keep_alive.stop()
            self._keep_alive = None

    @property
    def stream_count(self) -> int:
        return len(self._streams)

    def _send_keep_alive(self) -> None:
        self._send_all(b": keep-alive\n\n")

    def _send_all(self, data: bytes) -> None:
        for request in list(self._streams):
            producer = getattr(request, "netlab_stream", None)
            if producer is not None and producer.paused:
                # The client stopped reading and its buffer is full: drop it
                # rather than keep its events (EventSource reconnects).
                self._close_stream(request)
                transport = getattr(request.channel, "transport", None)
                if transport is not None and hasattr(transport, "abortConnection"):
                    transport.abortConnection()
                continue
            try:
                request.write(data)
            except Exception:
                self._close_stream(request)

    def _broadcast(self, events: Sequence[Event]) -> None:
        chunks = []
        for event in events:
            if event.kind == "new" and event.entry is not None:
                try:
                    data: Any = summary(event.entry)
                except Exception:
                    continue
            elif event.kind == "update" and event.entry is not None:
                data = {"ID": event.entry.id, "Read": event.entry.read}
            elif event.kind == "delete":
                data = {"IDs": list(event.ids)}
            else:
                continue
            chunks.append(_sse(event.kind, data))
        if not chunks:
            return
        total, unread = self.catalog.counts()
        chunks.append(_sse("stats", {"Total": total, "Unread": unread}))
        self._send_all(b"".join(chunks))

    def close(self) -> None:
        """
        End every event stream (the server is stopping).
        """
        for request in list(self._streams):
            self._close_stream(request)
            if not request.finished:
                request.unregisterProducer()
                request.finish()


@implementer(IPushProducer)
class _StreamProducer:
    """
    Told by the HTTP channel when an event stream's client stops reading
    (its send buffer is full), so that it can be dropped.
    """

    paused = False

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False

    def stopProducing(self) -> None:
        self.paused = True


def _sse(kind: str, data: Any) -> bytes:
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"event: {kind}\ndata: {text}\n\n".encode()


def _send_json(request: Request, value: Any, code: int = http.OK) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def _send_text(request: Request, text: str | bytes, code: int = http.OK) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return text if isinstance(text, bytes) else text.encode("utf-8")


def _security_headers(request: Request, csp: str = API_CSP) -> None:
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"no-referrer")
    request.setHeader(b"content-security-policy", csp.encode())
    request.setHeader(b"cross-origin-resource-policy", b"same-origin")


@implementer(IResource)
class APIResource:
    """
    Every path of the API and the views (a leaf resource: it routes by the
    whole path). Resources of others (the faults' C{chaos}) are mounted
    with L{mount} under C{/api/v1/}.
    """

    isLeaf = True

    def __init__(self, api: LabAPI) -> None:
        self.api = api
        self.mounted: dict[bytes, IResource] = {}

    def mount(self, name: str, resource: IResource) -> None:
        self.mounted[name.encode()] = resource

    def getChildWithDefault(self, name: bytes, request: Request) -> IResource:
        return self

    def putChild(self, path: bytes, child: IResource) -> None:
        self.mounted[path] = child

    def render(self, request: Request) -> bytes | int:
        _security_headers(request)
        segments = [*(request.prepath or []), *(request.postpath or [])]
        path = [
            urllib.parse.unquote(p.decode("utf-8", "replace")) for p in segments if p
        ] or [""]
        method = request.method
        try:
            result = self._route(request, method, path)
        except BadRequest as e:
            return _send_text(request, f"{e}\n", http.BAD_REQUEST)
        except NotFound as e:
            return _send_text(request, f"{e}\n", http.NOT_FOUND)
        except _MethodNotAllowed:
            return _send_text(request, "method not allowed\n", http.NOT_ALLOWED)
        if isinstance(result, Deferred):
            self._finish_later(request, result)
            return NOT_DONE_YET
        return result

    def _finish_later(self, request: Request, d: Deferred[Any]) -> None:
        def done(value: dict[str, Any]) -> None:
            if not request.finished and not getattr(request, "_gone", False):
                request.write(_send_json(request, value))
                request.finish()

        def failed(failure: Failure) -> None:
            if failure.check(CancelledError):
                return
            if request.finished or getattr(request, "_gone", False):
                return
            if failure.check(WaitTimeout):
                body = _send_text(request, f"{failure.value}\n", http.REQUEST_TIMEOUT)
            else:
                log.failure("an API request failed", failure)
                body = _send_text(
                    request, "internal error\n", http.INTERNAL_SERVER_ERROR
                )
            request.write(body)
            request.finish()

        def gone(_: object) -> None:
            request._gone = True  # type: ignore[attr-defined]
            d.cancel()

        request.notifyFinish().addErrback(gone)
        d.addCallbacks(done, failed)

    def _route(self, request: Request, method: bytes, path: list[str]) -> Any:
        api = self.api
        if path[0] in ("livez", "readyz") and len(path) == 1:
            return _send_text(request, "ok\n")
        if path[0] == "view" and len(path) == 2:
            self._only(method, b"GET")
            name = path[1]
            if name.endswith(".html"):
                html = api.view_html(name[: -len(".html")])
                remote = _parameter(request, "remote") == "1"
                csp = VIEW_REMOTE_CSP if remote else VIEW_CSP
                request.setHeader(b"content-security-policy", csp.encode())
                request.setHeader(b"content-type", b"text/html; charset=utf-8")
                return html.encode("utf-8")
            if name.endswith(".txt"):
                return _send_text(request, api.view_text(name[: -len(".txt")]))
            raise NotFound("views are ID.html or ID.txt")
        if path[:2] != ["api", "v1"] or len(path) < 3:
            raise NotFound("no such path")
        rest = path[2:]
        head = rest[0]
        if rest == ["messages"]:
            if method == b"GET":
                return _send_json(request, api.list_messages(request))
            if method == b"PUT":
                return _send_text(request, api.set_read(request))
            if method == b"DELETE":
                return _send_text(request, api.delete_messages(request))
            raise _MethodNotAllowed()
        if rest == ["search"]:
            if method == b"GET":
                found = api.search(request)
                if isinstance(found, Deferred):
                    return found
                return _send_json(request, found)
            if method == b"DELETE":
                return _send_text(request, api.delete_search(request))
            raise _MethodNotAllowed()
        if rest == ["info"]:
            self._only(method, b"GET")
            return _send_json(request, api.info())
        if rest == ["mailboxes"]:
            self._only(method, b"GET")
            return _send_json(request, api.mailboxes())
        if rest == ["wait"]:
            if method != b"GET":  # not even HEAD: it would never end
                raise _MethodNotAllowed()
            return api.wait(request)
        if rest == ["events"]:
            if method != b"GET":
                raise _MethodNotAllowed()
            api.open_stream(request)
            return NOT_DONE_YET
        if head == "message" and len(rest) >= 2:
            self._only(method, b"GET")
            message_id = rest[1]
            if len(rest) == 2:
                return _send_json(request, api.message(message_id))
            if rest[2:] == ["headers"]:
                return _send_json(request, api.headers(message_id))
            if rest[2:] == ["raw"]:
                return _send_text(request, api.raw(message_id))
            if len(rest) == 4 and rest[2] == "part":
                part = api.part(message_id, rest[3])
                request.setHeader(b"content-type", part.content_type.encode())
                request.setHeader(
                    b"content-disposition",
                    _content_disposition(
                        "attachment", part.file_name or f"part-{part.part_id}"
                    ),
                )
                return bytes(part.content)
        raise NotFound("no such path")

    @staticmethod
    def _only(method: bytes, allowed: bytes) -> None:
        if method != allowed and not (allowed == b"GET" and method == b"HEAD"):
            raise _MethodNotAllowed()


class _MethodNotAllowed(Exception):
    pass


class _Placeholder(Resource):
    """
    The site root when the inbox page is not installed.
    """

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return (
            b"<!doctype html><title>netlab mail lab</title>"
            b"<p>The mail lab's API is at <a href='api/v1/messages'>/api/v1/</a>.</p>"
        )


def static_directory() -> Path | None:
    """
    The inbox page's files (package data C{web/static/}), if installed.
    """
    directory = Path(str(resources.files("twisted_netlab.mail.lab.web"))) / "static"
    return directory if (directory / "index.html").is_file() else None


class SiteRoot(Resource):
    """
    C{/}: the inbox page's static files, with C{/api/}, C{/view/},
    C{/livez} and C{/readyz} going to the API.
    """

    def __init__(self, api_resource: APIResource) -> None:
        super().__init__()
        self.api_resource = api_resource
        directory = static_directory()
        self.static: Resource = (
            static.File(str(directory)) if directory is not None else _Placeholder()
        )

    def getChildWithDefault(self, name: bytes, request: Request) -> Any:
        postpath = request.postpath or []
        if name in (b"api", b"view", b"livez", b"readyz"):
            if name == b"api" and len(postpath) >= 2:
                v1, child = postpath[0], postpath[1]
                mounted = self.api_resource.mounted.get(child)
                if v1 == b"v1" and mounted is not None:
                    del postpath[:2]
                    return mounted
            return self.api_resource
        _security_headers(request, PAGE_CSP)
        if isinstance(self.static, static.File):
            return self.static.getChildWithDefault(name, request)
        return self.static


class HostGuard(Resource):
    """
    Refuse requests whose C{Host} is not one of C{hosts} (421), and
    state-changing requests whose C{Origin} (or C{Sec-Fetch-Site}) shows
    they come from another site (403), before anything else sees them.
    """

    def __init__(self, inner: Any, hosts: Iterable[str]) -> None:
        super().__init__()
        self.inner = inner
        self.hosts = {h.lower().strip("[]") for h in hosts}

    def _refusal(self, request: Request) -> tuple[int, str] | None:
        raw_host = request.getHeader(b"host")
        if raw_host is None:
            return http.BAD_REQUEST, "a Host header is required"
        host = _host_name(raw_host.decode("latin-1"))
        if host not in self.hosts:
            shown = raw_host.decode("latin-1")
            return 421, f"this server does not answer for Host {shown!r}"
        if request.method in _STATE_CHANGING:
            origin = request.getHeader(b"origin")
            if origin is not None:
                parsed = urllib.parse.urlsplit(origin.decode("latin-1"))
                if (parsed.hostname or "").lower() not in self.hosts or (
                    _host_port(raw_host.decode("latin-1")) != _origin_port(parsed)
                ):
                    return (
                        http.FORBIDDEN,
                        "cross-origin requests may not change anything",
                    )
            site = request.getHeader(b"sec-fetch-site")
            if site is not None and site.lower() not in (b"same-origin", b"none"):
                return http.FORBIDDEN, "cross-site requests may not change anything"
        return None

    def getChildWithDefault(self, name: bytes, request: Request) -> Any:
        refusal = self._refusal(request)
        if refusal is not None:
            return _Refusal(*refusal)
        return self.inner.getChildWithDefault(name, request)

    def render(self, request: Request) -> bytes:
        refusal = self._refusal(request)
        if refusal is not None:
            return _Refusal(*refusal).render(request)
        return self.inner.render(request)


def _host_name(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _host_port(value: str) -> int | None:
    value = value.strip()
    tail = value.rsplit("]", 1)[-1] if value.startswith("[") else value
    if ":" in tail and tail.count(":") == 1:
        try:
            return int(tail.rsplit(":", 1)[1])
        except ValueError:
            return None
    return None


def _origin_port(parsed: urllib.parse.SplitResult) -> int | None:
    try:
        return parsed.port
    except ValueError:
        return -1


class _Refusal(Resource):
    isLeaf = True

    def __init__(self, code: int, reason: str) -> None:
        super().__init__()
        self.code = code
        self.reason = reason

    def render(self, request: Request) -> bytes:
        _security_headers(request)
        return _send_text(request, self.reason + "\n", self.code)


__all__ = [
    "API_CSP",
    "VIEW_CSP",
    "VIEW_REMOTE_CSP",
    "APIResource",
    "HostGuard",
    "LabAPI",
    "SiteRoot",
    "detail",
    "envelope_json",
    "make_site",
    "summary",
]


@implementer(IRealm)
class _SiteRealm:
    def __init__(self, root: Any) -> None:
        self.root = root

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        if IResource in interfaces:
            return IResource, self.root, lambda: None
        raise NotImplementedError()


def make_site(
    api: LabAPI,
    api_resource: APIResource,
    *,
    hosts: Iterable[str],
    checker: ICredentialsChecker | None = None,
    reactor: Any = None,
) -> Site:
    """
    The web site of the lab: the API and the inbox page behind the Host and
    Origin checks, and behind HTTP Basic login as a lab user when
    C{checker} is given (for listeners off loopback, which have TLS).
    """
    root: Any = SiteRoot(api_resource)
    if checker is not None:
        root = HTTPAuthSessionWrapper(
            Portal(_SiteRealm(root), [checker]),
            [BasicCredentialFactory(b"netlab mail lab")],
        )
    site = Site(HostGuard(root, hosts), reactor=reactor)
    site.displayTracebacks = False
    return site
