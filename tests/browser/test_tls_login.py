"""
The web inbox over the lab's TLS, behind the login the API asks for off
loopback: Chromium trusts exactly the lab's key, logs in as a lab user, and
the page and its event stream work as on plain loopback.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from playwright.sync_api import Error, Playwright, expect

from tests.browser.conftest import (
    CHROMIUM,
    LAB_PASSWORD,
    LAB_USER,
    Lab,
    lab_args,
    lab_ports,
    message,
)
from tests.twistd import twistd


def spki_hash(cert_path: Path) -> str:
    """
    The base64 SHA-256 of a certificate's public key, as Chromium's
    --ignore-certificate-errors-spki-list wants it (trust that key only).
    """
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = cert.public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(hashlib.sha256(key).digest()).decode()


@pytest.fixture(scope="module")
def exposed_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """
    The lab with its HTTPS listener on every interface (so it asks for a
    login); SMTP and IMAP stay on loopback.
    """
    state = tmp_path_factory.mktemp("lab")
    args = lab_args(state, "--https", "tcp:0:interface=0.0.0.0")
    with twistd(*args, ports=3, timeout=60) as server:
        server.wait_for_log("HTTPS")
        ports = lab_ports(server)
        yield Lab(server, state, ports["SMTP"], ports["IMAP"], ports["HTTP"])


def test_inbox_over_tls_with_login(exposed_lab: Lab, playwright: Playwright) -> None:
    """
    Over TLS (verified against the lab's own key, no blanket ignoring of
    certificate errors), the page is refused without a login; with a lab
    user's login it loads, and mail sent by smtplib arrives live (the
    event stream goes through the same login).
    """
    if not CHROMIUM.exists():
        pytest.skip(f"Debian's chromium is not installed ({CHROMIUM})")
    url = f"https://localhost:{exposed_lab.http_port}/"
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM),
        args=[
            "--no-sandbox",
            f"--ignore-certificate-errors-spki-list={spki_hash(exposed_lab.ca_path)}",
        ],
    )
    try:
        anonymous = browser.new_page()
        with pytest.raises(Error, match="ERR_INVALID_AUTH_CREDENTIALS"):
            anonymous.goto(url)  # 401, and no login to offer

        context = browser.new_context(
            http_credentials={"username": LAB_USER, "password": LAB_PASSWORD}
        )
        page = context.new_page()
        response = page.goto(url)
        assert response is not None and response.status == 200
        page.wait_for_selector("body[data-ready]")
        page.wait_for_selector("#live.on")
        exposed_lab.send(message("over TLS"))
        expect(page.locator("#list .row .subject")).to_have_text(["over TLS"])
    finally:
        browser.close()
