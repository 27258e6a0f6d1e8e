"""
C{/api/v1/}: the API's route families, each registered here by one line.

L{ROUTES} names the children of C{/api/v1/}, L{MESSAGE_ROUTES} the paths
below one message (C{/api/v1/message/{ID}/NAME}).  Resources of other
parts of the lab (the faults' C{chaos} and C{faults}) are mounted beside
them with L{APIResource.mount}.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from twisted.web.resource import IResource

from twisted_netlab.mail.lab.web.api import LabAPI
from twisted_netlab.mail.lab.web.checks import CHECK_ROUTES
from twisted_netlab.mail.lab.web.events import EventsRoute
from twisted_netlab.mail.lab.web.info import InfoRoute, MailboxesRoute, WebUIRoute
from twisted_netlab.mail.lab.web.message import (
    HeadersRoute,
    MessageRouteFactory,
    MessagesByID,
    PartsRoute,
    RawRoute,
)
from twisted_netlab.mail.lab.web.messages import MessagesRoute, SearchRoute, WaitRoute
from twisted_netlab.mail.lab.web.route import Route
from twisted_netlab.mail.lab.web.sending import ReleaseRoute, SendRoute
from twisted_netlab.mail.lab.web.tags import TagsRoute

#: C{/api/v1/message/{ID}/NAME}: each made from the API and the message's ID.
MESSAGE_ROUTES: Mapping[str, MessageRouteFactory] = {
    "headers": HeadersRoute,
    "raw": RawRoute,
    "part": PartsRoute,
    "release": ReleaseRoute,
    **CHECK_ROUTES,
}

#: C{/api/v1/NAME}: each made from the API.
ROUTES: Mapping[str, Callable[[LabAPI], IResource]] = {
    "messages": MessagesRoute,
    "search": SearchRoute,
    "wait": WaitRoute,
    "events": lambda api: EventsRoute(api.events),
    "info": InfoRoute,
    "mailboxes": MailboxesRoute,
    "message": lambda api: MessagesByID(api, MESSAGE_ROUTES),
    "tags": TagsRoute,
    "send": SendRoute,
    "webui": WebUIRoute,
}


class APIResource(Route):
    """
    C{/api/v1/}: a child for each of L{ROUTES}, and those mounted.
    """

    def __init__(self, api: LabAPI) -> None:
        super().__init__()
        self.api = api
        for name, make in ROUTES.items():
            self.putChild(name.encode(), make(api))

    def mount(self, name: str, resource: IResource) -> None:
        """
        Serve C{resource} (another part of the lab's) as C{/api/v1/NAME}.
        """
        self.putChild(name.encode(), resource)
