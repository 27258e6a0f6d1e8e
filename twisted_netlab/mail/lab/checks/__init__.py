"""
Checks of a stored message, computed on request (never at delivery): is the
mail that the software under test sends I{good}, not only delivered?

Each check is a module here with one entry point::

    def check(raw: bytes, context: CheckContext) -> Deferred[dict[str, Any]]

C{raw} is the message exactly as stored (the lab's C{Received:} line
included); the answer is the JSON-ready body of the check's HTTP route,
in Mailpit's shape where Mailpit has the check.  A check never raises for
a bad message: what is wrong with the message is its answer.  It fails its
Deferred only for a fault of the lab (a bug, or a setting that cannot
work), and then with a L{CheckError}.

  - C{html}: which HTML elements and CSS properties the message uses,
    scored against caniemail.com's support data (Mailpit's HTMLCheckResponse);
  - C{links}: every link and image URL fetched, when asked (LinkCheckResponse);
  - C{spam}: the message scored by a real spamd over SPAMC/SPAMD
    (SpamAssassinResponse);
  - C{auth}: DKIM, ARC, SPF and DMARC verified (ours);
  - C{lint}: the defects of the message as sent (ours).

Nothing here imports a protocol server or the web side: the checks sit
beside the store, and the web API, the Python API and the inbox call them.
"""
