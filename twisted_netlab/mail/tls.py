"""
Client TLS settings for the mail clients: verify by default.

twisted.mail happily runs without TLS support (C{sendmail} skips TLS when
pyOpenSSL is missing) and C{IMAP4Client.startTLS()} verifies nothing by
default; the clients here get their TLS settings from L{client_tls_options},
which refuses instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from twisted_netlab.errors import TLSFailed, UsageProblem

_PEM_CERTIFICATE = re.compile(
    rb"-----BEGIN CERTIFICATE-----\r?\n.+?\r?\n-----END CERTIFICATE-----", re.DOTALL
)


def require_tls_support() -> None:
    """
    Raise L{TLSFailed} unless pyOpenSSL and service_identity are importable:
    without the first there is no TLS at all, without the second Twisted
    does not check host names.
    """
    try:
        import OpenSSL  # noqa: F401
        import service_identity  # noqa: F401
    except ImportError as e:
        raise TLSFailed(
            f"TLS support is missing ({e.name} is not installed); "
            "install Twisted with its tls extra: pip install 'Twisted[tls]'"
        ) from None


def load_ca_certificates(cafile: str) -> list[Any]:
    """
    Read every PEM certificate in C{cafile}.

    @raise UsageProblem: the file cannot be read or holds no certificate.
    """
    from twisted.internet.ssl import Certificate

    try:
        data = Path(cafile).read_bytes()
    except OSError as e:
        raise UsageProblem(f"cannot read CA file {cafile}: {e.strerror}") from None
    blocks = _PEM_CERTIFICATE.findall(data)
    if not blocks:
        raise UsageProblem(f"CA file {cafile} holds no PEM certificate")
    try:
        return [Certificate.loadPEM(block) for block in blocks]
    except Exception as e:
        raise UsageProblem(f"CA file {cafile} has a bad certificate: {e}") from None


def client_tls_options(
    hostname: str, *, cafile: str | None = None, verify: bool = True
) -> Any:
    """
    TLS client settings for connecting to C{hostname}.

    The server's certificate must chain to C{cafile}'s certificates when
    given, to the system's trust store otherwise, and must name C{hostname}.
    With C{verify=False} (C{--insecure-skip-verify}) nothing is checked.

    @return: an C{IOpenSSLClientConnectionCreator} (or, unverified, a
        context factory), for C{startTLS} or a TLS client endpoint.
    """
    require_tls_support()
    from twisted.internet import ssl

    if not verify:
        return ssl.CertificateOptions(verify=False)
    if cafile is not None:
        trust = ssl.trustRootFromCertificates(load_ca_certificates(cafile))
    else:
        trust = ssl.platformTrust()
    return ssl.optionsForClientTLS(hostname, trustRoot=trust)
