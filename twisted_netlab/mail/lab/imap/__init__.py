"""
The mail lab's IMAP server (IMAP4rev1 and IMAP4rev2) over the lab's store.

  - L{server}: the protocol (Twisted's C{IMAP4Server} with the lab's
    policies and extensions) and its factory;
  - L{syntax}: the pieces of the command grammar the server reads itself;
  - L{account}: the C{twisted.cred} realm, accounts and mailboxes over the
    store's folders;
  - L{message}: a stored message as IMAP serves it (sections,
    BODYSTRUCTURE, ENVELOPE).
"""
