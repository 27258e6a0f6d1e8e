"""
The mail lab's store: everything that knows how mail sits on disk and how it
is found.

  - L{maildir}: L{MailStore<maildir.MailStore>}, the Maildirs of every user
    (users, mailboxes, subscriptions, delivery to several mailboxes and the
    group commit); also the store's public face, which imports the names
    below that its users need;
  - L{folder}: one mailbox (scanning, reading, flags, delivery, retention,
    messages in use);
  - L{uidlist}, L{keywords}, L{modseq}: a folder's UIDs (and envelopes),
    keyword letters and MODSEQs, each a small file beside its Maildir;
  - L{names}: addresses, mailbox and folder names, flag letters, message
    file names; L{envelope}: the SMTP envelope, a delivery, retention
    limits; L{errors}: what the store refuses;
  - L{parsed}: a stored message as a person reads it (decoded headers and
    bodies);
  - L{search}: the one matcher over decoded text, and the HTTP query language;
  - L{factsfile}: the search facts kept in SQLite, so that they outlive a
    restart;
  - L{catalog}: the messages across users as the HTTP and Python APIs see
    them, with stable IDs, events and waits.

Nothing here imports a protocol server (SMTP, IMAP, POP3) or the web side:
they are built on the store, never the other way round.
"""
