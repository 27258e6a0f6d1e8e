"""
The HTML check: which HTML elements, attributes and CSS features a message's
HTML body uses, scored against caniemail.com's client support data, in
Mailpit's HTMLCheckResponse shape (C{Total}, C{Platforms}, C{Warnings}).

The work is pure CPU and offline: L{html_check} is the synchronous function
(tests call it), L{check} runs it in the reactor's thread pool.  A stylesheet
the message links to is not fetched (Mailpit fetches it): the check never
touches the network.

Scoring is Mailpit's: each feature's C{Score} holds the shares of client
versions that support it, partly or not; C{Total.Partial} and
C{Total.Unsupported} are the largest of those shares weighted by how many of
the message's elements use the feature, and C{Total.Supported} is what is
left of 100.  Warnings come worst first.  A feature every client supports
is counted as tested but not listed.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool

from twisted_netlab.mail.lab.checks import caniemail
from twisted_netlab.mail.lab.checks.context import CheckContext
from twisted_netlab.mail.lab.checks.html_features import DETECTABLE, SCRIPT, scan
from twisted_netlab.mail.lab.store.parsed import parse_message

#: Mailpit's own warning for scripts, which caniemail has no feature for
SCRIPT_TITLE = "<script> element"
SCRIPT_DESCRIPTION = "JavaScript is not supported in any email client."


def _script_warning(found: int) -> dict[str, Any]:
    return {
        "Slug": SCRIPT,
        "Title": SCRIPT_TITLE,
        "Description": SCRIPT_DESCRIPTION,
        "URL": "",
        "Category": "html",
        "Tags": [],
        "Keywords": "",
        "Results": [],
        "NotesByNumber": {},
        "Score": {
            "Found": found,
            "Supported": 0.0,
            "Partial": 0.0,
            "Unsupported": 100.0,
        },
    }


def tested_features() -> frozenset[str]:
    """
    The slugs the check tests for: what the scan detects and the data has.
    """
    return (DETECTABLE & caniemail.load().features.keys()) | {SCRIPT}


def _rounded(value: float) -> float:
    return round(value, 2)


def html_report(markup: str) -> dict[str, Any]:
    """
    The HTMLCheckResponse for an HTML document (or fragment).
    """
    findings = scan(markup)
    nodes = findings.nodes
    known = caniemail.load().features
    warnings: list[dict[str, Any]] = []
    for slug, found in findings.found.items():
        if slug == SCRIPT:
            warnings.append(_script_warning(found))
        elif slug in known:
            warning = caniemail.feature_warning(slug, found)
            if warning["Score"]["Supported"] < 100:
                warnings.append(warning)

    def weight(warning: dict[str, Any]) -> float:
        found = warning["Score"]["Found"]
        return min(found / nodes, 1.0) if nodes else 1.0

    partial = unsupported = 0.0
    for warning in warnings:
        score = warning["Score"]
        partial = max(partial, score["Partial"] * weight(warning))
        unsupported = max(unsupported, score["Unsupported"] * weight(warning))
    warnings.sort(
        key=lambda w: (
            -(w["Score"]["Unsupported"] + w["Score"]["Partial"]) * weight(w),
            w["Slug"],
        )
    )
    for warning in warnings:
        score = warning["Score"]
        for name in ("Supported", "Partial", "Unsupported"):
            score[name] = _rounded(score[name])
    return {
        "Platforms": caniemail.platforms(),
        "Total": {
            "Nodes": nodes,
            "Tests": len(tested_features()),
            "Supported": _rounded(100.0 - partial - unsupported),
            "Partial": _rounded(partial),
            "Unsupported": _rounded(unsupported),
        },
        "Warnings": warnings,
    }


def html_check(raw: bytes) -> dict[str, Any]:
    """
    The HTML check of a stored message: its HTML body's report.  A message
    without an HTML body has nothing to score: its C{Total.Nodes} is 0 and
    it has no warnings.
    """
    return html_report(parse_message(raw).html)


def check(raw: bytes, context: CheckContext) -> Deferred[dict[str, Any]]:
    """
    The HTML check, run in the reactor's thread pool.
    """
    reactor = context.reactor
    return deferToThreadPool(reactor, reactor.getThreadPool(), html_check, raw)
