"""
The mail lab's POP3 server with real clients: Python's poplib (STLS and
POP3_SSL, the lab's certificate verified), fetchmail, getmail6 and curl.  The lab
runs in-process on free loopback ports (every blocking client in a thread),
and once as C{twistd netlab-mail} restarted between two sessions.
"""

from __future__ import annotations

import imaplib
import os
import poplib
import re
import shutil
import smtplib
import ssl
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import suppress
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import reactor
from twisted.internet.threads import deferToThread

from tests.twistd import twistd
from twisted_netlab.mail.lab.service import EPHEMERAL, MailLab

ALICE, ALICE_PW = "alice@example.test", "alice-password"

FIRST = (
    b"From: Sender <sender@example.test>\r\n"
    b"To: Alice <alice@example.test>\r\n"
    b"Subject: pop3 interop one\r\n"
    b"Message-ID: <pop3-1@example.test>\r\n"
    b"Date: Tue, 01 Dec 2026 10:00:00 +0000\r\n"
    b"MIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Hello Alice, caf\xc3\xa9 \xe2\x9c\x93\r\n"
    b".a line that starts with a dot\r\n"
    b"..and one with two\r\n"
    b".\r\n"
    b"\r\n"
    b"trailing spaces   \r\n"
)
SECOND = (
    b"From: sender@example.test\r\n"
    b"To: alice@example.test\r\n"
    b"Subject: pop3 interop two\r\n"
    b"Message-ID: <pop3-2@example.test>\r\n"
    b"\r\n" + b"a longer body line, again and again\r\n" * 3000
)


def without_received(stored: bytes) -> bytes:
    """A message stored after SMTP, without the lab's Received: header."""
    return stored.split(b"\r\n", 3)[3] if stored.startswith(b"Received:") else stored


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian package: see README.rst)")
    return path


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[MailLab]:
    """
    A lab with POP3 (STLS) and POP3S listeners and two messages for Alice.
    """
    lab = MailLab(
        reactor,
        state=tmp_path / "lab",
        domains=["example.test"],
        users={ALICE: ALICE_PW},
        imap=[],
        pop3=[EPHEMERAL],
        pop3s=[EPHEMERAL],
    )
    pytest_twisted.blockon(lab.start())
    for message in (FIRST, SECOND):
        lab.store.deliver(ALICE, message)
    try:
        yield lab
    finally:
        pytest_twisted.blockon(lab.stop())


def client_context(lab: MailLab) -> ssl.SSLContext:
    assert lab.ca_path is not None
    return ssl.create_default_context(cafile=str(lab.ca_path))


def content(lines: list[bytes]) -> bytes:
    """What poplib's RETR and TOP lines were, as bytes with CRLF."""
    return b"".join(line + b"\r\n" for line in lines)


@pytest_twisted.ensureDeferred
async def test_poplib_stls(lab: MailLab) -> None:
    """
    poplib: CAPA offers STLS and no USER before TLS, USER is refused there;
    after STLS (the lab's CA verified) it logs in; STAT, LIST, UIDL, TOP
    and RETR (byte for byte) agree with the store; DELE then RSET keeps
    everything; DELE then QUIT removes the message; the unique ids of
    the rest stay the same in the next session.
    """
    stored = lab.messages(ALICE)

    def session() -> tuple[list[bytes], list[bytes]]:
        pop = poplib.POP3("localhost", lab.pop3_port, timeout=30)
        try:
            caps = pop.capa()
            assert "STLS" in caps and "USER" not in caps
            assert {"TOP", "UIDL", "PIPELINING", "RESP-CODES"} <= set(caps)
            with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
                pop.user(ALICE)
            pop.stls(context=client_context(lab))
            assert "USER" in pop.capa()
            pop.user(ALICE)
            pop.pass_(ALICE_PW)
            assert pop.stat() == (2, sum(len(m) for m in stored))
            _, listing, _ = pop.list()
            assert listing == [b"1 %d" % len(stored[0]), b"2 %d" % len(stored[1])]
            _, uidls, _ = pop.uidl()
            _, top, _ = pop.top(1, 1)
            header = stored[0].split(b"\r\n\r\n", 1)[0]
            assert (
                content(top)
                == header + b"\r\n\r\nHello Alice, caf\xc3\xa9 \xe2\x9c\x93\r\n"
            )
            for number, message in enumerate(stored, 1):
                _, lines, _ = pop.retr(number)
                assert content(lines) == message
            pop.dele(1)
            with pytest.raises(poplib.error_proto, match="deleted"):
                pop.retr(1)
            pop.rset()
            assert pop.stat()[0] == 2
            pop.dele(1)
            pop.quit()
        finally:
            pop.close()
        pop = poplib.POP3("localhost", lab.pop3_port, timeout=30)
        try:
            pop.stls(context=client_context(lab))
            pop.user(ALICE)
            pop.pass_(ALICE_PW)
            _, again, _ = pop.uidl()
            pop.quit()
        finally:
            pop.close()
        return uidls, again

    uidls, again = await deferToThread(session)
    assert lab.messages(ALICE) == stored[1:]
    assert [u.split()[1] for u in again] == [uidls[1].split()[1]]


@pytest_twisted.ensureDeferred
async def test_poplib_pop3_ssl_after_smtp(lab: MailLab) -> None:
    """
    A message sent with smtplib reads back byte for byte with poplib's
    POP3_SSL (implicit TLS, the lab's CA verified), the lab's Received:
    header first; RETR marks it \\Seen for IMAP once the session QUITs.
    """

    def talk() -> tuple[bytes, list[bytes]]:
        with smtplib.SMTP("localhost", lab.smtp_port, timeout=30) as smtp:
            smtp.starttls(context=client_context(lab))
            smtp.login(ALICE, ALICE_PW)
            smtp.sendmail("sender@example.test", [ALICE], FIRST)
        pop = poplib.POP3_SSL(
            "localhost", lab.pop3s_port, context=client_context(lab), timeout=30
        )
        try:
            assert "USER" in pop.capa() and "STLS" not in pop.capa()
            pop.user(ALICE)
            pop.pass_(ALICE_PW)
            _, lines, _ = pop.retr(3)
            pop.quit()
        finally:
            pop.close()
        return content(lines), lab.messages(ALICE)

    retrieved, stored = await deferToThread(talk)
    assert retrieved == stored[2]
    assert retrieved.endswith(b"\r\n\r\n" + FIRST.split(b"\r\n\r\n", 1)[1])
    folder = lab.store.folder(ALICE)
    assert "\\Seen" in folder.entry(folder.uids()[2]).flags
    assert "\\Seen" not in folder.entry(folder.uids()[0]).flags


@pytest_twisted.ensureDeferred
async def test_poplib_unverified_certificate_refused(lab: MailLab) -> None:
    """
    The lab's certificate does not verify against the system's CAs: a
    default poplib context refuses it (TLS is really verified).
    """

    def talk() -> None:
        pop = poplib.POP3("localhost", lab.pop3_port, timeout=30)
        try:
            with pytest.raises(ssl.SSLCertVerificationError):
                pop.stls(context=ssl.create_default_context())
        finally:
            with suppress(OSError):  # the failed handshake closed the socket
                pop.close()

    await deferToThread(talk)


def run(argv: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload]
        argv, capture_output=True, text=True, timeout=120, **kwargs
    )


def fetchmail_rc(lab: MailLab, path: Path, *, keep: bool) -> Path:
    """
    A fetchmail run control file for Alice over POP3 with STLS required
    and the lab's CA verified (the password in the file, not in argv).
    """
    assert lab.ca_path is not None
    rc = path / "fetchmailrc"
    rc.write_text(
        f"poll localhost service {lab.pop3_port} protocol POP3 uidl\n"
        f'  user "{ALICE}" there with password "{ALICE_PW}"\n'
        f"  sslproto TLS1.2+ sslcertck sslcertfile {lab.ca_path}\n"
        f"  {'keep' if keep else 'nokeep fetchall'}\n"
    )
    rc.chmod(0o600)
    return rc


@pytest_twisted.ensureDeferred
async def test_fetchmail(lab: MailLab, tmp_path: Path) -> None:
    """
    fetchmail over POP3 with STLS and the lab's CA verified: with keep and
    UIDL it delivers both messages (to a BSMTP file), then nothing the
    second time (the unique ids held); without keep it fetches all and
    deletes them from the lab.
    """
    fetchmail = need("fetchmail")
    home = tmp_path / "fetchmail-home"
    home.mkdir()
    env = {**os.environ, "FETCHMAILHOME": str(home), "HOME": str(home)}
    bsmtp = tmp_path / "out.bsmtp"
    stored = lab.messages(ALICE)

    def fetch(keep: bool) -> subprocess.CompletedProcess[str]:
        rc = fetchmail_rc(lab, tmp_path, keep=keep)
        return run(
            [
                fetchmail,
                "-f",
                str(rc),
                "--nodetach",
                "--nosyslog",
                "-v",
                "--bsmtp",
                str(bsmtp),
                "--idfile",
                str(home / "ids"),
            ],
            env=env,
        )

    first = await deferToThread(fetch, True)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "STLS" in first.stdout + first.stderr
    delivered = bsmtp.read_bytes()
    for message in stored:
        body = message.split(b"\r\n\r\n", 1)[1].replace(b"\r\n.", b"\r\n..")
        assert body.replace(b"\r\n", b"\n") in delivered.replace(b"\r\n", b"\n")
    assert len(lab.messages(ALICE)) == 2
    second = await deferToThread(fetch, True)
    assert second.returncode == 1, second.stdout + second.stderr  # no new mail
    assert bsmtp.read_bytes() == delivered
    third = await deferToThread(fetch, False)
    assert third.returncode == 0, third.stdout + third.stderr
    assert lab.messages(ALICE) == []


@pytest_twisted.ensureDeferred
async def test_fetchmail_refuses_unknown_certificate(
    lab: MailLab, tmp_path: Path
) -> None:
    """
    fetchmail with sslcertck and no CA for the lab refuses to log in: no
    message leaves the lab.
    """
    fetchmail = need("fetchmail")
    home = tmp_path / "fetchmail-home"
    home.mkdir()
    rc = home / "rc"
    rc.write_text(
        f"poll localhost service {lab.pop3_port} protocol POP3\n"
        f'  user "{ALICE}" there with password "{ALICE_PW}"\n'
        "  sslproto TLS1.2+ sslcertck nokeep\n"
    )
    rc.chmod(0o600)
    env = {**os.environ, "FETCHMAILHOME": str(home), "HOME": str(home)}
    result = await deferToThread(
        run,
        [
            fetchmail,
            "-f",
            str(rc),
            "--nodetach",
            "--nosyslog",
            "--bsmtp",
            str(tmp_path / "out"),
        ],
        env=env,
    )
    assert result.returncode not in (0, 1), result.stdout + result.stderr
    assert len(lab.messages(ALICE)) == 2


@pytest_twisted.ensureDeferred
async def test_getmail(
    lab: MailLab, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """
    getmail6's SimplePOP3SSLRetriever (implicit TLS, the lab's CA and host
    name verified) delivers both messages to a Maildir byte for byte (after
    its own Delivered-To/Return-Path headers), then nothing new the second
    time (unique ids in its oldmail file), then with delete and read_all
    removes them from the lab.
    """
    getmail = need("getmail")
    assert lab.ca_path is not None
    # getmail6 refuses to deliver as root: as root, deliver as nobody, to a
    # Maildir that nobody owns and can reach (pytest's tmp_path is not).
    home = Path(tempfile.mkdtemp(prefix="netlab-getmail-"))
    request.addfinalizer(lambda: shutil.rmtree(home, True))
    maildir = home / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    if os.geteuid() == 0:
        for path in (home, maildir, *(maildir / s for s in ("cur", "new", "tmp"))):
            shutil.chown(path, "nobody")
    state = tmp_path / "getmail"
    state.mkdir()
    stored = lab.messages(ALICE)

    def fetch(delete: bool) -> subprocess.CompletedProcess[str]:
        rc = state / "getmailrc"
        rc.write_text(
            "[retriever]\n"
            "type = SimplePOP3SSLRetriever\n"
            "server = localhost\n"
            f"port = {lab.pop3s_port}\n"
            f"username = {ALICE}\n"
            f"password = {ALICE_PW}\n"
            f"ca_certs = {lab.ca_path}\n"
            "[destination]\n"
            "type = Maildir\n"
            f"path = {maildir}/\n"
            + ("user = nobody\n" if os.geteuid() == 0 else "")
            + "[options]\n"
            f"delete = {'true' if delete else 'false'}\n"
            f"read_all = {'true' if delete else 'false'}\n"
        )
        rc.chmod(0o600)
        return run([getmail, "--rcfile", str(rc), "--getmaildir", str(state)])

    first = await deferToThread(fetch, False)
    assert first.returncode == 0, first.stdout + first.stderr
    files = sorted((maildir / "new").iterdir())
    assert len(files) == 2
    got = sorted(f.read_bytes().replace(b"\n", b"\r\n") for f in files)
    for message in stored:
        assert any(g.endswith(message) for g in got), message[:80]
    second = await deferToThread(fetch, False)
    assert second.returncode == 0, second.stdout + second.stderr
    assert len(list((maildir / "new").iterdir())) == 2
    third = await deferToThread(fetch, True)
    assert third.returncode == 0, third.stdout + third.stderr
    assert lab.messages(ALICE) == []


def test_twistd_restart_keeps_unique_ids(tmp_path: Path) -> None:
    """
    C{twistd netlab-mail --pop3 ...} in a subprocess: mail sent by SMTP is
    listed by poplib (STLS, the lab's CA) with unique ids that are the same
    after a restart of the server; a DELE and QUIT before the restart is
    still applied after it.
    """
    state = tmp_path / "state"
    args = [
        "netlab-mail",
        "--state",
        str(state),
        "--domain",
        "example.test",
        "--user",
        f"{ALICE}:{ALICE_PW}",
        "--smtp",
        EPHEMERAL,
        "--imap",
        EPHEMERAL,
        "--pop3",
        EPHEMERAL,
    ]
    ca = ssl.create_default_context

    def ports(log: str) -> dict[str, int]:
        found = re.findall(r"(SMTP|IMAP|POP3) on 127\.0\.0\.1:(\d+)", log)
        return {kind: int(port) for kind, port in found}

    def uidl(port: int, delete: int | None = None) -> list[bytes]:
        pop = poplib.POP3("localhost", port, timeout=30)
        try:
            pop.stls(context=ca(cafile=str(state / "tls" / "cert.pem")))
            pop.user(ALICE)
            pop.pass_(ALICE_PW)
            _, listing, _ = pop.uidl()
            if delete is not None:
                pop.dele(delete)
            pop.quit()
        finally:
            pop.close()
        return [line.split()[1] for line in listing]

    with twistd(*args, ports=3, timeout=60) as server:
        server.wait_for_log("POP3 on ")
        found = ports(server.log)
        with smtplib.SMTP("localhost", found["SMTP"], timeout=30) as smtp:
            smtp.starttls(context=ca(cafile=str(state / "tls" / "cert.pem")))
            smtp.login(ALICE, ALICE_PW)
            for message in (FIRST, SECOND, FIRST):
                smtp.sendmail("sender@example.test", [ALICE], message)
        before = uidl(found["POP3"], delete=2)
    assert len(set(before)) == 3
    with twistd(*args, ports=3, timeout=60) as server:
        server.wait_for_log("POP3 on ")
        after = uidl(ports(server.log)["POP3"])
    assert after == [before[0], before[2]]


@pytest_twisted.ensureDeferred
async def test_poplib_and_imaplib_together(mail_lab: MailLab) -> None:
    """
    The mail_lab fixture serves POP3 too. While a poplib session is open,
    imaplib expunges message 1: the POP3 session still lists it (same
    number, size and unique id) and answers RETR 1 with -ERR; the message
    that POP3 deletes at QUIT is expunged in the IMAP session, and the one
    it read is \\Seen there.
    """
    for message in (FIRST, SECOND, FIRST):
        mail_lab.store.deliver(ALICE, message)
    context = client_context(mail_lab)

    def talk() -> tuple[list[bytes], list[bytes], list[Any]]:
        imap = imaplib.IMAP4("localhost", mail_lab.imap_port, timeout=30)
        pop = poplib.POP3("localhost", mail_lab.pop3_port, timeout=30)
        try:
            imap.starttls(ssl_context=context)
            imap.login(ALICE, ALICE_PW)
            imap.select("INBOX")
            pop.stls(context=context)
            pop.user(ALICE)
            pop.pass_(ALICE_PW)
            _, before, _ = pop.uidl()
            imap.store("1", "+FLAGS", "(\\Deleted)")
            imap.expunge()
            _, after, _ = pop.uidl()
            with pytest.raises(poplib.error_proto, match="removed by another"):
                pop.retr(1)
            _, lines, _ = pop.retr(2)
            assert content(lines) == mail_lab.messages(ALICE)[0]
            pop.dele(3)
            pop.quit()
            typ, _ = imap.noop()
            assert typ == "OK"
            responses = imap.untagged_responses
            expunged = responses.pop("EXPUNGE", [])
            _, flags = imap.fetch("1:*", "(FLAGS)")
            imap.logout()
        finally:
            pop.close()
        return before, after, [expunged, flags]

    before, after, (expunged, flags) = await deferToThread(talk)
    assert after == before
    assert expunged == [b"2"]
    # imaplib also hands back the unsolicited FETCH sent when RETR's \Seen
    # landed.
    assert set(flags) == {b"1 (FLAGS (\\Seen \\Recent))"}
    assert [without_received(m) for m in mail_lab.messages(ALICE)] == [SECOND]


@pytest_twisted.ensureDeferred
async def test_curl(lab: MailLab, tmp_path: Path) -> None:
    """
    curl's pop3:// with --ssl-reqd (STLS) and the lab's CA lists the
    maildrop and retrieves a message byte for byte, with USER/PASS and with
    AUTH=PLAIN; without TLS the lab refuses the login (curl exit 67).
    """
    curl = need("curl")
    assert lab.ca_path is not None
    netrc = tmp_path / "netrc"
    netrc.write_text(f"machine localhost login {ALICE} password {ALICE_PW}\n")
    netrc.chmod(0o600)
    url = f"pop3://localhost:{lab.pop3_port}/"
    base = [curl, "-sS", "--netrc-file", str(netrc)]
    tls = [*base, "--ssl-reqd", "--cacert", str(lab.ca_path)]
    stored = lab.messages(ALICE)

    def fetch(argv: list[str]) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(argv, capture_output=True, timeout=60, check=False)

    listing = await deferToThread(fetch, [*tls, url])
    assert listing.returncode == 0, listing.stderr
    assert listing.stdout == b"1 %d\r\n2 %d\r\n" % (len(stored[0]), len(stored[1]))
    first = await deferToThread(fetch, [*tls, url + "1"])
    assert first.stdout == stored[0]
    second = await deferToThread(
        fetch, [*tls, "--login-options", "AUTH=PLAIN", url + "2"]
    )
    assert second.stdout == stored[1]
    plain = await deferToThread(fetch, [*base, url + "1"])
    assert plain.returncode == 67, plain.stderr
