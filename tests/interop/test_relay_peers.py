"""
The lab's relay (L{twisted_netlab.mail.lab.relay}) against SMTP servers no
one here wrote: aiosmtpd with STARTTLS, implicit TLS and AUTH over a CA the
tests make, and Postfix's smtp-sink (Debian C{postfix}; Postfix itself is
never started).  What arrives is compared with the stored bytes exactly;
a wrong CA, a relay without STARTTLS and a refused recipient fail as they
must, and nothing is sent where the allowlist says no.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted

from tests.certs import ServerCertificate, make_server_certificate
from tests.interop.aiosmtpd_peer import Peer, Recorder, aiosmtpd_peer
from twisted_netlab.errors import ServerRefused, TLSFailed
from twisted_netlab.mail.lab.relay import (
    Forwarder,
    Relay,
    RelayConfig,
    ReleaseRefused,
)
from twisted_netlab.mail.lab.stats import DeliveryCounters

# aiosmtpd warns about AUTH without STARTTLS even over implicit TLS.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH:UserWarning")

USERS = {"relayuser": "relay-s3cret"}

#: A stored message as the lab keeps it: its Received line, a Bcc header,
#: odd spacing, a folded header, 8-bit text and lines starting with dots.
RAW = (
    "Received: from app.example ([127.0.0.1]) by lab.test with ESMTP;\r\n"
    "\tMon, 1 Dec 2026 10:00:00 +0000\r\n"
    "From: App <app@example.org>\r\n"
    "To: customer@example.com\r\n"
    "Bcc: audit@example.com\r\n"
    "Subject:   Your   order\r\n"
    "X-Folded: one\r\n two\r\n"
    "Message-ID: <order-1@example.org>\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Grüße ✓\r\n.\r\n..two dots\r\n.leading dot\r\nend\r\n"
).encode()


def reactor() -> Any:
    from twisted.internet import reactor

    return reactor


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> ServerCertificate:
    return make_server_certificate(tmp_path_factory.mktemp("certs"))


@pytest.fixture
def starttls_peer(certificate: ServerCertificate) -> Iterator[Peer]:
    with aiosmtpd_peer(certificate, users=USERS) as running:
        yield running


def relay_for(peer: Peer, **options: Any) -> Relay:
    options.setdefault("tls", "starttls")
    if options["tls"] != "none":
        options.setdefault("cafile", str(peer.certificate.ca))
    options.setdefault("user", "relayuser")
    options.setdefault("password", USERS["relayuser"])
    if options["user"] is None:
        options["password"] = None
    return Relay(RelayConfig(peer.host, peer.port, timeout=10, **options), reactor())


@pytest_twisted.ensureDeferred
async def test_release_over_starttls_with_auth(starttls_peer: Peer) -> None:
    """
    Over STARTTLS with the CA verified and AUTH, the released message
    arrives exactly as stored (Bcc header, spacing, 8-bit text and dot
    lines included), from its From address, to the recipients asked for.
    """
    relay = relay_for(starttls_peer, allow=re.compile(r"@example\.com$"))
    result = await relay.release(
        RAW, ["Customer <customer@example.com>", "second@example.com"]
    )
    assert result.all_accepted
    [arrival] = starttls_peer.recorder.arrivals
    assert arrival.content == RAW
    assert arrival.mail_from == "app@example.org"
    assert arrival.rcpt_tos == ["customer@example.com", "second@example.com"]
    assert "BODY=8BITMIME" in arrival.mail_options
    assert [login for _, login in starttls_peer.recorder.logins] == [b"relayuser"]


@pytest_twisted.ensureDeferred
async def test_release_over_implicit_tls(certificate: ServerCertificate) -> None:
    """
    C{--relay-tls tls}: TLS from the first byte, with AUTH, and the bytes
    arrive unchanged.
    """
    with aiosmtpd_peer(certificate, tls="implicit", users=USERS) as peer:
        result = await relay_for(peer, tls="tls").release(RAW, ["c@example.com"])
        assert result.all_accepted
        assert [a.content for a in peer.recorder.arrivals] == [RAW]


@pytest_twisted.ensureDeferred
async def test_wrong_ca_fails(starttls_peer: Peer, tmp_path: Path) -> None:
    """
    A relay whose certificate does not chain to the configured CA is
    refused (L{TLSFailed}); no password and no message went to it.
    """
    other = make_server_certificate(tmp_path / "other", ca_name="another CA")
    relay = relay_for(starttls_peer, cafile=str(other.ca))
    with pytest.raises(TLSFailed) as caught:
        await relay.release(RAW, ["c@example.com"])
    assert "certificate verify failed" in str(caught.value)
    assert starttls_peer.recorder.arrivals == []
    assert starttls_peer.recorder.logins == []


@pytest_twisted.ensureDeferred
async def test_no_auth_without_tls(certificate: ServerCertificate) -> None:
    """
    A relay that offers no STARTTLS gets neither the password nor the
    message: STARTTLS is required by default, and a login over
    C{--relay-tls none} cannot even be configured without the explicit
    plaintext option.
    """
    with aiosmtpd_peer(certificate, tls="none") as peer:
        with pytest.raises(TLSFailed) as caught:
            await relay_for(peer).release(RAW, ["c@example.com"])
        assert "does not offer STARTTLS" in str(caught.value)
        assert peer.recorder.arrivals == []
        assert peer.recorder.logins == []


@pytest_twisted.ensureDeferred
async def test_allowlist_blocks_before_connecting() -> None:
    """
    A recipient the allowlist refuses stops the release before any
    connection: the listening socket the relay points at is never
    connected to.
    """
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.setblocking(False)
        port = listener.getsockname()[1]
        relay = Relay(
            RelayConfig(
                "127.0.0.1", port, tls="none", allow=re.compile(r"@example\.com$")
            ),
            reactor(),
        )
        with pytest.raises(ReleaseRefused) as caught:
            await relay.release(RAW, ["ok@example.com", "leak@elsewhere.test"])
        assert str(caught.value) == (
            "Address does not match the relay allowlist "
            r"(--relay-allow @example\.com$): leak@elsewhere.test"
        )
        time.sleep(0.2)
        with pytest.raises(BlockingIOError):
            listener.accept()


@pytest_twisted.ensureDeferred
async def test_refused_recipient(certificate: ServerCertificate) -> None:
    """
    A relay that refuses the only recipient fails the release with its
    reply (L{ServerRefused}); with one refused among others the result
    says which.
    """
    recorder = Recorder(refuse={"gone@example.com"})
    with aiosmtpd_peer(certificate, users=USERS, recorder=recorder) as peer:
        relay = relay_for(peer)
        with pytest.raises(ServerRefused) as caught:
            await relay.release(RAW, ["gone@example.com"])
        assert "refused every recipient: 550 5.1.1" in str(caught.value)
        result = await relay.release(RAW, ["gone@example.com", "here@example.com"])
        assert not result.all_accepted
        assert [r.address for r in result.refused] == ["gone@example.com"]
        assert [a.rcpt_tos for a in recorder.arrivals] == [["here@example.com"]]


@pytest_twisted.ensureDeferred
async def test_forwarding(starttls_peer: Peer) -> None:
    """
    Every message fed to the forwarder reaches the forward addresses
    through the relay, unchanged, from its envelope sender; the counters
    say so.
    """
    counters = DeliveryCounters()
    forwarder = Forwarder(
        relay_for(starttls_peer),
        reactor(),
        addresses=("ops@example.org", "qa@example.org"),
        counters=counters,
    )
    second = RAW.replace(b"order-1", b"order-2")
    forwarder.feed(RAW, "bounce@example.org")
    forwarder.feed(second, "app@example.org")
    await forwarder.when_idle()
    arrivals = sorted(starttls_peer.recorder.arrivals, key=lambda a: a.content)
    assert [a.content for a in arrivals] == [RAW, second]
    assert sorted(a.mail_from for a in arrivals) == [
        "app@example.org",
        "bounce@example.org",
    ]
    assert all(a.rcpt_tos == ["ops@example.org", "qa@example.org"] for a in arrivals)
    assert counters == DeliveryCounters(sent=2)


# -- Postfix's smtp-sink ------------------------------------------------------


@dataclass
class Sink:
    port: int
    directory: Path

    def messages(self) -> list[tuple[str, list[str], bytes]]:
        """
        Each message smtp-sink dumped: its MAIL arguments, its RCPT
        arguments and the message as received (smtp-sink writes lines
        ended by LF).  smtp-sink opens a dump file when a transaction
        starts and removes it if the transaction fails: wait (up to 5 s)
        until every file is a whole dump.
        """
        deadline = time.monotonic() + 5
        while True:
            dumps = []
            for path in sorted(self.directory.glob("msg.*")):
                with contextlib.suppress(FileNotFoundError):  # removed meanwhile
                    dumps.append(path.read_bytes())
            if all(b"\nReceived: " in d and d.endswith(b"\n\n") for d in dumps):
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"smtp-sink left partial dumps: {dumps!r}")
            time.sleep(0.05)
        found = []
        for dump in dumps:
            head, _, rest = dump.partition(b"\nReceived: ")
            fields = [line.split(b": ", 1) for line in head.split(b"\n")]
            mail = next(v.decode() for k, v in fields if k == b"X-Mail-Args")
            rcpt = [v.decode() for k, v in fields if k == b"X-Rcpt-Args"]
            lines = rest.split(b"\n")
            while lines[1].startswith(b"\t"):  # the rest of its Received header
                del lines[1]
            found.append((mail, rcpt, b"\n".join(lines[1:])[:-1]))
        return found


@pytest.fixture
def smtp_sink(request: pytest.FixtureRequest) -> Iterator[Sink]:
    """
    smtp-sink on a loopback port, dumping each message into a directory;
    extra options come from an indirect parameter.
    """
    tool = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
    if not os.path.exists(tool):
        pytest.skip("smtp-sink is not installed (Debian package postfix)")
    extra = list(getattr(request, "param", []))
    # smtp-sink run as root drops to nobody, who must be able to write here.
    directory = Path(tempfile.mkdtemp(prefix="netlab-sink-"))
    directory.chmod(0o777)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    process = subprocess.Popen(
        [tool, *user, *extra, "-d", f"{directory}/msg.", f"127.0.0.1:{port}", "5"]
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError("smtp-sink did not start") from None
                time.sleep(0.05)
        yield Sink(port, directory)
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(directory)


@pytest_twisted.ensureDeferred
async def test_release_to_smtp_sink(smtp_sink: Sink, tmp_path: Path) -> None:
    """
    Released to smtp-sink over C{--relay-tls none} (asked for): the
    message it dumps is the stored one, line for line, dots unstuffed.
    (smtp-sink answers AUTH with 250, not 235, so no login is tried.)
    """
    config = RelayConfig("127.0.0.1", smtp_sink.port, tls="none", timeout=10)
    result = await Relay(config, reactor()).release(RAW, ["to@example.com"])
    assert result.all_accepted
    [(mail, rcpt, content)] = smtp_sink.messages()
    assert mail.startswith("<app@example.org>")
    assert rcpt == ["<to@example.com>"]
    assert content == RAW.replace(b"\r\n", b"\n")


@pytest_twisted.ensureDeferred
async def test_smtp_sink_without_starttls(smtp_sink: Sink) -> None:
    """
    With the default C{--relay-tls starttls}, smtp-sink (which has no TLS)
    gets nothing: L{TLSFailed}.
    """
    relay = Relay(RelayConfig("127.0.0.1", smtp_sink.port, timeout=10), reactor())
    with pytest.raises(TLSFailed):
        await relay.release(RAW, ["to@example.com"])
    assert smtp_sink.messages() == []


@pytest.mark.parametrize("smtp_sink", [["-r", "RCPT"]], indirect=True)
@pytest_twisted.ensureDeferred
async def test_forwarding_retries_soft_refusals(smtp_sink: Sink) -> None:
    """
    smtp-sink answering every RCPT with a 4xx: the forwarder tries again
    with backoff as many times as allowed, then gives up, counting each
    retry and the failure; nothing was delivered.
    """
    counters = DeliveryCounters()
    relay = Relay(
        RelayConfig("127.0.0.1", smtp_sink.port, tls="none", timeout=10), reactor()
    )
    forwarder = Forwarder(
        relay,
        reactor(),
        addresses=("ops@example.org",),
        counters=counters,
        attempts=3,
        first_retry=0.05,
    )
    forwarder.feed(RAW, "app@example.org")
    await forwarder.when_idle()
    assert counters == DeliveryCounters(failed=1, retried=2)
    assert smtp_sink.messages() == []
