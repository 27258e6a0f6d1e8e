"""
Mail on twisted.mail: composing and sending (SMTP), fetching (IMAP), and the
mail lab server (L{twisted_netlab.mail.lab}).

Each client is an API over a wire protocol that never imports it: C{send}
over C{smtpclient} (both use the types of C{outgoing}), C{fetch} over
C{imapclient}.
"""
