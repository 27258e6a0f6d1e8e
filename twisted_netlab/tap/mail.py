"""
C{twistd netlab-mail}: the mail lab, an SMTP + IMAP (+ POP3) server over Maildir.
"""

from __future__ import annotations

import ipaddress
import re
import sys
from pathlib import Path
from typing import Any

from twisted.application.service import IService
from twisted.python import usage

from twisted_netlab.endpoints import is_loopback_endpoint, parse_endpoint
from twisted_netlab.errors import NetlabError
from twisted_netlab.mail.lab.certificate import CertificateError, load_certificate
from twisted_netlab.mail.lab.faults import FaultSpecError, parse_fault
from twisted_netlab.mail.lab.smtp.server import DEFAULT_MAX_MESSAGE_SIZE, MAX_RECIPIENTS
from twisted_netlab.mail.lab.users import normalize_address, normalize_domain
from twisted_netlab.tap import PluginOptions, int_option
from twisted_netlab.tap.checks import CheckOptions
from twisted_netlab.tap.mailpit import MailpitOptions

DEFAULT_SMTP = "tcp:2525:interface=127.0.0.1"
DEFAULT_IMAP = "tcp:1143:interface=127.0.0.1"

LISTENERS = ("smtp", "imap", "smtps", "imaps", "http", "https", "pop3", "pop3s")
#: Where the HTTP API listens for C{twistd netlab} and in capture mode.
DEFAULT_HTTP = "tcp:8025:interface=127.0.0.1"

_DURATION = re.compile(r"([0-9]+)([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(text: str) -> int:
    """
    Seconds in a duration such as C{30s}, C{10m}, C{2h} or C{7d} (a bare
    number is seconds).

    @raise usage.UsageError: not such a duration, or zero.
    """
    match = _DURATION.fullmatch(text.strip().lower())
    if not match or int(match.group(1)) == 0:
        raise usage.UsageError(
            f"not a duration: {text!r} (expected a number with s, m, h or d, "
            "such as 30s, 10m, 2h or 7d)"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


class LabOptions(PluginOptions, MailpitOptions, CheckOptions):
    """
    The mail lab's options, shared by C{twistd netlab-mail} and C{twistd
    netlab} (with Mailpit's: L{MailpitOptions}, and the checks':
    L{CheckOptions}); C{defaultState} and
    C{defaultDomains} apply when none is given (none: the option is
    required).
    """

    defaultState: str | None = None
    defaultDomains: tuple[str, ...] = ()
    #: Serve the HTTP API on DEFAULT_HTTP unless told otherwise.
    defaultHTTP = False

    optParameters = [
        ["state", None, None, "The lab's state directory (users, TLS, mail)."],
        [
            "max-message-size",
            None,
            str(DEFAULT_MAX_MESSAGE_SIZE),
            "Largest message accepted by SMTP, in bytes (552 beyond).",
        ],
        [
            "hostname",
            None,
            "localhost",
            "The name the servers greet with; the lab certificate names it too.",
        ],
        ["tls-cert", None, None, "Serve this certificate (PEM) instead of the lab's."],
        ["tls-key", None, None, "The key (PEM) of --tls-cert."],
        [
            "catch-all",
            None,
            None,
            "Capture: accept mail for every address at every domain (nothing "
            "is relayed); what is not for a lab user goes to this address's "
            "INBOX (made a user if it is not one).",
        ],
        [
            "max-recipients",
            None,
            str(MAX_RECIPIENTS),
            "RCPT TO commands accepted per message (452 past).",
        ],
        [
            "max-messages",
            None,
            None,
            "Each mailbox keeps at most this many messages; the oldest go "
            "as new ones arrive.",
        ],
        [
            "max-age",
            None,
            None,
            "Remove messages older than this (30s, 10m, 2h, 7d).",
        ],
        [
            "fault-seed",
            None,
            None,
            "Seed for the faults' probabilities, to repeat a random run.",
        ],
    ]
    optFlags = [
        [
            "allow-plaintext-auth",
            None,
            "Allow logins without TLS from loopback clients (refused unless "
            "every listener is on loopback).",
        ],
        ["require-auth", None, "Accept no mail by SMTP before AUTH."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["domains"] = []
        self["users"] = []
        self["faults"] = []
        for name in LISTENERS:
            self[name] = []

    def opt_domain(self, domain: str) -> None:
        """A local domain, repeatable: mail is accepted for its users only."""
        try:
            self["domains"].append(normalize_domain(domain))
        except NetlabError as e:
            raise usage.UsageError(f"--domain: {e}") from None

    def opt_user(self, value: str) -> None:
        """ADDRESS:PASSWORD for a throwaway lab (repeatable; seen by ps)."""
        address, colon, password = value.partition(":")
        if not colon or not password:
            raise usage.UsageError("--user must be ADDRESS:PASSWORD")
        try:
            self["users"].append((normalize_address(address), password))
        except NetlabError as e:
            raise usage.UsageError(f"--user: {e}") from None

    def opt_fault(self, spec: str) -> None:
        """
        Fail on purpose, repeatable: STAGE:ACTION[:SELECTION]..., e.g.
        rcpt:reply=451:times=2, smtp.mail:greylist=2, message:drop=abort:p=0.1,
        imap.fetch:drop:after-bytes=1000 (see docs/faults.rst).
        """
        try:
            self["faults"].append(parse_fault(spec))
        except FaultSpecError as e:
            raise usage.UsageError(f"--fault {spec}: {e}") from None

    def opt_smtp(self, description: str) -> None:
        """SMTP (STARTTLS) endpoint, repeatable [default: see below]."""
        self["smtp"].append(description)

    def opt_imap(self, description: str) -> None:
        """IMAP (STARTTLS) endpoint, repeatable [default: see below]."""
        self["imap"].append(description)

    def opt_smtps(self, description: str) -> None:
        """SMTP endpoint with implicit TLS, repeatable [default: none]."""
        self["smtps"].append(description)

    def opt_imaps(self, description: str) -> None:
        """IMAP endpoint with implicit TLS, repeatable [default: none]."""
        self["imaps"].append(description)

    def opt_http(self, description: str) -> None:
        """HTTP API endpoint (Mailpit's v1 API, inbox page), repeatable
        [default: none; twistd netlab and --catch-all: tcp:8025 on loopback].
        Off loopback only as ssl: (and with a lab user's login)."""
        self["http"].append(description)

    def opt_https(self, description: str) -> None:
        """HTTP API endpoint with TLS (the lab's certificate), repeatable;
        off loopback, a lab user's login is required."""
        self["https"].append(description)

    def opt_http_host(self, name: str) -> None:
        """Another host name the HTTP API answers for (Host check), repeatable."""
        self.setdefault("http-host", []).append(name)

    def opt_pop3(self, description: str) -> None:
        """POP3 (STLS) endpoint, repeatable [default: none]."""
        self["pop3"].append(description)

    def opt_pop3s(self, description: str) -> None:
        """POP3 endpoint with implicit TLS, repeatable [default: none]."""
        self["pop3s"].append(description)

    def postOptions(self) -> None:
        from twisted.internet import reactor

        if self["state"] is None:
            if self.defaultState is None:
                raise usage.UsageError("--state DIR is required")
            self["state"] = self.defaultState
        if not self["domains"]:
            if not self.defaultDomains:
                raise usage.UsageError("at least one --domain is required")
            self["domains"] = list(self.defaultDomains)
        for address, _ in self["users"]:
            if address.rpartition("@")[2] not in self["domains"]:
                raise usage.UsageError(
                    f"--user {address}: not in a --domain "
                    f"({', '.join(self['domains'])})"
                )
        if (
            not self["http"]
            and not self["https"]
            and (self.defaultHTTP or self.get("catch-all"))
        ):
            self["http"] = [DEFAULT_HTTP]
        self["smtp"] = self["smtp"] or [DEFAULT_SMTP]
        self["imap"] = self["imap"] or [DEFAULT_IMAP]
        listeners = [d for name in LISTENERS for d in self[name]]
        for description in listeners:
            parse_endpoint(reactor, description)
        self["max-message-size"] = int_option(self, "max-message-size", 1)
        self["max-recipients"] = int_option(self, "max-recipients", 1)
        if self["max-messages"] is not None:
            self["max-messages"] = int_option(self, "max-messages", 1)
        if self["max-age"] is not None:
            try:
                self["max-age"] = parse_duration(self["max-age"])
            except usage.UsageError as e:
                raise usage.UsageError(f"--max-age: {e}") from None
        if self["catch-all"] is not None:
            try:
                self["catch-all"] = normalize_address(self["catch-all"])
            except NetlabError as e:
                raise usage.UsageError(f"--catch-all: {e}") from None
        if self["fault-seed"] is not None:
            self["fault-seed"] = int_option(self, "fault-seed", 0)
        try:
            self["hostname"] = normalize_domain(self["hostname"])
        except NetlabError:
            try:
                self["hostname"] = str(ipaddress.ip_address(self["hostname"]))
            except ValueError:
                raise usage.UsageError(
                    f"--hostname {self['hostname']!r} is not a host name"
                ) from None
        if bool(self["tls-cert"]) != bool(self["tls-key"]):
            raise usage.UsageError("give both --tls-cert and --tls-key, or neither")
        if self["tls-cert"]:
            try:
                load_certificate(self["tls-cert"], self["tls-key"])
            except CertificateError as e:
                raise usage.UsageError(str(e)) from None
        self.check_mailpit_options()
        self.check_check_options()
        if self["allow-plaintext-auth"]:
            exposed = [d for d in listeners if not is_loopback_endpoint(reactor, d)]
            if exposed:
                raise usage.UsageError(
                    "--allow-plaintext-auth needs every listener on loopback; "
                    f"not on loopback: {', '.join(exposed)}"
                )


class Options(LabOptions):
    synopsis = (
        "--state DIR --domain DOMAIN [--domain DOMAIN]... [--smtp ENDPOINT]... "
        "[--imap ENDPOINT]... [--smtps ENDPOINT]... [--imaps ENDPOINT]... "
        "[--pop3 ENDPOINT]... [--pop3s ENDPOINT]... "
        "[--max-message-size BYTES] [--user ADDRESS:PASSWORD]... "
        "[--hostname NAME] [--tls-cert FILE --tls-key FILE] "
        "[--allow-plaintext-auth] [--require-auth] [--catch-all ADDRESS] "
        "[--max-recipients N] [--max-messages N] [--max-age DURATION] "
        "[--fault SPEC]... [--fault-seed N] [--relay HOST:PORT [--relay-tls "
        "starttls|tls|none] [--relay-cafile FILE] [--relay-user USER "
        "--relay-password-file FILE] [--relay-allow REGEX] [--forward "
        "ADDRESS]...] [--webhook URL [--webhook-limit N]] [--tag TAG=QUERY]... "
        "[--tags-disable x-tags,plus-addresses] [--spamassassin HOST:PORT] "
        "[--dns-records FILE]"
    )
    longdesc = (
        "A small SMTP + IMAP server over Maildir for labs and tests. SMTP "
        "accepts mail for the users of the local domains only (with "
        "--catch-all, for every address, kept and never relayed); "
        f"{DEFAULT_SMTP} "
        f"(SMTP) and {DEFAULT_IMAP} (IMAP) unless told otherwise. Logins need "
        "TLS (STARTTLS/STLS, or --smtps/--imaps/--pop3s); POP3 only with "
        "--pop3/--pop3s; on first start a self-signed "
        "certificate is made in DIR/tls, which clients trust with --cafile "
        "DIR/tls/cert.pem. Users: netlab mail-user add --state DIR ADDRESS "
        "(--user is for throwaway labs: other local users can read it with ps)."
    )


def make_lab(config: LabOptions, reactor: Any, program: str, **extra: Any) -> Any:
    """
    The L{MailLab} service the options describe, with its state directory
    prepared (users, certificate, mailboxes).  A state directory that cannot
    be prepared ends the program with one line and exit status 1.
    """
    from twisted_netlab.mail.lab.service import MailLab

    lab = MailLab(
        reactor,
        state=Path(config["state"]),
        domains=config["domains"],
        users=config["users"],
        smtp=config["smtp"],
        imap=config["imap"],
        smtps=config["smtps"],
        imaps=config["imaps"],
        http=config["http"],
        https=config["https"],
        http_hosts=config.get("http-host", []),
        pop3=config["pop3"],
        pop3s=config["pop3s"],
        max_message_size=config["max-message-size"],
        hostname=config["hostname"],
        tls_cert=config["tls-cert"],
        tls_key=config["tls-key"],
        allow_plaintext_auth=config["allow-plaintext-auth"],
        require_auth=config["require-auth"],
        max_recipients=config["max-recipients"],
        max_messages=config["max-messages"],
        max_age=config["max-age"],
        faults=config["faults"],
        fault_seed=config["fault-seed"],
        program=program,
        **{
            "catch_all": config["catch-all"],
            **config["mailpit"],
            **config["checks"],
            **extra,
        },
    )
    try:
        lab.prepare()
    except NetlabError as e:
        sys.stderr.write(f"{program}: {e}\n")
        raise SystemExit(1) from None
    return lab


def makeService(config: Options, reactor: Any = None) -> IService:
    if reactor is None:
        from twisted.internet import reactor
    lab: IService = make_lab(config, reactor, "netlab-mail")
    return lab
