"""
Run a mail lab with its HTTP listener for the browser tests, as a process of
its own (pytest-twisted owns this process's reactor): prints one JSON line
with the ports once everything listens, then serves until SIGTERM.

    python -m tests.browser.lab_server STATE USER:PASSWORD...
"""

from __future__ import annotations

import json
import sys

LOOPBACK = "tcp:0:interface=127.0.0.1"


def main(argv: list[str]) -> None:
    from twisted.internet import reactor

    from twisted_netlab.mail.lab.service import MailLab

    state, *users = argv
    lab = MailLab(
        reactor,
        state=state,
        domains=["example.test"],
        users=[tuple(u.split(":", 1)) for u in users],  # type: ignore[misc]
        smtp=[LOOPBACK],
        imap=[LOOPBACK],
        http=[LOOPBACK],
    )

    def started(lab: MailLab) -> None:
        ports = {"smtp": lab.smtp_port, "imap": lab.imap_port, "http": lab.http_port}
        print(json.dumps(ports), flush=True)

    def failed(failure: object) -> None:
        print(f"lab_server: {failure}", file=sys.stderr, flush=True)
        reactor.stop()

    lab.start().addCallbacks(started, failed)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
