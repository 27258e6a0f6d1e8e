"""
A message's bodies as pages, for the inbox page's frames:

    GET /view/{ID}.html[?remote=1]   the HTML part, under L{VIEW_CSP} (no
                                     script, nothing remote; with remote=1,
                                     remote images, styles and fonts)
    GET /view/{ID}.txt               the text part

In the HTML, C{cid:} references to inline parts become C{data:} URLs for
images and part URLs for the rest.
"""

from __future__ import annotations

import base64
import re
import urllib.parse

from twisted.web.resource import IResource
from twisted.web.server import Request

from twisted_netlab.mail.lab.web.api import LabAPI
from twisted_netlab.mail.lab.web.policy import VIEW_CSP, VIEW_REMOTE_CSP
from twisted_netlab.mail.lab.web.route import (
    NotFound,
    Route,
    parameter,
    segment,
    send_text,
)

_CID = re.compile(r"""(["'(])cid:([^"')\s]+)""", re.I)


class ViewsRoute(Route):
    """
    C{/view/}: a L{ViewRoute} for each name.
    """

    def __init__(self, api: LabAPI) -> None:
        super().__init__()
        self.api = api

    def getChild(self, path: bytes, request: Request) -> IResource:
        return ViewRoute(self.api, segment(path))


class ViewRoute(Route):
    """
    C{/view/{ID}.html} or C{/view/{ID}.txt}.
    """

    def __init__(self, api: LabAPI, name: str) -> None:
        super().__init__()
        self.api = api
        self.name = name

    def render_GET(self, request: Request) -> bytes:
        name = self.name
        if name.endswith(".html"):
            html = self.html(name[: -len(".html")])
            remote = parameter(request, "remote") == "1"
            csp = VIEW_REMOTE_CSP if remote else VIEW_CSP
            request.setHeader(b"content-security-policy", csp.encode())
            request.setHeader(b"content-type", b"text/html; charset=utf-8")
            return html.encode("utf-8")
        if name.endswith(".txt"):
            return send_text(request, self.text(name[: -len(".txt")]))
        raise NotFound("views are ID.html or ID.txt")

    def html(self, message_id: str) -> str:
        entry = self.api.entry(message_id)
        parsed = self.api.parsed(entry)
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

    def text(self, message_id: str) -> str:
        parsed = self.api.parsed(self.api.entry(message_id))
        if not parsed.text:
            raise NotFound(f"message {message_id} has no text part")
        return parsed.text
