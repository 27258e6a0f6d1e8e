"""
Mailpit's webhook: a JSON POST to a configured URL for each new message
(C{--webhook URL}, at most C{--webhook-limit N} a second): L{Webhook}.

The body is Mailpit's: the new message's summary, the object its API lists
messages with (C{MessageSummary}: ID, MessageID, From, To, Subject, Tags,
Snippet...).  This module does not build it: the caller passes the dict
its HTTP API already makes, so that the webhook and the API never differ.
Headers are Mailpit's too: C{Content-Type: application/json} and, with a
label, C{Mailpit-Label}.

Posting never holds a delivery: L{Webhook.feed} queues the body and
returns.  Requests go out through C{twisted.web.client.Agent} (HTTPS
certificates and host names verified), at most C{limit_per_second} in any
second; what cannot go yet waits in a queue of at most C{max_queue}.  Past
that bound a message is dropped, with a log line, and counted (Mailpit
drops every message within its interval; here only what overflows is
dropped).  A request that fails, times out or is answered with a status
other than 2xx is logged and counted, and not retried (as in Mailpit).

How it is meant to be hooked in:

  - tap options: C{parse_webhook_url(text)} for C{--webhook},
    C{parse_webhook_limit(text)} for C{--webhook-limit} (default 1; 0 means
    no limit), turning L{UsageProblem} into C{usage.UsageError}.
  - MailLab::

        webhook = Webhook(url, reactor, limit_per_second=limit,
                          counters=stats.webhook, label=label)
        # once a message is stored and its summary made (never waited for):
        webhook.feed(summary_dict)
        # on stopService (it returns a Deferred):
        return webhook.stop()
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer, IResponse
from zope.interface import implementer

from twisted_netlab import __version__
from twisted_netlab.errors import UsageProblem
from twisted_netlab.mail.lab.stats import DeliveryCounters

log = Logger()


def parse_webhook_url(text: str) -> str:
    """
    C{--webhook URL}: an C{http://} or C{https://} URL with a host.

    @raise UsageProblem: anything else.
    """
    try:
        parts = urlsplit(text)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        port_ok = False
        parts = urlsplit("")
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or not port_ok
        or not text.isascii()
        or any(c.isspace() for c in text)
    ):
        raise UsageProblem(
            f"--webhook {text!r} is not an http:// or https:// URL with a host"
        )
    return text


def parse_webhook_limit(text: str) -> int:
    """
    C{--webhook-limit N}: requests a second, 0 for no limit.

    @raise UsageProblem: not a whole number of 0 or more.
    """
    if not text.isdigit():
        raise UsageProblem(
            f"--webhook-limit must be a whole number of requests a second "
            f"(0 for no limit), not {text!r}"
        )
    return int(text)


def _shown_url(url: str) -> str:
    """
    The URL for the log: without its query, fragment or user info, which
    may carry a token.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


@implementer(IBodyProducer)
class _BodyBytes:
    """
    A request body already in memory.
    """

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.length = len(body)

    def startProducing(self, consumer: Any) -> Deferred[None]:
        consumer.write(self.body)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class _Discard(Protocol):
    """
    Reads a response body and throws it away.
    """

    def dataReceived(self, data: bytes) -> None:
        pass


def _default_agent(
    reactor: Any, cafile: str | None, connections: int
) -> tuple[Any, Any]:
    """
    An Agent that verifies HTTPS (against C{cafile}'s certificates or the
    system's), and its pool, which keeps up to C{connections} connections
    open for reuse.
    """
    from twisted.internet import ssl
    from twisted.web.client import Agent, BrowserLikePolicyForHTTPS, HTTPConnectionPool

    from twisted_netlab.mail.tls import load_ca_certificates, require_tls_support

    trust = None
    if cafile is not None:
        require_tls_support()
        trust = ssl.trustRootFromCertificates(load_ca_certificates(cafile))
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = connections
    policy = BrowserLikePolicyForHTTPS(trust)
    return Agent(reactor, contextFactory=policy, pool=pool), pool


def _reason(failure: Failure) -> str:
    """
    Why a request failed, in one line: the first of the reasons Twisted's
    HTTP client wraps, TLS errors spelled out.
    """
    reasons = getattr(failure.value, "reasons", None)
    if reasons and isinstance(reasons[0], Failure):
        failure = reasons[0]
    if failure.check("service_identity.exceptions.VerificationError"):
        return "the server's certificate is not valid for its host name"
    if failure.check("OpenSSL.SSL.Error"):
        args = getattr(failure.value, "args", ())
        errors = args[0] if args and isinstance(args[0], list) else []
        detail = "; ".join(str(e[-1]) for e in errors if isinstance(e, tuple) and e)
        return f"TLS failed: {detail or failure.value}"
    return failure.getErrorMessage() or repr(failure.value)


class Webhook:
    """
    POSTs a JSON body to one URL for each message fed to it, in the
    background and rate-limited.
    """

    def __init__(
        self,
        url: str,
        reactor: Any,
        limit_per_second: int = 1,
        *,
        agent: Any = None,
        counters: DeliveryCounters | None = None,
        max_queue: int = 1000,
        timeout: float = 5.0,
        concurrency: int = 4,
        label: str | None = None,
        cafile: str | None = None,
    ) -> None:
        """
        @param reactor: provides C{IReactorTime} (the rate limit and the
            timeout run on it) and, without C{agent}, what
            C{twisted.web.client.Agent} needs.
        @param limit_per_second: at most this many requests start in any
            second; 0 for no limit.
        @param agent: an C{IAgent}; by default an C{Agent} that verifies
            HTTPS certificates against the system's trust store, or
            C{cafile}'s certificates.
        @param counters: counts sent, failed and dropped requests (e.g.
            C{RuntimeStats.webhook}).
        @param max_queue: bodies kept waiting at most; past it they are
            dropped.
        @param timeout: seconds a request may take until its response's
            headers.
        @param concurrency: requests in flight at most.
        @param label: sent as C{Mailpit-Label}, as Mailpit's C{--label}.
        """
        parse_webhook_url(url)
        if limit_per_second < 0 or max_queue < 1 or concurrency < 1:
            raise UsageProblem(
                "the webhook's limit must be 0 or more, its queue and "
                "concurrency 1 or more"
            )
        self.url = url
        self._shown_url = _shown_url(url)
        self._clock = reactor
        self._limit = limit_per_second
        self._pool: Any = None
        if agent is None:
            agent, self._pool = _default_agent(reactor, cafile, concurrency)
        self._agent = agent
        self.counters = counters if counters is not None else DeliveryCounters()
        self._max_queue = max_queue
        self._timeout = timeout
        self._concurrency = concurrency
        headers = {
            b"User-Agent": [f"netlab/{__version__}".encode()],
            b"Content-Type": [b"application/json"],
        }
        if label:
            headers[b"Mailpit-Label"] = [label.encode()]
        self._headers = headers
        self._queue: deque[tuple[bytes, str]] = deque()
        self._started: deque[float] = deque()
        self._in_flight: dict[int, Deferred[Any]] = {}
        self._wakeup: Any = None
        self._requests = 0
        self._idle: list[Deferred[None]] = []
        self._stopped = False

    @property
    def pending(self) -> int:
        """
        Bodies queued or being posted.
        """
        return len(self._queue) + len(self._in_flight)

    def feed(self, summary: Mapping[str, Any]) -> None:
        """
        Post C{summary} (the new message's C{MessageSummary} dict) as
        JSON, in the background: this returns at once and never raises.
        """
        name = str(summary.get("ID", "")) or "a message"
        try:
            body = json.dumps(
                summary, ensure_ascii=False, separators=(",", ":")
            ).encode("utf-8")
        except (TypeError, ValueError) as e:
            self.counters.failed += 1
            log.warn("webhook: cannot post {name}: {reason}", name=name, reason=e)
            return
        if self._stopped or len(self._queue) >= self._max_queue:
            self.counters.dropped += 1
            log.warn(
                "webhook: not posting {name} to {url}: {reason}",
                name=name,
                url=self._shown_url,
                reason="the lab is stopping"
                if self._stopped
                else f"{len(self._queue)} requests are waiting already",
            )
            return
        self._queue.append((body, name))
        self._pump()

    def when_idle(self) -> Deferred[None]:
        """
        A Deferred that fires once nothing is queued or in flight.
        """
        waiting: Deferred[None] = Deferred()
        if self.pending:
            self._idle.append(waiting)
        else:
            waiting.callback(None)
        return waiting

    def stop(self) -> Deferred[None]:
        """
        Drop what is queued (counted), cancel the requests in flight, and
        take no more.

        @return: fires once the connections kept open for reuse are closed.
        """
        self._stopped = True
        if self._wakeup is not None and self._wakeup.active():
            self._wakeup.cancel()
        self._wakeup = None
        dropped = self.pending
        self._queue.clear()
        in_flight = list(self._in_flight.values())
        self._in_flight.clear()
        for d in in_flight:
            d.cancel()
        if dropped:
            self.counters.dropped += dropped
            log.warn("webhook stopped: {count} requests not made", count=dropped)
        self._check_idle()
        if self._pool is None:
            return succeed(None)
        closing: Deferred[None] = self._pool.closeCachedConnections()
        return closing

    def _pump(self) -> None:
        now = self._clock.seconds()
        while self._started and self._started[0] <= now - 1.0:
            self._started.popleft()
        while self._queue and len(self._in_flight) < self._concurrency:
            if self._limit and len(self._started) >= self._limit:
                self._wake_at(self._started[0] + 1.0 - now)
                return
            body, name = self._queue.popleft()
            self._started.append(now)
            self._post(body, name)

    def _wake_at(self, delay: float) -> None:
        if self._wakeup is None or not self._wakeup.active():
            self._wakeup = self._clock.callLater(max(delay, 0.0), self._pump)

    def _post(self, body: bytes, name: str) -> None:
        self._requests += 1
        key = self._requests
        try:
            requesting: Deferred[Any] = self._agent.request(
                b"POST",
                self.url.encode("ascii", "strict"),
                Headers(self._headers),
                _BodyBytes(body),
            )
        except Exception as e:
            requesting = Deferred()
            requesting.errback(e)
        self._in_flight[key] = requesting
        requesting.addTimeout(self._timeout, self._clock)
        requesting.addBoth(self._answered, key, name)

    def _answered(self, outcome: IResponse | Failure, key: int, name: str) -> None:
        if self._in_flight.pop(key, None) is None:
            return  # stopped meanwhile
        if isinstance(outcome, Failure):
            self.counters.failed += 1
            log.warn(
                "webhook: posting {name} to {url} failed: {reason}",
                name=name,
                url=self._shown_url,
                reason=_reason(outcome),
            )
        else:
            outcome.deliverBody(_Discard())
            if 200 <= outcome.code < 300:
                self.counters.sent += 1
            else:
                self.counters.failed += 1
                log.warn(
                    "webhook: {url} answered {code} to the post of {name}",
                    url=self._shown_url,
                    code=outcome.code,
                    name=name,
                )
        self._pump()
        self._check_idle()

    def _check_idle(self) -> None:
        if not self.pending:
            waiting, self._idle = self._idle, []
            for d in waiting:
                d.callback(None)


__all__ = ["Webhook", "parse_webhook_limit", "parse_webhook_url"]
