"""
The lab's web site: L{make_site} puts the inbox page's files, the API and
the views behind the L{HostGuard}, and behind HTTP Basic login as a lab
user where the listener is off loopback.

The site's own paths are L{SITE_ROUTES} (and C{/api/}, whose C{v1/} is the
L{APIResource}); every other path is a file of the inbox page (package
data C{web/static/}), served under L{PAGE_CSP}.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.portal import IRealm, Portal
from twisted.web import static
from twisted.web.guard import BasicCredentialFactory, HTTPAuthSessionWrapper
from twisted.web.resource import IResource, Resource
from twisted.web.server import Request, Site
from zope.interface import implementer

from twisted_netlab.mail.lab.web.api import LabAPI
from twisted_netlab.mail.lab.web.guard import HostGuard
from twisted_netlab.mail.lab.web.info import HealthRoute
from twisted_netlab.mail.lab.web.metrics import MetricsRoute
from twisted_netlab.mail.lab.web.policy import PAGE_CSP, security_headers
from twisted_netlab.mail.lab.web.route import Route
from twisted_netlab.mail.lab.web.v1 import APIResource
from twisted_netlab.mail.lab.web.views import ViewsRoute

#: C{/NAME}: the site's paths besides C{/api/} and the inbox page's files,
#: each made from the API.
SITE_ROUTES: Mapping[str, Callable[[LabAPI], IResource]] = {
    "view": ViewsRoute,
    "livez": lambda api: HealthRoute(),
    "readyz": lambda api: HealthRoute(),
    "metrics": MetricsRoute,
}


class _Placeholder(Resource):
    """
    The site root when the inbox page is not installed.
    """

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/html; charset=utf-8")
        return (
            b"<!doctype html><title>netlab mail lab</title>"
            b"<p>The mail lab's API is at <a href='api/v1/messages'>/api/v1/</a>.</p>"
        )


def static_directory() -> Path | None:
    """
    The inbox page's files (package data C{web/static/}), if installed.
    """
    directory = Path(str(resources.files("twisted_netlab.mail.lab.web"))) / "static"
    return directory if (directory / "index.html").is_file() else None


class SiteRoot(Resource):
    """
    C{/}: the inbox page's static files, with C{/api/v1/} going to the API
    and L{SITE_ROUTES} to theirs.
    """

    def __init__(self, api_resource: APIResource) -> None:
        super().__init__()
        self.api_resource = api_resource
        versions = Route()
        versions.putChild(b"v1", api_resource)
        self.routes: dict[bytes, IResource] = {b"api": versions}
        for name, make in SITE_ROUTES.items():
            self.routes[name.encode()] = make(api_resource.api)
        directory = static_directory()
        self.static: Resource = (
            static.File(str(directory)) if directory is not None else _Placeholder()
        )

    def getChildWithDefault(self, name: bytes, request: Request) -> Any:
        route = self.routes.get(name)
        if route is not None:
            return route
        security_headers(request, PAGE_CSP)
        if isinstance(self.static, static.File):
            return self.static.getChildWithDefault(name, request)
        return self.static


@implementer(IRealm)
class _SiteRealm:
    def __init__(self, root: Any) -> None:
        self.root = root

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> Any:
        if IResource in interfaces:
            return IResource, self.root, lambda: None
        raise NotImplementedError()


def make_site(
    api: LabAPI,
    api_resource: APIResource,
    *,
    hosts: Iterable[str],
    checker: ICredentialsChecker | None = None,
    reactor: Any = None,
) -> Site:
    """
    The web site of the lab: the API and the inbox page behind the Host and
    Origin checks, and behind HTTP Basic login as a lab user when
    C{checker} is given (for listeners off loopback, which have TLS).
    """
    root: Any = SiteRoot(api_resource)
    if checker is not None:
        root = HTTPAuthSessionWrapper(
            Portal(_SiteRealm(root), [checker]),
            [BasicCredentialFactory(b"netlab mail lab")],
        )
    site = Site(HostGuard(root, hosts), reactor=reactor)
    site.displayTracebacks = False
    return site
