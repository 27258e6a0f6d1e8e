"""
The spec syntax of faults (C{rcpt:reply=451:times=2}), as the command line
(C{--fault}), the HTTP API and Python give it: L{parse_fault}, and
L{parse_stage} for a stage alone.  The syntax is described in the package's
docstring (L{twisted_netlab.mail.lab.faults}).
"""

from __future__ import annotations

from dataclasses import replace

from twisted_netlab.mail.lab.faults.model import (
    IMAP_COMMANDS,
    IMAP_GROUPS,
    SMTP_STAGES,
    Action,
    Delay,
    Drop,
    Fault,
    FaultSpecError,
    Reply,
    Throttle,
    greylist_reply,
)

_SMTP_ALIASES = {"helo": "ehlo"}
_ACTIONS = ("reply", "drop", "delay", "throttle")
_SELECTORS = ("p", "times", "greylist", "from", "to", "user", "client", "after-bytes")


def parse_fault(spec: str) -> Fault:
    """
    The L{Fault} a spec describes (see the package's docstring).

    @raise FaultSpecError: with a one-line reason.
    """
    items = _split_spec(spec)
    if not items or not items[0]:
        raise FaultSpecError("empty fault spec: give STAGE:ACTION[:SELECTION...]")
    protocol, stage = parse_stage(items[0])
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
        action = greylist_reply()
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


def parse_stage(text: str) -> tuple[str, str]:
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
