"""
A message's C{List-Unsubscribe} header checked as Mailpit checks it
(internal/tools/listunsubscribeparser.go): L{list_unsubscribe} makes the
message answer's C{ListUnsubscribe} object, C{{"Header", "Links", "Errors",
"HeaderPost"}}.

The header (RFC 2369, RFC 8058) is one or two links in angle brackets,
separated by a comma: at most one C{mailto:} and one C{http(s)://} link,
without spaces; comments in parentheses are ignored.  C{Links} lists the
links that pass, C{Errors} says in one line what does not (Mailpit's
wording), and both are empty without the header.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import Any

_LINK = re.compile(r"<(.*?)>", re.M)
_JOINS = re.compile(r">(.*?)<", re.I | re.M | re.S)
_VALID_JOIN = re.compile(r"^(\s+)?,(\s+)?$", re.I | re.M | re.S)
_WRAPPED = re.compile(r"^<(.*?)>$", re.I | re.M | re.S)
_MAILTO = re.compile(r"^mailto:[a-zA-Z0-9]")
_HTTP = re.compile(r"^https?://[a-zA-Z0-9]", re.I)
_SPACE = re.compile(r"\s")
_COMMENT = re.compile(r"\(.*?\)", re.M | re.S)


def parse_list_unsubscribe(value: str) -> tuple[list[str], str]:
    """
    The links of a C{List-Unsubscribe} value that pass Mailpit's checks,
    and its errors (one line, empty when there are none).
    """
    value = value.strip()
    for comment in _COMMENT.findall(value):
        value = value.replace(comment, "").strip()
    if not _LINK.search(value):
        return [], f'"{value}" no valid unsubscribe links found'
    if not _WRAPPED.search(value):
        return [], f'"{value}" should be enclosed in <>'
    links = _LINK.findall(value)
    if len(links) > 2:
        return [], (
            f'"{value}" should include a maximum of one email and one HTTP link'
        )
    for join in _JOINS.findall(value):
        if not _VALID_JOIN.search(join):
            return [], f'"{value}" <> should be split with a comma and optional spaces'
    errors: list[str] = []
    found: list[str] = []
    mailto = http = False
    for link in links:
        if _SPACE.search(link):
            errors.append(f'"{link}" should not contain spaces')
            continue
        if _MAILTO.match(link):
            if mailto:
                errors.append(f'"{link}" should only contain one mailto:')
                continue
            mailto = True
        elif _HTTP.match(link):
            if http:
                errors.append(f'"{link}" should only contain one HTTP link')
                continue
            http = True
        else:
            errors.append(f'"{link}" should start with either http(s):// or mailto:')
            continue
        try:
            urllib.parse.urlsplit(link)
        except ValueError as e:
            errors.append(f'parse "{link}": {e}')
            continue
        found.append(link)
    return found, ", ".join(errors)


def list_unsubscribe(header: str, header_post: str) -> dict[str, Any]:
    """
    Mailpit's C{ListUnsubscribe} object for a message with these
    C{List-Unsubscribe} and C{List-Unsubscribe-Post} values (empty: the
    message has none).
    """
    if not header:
        return {"Header": "", "Links": [], "Errors": "", "HeaderPost": ""}
    links, errors = parse_list_unsubscribe(header)
    return {
        "Header": header,
        "Links": links,
        "Errors": errors,
        "HeaderPost": header_post,
    }


__all__ = ["list_unsubscribe", "parse_list_unsubscribe"]
