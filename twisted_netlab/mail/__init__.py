"""
Mail on twisted.mail: composing and sending (SMTP), fetching (IMAP), and the
mail lab server (L{twisted_netlab.mail.lab}).
"""
