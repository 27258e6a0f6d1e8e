"""
What a check knows besides the message's bytes: how it arrived, and the
lab's settings for the checks.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from twisted_netlab.errors import NetlabError


class CheckError(NetlabError):
    """
    A check could not run because of the lab, not the message: C{str()} is
    a one-line reason.
    """


@dataclass(frozen=True)
class Arrival:
    """
    How the message reached the lab: its SMTP envelope, as far as it is
    known (a message dropped into the Maildir by another program has none).

    @ivar mail_from: the reverse path of C{MAIL FROM} (C{""} for C{<>}).
    @ivar rcpt_to: every accepted C{RCPT TO} address, in order.
    @ivar client_ip: the SMTP client's IP address (C{""} when unknown or
        not IP, as for a UNIX socket).
    @ivar helo: the name the client gave in C{HELO}/C{EHLO} (C{""} when
        unknown).
    @ivar smtputf8: whether C{MAIL FROM} carried C{SMTPUTF8}.
    """

    mail_from: str = ""
    rcpt_to: tuple[str, ...] = ()
    client_ip: str = ""
    helo: str = ""
    smtputf8: bool = False


@dataclass(frozen=True)
class CheckSettings:
    """
    The lab's settings for the checks (from C{twistd netlab-mail} options,
    L{MailLab}'s arguments or the fixtures).

    @ivar spamassassin: C{(host, port)} of a spamd, or L{None}: the spam
        check then answers with an C{Error} that says how to turn it on.
    @ivar dns_records: TXT records by lowercased domain name without the
        trailing dot (from C{--dns-records FILE}), or L{None} to ask the
        system's resolver.
    @ivar private_links: whether the link check may fetch loopback and
        private addresses (true only when the lab itself is on loopback).
    @ivar link_timeout: seconds for each link's request.
    @ivar link_concurrency: how many links are fetched at once.
    """

    spamassassin: tuple[str, int] | None = None
    dns_records: Mapping[str, Sequence[str]] | None = None
    private_links: bool = True
    link_timeout: float = 10.0
    link_concurrency: int = 4


@dataclass(frozen=True)
class CheckContext:
    """
    Everything a check may use besides the message: the reactor (to connect,
    to time out, to run work in a thread), how the message arrived, and the
    settings.

    @ivar reactor: provides C{IReactorTCP}, C{IReactorTime} and
        C{IReactorThreads} (tests hand in what they need).
    @ivar options: a check's own request options (C{{"follow": True}} for
        the link check), from the query string or the Python call.
    """

    reactor: Any
    arrival: Arrival = field(default_factory=Arrival)
    settings: CheckSettings = field(default_factory=CheckSettings)
    options: Mapping[str, Any] = field(default_factory=dict)
