"""
The mail lab's IMAP server (IMAP4rev1 and IMAP4rev2) over the lab's store.

  - L{server}: the protocol, L{server.LabIMAPServer} (Twisted's
    C{IMAP4Server} with the lab's policies and extensions), composed of one
    mixin per command family, and its factory;
  - the command families: L{connection} (framing, bounds, fault hooks),
    L{auth} (capabilities, STARTTLS, LOGIN, AUTHENTICATE, ENABLE, ID),
    L{mailboxes} (SELECT, LIST, STATUS, CREATE...), L{fetch} (FETCH and its
    responder), L{flags} (STORE), L{search} (SEARCH, ESEARCH, SEARCHRES),
    L{transfer} (APPEND, COPY, MOVE, EXPUNGE, UID) and L{updates} (NOOP,
    CHECK, IDLE);
  - L{session}: the state the families share, and L{arguments}: their
    argument parsers;
  - L{syntax}: the pieces of the command grammar the server reads itself;
  - L{account}: the C{twisted.cred} realm, accounts and mailboxes over the
    store's folders;
  - L{message}: a stored message as IMAP serves it (sections,
    BODYSTRUCTURE, ENVELOPE).
"""
