"""
The authentication check: DKIM, ARC, SPF and DMARC, as a receiving
provider would judge the message.

  - DKIM and ARC are verified by dkimpy (PyPI C{dkimpy}, module C{dkim}),
    signature by signature: this module asks DNS for each key itself, so
    that the answer says exactly why a signature fails (no key, key
    revoked, body hash mismatch, a signed header changed, DNS failed).
  - SPF is L{spf}'s evaluator of RFC 7208, for the envelope's client IP and
    C{MAIL FROM} domain (the HELO name for C{<>}).
  - DMARC is L{dmarc}'s evaluator of RFC 7489, over the DKIM and SPF
    results, aligned with the C{From:} domain.

DNS answers come from the lab's records file when it has one, else from
the system's resolver (L{records.dns_source}).  All of it runs in a thread
of the reactor's pool.  The lab's own prepended C{Received:} line is left
in: signers do not sign it, and it does not break a signature.
"""

from __future__ import annotations

import email.parser
import email.policy
import re
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.threads import deferToThreadPool

from twisted_netlab.mail.lab.checks.context import Arrival, CheckContext, CheckError
from twisted_netlab.mail.lab.checks.dmarc import evaluate_dmarc
from twisted_netlab.mail.lab.checks.records import (
    DNSSource,
    DNSTemporaryError,
    dns_source,
)
from twisted_netlab.mail.lab.checks.spf import evaluate_spf

_SIGNATURE = re.compile(rb"(?im)^dkim-signature[ \t]*:")

#: The smallest RSA key a signature may use (RFC 8301 3.2).
MIN_KEY_BITS = 1024


def check(raw: bytes, context: CheckContext) -> Deferred[dict[str, Any]]:
    """
    The check's entry point (see L{twisted_netlab.mail.lab.checks}): the
    C{auth-check} answer, computed in a thread of the reactor's pool.
    """
    reactor = context.reactor
    source = dns_source(context.settings)
    return deferToThreadPool(
        reactor, reactor.getThreadPool(), _guarded, raw, context.arrival, source
    )


def _guarded(raw: bytes, arrival: Arrival, dns: DNSSource) -> dict[str, Any]:
    try:
        return authenticate(raw, arrival, dns)
    except CheckError:
        raise
    except Exception as e:  # a bug: say so in one line, keep the traceback
        raise CheckError(
            f"the auth check failed on this message: {type(e).__name__}: {e}"
        ) from e


def authenticate(raw: bytes, arrival: Arrival, dns: DNSSource) -> dict[str, Any]:
    """
    The C{auth-check} answer for C{raw}, which arrived as C{arrival},
    asking C{dns}; blocking (the resolver may be slow): call it from a
    thread.
    """
    signatures = verify_dkim(raw, dns)
    spf = evaluate_spf(dns, arrival.client_ip, arrival.mail_from, arrival.helo)
    passed = [s["Domain"] for s in signatures if s["Result"] == "pass"]
    dmarc = evaluate_dmarc(dns, from_domains(raw), passed, spf.result, spf.domain)
    return {
        "DKIM": signatures,
        "SPF": spf.to_json(),
        "DMARC": dmarc,
        "ARC": verify_arc(raw, dns),
    }


def _dkim() -> Any:
    """
    dkimpy, imported on first use: it imports dnspython's resolver, which
    costs a few hundred milliseconds that a lab that never checks should
    not pay at start.
    """
    import dkim  # type: ignore[import-untyped]

    return dkim


def from_domains(raw: bytes) -> list[str]:
    """
    The domain of every address in the message's C{From:} fields (an
    address without one counts as C{""}).
    """
    parser = email.parser.BytesParser(policy=email.policy.default)
    try:
        headers = parser.parsebytes(raw, headersonly=True)
        fields = headers.get_all("From") or []
        return [a.domain.lower() for field in fields for a in field.addresses]
    except Exception:  # the stdlib's parser has its crashes on bad input
        return [""]


class _Notes:
    """
    A logger for dkimpy that keeps its errors: they are the reasons.
    """

    def __init__(self) -> None:
        self.errors: list[str] = []

    def isEnabledFor(self, level: int) -> bool:
        return False

    def debug(self, message: str, *args: object) -> None:
        pass

    info = warning = debug

    def error(self, message: str, *args: object) -> None:
        self.errors.append(message % args if args else message)


def _said(error: Exception) -> str:
    """
    dkimpy's message, without the bytes reprs it puts in (C{b'b'}).
    """
    return re.sub(r"""b(['"])(.*?)\1""", r"\2", str(error))


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("ascii", "replace")


def _dkim_key(dns: DNSSource, name: str) -> tuple[str | None, str, str]:
    """
    The key record at C{name}, or why there is none: (record, result,
    reason) where result is C{""} when a record was found.
    """
    try:
        found = dns.txt(name)
    except DNSTemporaryError as e:
        return None, "temperror", f"DNS failed for the key at {name}: {e}"
    if not found:
        return None, "permerror", f"no key: {name} has no TXT record"
    return found[0], "", ""


def verify_dkim(raw: bytes, dns: DNSSource) -> list[dict[str, Any]]:
    """
    Every C{DKIM-Signature} of C{raw}, topmost first: its C{Domain},
    C{Selector}, C{Result} (pass, fail, temperror or permerror) and
    C{Reason}.
    """
    dkim = _dkim()
    parse_tag_value = dkim.util.parse_tag_value
    InvalidTagValueList = dkim.util.InvalidTagValueList
    notes = _Notes()
    try:
        verifier = dkim.DKIM(raw, logger=notes, minkey=MIN_KEY_BITS)
    except dkim.DKIMException as e:
        header = re.split(rb"\r?\n\r?\n", raw, maxsplit=1)[0]
        return [
            {
                "Domain": None,
                "Selector": None,
                "Result": "permerror",
                "Reason": f"the header cannot be parsed for DKIM: {_said(e)}",
            }
            for _ in _SIGNATURE.finditer(header)
        ]
    headers = [v for k, v in verifier.headers if k.lower() == b"dkim-signature"]
    results: list[dict[str, Any]] = []
    for index, value in enumerate(headers):
        entry: dict[str, Any] = {
            "Domain": None,
            "Selector": None,
            "Result": "permerror",
            "Reason": "",
        }
        results.append(entry)
        try:
            tags = parse_tag_value(value)
            entry["Domain"] = _text(tags.get(b"d"))
            entry["Selector"] = _text(tags.get(b"s"))
        except InvalidTagValueList:
            pass
        try:
            prep = verifier.verify_headerprep(index)
        except dkim.DKIMException as e:
            entry["Reason"] = f"the signature is not valid: {_said(e)}"
            continue
        assert prep, "the signature was counted"
        sig, include_headers, signature_headers = prep
        domain, selector = _text(sig[b"d"]), _text(sig[b"s"])
        name = f"{selector}._domainkey.{domain}"
        record, result, reason = _dkim_key(dns, name)
        if record is None:
            entry.update(Result=result, Reason=reason)
            continue
        try:
            key_tags = parse_tag_value(record.encode("ascii", "replace"))
        except InvalidTagValueList as e:
            entry["Reason"] = f"the key at {name} is not a tag list: {_said(e)}"
            continue
        if key_tags.get(b"p", b"x").strip() == b"":
            entry["Reason"] = f"key revoked: {name} has an empty p= (RFC 6376 3.6.1)"
            continue
        try:
            verifier.pk, verifier.keysize, verifier.ktag, verifier.seqtlsrpt = (
                dkim.evaluate_pk(name.encode(), record.encode("ascii", "replace"))
            )
        except dkim.DKIMException as e:
            entry["Reason"] = f"the key at {name} is not usable: {_said(e)}"
            continue
        try:
            valid = verifier.verify_sig_process(
                sig, include_headers, signature_headers[index], None
            )
        except dkim.ValidationError as e:
            if "body hash mismatch" in str(e):
                got = re.search(r"got b'([^']*)'", str(e))
                entry.update(
                    Result="fail",
                    Reason="body hash mismatch: the body changed after it was "
                    f"signed (bh={_text(sig[b'bh'])}, the body now hashes to "
                    f"{got.group(1) if got else '?'})",
                )
            else:
                entry["Reason"] = _said(e)
            continue
        except dkim.DKIMException as e:
            entry["Reason"] = _said(e)
            continue
        signed = re.sub(r"\s+", "", _text(sig[b"h"]) or "")
        if valid:
            reason = (
                f"signature verified ({_text(sig[b'a'])}, {verifier.keysize}-bit "
                f"key at {name}; signed: {signed})"
            )
            if b"l" in sig:
                reason += (
                    f"; l= signs only the first {_text(sig[b'l'])} bytes of the "
                    "body: anything can be appended"
                )
            entry.update(Result="pass", Reason=reason)
        else:
            entry.update(
                Result="fail",
                Reason="the signature does not verify: a signed header field "
                f"(h={signed}) changed after signing, or the key at {name} is "
                "not the one it was signed with",
            )
    return results


def verify_arc(raw: bytes, dns: DNSSource) -> dict[str, Any] | None:
    """
    The message's ARC chain (RFC 8617) as dkimpy validates it, or L{None}
    when it has no C{ARC-Seal}.
    """
    lowered = raw.lower()
    if not (lowered.startswith(b"arc-seal:") or b"\narc-seal:" in lowered):
        return None
    dkim = _dkim()

    def txt(name: bytes, timeout: float = 5) -> bytes | None:
        try:
            found = dns.txt(name.decode("ascii", "replace").rstrip("."))
        except DNSTemporaryError as e:
            raise dkim.DnsTimeoutError(str(e)) from e
        return found[0].encode("ascii", "replace") if found else None

    notes = _Notes()
    try:
        verifier = dkim.ARC(raw, logger=notes, minkey=MIN_KEY_BITS)
        validation, sets, reason = verifier.verify(dnsfunc=txt)
    except dkim.DKIMException as e:
        validation, sets, reason = None, [], _said(e)
    if notes.errors and reason != "success":
        said = "; ".join(dict.fromkeys(_said(Exception(e)) for e in notes.errors))
        reason = f"{reason} ({said})"
    return {
        "Result": validation.decode() if validation else "fail",
        "Reason": reason,
        "Sets": [
            {
                "Instance": s["instance"],
                "Domain": _text(s.get("ams-domain")),
                "Selector": _text(s.get("ams-selector")),
                "MessageSignature": "pass" if s.get("ams-valid") else "fail",
                "Seal": "pass" if s.get("as-valid") else "fail",
                "ChainValidation": _text(s.get("cv")),
                "AuthenticationResults": _text(s.get("aar-value")),
            }
            for s in sets
        ],
    }
