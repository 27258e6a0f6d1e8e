"""
twisted_netlab: the course page's network programs, done properly on Twisted.

A greeting server and a line echo server as embeddable factories, twistd plugins
for every server, and (in ``twisted_netlab.mail``) SMTP sending, IMAP fetching and
a small mail lab server.
"""

from twisted_netlab.echo import EchoFactory, EchoProtocol
from twisted_netlab.hello import HelloFactory, HelloProtocol

__version__ = "0.1.0"

__all__ = [
    "EchoFactory",
    "EchoProtocol",
    "HelloFactory",
    "HelloProtocol",
    "__version__",
]
