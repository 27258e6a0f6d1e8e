"""
SPF (RFC 7208): is the SMTP client allowed to send for the envelope's
domain?

A small evaluator of the RFC, written here rather than taken from pyspf or
checkdmarc: pyspf brings its own DNS layer (pydns or dnspython, and its own
queries), checkdmarc a whole tree of dependencies and the network, and
neither asks the lab's records file.  This one asks a L{DNSSource} (the
records file or dnspython) for every answer, and covers what senders
publish: C{all}, C{include}, C{a}, C{mx}, C{ip4}, C{ip6}, C{exists},
C{redirect=}, C{ptr} (which RFC 7208 5.5 says not to use, but which is
still published), the macros of section 7 and the limits of section 4.6.4
(10 terms that ask DNS, 10 MX or PTR names, 2 void lookups).  C{exp=} is
checked but not fetched: it only words a rejection.  The OpenSPF RFC 7208
test suite runs against it (tests/mail/lab/checks/test_spf.py).
"""

from __future__ import annotations

import ipaddress
import re
import urllib.parse
from dataclasses import dataclass

from twisted_netlab.mail.lab.checks.records import DNSSource, DNSTemporaryError

#: RFC 7208 4.6.4.
MAX_LOOKUPS = 10
MAX_VOID_LOOKUPS = 2
MAX_MX = 10

_QUALIFIERS = {"+": "pass", "-": "fail", "~": "softfail", "?": "neutral"}
_MECHANISMS = ("all", "include", "a", "mx", "ptr", "ip4", "ip6", "exists")
_MODIFIER = re.compile(r"([A-Za-z][A-Za-z0-9._-]*)=(.*)", re.DOTALL)
_DIRECTIVE = re.compile(r"([+\-~?]?)([A-Za-z0-9]+)(.*)", re.DOTALL)
_CIDR = re.compile(r"(.*?)(?:/(\d+))?(?://(\d+))?", re.DOTALL)
_MACRO = re.compile(r"%(?:\{([slodiphcrtvSLODIPHCRTV])(\d*)(r?)([.\-+,/_=]*)\}|(.))")
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")
_TOPLABEL = re.compile(
    r"[A-Za-z0-9]*[A-Za-z][A-Za-z0-9]*|[A-Za-z0-9]+-[A-Za-z0-9-]*[A-Za-z0-9]"
)


@dataclass(frozen=True)
class SPFResult:
    """
    The outcome of an SPF evaluation.

    @ivar result: C{pass}, C{fail}, C{softfail}, C{neutral}, C{none},
        C{temperror} or C{permerror}.
    @ivar domain: the domain whose policy was asked (the MAIL FROM domain,
        or the HELO name).
    @ivar scope: C{mailfrom} or C{helo}: which identity the domain is.
    @ivar client_ip: the address that was checked.
    @ivar record: the domain's SPF record, when it has one.
    @ivar reason: why, in a sentence.
    @ivar lookups: how many of the 10 DNS-asking terms were spent.
    """

    result: str
    domain: str
    scope: str
    client_ip: str
    record: str | None
    reason: str
    lookups: int = 0

    def to_json(self) -> dict[str, object]:
        return {
            "Result": self.result,
            "Domain": self.domain,
            "Scope": self.scope,
            "ClientIP": self.client_ip,
            "Record": self.record,
            "Reason": self.reason,
            "Lookups": self.lookups,
        }


#: A directive's text and its qualifier, mechanism, argument and prefix
#: lengths.
_Directive = tuple[str, str, str, str | None, int | None, int | None]


class _Abort(Exception):
    """A temperror or permerror: it ends the whole evaluation."""

    def __init__(self, result: str, reason: str) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason


def _perm(reason: str) -> _Abort:
    return _Abort("permerror", reason)


def evaluate_spf(
    dns: DNSSource, client_ip: str, mail_from: str, helo: str
) -> SPFResult:
    """
    SPF for a message from C{client_ip} with the envelope's C{mail_from}
    (C{""} for C{<>}: then the C{helo} name is checked, RFC 7208 2.4).
    """
    if "@" in mail_from:
        local, _, domain = mail_from.rpartition("@")
        scope = "mailfrom"
    else:
        local, domain, scope = "postmaster", helo, "helo"
    domain = domain.rstrip(".").lower()
    local = local or "postmaster"
    sender = f"{local}@{domain}"

    def done(result: str, reason: str, record: str | None = None) -> SPFResult:
        return SPFResult(result, domain, scope, client_ip, record, reason, lookups)

    lookups = 0
    if not client_ip:
        return done(
            "none", "the client's IP address is unknown (it did not arrive over IP)"
        )
    try:
        ip = ipaddress.ip_address(client_ip)
    except ValueError:
        return done("none", f"{client_ip!r} is not an IP address")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if not domain:
        return done("none", "no domain to check: MAIL FROM is <> and HELO is unknown")
    if not _is_domain(domain):
        return done("none", f"{domain!r} is not a domain name (RFC 7208 4.3)")
    evaluation = _Evaluation(dns, ip, sender, helo)
    try:
        result, reason, record = evaluation.check_host(domain)
    except _Abort as e:
        lookups = evaluation.lookups
        return done(e.result, e.reason, evaluation.top_record)
    lookups = evaluation.lookups
    return done(result, reason, record)


def _is_domain(domain: str) -> bool:
    labels = domain.split(".")
    return (
        len(labels) >= 2
        and len(domain) <= 253
        and all(_LABEL.fullmatch(label) for label in labels)
    )


class _Evaluation:
    """
    One check_host() of RFC 7208 section 4 and everything it includes,
    sharing the lookup limits.
    """

    def __init__(
        self,
        dns: DNSSource,
        ip: ipaddress.IPv4Address | ipaddress.IPv6Address,
        sender: str,
        helo: str,
    ) -> None:
        self.dns = dns
        self.ip = ip
        self.sender = sender
        self.helo = helo
        self.lookups = 0
        self.voids = 0
        self.top_record: str | None = None
        self._validated: list[str] | None = None

    # DNS, counted

    def _count(self, term: str) -> None:
        self.lookups += 1
        if self.lookups > MAX_LOOKUPS:
            raise _perm(
                f"more than {MAX_LOOKUPS} terms that ask DNS (at {term}; "
                "RFC 7208 4.6.4)"
            )

    def _ask(self, what: str, name: str, answer: list[str]) -> list[str]:
        if not answer:
            self.voids += 1
            if self.voids > MAX_VOID_LOOKUPS:
                raise _perm(
                    f"more than {MAX_VOID_LOOKUPS} lookups found nothing (the last: "
                    f"{what} {name}; RFC 7208 4.6.4)"
                )
        return answer

    def _addresses(self, name: str) -> list[str]:
        try:
            return self.dns.addresses(name, self.ip.version)
        except DNSTemporaryError as e:
            raise _Abort("temperror", f"DNS failed: {e}") from e

    # check_host()

    def check_host(self, domain: str) -> tuple[str, str, str | None]:
        """
        RFC 7208 4: the result for C{domain}, why, and its record.
        """
        try:
            answers = self.dns.txt(domain)
        except DNSTemporaryError as e:
            raise _Abort("temperror", f"DNS failed for {domain}: {e}") from e
        records = [r for r in answers if re.match(r"(?i)v=spf1(?: |\Z)", r)]
        if not records:
            return "none", f"{domain} publishes no SPF record (no TXT v=spf1)", None
        if len(records) > 1:
            raise _perm(
                f"{domain} publishes {len(records)} SPF records; one is allowed"
            )
        record = records[0]
        if self.top_record is None:
            self.top_record = record
        terms = self._parse(domain, record)
        has_all = any(kind == "all" for _, _, kind, _, _, _ in terms[0])
        for text, qualifier, kind, spec, cidr4, cidr6 in terms[0]:
            if self._matches(domain, kind, spec, cidr4, cidr6, text):
                result = _QUALIFIERS[qualifier or "+"]
                return result, self._matched(result, text, domain), record
        redirect = terms[1]
        if redirect is not None and not has_all:
            self._count(f"redirect={redirect}")
            target = self._expand(redirect, domain)
            if not _is_domain(target):
                raise _perm(f"redirect={redirect} names no domain ({target!r})")
            result, reason, _ = self.check_host(target)
            if result == "none":
                raise _perm(f"redirect={target}: {reason}")
            return result, f"redirect={target}: {reason}", record
        return (
            "neutral",
            f"no term of {domain}'s record matched {self.ip}, and it has no "
            "all: the default is neutral",
            record,
        )

    def _matched(self, result: str, text: str, domain: str) -> str:
        if result == "pass":
            return f"{self.ip} is allowed by {text} in {domain}'s record"
        return f"{self.ip} matched {text} in {domain}'s record: {result}"

    # parsing (RFC 7208 4.6): every syntax error is a permerror, found
    # before any term is evaluated

    def _parse(self, domain: str, record: str) -> tuple[list[_Directive], str | None]:
        directives: list[_Directive] = []
        redirect: str | None = None
        explanation: str | None = None
        for term in record.split(" ")[1:]:
            if not term:
                continue
            modifier = _MODIFIER.fullmatch(term)
            if modifier and modifier.group(1).lower() not in _MECHANISMS:
                name, value = modifier.group(1).lower(), modifier.group(2)
                self._check_macros(value, term, domain)
                if name in ("redirect", "exp"):
                    if (redirect if name == "redirect" else explanation) is not None:
                        raise _perm(f"{domain}'s record has two {name}= modifiers")
                    self._check_domain_spec(value, term, domain)
                    if name == "redirect":
                        redirect = value
                    else:
                        explanation = value
                continue
            directives.append((term, *self._directive(term, domain)))
        return directives, redirect

    def _directive(
        self, term: str, domain: str
    ) -> tuple[str, str, str | None, int | None, int | None]:
        match = _DIRECTIVE.fullmatch(term)
        if match is None:
            raise _perm(f"{term!r} in {domain}'s record is not an SPF term")
        qualifier, kind, rest = match.group(1), match.group(2).lower(), match.group(3)
        if kind not in _MECHANISMS:
            raise _perm(f"unknown mechanism {kind!r} in {domain}'s record ({term!r})")
        spec: str | None = None
        cidr4: int | None = None
        cidr6: int | None = None
        if kind == "all":
            if rest:
                raise _perm(f"{term!r}: all takes no argument")
        elif kind in ("include", "exists"):
            if not rest.startswith(":") or len(rest) < 2:
                raise _perm(f"{term!r}: {kind} needs :domain")
            spec = rest[1:]
            self._check_domain_spec(spec, term, domain)
        elif kind in ("a", "mx", "ptr"):
            cidr = _CIDR.fullmatch(rest)
            assert cidr is not None  # the pattern matches any text
            head, four, six = cidr.groups()
            if kind == "ptr" and (four or six):
                raise _perm(f"{term!r}: ptr takes no prefix length")
            if head:
                if not head.startswith(":") or len(head) < 2:
                    raise _perm(f"{term!r} is not {kind}[:domain][/len][//len]")
                spec = head[1:]
                self._check_domain_spec(spec, term, domain)
            cidr4 = _length(four, 32, term)
            cidr6 = _length(six, 128, term)
        else:
            version = 4 if kind == "ip4" else 6
            if not rest.startswith(":"):
                raise _perm(f"{term!r}: {kind} needs an address")
            address, slash, length = rest[1:].partition("/")
            try:
                parsed = ipaddress.ip_address(address)
            except ValueError:
                parsed = None
            if parsed is None or parsed.version != version:
                raise _perm(
                    f"{term!r} in {domain}'s record is not an IPv{version} network"
                )
            prefix = _length(
                length if slash else None, 32 if version == 4 else 128, term
            )
            spec = f"{parsed}/{parsed.max_prefixlen if prefix is None else prefix}"
        return qualifier, kind, spec, cidr4, cidr6

    def _check_macros(self, text: str, term: str, domain: str) -> None:
        position = 0
        for match in _MACRO.finditer(text):
            literal = text[position : match.start()]
            if any(not 0x21 <= ord(c) <= 0x7E for c in literal):
                raise _perm(f"{term!r} in {domain}'s record has a bad character")
            if match.group(5) is not None and match.group(5) not in "%_-":
                raise _perm(f"{term!r} in {domain}'s record has a bad macro")
            if match.group(1) and match.group(1).lower() in "crt":
                raise _perm(f"{term!r}: %{{{match.group(1)}}} is only for exp=")
            position = match.end()
        if "%" in text[position:] or any(
            not 0x21 <= ord(c) <= 0x7E for c in text[position:]
        ):
            raise _perm(f"{term!r} in {domain}'s record has a bad macro")

    def _check_domain_spec(self, spec: str, term: str, domain: str) -> None:
        self._check_macros(spec, term, domain)
        if spec.endswith("}"):
            return
        last = spec.rstrip(".").rsplit(".", 1)
        if len(last) < 2 or not _TOPLABEL.fullmatch(last[1]):
            raise _perm(f"{term!r} in {domain}'s record does not end in a domain")

    # macros (RFC 7208 7)

    def _expand(self, spec: str, domain: str) -> str:
        def replace(match: re.Match[str]) -> str:
            if match.group(5) is not None:
                return {"%": "%", "_": " ", "-": "%20"}[match.group(5)]
            letter, digits, reverse, delimiters = match.group(1, 2, 3, 4)
            value = self._macro_value(letter.lower(), domain)
            parts = re.split("[" + re.escape(delimiters or ".") + "]", value)
            if reverse:
                parts.reverse()
            if digits:
                keep = int(digits)
                if keep == 0:
                    raise _perm(f"%{{{letter}0}} keeps no labels")
                parts = parts[-keep:]
            expanded = ".".join(parts)
            if letter.isupper():
                expanded = urllib.parse.quote(expanded, safe="")
            return expanded

        expanded = _MACRO.sub(replace, spec).rstrip(".")
        while len(expanded) > 253 and "." in expanded:
            expanded = expanded.split(".", 1)[1]
        return expanded.lower()

    def _macro_value(self, letter: str, domain: str) -> str:
        local, _, sender_domain = self.sender.rpartition("@")
        if letter == "s":
            return self.sender
        if letter == "l":
            return local
        if letter == "o":
            return sender_domain
        if letter == "d":
            return domain
        if letter == "i":
            if self.ip.version == 4:
                return str(self.ip)
            return ".".join(self.ip.exploded.replace(":", ""))
        if letter == "v":
            return "in-addr" if self.ip.version == 4 else "ip6"
        if letter == "h":
            return self.helo or "unknown"
        names = self._validated_names()  # p, which RFC 7208 says not to use
        for name in names:
            if name == domain:
                return name
        for name in names:
            if name.endswith("." + domain):
                return name
        return names[0] if names else "unknown"

    def _validated_names(self) -> list[str]:
        """
        RFC 7208 5.5: the names of the client's PTR records (10 at most)
        whose addresses include it; DNS failures make a name not count.
        """
        if self._validated is None:
            try:
                names = self.dns.ptr(self.ip.reverse_pointer)[:MAX_MX]
            except DNSTemporaryError:
                names = []
            validated = []
            for name in names:
                try:
                    found = self.dns.addresses(name, self.ip.version)
                except DNSTemporaryError:
                    continue
                if self._within(found, None):
                    validated.append(name.rstrip(".").lower())
            self._validated = validated
        return self._validated

    # mechanisms (RFC 7208 5)

    def _matches(
        self,
        domain: str,
        kind: str,
        spec: str | None,
        cidr4: int | None,
        cidr6: int | None,
        text: str,
    ) -> bool:
        if kind == "all":
            return True
        if kind in ("ip4", "ip6"):
            assert spec is not None
            network = ipaddress.ip_network(spec, strict=False)
            return self.ip.version == network.version and self.ip in network
        self._count(text)
        target = self._expand(spec, domain) if spec is not None else domain
        if kind == "ptr":
            return any(
                name == target or name.endswith("." + target)
                for name in self._validated_names()
            )
        if kind == "include" and not _is_domain(target):
            raise _perm(f"{text} names no domain ({target!r})")
        length = cidr4 if self.ip.version == 4 else cidr6
        if kind == "a":
            found = self._ask(
                "A" if self.ip.version == 4 else "AAAA",
                target,
                self._addresses(target),
            )
            return self._within(found, length)
        if kind == "mx":
            try:
                hosts = self.dns.mx(target)
            except DNSTemporaryError as e:
                raise _Abort("temperror", f"DNS failed: {e}") from e
            self._ask("MX", target, hosts)
            if len(hosts) > MAX_MX:
                raise _perm(f"{text}: {target} has more than {MAX_MX} MX hosts")
            return any(self._within(self._addresses(h), length) for h in hosts)
        if kind == "exists":
            try:
                found = self.dns.addresses(target, 4)
            except DNSTemporaryError as e:
                raise _Abort("temperror", f"DNS failed: {e}") from e
            return bool(self._ask("A", target, found))
        # include
        result, reason, _ = self.check_host(target)
        if result == "pass":
            return True
        if result == "none":
            raise _perm(f"{text}: {reason}")
        return False

    def _within(self, addresses: list[str], length: int | None) -> bool:
        prefix = self.ip.max_prefixlen if length is None else length
        for address in addresses:
            try:
                network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
            except ValueError:
                continue
            if network.version == self.ip.version and self.ip in network:
                return True
        return False


def _length(digits: str | None, most: int, term: str) -> int | None:
    if digits is None:
        return None
    if (
        not digits.isdigit()
        or (len(digits) > 1 and digits.startswith("0"))
        or int(digits) > most
    ):
        raise _perm(f"{term!r}: prefix length {digits} is not 0..{most}")
    return int(digits)
