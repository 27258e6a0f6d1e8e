"""
The mail lab's SMTP server: Twisted's ESMTP, made strict.

Mail is accepted only for existing users of the lab's local domains (550
for everything else: the lab never relays), unless the factory has a
C{catch_all} address: then every recipient at every domain is accepted and
whatever is not a lab user goes to the catch-all's INBOX (capture: nothing
ever leaves the machine).  A message is stored once per mailbox, however
many of its recipients map to it, with its SMTP envelope, all copies
durably (the C{deliver} callable has returned) before the one 250 reply.

  - L{server}: the protocol (reading lines and BDAT chunks, the commands,
    the STARTTLS and AUTH policy) and its factory, which carries the
    settings;
  - L{delivery}: the twisted.mail delivery side: a message arriving for
    all its recipients, held once and stored once per mailbox;
  - L{routing}: where mail for an address goes (a user, the catch-all, or
    refused), and the C{Received:} header of each copy;
  - L{syntax}: the pieces of the command grammar the server reads itself
    (UTF-8 paths, C{MAIL} parameters, C{BDAT});
  - L{replies}: the RFC 3463 enhanced status codes of the replies.

Each imports only those below it in this list (and the store, the users
and the faults); nothing here imports IMAP, POP3 or the web side.
"""
