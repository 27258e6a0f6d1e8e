"""
The mail lab's options that Mailpit users know, shared by C{twistd
netlab-mail} and C{twistd netlab}: the relay (C{--relay...}, release and
C{--forward}), the webhook, and tags (C{--tag}, C{--tags-disable}).

Nothing is relayed without C{--relay}; a relay's password only ever comes
from a file (C{--relay-password-file}), never from the command line.
"""

from __future__ import annotations

from typing import Any

from twisted.python import usage

from twisted_netlab.errors import UsageProblem
from twisted_netlab.mail.lab.relay import relay_config_from_options
from twisted_netlab.mail.lab.store.tags import parse_tag_rule, parse_tags_disable
from twisted_netlab.mail.lab.webhook import parse_webhook_limit, parse_webhook_url


class MailpitOptions(usage.Options):
    """
    A mixin of L{usage.Options}: L{check_mailpit_options} turns them into
    L{MailLab<twisted_netlab.mail.lab.service.MailLab>} keyword arguments,
    in C{self["mailpit"]}.
    """

    optParameters = [
        [
            "relay",
            None,
            None,
            "Release and forward mail through this SMTP server, HOST:PORT "
            "(nothing is relayed without it).",
        ],
        [
            "relay-tls",
            None,
            None,
            "How to reach the relay: starttls (the default), tls or none; its "
            "certificate is always verified.",
        ],
        [
            "relay-cafile",
            None,
            None,
            "Trust the relay's certificate with this PEM file.",
        ],
        ["relay-user", None, None, "Log in to the relay as this user."],
        [
            "relay-password-file",
            None,
            None,
            "The relay password: the first line of this file.",
        ],
        [
            "relay-allow",
            None,
            None,
            "Release only to recipients this regular expression is found in "
            "(400 otherwise).",
        ],
        [
            "webhook",
            None,
            None,
            "POST each new message's summary (JSON) to this http(s) URL.",
        ],
        [
            "webhook-limit",
            None,
            "1",
            "At most this many webhook requests a second (0: no limit).",
        ],
        [
            "tags-disable",
            None,
            None,
            "Automatic tags to leave off: x-tags, plus-addresses (comma-separated).",
        ],
    ]
    optFlags = [
        [
            "relay-insecure-plaintext-auth",
            None,
            "Allow --relay-user with --relay-tls none (the password in the clear).",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["forward"] = []
        self["tag"] = []

    def opt_forward(self, address: str) -> None:
        """Also send every captured message to this address through the
        relay, in the background (repeatable)."""
        self["forward"].append(address)

    def opt_tag(self, rule: str) -> None:
        """TAG=QUERY: a new message the search QUERY matches gets TAG
        (repeatable; TAG1,TAG2=QUERY for several)."""
        try:
            self["tag"].append(parse_tag_rule(rule))
        except UsageProblem as e:
            raise usage.UsageError(str(e)) from None

    def check_mailpit_options(self) -> None:
        """
        Check the options and put the L{MailLab} arguments they make in
        C{self["mailpit"]}.

        @raise usage.UsageError: one line naming the option.
        """
        try:
            relay = relay_config_from_options(
                relay=self["relay"],
                tls=self["relay-tls"],
                cafile=self["relay-cafile"],
                user=self["relay-user"],
                password_file=self["relay-password-file"],
                allow=self["relay-allow"],
                forward=self["forward"],
                allow_plaintext_auth=bool(self["relay-insecure-plaintext-auth"]),
            )
            webhook = None
            if self["webhook"] is not None:
                webhook = parse_webhook_url(self["webhook"])
            limit = parse_webhook_limit(str(self["webhook-limit"]))
            disabled = parse_tags_disable(self["tags-disable"] or "")
        except UsageProblem as e:
            raise usage.UsageError(str(e)) from None
        arguments: dict[str, Any] = {
            "relay": relay,
            "webhook": webhook,
            "webhook_limit": limit,
            "tag_rules": list(self["tag"]),
            "tags_disable": sorted(disabled),
        }
        self["mailpit"] = arguments
