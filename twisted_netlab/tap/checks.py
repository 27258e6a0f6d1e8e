"""
The mail lab's options for the message checks (docs/checks.rst), shared by
C{twistd netlab-mail} and C{twistd netlab}: C{--spamassassin HOST:PORT}
(the spamd of the spam check) and C{--dns-records FILE} (the auth check's
DNS, for a lab without DNS).
"""

from __future__ import annotations

from twisted.python import usage

from twisted_netlab.mail.lab.checks.context import CheckError
from twisted_netlab.mail.lab.checks.records import load_records
from twisted_netlab.mail.lab.checks.spam import parse_spamd_address


class CheckOptions(usage.Options):
    """
    A mixin of L{usage.Options}: L{check_check_options} turns them into
    L{MailLab<twisted_netlab.mail.lab.service.MailLab>} keyword arguments,
    in C{self["checks"]}.
    """

    optParameters = [
        [
            "spamassassin",
            None,
            None,
            "Score messages with the spamd at HOST:PORT (the spam check, "
            "/api/v1/message/ID/sa-check); off without it.",
        ],
        [
            "dns-records",
            None,
            None,
            "Answer the auth check's DNS questions from this records file "
            '(lines NAME TXT "value"; A, AAAA, MX, PTR too) instead of the '
            "system's resolver.",
        ],
    ]

    def check_check_options(self) -> None:
        """
        Check the values, reading the records file now, so that a bad line
        is a usage error naming the file and the line.

        @raise usage.UsageError: with one line.
        """
        checks: dict[str, object] = {}
        if self["spamassassin"] is not None:
            try:
                checks["spamassassin"] = parse_spamd_address(self["spamassassin"])
            except CheckError as e:
                raise usage.UsageError(f"--spamassassin: {e}") from None
        if self["dns-records"] is not None:
            try:
                checks["dns_records"] = load_records(self["dns-records"])
            except CheckError as e:
                raise usage.UsageError(f"--dns-records: {e}") from None
        self["checks"] = checks
