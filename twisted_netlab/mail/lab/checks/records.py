"""
Where the authentication check's DNS answers come from: a records file
(C{--dns-records FILE}, for a lab with no DNS, as in tests) or the system's
resolver through dnspython.

The records file has one record a line, in the shape of a zone file's::

    # comments and blank lines are ignored
    sel1._domainkey.example.org  TXT  "v=DKIM1; k=rsa; p=MIIBIjAN..."
    example.org                  TXT  "v=spf1 ip4:192.0.2.0/24 mx -all"
    _dmarc.example.org           TXT  "v=DMARC1; p=reject"
    example.org                  MX   10 mail.example.org
    mail.example.org             A    192.0.2.25
    mail.example.org             AAAA 2001:db8::25
    192.0.2.25                   PTR  mail.example.org

C{NAME [IN] TYPE DATA}: names are matched without case and without a
trailing dot; a TXT value is one or more quoted strings (joined, as DNS
joins a record's strings; C{\\"} and C{\\\\} escape), so long keys can be
split; a PTR line may name the address itself instead of its
C{in-addr.arpa} or C{ip6.arpa} name; a name may have several records of
a type.  A name the file does
not have does not exist: nothing falls through to the network.

Both sources answer synchronously: the check calls them in a thread of
the reactor's pool, never in the reactor's thread.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from twisted_netlab.errors import EXIT_USAGE
from twisted_netlab.mail.lab.checks.context import CheckError, CheckSettings

#: Seconds the system resolver may take for one question.
RESOLVER_LIFETIME = 5.0

_TYPES = ("TXT", "A", "AAAA", "MX", "PTR")
_NAME = re.compile(r"^(?:[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_-]+$")
_QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')


class RecordsError(CheckError):
    """
    The records file cannot be read, or a line of it is not a record:
    C{str()} names the file and the line.
    """

    exit_code = EXIT_USAGE


class DNSTemporaryError(Exception):
    """
    The resolver could not answer now (a timeout, SERVFAIL): the checks
    answer C{temperror}.
    """


class DNSSource(Protocol):
    """
    What the authentication check asks DNS.  Each method answers with the
    records found, C{[]} when the name or the type has none, and raises
    L{DNSTemporaryError} when no answer could be had.
    """

    def txt(self, name: str) -> list[str]:
        """Every TXT record of C{name}, each record's strings joined."""

    def addresses(self, name: str, version: int) -> list[str]:
        """The A (C{version} 4) or AAAA (6) records of C{name}."""

    def mx(self, name: str) -> list[str]:
        """The MX hosts of C{name}, the most preferred first."""

    def ptr(self, name: str) -> list[str]:
        """The PTR names of C{name} (a reverse name, C{...in-addr.arpa})."""


class RecordsFile(Mapping[str, tuple[str, ...]]):
    """
    The records of a records file.  As a mapping it is the TXT records by
    lowercased name (what L{CheckSettings.dns_records} holds); it keeps the
    A, AAAA, MX and PTR records too, so SPF's C{a}, C{mx} and C{ptr} work.
    """

    def __init__(
        self,
        txt: Mapping[str, Sequence[str]] | None = None,
        a: Mapping[str, Sequence[str]] | None = None,
        aaaa: Mapping[str, Sequence[str]] | None = None,
        mx: Mapping[str, Sequence[tuple[int, str]]] | None = None,
        ptr: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        self._txt = {_key(k): tuple(v) for k, v in (txt or {}).items()}
        self.a = {_key(k): tuple(v) for k, v in (a or {}).items()}
        self.aaaa = {_key(k): tuple(v) for k, v in (aaaa or {}).items()}
        self.mx = {_key(k): tuple(sorted(v)) for k, v in (mx or {}).items()}
        self.ptr = {_key(k): tuple(v) for k, v in (ptr or {}).items()}

    def __getitem__(self, name: str) -> tuple[str, ...]:
        return self._txt[_key(name)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._txt)

    def __len__(self) -> int:
        return len(self._txt)

    def __repr__(self) -> str:
        return (
            f"<RecordsFile: {len(self._txt)} TXT, {len(self.a)} A, "
            f"{len(self.aaaa)} AAAA, {len(self.mx)} MX, {len(self.ptr)} PTR names>"
        )


def _key(name: str) -> str:
    return name.strip().rstrip(".").lower()


def load_records(path: str | Path) -> RecordsFile:
    """
    Read a records file (see the module's docstring).

    @raise RecordsError: the file cannot be read, or a line is not a record
        (the message names the file, the line and what is wrong with it).
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise RecordsError(f"cannot read the DNS records file {path}: {reason}") from e
    return parse_records(text, str(path))


def parse_records(text: str, where: str = "records") -> RecordsFile:
    """
    The records of a records file's text; C{where} names it in errors.

    @raise RecordsError: a line is not a record.
    """
    txt: dict[str, list[str]] = {}
    a: dict[str, list[str]] = {}
    aaaa: dict[str, list[str]] = {}
    mx: dict[str, list[tuple[int, str]]] = {}
    ptr: dict[str, list[str]] = {}
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue

        def bad(reason: str, number: int = number) -> RecordsError:
            return RecordsError(f"{where}:{number}: {reason}")

        parts = stripped.split(None, 2)
        if len(parts) >= 2 and parts[1].upper() == "IN":
            rest = parts[2].split(None, 1) if len(parts) == 3 else []
            parts = [parts[0], *rest]
        if len(parts) < 3:
            raise bad(
                "a record is NAME TYPE DATA, as in: "
                'example.org TXT "v=spf1 -all" (got ' + repr(stripped) + ")"
            )
        name, kind, data = _key(parts[0]), parts[1].upper(), parts[2].strip()
        if kind == "PTR" and _is_address(name):
            name = ipaddress.ip_address(name).reverse_pointer
        if not _NAME.match(name):
            raise bad(f"{parts[0]!r} is not a DNS name")
        if kind not in _TYPES:
            raise bad(
                f"unknown record type {parts[1]!r} (the file knows "
                + ", ".join(_TYPES)
                + ")"
            )
        if kind == "TXT":
            txt.setdefault(name, []).append(_txt_value(data, bad))
        elif kind in ("A", "AAAA"):
            version = 4 if kind == "A" else 6
            try:
                address = ipaddress.ip_address(data)
            except ValueError:
                address = None
            if address is None or address.version != version:
                raise bad(f"{data!r} is not an IPv{version} address for {kind}")
            (a if version == 4 else aaaa).setdefault(name, []).append(str(address))
        elif kind == "PTR":
            host = _key(data)
            if not _NAME.match(host):
                raise bad(f"{data!r} is not a host name for PTR")
            ptr.setdefault(name, []).append(host)
        else:
            fields = data.split()
            if len(fields) != 2 or not fields[0].isdigit():
                raise bad(
                    "MX wants a preference and a host, as in: "
                    f"example.org MX 10 mail.example.org (got {data!r})"
                )
            host = _key(fields[1])
            if not _NAME.match(host) or int(fields[0]) > 65535:
                raise bad(f"{data!r} is not a preference and a host name for MX")
            mx.setdefault(name, []).append((int(fields[0]), host))
    return RecordsFile(txt, a, aaaa, mx, ptr)


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _txt_value(data: str, bad: Any) -> str:
    strings: list[str] = []
    position = 0
    while position < len(data):
        if data[position].isspace():
            position += 1
            continue
        quoted = _QUOTED.match(data, position)
        if quoted is None:
            raise bad(
                "a TXT value is one or more quoted strings, as in: "
                f'example.org TXT "v=spf1 -all" (got {data!r})'
            )
        strings.append(re.sub(r"\\(.)", r"\1", quoted.group(1)))
        position = quoted.end()
    return "".join(strings)


class RecordsSource:
    """
    DNS answered from a records file (or a plain mapping of TXT records
    by name): a name it does not have does not exist.
    """

    def __init__(self, records: Mapping[str, Sequence[str]]) -> None:
        self.records = records

    def txt(self, name: str) -> list[str]:
        if isinstance(self.records, RecordsFile):
            return list(self.records.get(name, ()))
        wanted = _key(name)
        for key, values in self.records.items():
            if _key(key) == wanted:
                return list(values)
        return []

    def addresses(self, name: str, version: int) -> list[str]:
        if not isinstance(self.records, RecordsFile):
            return []
        table = self.records.a if version == 4 else self.records.aaaa
        return list(table.get(_key(name), ()))

    def mx(self, name: str) -> list[str]:
        if not isinstance(self.records, RecordsFile):
            return []
        return [host for _, host in self.records.mx.get(_key(name), ())]

    def ptr(self, name: str) -> list[str]:
        if not isinstance(self.records, RecordsFile):
            return []
        return list(self.records.ptr.get(_key(name), ()))


class ResolverSource:
    """
    DNS answered by the system's resolver (C{/etc/resolv.conf}) through
    dnspython, each question within L{RESOLVER_LIFETIME} seconds.  Blocking:
    call it from a thread.
    """

    def __init__(
        self, lifetime: float = RESOLVER_LIFETIME, resolver: Any = None
    ) -> None:
        """
        @param resolver: a C{dns.resolver.Resolver} to ask (default: one
            configured from the system's files, made at the first question).
        """
        self.lifetime = lifetime
        self._resolver = resolver

    def _resolve(self, name: str, kind: str) -> list[Any]:
        import dns.exception
        import dns.name
        import dns.resolver

        if self._resolver is None:
            try:
                self._resolver = dns.resolver.Resolver()
            except dns.resolver.NoResolverConfiguration as e:
                raise CheckError(
                    "no DNS resolver is configured (/etc/resolv.conf); give the "
                    "lab a records file (--dns-records FILE) instead"
                ) from e
        try:
            answer = self._resolver.resolve(
                name, kind, lifetime=self.lifetime, search=False
            )
        except (
            dns.resolver.NXDOMAIN,
            dns.resolver.NoAnswer,
            dns.name.EmptyLabel,
            dns.name.LabelTooLong,
            dns.name.NameTooLong,
        ):
            return []
        except dns.exception.Timeout as e:
            raise DNSTemporaryError(f"{kind} {name}: timed out") from e
        except dns.exception.DNSException as e:
            raise DNSTemporaryError(f"{kind} {name}: {e}") from e
        return list(answer)

    def txt(self, name: str) -> list[str]:
        return [
            b"".join(r.strings).decode("utf-8", "replace")
            for r in self._resolve(name, "TXT")
        ]

    def addresses(self, name: str, version: int) -> list[str]:
        return [r.address for r in self._resolve(name, "A" if version == 4 else "AAAA")]

    def mx(self, name: str) -> list[str]:
        records = sorted(self._resolve(name, "MX"), key=lambda r: r.preference)
        return [_key(r.exchange.to_text()) for r in records]

    def ptr(self, name: str) -> list[str]:
        return [_key(r.target.to_text()) for r in self._resolve(name, "PTR")]


def dns_source(settings: CheckSettings) -> DNSSource:
    """
    The lab's DNS for the checks: its records file when it has one, else
    the system's resolver.
    """
    if settings.dns_records is not None:
        return RecordsSource(settings.dns_records)
    return ResolverSource()
