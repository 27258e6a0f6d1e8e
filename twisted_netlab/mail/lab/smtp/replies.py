"""
The RFC 3463 enhanced status codes the lab's SMTP replies carry
(C{ENHANCEDSTATUSCODES}, RFC 2034): the code a reply gives itself, or
the one its reply code (or Twisted's wording) calls for.
"""

from __future__ import annotations

import re

#: RFC 3463 codes for replies that do not carry their own (RFC 2034).
_ENHANCED = {
    220: b"2.0.0",
    221: b"2.0.0",
    235: b"2.7.0",
    250: b"2.0.0",
    252: b"2.5.0",
    421: b"4.3.0",
    450: b"4.2.0",
    451: b"4.3.0",
    452: b"4.3.1",
    454: b"4.7.0",
    500: b"5.5.2",
    501: b"5.5.4",
    502: b"5.5.1",
    503: b"5.5.1",
    504: b"5.5.4",
    530: b"5.7.0",
    534: b"5.7.9",
    535: b"5.7.8",
    538: b"5.7.11",
    550: b"5.1.1",
    551: b"5.1.6",
    552: b"5.3.4",
    553: b"5.1.3",
    554: b"5.0.0",
    555: b"5.5.4",
}
_HAS_ENHANCED = re.compile(rb"^[245]\.\d{1,3}\.\d{1,3}( |$)")
# Twisted's replies, with the codes RFC 3463 gives them.
_TWISTED_REPLIES = {
    b"Sender address accepted": b"2.1.0",
    b"Recipient address accepted": b"2.1.5",
    b"Must have sender before recipient": b"5.5.1",
    b"Syntax error": b"5.5.4",
}


def with_enhanced_code(code: int, lines: list[bytes]) -> list[bytes]:
    """
    The lines of a 2xx, 4xx or 5xx reply, each starting with its enhanced
    status code: the one the first line starts with, else the one for
    Twisted's wording or for C{code}.
    """
    lines = list(lines)
    enhanced = _TWISTED_REPLIES.get(lines[0]) or _ENHANCED.get(
        code, b"%d.0.0" % (code // 100,)
    )
    given = _HAS_ENHANCED.match(lines[0])
    if given:
        enhanced = given.group(0).strip()
        lines[0] = lines[0][given.end() :]
    return [enhanced + b" " + line if line else enhanced for line in lines]
