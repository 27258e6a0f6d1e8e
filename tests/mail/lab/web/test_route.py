"""
Tests for L{twisted_netlab.mail.lab.web.route} (the resource every path of
the API is) and L{twisted_netlab.mail.lab.web.v1} (where route families are
registered), through twisted.web's own request handling, in memory.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from tests.scratch import fresh_path
from twisted_netlab.mail.lab.store.catalog import Catalog, WaitTimeout
from twisted_netlab.mail.lab.store.maildir import MailStore
from twisted_netlab.mail.lab.web import v1
from twisted_netlab.mail.lab.web.api import LabAPI
from twisted_netlab.mail.lab.web.message import MessageRoute
from twisted_netlab.mail.lab.web.route import (
    BadRequest,
    NotFound,
    Route,
    send_json,
    send_text,
)


class Answer:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        status, *lines = head.decode("latin-1").split("\r\n")
        self.status = int(status.split()[1])
        self.headers = {
            name.lower(): value
            for name, _, value in (line.partition(": ") for line in lines)
        }


class Connection:
    """One HTTP connection to C{resource}'s site, in memory."""

    def __init__(self, resource: IResource) -> None:
        self.site = Site(resource, reactor=Clock())
        self.protocol = self.site.buildProtocol(None)
        self.transport = StringTransport()
        self.protocol.makeConnection(self.transport)

    def send(self, method: str, path: str) -> None:
        self.protocol.dataReceived(
            f"{method} {path} HTTP/1.0\r\nHost: localhost\r\n\r\n".encode()
        )

    def answer(self) -> Answer:
        return Answer(self.transport.value())

    def close(self) -> None:
        self.protocol.connectionLost(Failure(ConnectionDone()))


def ask(resource: IResource, method: str, path: str) -> Answer:
    connection = Connection(resource)
    connection.send(method, path)
    return connection.answer()


class Greeting(Route):
    def render_GET(self, request: Request) -> bytes:
        return send_text(request, "hello\n")

    def render_PUT(self, request: Request) -> bytes:
        return send_text(request, "put\n")


class Endless(Route):
    answers_head = False

    def render_GET(self, request: Request) -> bytes:
        return send_text(request, "endless\n")


class Failing(Route):
    def render_GET(self, request: Request) -> bytes:
        raise BadRequest("limit must be whole")

    def render_DELETE(self, request: Request) -> bytes:
        raise NotFound("no message x")


class Later(Route):
    def __init__(self) -> None:
        super().__init__()
        self.pending: list[Deferred[Any]] = []
        self.cancelled: list[Deferred[Any]] = []

    def render_GET(self, request: Request) -> Deferred[Any]:
        d: Deferred[Any] = Deferred(self.cancelled.append)
        self.pending.append(d)
        return d


def tree() -> Route:
    root = Route()
    root.putChild(b"greeting", Greeting())
    root.putChild(b"endless", Endless())
    root.putChild(b"failing", Failing())
    return root


class RouteTests(SynchronousTestCase):
    def test_methods(self) -> None:
        """
        A route answers the methods it has a render_ method for, HEAD as
        GET without the body; another method is a one-line 405; every
        answer carries the API's security headers.
        """
        root = tree()
        self.assertEqual(ask(root, "GET", "/greeting").body, b"hello\n")
        self.assertEqual(ask(root, "PUT", "/greeting").body, b"put\n")
        head = ask(root, "HEAD", "/greeting")
        self.assertEqual((head.status, head.body), (200, b""))
        refused = ask(root, "DELETE", "/greeting")
        self.assertEqual((refused.status, refused.body), (405, b"method not allowed\n"))
        for answer in (head, refused):
            self.assertEqual(answer.headers["x-content-type-options"], "nosniff")
            self.assertIn("sandbox", answer.headers["content-security-policy"])
        self.assertEqual(Greeting.methods, frozenset({"GET", "PUT"}))

    def test_no_head(self) -> None:
        """
        A route that does not answer HEAD as GET refuses it with 405.
        """
        self.assertEqual(ask(tree(), "HEAD", "/endless").status, 405)
        self.assertEqual(ask(tree(), "GET", "/endless").status, 200)

    def test_paths(self) -> None:
        """
        Empty segments are skipped and names decoded (once more than
        twisted.web does); a route with no methods of its own, an unknown
        name, or a path below a route without children is a 404.
        """
        root = tree()
        for path in ("//greeting", "/greeting/", "/gr%65eting", "/gr%2565eting"):
            self.assertEqual(ask(root, "GET", path).body, b"hello\n", path)
        for path in ("/", "/nothing", "/greeting/more", "/nothing/more"):
            answer = ask(root, "GET", path)
            self.assertEqual((answer.status, answer.body), (404, b"no such path\n"))

    def test_errors(self) -> None:
        """
        BadRequest is a 400 and NotFound a 404, each with its one line.
        """
        bad = ask(tree(), "GET", "/failing")
        self.assertEqual((bad.status, bad.body), (400, b"limit must be whole\n"))
        missing = ask(tree(), "DELETE", "/failing")
        self.assertEqual((missing.status, missing.body), (404, b"no message x\n"))

    def test_later(self) -> None:
        """
        A Deferred answer is sent as JSON when it fires; a WaitTimeout is a
        408, another failure a logged 500 that shows nothing of it.
        """
        for outcome, status, body in [
            ({"count": 1}, 200, b'{"count": 1}'),
            (Failure(WaitTimeout("nothing came")), 408, b"nothing came\n"),
            (Failure(ZeroDivisionError("secret")), 500, b"internal error\n"),
        ]:
            later = Later()
            connection = Connection(later)
            connection.send("GET", "/")
            self.assertEqual(connection.transport.value(), b"")
            [d] = later.pending
            if isinstance(outcome, Failure):
                d.errback(outcome)
            else:
                d.callback(outcome)
            answer = connection.answer()
            self.assertEqual((answer.status, answer.body), (status, body))
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_client_gone(self) -> None:
        """
        When the client goes before the answer, its Deferred is cancelled.
        """
        later = Later()
        connection = Connection(later)
        connection.send("GET", "/")
        [d] = later.pending
        connection.close()
        self.assertEqual(later.cancelled, [d])
        self.assertEqual(connection.transport.value(), b"")


class Subject(MessageRoute):
    """A route below a message: its subject, or 404 when it is gone."""

    def render_GET(self, request: Request) -> bytes:
        return send_json(request, {"Subject": self.parsed().subject})


class Stamp(Route):
    def __init__(self, api: LabAPI) -> None:
        super().__init__()
        self.api = api

    def render_POST(self, request: Request) -> bytes:
        return send_json(request, {"Messages": self.api.info()["Messages"]})


class RegistrationTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.store = MailStore(fresh_path(self, "mail"))
        self.store.deliver("bob@example.test", b"Subject: hi\r\n\r\nbody\r\n")
        self.api = LabAPI(Catalog(self.store, Clock()), Clock())

    def register(self, name: str, table: str, entry: Any) -> None:
        original: Mapping[str, Any] = getattr(v1, table)
        self.patch(v1, table, {**original, name: entry})

    def test_family_under_v1(self) -> None:
        """
        A route family in v1.ROUTES is served as /api/v1/NAME, made from the
        API, beside the built-in ones.
        """
        self.register("stamp", "ROUTES", Stamp)
        resource = v1.APIResource(self.api)
        answer = ask(resource, "POST", "/stamp")
        self.assertEqual((answer.status, answer.body), (200, b'{"Messages": 1}'))
        self.assertEqual(ask(resource, "GET", "/stamp").status, 405)
        self.assertEqual(ask(resource, "GET", "/info").status, 200)

    def test_path_below_a_message(self) -> None:
        """
        A route in v1.MESSAGE_ROUTES is served below each message, with the
        message's ID (or latest); an unknown ID is a 404.
        """
        self.register("subject", "MESSAGE_ROUTES", Subject)
        resource = v1.APIResource(self.api)
        [entry] = self.api.catalog.entries()
        for message_id in (entry.id, "latest"):
            answer = ask(resource, "GET", f"/message/{message_id}/subject")
            self.assertEqual(answer.body, b'{"Subject": "hi"}')
        missing = ask(resource, "GET", "/message/nope/subject")
        self.assertEqual((missing.status, missing.body), (404, b"no message nope\n"))
        self.assertEqual(ask(resource, "GET", f"/message/{entry.id}/raw").status, 200)
