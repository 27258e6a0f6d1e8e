"""
L{send_message} and C{netlab send} against aiosmtpd, an SMTP server no one
here wrote, on loopback with STARTTLS (or implicit TLS) and AUTH over a
certificate authority the tests create: what arrives is checked byte for
byte, and every error path a real server can cause is tried.
"""

from __future__ import annotations

import email
import os
import socket
import sys
from collections.abc import Iterator
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.utils import getProcessOutputAndValue

from tests.certs import ServerCertificate, make_server_certificate
from tests.interop.aiosmtpd_peer import Peer, Recorder, aiosmtpd_peer
from tests.terminal import Terminal
from twisted_netlab.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    ServerRefused,
    TLSFailed,
)
from twisted_netlab.mail.compose import Draft, compose
from twisted_netlab.mail.send import SendResult, message_bytes, send_message

# aiosmtpd warns about AUTH without STARTTLS even over implicit TLS.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH:UserWarning")

USERS = {"alice": "s3cret"}
REPO = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> ServerCertificate:
    return make_server_certificate(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def peer(certificate: ServerCertificate) -> Iterator[Peer]:
    with aiosmtpd_peer(certificate, users=USERS) as running:
        yield running


def reactor() -> Any:
    from twisted.internet import reactor

    return reactor


async def send(peer: Peer, message: EmailMessage, **options: Any) -> SendResult:
    options.setdefault("username", "alice")
    options.setdefault("password", USERS["alice"])
    options.setdefault("cafile", str(peer.certificate.ca))
    result: SendResult = await send_message(
        reactor(), message, host=peer.host, port=peer.port, timeout=10, **options
    )
    return result


def simple() -> EmailMessage:
    return compose(
        Draft(sender="a@example.org", to=["b@example.org"], subject="s", text="hi")
    )


async def refused_with(
    kind: type[Exception], peer: Peer, message: EmailMessage, **options: Any
) -> str:
    """
    Send, expecting C{kind}; return its one-line message.
    """
    with pytest.raises(kind) as caught:
        await send(peer, message, **options)
    text = str(caught.value)
    assert "\n" not in text
    return text


@pytest_twisted.ensureDeferred
async def test_delivered_byte_for_byte(peer: Peer, tmp_path: Path) -> None:
    """
    Over STARTTLS with AUTH, the message arrives exactly as
    L{message_bytes} (and so C{--dry-run}) gives it: headers, 8-bit text
    (dots at line starts included), the HTML alternative and binary
    attachments intact; Bcc recipients get it and are nowhere in it.
    """
    binary = tmp_path / "data.bin"
    binary.write_bytes(bytes(range(256)) * 300)
    text_file = tmp_path / "notes.txt"
    text_file.write_bytes(b"one\r\n.two\nthree without newline")
    draft = Draft(
        sender="Jörg Müller <a@example.org>",
        to=["Zoë <b@example.org>"],
        cc=["c@example.org"],
        bcc=["hidden@example.org"],
        subject="Grüße — ünïcödé subject",
        text="Grüße ✓\n.\n.leading dot\nend\n",
        html="<p>Grüße ✓</p>",
        attachments=[binary, text_file],
        headers=[("Reply-To", "r@example.org")],
    )
    message = compose(draft)
    result = await send(peer, message, recipients=draft.recipients())

    assert result.all_accepted
    assert [r.address for r in result.recipients] == draft.recipients()
    assert result.reply == "250 2.0.0 OK queued"
    [arrival] = peer.recorder.arrivals
    assert arrival.content == message_bytes(message)
    assert b"Bcc" not in arrival.content and b"hidden" not in arrival.content
    assert arrival.rcpt_tos == ["b@example.org", "c@example.org", "hidden@example.org"]
    assert arrival.mail_from == "a@example.org"
    assert "BODY=8BITMIME" in arrival.mail_options
    assert peer.recorder.logins == [("PLAIN", b"alice")]
    assert "Grüße ✓\r\n.\r\n.leading dot\r\n".encode() in arrival.content

    received = email.message_from_bytes(arrival.content, policy=policy.default)
    assert isinstance(received, EmailMessage)
    assert received["Subject"] == draft.subject
    assert received["From"].addresses[0].display_name == "Jörg Müller"
    body = received.get_body(("plain",))
    assert (
        body is not None
        and body.get_content() == "Grüße ✓\r\n.\r\n.leading dot\r\nend\r\n"
    )
    attachments = {
        a.get_filename(): a.get_payload(decode=True)
        for a in received.iter_attachments()
    }
    assert attachments == {
        "data.bin": binary.read_bytes(),
        "notes.txt": text_file.read_bytes(),
    }


@pytest_twisted.ensureDeferred
async def test_implicit_tls(certificate: ServerCertificate) -> None:
    """
    With implicit TLS (port 465 style) the message is delivered over TLS
    from the first byte, verified or (C{verify=False}) not.
    """
    with aiosmtpd_peer(certificate, tls="implicit", users=USERS) as peer:
        message = simple()
        result = await send(peer, message, tls="implicit")
        assert result.all_accepted
        assert peer.recorder.arrivals[0].content == message_bytes(message)
        unverified = await send(
            peer, message, tls="implicit", cafile=None, verify=False
        )
        assert unverified.all_accepted


@pytest_twisted.ensureDeferred
async def test_some_recipients_refused(peer: Peer) -> None:
    """
    A refused recipient is reported with aiosmtpd's code and text; the
    others get the message.
    """
    peer.recorder.refuse.add("nobody@example.org")
    draft = Draft(
        sender="a@example.org", to=["b@example.org", "nobody@example.org"], text="x"
    )
    result = await send(peer, compose(draft), recipients=draft.recipients())
    assert not result.all_accepted and not result.all_refused
    [refused] = result.refused
    assert (refused.address, refused.code) == ("nobody@example.org", 550)
    assert refused.text == "5.1.1 <nobody@example.org>: no such user"
    assert peer.recorder.arrivals[0].rcpt_tos == ["b@example.org"]


@pytest_twisted.ensureDeferred
async def test_all_recipients_refused(peer: Peer) -> None:
    """
    When every recipient is refused, nothing is sent and the result says
    all were refused.
    """
    peer.recorder.refuse.add("b@example.org")
    result = await send(peer, simple())
    assert result.all_refused
    assert result.reply == ""
    assert peer.recorder.arrivals == []


@pytest_twisted.ensureDeferred
async def test_message_refused_552(certificate: ServerCertificate) -> None:
    """
    A 552 after the data refuses the message for every recipient.
    """
    recorder = Recorder(data_reply="552 5.3.4 Message too big for system")
    with aiosmtpd_peer(certificate, users=USERS, recorder=recorder) as peer:
        result = await send(peer, simple())
    assert result.all_refused
    assert [(r.code, r.text) for r in result.recipients] == [
        (552, "5.3.4 Message too big for system")
    ]


@pytest_twisted.ensureDeferred
async def test_too_big_for_announced_size(certificate: ServerCertificate) -> None:
    """
    A message over the size the server announces is not sent.
    """
    with aiosmtpd_peer(certificate, users=USERS, data_size_limit=100) as peer:
        text = await refused_with(ServerRefused, peer, simple())
        assert "accepts at most 100" in text
        assert peer.recorder.arrivals == []


@pytest_twisted.ensureDeferred
async def test_untrusted_certificate(peer: Peer, tmp_path: Path) -> None:
    """
    A certificate from a CA that is not trusted stops the send before the
    login: L{TLSFailed}.
    """
    stranger = make_server_certificate(tmp_path, ca_name="someone else's CA")
    text = await refused_with(TLSFailed, peer, simple(), cafile=str(stranger.ca))
    assert "certificate verify failed" in text
    assert peer.recorder.logins == [] and peer.recorder.arrivals == []


@pytest_twisted.ensureDeferred
async def test_expired_certificate(tmp_path: Path) -> None:
    """
    An expired certificate from the trusted CA is L{TLSFailed}.
    """
    expired = make_server_certificate(tmp_path, expired=True)
    with aiosmtpd_peer(expired, users=USERS) as peer:
        text = await refused_with(TLSFailed, peer, simple())
        assert "certificate verify failed" in text
        assert peer.recorder.logins == []


@pytest_twisted.ensureDeferred
async def test_wrong_host_name(tmp_path: Path) -> None:
    """
    A trusted certificate for another name is L{TLSFailed}.
    """
    other_name = make_server_certificate(tmp_path, hostnames=("mail.example",))
    with aiosmtpd_peer(other_name, users=USERS) as peer:
        text = await refused_with(TLSFailed, peer, simple())
        assert (
            text
            == f"the certificate of 127.0.0.1:{peer.port} is not valid for 127.0.0.1"
        )
        assert peer.recorder.logins == []


@pytest_twisted.ensureDeferred
async def test_skip_verify(tmp_path: Path) -> None:
    """
    With verification off (C{--insecure-skip-verify}) the untrusted,
    misnamed certificate is accepted.
    """
    other_name = make_server_certificate(tmp_path, hostnames=("mail.example",))
    with aiosmtpd_peer(other_name, users=USERS) as peer:
        result = await send(peer, simple(), cafile=None, verify=False)
        assert result.all_accepted


@pytest_twisted.ensureDeferred
async def test_auth_login(certificate: ServerCertificate) -> None:
    """
    A server offering only AUTH LOGIN gets user name and password through
    its challenges.
    """
    with aiosmtpd_peer(
        certificate, users=USERS, auth_exclude_mechanism=["PLAIN"]
    ) as peer:
        assert (await send(peer, simple())).all_accepted
        assert peer.recorder.logins == [("LOGIN", b"alice")]


@pytest_twisted.ensureDeferred
async def test_auth_rejected(peer: Peer) -> None:
    """
    A wrong password is L{AuthenticationFailed} with the server's reply,
    after a single attempt.
    """
    text = await refused_with(AuthenticationFailed, peer, simple(), password="wrong")
    assert text.startswith(f"127.0.0.1:{peer.port} rejected the login of alice: 535")
    assert peer.recorder.logins == [("PLAIN", b"alice")]
    assert peer.recorder.arrivals == []


@pytest_twisted.ensureDeferred
async def test_no_starttls_offered(certificate: ServerCertificate) -> None:
    """
    A server without STARTTLS is refused while TLS is required; with
    C{tls="none"} (an explicit choice) the message goes in the clear.
    """
    with aiosmtpd_peer(certificate, tls="none") as peer:
        text = await refused_with(
            TLSFailed, peer, simple(), username=None, password=None
        )
        assert text == (
            f"127.0.0.1:{peer.port} does not offer STARTTLS; "
            "refusing to go on without TLS"
        )
        assert peer.recorder.arrivals == []
        result = await send(peer, simple(), tls="none", username=None, password=None)
        assert result.all_accepted


@pytest_twisted.ensureDeferred
async def test_implicit_tls_on_starttls_port(peer: Peer) -> None:
    """
    Implicit TLS against a server expecting plain SMTP first is
    L{TLSFailed}, with a hint.
    """
    text = await refused_with(TLSFailed, peer, simple(), tls="implicit")
    assert "STARTTLS port" in text


@pytest_twisted.ensureDeferred
async def test_non_ascii_address(certificate: ServerCertificate) -> None:
    """
    A non-ASCII address goes with SMTPUTF8 to a server that offers it,
    UTF-8 headers intact; a server without SMTPUTF8 gets nothing and the
    error names the address.
    """
    message = compose(
        Draft(sender="a@example.org", to=["Jörg <jörg@example.org>"], text="x")
    )
    with aiosmtpd_peer(certificate, users=USERS, enable_SMTPUTF8=False) as peer:
        text = await refused_with(ServerRefused, peer, message)
        assert text == (
            f"127.0.0.1:{peer.port} does not support SMTPUTF8, which the "
            "non-ASCII address jörg@example.org needs"
        )
        assert peer.recorder.arrivals == []
    with aiosmtpd_peer(certificate, users=USERS) as peer:
        assert (await send(peer, message)).all_accepted
        [arrival] = peer.recorder.arrivals
        assert arrival.rcpt_tos == ["jörg@example.org"]
        assert "SMTPUTF8" in arrival.mail_options
        assert arrival.content == message_bytes(message)
        assert "To: Jörg <jörg@example.org>\r\n".encode() in arrival.content


@pytest_twisted.ensureDeferred
async def test_server_without_8bitmime(certificate: ServerCertificate) -> None:
    """
    Without 8BITMIME (aiosmtpd decoding data as text), 8-bit text is sent
    re-encoded as 7-bit and arrives as the same text.
    """
    with aiosmtpd_peer(certificate, users=USERS, decode_data=True) as peer:
        message = compose(
            Draft(sender="a@example.org", to=["b@example.org"], text="Grüße ✓\n")
        )
        assert (await send(peer, message)).all_accepted
        [arrival] = peer.recorder.arrivals
    assert arrival.content.isascii()
    assert not any(o.startswith("BODY=") for o in arrival.mail_options)
    received = email.message_from_bytes(arrival.content, policy=policy.default)
    assert isinstance(received, EmailMessage)
    assert received.get_content() == "Grüße ✓\n"


@pytest_twisted.ensureDeferred
async def test_timeout() -> None:
    """
    A server that accepts the connection but never greets is
    L{ConnectionFailed} once the timeout passes.
    """
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the kernel completes the handshake; no one answers
        port = silent.getsockname()[1]
        with pytest.raises(ConnectionFailed) as caught:
            await send_message(
                reactor(),
                simple(),
                host="127.0.0.1",
                port=port,
                tls="none",
                timeout=0.5,
            )
    assert str(caught.value).startswith(
        f"no answer from 127.0.0.1:{port} within 0.5 seconds"
    )


@pytest_twisted.ensureDeferred
async def test_command_prompts_and_delivers(peer: Peer, tmp_path: Path) -> None:
    """
    C{netlab send} on a terminal prompts for the password (getpass, nothing
    echoed), delivers a message with an attachment over STARTTLS with AUTH,
    prints one line per recipient and, with -v, the conversation with the
    credentials masked; what arrives is byte for byte what --dry-run prints.
    """
    attachment = tmp_path / "report.pdf"
    attachment.write_bytes(b"%PDF-1.4\n" + bytes(range(256)) * 10)
    args = ["-m", "twisted_netlab", "send", "--server", f"127.0.0.1:{peer.port}"]
    args += ["--cafile", str(peer.certificate.ca), "--from", "Ann <a@example.org>"]
    args += ["--to", "b@example.org", "--bcc", "hidden@example.org"]
    args += [
        "--subject",
        "Report ✓",
        "--body",
        "Attached.",
        "--attach",
        str(attachment),
    ]
    args += ["--header", "Date: Tue, 01 Jan 2030 00:00:00 +0000"]
    args += ["--header", "Message-ID: <report@example.org>"]

    terminal = Terminal(b"Password for alice: ", USERS["alice"].encode())
    reactor().spawnProcess(
        terminal,
        sys.executable,
        [sys.executable, *args, "--user", "alice", "-v"],
        env=dict(os.environ),
        path=str(REPO),
        usePTY=True,
    )
    terminal.ended.addTimeout(60, reactor())
    code = await terminal.ended
    output = terminal.output.decode("utf-8", "replace")
    assert code == 0, output
    assert terminal.prompts == 1
    assert "accepted b@example.org\r\naccepted hidden@example.org\r\n" in output
    assert "C: AUTH PLAIN ********" in output
    assert USERS["alice"] not in output  # neither echoed nor in the transcript
    assert "AHMzY3JldA" not in output and "czNjcmV0" not in output  # nor in base64

    out, err, dry_code = await getProcessOutputAndValue(
        sys.executable, [*args, "--dry-run"], env=dict(os.environ), path=str(REPO)
    )
    assert dry_code == 0, err
    [arrival] = peer.recorder.arrivals
    assert arrival.content == out
    assert arrival.rcpt_tos == ["b@example.org", "hidden@example.org"]
