"""
DMARC (RFC 7489): does the domain of the C{From:} address stand behind
the message, through an aligned DKIM signature or an aligned SPF pass?

A small evaluator of what a receiver decides, not of reporting: policy
discovery (C{_dmarc.} of the From domain, then of its organizational
domain), the tags C{p}, C{sp}, C{adkim}, C{aspf} and C{pct}, and relaxed or
strict alignment.  DKIM and SPF results come in from L{auth} and L{spf}.

The organizational domain (RFC 7489 3.2) needs the Public Suffix List.
The one Debian ships (package C{publicsuffix},
C{/usr/share/publicsuffix/public_suffix_list.dat}, a dependency of libpsl)
is read when it is there; without it a short built-in list stands in:
the last two labels, or three under a few well-known second-level
suffixes such as C{co.uk}.  Test domains (C{example.org},
C{mail.example.test}) come out the same either way.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted_netlab.mail.lab.checks.records import DNSSource, DNSTemporaryError

#: Where Debian's C{publicsuffix} package puts the list.
PUBLIC_SUFFIX_LIST = Path("/usr/share/publicsuffix/public_suffix_list.dat")

#: Stand-in rules when the list is absent: second-level suffixes common
#: enough that guessing "the last two labels" would get them wrong.
FALLBACK_SUFFIXES = [
    "ac.uk",
    "co.uk",
    "gov.uk",
    "ltd.uk",
    "me.uk",
    "net.uk",
    "org.uk",
    "plc.uk",
    "sch.uk",
    "com.au",
    "edu.au",
    "gov.au",
    "net.au",
    "org.au",
    "co.nz",
    "net.nz",
    "org.nz",
    "co.jp",
    "ne.jp",
    "or.jp",
    "ac.jp",
    "go.jp",
    "co.kr",
    "or.kr",
    "com.br",
    "net.br",
    "org.br",
    "com.cn",
    "net.cn",
    "org.cn",
    "com.mx",
    "com.tr",
    "com.tw",
    "co.in",
    "net.in",
    "org.in",
    "co.za",
    "org.za",
    "co.il",
    "com.sg",
    "com.hk",
    "com.ar",
]


_DMARC1 = re.compile(r"v\s*=\s*DMARC1\s*(?:;|\Z)")


class PublicSuffixList:
    """
    The rules of a public suffix list (L{https://publicsuffix.org/list/}),
    with its wildcards and exceptions.
    """

    def __init__(self, rules: Iterable[str]) -> None:
        self.rules: set[str] = set()
        self.exceptions: set[str] = set()
        for line in rules:
            rule = line.strip().split(None, 1)[0] if line.strip() else ""
            if not rule or rule.startswith("//"):
                continue
            rule = rule.lower()
            if rule.startswith("!"):
                self.exceptions.add(rule[1:])
            else:
                self.rules.add(rule)

    @classmethod
    def from_file(cls, path: Path) -> PublicSuffixList:
        return cls(path.read_text(encoding="utf-8").splitlines())

    def suffix_length(self, labels: Sequence[str]) -> int:
        """
        How many of C{labels}' rightmost labels are the public suffix.
        """
        for start in range(len(labels)):
            candidate = ".".join(labels[start:])
            if candidate in self.exceptions:
                return len(labels) - start - 1
        best = 1  # the default rule "*"
        for start in range(len(labels)):
            name = labels[start:]
            wildcard = ".".join(["*", *name[1:]])
            if ".".join(name) in self.rules or (
                len(name) > 1 and wildcard in self.rules
            ):
                best = max(best, len(name))
        return best

    def organizational_domain(self, domain: str) -> str:
        """
        RFC 7489 3.2: the public suffix and one label more (or C{domain}
        itself when it is a public suffix).
        """
        labels = domain.rstrip(".").lower().split(".")
        keep = self.suffix_length(labels) + 1
        return ".".join(labels[-keep:]) if keep <= len(labels) else ".".join(labels)


@functools.cache
def public_suffixes() -> PublicSuffixList:
    """
    Debian's Public Suffix List when it is installed, else the stand-in.
    """
    try:
        return PublicSuffixList.from_file(PUBLIC_SUFFIX_LIST)
    except (OSError, UnicodeDecodeError):
        return PublicSuffixList(FALLBACK_SUFFIXES)


def organizational_domain(domain: str) -> str:
    return public_suffixes().organizational_domain(domain)


@dataclass(frozen=True)
class DMARCRecord:
    """
    A DMARC policy record, parsed; C{domain} is where it was found.
    """

    domain: str
    text: str
    policy: str
    subdomain_policy: str | None
    adkim: str
    aspf: str
    pct: int


def parse_record(domain: str, text: str) -> DMARCRecord:
    """
    The tags of a C{v=DMARC1} record (RFC 7489 6.3).

    @raise ValueError: it is not a valid record (the message says why).
    """
    tags: dict[str, str] = {}
    for position, part in enumerate(text.split(";")):
        part = part.strip()
        if not part:
            continue
        name, equals, value = part.partition("=")
        name, value = name.strip().lower(), value.strip()
        if not equals or not name:
            raise ValueError(f"{part!r} is not a tag=value")
        if position == 0 and (name != "v" or value != "DMARC1"):
            raise ValueError("the record does not start with v=DMARC1")
        tags.setdefault(name, value)
    policies = ("none", "quarantine", "reject")
    policy = tags.get("p", "").lower()
    subdomain = tags.get("sp", "").lower() or None
    if policy not in policies or (subdomain is not None and subdomain not in policies):
        if "rua" in tags and tags["rua"].strip():
            # RFC 7489 6.6.3 step 6: with a report address, act as p=none.
            policy, subdomain = "none", None
        elif "p" not in tags:
            raise ValueError("the record has no p= tag")
        else:
            bad = "p" if policy not in policies else "sp"
            raise ValueError(f"{bad}={tags[bad]} is not none, quarantine or reject")
    alignment = {}
    for tag in ("adkim", "aspf"):
        mode = tags.get(tag, "r").lower()
        if mode not in ("r", "s"):
            raise ValueError(f"{tag}={tags[tag]} is not r or s")
        alignment[tag] = "strict" if mode == "s" else "relaxed"
    pct_text = tags.get("pct", "100")
    if not pct_text.isdigit() or int(pct_text) > 100:
        raise ValueError(f"pct={pct_text} is not 0..100")
    return DMARCRecord(
        domain,
        text,
        policy,
        subdomain,
        alignment["adkim"],
        alignment["aspf"],
        int(pct_text),
    )


def _aligned(mode: str, domain: str, from_domain: str) -> bool:
    domain, from_domain = domain.rstrip(".").lower(), from_domain.rstrip(".").lower()
    if mode == "strict":
        return domain == from_domain
    return organizational_domain(domain) == organizational_domain(from_domain)


def evaluate_dmarc(
    dns: DNSSource,
    from_domains: Sequence[str],
    dkim_passes: Sequence[str],
    spf_result: str,
    spf_domain: str,
) -> dict[str, Any]:
    """
    DMARC for a message whose C{From:} addresses have C{from_domains}, with
    a DKIM pass for each domain of C{dkim_passes} and the SPF outcome.

    @return: the check's C{DMARC} member: C{Result} (pass, fail, none,
        temperror or permerror), C{Policy}, C{Domain}, C{Record},
        C{RecordDomain}, C{Alignment} and C{Reason}.
    """
    answer: dict[str, Any] = {
        "Result": "none",
        "Policy": None,
        "Domain": from_domains[0] if len(from_domains) == 1 else None,
        "Record": None,
        "RecordDomain": None,
        "Alignment": None,
        "Pct": None,
        "Reason": "",
    }
    if len(from_domains) != 1:
        answer["Result"] = "permerror"
        answer["Reason"] = (
            "the message has no From: address"
            if not from_domains
            else f"From: has {len(from_domains)} addresses; DMARC needs exactly one"
        )
        return answer
    from_domain = from_domains[0].rstrip(".").lower()
    answer["Domain"] = from_domain
    organizational = organizational_domain(from_domain)
    record: DMARCRecord | None = None
    for domain in dict.fromkeys((from_domain, organizational)):
        name = f"_dmarc.{domain}"
        try:
            texts = [t for t in dns.txt(name) if _DMARC1.match(t)]
        except DNSTemporaryError as e:
            answer["Result"] = "temperror"
            answer["Reason"] = f"DNS failed for {name}: {e}"
            return answer
        if len(texts) > 1:
            answer["Reason"] = (
                f"{name} has {len(texts)} DMARC records: RFC 7489 6.6.3 "
                "ignores them all"
            )
            return answer
        if texts:
            answer["Record"] = texts[0]
            answer["RecordDomain"] = name
            try:
                record = parse_record(domain, texts[0])
            except ValueError as e:
                answer["Result"] = "permerror"
                answer["Reason"] = f"{name}: {e}"
                return answer
            break
    if record is None:
        answer["Reason"] = f"no DMARC record at _dmarc.{from_domain}" + (
            f" nor at _dmarc.{organizational}" if organizational != from_domain else ""
        )
        return answer
    policy = record.policy
    if record.domain != from_domain and record.subdomain_policy is not None:
        policy = record.subdomain_policy
    answer["Policy"] = policy
    answer["Pct"] = record.pct
    dkim_aligned = [d for d in dkim_passes if _aligned(record.adkim, d, from_domain)]
    spf_aligned = spf_result == "pass" and _aligned(
        record.aspf, spf_domain, from_domain
    )
    answer["Alignment"] = {
        "DKIM": {
            "Mode": record.adkim,
            "Aligned": bool(dkim_aligned),
            "Domain": dkim_aligned[0] if dkim_aligned else None,
        },
        "SPF": {
            "Mode": record.aspf,
            "Aligned": spf_aligned,
            "Domain": spf_domain or None,
        },
    }
    if dkim_aligned or spf_aligned:
        answer["Result"] = "pass"
        why = []
        if dkim_aligned:
            why.append(f"DKIM d={dkim_aligned[0]} passed, aligned ({record.adkim})")
        if spf_aligned:
            why.append(f"SPF passed for {spf_domain}, aligned ({record.aspf})")
        answer["Reason"] = "; ".join(why) + f", with the From domain {from_domain}"
        return answer
    answer["Result"] = "fail"
    answer["Reason"] = _why_not(
        record, from_domain, dkim_passes, spf_result, spf_domain, policy
    )
    return answer


def _why_not(
    record: DMARCRecord,
    from_domain: str,
    dkim_passes: Sequence[str],
    spf_result: str,
    spf_domain: str,
    policy: str,
) -> str:
    if dkim_passes:
        dkim = (
            f"DKIM passed for {', '.join(dkim_passes)} but not aligned "
            f"({record.adkim}) with {from_domain}"
        )
    else:
        dkim = "no DKIM signature passed"
    if spf_result != "pass":
        spf = f"SPF is {spf_result}" + (f" for {spf_domain}" if spf_domain else "")
    else:
        spf = f"SPF passed for {spf_domain} but not aligned ({record.aspf})"
    return f"{dkim}; {spf}: the policy is p={policy}"
