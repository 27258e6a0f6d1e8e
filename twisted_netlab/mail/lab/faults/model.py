"""
The fault model: where a fault strikes (the stages), what it does (the
actions L{Reply}, L{Drop}, L{Delay}, L{Throttle}), which attempts it hits
(the selection), and L{Fault}, which holds them and is checked when it is
made.  L{Fault.spec} writes a fault back as the spec L{spec.parse_fault}
reads.
"""

from __future__ import annotations

from dataclasses import dataclass

from twisted_netlab.errors import UsageProblem

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
_SENDER_STAGES = ("mail", "rcpt", "data", "message")
_RECIPIENT_STAGES = ("rcpt", "data", "message")
GREYLIST_REPLY = (451, "4.7.1 Greylisted, try again later")


class FaultSpecError(UsageProblem):
    """
    A fault spec (or fault settings) that cannot be used; its C{str()} is
    one line saying why.
    """


# -- the actions and the fault ----------------------------------------------


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
        if isinstance(action, Reply) and self.greylist and action == greylist_reply():
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


def greylist_reply() -> Reply:
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


def _escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace(":", "\\:")
