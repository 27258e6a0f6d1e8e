"""
C{twistd netlab}: the whole suite in one process, with one log.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import IService, MultiService
from twisted.python import usage

from twisted_netlab.echo import EchoFactory
from twisted_netlab.endpoints import check_endpoints, listening_services
from twisted_netlab.hello import HelloFactory
from twisted_netlab.tap import echo as echo_tap
from twisted_netlab.tap import hello as hello_tap
from twisted_netlab.tap import mail as mail_tap

DEFAULT_STATE = "netlab-state"
DEFAULT_DOMAIN = "netlab.test"
DEFAULT_POP3 = "tcp:1110:interface=127.0.0.1"


class Options(mail_tap.LabOptions):
    synopsis = (
        "[--hello ENDPOINT]... [--echo ENDPOINT]... [mail lab options of "
        "netlab-mail: --state DIR (default ./netlab-state), --domain DOMAIN "
        "(default netlab.test), --smtp/--imap ENDPOINT, ...] [--no-catch-all]"
    )
    longdesc = (
        "Run every netlab server at once: the greeting server on "
        f"{hello_tap.DEFAULT_LISTEN}, the echo server on "
        f"{echo_tap.DEFAULT_LISTEN}, and the mail lab (SMTP on "
        f"{mail_tap.DEFAULT_SMTP}, IMAP on {mail_tap.DEFAULT_IMAP}, POP3 on "
        f"{DEFAULT_POP3}, the HTTP API and inbox page on {mail_tap.DEFAULT_HTTP}) "
        "with its "
        f"state in ./{DEFAULT_STATE} for the domain {DEFAULT_DOMAIN}. When the "
        "lab has no user yet, one is made and its password logged once. The "
        "lab captures: mail for any address at any domain is kept (in the "
        "first user's INBOX unless --catch-all says otherwise), never relayed; "
        "--no-catch-all accepts mail for lab users only."
    )
    optFlags = [
        *mail_tap.LabOptions.optFlags,
        ["no-catch-all", None, "Accept mail for the lab's users only."],
    ]
    defaultState = DEFAULT_STATE
    defaultDomains = (DEFAULT_DOMAIN,)
    defaultHTTP = True

    def __init__(self) -> None:
        super().__init__()
        self["hello"] = []
        self["echo"] = []

    def opt_hello(self, description: str) -> None:
        """
        Where the greeting server listens (repeatable).
        """
        self["hello"].append(description)

    def opt_echo(self, description: str) -> None:
        """
        Where the echo server listens (repeatable).
        """
        self["echo"].append(description)

    def postOptions(self) -> None:
        self["hello"] = self["hello"] or [hello_tap.DEFAULT_LISTEN]
        self["echo"] = self["echo"] or [echo_tap.DEFAULT_LISTEN]
        check_endpoints(self["hello"] + self["echo"])
        self["pop3"] = self["pop3"] or [DEFAULT_POP3]
        if self["no-catch-all"] and self["catch-all"]:
            raise usage.UsageError("give --catch-all or --no-catch-all, not both")
        super().postOptions()


def makeService(config: Options, reactor: Any = None) -> IService:
    if reactor is None:
        from twisted.internet import reactor
    suite = MultiService()
    for service in [
        *listening_services("netlab", reactor, config["hello"], HelloFactory()),
        *listening_services(
            "netlab", reactor, config["echo"], EchoFactory(reactor=reactor)
        ),
        mail_tap.make_lab(
            config,
            reactor,
            "netlab",
            create_first_user=True,
            catch_all=_catch_all(config),
        ),
    ]:
        service.setServiceParent(suite)
    return suite


def _catch_all(config: Options) -> str | bool | None:
    """
    Capture into the first user, unless told another address or not to.
    """
    if config["no-catch-all"]:
        return None
    return config["catch-all"] or True
