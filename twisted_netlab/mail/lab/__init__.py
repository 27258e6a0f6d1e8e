"""
The mail lab: a small SMTP + IMAP server over Maildir, for labs and tests.
"""
