"""
The course page's way of reading mail, made to save it: imaplib over
implicit TLS, one ``UID FETCH n (BODY.PEEK[])`` round trip per message, each
message saved with ``mailbox.Maildir`` as ``netlab fetch --save maildir:DIR``
does (each file written to tmp/, fsynced, moved to new/; the directory
fsynced at the end).

    python imaplib_fetch.py HOST PORT CAFILE USER MAILDIR

The password comes from $IMAP_PASSWORD.  Prints the number of messages saved.
"""

import imaplib
import mailbox
import os
import ssl
import sys

host, port, cafile, user, target = sys.argv[1:6]
context = ssl.create_default_context(cafile=cafile)
for sub in ("tmp", "new", "cur"):
    os.makedirs(os.path.join(target, sub), exist_ok=True)
box = mailbox.Maildir(target, create=False)

imap = imaplib.IMAP4_SSL(host, int(port), ssl_context=context)
imap.login(user, os.environ["IMAP_PASSWORD"])
imap.select("INBOX", readonly=True)
typ, data = imap.uid("SEARCH", "ALL")
uids = data[0].split()
for uid in uids:
    typ, data = imap.uid("FETCH", uid, "(BODY.PEEK[])")
    if typ != "OK" or not isinstance(data[0], tuple):
        sys.exit(f"imaplib_fetch: cannot fetch UID {uid.decode()}: {typ} {data}")
    box.add(data[0][1])
imap.logout()

directory = os.open(os.path.join(target, "new"), os.O_RDONLY | os.O_DIRECTORY)
os.fsync(directory)
os.close(directory)
print(len(uids))
