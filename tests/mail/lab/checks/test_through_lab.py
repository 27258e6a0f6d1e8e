"""
The checks end to end through the lab, against real peers: mail sent by
smtplib to a L{lab_in_thread} lab, checked with its C{check} (the Python
API, through the cache): spamd scores GTUBE and a ham; links are fetched
from Python's http.server (and refused when the lab's API is reachable
from the network); messages signed with dkimpy pass DKIM, SPF and DMARC
with a records file, and fail once tampered with and sent from a domain
whose SPF refuses the lab's client.
"""

from __future__ import annotations

import base64
import smtplib
import threading
from collections.abc import Iterator
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from twisted_netlab.testing import ThreadedLab, lab_in_thread

GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


def send(lab: ThreadedLab, raw: bytes, mail_from: str) -> None:
    with smtplib.SMTP("127.0.0.1", lab.smtp_port, timeout=30) as smtp:
        smtp.sendmail(mail_from, ["bob@example.test"], raw)


def mail(subject: str, sender: str, body: str, html: str | None = None) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "bob@example.test"
    message["Subject"] = subject
    message["Date"] = "Mon, 07 Dec 2026 09:00:00 +0000"
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@sender.example>"
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message.as_bytes().replace(b"\n", b"\r\n")


def test_spam_gtube_and_ham(tmp_path: Path, spamd: tuple[str, int]) -> None:
    """
    spamd says GTUBE is spam (its GTUBE rule hit) and a plain note is not.
    """
    with lab_in_thread(spamassassin=spamd) as lab:
        send(lab, mail("gtube", "a@sender.example", f"{GTUBE}\n"), "a@sender.example")
        send(
            lab, mail("ham", "a@sender.example", "See you at 5.\n"), "a@sender.example"
        )
        [gtube] = lab.wait_for("subject:gtube")
        [ham] = lab.wait_for("subject:ham")
        spam = lab.check(gtube.id, "spam")
        assert spam.error == ""
        assert spam.is_spam
        assert spam.score >= 100
        assert "GTUBE" in spam.rule_names
        assert not lab.check(ham.id, "spam").is_spam


class _Pages(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ok" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_HEAD = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def pages() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_links(pages: str) -> None:
    """
    With the API on loopback only, the links to a local http.server are
    fetched (200 and 404); with an HTTPS API listening on every interface, the
    same links are refused as private (451).
    """
    html = f"<a href='{pages}/ok'>ok</a> <a href='{pages}/missing'>gone</a>"
    raw = mail("links", "a@sender.example", "links", html)
    with lab_in_thread() as lab:
        send(lab, raw, "a@sender.example")
        [message] = lab.wait_for("subject:links")
        links = lab.check(message.id, "links")
        assert [(link.url, link.status_code) for link in links.links] == [
            (f"{pages}/ok", 200),
            (f"{pages}/missing", 404),
        ]
        assert links.errors == 1
    with lab_in_thread(https=("tcp:0:interface=0.0.0.0",)) as lab:
        send(lab, raw, "a@sender.example")
        [message] = lab.wait_for("subject:links")
        links = lab.check(message.id, "links")
        assert [link.status_code for link in links.links] == [451, 451]
        assert links.links[0].status.startswith("Blocked private/reserved address")


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


def test_dkim_spf_dmarc(tmp_path: Path) -> None:
    """
    A message signed by dkimpy and sent from 127.0.0.1 for sender.example
    passes DKIM, SPF and DMARC with the records file; the same message
    tampered with after signing and sent with a MAIL FROM whose SPF refuses
    127.0.0.1 fails all three.
    """
    import dkim  # type: ignore[import-untyped]

    pem, public = _key()
    records = tmp_path / "lab.records"
    records.write_text(
        f'sel._domainkey.sender.example TXT "v=DKIM1; k=rsa; p={public}"\n'
        'sender.example TXT "v=spf1 ip4:127.0.0.1 -all"\n'
        '_dmarc.sender.example TXT "v=DMARC1; p=reject"\n'
        'forged.example TXT "v=spf1 -all"\n'
    )
    raw = mail("signed", "Ann <ann@sender.example>", "The report is attached.\n")
    signed = dkim.sign(raw, b"sel", b"sender.example", pem) + raw
    tampered = signed.replace(b"The report is attached.", b"Pay invoice 66 now.")
    tampered = tampered.replace(b"Subject: signed", b"Subject: tampered")
    with lab_in_thread(dns_records=records) as lab:
        send(lab, signed, "bounce@sender.example")
        send(lab, tampered, "bounce@forged.example")
        [good] = lab.wait_for("subject:signed")
        [bad] = lab.wait_for("subject:tampered")
        auth = lab.check(good.id, "auth")
        assert [(s.domain, s.result) for s in auth.dkim] == [("sender.example", "pass")]
        assert (auth.spf.result, auth.dmarc.result) == ("pass", "pass")
        assert auth.passed
        auth = lab.check(bad.id, "auth")
        assert [s.result for s in auth.dkim] == ["fail"]
        assert (auth.spf.result, auth.dmarc.result) == ("fail", "fail")
        assert not auth.passed
