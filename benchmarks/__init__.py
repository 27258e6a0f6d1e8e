"""
twisted_netlab's benchmarks: each server as its own process on loopback,
driven by one compiled load generator, reported as one table, one plot and a
JSON file of the raw figures.  Run ``python -m benchmarks --help``.

A benchmark is a module with a C{NAME} and C{run(context) -> Section} (see
L{benchmarks.core}); L{MODULES} lists them in the order they run.  The mail
benchmarks (mail_fetch, mail_smtp, mail_imap, mail_capture, mail_api:
docs/benchmarks-mail.rst) run after echo and hello; the web inbox in Chromium
against MailDev 3's UI (web_inbox: docs/web-inbox.rst); the message checks
on a newsletter (checks: docs/checks.rst); the lab at 100,000 messages
against Dovecot (scale: docs/benchmarks-mail.rst) last.
"""

MODULES = [
    "benchmarks.echo",
    "benchmarks.hello",
    "benchmarks.mail_fetch",
    "benchmarks.mail_smtp",
    "benchmarks.mail_imap",
    "benchmarks.mail_capture",
    "benchmarks.mail_api",
    "benchmarks.web_inbox",
    "benchmarks.checks",
    "benchmarks.scale",
]
