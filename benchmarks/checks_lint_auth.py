"""
The message checks (twisted_netlab.mail.lab.checks, docs/checks.rst) on a
100 KB HTML newsletter, DKIM-signed, as the lab stores it (its Received:
line first), in this process:

- first call in a fresh process: a new Python runs the check once, its
  imports included (the email package's, and for auth dkimpy's, which
  imports dnspython's resolver);
- cold: the first run on each of several newsletters not seen before, in a
  process that has run the check already (what each new message costs: no
  per-message cache is involved);
- repeated: the same newsletter again.

Peers measured in the same run: for the lint, the stdlib's email parser
reading the same bytes (policy.default, every part's content decoded); for
auth, dkimpy's own C{dkim.verify} of the same signature.  The goal: under
200 ms cold for each check (issue 21).

A check is one line of L{CHECKS}: its name and a callable of the raw bytes.
"""

from __future__ import annotations

import base64
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate
from functools import cache
from pathlib import Path
from typing import Any

from benchmarks.core import Context, Section, Table, Target, fmt, fmt_ratio

NAME = "checks_lint_auth"
CASES = ["checks_lint_auth"]

SIZE = 100_000
COLD, QUICK_COLD = 20, 3
REPEATED, QUICK_REPEATED = 50, 5
GOAL_MS = 200.0

LAB_RECEIVED = (
    b"Received: from mta.example.org ([192.0.2.10])\r\n"
    b"\tby lab.example.test (netlab mail lab) with ESMTPS\r\n"
    b"\tfor <bob@example.test>; Mon, 01 Jan 2024 10:00:01 -0000\r\n"
)


@cache
def _key() -> tuple[bytes, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, base64.b64encode(public).decode("ascii")


def records_text() -> str:
    return (
        f'news._domainkey.example.org TXT "v=DKIM1; k=rsa; p={_key()[1]}"\n'
        'example.org TXT "v=spf1 ip4:192.0.2.0/24 include:_spf.esp.example -all"\n'
        '_spf.esp.example TXT "v=spf1 ip4:198.51.100.0/24 ~all"\n'
        '_dmarc.example.org TXT "v=DMARC1; p=reject; rua=mailto:d@example.org"\n'
    )


def newsletter(issue: int, size: int = SIZE) -> bytes:
    """
    An HTML newsletter of about C{size} bytes of HTML (table layout, inline
    CSS, images, links) with its text alternative, one-click unsubscribe,
    DKIM-signed by example.org, with the lab's Received: line first.
    """
    import dkim  # type: ignore[import-untyped]

    articles: list[str] = []
    text: list[str] = []
    n = 0
    while sum(len(a) for a in articles) < size:
        n += 1
        articles.append(
            f'<tr><td style="padding:16px;font-family:Arial,sans-serif;'
            f'font-size:15px;line-height:1.5;color:#333333;">'
            f'<img src="https://cdn.example.org/{issue}/img{n}.jpg" width="560" '
            f'alt="Article {n}" style="display:block;border:0;max-width:100%;">'
            f'<h2 style="margin:12px 0;color:#0b4f8a;">Article {n} of issue {issue}'
            f"</h2><p>Caf\u00e9 au lait, cr\u00e8me br\u00fbl\u00e9e and {n * 7} "
            f"other things happened this week: "
            + "lorem ipsum dolor sit amet, "
            * 12
            + f'<a href="https://example.org/{issue}/article/{n}?utm_source=news" '
            f'style="color:#0b4f8a;">Read more</a></p></td></tr>\n'
        )
        text.append(f"Article {n}: https://example.org/{issue}/article/{n}\n")
    html = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"><style>'
        "@media (max-width:600px){.wrap{width:100%!important}}</style></head>"
        '<body style="margin:0;background:#f4f4f4;"><table class="wrap" '
        'width="600" align="center" cellpadding="0" cellspacing="0" '
        'style="background:#ffffff;">\n' + "".join(articles) + "</table>"
        '<p style="font-size:11px;"><a href="https://example.org/u/1">'
        "Unsubscribe</a></p></body></html>\n"
    )
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "Example News <news@example.org>"
    message["To"] = "bob@example.test"
    message["Subject"] = f"The Example weekly, issue {issue}"
    message["Date"] = formatdate(1_700_000_000 + issue * 604_800)
    message["Message-ID"] = f"<issue-{issue}@example.org>"
    message["List-Id"] = "Example News <news.example.org>"
    message["List-Unsubscribe"] = "<https://example.org/u/1>, <mailto:u@example.org>"
    message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    message.set_content("".join(text))
    message.add_alternative(html, subtype="html")
    raw = message.as_bytes()
    signature = dkim.sign(
        raw,
        b"news",
        b"example.org",
        _key()[0],
        include_headers=[
            b"from",
            b"to",
            b"subject",
            b"date",
            b"message-id",
            b"list-unsubscribe",
            b"list-unsubscribe-post",
        ],
    )
    return LAB_RECEIVED + signature + raw


def _arrival() -> Any:
    from twisted_netlab.mail.lab.checks.context import Arrival

    return Arrival(
        mail_from="bounces@example.org",
        rcpt_to=("bob@example.test",),
        client_ip="192.0.2.10",
        helo="mta.example.org",
    )


def _lint(raw: bytes) -> Any:
    from twisted_netlab.mail.lab.checks.lint import lint

    return lint(raw, _arrival())


def _auth(raw: bytes) -> Any:
    from twisted_netlab.mail.lab.checks.auth import authenticate
    from twisted_netlab.mail.lab.checks.records import RecordsSource, parse_records

    return authenticate(raw, _arrival(), RecordsSource(parse_records(records_text())))


def _parse(raw: bytes) -> Any:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    return [part.get_content() for part in message.walk() if not part.is_multipart()]


def _dkim_verify(raw: bytes) -> Any:
    import dkim

    public = _key()[1]

    def txt(name: bytes, timeout: float = 5) -> bytes:
        return f"v=DKIM1; k=rsa; p={public}".encode()

    if not dkim.verify(raw, dnsfunc=txt):
        raise RuntimeError("dkim.verify refused the newsletter's signature")
    return True


#: The checks measured: name -> a callable of the stored bytes (one line each).
CHECKS: dict[str, Callable[[bytes], Any]] = {
    "lint": _lint,
    "auth": _auth,
}

#: The peer each check is compared with, measured the same way.
PEERS: dict[str, tuple[str, Callable[[bytes], Any]]] = {
    "lint": ("stdlib email parse", _parse),
    "auth": ("dkim.verify", _dkim_verify),
}

#: What a fresh process runs: the check once on the file, imports included
#: (the checks import their modules, and dkimpy, when first called).
_FRESH = """\
import sys, time, json
from benchmarks.checks_lint_auth import CHECKS
raw = open(sys.argv[2], "rb").read()
start = time.perf_counter()
CHECKS[sys.argv[1]](raw)
print(json.dumps({"first_ms": (time.perf_counter() - start) * 1000}))
"""


def _time(function: Callable[[bytes], Any], raw: bytes) -> float:
    start = time.perf_counter()
    function(raw)
    return (time.perf_counter() - start) * 1000


def _fresh(name: str, path: Path) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, "-c", _FRESH, name, str(path)],
        cwd=Path(__file__).resolve().parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"{name} in a fresh process: {done.stderr.strip()[-300:]}")
    figures: dict[str, float] = json.loads(done.stdout)
    return figures


def _checked(name: str, answer: Any) -> None:
    """
    The newsletter is clean and authentic: a check that answers otherwise
    is not measuring what it should.
    """
    if name == "lint" and answer["Findings"]:
        raise RuntimeError(f"the newsletter has lint findings: {answer['Findings']}")
    if name == "auth":
        results = (
            answer["DKIM"][0]["Result"],
            answer["SPF"]["Result"],
            answer["DMARC"]["Result"],
        )
        if results != ("pass", "pass", "pass"):
            raise RuntimeError(f"the newsletter does not authenticate: {answer}")


def run(context: Context) -> Section:
    if not context.wants("checks_lint_auth"):
        return Section(NAME, [], [], [], {"not_run": "the checks case was not asked"})
    cold_count = QUICK_COLD if context.quick else COLD
    repeated_count = QUICK_REPEATED if context.quick else REPEATED
    context.progress(f"checks: making {cold_count + 1} newsletters")
    letters = [newsletter(i) for i in range(cold_count + 1)]
    raw: dict[str, Any] = {"bytes": len(letters[0]), "checks": {}}
    failures: list[str] = []
    with tempfile.TemporaryDirectory(prefix="netlab-bench-checks-") as scratch:
        path = Path(scratch) / "newsletter.eml"
        path.write_bytes(letters[0])
        for name, function in CHECKS.items():
            try:
                fresh = _fresh(name, path)
                _checked(name, function(letters[0]))  # warm, and right
                cold = [_time(function, letter) for letter in letters[1:]]
                again = [_time(function, letters[0]) for _ in range(repeated_count)]
                figures: dict[str, Any] = {
                    **fresh,
                    "cold_ms": statistics.median(cold),
                    "cold_max_ms": max(cold),
                    "repeated_ms": statistics.median(again),
                }
                if name in PEERS:
                    peer_name, peer = PEERS[name]
                    peer(letters[0])
                    peer_ms = statistics.median(
                        _time(peer, letter) for letter in letters[1:]
                    )
                    figures.update(
                        peer=peer_name,
                        peer_ms=peer_ms,
                        ratio=figures["cold_ms"] / peer_ms if peer_ms else None,
                    )
                raw["checks"][name] = figures
                context.progress(
                    f"checks: {name} cold {figures['cold_ms']:.1f} ms, repeated "
                    f"{figures['repeated_ms']:.1f} ms, first in a fresh process "
                    f"{fresh['first_ms']:.0f} ms (imports included)"
                )
            except (RuntimeError, OSError, subprocess.SubprocessError, ValueError) as e:
                failures.append(f"checks: {name}: {e}")
    return _section(raw, failures)


def _section(raw: dict[str, Any], failures: list[str]) -> Section:
    rows = []
    targets = []
    for name, f in raw["checks"].items():
        rows.append(
            [
                name,
                fmt(f["cold_ms"], 1),
                fmt(f["cold_max_ms"], 1),
                fmt(f["repeated_ms"], 1),
                fmt(f["first_ms"], 0),
                f.get("peer", "-"),
                fmt(f.get("peer_ms"), 1),
                fmt_ratio(f.get("ratio")),
            ]
        )
        targets.append(
            Target(
                f"{name} check, cold, {raw['bytes'] // 1000} KB newsletter",
                f"< {GOAL_MS:.0f} ms",
                f["cold_ms"],
                f["cold_ms"] < GOAL_MS,
            )
        )
    table = Table(
        f"Message checks on a {raw['bytes'] // 1000} KB HTML newsletter (medians, ms)",
        [
            "check",
            "cold",
            "cold max",
            "repeated",
            "fresh process",
            "peer",
            "peer",
            "check / peer",
        ],
        rows,
    )
    return Section(NAME, [table], targets, [], raw, failures)


__all__ = ["CASES", "CHECKS", "NAME", "run"]
