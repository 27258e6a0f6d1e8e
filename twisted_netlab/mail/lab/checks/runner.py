"""
The checks of the lab's stored messages, as the HTTP API, the Python API
and the inbox ask for them: L{CheckRunner} finds a message's bytes and
envelope, runs the check on request (never at delivery) and keeps its
answer in a bounded cache.

What is cached, and for how long (docs/checks.rst, "Cache"):

  - an answer is cached per message: keyed by the message's ID, its
    content stamp (the file's size and modification time, which a flag
    change keeps and a rewrite changes: a message rewritten behind the
    lab's back is checked again), the check and its options (the link
    check's C{follow});
  - C{html}, C{lint} and C{spam} answers are kept until the message
    changes or the cache is full (the least recently used go first);
  - C{auth} likewise with a records file (its DNS cannot change while the
    lab runs), and for L{NETWORK_TTL} seconds with the system's resolver;
  - C{links} answers for L{NETWORK_TTL} seconds: the network they describe
    changes on its own;
  - an answer that says the check could not be done now (the spam check's
    C{Error}: no spamd, spamd down; a DNS C{temperror} in the auth check)
    is not kept, nor a failure (L{CheckError}): asking again tries again.

Requests for an answer that is being computed share that computation.
"""

from __future__ import annotations

import importlib
import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, fail
from twisted.python.failure import Failure

from twisted_netlab.errors import NetlabError
from twisted_netlab.mail.lab.checks.context import (
    Arrival,
    CheckContext,
    CheckError,
    CheckSettings,
)
from twisted_netlab.mail.lab.checks.results import result_of
from twisted_netlab.mail.lab.store.catalog import Catalog, Entry
from twisted_netlab.mail.lab.store.envelope import Envelope
from twisted_netlab.mail.lab.store.errors import MessageGone

#: The checks, by the name the Python API and the inbox use, with the path
#: of their HTTP route below C{/api/v1/message/{ID}/}.
ROUTES: Mapping[str, str] = {
    "html": "html-check",
    "links": "link-check",
    "spam": "sa-check",
    "auth": "auth-check",
    "lint": "lint",
}
#: How many answers the cache keeps (the least recently used go first).
CACHE_SIZE = 256
#: Seconds an answer about the network is kept (links; auth over the
#: system's resolver).
NETWORK_TTL = 60.0


class NoSuchMessage(NetlabError, LookupError):
    """
    The lab has no message of that ID (or it was deleted).
    """


class UnknownCheck(CheckError):
    """
    No check has that name: C{str()} lists the names.
    """


def arrival_of(envelope: Envelope | None) -> Arrival:
    """
    The L{Arrival} of a stored message's envelope (none: an empty one).
    A client that is not an IP address (C{"unix"}, a UNIX socket) is an
    unknown C{client_ip}.
    """
    if envelope is None:
        return Arrival()
    try:
        client_ip = str(ipaddress.ip_address(envelope.client))
    except ValueError:
        client_ip = ""
    return Arrival(
        mail_from=envelope.mail_from,
        rcpt_to=tuple(envelope.rcpt_to),
        client_ip=client_ip,
        helo=envelope.helo or "",
        smtputf8=envelope.smtputf8,
    )


def _options(name: str, options: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    """
    The options that change a check's answer, normalised for the cache
    key: only the link check has one, C{follow}.
    """
    if name != "links":
        return ()
    value = options.get("follow", False)
    if isinstance(value, str):
        value = value.strip().lower() in ("1", "true", "yes", "on")
    return (("follow", bool(value)),)


def _worth_keeping(name: str, answer: Mapping[str, Any]) -> bool:
    """
    Whether an answer describes the message (keep it) rather than a check
    that could not be done now (ask again).
    """
    if name == "spam":
        return not answer.get("Error")
    if name == "auth":
        results = [s.get("Result") for s in answer.get("DKIM") or ()]
        results.append((answer.get("SPF") or {}).get("Result"))
        results.append((answer.get("DMARC") or {}).get("Result"))
        return "temperror" not in results
    return True


@dataclass
class _Kept:
    answer: dict[str, Any]
    #: When it stops being good (reactor seconds), or None: while the
    #: message does not change.
    expires: float | None


class CheckRunner:
    """
    Runs the checks on the lab's messages with the lab's settings, and
    caches their answers (see the module's docstring).  Runs in the reactor
    thread.

    @param reactor: given to the checks (threads, connections, timeouts);
        its C{seconds()} times the answers that expire.
    @param settings: the lab's settings for the checks.
    @param cache_size: how many answers are kept at most.
    @param checks: the check functions by name (default: the modules of
        L{twisted_netlab.mail.lab.checks}, imported when first used).
    """

    def __init__(
        self,
        reactor: Any,
        settings: CheckSettings | None = None,
        *,
        cache_size: int = CACHE_SIZE,
        checks: Mapping[str, Callable[[bytes, CheckContext], Deferred[Any]]]
        | None = None,
    ) -> None:
        self.reactor = reactor
        self.settings = settings if settings is not None else CheckSettings()
        self.cache_size = cache_size
        self._checks = dict(checks) if checks is not None else None
        self._kept: OrderedDict[tuple[Any, ...], _Kept] = OrderedDict()
        self._running: dict[tuple[Any, ...], list[Deferred[dict[str, Any]]]] = {}
        #: How many answers were computed, and how many came from the cache.
        self.computed = 0
        self.hits = 0

    def __len__(self) -> int:
        return len(self._kept)

    def clear(self) -> None:
        """
        Forget every kept answer (the lab was reset).
        """
        self._kept.clear()

    def _check(self, name: str) -> Callable[[bytes, CheckContext], Deferred[Any]]:
        if name not in ROUTES:
            raise UnknownCheck(
                f"no check named {name!r}: the checks are {', '.join(ROUTES)}"
            )
        if self._checks is not None:
            return self._checks[name]
        module = importlib.import_module(f"twisted_netlab.mail.lab.checks.{name}")
        check: Callable[[bytes, CheckContext], Deferred[Any]] = module.check
        return check

    def _ttl(self, name: str) -> float | None:
        if name == "links":
            return NETWORK_TTL
        if name == "auth" and self.settings.dns_records is None:
            return NETWORK_TTL
        return None

    def _now(self) -> float:
        seconds = getattr(self.reactor, "seconds", None)
        return float(seconds()) if seconds is not None else 0.0

    def run(
        self, entry: Entry, name: str, options: Mapping[str, Any] | None = None
    ) -> Deferred[dict[str, Any]]:
        """
        The answer of check C{name} for the message of C{entry}, from the
        cache or computed now.

        @return: a Deferred that fires with the check's JSON-ready answer,
            or fails with L{UnknownCheck}, L{CheckError} (the check could
            not run) or C{MessageGone} (the message was deleted).
        """
        options = dict(options or {})
        try:
            check = self._check(name)
            stamp = entry.folder.stamp(entry.uid)
        except Exception:
            return fail()
        key = (entry.id, stamp, name, _options(name, options))
        kept = self._kept.get(key)
        if kept is not None:
            if kept.expires is None or self._now() < kept.expires:
                self._kept.move_to_end(key)
                self.hits += 1
                return _fired(kept.answer)
            del self._kept[key]
        waiting = self._running.get(key)
        if waiting is not None:
            return self._waiter(waiting)
        waiting = self._running[key] = []
        mine = self._waiter(waiting)  # before the start: it may answer at once
        self._start(key, entry, name, check, options)
        return mine

    def result(
        self,
        catalog: Catalog,
        message_id: str,
        name: str,
        options: Mapping[str, Any] | None = None,
    ) -> Deferred[Any]:
        """
        The result object (L{results}) of check C{name} for the message
        C{message_id} of C{catalog} (or C{"latest"}), for the Python API.

        @return: a Deferred that fires with the result, or fails with
            L{NoSuchMessage}, L{UnknownCheck} or L{CheckError}.
        """
        entry = catalog.get(message_id)
        if entry is None:
            return fail(NoSuchMessage(f"no message {message_id}"))

        def gone(failure: Failure) -> Any:
            failure.trap(MessageGone)
            raise NoSuchMessage(f"no message {message_id}")

        answer = self.run(entry, name, options).addErrback(gone)
        return answer.addCallback(lambda value: result_of(name, value))

    def _waiter(
        self, waiting: list[Deferred[dict[str, Any]]]
    ) -> Deferred[dict[str, Any]]:
        """
        A Deferred for one asker of a running check: cancelling it (the
        HTTP client went away) lets the check finish for the others, and
        for the cache.
        """

        def cancel(d: Deferred[dict[str, Any]]) -> None:
            if d in waiting:
                waiting.remove(d)

        d: Deferred[dict[str, Any]] = Deferred(cancel)
        waiting.append(d)
        return d

    def _start(
        self,
        key: tuple[Any, ...],
        entry: Entry,
        name: str,
        check: Callable[[bytes, CheckContext], Deferred[Any]],
        options: dict[str, Any],
    ) -> None:
        # The stamp was taken before the bytes are read: a rewrite between
        # the two is cached under the old stamp, and checked again next time.
        try:
            raw = entry.raw()
            context = CheckContext(
                self.reactor, arrival_of(entry.envelope), self.settings, options
            )
            computed: Deferred[dict[str, Any]] = check(raw, context)
        except Exception:
            computed = fail()
        self.computed += 1

        def done(answer: dict[str, Any]) -> None:
            if _worth_keeping(name, answer):
                ttl = self._ttl(name)
                expires = None if ttl is None else self._now() + ttl
                self._kept[key] = _Kept(answer, expires)
                while len(self._kept) > self.cache_size:
                    self._kept.popitem(last=False)
            for d in self._running.pop(key, []):
                d.callback(answer)

        def failed(failure: Failure) -> None:
            for d in self._running.pop(key, []):
                d.errback(failure)

        computed.addCallbacks(done, failed)


def _fired(answer: dict[str, Any]) -> Deferred[dict[str, Any]]:
    d: Deferred[dict[str, Any]] = Deferred()
    d.callback(answer)
    return d


__all__ = [
    "CACHE_SIZE",
    "NETWORK_TTL",
    "ROUTES",
    "CheckRunner",
    "NoSuchMessage",
    "UnknownCheck",
    "arrival_of",
]
