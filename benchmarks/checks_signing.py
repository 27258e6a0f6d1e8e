"""
The DKIM key, DNS records, signature and envelope of the message checks'
benchmark (benchmarks/checks.py) for the lint and auth checks: the
newsletter is signed by example.org, whose SPF lets the ESP's address
send and whose DMARC policy is reject, so that the auth check measures a
message that authenticates; and their peers (the stdlib's email parser for
the lint, dkimpy's own C{dkim.verify} for auth).
"""

from __future__ import annotations

import base64
from email import policy
from email.parser import BytesParser
from functools import cache
from typing import Any

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


def sign(raw: bytes) -> bytes:
    """
    C{raw} (from example.org) DKIM-signed by example.org with the key of
    L{records_text}, with the lab's Received: line first: the message as
    the lab stores it after an ESP sent it.
    """
    import dkim  # type: ignore[import-untyped]

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


def arrival() -> Any:
    from twisted_netlab.mail.lab.checks.context import Arrival

    return Arrival(
        mail_from="bounces@example.org",
        rcpt_to=("bob@example.test",),
        client_ip="192.0.2.10",
        helo="mta.example.org",
    )


def lint(raw: bytes) -> Any:
    from twisted_netlab.mail.lab.checks.lint import lint as lint_check

    return lint_check(raw, arrival())


def auth(raw: bytes, records: str) -> Any:
    """
    The auth check of C{raw} with DNS from C{records} (L{records_text}: the
    key is made per process, so a child gets the parent's records).
    """
    from twisted_netlab.mail.lab.checks.auth import authenticate
    from twisted_netlab.mail.lab.checks.records import RecordsSource, parse_records

    return authenticate(raw, arrival(), RecordsSource(parse_records(records)))


def parse_peer(raw: bytes) -> Any:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    return [part.get_content() for part in message.walk() if not part.is_multipart()]


def dkim_peer(raw: bytes) -> Any:
    import dkim

    public = _key()[1]

    def txt(name: bytes, timeout: float = 5) -> bytes:
        return f"v=DKIM1; k=rsa; p={public}".encode()

    if not dkim.verify(raw, dnsfunc=txt):
        raise RuntimeError("dkim.verify refused the newsletter's signature")
    return True
