"""
The mail lab's TLS certificate.

On first start the lab makes a self-signed certificate and key in
C{STATE/tls} (C{cert.pem}, C{key.pem}) valid for C{localhost},
C{127.0.0.1}, C{::1} and the lab's host name; clients trust the lab by
trusting that certificate (C{--cafile STATE/tls/cert.pem}).  It is made
again when it is missing, unreadable, expiring, or does not name the host
name the lab now serves.  A certificate of one's own can be given instead
(C{--tls-cert}, C{--tls-key}); it is then used as it is.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from twisted.logger import Logger

from twisted_netlab.durable import replace_file
from twisted_netlab.errors import UsageProblem

#: The names every lab certificate is valid for.
DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
#: How long a made certificate is valid.
VALIDITY = datetime.timedelta(days=825)
#: A made certificate closer than this to its end is made again.
RENEW_BEFORE = datetime.timedelta(days=7)

log = Logger()


class CertificateError(UsageProblem):
    """
    The lab's certificate or key cannot be read, made or used.
    """


@dataclass(frozen=True)
class LabCertificate:
    """
    Where the lab's certificate is.

    @ivar cert_path: the certificate (PEM; a chain, leaf first, if given so).
    @ivar key_path: its private key (PEM).
    @ivar ca_path: the file clients trust the lab with (C{--cafile}): the
        self-signed certificate itself, or the given certificate file.
    """

    cert_path: Path
    key_path: Path
    ca_path: Path

    def server_options(self) -> Any:
        """
        Server TLS settings with this certificate, for STARTTLS and implicit
        TLS listeners (a L{twisted.internet.ssl.CertificateOptions}).

        @raise CertificateError: the files cannot be read, or the key does not
            belong to the certificate.
        """
        from OpenSSL import SSL
        from twisted.internet import ssl

        try:
            chain_pem = self.cert_path.read_bytes()
            key_pem = self.key_path.read_bytes()
        except OSError as e:
            raise CertificateError(f"cannot read {e.filename}: {e.strerror}") from None
        try:
            certificates = x509.load_pem_x509_certificates(chain_pem)
            key = serialization.load_pem_private_key(key_pem, password=None)
        except (ValueError, TypeError) as e:
            raise CertificateError(
                f"bad certificate {self.cert_path} or key {self.key_path}: {e}"
            ) from None
        # pyOpenSSL takes cryptography's objects (its own are deprecated).
        options = ssl.CertificateOptions(
            privateKey=key,  # type: ignore[arg-type]
            certificate=certificates[0],  # type: ignore[arg-type]
            extraCertChain=certificates[1:],  # type: ignore[arg-type]
        )
        try:
            options.getContext()
        except SSL.Error as e:
            raise CertificateError(
                f"key {self.key_path} does not fit certificate {self.cert_path}: {e}"
            ) from None
        return options


def load_certificate(
    cert_path: str | os.PathLike[str], key_path: str | os.PathLike[str]
) -> LabCertificate:
    """
    A certificate of one's own (C{--tls-cert}, C{--tls-key}), checked.

    @raise CertificateError: it cannot be read or used.
    """
    certificate = LabCertificate(Path(cert_path), Path(key_path), Path(cert_path))
    certificate.server_options()
    return certificate


def ensure_certificate(
    directory: str | os.PathLike[str], hostnames: Iterable[str] = ()
) -> LabCertificate:
    """
    The lab's self-signed certificate in C{directory}, made first if there
    is none usable for C{DEFAULT_NAMES} and C{hostnames}.

    @raise CertificateError: it cannot be made (an unwritable directory).
    """
    directory = Path(directory)
    hostnames = list(hostnames)
    names = list(dict.fromkeys([*DEFAULT_NAMES, *(h.lower() for h in hostnames)]))
    certificate = LabCertificate(
        directory / "cert.pem", directory / "key.pem", directory / "cert.pem"
    )
    expected_cn = _common_name(hostnames) if hostnames else None
    reason = _unusable(certificate, names, expected_cn)
    if reason is None:
        return certificate
    log.info(
        "Making the lab's TLS certificate for {names} in {directory} ({reason}); "
        "clients trust it with --cafile {path}",
        names=", ".join(names),
        directory=str(directory),
        reason=reason,
        path=str(certificate.ca_path),
    )
    _make(certificate, names, _common_name(hostnames))
    return certificate


def _common_name(hostnames: Iterable[str]) -> str:
    """
    The subject CN of a made certificate: the first host name that is not
    an IP address (what clients such as fetchmail show), else C{localhost}.
    """
    for name in hostnames:
        if name and not _is_ip(name):
            return name.lower()[:64]
    return DEFAULT_NAMES[0]


def _is_ip(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _unusable(
    certificate: LabCertificate, names: list[str], expected_cn: str | None
) -> str | None:
    """
    Why the certificate must be made (again), or L{None} if it is fine.
    """
    try:
        cert = x509.load_pem_x509_certificate(certificate.cert_path.read_bytes())
        key = serialization.load_pem_private_key(
            certificate.key_path.read_bytes(), password=None
        )
    except FileNotFoundError:
        return "none yet"
    except (OSError, ValueError, TypeError):
        return "the old one is unreadable"
    if cert.public_key() != key.public_key():
        return "the old key does not fit"
    if cert.not_valid_after_utc - RENEW_BEFORE < _now():
        return "the old one expires"
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return "the old one names no host"
    present = {n.lower() for n in san.value.get_values_for_type(x509.DNSName)}
    present |= {str(a) for a in san.value.get_values_for_type(x509.IPAddress)}
    if not all(_general_name_text(n) in present for n in names):
        return "the host names changed"
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    shown = str(common[0].value) if common else ""
    if _is_ip(shown) or (expected_cn is not None and shown != expected_cn):
        return "the subject does not name the host"
    return None


def _general_name_text(name: str) -> str:
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _make(certificate: LabCertificate, names: list[str], common_name: str) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    san: list[x509.GeneralName] = []
    for name in names:
        try:
            san.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            san.append(x509.DNSName(name))
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "netlab mail lab"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )
    now = _now()
    public = key.public_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(public)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + VALIDITY)
        .add_extension(x509.SubjectAlternativeName(san), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(public), False
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    try:
        certificate.cert_path.parent.mkdir(parents=True, exist_ok=True)
        replace_file(certificate.key_path, key_pem, mode=0o600)
        replace_file(
            certificate.cert_path,
            cert.public_bytes(serialization.Encoding.PEM),
            mode=0o644,
        )
    except OSError as e:
        raise CertificateError(
            f"cannot write the lab certificate in {certificate.cert_path.parent}: "
            f"{e.strerror}"
        ) from None
