"""
Tags, in Mailpit's shape:

    GET    /api/v1/tags          every tag in use, sorted (a JSON array)
    PUT    /api/v1/tags          {"IDs": [...], "Tags": [...]}: exactly these
                                 tags on these messages (no Tags: none)
    PUT    /api/v1/tags/{Tag}    {"Name": "new"}: rename the tag
    DELETE /api/v1/tags/{Tag}    take the tag off every message

Tags are IMAP keywords in the store (L{twisted_netlab.mail.lab.store.tags}):
what is changed here, IMAP sees, and the other way round.  The changes
answer C{ok}; a refused one (no such tag, a name taken, a folder whose 26
keyword letters are all in use) is a 400 with its reason; an unknown
message ID is a 404, as for C{PUT /api/v1/messages}.
"""

from __future__ import annotations

from typing import Any

from twisted.web.resource import IResource
from twisted.web.server import Request

from twisted_netlab.mail.lab.store.errors import MailStoreError
from twisted_netlab.mail.lab.store.tags import (
    TagError,
    delete_tag,
    rename_tag,
    set_tags,
    tag_counts,
)
from twisted_netlab.mail.lab.web.api import LabAPI
from twisted_netlab.mail.lab.web.route import (
    BadRequest,
    Route,
    ids,
    json_body,
    segment,
    send_json,
    send_text,
)


def _names(body: dict[str, Any], field: str) -> list[str]:
    value = body.get(field)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise BadRequest(f"{field} must be an array of tag names")
    return value


class TagsRoute(Route):
    """
    C{/api/v1/tags}: every tag, or set the tags of messages; a L{TagRoute}
    for each name below it.
    """

    def __init__(self, api: LabAPI) -> None:
        super().__init__()
        self.api = api

    def getChild(self, path: bytes, request: Request) -> IResource:
        return TagRoute(self.api, segment(path))

    def render_GET(self, request: Request) -> bytes:
        return send_json(request, sorted(tag_counts(self.api.catalog)))

    def render_PUT(self, request: Request) -> bytes:
        body = json_body(request)
        names = _names(body, "Tags")
        entries = [self.api.entry(i) for i in ids(body) or []]
        try:
            set_tags(self.api.catalog, entries, names)
        except MailStoreError as e:
            raise BadRequest(str(e)) from None
        return send_text(request, "ok")


class TagRoute(Route):
    """
    C{/api/v1/tags/{Tag}}: rename the tag, or delete it.
    """

    def __init__(self, api: LabAPI, tag: str) -> None:
        super().__init__()
        self.api = api
        self.tag = tag

    def render_PUT(self, request: Request) -> bytes:
        body = json_body(request)
        new = body.get("Name")
        if not isinstance(new, str):
            raise BadRequest("Name must be the tag's new name")
        try:
            rename_tag(self.api.catalog.store, self.tag, new)
        except (TagError, MailStoreError) as e:
            raise BadRequest(str(e)) from None
        self.api.catalog.sync(rescan=False)
        return send_text(request, "ok")

    def render_DELETE(self, request: Request) -> bytes:
        try:
            delete_tag(self.api.catalog.store, self.tag)
        except MailStoreError as e:
            raise BadRequest(str(e)) from None
        self.api.catalog.sync(rescan=False)
        return send_text(request, "ok")
