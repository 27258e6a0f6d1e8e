"""
aiosmtpd with its own Maildir handler (aiosmtpd.handlers.Mailbox: each
message parsed, given X-Peer/X-MailFrom/X-RcptTo headers and added with
mailbox.Maildir, which fsyncs it), on the default asyncio event loop.

    python aiosmtpd_maildir.py PORT BACKLOG MAILDIR

Listens on 127.0.0.1 only; plaintext, no AUTH (as the benchmark's netlab-mail).
"""

import asyncio
import sys
from pathlib import Path

from aiosmtpd.handlers import Mailbox
from aiosmtpd.smtp import SMTP

PORT, BACKLOG, MAILDIR = int(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3])


async def main() -> None:
    loop = asyncio.get_running_loop()
    handler = Mailbox(MAILDIR)
    server = await loop.create_server(
        lambda: SMTP(handler, hostname="localhost"),
        "127.0.0.1",
        PORT,
        backlog=BACKLOG,
    )
    await server.serve_forever()


asyncio.run(main())
