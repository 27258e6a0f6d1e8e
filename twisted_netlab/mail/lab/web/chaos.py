"""
The faults over HTTP, two ways, both over the lab's one L{Faults} registry:

C{/api/v1/chaos} is Mailpit's "chaos" (C{GET} and C{PUT}, its C{Triggers}
shape), so that tooling written for Mailpit works unchanged::

    {"Sender":         {"ErrorCode": 451, "Probability": 5},   -> smtp.mail
     "Recipient":      {"ErrorCode": 451, "Probability": 0},   -> smtp.rcpt
     "Authentication": {"ErrorCode": 535, "Probability": 0}}   -> smtp.auth

Probability is a percentage; a trigger left out of a C{PUT} goes back to
0 (off), as in Mailpit.

C{/api/v1/faults} is the whole model (see L{twisted_netlab.mail.lab.faults}):

    GET    /api/v1/faults        {"Faults": [{"ID", "Spec", "Stage", "Action",
                                   "Hits", "Remaining"}, ...], "Hits": {stage: n}}
    POST   /api/v1/faults        {"Spec": "rcpt:reply=451:times=2"} -> 201, the fault
    GET    /api/v1/faults/ID     one fault, with its hits
    DELETE /api/v1/faults/ID     remove it
    DELETE /api/v1/faults        remove them all (chaos triggers included)

Bad input is a 400 with a one-line reason; an unknown ID a 404.
"""

from __future__ import annotations

import json
from typing import Any

from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import Request

from twisted_netlab.mail.lab.faults import (
    Fault,
    FaultHandle,
    Faults,
    FaultSpecError,
    Reply,
)

#: Mailpit's triggers and the stages they fault.
TRIGGERS = {"Sender": "mail", "Recipient": "rcpt", "Authentication": "auth"}
#: What a trigger that is off shows (Mailpit's defaults).
DEFAULT_CODE = 451
_MAX_BODY = 64 * 1024


class BadInput(Exception):
    """
    A request the resources refuse with a 400 and this one-line reason.
    """


def _answer(request: Request, value: Any, code: int = http.OK) -> bytes:
    request.setResponseCode(code)
    if isinstance(value, str):
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        return (value + "\n").encode("utf-8")
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    return json.dumps(value).encode("utf-8")


def _body(request: Request) -> Any:
    assert request.content is not None
    raw = request.content.read(_MAX_BODY + 1)
    if len(raw) > _MAX_BODY:
        raise BadInput("request body too large")
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise BadInput("the request body is not JSON") from None


class _LeafResource(Resource):
    isLeaf = True

    def render(self, request: Request) -> bytes:
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"cache-control", b"no-store")
        try:
            return super().render(request)
        except BadInput as e:
            return _answer(request, str(e), http.BAD_REQUEST)


class ChaosResource(_LeafResource):
    """
    Mailpit's C{/api/v1/chaos}: three SMTP triggers, each a fault in
    C{faults} while its probability is above 0.
    """

    def __init__(self, faults: Faults) -> None:
        super().__init__()
        self.faults = faults
        self._handles: dict[str, FaultHandle] = {}

    def triggers(self) -> dict[str, dict[str, int]]:
        """
        The triggers as Mailpit shows them.
        """
        live = set(map(id, self.faults))
        shown = {}
        for name in TRIGGERS:
            handle = self._handles.get(name)
            if handle is None or id(handle) not in live:
                shown[name] = {"ErrorCode": DEFAULT_CODE, "Probability": 0}
                continue
            action = handle.fault.action
            assert isinstance(action, Reply)
            shown[name] = {
                "ErrorCode": int(action.code),
                "Probability": round(handle.fault.probability * 100),
            }
        return shown

    def render_GET(self, request: Request) -> bytes:
        return _answer(request, self.triggers())

    def render_PUT(self, request: Request) -> bytes:
        body = _body(request)
        if not isinstance(body, dict):
            raise BadInput("the triggers must be a JSON object")
        unknown = set(body) - set(TRIGGERS)
        if unknown:
            raise BadInput(
                f"unknown trigger {sorted(unknown)[0]!r}: Sender, Recipient or "
                "Authentication"
            )
        faults: dict[str, Fault | None] = {}
        for name, stage in TRIGGERS.items():
            faults[name] = self._fault(name, stage, body.get(name))
        for name, fault in faults.items():
            old = self._handles.pop(name, None)
            if old is not None:
                old.remove()
            if fault is not None:
                self._handles[name] = self.faults.add(fault)
        return _answer(request, self.triggers())

    @staticmethod
    def _fault(name: str, stage: str, trigger: Any) -> Fault | None:
        if trigger is None:
            return None
        if not isinstance(trigger, dict):
            raise BadInput(f"{name} must be an object with ErrorCode and Probability")
        code = trigger.get("ErrorCode", DEFAULT_CODE)
        probability = trigger.get("Probability", 0)
        for field, value in (("ErrorCode", code), ("Probability", probability)):
            if not isinstance(value, int) or isinstance(value, bool):
                raise BadInput(f"{name}.{field} must be a whole number")
        if not 400 <= code <= 599:
            raise BadInput(f"{name}.ErrorCode must be from 400 to 599, not {code}")
        if not 0 <= probability <= 100:
            raise BadInput(
                f"{name}.Probability must be from 0 to 100, not {probability}"
            )
        if probability == 0:
            return None
        try:
            return Fault(
                "smtp",
                stage,
                Reply(code, f"Chaos trigger {name}"),
                probability=probability / 100,
            )
        except FaultSpecError as e:
            raise BadInput(f"{name}: {e}") from None


class FaultsResource(_LeafResource):
    """
    C{/api/v1/faults}: list, add and remove faults, with their hits.
    """

    def __init__(self, faults: Faults) -> None:
        super().__init__()
        self.faults = faults

    def _one(self, request: Request) -> FaultHandle | None:
        """
        The fault the path names (C{/api/v1/faults/ID}); L{None} for the
        collection itself.
        """
        path = [p for p in request.postpath or [] if p]
        if not path:
            return None
        if len(path) > 1 or not path[0].isdigit():
            raise _NotFound
        handle = self.faults.get(int(path[0]))
        if handle is None:
            raise _NotFound
        return handle

    def render(self, request: Request) -> bytes:
        try:
            return super().render(request)
        except _NotFound:
            return _answer(request, "no such fault", http.NOT_FOUND)

    def render_GET(self, request: Request) -> bytes:
        handle = self._one(request)
        if handle is not None:
            return _answer(request, handle.to_json())
        return _answer(
            request,
            {
                "Faults": [h.to_json() for h in self.faults],
                "Hits": dict(self.faults.hits),
            },
        )

    def render_POST(self, request: Request) -> bytes:
        if self._one(request) is not None:
            raise BadInput("POST to /api/v1/faults, not to one fault")
        body = _body(request)
        spec = body.get("Spec") if isinstance(body, dict) else None
        if not isinstance(spec, str):
            raise BadInput('give the fault as {"Spec": "STAGE:ACTION[:SELECTION]..."}')
        try:
            handle = self.faults.add(spec)
        except FaultSpecError as e:
            raise BadInput(str(e)) from None
        return _answer(request, handle.to_json(), http.CREATED)

    def render_DELETE(self, request: Request) -> bytes:
        handle = self._one(request)
        if handle is None:
            self.faults.clear()
        else:
            handle.remove()
        return _answer(request, "ok")


class _NotFound(Exception):
    pass


def mount_faults(api_resource: Any, faults: Faults) -> None:
    """
    Mount C{/api/v1/chaos} and C{/api/v1/faults} for C{faults} into the
    lab's API root.
    """
    api_resource.mount("chaos", ChaosResource(faults))
    api_resource.mount("faults", FaultsResource(faults))
