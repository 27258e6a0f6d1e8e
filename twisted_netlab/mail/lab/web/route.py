"""
What every route of the lab's HTTP API is made of: L{Route}, a twisted.web
resource that answers by method and turns the API's errors into one-line
answers; the request's parameters and body; and the answers themselves.

A route family subclasses L{Route}: C{render_GET}, C{render_PUT}... return
the answer's bytes, C{NOT_DONE_YET}, or a Deferred of a JSON value or of
the answer's bytes (sent once it fires; a L{WaitTimeout} is a 408, a
L{BadRequest} or L{NotFound} a 400 or 404).  They raise L{BadRequest} (400)
or L{NotFound} (404); a method without a C{render_} method is a 405, and a
path a route has no child for is a 404.  Paths are matched segment by
segment, as twisted.web does, with empty segments (C{a//b}, a trailing
C{/}) skipped.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any, ClassVar

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.resource import IResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from twisted_netlab.mail.lab.store.catalog import WaitTimeout
from twisted_netlab.mail.lab.web.policy import security_headers

log = Logger()


class BadRequest(Exception):
    """
    A request with a bad parameter: 400 with C{str()} as its one line.
    """


class NotFound(Exception):
    """
    No such message, part or path: 404.
    """


class MethodNotAllowed(Exception):
    """
    The path exists, but not for this method: 405.
    """


def segment(name: bytes) -> str:
    """
    A path segment as the routes read it: twisted.web has unquoted it once,
    and it is unquoted once more (as the API always has) and decoded.
    """
    return urllib.parse.unquote(name.decode("utf-8", "replace"))


class Route(Resource):
    """
    A path of the API: its children are the paths below it (L{putChild},
    or L{getChild} for names that are values, such as message IDs), and it
    answers the methods it has a C{render_} method for.  A route that has
    none is only a step on the way: asked itself, it is a 404.
    """

    #: Whether HEAD is answered as GET would be (not for answers that never
    #: end, nor where the API has never answered it).
    answers_head = True
    #: The methods it has a C{render_} method for (twisted.web's own
    #: C{render_HEAD} aside), found when the class is made.
    methods: ClassVar[frozenset[str]] = frozenset()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.methods = frozenset(
            name[len("render_") :]
            for name in dir(cls)
            if name.startswith("render_")
            and getattr(cls, name) is not getattr(Resource, name, None)
        )

    def getChildWithDefault(self, name: bytes, request: Request) -> IResource:
        if not name:
            return self
        child = self.children.get(segment(name).encode("utf-8"))
        if child is not None:
            return child
        return self.getChild(name, request)

    def getChild(self, path: bytes, request: Request) -> IResource:
        return NoSuchPath()

    def render(self, request: Request) -> bytes | int:
        security_headers(request)
        try:
            result = self.answer(request)
        except BadRequest as e:
            return send_text(request, f"{e}\n", http.BAD_REQUEST)
        except NotFound as e:
            return send_text(request, f"{e}\n", http.NOT_FOUND)
        except MethodNotAllowed:
            return send_text(request, "method not allowed\n", http.NOT_ALLOWED)
        if isinstance(result, Deferred):
            _finish_later(request, result)
            return NOT_DONE_YET
        return result

    def answer(self, request: Request) -> Any:
        """
        The answer of the C{render_} method for the request's method (HEAD
        goes to C{render_GET} where L{answers_head}).
        """
        methods = self.methods
        method = (request.method or b"").decode("ascii", "replace")
        if method == "HEAD" and self.answers_head and method not in methods:
            method = "GET"
        if method not in methods:
            if not methods:
                raise NotFound("no such path")
            raise MethodNotAllowed()
        return getattr(self, f"render_{method}")(request)


class NoSuchPath(Route):
    """
    A path the API does not have (404), whatever lies below it.
    """

    def answer(self, request: Request) -> Any:
        raise NotFound("no such path")


def _finish_later(request: Request, d: Deferred[Any]) -> None:
    """
    Answer C{request} with the JSON value C{d} fires with; cancel C{d} if
    the client goes first.
    """

    def done(value: Any) -> None:
        if not request.finished and not getattr(request, "_gone", False):
            request.write(
                value if isinstance(value, bytes) else send_json(request, value)
            )
            request.finish()

    def failed(failure: Failure) -> None:
        if failure.check(CancelledError):
            return
        if request.finished or getattr(request, "_gone", False):
            return
        if failure.check(WaitTimeout):
            body = send_text(request, f"{failure.value}\n", http.REQUEST_TIMEOUT)
        elif failure.check(BadRequest):
            body = send_text(request, f"{failure.value}\n", http.BAD_REQUEST)
        elif failure.check(NotFound):
            body = send_text(request, f"{failure.value}\n", http.NOT_FOUND)
        else:
            log.failure("an API request failed", failure)
            body = send_text(request, "internal error\n", http.INTERNAL_SERVER_ERROR)
        request.write(body)
        request.finish()

    def gone(_: object) -> None:
        request._gone = True  # type: ignore[attr-defined]
        d.cancel()

    request.notifyFinish().addErrback(gone)
    d.addCallbacks(done, failed)


# --- the request ----------------------------------------------------------------


def parameter(request: Request, name: str) -> str | None:
    """
    The query parameter C{name} (its first value), or L{None}.
    """
    values = (request.args or {}).get(name.encode())
    if not values:
        return None
    try:
        return str(values[0].decode("utf-8"))
    except UnicodeDecodeError:
        raise BadRequest(f"{name} is not UTF-8") from None


def int_parameter(request: Request, name: str, default: int, maximum: int) -> int:
    """
    The query parameter C{name} as a whole number from 0 to C{maximum}.
    """
    raw = parameter(request, name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name} must be a whole number, not {raw!r}") from None
    if value < 0 or value > maximum:
        raise BadRequest(f"{name} must be between 0 and {maximum}")
    return value


def json_body(request: Request) -> dict[str, Any]:
    """
    The request's JSON object; a form-encoded body (as some Mailpit clients
    send: C{ids=...&Read=True}) is read as the same fields.
    """
    assert request.content is not None
    data = request.content.read()
    if not data.strip():
        return {}
    kind = (request.getHeader(b"content-type") or b"").split(b";")[0].strip()
    if kind.lower() == b"application/x-www-form-urlencoded":
        return _form_body(data)
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise BadRequest("the request body is not JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def _form_body(data: bytes) -> dict[str, Any]:
    try:
        fields = urllib.parse.parse_qs(data.decode("utf-8"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise BadRequest("the request body is not a form") from None
    body: dict[str, Any] = {}
    for name, values in fields.items():
        key = {"ids": "IDs", "read": "Read", "search": "Search"}.get(name.lower(), name)
        if key == "IDs":
            body[key] = values
        elif key == "Read":
            if values[-1].lower() not in ("true", "false", "1", "0"):
                raise BadRequest("Read must be true or false")
            body[key] = values[-1].lower() in ("true", "1")
        else:
            body[key] = values[-1]
    return body


def ids(body: dict[str, Any]) -> list[str] | None:
    """
    The body's C{IDs} (an array of message IDs), or L{None} without one.
    """
    found = body.get("IDs")
    if found is None:
        return None
    if not isinstance(found, list) or not all(isinstance(i, str) for i in found):
        raise BadRequest("IDs must be an array of message IDs")
    return found


# --- the answer -----------------------------------------------------------------


def send_json(request: Request, value: Any, code: int = http.OK) -> bytes:
    """
    Answer with C{value} as JSON (UTF-8).
    """
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    return json.dumps(value, ensure_ascii=False).encode("utf-8")


def send_text(request: Request, text: str | bytes, code: int = http.OK) -> bytes:
    """
    Answer with C{text} as plain UTF-8 text.
    """
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return text if isinstance(text, bytes) else text.encode("utf-8")


def content_disposition(kind: str, file_name: str) -> bytes:
    """
    A C{Content-Disposition} of C{kind} (C{attachment}) for C{file_name},
    with an ASCII fallback and the UTF-8 name (RFC 6266).
    """
    fallback = re.sub(r"[^A-Za-z0-9._ -]", "_", file_name) or "part"
    quoted = urllib.parse.quote(file_name, safe="")
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{quoted}".encode()
