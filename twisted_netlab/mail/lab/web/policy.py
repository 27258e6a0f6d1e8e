"""
What a browser may do with the lab's answers: the Content-Security-Policy
of each kind of answer, and the headers every answer carries.

Message HTML runs no script and loads nothing remote (unless the inbox page
asks for remote content, and still no script); every other API answer may
not be framed or run anything; the inbox page runs only its own files.
"""

from __future__ import annotations

from twisted.web.server import Request

#: The policy of message HTML: no script, nothing remote, styles inline.
VIEW_CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
    "font-src data:; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'self'; sandbox allow-popups allow-popups-to-escape-sandbox"
)
#: The same with remote images, styles and fonts allowed (the inbox page's
#: "load remote content", C{/view/ID.html?remote=1}): still no script.
VIEW_REMOTE_CSP = (
    VIEW_CSP.replace(
        "style-src 'unsafe-inline'", "style-src 'unsafe-inline' http: https:"
    )
    .replace("img-src 'self' data:", "img-src 'self' data: http: https:")
    .replace("font-src data:", "font-src data: http: https:")
)
#: The policy of every other answer from the API (JSON, raw, parts).
API_CSP = "default-src 'none'; frame-ancestors 'none'; sandbox"
#: The policy of the inbox page (static files of our own).
PAGE_CSP = (
    "default-src 'self'; img-src 'self' data: blob:; style-src 'self'; "
    "frame-src 'self' blob:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; "
    "frame-ancestors 'none'"
)


def security_headers(request: Request, csp: str = API_CSP) -> None:
    """
    Set the headers every answer of the lab carries: no sniffing, no
    referrer, C{csp}, and no use from another origin.
    """
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"referrer-policy", b"no-referrer")
    request.setHeader(b"content-security-policy", csp.encode())
    request.setHeader(b"cross-origin-resource-policy", b"same-origin")
