"""
Tests for L{twisted_netlab.mail.lab.checks.links}: which links a message
has, which addresses may be fetched, and the check against real servers on
loopback -- a twisted.web site written here, and Python's http.server,
which no one here wrote.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from http.server import (
    BaseHTTPRequestHandler,
    SimpleHTTPRequestHandler,
    ThreadingHTTPServer,
)
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import ssl
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import IHostnameResolver, IResolutionReceiver
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.client import BrowserLikePolicyForHTTPS
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from zope.interface import implementer

from tests.certs import make_server_certificate
from twisted_netlab.mail.lab.certificate import load_certificate
from twisted_netlab.mail.lab.checks import links
from twisted_netlab.mail.lab.checks.context import CheckContext, CheckSettings
from twisted_netlab.mail.lab.checks.links import (
    BlockedAddress,
    CheckedEndpoint,
    check_links,
    html_links,
    is_internal,
    message_links,
    text_links,
)


def message(html: str | None = None, text: str = "Hello") -> bytes:
    composed = EmailMessage()
    composed["From"] = "a@example.test"
    composed["To"] = "b@example.test"
    composed["Subject"] = "links"
    composed.set_content(text)
    if html is not None:
        composed.add_alternative(html, subtype="html")
    return composed.as_bytes()


class HTMLLinksTests(SynchronousTestCase):
    """
    L{html_links}: the URLs of an HTML body.
    """

    def test_elements_and_attributes(self) -> None:
        """
        Links, stylesheets, images, srcset candidates, posters and
        background attributes, in document order.
        """
        markup = (
            '<link rel="stylesheet" href="https://a.test/s.css">'
            '<table background="https://a.test/bg.png"><tr><td>'
            '<a href=" https://a.test/1 ">one</a>'
            '<img src="https://a.test/i.png" srcset="https://a.test/i2.png 2x, '
            'https://a.test/i3.png 3x">'
            '<map><area href="https://a.test/area"></map>'
            '<video poster="https://a.test/p.jpg"></video>'
            "<a>no href</a><a href=''>empty</a>"
            "</td></tr></table>"
        )
        self.assertEqual(
            html_links(markup),
            [
                "https://a.test/s.css",
                "https://a.test/bg.png",
                "https://a.test/1",
                "https://a.test/i.png",
                "https://a.test/i2.png",
                "https://a.test/i3.png",
                "https://a.test/area",
                "https://a.test/p.jpg",
            ],
        )

    def test_base(self) -> None:
        """
        Relative links are resolved against C{<base href>}.
        """
        markup = '<base href="https://a.test/dir/"><a href="page?x=1">p</a>'
        self.assertEqual(html_links(markup), ["https://a.test/dir/page?x=1"])

    def test_text_is_not_a_link(self) -> None:
        """
        A URL in the HTML's text or a comment is not a link of the HTML.
        """
        markup = "<p>https://a.test/text</p><!-- <a href='https://a.test/c'> -->"
        self.assertEqual(html_links(markup), [])


class TextLinksTests(SynchronousTestCase):
    """
    L{text_links}: the URLs written in a text body.
    """

    def test_prose(self) -> None:
        """
        A URL ends at a space, without the sentence's punctuation or a
        closing parenthesis that is not its own.
        """
        text = (
            "See https://a.test/x. Or (http://a.test/y), or "
            "https://a.test/wiki/Foo_(bar)! HTTPS://A.TEST/UP; and ftp://a.test/z"
        )
        self.assertEqual(
            text_links(text),
            [
                "https://a.test/x",
                "http://a.test/y",
                "https://a.test/wiki/Foo_(bar)",
                "HTTPS://A.TEST/UP",
            ],
        )

    def test_angle_brackets(self) -> None:
        """
        In angle brackets a URL may be broken over lines.
        """
        text = "Visit <https://a.test/a/very/\n    long/path> today"
        self.assertEqual(text_links(text), ["https://a.test/a/very/long/path"])

    def test_scheme_alone(self) -> None:
        """
        A scheme with nothing after it is not a URL.
        """
        self.assertEqual(text_links("http:// and https://"), [])


class MessageLinksTests(SynchronousTestCase):
    """
    L{message_links}: HTML then text, each URL once.
    """

    def test_order_and_duplicates(self) -> None:
        """
        The HTML's links come first, then the text's; each URL once;
        fragments and the message's own parts (cid:, data:) are left out.
        """
        raw = message(
            html='<a href="https://a.test/1">1</a><a href="#top">top</a>'
            '<img src="cid:logo@x"><img src="data:image/png;base64,AA">'
            '<a href="mailto:a@b.test">m</a><a href="https://a.test/1">again</a>',
            text="https://a.test/2 and https://a.test/1",
        )
        self.assertEqual(
            message_links(raw),
            ["https://a.test/1", "mailto:a@b.test", "https://a.test/2"],
        )

    def test_cap(self) -> None:
        """
        At most 100 links are checked.
        """
        raw = message(text=" ".join(f"https://a.test/{n}" for n in range(150)))
        found = message_links(raw)
        self.assertEqual(len(found), links.MAX_LINKS)
        self.assertEqual(found[-1], "https://a.test/99")


class InternalAddressTests(SynchronousTestCase):
    """
    L{is_internal}: the addresses a stranger's link may not make the lab
    fetch.
    """

    def test_internal(self) -> None:
        """
        Loopback, private, CGNAT, link-local (cloud metadata), multicast,
        unspecified, reserved and documentation addresses, also wrapped in
        IPv6, are internal.
        """
        for address in (
            "127.0.0.1",
            "127.9.9.9",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "169.254.169.254",
            "224.0.0.1",
            "239.255.255.250",
            "0.0.0.0",
            "240.0.0.1",
            "255.255.255.255",
            "192.0.2.1",
            "::1",
            "::",
            "fe80::1",
            "fe80::1%eth0",
            "fc00::1",
            "fd12:3456::1",
            "ff02::1",
            "2001:db8::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::7f00:1",
            "2001:0:4136:e378:8000:63bf:80ff:fffe",
            "not an address",
        ):
            self.assertTrue(is_internal(address), address)

    def test_public(self) -> None:
        """
        Globally routable addresses are not, in IPv4, IPv6 or wrapped.
        """
        for address in (
            "93.184.216.34",
            "8.8.8.8",
            "1.1.1.1",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
        ):
            self.assertFalse(is_internal(address), address)


@implementer(IHostnameResolver)
class TableResolver:
    """
    A resolver answering from a table, recording what it was asked.
    """

    def __init__(self, table: dict[str, list[str]]) -> None:
        self.table = table
        self.asked: list[str] = []

    def resolveHostName(
        self,
        resolutionReceiver: IResolutionReceiver,
        hostName: str,
        portNumber: int = 0,
        addressTypes: Any = None,
        transportSemantics: str = "TCP",
    ) -> Any:
        self.asked.append(hostName)
        resolutionReceiver.resolutionBegan(None)  # type: ignore[arg-type]
        for ip in self.table.get(hostName, []):
            kind = IPv6Address if ":" in ip else IPv4Address
            resolutionReceiver.addressResolved(kind("TCP", ip, portNumber))
        resolutionReceiver.resolutionComplete()
        return resolutionReceiver


class CheckedEndpointTests(SynchronousTestCase):
    """
    L{CheckedEndpoint}: resolve, check every address, connect to a checked
    one.
    """

    def endpoint(
        self, host: str, resolver: TableResolver, *, allow: bool, tls: bool = False
    ) -> tuple[CheckedEndpoint, MemoryReactorClock]:
        reactor = MemoryReactorClock()
        endpoint = CheckedEndpoint(
            reactor,
            resolver,
            host,
            443 if tls else 80,
            tls=BrowserLikePolicyForHTTPS() if tls else None,
            allow_internal=allow,
            timeout=5,
        )
        return endpoint, reactor

    def test_name_pointing_at_loopback(self) -> None:
        """
        A name that resolves to 127.0.0.1 is refused before any connection
        when internal addresses are not allowed.
        """
        resolver = TableResolver({"evil.test": ["127.0.0.1"]})
        endpoint, reactor = self.endpoint("evil.test", resolver, allow=False)
        failure = self.failureResultOf(
            endpoint.connect(Factory.forProtocol(Protocol)), BlockedAddress
        )
        self.assertEqual(failure.value.address, "127.0.0.1")
        self.assertEqual(reactor.tcpClients, [])

    def test_one_internal_address_is_enough(self) -> None:
        """
        A name with a public and a private address is refused: the
        connection could go to either.
        """
        resolver = TableResolver({"mixed.test": ["93.184.216.34", "10.0.0.5"]})
        endpoint, reactor = self.endpoint("mixed.test", resolver, allow=False)
        self.failureResultOf(
            endpoint.connect(Factory.forProtocol(Protocol)), BlockedAddress
        )
        self.assertEqual(reactor.tcpClients, [])

    def test_connects_to_the_checked_address(self) -> None:
        """
        A public name is resolved once and the connection goes to the very
        address that was checked (no second resolution to rebind).
        """
        resolver = TableResolver({"good.test": ["93.184.216.34"]})
        endpoint, reactor = self.endpoint("good.test", resolver, allow=False)
        endpoint.connect(Factory.forProtocol(Protocol))
        self.assertEqual(resolver.asked, ["good.test"])
        self.assertEqual([c[:2] for c in reactor.tcpClients], [("93.184.216.34", 80)])

    def test_allowed(self) -> None:
        """
        With internal addresses allowed, loopback is connected to.
        """
        resolver = TableResolver({"localhost": ["127.0.0.1"]})
        endpoint, reactor = self.endpoint("localhost", resolver, allow=True)
        endpoint.connect(Factory.forProtocol(Protocol))
        self.assertEqual([c[:2] for c in reactor.tcpClients], [("127.0.0.1", 80)])

    def test_https_is_tls(self) -> None:
        """
        An https link's connection is wrapped in TLS.
        """
        resolver = TableResolver({"good.test": ["93.184.216.34"]})
        endpoint, reactor = self.endpoint("good.test", resolver, allow=False, tls=True)
        endpoint.connect(Factory.forProtocol(Protocol))
        (client,) = reactor.tcpClients
        self.assertEqual(client[:2], ("93.184.216.34", 443))
        protocol = client[2].buildProtocol(IPv4Address("TCP", "93.184.216.34", 443))
        assert protocol is not None
        transport = StringTransport()
        protocol.makeConnection(transport)
        hello = transport.value()
        self.assertEqual(hello[:1], b"\x16")  # a TLS handshake record
        self.assertIn(b"good.test", hello)  # naming the host (SNI)

    def test_no_address(self) -> None:
        """
        A name that does not resolve fails with NoSuchHost.
        """
        endpoint, _ = self.endpoint("nowhere.test", TableResolver({}), allow=True)
        self.failureResultOf(
            endpoint.connect(Factory.forProtocol(Protocol)), links.NoSuchHost
        )


# --- against real servers on loopback -----------------------------------------


def the_reactor() -> Any:
    from twisted.internet import reactor

    return reactor


class Recorder:
    """
    What the test site was asked, and how many requests it held at once.
    """

    def __init__(self) -> None:
        self.requests: list[tuple[str, str]] = []
        self.in_flight = 0
        self.most_in_flight = 0
        self.pending: list[Request] = []


class Page(Resource):
    isLeaf = True

    def __init__(self, recorder: Recorder, handler: Any) -> None:
        super().__init__()
        self.recorder = recorder
        self.handler = handler

    def render(self, request: Request) -> Any:
        self.recorder.requests.append((request.method.decode(), request.path.decode()))
        return self.handler(request, self.recorder)


def ok(request: Request, recorder: Recorder) -> bytes:
    return b"ok"


def missing(request: Request, recorder: Recorder) -> bytes:
    request.setResponseCode(404)
    return b"no"


def redirect(request: Request, recorder: Recorder) -> bytes:
    request.setResponseCode(302)
    request.setHeader(b"location", b"/ok")
    return b""


def loop(request: Request, recorder: Recorder) -> bytes:
    request.setResponseCode(302)
    request.setHeader(b"location", b"/loop")
    return b""


def away(request: Request, recorder: Recorder) -> bytes:
    request.setResponseCode(301)
    port = request.getHost().port
    request.setHeader(b"location", f"http://127.0.0.2:{port}/ok".encode())
    return b""


def no_head(request: Request, recorder: Recorder) -> bytes:
    if request.method == b"HEAD":
        request.setResponseCode(405)
        request.setHeader(b"allow", b"GET")
        return b""
    return b"x" * 100_000


def never(request: Request, recorder: Recorder) -> Any:
    recorder.pending.append(request)
    return NOT_DONE_YET


def slow(request: Request, recorder: Recorder) -> Any:
    recorder.in_flight += 1
    recorder.most_in_flight = max(recorder.most_in_flight, recorder.in_flight)

    def finish() -> None:
        recorder.in_flight -= 1
        request.finish()

    the_reactor().callLater(0.2, finish)
    return NOT_DONE_YET


@dataclass
class LinkSite:
    base: str
    recorder: Recorder
    port: int
    https_base: str = ""
    ca_pem: bytes = field(default=b"", repr=False)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[LinkSite]:
    recorder = Recorder()
    root = Resource()
    for name, handler in {
        "ok": ok,
        "missing": missing,
        "redirect": redirect,
        "loop": loop,
        "away": away,
        "nohead": no_head,
        "never": never,
    }.items():
        root.putChild(name.encode(), Page(recorder, handler))
    slow_pages = Resource()
    root.putChild(b"slow", slow_pages)
    for n in range(6):
        slow_pages.putChild(str(n).encode(), Page(recorder, slow))
    reactor = the_reactor()
    web = Site(root)
    port = reactor.listenTCP(0, web, interface="127.0.0.1")
    certificate = make_server_certificate(tmp_path / "certs")
    server_tls = load_certificate(certificate.cert, certificate.key).server_options()
    tls_port = reactor.listenSSL(0, web, server_tls, interface="127.0.0.1")
    yield LinkSite(
        base=f"http://127.0.0.1:{port.getHost().port}",
        recorder=recorder,
        port=port.getHost().port,
        https_base=f"https://localhost:{tls_port.getHost().port}",
        ca_pem=certificate.ca.read_bytes(),
    )
    for request in recorder.pending:
        if not request.finished and not request._disconnected:
            request.finish()
    pytest_twisted.blockon(port.stopListening())
    pytest_twisted.blockon(tls_port.stopListening())


def settings(**changes: Any) -> CheckSettings:
    values: dict[str, Any] = {"private_links": True, "link_timeout": 5.0}
    values.update(changes)
    return CheckSettings(**values)


async def check_urls(
    urls: list[str], *, follow: bool = False, **changes: Any
) -> dict[str, Any]:
    tls = changes.pop("tls", None)
    html = "".join(f'<a href="{u}">{n}</a>' for n, u in enumerate(urls))
    result: dict[str, Any] = await check_links(
        message(html), the_reactor(), settings(**changes), follow=follow, tls=tls
    )
    return result


def by_url(result: dict[str, Any]) -> dict[str, tuple[int, str]]:
    return {
        link["URL"]: (link["StatusCode"], link["Status"]) for link in result["Links"]
    }


@pytest_twisted.ensureDeferred
async def test_statuses(site: LinkSite) -> None:
    """
    Each link gets its status: 200, 404, and a redirect's own 302 when
    redirects are not followed; a HEAD is all that is sent.  The shape is
    Mailpit's LinkCheckResponse, and Errors counts the 404.
    """
    result = await check_urls(
        [f"{site.base}/ok", f"{site.base}/missing", f"{site.base}/redirect"]
    )
    assert set(result) == {"Errors", "Links"}
    for link in result["Links"]:
        assert set(link) == {"URL", "StatusCode", "Status"}
    assert by_url(result) == {
        f"{site.base}/ok": (200, "OK"),
        f"{site.base}/missing": (404, "Not Found"),
        f"{site.base}/redirect": (302, "Found"),
    }
    assert result["Errors"] == 1
    assert sorted(site.recorder.requests) == [
        ("HEAD", "/missing"),
        ("HEAD", "/ok"),
        ("HEAD", "/redirect"),
    ]


@pytest_twisted.ensureDeferred
async def test_follow(site: LinkSite) -> None:
    """
    With follow, a redirect answers with where it leads; a loop gives up
    after 3 redirects and is an error.
    """
    result = await check_urls(
        [f"{site.base}/redirect", f"{site.base}/loop"], follow=True
    )
    assert by_url(result)[f"{site.base}/redirect"] == (200, "OK")
    assert by_url(result)[f"{site.base}/loop"] == (0, "more than 3 redirects")
    assert result["Errors"] == 1
    assert site.recorder.requests.count(("HEAD", "/loop")) == 4


@pytest_twisted.ensureDeferred
async def test_head_refused_then_get(site: LinkSite) -> None:
    """
    A HEAD answered 405 is asked again with GET, whose status is the
    answer (its large body is not read).
    """
    result = await check_urls([f"{site.base}/nohead"])
    assert by_url(result) == {f"{site.base}/nohead": (200, "OK")}
    assert site.recorder.requests == [("HEAD", "/nohead"), ("GET", "/nohead")]
    assert result["Errors"] == 0


@pytest_twisted.ensureDeferred
async def test_timeout(site: LinkSite) -> None:
    """
    A server that never answers is given up after the timeout, and is not
    asked again with GET.
    """
    result = await check_urls([f"{site.base}/never"], link_timeout=0.5)
    assert by_url(result) == {f"{site.base}/never": (0, "timed out after 0.5 s")}
    assert result["Errors"] == 1
    assert site.recorder.requests == [("HEAD", "/never")]


@pytest_twisted.ensureDeferred
async def test_refused_connection() -> None:
    """
    A port nobody listens on is "connection refused", an error.
    """
    port = the_reactor().listenTCP(
        0, Factory.forProtocol(Protocol), interface="127.0.0.1"
    )
    number = port.getHost().port
    await port.stopListening()
    url = f"http://127.0.0.1:{number}/"
    result = await check_urls([url])
    assert by_url(result) == {url: (0, "connection refused")}
    assert result["Errors"] == 1


@pytest_twisted.ensureDeferred
async def test_other_schemes_are_not_fetched(site: LinkSite) -> None:
    """
    mailto:, tel: and relative links are listed as not checked, and are
    not errors.
    """
    result = await check_urls(
        ["mailto:a@b.test", "tel:+123", "/relative", f"{site.base}/ok"]
    )
    statuses = by_url(result)
    assert statuses["mailto:a@b.test"] == (
        0,
        "not checked: mailto: links are not fetched (http and https only)",
    )
    assert statuses["tel:+123"][1].startswith("not checked: tel: links")
    assert statuses["/relative"][1].startswith("not checked: relative links")
    assert statuses[f"{site.base}/ok"] == (200, "OK")
    assert result["Errors"] == 0


@pytest_twisted.ensureDeferred
async def test_private_addresses_refused(site: LinkSite) -> None:
    """
    Without private_links, a loopback address is blocked -- written as an
    IP or as a name that resolves to it -- and the server is never asked.
    """
    urls = [f"{site.base}/ok", f"http://localhost:{site.port}/ok"]
    result = await check_urls(urls, private_links=False)
    for url in urls:
        code, status = by_url(result)[url]
        assert code == 451
        assert status.startswith("Blocked private/reserved address (")
    assert result["Errors"] == 2
    assert site.recorder.requests == []


@pytest_twisted.ensureDeferred
async def test_each_redirect_is_checked(
    site: LinkSite, monkeypatch: pytest.MonkeyPatch
) -> None:
    """
    A redirect to an address that may not be fetched is blocked like a
    link to it (here 127.0.0.2 plays the internal address, 127.0.0.1 the
    public one).
    """
    monkeypatch.setattr(links, "is_internal", lambda address: address == "127.0.0.2")
    url = f"{site.base}/away"
    result = await check_urls([url], follow=True, private_links=False)
    assert by_url(result) == {
        url: (451, "Blocked private/reserved address (127.0.0.2)")
    }
    assert site.recorder.requests == [("HEAD", "/away")]


@pytest_twisted.ensureDeferred
async def test_concurrency_cap(site: LinkSite) -> None:
    """
    No more than link_concurrency requests run at once, and they do run
    side by side.
    """
    urls = [f"{site.base}/slow/{n}" for n in range(6)]
    result = await check_urls(urls, link_concurrency=2)
    assert [link["StatusCode"] for link in result["Links"]] == [200] * 6
    assert [link["URL"] for link in result["Links"]] == urls
    assert site.recorder.most_in_flight == 2


@pytest_twisted.ensureDeferred
async def test_tls_verified(site: LinkSite) -> None:
    """
    An https link whose certificate the system does not trust fails with a
    TLS reason; trusting the test CA, it is fetched.
    """
    url = f"{site.https_base}/ok"
    untrusted = await check_urls([url])
    code, status = by_url(untrusted)[url]
    assert code == 0
    assert status.startswith("TLS: "), status
    assert untrusted["Errors"] == 1
    trusted_policy = BrowserLikePolicyForHTTPS(
        trustRoot=ssl.Certificate.loadPEM(site.ca_pem)
    )
    trusted = await check_urls([url], tls=trusted_policy)
    assert by_url(trusted) == {url: (200, "OK")}


@pytest_twisted.ensureDeferred
async def test_check_entry_point(site: LinkSite) -> None:
    """
    C{check()} reads C{follow} from the request's options, a query
    string's text included.
    """
    raw = message(f'<a href="{site.base}/redirect">r</a>')
    reactor = the_reactor()
    plain = await links.check(raw, CheckContext(reactor=reactor, settings=settings()))
    followed = await links.check(
        raw,
        CheckContext(reactor=reactor, settings=settings(), options={"follow": "true"}),
    )
    assert plain["Links"][0]["StatusCode"] == 302
    assert followed["Links"][0]["StatusCode"] == 200


# --- Python's http.server, a server no one here wrote ------------------------


class Quiet:
    """
    Keeps http.server's request log off stderr, and records request lines.
    """

    lines: list[str]

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        self.lines.append(self.requestline)  # type: ignore[attr-defined]


@pytest.fixture
def stdlib_servers(tmp_path: Path) -> Iterator[tuple[str, str, list[str]]]:
    (tmp_path / "hello.txt").write_text("hello")
    lines: list[str] = []

    class Files(Quiet, SimpleHTTPRequestHandler):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, directory=str(tmp_path), **kwargs)

    class GetOnly(Quiet, BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    Files.lines = lines
    GetOnly.lines = lines
    servers = [
        ThreadingHTTPServer(("127.0.0.1", 0), handler) for handler in (Files, GetOnly)
    ]
    threads = [threading.Thread(target=s.serve_forever, daemon=True) for s in servers]
    for thread in threads:
        thread.start()
    files, get_only = (f"http://127.0.0.1:{s.server_address[1]}" for s in servers)
    yield files, get_only, lines
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest_twisted.ensureDeferred
async def test_python_http_server(stdlib_servers: tuple[str, str, list[str]]) -> None:
    """
    Against Python's http.server: a file is 200 and a missing one 404 by
    HEAD; a handler without HEAD answers 501 (http.server's own "Unsupported
    method"), and the GET that follows is 200.
    """
    files, get_only, lines = stdlib_servers
    urls = [f"{files}/hello.txt", f"{files}/nope.txt", f"{get_only}/page"]
    result = await check_urls(urls)
    assert by_url(result) == {
        f"{files}/hello.txt": (200, "OK"),
        f"{files}/nope.txt": (404, "Not Found"),
        f"{get_only}/page": (200, "OK"),
    }
    assert result["Errors"] == 1
    assert "GET /page HTTP/1.1" in lines
    assert "HEAD /hello.txt HTTP/1.1" in lines
