"""
The mail lab's web side: the HTTP API (L{twisted_netlab.mail.lab.web.api})
and the inbox page's static files (C{static/}).
"""
