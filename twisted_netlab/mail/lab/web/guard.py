"""
The lab's web site answers only for its own names, and changes nothing for
another site: L{HostGuard} stands in front of everything else.

Every request must name this server in its C{Host} (against DNS
rebinding: 421 otherwise), and a request that changes something (POST,
PUT, DELETE, PATCH) is refused from another C{Origin}, or when
C{Sec-Fetch-Site} says it comes from another site (against CSRF: 403).
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable
from typing import Any

from twisted.web import http
from twisted.web.resource import Resource
from twisted.web.server import Request

from twisted_netlab.mail.lab.web.policy import security_headers
from twisted_netlab.mail.lab.web.route import send_text

_STATE_CHANGING = {b"POST", b"PUT", b"DELETE", b"PATCH"}


class HostGuard(Resource):
    """
    Refuse requests whose C{Host} is not one of C{hosts} (421), and
    state-changing requests whose C{Origin} (or C{Sec-Fetch-Site}) shows
    they come from another site (403), before anything else sees them.
    """

    def __init__(self, inner: Any, hosts: Iterable[str]) -> None:
        super().__init__()
        self.inner = inner
        self.hosts = {h.lower().strip("[]") for h in hosts}

    def _refusal(self, request: Request) -> tuple[int, str] | None:
        raw_host = request.getHeader(b"host")
        if raw_host is None:
            return http.BAD_REQUEST, "a Host header is required"
        host = _host_name(raw_host.decode("latin-1"))
        if host not in self.hosts:
            shown = raw_host.decode("latin-1")
            return 421, f"this server does not answer for Host {shown!r}"
        if request.method in _STATE_CHANGING:
            origin = request.getHeader(b"origin")
            if origin is not None:
                parsed = urllib.parse.urlsplit(origin.decode("latin-1"))
                if (parsed.hostname or "").lower() not in self.hosts or (
                    _host_port(raw_host.decode("latin-1")) != _origin_port(parsed)
                ):
                    return (
                        http.FORBIDDEN,
                        "cross-origin requests may not change anything",
                    )
            site = request.getHeader(b"sec-fetch-site")
            if site is not None and site.lower() not in (b"same-origin", b"none"):
                return http.FORBIDDEN, "cross-site requests may not change anything"
        return None

    def getChildWithDefault(self, name: bytes, request: Request) -> Any:
        refusal = self._refusal(request)
        if refusal is not None:
            return _Refusal(*refusal)
        return self.inner.getChildWithDefault(name, request)

    def render(self, request: Request) -> bytes:
        refusal = self._refusal(request)
        if refusal is not None:
            return _Refusal(*refusal).render(request)
        return self.inner.render(request)


def _host_name(value: str) -> str:
    value = value.strip().lower()
    if value.startswith("["):
        return value[1 : value.find("]")] if "]" in value else value
    return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


def _host_port(value: str) -> int | None:
    value = value.strip()
    tail = value.rsplit("]", 1)[-1] if value.startswith("[") else value
    if ":" in tail and tail.count(":") == 1:
        try:
            return int(tail.rsplit(":", 1)[1])
        except ValueError:
            return None
    return None


def _origin_port(parsed: urllib.parse.SplitResult) -> int | None:
    try:
        return parsed.port
    except ValueError:
        return -1


class _Refusal(Resource):
    isLeaf = True

    def __init__(self, code: int, reason: str) -> None:
        super().__init__()
        self.code = code
        self.reason = reason

    def render(self, request: Request) -> bytes:
        security_headers(request)
        return send_text(request, self.reason + "\n", self.code)
