"""
Tests for L{twisted_netlab.mail.lab.certificate}: the lab's self-signed
certificate.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import stat
from pathlib import Path

from cryptography import x509
from twisted.internet import ssl
from twisted.trial.unittest import SynchronousTestCase

from tests.certs import make_server_certificate
from tests.scratch import fresh_path
from twisted_netlab.mail.lab import certificate
from twisted_netlab.mail.lab.certificate import (
    CertificateError,
    ensure_certificate,
    load_certificate,
)


def _names(path: Path) -> set[str]:
    cert = x509.load_pem_x509_certificate(path.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return set(san.get_values_for_type(x509.DNSName)) | {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    }


class EnsureCertificateTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = fresh_path(self) / "tls"

    def test_made_on_first_start(self) -> None:
        """
        With no certificate yet, a self-signed one and its key are made,
        valid for localhost, 127.0.0.1, ::1 and the host name; the key is
        readable by its owner only; clients trust the certificate itself.
        """
        lab = ensure_certificate(self.directory, ["Mail.Example.TEST"])
        self.assertEqual(lab.cert_path, self.directory / "cert.pem")
        self.assertEqual(lab.ca_path, lab.cert_path)
        self.assertEqual(
            _names(lab.cert_path),
            {"localhost", "127.0.0.1", "::1", "mail.example.test"},
        )
        self.assertEqual(stat.S_IMODE(os.stat(lab.key_path).st_mode), 0o600)
        cert = x509.load_pem_x509_certificate(lab.cert_path.read_bytes())
        self.assertEqual(cert.issuer, cert.subject)

    def test_ip_host_name(self) -> None:
        """
        A host name that is an IP address goes in as an IP address entry.
        """
        lab = ensure_certificate(self.directory, ["192.0.2.7"])
        cert = x509.load_pem_x509_certificate(lab.cert_path.read_bytes())
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        self.assertIn(
            ipaddress.ip_address("192.0.2.7"),
            san.value.get_values_for_type(x509.IPAddress),
        )

    def test_kept_across_starts(self) -> None:
        """
        A usable certificate is kept, so clients keep trusting it.
        """
        first = ensure_certificate(self.directory, ["mail.example.test"])
        pem = first.cert_path.read_bytes()
        ensure_certificate(self.directory, ["mail.example.test"])
        ensure_certificate(self.directory)
        self.assertEqual(first.cert_path.read_bytes(), pem)

    def test_remade_for_new_host_name(self) -> None:
        """
        A certificate that does not name the host name now served is made
        again.
        """
        first = ensure_certificate(self.directory)
        pem = first.cert_path.read_bytes()
        ensure_certificate(self.directory, ["other.example.test"])
        self.assertNotEqual(first.cert_path.read_bytes(), pem)
        self.assertIn("other.example.test", _names(first.cert_path))

    def test_subject_names_the_host(self) -> None:
        """
        The subject CN of a made certificate is the host name (what
        fetchmail shows), or C{localhost} when the host name is an IP
        address; never C{::1}. An old certificate whose CN is an IP address
        is made again.
        """

        def common_name() -> str:
            cert = x509.load_pem_x509_certificate(
                (self.directory / "cert.pem").read_bytes()
            )
            (attribute,) = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
            return str(attribute.value)

        ensure_certificate(self.directory, ["Mail.Example.TEST"])
        self.assertEqual(common_name(), "mail.example.test")
        ensure_certificate(self.directory)
        self.assertEqual(common_name(), "mail.example.test")
        ensure_certificate(self.directory, ["192.0.2.7"])
        self.assertEqual(common_name(), "localhost")
        old = ensure_certificate(self.directory)
        certificate._make(old, list(certificate.DEFAULT_NAMES), "::1")
        self.assertEqual(common_name(), "::1")
        ensure_certificate(self.directory)
        self.assertEqual(common_name(), "localhost")

    def test_remade_when_expiring(self) -> None:
        """
        A certificate about to expire is made again.
        """
        first = ensure_certificate(self.directory)
        pem = first.cert_path.read_bytes()
        later = datetime.datetime.now(datetime.UTC) + certificate.VALIDITY
        self.patch(certificate, "_now", lambda: later)
        ensure_certificate(self.directory)
        self.assertNotEqual(first.cert_path.read_bytes(), pem)

    def test_remade_when_broken(self) -> None:
        """
        An unreadable certificate, or a key that does not fit it, is replaced.
        """
        first = ensure_certificate(self.directory)
        first.cert_path.write_text("garbage")
        ensure_certificate(self.directory).server_options()
        other = fresh_path(self)
        ensure_certificate(other)
        first.key_path.write_bytes((other / "key.pem").read_bytes())
        ensure_certificate(self.directory).server_options()

    def test_server_options(self) -> None:
        """
        The server options serve the certificate with its key.
        """
        lab = ensure_certificate(self.directory)
        options = lab.server_options()
        self.assertIsInstance(options, ssl.CertificateOptions)
        context = options.getContext()
        context.check_privatekey()

    def test_unwritable(self) -> None:
        """
        A directory where the certificate cannot be made is a one-line error.
        """
        blocker = fresh_path(self)
        blocker.write_text("not a directory")
        with self.assertRaises(CertificateError) as caught:
            ensure_certificate(blocker / "tls")
        self.assertIn(str(blocker), str(caught.exception))


class LoadCertificateTests(SynchronousTestCase):
    def test_own_certificate(self) -> None:
        """
        A given certificate and key are used as they are; clients trust the
        given certificate file.
        """
        files = make_server_certificate(fresh_path(self))
        lab = load_certificate(files.cert, files.key)
        self.assertEqual(lab.ca_path, files.cert)
        lab.server_options().getContext()

    def test_bad_files(self) -> None:
        """
        Missing files, garbage, and a key that does not fit are one-line
        errors.
        """
        files = make_server_certificate(fresh_path(self))
        other = make_server_certificate(fresh_path(self))
        garbage = fresh_path(self)
        garbage.write_text("garbage")
        for cert, key in [
            (files.cert, Path("/nonexistent/key.pem")),
            (garbage, files.key),
            (files.cert, garbage),
            (files.cert, other.key),
        ]:
            with self.assertRaises(CertificateError, msg=f"{cert} {key}") as caught:
                load_certificate(cert, key)
            self.assertNotIn("\n", str(caught.exception))
