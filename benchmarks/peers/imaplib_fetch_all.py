"""
An imaplib client reading a whole mailbox in one command: LOGIN, SELECT
INBOX, ``UID FETCH 1:* (BODY.PEEK[])``, LOGOUT.

    python imaplib_fetch_all.py PORT USER [CAFILE]

With CAFILE: implicit TLS to "localhost", verified against CAFILE; without:
plaintext to 127.0.0.1.  The password comes from $IMAP_PASSWORD.  Prints one
JSON object: seconds from connecting to the last byte of the FETCH answer,
messages and bytes received, and this process's CPU seconds meanwhile.
"""

import imaplib
import json
import os
import resource
import ssl
import sys
import time

port, user = int(sys.argv[1]), sys.argv[2]
cafile = sys.argv[3] if len(sys.argv) > 3 else None


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


start, cpu_start = time.perf_counter(), cpu()
client: imaplib.IMAP4
if cafile:
    context = ssl.create_default_context(cafile=cafile)
    client = imaplib.IMAP4_SSL("localhost", port, ssl_context=context)
else:
    client = imaplib.IMAP4("127.0.0.1", port)
client.login(user, os.environ["IMAP_PASSWORD"])
client.select("INBOX")
typ, data = client.uid("FETCH", "1:*", "(BODY.PEEK[])")
seconds, cpu_seconds = time.perf_counter() - start, cpu() - cpu_start
client.logout()
if typ != "OK":
    sys.exit(f"imaplib_fetch_all: FETCH failed: {typ} {data!r:.200}")
messages = [item[1] for item in data if isinstance(item, tuple)]
print(
    json.dumps(
        {
            "seconds": seconds,
            "messages": len(messages),
            "bytes": sum(len(m) for m in messages),
            "cpu": cpu_seconds,
        }
    )
)
