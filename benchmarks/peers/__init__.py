"""
The servers netlab is measured against, each a script run as its own process:
``python SCRIPT PORT BACKLOG``.  They listen on 127.0.0.1 only.

- ``seed_echo.py``, ``seed_hello.py``: the course page's socketserver code,
  copied as it is (its ``print`` per client included), with the port and
  listen backlog taken from the command line.
- ``asyncio_echo.py``: a stdlib asyncio ``Protocol`` echo with the same ``S:``
  prefix.
- ``twisted_echo.py``, ``twisted_hello.py``: the textbook Twisted versions
  (``LineReceiver``, ``Protocol``) on the default reactor.
"""
