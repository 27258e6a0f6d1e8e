"""
The message checks (L{twisted_netlab.mail.lab.checks}) as routes below one
message, Mailpit's paths for its three:

    GET /api/v1/message/{ID}/html-check               HTMLCheckResponse
    GET /api/v1/message/{ID}/link-check?follow=BOOL    LinkCheckResponse
    GET /api/v1/message/{ID}/sa-check                 SpamAssassinResponse
    GET /api/v1/message/{ID}/auth-check               DKIM, SPF, DMARC, ARC
    GET /api/v1/message/{ID}/lint                     the lint's findings

Each answers with the check's JSON, from the lab's L{CheckRunner} (which
caches it).  A missing message is a 404; a check that cannot run (a
L{CheckError}, a fault of the lab's) is a 400 with its one line, as
Mailpit answers its checks' errors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.server import Request

from twisted_netlab.mail.lab.checks.context import CheckError
from twisted_netlab.mail.lab.checks.runner import ROUTES, CheckRunner
from twisted_netlab.mail.lab.store.maildir import MessageGone
from twisted_netlab.mail.lab.web.message import MessageRoute, MessageRouteFactory
from twisted_netlab.mail.lab.web.route import BadRequest, NotFound, parameter


class CheckRoute(MessageRoute):
    """
    C{/api/v1/message/{ID}/NAME}: the answer of the check L{check}.
    """

    #: The check's name in L{CheckRunner} (C{"lint"}...).
    check: ClassVar[str] = ""

    def options(self, request: Request) -> dict[str, Any]:
        """The check's options, from the query string."""
        return {}

    def runner(self) -> CheckRunner:
        runner: CheckRunner | None = getattr(self.api, "checks", None)
        if runner is None:
            # A LabAPI made without the lab (tests): the default settings.
            runner = CheckRunner(self.api.reactor)
            self.api.checks = runner
        return runner

    def render_GET(self, request: Request) -> Deferred[dict[str, Any]]:
        options = self.options(request)
        entry = self.entry()

        def failed(failure: Failure) -> Failure:
            if failure.check(MessageGone):
                raise NotFound(f"no message {self.message_id}")
            if failure.check(CheckError):
                raise BadRequest(str(failure.value))
            return failure

        return self.runner().run(entry, self.check, options).addErrback(failed)


class HTMLCheckRoute(CheckRoute):
    check = "html"


class LinkCheckRoute(CheckRoute):
    check = "links"

    def options(self, request: Request) -> dict[str, Any]:
        # Mailpit: follow=true or follow=1 follows; anything else does not.
        follow = (parameter(request, "follow") or "").strip().lower()
        return {"follow": follow in ("true", "1")}


class SpamCheckRoute(CheckRoute):
    check = "spam"


class AuthCheckRoute(CheckRoute):
    check = "auth"


class LintRoute(CheckRoute):
    check = "lint"


#: The checks' routes below a message, by path (for L{v1.MESSAGE_ROUTES}).
CHECK_ROUTES: Mapping[str, MessageRouteFactory] = {
    ROUTES[route.check]: route
    for route in (
        HTMLCheckRoute,
        LinkCheckRoute,
        SpamCheckRoute,
        AuthCheckRoute,
        LintRoute,
    )
}
