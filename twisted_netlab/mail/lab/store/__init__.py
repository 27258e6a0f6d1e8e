"""
The mail lab's store: everything that knows how mail sits on disk and how it
is found.

  - L{maildir}: the Maildir folders of every user (UIDs, keywords, MODSEQ,
    envelopes, retention, the group commit);
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
