"""
What the lab is and holds, and whether it is up:

    GET /api/v1/info         Mailpit's AppInformation (L{LabAPI.info})
    GET /api/v1/mailboxes    every mailbox, with its total and unread counts
    /livez, /readyz          "ok" (any method), for probes
"""

from __future__ import annotations

from typing import Any

from twisted.web.server import Request

from twisted_netlab.mail.lab.web.api import LabAPI
from twisted_netlab.mail.lab.web.route import Route, send_json, send_text


class InfoRoute(Route):
    """
    C{GET /api/v1/info}.
    """

    def __init__(self, api: LabAPI) -> None:
        super().__init__()
        self.api = api

    def render_GET(self, request: Request) -> bytes:
        return send_json(request, self.api.info())


class MailboxesRoute(Route):
    """
    C{GET /api/v1/mailboxes}: C{{"mailboxes": [{"Address", "Total",
    "Unread"}, ...]}}.
    """

    def __init__(self, api: LabAPI) -> None:
        super().__init__()
        self.api = api

    def render_GET(self, request: Request) -> bytes:
        catalog = self.api.catalog
        entries = catalog.entries()
        result = []
        for address in catalog.mailboxes():
            mine = [e for e in entries if e.address == address]
            result.append(
                {
                    "Address": address,
                    "Total": len(mine),
                    "Unread": sum(1 for e in mine if not e.read),
                }
            )
        return send_json(request, {"mailboxes": result})


class HealthRoute(Route):
    """
    C{/livez} and C{/readyz}: "ok" to any method while the lab serves.
    """

    def answer(self, request: Request) -> Any:
        return send_text(request, "ok\n")
