"""
The link check: every link and image URL of a message fetched, in Mailpit's
LinkCheckResponse shape (C{Errors}, C{Links} of C{URL}, C{StatusCode},
C{Status}).  It runs only when asked, never at delivery.

The links are the HTML body's C{<a>}/C{<area>}/C{<link>} C{href}, the
C{<img>}/C{<source>}/C{<input type=image>} C{src} and C{srcset}, C{<video
poster>} and C{background} attributes, and the URLs written in the text
body; each distinct URL once, the first 100 (Mailpit's cap).  Fragment-only
links and C{cid:}/C{data:} URLs (parts of the message itself) are not
links to check.  Another scheme (C{mailto:}, C{tel:}, a relative URL) is
listed as not checked, with StatusCode 0, and is not an error.

Each http(s) URL gets a HEAD request through Twisted's L{Agent}, and a GET
when the HEAD is answered 405 or 501 or not answered properly (some servers
refuse or botch HEAD).  C{follow} (the request's option) follows up to 3
redirects, or else a redirect's own status is the answer.  Each request has
C{settings.link_timeout} seconds, and at most C{settings.link_concurrency}
run at once.  TLS certificates are verified as a browser does
(L{BrowserLikePolicyForHTTPS}).  C{Errors} counts the links that were
fetched and failed (no answer, or a status of 400 or more) or were blocked.

Server-side request forgery: the check makes the lab fetch URLs chosen by
whoever sent the mail, and a lab reachable from a network would let any
sender (or any page that can reach its API) probe what only the lab can
reach: its loopback services, the private network, a cloud's metadata
address (169.254.169.254).  So unless C{settings.private_links} is true
(the lab itself listens on loopback only, and its users can reach all that
anyway), a request to a loopback, private, shared (CGNAT), link-local,
multicast, reserved or unspecified address is refused, answered with
StatusCode 451 ("Blocked private/reserved address"), as Mailpit does.  The
test is made on the resolved addresses, not on the URL: the host name is
resolved first and the connection goes to the address that was checked,
so a public name pointing at 127.0.0.1 is caught and a second resolution
cannot swap it (DNS rebinding).  Each redirect is checked the same way.
"""

from __future__ import annotations

import http
import ipaddress
from collections.abc import Iterable
from typing import Any

import hyperlink
from twisted.internet import error as internet_error
from twisted.internet.defer import (
    CancelledError,
    Deferred,
    DeferredSemaphore,
    TimeoutError,
    fail,
    gatherResults,
)
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP6ClientEndpoint,
    wrapClientTLS,
)
from twisted.internet.interfaces import (
    IHostnameResolver,
    IProtocol,
    IProtocolFactory,
    IResolutionReceiver,
    IStreamClientEndpoint,
)
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure
from twisted.web import error as web_error
from twisted.web.client import (
    URI,
    Agent,
    BrowserLikePolicyForHTTPS,
    RedirectAgent,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IAgentEndpointFactory, IPolicyForHTTPS, IResponse
from zope.interface import implementer

from twisted_netlab import __version__
from twisted_netlab.mail.lab.checks.context import CheckContext, CheckSettings
from twisted_netlab.mail.lab.checks.html_features import parse_html
from twisted_netlab.mail.lab.store.parsed import parse_message

MAX_LINKS = 100
MAX_REDIRECTS = 3
USER_AGENT = f"twisted_netlab link check/{__version__}".encode()
BLOCKED_CODE = 451
BLOCKED_STATUS = "Blocked private/reserved address"
#: HEAD answers that mean "ask with GET"
HEAD_REFUSED = frozenset({405, 501})
#: URLs that are the message's own parts, not links
OWN_PARTS = frozenset({"cid", "mid", "data"})

# --- which links ---------------------------------------------------------------

_URL_ATTRIBUTES: dict[str, tuple[str, ...]] = {
    "a": ("href",),
    "area": ("href",),
    "link": ("href",),
    "img": ("src", "srcset"),
    "source": ("src", "srcset"),
    "input": ("src",),
    "video": ("poster",),
}
#: punctuation that ends a sentence rather than a URL written in text
_TRAILING = ".,;:!?'\""


def _srcset_urls(value: str) -> list[str]:
    urls = []
    for candidate in value.split(","):
        words = candidate.split()
        if words:
            urls.append(words[0])
    return urls


def html_links(markup: str) -> list[str]:
    """
    The link and image URLs of an HTML body, in document order (relative
    ones resolved against a C{<base href>}, if it has one).
    """
    root = parse_html(markup) if markup.strip() else None
    if root is None:
        return []
    base = ""
    for el in root.iter("base"):
        base = (el.get("href") or "").strip()
        break
    urls: list[str] = []
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        names = list(_URL_ATTRIBUTES.get(el.tag, ()))
        if "background" in el.attrib:
            names.append("background")
        for name in names:
            value = (el.get(name) or "").strip()
            if not value:
                continue
            found = _srcset_urls(value) if name == "srcset" else [value]
            for url in found:
                urls.append(_resolve(base, url) if base else url)
    return urls


def _resolve(base: str, url: str) -> str:
    try:
        return hyperlink.URL.from_text(base).click(url).to_text()
    except (ValueError, TypeError):
        return url


def text_links(text: str) -> list[str]:
    """
    The http(s) URLs written in a text body: each runs from C{http://} or
    C{https://} to the next space or angle bracket, without the punctuation
    that ends a sentence; in angle brackets (RFC 3986, appendix C) a URL
    may be broken over lines.
    """
    urls: list[str] = []
    lowered = text.lower()
    start = 0
    while True:
        at = min(
            (
                i
                for i in (
                    lowered.find("http://", start),
                    lowered.find("https://", start),
                )
                if i >= 0
            ),
            default=-1,
        )
        if at < 0:
            return urls
        bracketed = at > 0 and text[at - 1] == "<"
        end = at
        if bracketed:
            close = text.find(">", at)
            end = close if close >= 0 else len(text)
            url = "".join(text[at:end].split())
        else:
            while end < len(text) and not text[end].isspace() and text[end] not in "<>":
                end += 1
            url = text[at:end].rstrip(_TRAILING)
            if url.endswith(")") and url.count("(") < url.count(")"):
                url = url[:-1]
        if len(url) > len(url.split("://", 1)[0]) + 3:
            urls.append(url)
        start = max(end, at + 1)


def _unique(urls: Iterable[str]) -> list[str]:
    seen: dict[str, None] = {}
    for url in urls:
        if url.startswith("#"):
            continue
        scheme = url.split(":", 1)[0].lower() if ":" in url else ""
        if scheme in OWN_PARTS:
            continue
        seen.setdefault(url, None)
        if len(seen) >= MAX_LINKS:
            break
    return list(seen)


def message_links(raw: bytes) -> list[str]:
    """
    The distinct links of a message, HTML body first, then text body, at
    most L{MAX_LINKS}.
    """
    parsed = parse_message(raw)
    return _unique([*html_links(parsed.html), *text_links(parsed.text)])


# --- which addresses ---------------------------------------------------------------

_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")


def is_internal(address: str) -> bool:
    """
    Whether an IP address is one the lab must not fetch for a stranger:
    loopback, private, shared (CGNAT), link-local, multicast, reserved,
    unspecified or documentation -- anything not globally routable -- also
    when wrapped in IPv6 (IPv4-mapped, 6to4, Teredo, NAT64).  An address
    that does not parse is internal.
    """
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return True
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and ip.teredo:
            embedded = ip.teredo[1]
        if embedded is None and (ip in _NAT64 or ip in _NAT64_LOCAL):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            return is_internal(str(embedded))
    return (
        not ip.is_global
        or ip.is_multicast
        or ip.is_loopback
        or ip.is_link_local
        or ip.is_unspecified
        or ip.is_reserved
    )


class BlockedAddress(Exception):
    """
    A link's host resolved to an address the check may not fetch.
    """

    def __init__(self, host: str, address: str) -> None:
        super().__init__(f"{host} is {address}")
        self.host = host
        self.address = address


class NoSuchHost(Exception):
    """
    A link's host name did not resolve.
    """


@implementer(IResolutionReceiver)
class _Addresses:
    def __init__(self) -> None:
        self.addresses: list[Any] = []
        self.done: Deferred[list[Any]] = Deferred()

    def resolutionBegan(self, resolutionInProgress: object) -> None:
        pass

    def addressResolved(self, address: Any) -> None:
        self.addresses.append(address)

    def resolutionComplete(self) -> None:
        self.done.callback(self.addresses)


def resolve(resolver: IHostnameResolver, host: str, port: int) -> Deferred[list[Any]]:
    """
    Every address C{host} resolves to (an IP literal is its own).
    """
    receiver = _Addresses()
    resolver.resolveHostName(receiver, host, port)
    return receiver.done


@implementer(IStreamClientEndpoint)
class CheckedEndpoint:
    """
    Connects to a URL's host (ASCII: a name in IDNA form, or an IP):
    resolves it, refuses it when one of its addresses is internal (unless
    allowed), and connects to an address it checked, over TLS for https.
    """

    def __init__(
        self,
        reactor: Any,
        resolver: IHostnameResolver,
        host: str,
        port: int,
        *,
        tls: IPolicyForHTTPS | None,
        allow_internal: bool,
        timeout: float,
    ) -> None:
        self._reactor = reactor
        self._resolver = resolver
        self._host = host
        self._port = port
        self._tls = tls
        self._allow_internal = allow_internal
        self._timeout = timeout

    def connect(self, protocolFactory: IProtocolFactory) -> Deferred[IProtocol]:
        resolving = resolve(self._resolver, self._host, self._port)
        return resolving.addCallback(self._connect, protocolFactory)

    def _connect(
        self, addresses: list[Any], protocolFactory: IProtocolFactory
    ) -> Deferred[IProtocol]:
        if not addresses:
            raise NoSuchHost(self._host)
        if not self._allow_internal:
            for address in addresses:
                if is_internal(address.host):
                    raise BlockedAddress(self._host, address.host)
        return self._connect_in_turn([a.host for a in addresses], protocolFactory, None)

    def _connect_in_turn(
        self,
        hosts: list[str],
        protocolFactory: IProtocolFactory,
        failure: Failure | None,
    ) -> Deferred[IProtocol]:
        """
        Connect to the first of the checked addresses that accepts (a name
        such as localhost may resolve to ::1 first, with a server on
        127.0.0.1 only).
        """
        if not hosts:
            assert failure is not None
            return fail(failure)
        host, rest = hosts[0], hosts[1:]
        kind = TCP6ClientEndpoint if ":" in host else TCP4ClientEndpoint
        endpoint: IStreamClientEndpoint = kind(
            self._reactor, host, self._port, timeout=self._timeout
        )
        if self._tls is not None:
            creator = self._tls.creatorForNetloc(self._host.encode("ascii"), self._port)
            endpoint = wrapClientTLS(creator, endpoint)
        connecting = endpoint.connect(protocolFactory)
        if rest:

            def next_one(reason: Failure) -> Deferred[IProtocol]:
                reason.trap(internet_error.ConnectError)
                return self._connect_in_turn(rest, protocolFactory, reason)

            connecting.addErrback(next_one)
        return connecting


@implementer(IAgentEndpointFactory)
class CheckedEndpointFactory:
    """
    The Agent's endpoints for the link check: http and https only, each
    through a L{CheckedEndpoint}.
    """

    def __init__(
        self,
        reactor: Any,
        *,
        allow_internal: bool,
        timeout: float,
        tls: IPolicyForHTTPS | None = None,
        resolver: IHostnameResolver | None = None,
    ) -> None:
        self._reactor = reactor
        self._allow_internal = allow_internal
        self._timeout = timeout
        self._tls = tls or BrowserLikePolicyForHTTPS()
        self._resolver = resolver or reactor.nameResolver

    def endpointForURI(self, uri: URI) -> IStreamClientEndpoint:
        if uri.scheme not in (b"http", b"https"):
            raise web_error.SchemeNotSupported(f"unsupported scheme: {uri.scheme!r}")
        return CheckedEndpoint(
            self._reactor,
            self._resolver,
            uri.host.decode("ascii"),
            uri.port,
            tls=self._tls if uri.scheme == b"https" else None,
            allow_internal=self._allow_internal,
            timeout=self._timeout,
        )


# --- fetching ---------------------------------------------------------------


class _Discard(Protocol):
    """
    Takes a response's body and drops the connection at once: only the
    status is wanted, and a GET may answer with a large body.
    """

    def makeConnection(self, transport: Any) -> None:
        transport.stopProducing()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        pass


def _first_reason(failure: Failure) -> Failure:
    value = failure.value
    if isinstance(value, (ResponseFailed, ResponseNeverReceived)) and value.reasons:
        return _first_reason(value.reasons[0])
    return failure


def _tls_reason(value: BaseException | None) -> str | None:
    try:
        from OpenSSL import SSL
    except ImportError:  # pragma: no cover - Twisted[tls] brings it
        return None
    if not isinstance(value, SSL.Error):
        return None
    details = [
        str(part[2]) for part in (value.args[0] if value.args else []) if len(part) > 2
    ]
    return "TLS: " + ("; ".join(d for d in details if d) or "handshake failed")


def _worth_a_get(failure: Failure) -> bool:
    """
    Whether a HEAD that failed so is worth a GET: a server that drops or
    botches a HEAD may still answer a GET; a refused connection, a timeout
    or a bad certificate would not change.
    """
    if not isinstance(failure.value, (ResponseFailed, ResponseNeverReceived)):
        return False
    reason = _first_reason(failure).value
    if isinstance(reason, (CancelledError, TimeoutError, internet_error.TimeoutError)):
        return False
    return _tls_reason(reason) is None


def describe_failure(failure: Failure, timeout: float) -> str:
    """
    One short line for why a link could not be fetched.
    """
    reason = _first_reason(failure)
    value = reason.value
    if isinstance(value, (TimeoutError, CancelledError, internet_error.TimeoutError)):
        return f"timed out after {timeout:g} s"
    if isinstance(value, internet_error.ConnectionRefusedError):
        return "connection refused"
    if isinstance(value, (NoSuchHost, internet_error.DNSLookupError)):
        return "no such host"
    if isinstance(value, web_error.InfiniteRedirection):
        return f"more than {MAX_REDIRECTS} redirects"
    if isinstance(value, web_error.RedirectWithNoLocation):
        return "a redirect without a Location"
    if isinstance(value, web_error.SchemeNotSupported):
        return "a redirect to a scheme other than http or https"
    tls = _tls_reason(value)
    if tls:
        return tls
    if isinstance(
        value, (internet_error.ConnectionDone, internet_error.ConnectionLost)
    ):
        return "the connection closed before an answer"
    text = reason.getErrorMessage()
    return " ".join(text.split()) or type(value).__name__


def _link(url: str, code: int, status: str) -> dict[str, Any]:
    return {"URL": url, "StatusCode": code, "Status": status}


def _settled(entry: dict[str, Any]) -> Deferred[dict[str, Any]]:
    done: Deferred[dict[str, Any]] = Deferred()
    done.callback(entry)
    return done


def _status_text(response: IResponse) -> str:
    try:
        return http.HTTPStatus(response.code).phrase
    except ValueError:
        phrase = getattr(response, "phrase", b"")
        return phrase.decode("latin-1") if isinstance(phrase, bytes) else str(phrase)


def _scheme(url: str) -> str:
    if ":" not in url:
        return ""
    scheme = url.split(":", 1)[0].lower()
    return (
        scheme
        if scheme.replace("+", "").replace("-", "").replace(".", "").isalnum()
        else ""
    )


def _request_uri(url: str) -> bytes:
    """
    A URL as the ASCII bytes the Agent sends (IDNA host, percent-encoded
    path).
    """
    return hyperlink.URL.from_text(url).to_uri().to_text().encode("ascii")


class LinkChecker:
    """
    Fetches links for one check: an Agent (redirects followed or not), the
    timeout and the concurrency cap.
    """

    def __init__(
        self,
        reactor: Any,
        settings: CheckSettings,
        *,
        follow: bool = False,
        tls: IPolicyForHTTPS | None = None,
        resolver: IHostnameResolver | None = None,
    ) -> None:
        self._reactor = reactor
        self._timeout = settings.link_timeout
        factory = CheckedEndpointFactory(
            reactor,
            allow_internal=settings.private_links,
            timeout=settings.link_timeout,
            tls=tls,
            resolver=resolver,
        )
        agent: IAgent = Agent.usingEndpointFactory(reactor, factory)
        if follow:
            agent = RedirectAgent(agent, redirectLimit=MAX_REDIRECTS)
        self._agent = agent
        self._semaphore = DeferredSemaphore(max(1, settings.link_concurrency))
        self._not_checked: set[str] = set()

    def check_all(self, urls: Iterable[str]) -> Deferred[dict[str, Any]]:
        """
        The LinkCheckResponse for these URLs, in their order.
        """
        each = [self._semaphore.run(self.check_one, url) for url in urls]
        done: Deferred[list[dict[str, Any]]] = gatherResults(each, consumeErrors=True)

        def response(links: list[dict[str, Any]]) -> dict[str, Any]:
            errors = sum(
                1
                for link in links
                if link["URL"] not in self._not_checked
                and (link["StatusCode"] >= 400 or link["StatusCode"] == 0)
            )
            return {"Errors": errors, "Links": links}

        return done.addCallback(response)

    def check_one(self, url: str) -> Deferred[dict[str, Any]]:
        """
        One link's entry: its status, or why it was not fetched.
        """
        scheme = _scheme(url)
        if scheme not in ("http", "https"):
            self._not_checked.add(url)
            what = f"{scheme}: links" if scheme else "relative links"
            return _settled(
                _link(
                    url, 0, f"not checked: {what} are not fetched (http and https only)"
                )
            )
        try:
            uri = _request_uri(url)
        except (ValueError, UnicodeError) as e:
            return _settled(_link(url, 0, f"not a valid URL: {e}"))
        asked = self._fetch(b"HEAD", uri)

        def head_answered(response: IResponse) -> Deferred[IResponse] | IResponse:
            if response.code in HEAD_REFUSED:
                return self._fetch(b"GET", uri)
            return response

        def head_failed(failure: Failure) -> Deferred[IResponse] | Failure:
            if _worth_a_get(failure):
                return self._fetch(b"GET", uri)
            return failure

        asked.addCallbacks(head_answered, head_failed)

        def answered(response: IResponse) -> dict[str, Any]:
            return _link(url, response.code, _status_text(response))

        def failed(failure: Failure) -> dict[str, Any]:
            if isinstance(failure.value, BlockedAddress):
                address = failure.value.address
                return _link(url, BLOCKED_CODE, f"{BLOCKED_STATUS} ({address})")
            return _link(url, 0, describe_failure(failure, self._timeout))

        return asked.addCallbacks(answered, failed)

    def _fetch(self, method: bytes, uri: bytes) -> Deferred[IResponse]:
        headers = Headers({b"user-agent": [USER_AGENT]})
        requested = self._agent.request(method, uri, headers)

        def drain(response: IResponse) -> IResponse:
            response.deliverBody(_Discard())
            return response

        requested.addCallback(drain)
        return requested.addTimeout(self._timeout, self._reactor)


def _follow(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def check_links(
    raw: bytes,
    reactor: Any,
    settings: CheckSettings,
    *,
    follow: bool = False,
    tls: IPolicyForHTTPS | None = None,
    resolver: IHostnameResolver | None = None,
) -> Deferred[dict[str, Any]]:
    """
    The link check of a message, with the TLS policy and the resolver
    replaceable (tests trust their own CA, or resolve names their way).
    """
    checker = LinkChecker(reactor, settings, follow=follow, tls=tls, resolver=resolver)
    return checker.check_all(message_links(raw))


def check(raw: bytes, context: CheckContext) -> Deferred[dict[str, Any]]:
    """
    The link check: C{context.options["follow"]} (default false) follows
    redirects.
    """
    follow = _follow(context.options.get("follow", False))
    return check_links(raw, context.reactor, context.settings, follow=follow)
