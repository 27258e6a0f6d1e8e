"""
One message: C{/api/v1/message/{ID}} (or C{latest}) and the paths below it.

    GET /api/v1/message/{ID}                  the message (Mailpit's Message);
                                              opening it marks it read
    GET /api/v1/message/{ID}/headers          every header, by canonical name
    GET /api/v1/message/{ID}/raw              the message as stored
    GET /api/v1/message/{ID}/part/{PartID}    a part, always as a download
    GET /api/v1/message/{ID}/part/{PartID}/thumb
                                              Mailpit's 180x120 JPEG of an
                                              image part (404 without Pillow)

L{MessageResource} finds the paths below a message in a table of
L{MessageRoute} factories (the table is L{v1.MESSAGE_ROUTES
<twisted_netlab.mail.lab.web.v1.MESSAGE_ROUTES>}); a route about one
message subclasses L{MessageRoute} and is made from the L{LabAPI} and the
message's ID.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.web.resource import IResource
from twisted.web.server import Request

from twisted_netlab.mail.lab.store.catalog import Entry
from twisted_netlab.mail.lab.store.parsed import ParsedMessage
from twisted_netlab.mail.lab.web.api import LabAPI
from twisted_netlab.mail.lab.web.route import (
    NotFound,
    Route,
    content_disposition,
    segment,
    send_json,
    send_text,
)
from twisted_netlab.mail.lab.web.shapes import canonical_header_name, detail
from twisted_netlab.mail.lab.web.thumbnail import (
    content_disposition as thumbnail_disposition,
)
from twisted_netlab.mail.lab.web.thumbnail import make_thumbnail, thumbnail_unavailable

#: Makes the route of one path below a message, from the API and the ID.
MessageRouteFactory = Callable[[LabAPI, str], IResource]


class MessageRoute(Route):
    """
    A route about one message; it is looked up when the route answers (a
    message that is gone is a 404 then).
    """

    def __init__(self, api: LabAPI, message_id: str) -> None:
        super().__init__()
        self.api = api
        self.message_id = message_id

    def getChild(self, path: bytes, request: Request) -> IResource:
        return NoSuchPathBelowMessage()

    def entry(self) -> Entry:
        return self.api.entry(self.message_id)

    def parsed(self) -> ParsedMessage:
        return self.api.parsed(self.entry())


class NoSuchPathBelowMessage(Route):
    """
    A path below a message that the API does not have: 404 to GET (and
    HEAD), and 405 to the methods no route below a message takes, as for
    the paths that exist.
    """

    def render_GET(self, request: Request) -> bytes:
        raise NotFound("no such path")


class MessageResource(MessageRoute):
    """
    C{/api/v1/message/{ID}}: the message, and the paths below it in
    C{routes}.
    """

    def __init__(
        self, api: LabAPI, message_id: str, routes: Mapping[str, MessageRouteFactory]
    ) -> None:
        super().__init__(api, message_id)
        self.routes = routes

    def getChild(self, path: bytes, request: Request) -> IResource:
        make = self.routes.get(segment(path))
        if make is None:
            return NoSuchPathBelowMessage()
        return make(self.api, self.message_id)

    def render_GET(self, request: Request) -> bytes:
        entry = self.entry()
        parsed = self.api.parsed(entry)
        if not entry.read:
            # Mailpit's rule: opening a message marks it read.
            self.api.catalog.set_read([entry], True)
        return send_json(request, detail(entry, parsed))


class MessagesByID(Route):
    """
    C{/api/v1/message/}: a L{MessageResource} for each ID.
    """

    def __init__(self, api: LabAPI, routes: Mapping[str, MessageRouteFactory]) -> None:
        super().__init__()
        self.api = api
        self.routes = routes

    def getChild(self, path: bytes, request: Request) -> IResource:
        return MessageResource(self.api, segment(path), self.routes)


class HeadersRoute(MessageRoute):
    """
    C{/api/v1/message/{ID}/headers}: every header's values, by name as
    Mailpit spells it.
    """

    def render_GET(self, request: Request) -> bytes:
        grouped: dict[str, list[str]] = {}
        for name, value in self.parsed().headers:
            grouped.setdefault(canonical_header_name(name), []).append(value)
        return send_json(request, dict(sorted(grouped.items())))


class RawRoute(MessageRoute):
    """
    C{/api/v1/message/{ID}/raw}: the message's bytes as stored.
    """

    def render_GET(self, request: Request) -> bytes:
        return send_text(request, self.parsed().raw)


class PartsRoute(MessageRoute):
    """
    C{/api/v1/message/{ID}/part/}: a L{PartRoute} for each part ID.
    """

    def getChild(self, path: bytes, request: Request) -> IResource:
        return PartRoute(self.api, self.message_id, segment(path))

    def render_GET(self, request: Request) -> bytes:
        raise NotFound("no such path")


class _OnePart(MessageRoute):
    """
    A route about one part of a message.
    """

    def __init__(self, api: LabAPI, message_id: str, part_id: str) -> None:
        super().__init__(api, message_id)
        self.part_id = part_id

    def part(self) -> Any:
        part = self.parsed().part(self.part_id)
        if part is None:
            raise NotFound(f"message {self.message_id} has no part {self.part_id}")
        return part


class PartRoute(_OnePart):
    """
    C{/api/v1/message/{ID}/part/{PartID}}: the part's decoded content, as
    an attachment (never shown inline by the browser).
    """

    def getChild(self, path: bytes, request: Request) -> IResource:
        if segment(path) == "thumb":
            return ThumbRoute(self.api, self.message_id, self.part_id)
        return NoSuchPathBelowMessage()

    def render_GET(self, request: Request) -> bytes:
        part = self.part()
        request.setHeader(b"content-type", part.content_type.encode())
        request.setHeader(
            b"content-disposition",
            content_disposition("attachment", part.file_name or f"part-{part.part_id}"),
        )
        return bytes(part.content)


class ThumbRoute(_OnePart):
    """
    C{/api/v1/message/{ID}/part/{PartID}/thumb}: a 180x120 JPEG of the
    part as Mailpit makes it (L{thumbnail}); a part that is no image gets
    a blank one.  Without Pillow, 404 with the reason.
    """

    def render_GET(self, request: Request) -> bytes | Deferred[bytes]:
        reason = thumbnail_unavailable()
        if reason is not None:
            raise NotFound(reason)
        part = self.part()
        request.setHeader(b"content-type", b"image/jpeg")
        name = part.file_name or part.content_id or part.part_id
        request.setHeader(b"content-disposition", thumbnail_disposition(name).encode())
        reactor = self.api.reactor
        if not IReactorThreads.providedBy(reactor):
            return make_thumbnail(bytes(part.content), part.content_type)
        # Decoding a large image takes a while: not in the reactor thread.
        return deferToThreadPool(
            reactor,
            reactor.getThreadPool(),
            make_thumbnail,
            bytes(part.content),
            part.content_type,
        )
