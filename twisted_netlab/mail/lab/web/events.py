"""
C{GET /api/v1/events}: the store's changes as Server-Sent Events, the feed
of the live inbox page.

Events: C{new} (a message's summary), C{update} (C{{"ID", "Read", "Tags"}}),
C{delete} (C{{"IDs"}}), then C{stats} (C{{"Total", "Unread"}}) after each
batch; a comment line every L{KEEP_ALIVE_SECONDS}.  A client that stops
reading is dropped once its send buffer is full, rather than have its
events kept (C{EventSource} reconnects).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.internet.task import LoopingCall
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

from twisted_netlab.mail.lab.store.catalog import Catalog, Event
from twisted_netlab.mail.lab.store.tags import tags_of
from twisted_netlab.mail.lab.web.route import Route
from twisted_netlab.mail.lab.web.shapes import summary

KEEP_ALIVE_SECONDS = 15.0


class EventStreams:
    """
    The open event streams over a L{Catalog}: subscribed to it while there
    is one, with a keep-alive timer on C{reactor}.
    """

    def __init__(self, catalog: Catalog, reactor: Any) -> None:
        self.catalog = catalog
        self.reactor = reactor
        self._streams: list[Request] = []
        self._unsubscribe: Callable[[], None] | None = None
        self._keep_alive: LoopingCall | None = None

    def open(self, request: Request) -> None:
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
    def count(self) -> int:
        """
        How many streams are open.
        """
        return len(self._streams)

    def _send_keep_alive(self) -> None:
        self.send_all(b": keep-alive\n\n")

    def send_all(self, data: bytes) -> None:
        """
        Write C{data} to every open stream; drop the ones whose client has
        stopped reading.
        """
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
                flags = event.entry.flags
                data = {
                    "ID": event.entry.id,
                    "Read": "\\Seen" in flags,
                    "Tags": tags_of(flags),
                }
            elif event.kind == "delete":
                data = {"IDs": list(event.ids)}
            else:
                continue
            chunks.append(_sse(event.kind, data))
        if not chunks:
            return
        total, unread = self.catalog.counts()
        chunks.append(_sse("stats", {"Total": total, "Unread": unread}))
        self.send_all(b"".join(chunks))

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


class EventsRoute(Route):
    """
    C{GET /api/v1/events}: one event stream of L{EventStreams} per request.
    """

    answers_head = False  # it would never end

    def __init__(self, streams: EventStreams) -> None:
        super().__init__()
        self.streams = streams

    def render_GET(self, request: Request) -> int:
        self.streams.open(request)
        return NOT_DONE_YET
