"""
The lab's one L{Faults} registry, which every listener asks at each stage,
and the L{FaultHandle}s of the faults in it: which attempts a fault selects
(patterns, client networks, probability, C{times}, greylisting), its hits,
and the log of each hit.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import itertools
import random
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from twisted.logger import Logger

from twisted_netlab.mail.lab.faults.model import Attempt, Fault, FaultSpecError
from twisted_netlab.mail.lab.faults.spec import parse_fault, parse_stage

#: The faults' log (under the package's name, which its lines have always had).
log = Logger(namespace="twisted_netlab.mail.lab.faults")

#: Sender+recipient pairs a greylisting fault remembers (the least recently
#: seen are forgotten first).
_MAX_PAIRS = 100_000


def _matches(pattern: str | None, value: str | None) -> bool:
    if pattern is None:
        return True
    if value is None:
        return False
    return fnmatch.fnmatchcase(value.lower(), pattern.lower())


def _client_matches(pattern: str | None, client: str) -> bool:
    if pattern is None:
        return True
    try:
        network = ipaddress.ip_network(pattern, strict=False)
    except ValueError:
        return fnmatch.fnmatchcase(client.lower(), pattern.lower())
    try:
        address = ipaddress.ip_address(client.split("%")[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return address.version == network.version and address in network


class FaultHandle:
    """
    A fault in a L{Faults} registry: its settings (C{fault}), how often it
    hit (C{hits}); L{remove} takes it out.  As a context manager it is
    removed when the block ends::

        with lab.faults.add("rcpt:reply=451:times=2") as fault:
            ...
        assert fault.hits == 2
    """

    def __init__(
        self, registry: Faults, number: int, fault: Fault, rng: random.Random
    ) -> None:
        self.registry = registry
        self.id = number
        self.fault = fault
        #: How many attempts this fault hit.
        self.hits = 0
        #: How many matching attempts it was asked about.
        self.attempts = 0
        self._rng = rng
        self._pairs: dict[tuple[str, tuple[str, ...]], int] = {}
        self._times_left = fault.times

    def __repr__(self) -> str:
        return f"<FaultHandle {self.id} {self.fault.spec()!r} hits={self.hits}>"

    @property
    def spec(self) -> str:
        return self.fault.spec()

    @property
    def exhausted(self) -> bool:
        """
        Whether a C{times=N} fault has hit its N times.
        """
        return self._times_left == 0

    def remove(self) -> None:
        """
        Take this fault out of its registry (again: nothing).
        """
        self.registry.remove(self)

    def __enter__(self) -> FaultHandle:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def to_json(self) -> dict[str, Any]:
        """
        This fault as the HTTP API shows it.
        """
        return {
            "ID": self.id,
            "Spec": self.fault.spec(),
            "Stage": self.fault.where,
            "Action": self.fault.action.describe(),
            "Hits": self.hits,
            "Remaining": self._times_left,
        }

    def _select(self, attempt: Attempt, stage: str) -> bool:
        fault = self.fault
        if self._times_left == 0:
            return False
        if not (
            _client_matches(fault.client, attempt.client)
            and _matches(fault.user, attempt.user)
            and _matches(fault.sender, attempt.sender)
        ):
            return False
        if fault.recipient is not None and not any(
            _matches(fault.recipient, r) for r in attempt.recipients
        ):
            return False
        self.attempts += 1
        if fault.greylist is not None:
            key = (
                (attempt.sender or "").lower(),
                tuple(r.lower() for r in attempt.recipients),
            )
            seen = self._pairs.pop(key, 0)
            self._pairs[key] = seen + 1
            if len(self._pairs) > _MAX_PAIRS:
                del self._pairs[next(iter(self._pairs))]  # the least recent
            if seen >= fault.greylist:
                return False
        if fault.probability < 1.0 and self._rng.random() >= fault.probability:
            return False
        if self._times_left is not None:
            self._times_left -= 1
        self.hits += 1
        return True


class Faults:
    """
    The lab's faults, asked by every listener at each stage.

    @param seed: makes the probabilities repeatable (C{--fault-seed}).
    @param reactor: schedules delays and throttling.
    """

    def __init__(
        self,
        faults: Iterable[str | Fault] = (),
        *,
        seed: int | None = None,
        reactor: Any = None,
    ) -> None:
        self.seed = seed
        self.reactor = reactor
        self._handles: list[FaultHandle] = []
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        #: Hits, by stage name (C{"smtp.rcpt"}), since the lab started.
        self.hits: dict[str, int] = {}
        for fault in faults:
            self.add(fault)

    def __iter__(self) -> Iterator[FaultHandle]:
        with self._lock:
            return iter(list(self._handles))

    def __len__(self) -> int:
        return len(self._handles)

    def add(self, fault: str | Fault | None = None, /, **settings: Any) -> FaultHandle:
        """
        Add a fault: a spec (C{"rcpt:reply=451:times=2"}), a L{Fault}, or
        L{Fault}'s fields as keywords with C{stage} as a spec names it
        (C{add(stage="smtp.rcpt", action=Reply(451), times=2)}).

        @raise FaultSpecError: the fault makes no sense.
        """
        if fault is None:
            stage = settings.pop("stage", None)
            if not isinstance(stage, str):
                raise FaultSpecError("a fault needs a stage")
            protocol, name = parse_stage(stage)
            fault = Fault(protocol=protocol, stage=name, **settings)
        elif isinstance(fault, str):
            if settings:
                raise FaultSpecError("give a spec or keywords, not both")
            fault = parse_fault(fault)
        with self._lock:
            number = next(self._numbers)
            rng = random.Random(None if self.seed is None else f"{self.seed}:{number}")
            handle = FaultHandle(self, number, fault, rng)
            self._handles.append(handle)
        log.info("Fault {id} added: {spec}", id=number, spec=fault.spec())
        return handle

    def remove(self, handle: FaultHandle | int) -> bool:
        """
        Remove a fault (a handle or its id); whether it was there.
        """
        with self._lock:
            for i, h in enumerate(self._handles):
                if h is handle or h.id == handle:
                    del self._handles[i]
                    return True
        return False

    def get(self, number: int) -> FaultHandle | None:
        with self._lock:
            for handle in self._handles:
                if handle.id == number:
                    return handle
        return None

    def clear(self) -> None:
        """
        Remove every fault, and start the hit counts by stage from 0.
        """
        with self._lock:
            self._handles = []
            self.hits = {}

    def check(self, protocol: str, stage: str, attempt: Attempt) -> FaultHandle | None:
        """
        The fault that hits this attempt (the first one added, of those
        that select it), counted and logged; L{None} for none.

        @param stage: an SMTP stage, C{"connect"}, or an IMAP command name
            in capitals.
        """
        if not self._handles:
            return None
        for handle in list(self._handles):
            if handle.fault.covers(protocol, stage) and handle._select(attempt, stage):
                where = f"{protocol}.{stage.lower()}"
                self.hits[where] = self.hits.get(where, 0) + 1
                log.info(
                    "Fault {id} hit {where} for {client}: {action}",
                    id=handle.id,
                    where=where,
                    client=attempt.client or "?",
                    action=handle.fault.action.describe(),
                )
                return handle
        return None
