"""
Tests for L{twisted_netlab.mail.lab.webhook}: the body and headers, the
rate limit and the queue's bound on a L{Clock}, failures and timeouts
counted; then real HTTP: a local twisted.web receiver, and Python's
http.server in a thread (a peer no one here wrote), over HTTP and over
HTTPS with a verified certificate.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.certs import ServerCertificate, make_server_certificate
from twisted_netlab import __version__
from twisted_netlab.errors import UsageProblem
from twisted_netlab.mail.lab.stats import DeliveryCounters
from twisted_netlab.mail.lab.webhook import (
    Webhook,
    parse_webhook_limit,
    parse_webhook_url,
)

URL = "http://hooks.example:8080/new?token=SECRET"


def summary(n: int = 1) -> dict[str, Any]:
    return {
        "ID": f"id{n}",
        "MessageID": f"{n}@example.org",
        "From": {"Name": "Jörg", "Address": "a@example.org"},
        "Subject": f"Grüße {n}",
        "Tags": ["invoice"],
    }


class _Collect:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data


@dataclass
class Request:
    method: bytes
    uri: bytes
    headers: Headers
    body: bytes
    answer: Deferred[Any]


@dataclass
class Response:
    code: int
    delivered: list[Any] = field(default_factory=list)

    def deliverBody(self, protocol: Any) -> None:
        self.delivered.append(protocol)


class FakeAgent:
    """
    An IAgent whose requests the test answers.
    """

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.cancelled: list[Deferred[Any]] = []

    def request(
        self, method: bytes, uri: bytes, headers: Headers, bodyProducer: Any
    ) -> Deferred[Any]:
        body = _Collect()
        bodyProducer.startProducing(body)
        answer: Deferred[Any] = Deferred(self.cancelled.append)
        self.requests.append(Request(method, uri, headers, body.data, answer))
        return answer

    def answer(self, index: int, code: int = 200) -> Response:
        response = Response(code)
        self.requests[index].answer.callback(response)
        return response


class WebhookTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.agent = FakeAgent()
        self.counters = DeliveryCounters()

    def webhook(self, limit: int = 1, **options: Any) -> Webhook:
        return Webhook(
            URL,
            self.clock,
            limit,
            agent=self.agent,
            counters=self.counters,
            **options,
        )

    def logged(self, action: Any) -> list[str]:
        with capturedLogs() as events:
            action()
        return [formatEvent(e) for e in events]

    def test_body_and_headers(self) -> None:
        """
        C{feed} returns at once; the request is a POST of the summary as
        JSON (UTF-8) with Mailpit's headers, and a 2xx counts as sent with
        the body read and thrown away.
        """
        hook = self.webhook(label="CI lab")
        hook.feed(summary())
        [request] = self.agent.requests
        self.assertEqual((request.method, request.uri), (b"POST", URL.encode()))
        self.assertEqual(json.loads(request.body.decode("utf-8")), summary())
        headers = request.headers
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/json"])
        self.assertEqual(headers.getRawHeaders(b"mailpit-label"), [b"CI lab"])
        self.assertEqual(
            headers.getRawHeaders(b"user-agent"), [f"netlab/{__version__}".encode()]
        )
        response = self.agent.answer(0, 204)
        self.assertEqual(len(response.delivered), 1)
        self.assertEqual(self.counters, DeliveryCounters(sent=1))
        self.assertEqual(hook.pending, 0)

    def test_rate_limit(self) -> None:
        """
        At most N requests start in any second, however fast they are
        answered; the rest wait, in order, and none is lost.
        """
        hook = self.webhook(limit=2)
        for n in range(5):
            hook.feed(summary(n))
        self.assertEqual(len(self.agent.requests), 2)
        self.agent.answer(0)
        self.agent.answer(1)
        self.assertEqual(len(self.agent.requests), 2)
        self.clock.advance(0.99)
        self.assertEqual(len(self.agent.requests), 2)
        self.clock.advance(0.01)
        self.assertEqual(len(self.agent.requests), 4)
        self.clock.advance(1)
        ids = [json.loads(r.body)["ID"] for r in self.agent.requests]
        self.assertEqual(ids, ["id0", "id1", "id2", "id3", "id4"])
        for index in range(2, 5):
            self.agent.answer(index)
        self.assertEqual(self.counters, DeliveryCounters(sent=5))

    def test_no_limit(self) -> None:
        """
        A limit of 0 posts at once, up to the concurrency bound.
        """
        hook = self.webhook(limit=0, concurrency=3)
        for n in range(5):
            hook.feed(summary(n))
        self.assertEqual(len(self.agent.requests), 3)
        self.agent.answer(0)
        self.assertEqual(len(self.agent.requests), 4)

    def test_queue_bound(self) -> None:
        """
        Past C{max_queue} waiting bodies, a message is dropped with a
        counted log line naming it; the URL's token is not logged.
        """
        hook = self.webhook(limit=1, max_queue=2)
        for n in range(3):
            hook.feed(summary(n))
        lines = self.logged(lambda: hook.feed(summary(9)))
        self.assertEqual(
            lines,
            [
                "webhook: not posting id9 to http://hooks.example:8080/new: "
                "2 requests are waiting already"
            ],
        )
        self.assertEqual(self.counters.dropped, 1)
        self.assertEqual(hook.pending, 3)

    def test_failures_counted(self) -> None:
        """
        An error and a non-2xx status are each logged once and counted as
        failed; nothing is retried.
        """
        hook = self.webhook(limit=0)
        hook.feed(summary(1))
        hook.feed(summary(2))
        lines = self.logged(
            lambda: self.agent.requests[0].answer.errback(ConnectionError("refused"))
        )
        self.assertEqual(
            lines,
            ["webhook: posting id1 to http://hooks.example:8080/new failed: refused"],
        )
        lines = self.logged(lambda: self.agent.answer(1, 500))
        self.assertEqual(
            lines,
            ["webhook: http://hooks.example:8080/new answered 500 to the post of id2"],
        )
        self.assertEqual(self.counters, DeliveryCounters(failed=2))
        self.clock.advance(100)
        self.assertEqual(len(self.agent.requests), 2)

    def test_timeout(self) -> None:
        """
        A receiver that does not answer within the timeout: the request is
        cancelled and counted as failed.
        """
        hook = self.webhook(timeout=5)
        hook.feed(summary())
        self.clock.advance(4.9)
        self.assertEqual(self.counters.failed, 0)
        lines = self.logged(lambda: self.clock.advance(0.1))
        self.assertEqual(len(self.agent.cancelled), 1)
        self.assertEqual(self.counters.failed, 1)
        self.assertIn("failed", lines[0])
        self.assertEqual(hook.pending, 0)

    def test_bad_summary(self) -> None:
        """
        A summary that is not JSON-able is counted as failed; C{feed} does
        not raise.
        """
        hook = self.webhook()
        hook.feed({"ID": "x", "Created": object()})
        self.assertEqual(self.counters.failed, 1)
        self.assertEqual(self.agent.requests, [])

    def test_stop(self) -> None:
        """
        C{stop} cancels what is in flight, drops what waits (counted), and
        takes nothing more; C{when_idle} fires.
        """
        hook = self.webhook(limit=1)
        hook.feed(summary(1))
        hook.feed(summary(2))
        idle = hook.when_idle()
        self.assertNoResult(idle)
        lines = self.logged(hook.stop)
        self.assertEqual(lines, ["webhook stopped: 2 requests not made"])
        self.successResultOf(idle)
        self.assertEqual(len(self.agent.cancelled), 1)
        hook.feed(summary(3))
        self.clock.advance(5)
        self.assertEqual(len(self.agent.requests), 1)
        self.assertEqual(self.counters, DeliveryCounters(dropped=3))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_options(self) -> None:
        """
        C{--webhook} needs an http(s) URL with a host; C{--webhook-limit} a
        whole number; both say so in one line.
        """
        self.assertEqual(parse_webhook_url("https://h/x?y=1"), "https://h/x?y=1")
        for bad in ("ftp://h/", "http:///x", "h/x", "http://h:0/", "http://h x/"):
            with self.assertRaises(UsageProblem) as caught:
                parse_webhook_url(bad)
            self.assertIn("--webhook", str(caught.exception))
        self.assertEqual(parse_webhook_limit("0"), 0)
        self.assertEqual(parse_webhook_limit("10"), 10)
        for bad in ("-1", "1.5", "x", ""):
            self.assertRaises(UsageProblem, parse_webhook_limit, bad)
        self.assertRaises(UsageProblem, Webhook, "nope", self.clock)
        self.assertRaises(UsageProblem, self.webhook, -1)


# -- real HTTP ----------------------------------------------------------------


def reactor() -> Any:
    from twisted.internet import reactor

    return reactor


class Receiver(Resource):
    """
    A twisted.web resource that records each POST and answers 200.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.posts: list[tuple[dict[str, list[str]], bytes]] = []
        self.arrived: Deferred[None] = Deferred()

    def render_POST(self, request: Any) -> bytes:
        headers = {
            k.decode().lower(): [v.decode() for v in vs]
            for k, vs in request.requestHeaders.getAllRawHeaders()
        }
        self.posts.append((headers, request.content.read()))
        if not self.arrived.called:
            self.arrived.callback(None)
        return b"thanks"


@pytest_twisted.ensureDeferred
async def test_twisted_web_receiver() -> None:
    """
    Posted through the real Agent to a twisted.web server on loopback: the
    receiver gets the JSON summary with Mailpit's headers, counted sent.
    """
    receiver = Receiver()
    port = reactor().listenTCP(0, Site(receiver), interface="127.0.0.1")
    try:
        counters = DeliveryCounters()
        url = f"http://127.0.0.1:{port.getHost().port}/hook"
        hook = Webhook(url, reactor(), counters=counters, label="lab")
        hook.feed(summary())
        await hook.when_idle()
        [(headers, body)] = receiver.posts
        assert json.loads(body) == summary()
        assert headers["content-type"] == ["application/json"]
        assert headers["mailpit-label"] == ["lab"]
        assert counters == DeliveryCounters(sent=1)
        await hook.stop()
    finally:
        await port.stopListening()


@dataclass
class Peer:
    url: str
    posts: list[tuple[str, dict[str, str], bytes]]


def _handler(posts: list[Any], status: int) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            posts.append(
                (self.path, dict(self.headers.items()), self.rfile.read(length))
            )
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> ServerCertificate:
    return make_server_certificate(tmp_path_factory.mktemp("certs"))


def http_server(
    status: int = 200, certificate: ServerCertificate | None = None
) -> Iterator[Peer]:
    posts: list[Any] = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(posts, status))
    scheme = "http"
    if certificate is not None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certificate.cert, certificate.key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Peer(f"{scheme}://localhost:{server.server_port}/hooks/mail", posts)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


@pytest.fixture
def stdlib_peer() -> Iterator[Peer]:
    yield from http_server()


@pytest.fixture
def failing_peer() -> Iterator[Peer]:
    yield from http_server(status=503)


@pytest.fixture
def https_peer(certificate: ServerCertificate) -> Iterator[Peer]:
    yield from http_server(certificate=certificate)


@pytest_twisted.ensureDeferred
async def test_stdlib_http_server(stdlib_peer: Peer) -> None:
    """
    Python's http.server gets one POST per message, each the message's
    summary, within the rate limit (3 a second: 3 messages in one go).
    """
    counters = DeliveryCounters()
    hook = Webhook(stdlib_peer.url, reactor(), 3, counters=counters)
    for n in range(3):
        hook.feed(summary(n))
    await hook.when_idle()
    assert sorted(json.loads(body)["ID"] for _, _, body in stdlib_peer.posts) == [
        "id0",
        "id1",
        "id2",
    ]
    assert {path for path, _, _ in stdlib_peer.posts} == {"/hooks/mail"}
    assert counters == DeliveryCounters(sent=3)
    await hook.stop()


@pytest_twisted.ensureDeferred
async def test_receiver_error_counted(failing_peer: Peer) -> None:
    """
    A receiver answering 503 has the post counted as failed.
    """
    counters = DeliveryCounters()
    hook = Webhook(failing_peer.url, reactor(), counters=counters)
    hook.feed(summary())
    await hook.when_idle()
    assert len(failing_peer.posts) == 1
    assert counters == DeliveryCounters(failed=1)
    await hook.stop()


@pytest_twisted.ensureDeferred
async def test_https_verified(https_peer: Peer, certificate: ServerCertificate) -> None:
    """
    Over HTTPS the certificate is verified: trusted through the CA file it
    is posted to; with the system's trust store (which does not know the
    test CA) nothing is posted and the failure is counted.
    """
    trusted = DeliveryCounters()
    hook = Webhook(
        https_peer.url, reactor(), counters=trusted, cafile=str(certificate.ca)
    )
    hook.feed(summary(1))
    await hook.when_idle()
    assert trusted == DeliveryCounters(sent=1)
    assert [json.loads(body)["ID"] for _, _, body in https_peer.posts] == ["id1"]
    await hook.stop()

    untrusted = DeliveryCounters()
    with capturedLogs() as events:
        hook = Webhook(https_peer.url, reactor(), counters=untrusted)
        hook.feed(summary(2))
        await hook.when_idle()
    assert untrusted == DeliveryCounters(failed=1)
    assert len(https_peer.posts) == 1
    assert any(
        formatEvent(e).endswith("failed: TLS failed: certificate verify failed")
        for e in events
    ), [formatEvent(e) for e in events]
    await hook.stop()
