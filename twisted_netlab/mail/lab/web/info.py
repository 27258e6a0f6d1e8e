"""
What the lab is and holds, and whether it is up:

    GET /api/v1/info         Mailpit's AppInformation (L{LabAPI.info}): the
                             counts, the tags, the runtime counters
    GET /api/v1/webui        Mailpit's WebUIConfiguration: the relay, the
                             label, what the inbox page may offer
    GET /api/v1/mailboxes    every mailbox, with its total and unread counts
    /livez, /readyz          "ok" (any method), for probes
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.web.server import Request

from twisted_netlab.mail.lab.relay import webui_no_relay
from twisted_netlab.mail.lab.web.api import LabAPI
from twisted_netlab.mail.lab.web.route import Route, send_json, send_text


class InfoRoute(Route):
    """
    C{GET /api/v1/info}.
    """

    def __init__(self, api: LabAPI) -> None:
        super().__init__()
        self.api = api

    def render_GET(self, request: Request) -> Deferred[dict[str, Any]]:
        return self.api.measured().addCallback(self.api.info)


class WebUIRoute(Route):
    """
    C{GET /api/v1/webui}: Mailpit's C{WebUIConfiguration}.  The lab has no
    SpamAssassin of Mailpit's kind here, ignores no duplicates and always
    offers "delete all"; chaos is always on (C{/api/v1/chaos}).
    """

    def __init__(self, api: LabAPI) -> None:
        super().__init__()
        self.api = api

    def render_GET(self, request: Request) -> bytes:
        relay = self.api.relay
        return send_json(
            request,
            {
                "Label": self.api.label,
                "MessageRelay": (
                    relay.config.webui_message_relay()
                    if relay is not None
                    else webui_no_relay()
                ),
                "SpamAssassin": False,
                "ChaosEnabled": True,
                "DuplicatesIgnored": False,
                "HideDeleteAllButton": False,
            },
        )


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
