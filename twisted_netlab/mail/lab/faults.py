"""
Faults on purpose: the mail lab's SMTP and IMAP servers fail when, where
and how a test asks, so that the software under test shows how it copes.

A fault is a I{stage} (where in a session), an I{action} (what goes wrong)
and a I{selection} (which attempts it hits).  The listeners ask the lab's
one L{Faults} registry at each stage (L{Faults.check}); the command line
(C{--fault SPEC}), the HTTP API and Python (C{lab.faults.add(...)}) all
configure that same object.

Stages::

    smtp.connect   before the greeting        imap.connect   before the greeting
    smtp.ehlo      EHLO or HELO               imap.login     LOGIN or AUTHENTICATE
    smtp.auth      AUTH                       imap.select    SELECT or EXAMINE
    smtp.mail      MAIL FROM                  imap.fetch     FETCH, UID FETCH
    smtp.rcpt      RCPT TO (that recipient)   imap.append    APPEND
    smtp.data      DATA                       imap.NAME      the command NAME
    smtp.message   after the final dot,                      (imap.noop, ...)
                   before the 250: nothing is stored

Actions::

    reply=CODE[ TEXT]   SMTP: a 4xx or 5xx reply (421 also closes);
                        IMAP: NO, BAD (tagged) or BYE (then closes)
    drop[=close|abort]  close the connection, or abort it (RST)
    delay=SECONDS       hold the reply (and what follows) that long
    throttle=BYTES      send the rest of the session at BYTES bytes/s

Selection (all must match)::

    p=P            with probability P (0 < P <= 1; C{--fault-seed} repeats a run)
    times=N        the next N matching attempts only
    greylist=N     the first N attempts of each sender+recipient pair
                   (default action: reply=451 4.7.1 Greylisted, try again later)
    from=PATTERN   the MAIL FROM address (fnmatch, case-insensitive)
    to=PATTERN     the RCPT TO address (at data/message: any recipient)
    user=PATTERN   the AUTH or LOGIN user
    client=ADDR    the client's address: an IP, a CIDR network (IPv6 in
                   brackets: client=[::1]) or an fnmatch pattern
    after-bytes=N  with drop: let N more bytes of the reply out, then drop
                   (imap.fetch:drop:after-bytes=1000 cuts a FETCH literal)

A spec joins a stage and items with ``:``; a ``:`` inside a value is
written ``\\:``.  Examples::

    rcpt:reply=451:times=2
    message:drop=abort:p=0.1
    smtp.mail:greylist=2
    imap.fetch:drop:after-bytes=1000
    rcpt:reply=550 5.1.1 No such user:to=*@bad.example
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
import ipaddress
import itertools
import random
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from twisted.internet.interfaces import IDelayedCall, IPushProducer
from twisted.logger import Logger
from zope.interface import directlyProvides, implementer, providedBy

from twisted_netlab.errors import UsageProblem

log = Logger()

SMTP_STAGES = ("connect", "ehlo", "auth", "mail", "rcpt", "data", "message")
#: IMAP stages that cover more than one command.
IMAP_GROUPS = {
    "connect": (),
    "login": ("LOGIN", "AUTHENTICATE"),
    "select": ("SELECT", "EXAMINE"),
    "fetch": ("FETCH",),
    "append": ("APPEND",),
}
#: IMAP commands a fault may name (C{imap.noop}, C{imap.examine}, ...).
IMAP_COMMANDS = frozenset(
    [
        "CAPABILITY",
        "NOOP",
        "LOGOUT",
        "STARTTLS",
        "AUTHENTICATE",
        "LOGIN",
        "SELECT",
        "EXAMINE",
        "CREATE",
        "DELETE",
        "RENAME",
        "SUBSCRIBE",
        "UNSUBSCRIBE",
        "LIST",
        "LSUB",
        "STATUS",
        "APPEND",
        "CHECK",
        "CLOSE",
        "EXPUNGE",
        "SEARCH",
        "FETCH",
        "STORE",
        "COPY",
        "MOVE",
        "IDLE",
        "NAMESPACE",
        "ID",
        "ENABLE",
        "UNSELECT",
    ]
)
_SMTP_ALIASES = {"helo": "ehlo"}
_SENDER_STAGES = ("mail", "rcpt", "data", "message")
_RECIPIENT_STAGES = ("rcpt", "data", "message")
GREYLIST_REPLY = (451, "4.7.1 Greylisted, try again later")
#: Seconds between two writes of a throttled session.
THROTTLE_TICK = 0.1
#: Sender+recipient pairs a greylisting fault remembers (the least recently
#: seen are forgotten first).
_MAX_PAIRS = 100_000
#: Bytes a shaped transport holds before it pauses its producer.
_HIGH_WATER = 64 * 1024


class FaultSpecError(UsageProblem):
    """
    A fault spec (or fault settings) that cannot be used; its C{str()} is
    one line saying why.
    """


# -- the model ---------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """
    Answer with C{code} (SMTP: 400-599; IMAP: C{"NO"}, C{"BAD"} or
    C{"BYE"}) and C{text} (printable ASCII, no CR or LF).
    """

    code: int | str
    text: str = ""

    def describe(self) -> str:
        return f"reply={self.code}" + (f" {self.text}" if self.text else "")


@dataclass(frozen=True)
class Drop:
    """
    Close the connection (C{abort}: with a TCP reset), at once or after
    C{after_bytes} more bytes of output.
    """

    abort: bool = False
    after_bytes: int | None = None

    def describe(self) -> str:
        text = "drop=abort" if self.abort else "drop"
        if self.after_bytes is not None:
            text += f":after-bytes={self.after_bytes}"
        return text


@dataclass(frozen=True)
class Delay:
    """
    Hold the output from this stage on (the reply first) for C{seconds}.
    """

    seconds: float

    def describe(self) -> str:
        return f"delay={self.seconds:g}"


@dataclass(frozen=True)
class Throttle:
    """
    Send the rest of the session at C{rate} bytes per second.
    """

    rate: int

    def describe(self) -> str:
        return f"throttle={self.rate}"


Action = Reply | Drop | Delay | Throttle


@dataclass(frozen=True)
class Fault:
    """
    One fault: where (C{protocol}, C{stage}), what (C{action}) and which
    attempts (the rest).  Build one with L{parse_fault} or directly; it is
    checked when it is made.

    @ivar stage: an SMTP stage, an IMAP group (C{login}, C{select},
        C{fetch}, C{append}, C{connect}) or an IMAP command name in capitals.
    @ivar probability: the chance that a matching attempt is hit.
    @ivar times: hit the next C{times} matching attempts only.
    @ivar greylist: hit the first C{greylist} attempts of each
        sender+recipient pair.
    """

    protocol: str
    stage: str
    action: Action
    probability: float = 1.0
    times: int | None = None
    greylist: int | None = None
    sender: str | None = None
    recipient: str | None = None
    user: str | None = None
    client: str | None = None

    def __post_init__(self) -> None:
        _check_fault(self)

    @property
    def where(self) -> str:
        """
        The stage as a spec names it: C{smtp.rcpt}, C{imap.noop}.
        """
        return f"{self.protocol}.{self.stage.lower()}"

    def spec(self) -> str:
        """
        This fault as a spec that L{parse_fault} reads back.
        """
        action = self.action
        if isinstance(action, Reply) and self.greylist and action == _greylist_reply():
            parts = [self.where]
        else:
            described = action.describe()
            if isinstance(action, Reply):
                described = _escape(described)
            parts = [self.where, described]
        if self.probability != 1.0:
            parts.append(f"p={self.probability:g}")
        for key, value in (("times", self.times), ("greylist", self.greylist)):
            if value is not None:
                parts.append(f"{key}={value}")
        for key, text in (
            ("from", self.sender),
            ("to", self.recipient),
            ("user", self.user),
            ("client", self.client),
        ):
            if text is not None:
                if key == "client" and ":" in text:
                    parts.append(f"client=[{text}]")
                else:
                    parts.append(f"{key}={_escape(text)}")
        return ":".join(parts)

    def covers(self, protocol: str, stage: str) -> bool:
        """
        Whether this fault is for C{stage} (an SMTP stage, C{"connect"}, or
        an IMAP command name in capitals).
        """
        if protocol != self.protocol:
            return False
        if protocol == "smtp" or stage == "connect":
            return stage == self.stage
        group = IMAP_GROUPS.get(self.stage)
        if group is not None:
            return stage in group
        return stage == self.stage


@dataclass(frozen=True)
class Attempt:
    """
    What a listener knows of the attempt it asks about.

    @ivar client: the client's address (an IP address, or C{"unix"}).
    @ivar recipients: at C{rcpt}, that recipient; at C{data} and
        C{message}, all of them.
    """

    client: str = ""
    sender: str | None = None
    recipients: tuple[str, ...] = ()
    user: str | None = None


def _greylist_reply() -> Reply:
    return Reply(*GREYLIST_REPLY)


def _check_fault(fault: Fault) -> None:
    problem = _problem(fault)
    if problem is not None:
        raise FaultSpecError(problem)


def _problem(f: Fault) -> str | None:
    if f.protocol not in ("smtp", "imap"):
        return f"unknown protocol {f.protocol!r}: smtp or imap"
    if f.protocol == "smtp" and f.stage not in SMTP_STAGES:
        return f"unknown SMTP stage {f.stage!r}: one of {', '.join(SMTP_STAGES)}"
    if (
        f.protocol == "imap"
        and f.stage not in IMAP_GROUPS
        and f.stage not in IMAP_COMMANDS
    ):
        return (
            f"unknown IMAP stage {f.stage!r}: connect, login, select, fetch, "
            "append or an IMAP command name"
        )
    if f.greylist is not None:
        if f.greylist < 1:
            return "greylist must be at least 1"
        if f.protocol != "smtp" or f.stage not in _SENDER_STAGES:
            return "greylist is for smtp.mail, smtp.rcpt, smtp.data or smtp.message"
    action = f.action
    if isinstance(action, Reply):
        problem = _reply_problem(f.protocol, f.stage, action)
        if problem is not None:
            return problem
    elif isinstance(action, Drop):
        if action.after_bytes is not None and action.after_bytes < 0:
            return "after-bytes must be 0 or more"
    elif isinstance(action, Delay):
        if not 0 < action.seconds <= 3600:
            return "delay must be more than 0 and at most 3600 seconds"
    elif isinstance(action, Throttle):
        if action.rate < 1:
            return "throttle must be at least 1 byte/s"
    else:
        return f"not an action: {action!r}"
    if not 0 < f.probability <= 1:
        return "p must be more than 0 and at most 1"
    if f.times is not None and f.times < 1:
        return "times must be at least 1"
    if f.sender is not None and (f.protocol != "smtp" or f.stage not in _SENDER_STAGES):
        return "from= is for smtp.mail, smtp.rcpt, smtp.data or smtp.message"
    if f.recipient is not None and (
        f.protocol != "smtp" or f.stage not in _RECIPIENT_STAGES
    ):
        return "to= is for smtp.rcpt, smtp.data or smtp.message"
    for name, pattern in (("from", f.sender), ("to", f.recipient), ("user", f.user)):
        if pattern is not None and not pattern:
            return f"{name}= needs a pattern"
    if f.client is not None and not f.client:
        return "client= needs an address"
    return None


def _reply_problem(protocol: str, stage: str, reply: Reply) -> str | None:
    if not all(" " <= c <= "~" for c in reply.text):
        return "reply text must be printable ASCII, without CR or LF"
    if protocol == "smtp":
        code = reply.code
        if isinstance(code, str):
            if not (len(code) == 3 and code.isdigit()):
                return f"SMTP reply code {code!r} is not 3 digits"
            code = int(code)
        if not (400 <= code <= 559 and code % 100 // 10 <= 5):
            return f"SMTP reply code {code} is not a 4xx or 5xx code"
        return None
    if not isinstance(reply.code, str) or reply.code.upper() not in (
        "NO",
        "BAD",
        "BYE",
    ):
        return f"IMAP reply {reply.code!r} is not NO, BAD or BYE"
    if stage == "connect" and reply.code.upper() != "BYE":
        return "imap.connect can only reply=BYE (there is no command to answer)"
    return None


# -- the spec syntax ---------------------------------------------------------

_ACTIONS = ("reply", "drop", "delay", "throttle")
_SELECTORS = ("p", "times", "greylist", "from", "to", "user", "client", "after-bytes")


def parse_fault(spec: str) -> Fault:
    """
    The L{Fault} a spec describes (see the module's docstring).

    @raise FaultSpecError: with a one-line reason.
    """
    items = _split_spec(spec)
    if not items or not items[0]:
        raise FaultSpecError("empty fault spec: give STAGE:ACTION[:SELECTION...]")
    protocol, stage = _parse_stage(items[0])
    values: dict[str, str | None] = {}
    for item in items[1:]:
        key, equals, value = item.partition("=")
        key = key.strip().lower()
        if key not in _ACTIONS and key not in _SELECTORS:
            raise FaultSpecError(
                f"unknown item {item!r}: actions are reply=, drop, delay=, "
                "throttle=; selections p=, times=, greylist=, from=, to=, user=, "
                "client=, after-bytes= (write a ':' in a value as '\\:')"
            )
        if key in values:
            raise FaultSpecError(f"{key} is given twice")
        values[key] = value if equals else None
    actions = [k for k in _ACTIONS if k in values]
    if len(actions) > 1:
        raise FaultSpecError(f"one action per fault, not {' and '.join(actions)}")
    action: Action
    if not actions:
        if "greylist" not in values:
            raise FaultSpecError(
                f"{items[0]}: needs an action: reply=, drop, delay= or throttle="
            )
        action = _greylist_reply()
    else:
        action = _parse_action(protocol, actions[0], values[actions[0]])
    after = values.pop("after-bytes", "")
    if after != "":
        if not isinstance(action, Drop):
            raise FaultSpecError("after-bytes= goes with drop")
        action = replace(action, after_bytes=_integer("after-bytes", after, 0))
    return Fault(
        protocol=protocol,
        stage=stage,
        action=action,
        probability=_probability(values["p"]) if "p" in values else 1.0,
        times=_integer("times", values["times"], 1) if "times" in values else None,
        greylist=(
            _integer("greylist", values["greylist"], 1)
            if "greylist" in values
            else None
        ),
        sender=_pattern("from", values),
        recipient=_pattern("to", values),
        user=_pattern("user", values),
        client=_client(values),
    )


def _split_spec(spec: str) -> list[str]:
    items: list[str] = []
    current: list[str] = []
    chars = iter(spec)
    for c in chars:
        if c == "\\":
            escaped = next(chars, None)
            if escaped not in (":", "\\", "[", "]"):
                raise FaultSpecError("in a fault spec, '\\' comes before ':' or '\\'")
            current.append(escaped)
        elif c == "[" and "".join(current).endswith("="):
            # A bracketed value (an IPv6 address) may hold plain colons.
            for c in chars:
                if c == "]":
                    break
                current.append(c)
            else:
                raise FaultSpecError("a '[' in a fault spec needs its ']'")
        elif c == ":":
            items.append("".join(current))
            current = []
        else:
            current.append(c)
    items.append("".join(current))
    return items


def _parse_stage(text: str) -> tuple[str, str]:
    name = text.strip()
    protocol, dot, stage = name.partition(".")
    if not dot:
        stage = protocol.lower()
        if stage == "connect":
            raise FaultSpecError("say smtp.connect or imap.connect")
        if stage in SMTP_STAGES or stage in _SMTP_ALIASES:
            protocol = "smtp"
        elif stage in IMAP_GROUPS:
            protocol = "imap"
        else:
            raise FaultSpecError(
                f"unknown stage {name!r}: smtp.connect, ehlo, auth, mail, rcpt, "
                "data, message; imap.connect, login, select, fetch, append, "
                "imap.COMMAND"
            )
    protocol = protocol.lower()
    stage = stage.lower()
    if protocol == "smtp":
        stage = _SMTP_ALIASES.get(stage, stage)
        if stage not in SMTP_STAGES:
            raise FaultSpecError(
                f"unknown SMTP stage {stage!r}: one of {', '.join(SMTP_STAGES)}"
            )
        return protocol, stage
    if protocol == "imap":
        if stage in IMAP_GROUPS:
            return protocol, stage
        if stage.upper() in IMAP_COMMANDS:
            return protocol, stage.upper()
        raise FaultSpecError(
            f"unknown IMAP stage {stage!r}: connect, login, select, fetch, append "
            "or an IMAP command name"
        )
    raise FaultSpecError(f"unknown protocol {protocol!r} in {name!r}: smtp or imap")


def _parse_action(protocol: str, key: str, value: str | None) -> Action:
    if key == "drop":
        if value is None or value.lower() == "close":
            return Drop()
        if value.lower() == "abort":
            return Drop(abort=True)
        raise FaultSpecError(f"drop={value}: close or abort")
    if value is None or not value.strip():
        raise FaultSpecError(f"{key}= needs a value")
    if key == "reply":
        code, _, text = value.strip().partition(" ")
        if protocol == "smtp":
            if not (len(code) == 3 and code.isdigit()):
                raise FaultSpecError(f"reply={value}: the code must be 3 digits")
            return Reply(int(code), text.strip())
        return Reply(code.upper(), text.strip())
    if key == "delay":
        try:
            seconds = float(value.removesuffix("s"))
        except ValueError:
            raise FaultSpecError(f"delay={value}: not a number of seconds") from None
        return Delay(seconds)
    return Throttle(_integer("throttle", value, 1))


def _integer(key: str, value: str | None, minimum: int) -> int:
    if value is None or not value.strip().isdigit():
        raise FaultSpecError(f"{key}= needs a whole number")
    number = int(value)
    if number < minimum:
        raise FaultSpecError(f"{key}= must be at least {minimum}")
    return number


def _probability(value: str | None) -> float:
    try:
        if value is None:
            raise ValueError
        p = float(value[:-1]) / 100 if value.endswith("%") else float(value)
    except ValueError:
        raise FaultSpecError(f"p={value}: not a probability") from None
    if not 0 < p <= 1:
        raise FaultSpecError(f"p={value}: must be more than 0 and at most 1")
    return p


def _pattern(key: str, values: dict[str, str | None]) -> str | None:
    if key not in values:
        return None
    value = values[key]
    if not value:
        raise FaultSpecError(f"{key}= needs a pattern")
    return value.strip()


def _client(values: dict[str, str | None]) -> str | None:
    if "client" not in values:
        return None
    value = values["client"]
    if not value:
        raise FaultSpecError("client= needs an address")
    return value.strip()


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:")


# -- matching ----------------------------------------------------------------


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
            protocol, name = _parse_stage(stage)
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


# -- acting ------------------------------------------------------------------


def peer_text(transport: Any) -> str:
    """
    A client's address as faults match it: the IP, or C{"unix"}.
    """
    try:
        peer = transport.getPeer()
    except Exception:
        return ""
    host = getattr(peer, "host", None)
    return host if isinstance(host, str) else "unix"


def plain_user(argument: bytes) -> str | None:
    """
    The user named by an C{AUTH PLAIN} initial response, if there is one.
    """
    parts = argument.split()
    if len(parts) < 2 or parts[0].upper() != b"PLAIN":
        return None
    try:
        fields = base64.b64decode(parts[1], validate=True).split(b"\0")
    except (binascii.Error, ValueError):
        return None
    if len(fields) != 3:
        return None
    return fields[1].decode("utf-8", "replace")


def smtp_reply_bytes(reply: Reply) -> tuple[int, bytes]:
    code = int(reply.code)
    return code, (reply.text or _SMTP_TEXT.get(code, "Fault injected")).encode("ascii")


_SMTP_TEXT = {
    421: "4.3.0 Service not available, closing the connection",
    450: "4.2.0 Mailbox unavailable, try again later",
    451: "4.3.0 Local error in processing, try again later",
    452: "4.3.1 Insufficient system storage",
    454: "4.7.0 Temporary authentication failure",
    535: "5.7.8 Authentication credentials invalid",
    550: "5.1.1 Mailbox unavailable",
    552: "5.3.4 Message too big",
    553: "5.1.3 Mailbox name not allowed",
    554: "5.0.0 Transaction failed",
}


def smtp_fault(
    protocol: Any,
    stage: str,
    *,
    sender: str | None = None,
    recipients: Sequence[str] = (),
    user: str | None = None,
) -> bool:
    """
    Ask the faults of C{protocol}'s factory about an SMTP stage and carry
    out the one that hits: the SMTP listener's one hook.

    @return: whether the stage's command must not be carried out (it was
        answered, or the connection dropped).
    """
    factory = protocol.factory
    faults: Faults | None = factory.faults
    if not faults:
        return False
    attempt = Attempt(
        client=peer_text(protocol.transport),
        sender=sender,
        recipients=tuple(recipients),
        user=user,
    )
    hit = faults.check("smtp", stage, attempt)
    if hit is None:
        return False
    action = hit.fault.action
    if isinstance(action, Reply):
        code, text = smtp_reply_bytes(action)
        protocol.sendCode(code, text)
        if code == 421 or stage == "connect":
            protocol.transport.loseConnection()
        return True
    return apply_output_fault(protocol, action, factory.reactor)


#: The SMTP commands that are stages, and their stages.
_SMTP_COMMANDS = {
    "EHLO": "ehlo",
    "HELO": "ehlo",
    "AUTH": "auth",
    "MAIL": "mail",
    "RCPT": "rcpt",
    "DATA": "data",
}
_FROM = re.compile(rb"^\s*FROM:\s*(<[^<>]*>|[^\s<>]+)", re.I)
_TO = re.compile(rb"^\s*TO:\s*(<[^<>]*>|[^\s<>]+)", re.I)


def smtp_command_hook(
    protocol: Any, command: str, method: Callable[[bytes], Any]
) -> Callable[[bytes], Any]:
    """
    C{method}, the handler of SMTP C{command} on C{protocol}, made to ask
    the faults of its stage first (the SMTP listener's C{lookupMethod}
    hook).  A command the server would refuse anyway (MAIL before EHLO, RCPT
    before MAIL, a syntax error...) is not faulted: it gets its usual answer.
    """
    stage = _SMTP_COMMANDS.get(command.upper())
    if stage is None:
        return method

    def handle(rest: bytes) -> Any:
        if _smtp_command_fault(protocol, stage, rest):
            return None
        return method(rest)

    return handle


def _smtp_command_fault(p: Any, stage: str, rest: bytes) -> bool:
    user = getattr(getattr(p, "delivery", None), "sender", None)
    if stage == "ehlo":
        return bool(rest.strip()) and smtp_fault(p, "ehlo", user=user)
    if stage == "auth":
        if p.authenticated or p._from is not None or not rest.split():
            return False
        if not getattr(p, "auth_allowed", True):
            return False
        return smtp_fault(p, "auth", user=plain_user(rest))
    if stage == "mail":
        match = _FROM.match(rest)
        if match is None or not (p._helo and p._helo[0]) or p._from:
            return False
        if p.factory.require_auth and not p.authenticated:
            return False
        return smtp_fault(p, "mail", sender=_address(match), user=user)
    if stage == "rcpt":
        match = _TO.match(rest)
        if match is None or not p._from:
            return False
        recipients = [_address(match)]
        return smtp_fault(
            p, "rcpt", sender=str(p._from), recipients=recipients, user=user
        )
    # DATA: what the message stage will be asked with, then the data stage.
    if not p._from or not p._to:
        return False
    sender, recipients = str(p._from), [str(u.dest) for u, _ in p._to]
    p._fault_envelope = (sender, recipients)
    if smtp_fault(p, "data", sender=sender, recipients=recipients, user=user):
        p._from = None  # the transaction is over: MAIL starts again
        p._to = []
        return True
    return False


def _address(match: re.Match[bytes]) -> str:
    return match.group(1).strip(b"<>").decode("utf-8", "replace")


def smtp_message_fault(
    protocol: Any,
    sender: str | None = None,
    recipients: Sequence[str] | None = None,
) -> bool:
    """
    Ask the faults of the message stage, at the final dot of C{DATA} (the
    SMTP listener's C{lineReceived} hook) or at the end of the last
    C{BDAT} chunk; the envelope is the one C{DATA} saw unless given.

    @return: whether the message was answered or dropped, and so must not
        be stored (the session is back in command mode).
    """
    if getattr(protocol, "datafailed", None) or not protocol.factory.faults:
        return False
    saved_sender, saved_recipients = getattr(protocol, "_fault_envelope", ("", []))
    sender = saved_sender if sender is None else sender
    recipients = saved_recipients if recipients is None else recipients
    user = getattr(getattr(protocol, "delivery", None), "sender", None)
    if smtp_fault(protocol, "message", sender=sender, recipients=recipients, user=user):
        protocol.mode = "COMMAND"
        return True
    return False


def imap_fault(
    protocol: Any,
    stage: str,
    tag: bytes | None,
    *,
    user: str | None = None,
) -> bool:
    """
    Ask the faults of C{protocol}'s factory about an IMAP command (C{stage}
    its name in capitals, or C{"connect"}) and carry out the one that hits:
    the IMAP listener's one hook.  (A literal the client sent unasked with a
    refused command, LITERAL+, is skipped by the server, as for any refusal.)

    @return: whether the command must not be carried out.
    """
    factory = protocol.factory
    faults: Faults | None = getattr(factory, "faults", None)
    if not faults:
        return False
    attempt = Attempt(client=peer_text(protocol.transport), user=user)
    hit = faults.check("imap", stage, attempt)
    if hit is None:
        return False
    action = hit.fault.action
    if isinstance(action, Reply):
        kind = str(action.code).upper()
        text = (action.text or "Fault injected by the mail lab").encode("ascii")
        if kind == "BYE" or tag is None:
            protocol.sendLine(b"* BYE " + text)
            protocol.transport.loseConnection()
        elif kind == "NO":
            protocol.sendNegativeResponse(tag, text)
        else:
            protocol.sendBadResponse(tag, text)
        return True
    return apply_output_fault(protocol, action, factory.reactor)


def apply_output_fault(protocol: Any, action: Action, reactor: Any) -> bool:
    """
    Carry out the actions that need no protocol words (drop, delay,
    throttle) on C{protocol}'s connection.

    @return: whether the command must not be carried out (an immediate
        drop); delays, throttling and cuts after some bytes let it run.
    """
    if isinstance(action, Drop):
        if action.after_bytes is None:
            drop(protocol.transport, action.abort)
            return True
        shaped_transport(protocol, reactor).cut_after(action.after_bytes, action.abort)
        return False
    if isinstance(action, Delay):
        shaped_transport(protocol, reactor).hold(action.seconds)
        return False
    if isinstance(action, Throttle):
        shaped_transport(protocol, reactor).throttle(action.rate)
        return False
    raise TypeError(f"not an output action: {action!r}")


def drop(transport: Any, abort: bool) -> None:
    """
    Close C{transport} (C{abort}: at once, with a reset).
    """
    if abort:
        transport.abortConnection()
    else:
        transport.loseConnection()


def shaped_transport(protocol: Any, reactor: Any) -> ShapedTransport:
    """
    C{protocol}'s transport, made a L{ShapedTransport} if it isn't yet.
    """
    transport = protocol.transport
    if not isinstance(transport, ShapedTransport):
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        transport = ShapedTransport(transport, reactor)
        protocol.transport = transport
    return transport


@implementer(IPushProducer)
class _ProducerGate:
    """
    What a L{ShapedTransport} registers with the real transport for a
    streaming producer: the producer runs only while neither the real
    transport nor the shaped one holds too much.
    """

    def __init__(self, shaped: ShapedTransport) -> None:
        self.shaped = shaped

    def pauseProducing(self) -> None:
        self.shaped._paused_by_transport = True
        self.shaped._update_producer()

    def resumeProducing(self) -> None:
        self.shaped._paused_by_transport = False
        self.shaped._update_producer()

    def stopProducing(self) -> None:
        producer = self.shaped._producer
        if producer is not None:
            producer.stopProducing()


class ShapedTransport:
    """
    A transport in front of a connection's own, that holds output back
    (L{hold}), sends it at a set rate (L{throttle}) or closes the connection
    after some more bytes (L{cut_after}).  Everything else is the real
    transport's (C{pauseProducing} pauses reading, as ever); a producer
    writing to it is paused while it holds too much.
    """

    def __init__(self, transport: Any, reactor: Any) -> None:
        self._transport = transport
        self._reactor = reactor
        self._buffer = bytearray()
        self._held_until = 0.0
        self._rate: int | None = None
        self._call: IDelayedCall | None = None
        self._cut: int | None = None
        self._cut_abort = False
        self._closing = False
        self._producer: Any = None
        self._paused_by_me = False
        self._paused_by_transport = False
        directlyProvides(self, providedBy(transport))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    # -- shaping ----------------------------------------------------------

    def hold(self, seconds: float) -> None:
        """
        Send nothing for C{seconds} from now.
        """
        self._held_until = max(self._held_until, self._reactor.seconds() + seconds)
        self._schedule(seconds)

    def throttle(self, rate: int) -> None:
        """
        From now on, send at most C{rate} bytes per second.
        """
        self._rate = rate
        self._pump()

    def cut_after(self, count: int, abort: bool) -> None:
        """
        Close the connection once C{count} more bytes were written.
        """
        self._cut = count
        self._cut_abort = abort
        if count == 0:
            self._close_now()

    # -- ITransport ---------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self._cut is None and not self._buffer and self._unshaped():
            self._transport.write(data)
            return
        if self._cut is not None:
            if self._cut < 0:
                return
            if len(data) >= self._cut:
                data = data[: self._cut]
                self._buffer += data
                self._cut = -1
                self._pump()
                return
            self._cut -= len(data)
        self._buffer += data
        self._pump()

    def writeSequence(self, data: Sequence[bytes]) -> None:
        self.write(b"".join(data))

    def loseConnection(self) -> None:
        self._closing = True
        self._pump()

    def abortConnection(self) -> None:
        self._cancel()
        self._buffer.clear()
        self._transport.abortConnection()

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        self._producer = producer
        if streaming:
            self._transport.registerProducer(_ProducerGate(self), True)
        else:
            self._transport.registerProducer(producer, False)

    def unregisterProducer(self) -> None:
        self._producer = None
        self._paused_by_me = self._paused_by_transport = False
        self._transport.unregisterProducer()

    # -- inside -------------------------------------------------------------

    def _unshaped(self) -> bool:
        return self._rate is None and self._reactor.seconds() >= self._held_until

    def _schedule(self, seconds: float) -> None:
        if self._call is not None and self._call.active():
            if self._call.getTime() <= self._reactor.seconds() + seconds:
                self._call.cancel()
            else:
                return
        self._call = self._reactor.callLater(seconds, self._tick)

    def _cancel(self) -> None:
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _tick(self) -> None:
        self._call = None
        self._pump()

    def _pump(self) -> None:
        if getattr(self._transport, "disconnected", False):
            self._cancel()
            self._buffer.clear()
            return
        now = self._reactor.seconds()
        if now < self._held_until:
            self._schedule(self._held_until - now)
            return
        if self._rate is not None and self._call is not None and self._call.active():
            return  # this tenth of a second's bytes went out already
        if self._buffer:
            if self._rate is None:
                chunk = bytes(self._buffer)
                self._buffer.clear()
            else:
                size = max(1, int(self._rate * THROTTLE_TICK))
                chunk = bytes(self._buffer[:size])
                del self._buffer[:size]
            self._transport.write(chunk)
            if self._rate is not None:
                self._schedule(THROTTLE_TICK)
        self._update_producer()
        if not self._buffer:
            if self._cut == -1:
                self._close_now()
            elif self._closing:
                self._transport.loseConnection()

    def _close_now(self) -> None:
        self._cancel()
        if self._producer is not None:
            producer, self._producer = self._producer, None
            producer.stopProducing()
            self._transport.unregisterProducer()
        if self._cut_abort:
            self._transport.abortConnection()
        else:
            self._transport.loseConnection()

    def _update_producer(self) -> None:
        producer = self._producer
        if producer is None:
            return
        full = len(self._buffer) > _HIGH_WATER
        should_pause = full or self._paused_by_transport
        if should_pause and not self._paused_by_me:
            self._paused_by_me = True
            producer.pauseProducing()
        elif not should_pause and self._paused_by_me:
            self._paused_by_me = False
            producer.resumeProducing()


__all__ = [
    "Attempt",
    "Delay",
    "Drop",
    "Fault",
    "FaultHandle",
    "FaultSpecError",
    "Faults",
    "Reply",
    "ShapedTransport",
    "Throttle",
    "parse_fault",
]
