"""
The checks' answers for Python: dataclasses with attribute access over the
JSON the HTTP routes serve, so that a test reads::

    result = await mail_lab.check(message.id, "lint")
    assert result.errors == []

Each result keeps the answer it wraps as C{json}.  L{result_of} makes the
result of a check's answer; docs/checks.rst ("From Python") lists the
attributes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any


def _answer(value: Mapping[str, Any]) -> dict[str, Any]:
    return dict(value)


# --- lint -------------------------------------------------------------------


@dataclass(frozen=True)
class LintFinding:
    """
    One defect of the message as sent: its stable C{code} (C{bare-lf}...),
    C{severity} (C{error} or C{warning}), what is wrong and where.
    """

    code: str
    severity: str
    message: str
    where: str

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> LintFinding:
        return cls(
            str(value["Code"]),
            str(value["Severity"]),
            str(value["Message"]),
            str(value["Where"]),
        )


@dataclass(frozen=True)
class LintResult:
    """
    The lint of a message: every finding, and those of each severity.
    """

    findings: list[LintFinding]
    json: dict[str, Any] = field(repr=False, compare=False)

    @property
    def errors(self) -> list[LintFinding]:
        """The findings of severity C{error} (C{[]}: none)."""
        return [f for f in self.findings if f.severity == "error"]

    @property
    def warnings(self) -> list[LintFinding]:
        """The findings of severity C{warning}."""
        return [f for f in self.findings if f.severity == "warning"]

    @property
    def codes(self) -> list[str]:
        """The findings' codes, in order (a code may come more than once)."""
        return [f.code for f in self.findings]

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> LintResult:
        return cls(
            [LintFinding.from_json(f) for f in value["Findings"]], _answer(value)
        )


# --- auth -------------------------------------------------------------------


@dataclass(frozen=True)
class DKIMSignature:
    """
    One C{DKIM-Signature}'s verdict: C{result} (C{pass}, C{fail},
    C{neutral}, C{temperror}, C{permerror}) and the C{reason}.
    """

    domain: str
    selector: str
    result: str
    reason: str

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> DKIMSignature:
        return cls(
            str(value.get("Domain", "")),
            str(value.get("Selector", "")),
            str(value["Result"]),
            str(value.get("Reason", "")),
        )


@dataclass(frozen=True)
class SPFResult:
    """
    SPF for the envelope's client IP and C{MAIL FROM} (or HELO) domain.
    """

    result: str
    domain: str
    reason: str
    record: str
    json: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> SPFResult:
        return cls(
            str(value["Result"]),
            str(value.get("Domain") or ""),
            str(value.get("Reason") or ""),
            str(value.get("Record") or ""),
            _answer(value),
        )


@dataclass(frozen=True)
class DMARCResult:
    """
    DMARC for the C{From:} domain, alignment included.
    """

    result: str
    policy: str
    domain: str
    reason: str
    json: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> DMARCResult:
        return cls(
            str(value["Result"]),
            str(value.get("Policy") or ""),
            str(value.get("Domain") or ""),
            str(value.get("Reason") or ""),
            _answer(value),
        )


@dataclass(frozen=True)
class AuthResult:
    """
    The authentication check: C{dkim} (one per signature, topmost first),
    C{spf}, C{dmarc}, and C{arc} (the chain's answer, L{None} without an
    C{ARC-Seal}).
    """

    dkim: list[DKIMSignature]
    spf: SPFResult
    dmarc: DMARCResult
    arc: dict[str, Any] | None
    json: dict[str, Any] = field(repr=False, compare=False)

    @property
    def passed(self) -> bool:
        """
        Whether a receiver would take the From domain as authentic: DMARC
        passes (an aligned DKIM or SPF pass).  The inbox's badge shows it.
        """
        return self.dmarc.result == "pass"

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> AuthResult:
        return cls(
            [DKIMSignature.from_json(s) for s in value["DKIM"]],
            SPFResult.from_json(value["SPF"]),
            DMARCResult.from_json(value["DMARC"]),
            value.get("ARC"),
            _answer(value),
        )


# --- spam -------------------------------------------------------------------


@dataclass(frozen=True)
class SpamRule:
    """
    One SpamAssassin rule that hit: its name, points and description.
    """

    name: str
    score: float
    description: str


@dataclass(frozen=True)
class SpamResult:
    """
    The spam check: spamd's C{score}, its verdict C{is_spam}, the C{rules}
    that hit, and C{error} (C{""}, or why there is no score).
    """

    score: float
    is_spam: bool
    rules: list[SpamRule]
    error: str
    json: dict[str, Any] = field(repr=False, compare=False)

    @property
    def rule_names(self) -> list[str]:
        """The names of the rules that hit (C{"GTUBE"}...)."""
        return [r.name for r in self.rules]

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> SpamResult:
        return cls(
            float(value["Score"]),
            bool(value["IsSpam"]),
            [
                SpamRule(str(r["Name"]), float(r["Score"]), str(r["Description"]))
                for r in value["Rules"]
            ],
            str(value["Error"]),
            _answer(value),
        )


# --- links ------------------------------------------------------------------


@dataclass(frozen=True)
class Link:
    """
    One link or image URL: its C{status_code} (0: no answer, or not
    fetched) and C{status}.
    """

    url: str
    status_code: int
    status: str

    @property
    def checked(self) -> bool:
        """Whether it was to be fetched (http or https)."""
        return not (self.status_code == 0 and self.status.startswith("not checked"))

    @property
    def broken(self) -> bool:
        """Fetched and failed: no answer, a status of 400 or more, blocked."""
        return self.checked and (self.status_code == 0 or self.status_code >= 400)


@dataclass(frozen=True)
class LinksResult:
    """
    The link check: every link, and how many failed (C{errors}, Mailpit's
    C{Errors}).
    """

    links: list[Link]
    errors: int
    json: dict[str, Any] = field(repr=False, compare=False)

    @property
    def broken(self) -> list[Link]:
        """The links that were fetched and failed."""
        return [link for link in self.links if link.broken]

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> LinksResult:
        return cls(
            [
                Link(str(link["URL"]), int(link["StatusCode"]), str(link["Status"]))
                for link in value["Links"]
            ],
            int(value["Errors"]),
            _answer(value),
        )


# --- html -------------------------------------------------------------------


@dataclass(frozen=True)
class HTMLWarning:
    """
    One HTML or CSS feature the message uses that some clients do not (or
    only partly) support: its caniemail C{slug}, and the shares of client
    versions that support it (C{supported}, C{partial}, C{unsupported}, in
    percent), with C{results} per client version.
    """

    slug: str
    title: str
    category: str
    url: str
    found: int
    supported: float
    partial: float
    unsupported: float
    results: list[dict[str, Any]] = field(repr=False)

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> HTMLWarning:
        score = value.get("Score") or {}
        return cls(
            str(value["Slug"]),
            str(value.get("Title", "")),
            str(value.get("Category", "")),
            str(value.get("URL", "")),
            int(score.get("Found", 0)),
            float(score.get("Supported", 0)),
            float(score.get("Partial", 0)),
            float(score.get("Unsupported", 0)),
            list(value.get("Results") or ()),
        )


@dataclass(frozen=True)
class HTMLResult:
    """
    The HTML check: the message's score against caniemail's data
    (C{supported}, C{partial}, C{unsupported}, in percent; C{nodes}
    elements, C{tests} features tested), the C{warnings} worst first, and
    the clients of each platform (C{platforms}).
    """

    supported: float
    partial: float
    unsupported: float
    nodes: int
    tests: int
    warnings: list[HTMLWarning]
    platforms: dict[str, list[str]] = field(repr=False)
    json: dict[str, Any] = field(repr=False, compare=False)

    @property
    def slugs(self) -> list[str]:
        """The warnings' slugs (C{css-display-flex}...), worst first."""
        return [w.slug for w in self.warnings]

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> HTMLResult:
        total = value["Total"]
        return cls(
            float(total["Supported"]),
            float(total["Partial"]),
            float(total["Unsupported"]),
            int(total["Nodes"]),
            int(total["Tests"]),
            [HTMLWarning.from_json(w) for w in value["Warnings"]],
            {k: list(v) for k, v in (value.get("Platforms") or {}).items()},
            _answer(value),
        )


CheckResult = LintResult | AuthResult | SpamResult | LinksResult | HTMLResult

#: Each check's result type, by the check's name.
RESULTS: Mapping[str, Callable[[Mapping[str, Any]], CheckResult]] = {
    "html": HTMLResult.from_json,
    "links": LinksResult.from_json,
    "spam": SpamResult.from_json,
    "auth": AuthResult.from_json,
    "lint": LintResult.from_json,
}


def result_of(name: str, answer: Mapping[str, Any]) -> CheckResult:
    """
    The result object of check C{name}'s JSON answer.
    """
    return RESULTS[name](answer)
