"""
Mail going in and out through the API, as Mailpit's:

    POST /api/v1/send                    Mailpit's SendRequest (L{send}):
                                         stored as if received; {"ID": ...}
    POST /api/v1/message/{ID}/release    {"To": [...]}: the stored message,
                                         unchanged, through the relay

C{/api/v1/send} answers a bad request with 400 and C{{"Error": ...}}, as
Mailpit does; the message is stored by the lab (L{LabAPI.accept_sent}),
with an envelope that says it came from the API, for the recipients' lab
mailboxes (every one with the catch-all).  A release without C{--relay}
is a 400 that says so (L{NO_RELAY}); one the relay refuses, or to a
recipient C{--relay-allow} does not admit, a 400 with the reason; nothing
is sent before every recipient is checked.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.server import Request

from twisted_netlab.errors import NetlabError
from twisted_netlab.mail.lab.relay import NO_RELAY
from twisted_netlab.mail.lab.web.api import LabAPI
from twisted_netlab.mail.lab.web.message import MessageRoute
from twisted_netlab.mail.lab.web.route import (
    BadRequest,
    NotFound,
    Route,
    json_body,
    send_json,
    send_text,
)
from twisted_netlab.mail.lab.web.send import SendRequestInvalid, message_from_send_json
from twisted_netlab.mail.outgoing import SendResult


class SendRoute(Route):
    """
    C{POST /api/v1/send}: a message made of Mailpit's SendRequest, stored.
    """

    def __init__(self, api: LabAPI) -> None:
        super().__init__()
        self.api = api

    def render_POST(self, request: Request) -> bytes | Deferred[Any]:
        accept = self.api.accept_sent
        if accept is None:
            raise NotFound("this lab does not take mail over HTTP")
        assert request.content is not None
        try:
            composed = message_from_send_json(request.content.read())
        except SendRequestInvalid as e:
            return send_json(request, {"Error": str(e)}, http.BAD_REQUEST)

        def refused(failure: Failure) -> bytes:
            failure.trap(NetlabError)
            return send_json(
                request, {"Error": failure.getErrorMessage()}, http.BAD_REQUEST
            )

        stored = accept(composed, request)
        return stored.addCallbacks(lambda message_id: {"ID": message_id}, refused)


class ReleaseRoute(MessageRoute):
    """
    C{POST /api/v1/message/{ID}/release}: send the stored message,
    unchanged, to C{To} through the lab's relay.
    """

    def render_POST(self, request: Request) -> Deferred[bytes]:
        relay = self.api.relay
        if relay is None:
            raise BadRequest(NO_RELAY)
        raw = self.entry().raw()
        body = json_body(request)
        if "To" not in body:
            raise BadRequest("To is required: the addresses to release the message to")

        def sent(result: SendResult) -> bytes:
            if not result.all_accepted:
                refused = "; ".join(
                    f"{r.address}: {r.code} {r.text}" for r in result.refused
                )
                return send_text(
                    request,
                    f"the relay refused some recipients: {refused}\n",
                    http.BAD_REQUEST,
                )
            return send_text(request, "ok")

        def failed(failure: Failure) -> bytes:
            failure.trap(NetlabError)
            return send_text(
                request, f"{failure.getErrorMessage()}\n", http.BAD_REQUEST
            )

        released: Deferred[SendResult] = relay.release(raw, body["To"])
        return released.addCallbacks(sent, failed)
