"""
The lab's IMAP server with mail programs nobody here wrote: offlineimap
(two syncs, a flag and a local message uploaded), getmail6 and fetchmail
(IMAP retrievers), and neomutt in a tmux pane.  All over implicit TLS with
the lab's CA verified; passwords in their configuration files, never in
argv.  The lab runs in-process; each program in a thread.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from twisted.internet.threads import deferToThread

from twisted_netlab.mail.lab.service import EPHEMERAL, MailLab

USER, PASSWORD = "prog@example.test", "prog-password"


def message(n: int) -> bytes:
    return (
        b"From: sender@example.test\r\n"
        b"To: prog@example.test\r\n"
        b"Subject: program test %d\r\n"
        b"Message-ID: <prog-%d@example.test>\r\n"
        b"\r\n"
        b"body %d\r\n"
        b".dot line\r\n" % (n, n, n)
    )


@pytest.fixture
def mail_lab_options() -> dict[str, Any]:
    return {
        "domains": ["example.test"],
        "users": {USER: PASSWORD},
        "imaps": [EPHEMERAL],
    }


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (Debian package: see README.rst)")
    return path


def run(argv: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv, capture_output=True, text=True, timeout=120, check=False, **kwargs
    )


def private(path: Path, text: str) -> Path:
    path.write_text(text)
    path.chmod(0o600)
    return path


@pytest_twisted.ensureDeferred
async def test_offlineimap(mail_lab: MailLab, tmp_path: Path) -> None:
    """
    offlineimap3: the first sync brings both messages byte for byte; a
    local \\Seen and a message made locally go up on the second sync (the
    lab then has the flag and the new message's exact bytes), and a third
    sync changes nothing.
    """
    offlineimap = need("offlineimap")
    for n in (1, 2):
        mail_lab.store.deliver(USER, message(n))
    local = tmp_path / "mail"
    rc = private(
        tmp_path / "offlineimaprc",
        "[general]\n"
        "accounts = lab\n"
        f"metadata = {tmp_path / 'meta'}\n"
        "[Account lab]\n"
        "localrepository = local\n"
        "remoterepository = remote\n"
        "[Repository local]\n"
        "type = Maildir\n"
        f"localfolders = {local}\n"
        "[Repository remote]\n"
        "type = IMAP\n"
        "remotehost = localhost\n"
        f"remoteport = {mail_lab.imaps_port}\n"
        "ssl = yes\n"
        f"sslcacertfile = {mail_lab.ca_path}\n"
        f"remoteuser = {USER}\n"
        f"remotepass = {PASSWORD}\n"
        "folderfilter = lambda name: name == 'INBOX'\n",
    )

    def sync() -> subprocess.CompletedProcess[str]:
        return run([offlineimap, "-c", str(rc), "-o", "-u", "basic"], cwd=tmp_path)

    first = await deferToThread(sync)
    assert first.returncode == 0, first.stdout + first.stderr
    inbox = local / "INBOX"
    files = [p for sub in ("new", "cur") for p in (inbox / sub).iterdir()]
    # offlineimap keeps local files with LF line ends.
    assert sorted(f.read_bytes().replace(b"\n", b"\r\n") for f in files) == [
        message(1),
        message(2),
    ]
    # Mark the first \Seen locally, and write a new message locally.
    (seen,) = [f for f in files if b"test 1" in f.read_bytes()]
    base = seen.name.split(":2,")[0]
    seen.rename(inbox / "cur" / f"{base}:2,S")
    (inbox / "new" / f"{int(time.time())}.local1.host").write_bytes(
        message(3).replace(b"\r\n", b"\n")
    )
    second = await deferToThread(sync)
    assert second.returncode == 0, second.stdout + second.stderr
    folder = mail_lab.store.folder(USER)
    folder.refresh(force=True)
    by_bytes = {folder.read(uid): folder.entry(uid).flags for uid in folder.uids()}
    assert set(by_bytes) == {message(1), message(2), message(3)}
    assert "\\Seen" in by_bytes[message(1)]
    assert "\\Seen" not in by_bytes[message(2)]
    third = await deferToThread(sync)
    assert third.returncode == 0, third.stdout + third.stderr
    assert len(mail_lab.store.folder(USER).uids()) == 3


@pytest_twisted.ensureDeferred
async def test_getmail_imap(
    mail_lab: MailLab, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """
    getmail6's SimpleIMAPSSLRetriever delivers both messages to a Maildir
    (each ends with the stored bytes), then nothing new the second time.
    """
    getmail = need("getmail")
    for n in (1, 2):
        mail_lab.store.deliver(USER, message(n))
    # getmail6 refuses to deliver as root: deliver as nobody, to a Maildir
    # nobody owns and can reach (pytest's tmp_path is not).
    home = Path(tempfile.mkdtemp(prefix="netlab-getmail-imap-"))
    request.addfinalizer(lambda: shutil.rmtree(home, True))
    maildir = home / "Maildir"
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True)
    if os.geteuid() == 0:
        for path in (home, maildir, *(maildir / s for s in ("cur", "new", "tmp"))):
            shutil.chown(path, "nobody")
    state = tmp_path / "getmail"
    state.mkdir()
    rc = private(
        state / "getmailrc",
        "[retriever]\n"
        "type = SimpleIMAPSSLRetriever\n"
        "server = localhost\n"
        f"port = {mail_lab.imaps_port}\n"
        f"username = {USER}\n"
        f"password = {PASSWORD}\n"
        f"ca_certs = {mail_lab.ca_path}\n"
        "mailboxes = ('INBOX',)\n"
        "[destination]\n"
        "type = Maildir\n"
        f"path = {maildir}/\n"
        + ("user = nobody\n" if os.geteuid() == 0 else "")
        + "[options]\nread_all = false\ndelete = false\n",
    )

    def fetch() -> subprocess.CompletedProcess[str]:
        return run([getmail, "--rcfile", str(rc), "--getmaildir", str(state)])

    first = await deferToThread(fetch)
    assert first.returncode == 0, first.stdout + first.stderr
    got = sorted(
        f.read_bytes().replace(b"\n", b"\r\n") for f in (maildir / "new").iterdir()
    )
    assert len(got) == 2, got
    for n in (1, 2):
        # getmail adds its own header fields; the stored ones and the body
        # are there, unchanged.
        header, body = message(n).split(b"\r\n\r\n", 1)
        assert any(
            g.endswith(b"\r\n\r\n" + body)
            and all(line in g for line in header.split(b"\r\n"))
            for g in got
        ), got
    second = await deferToThread(fetch)
    assert second.returncode == 0, second.stdout + second.stderr
    assert len(list((maildir / "new").iterdir())) == 2
    assert len(mail_lab.store.folder(USER).uids()) == 2


@pytest_twisted.ensureDeferred
async def test_fetchmail_imap(mail_lab: MailLab, tmp_path: Path) -> None:
    """
    fetchmail over IMAPS (sslcertck, the lab's CA): with keep it delivers
    both message bodies (to a BSMTP file) and marks them \\Seen in the lab;
    the second run finds no new mail (exit 1).
    """
    fetchmail = need("fetchmail")
    for n in (1, 2):
        mail_lab.store.deliver(USER, message(n))
    home = tmp_path / "home"
    home.mkdir()
    rc = private(
        home / "fetchmailrc",
        f"poll localhost service {mail_lab.imaps_port} protocol IMAP\n"
        f'  user "{USER}" there with password "{PASSWORD}"\n'
        f"  ssl sslproto TLS1.2+ sslcertck sslcertfile {mail_lab.ca_path} keep\n",
    )
    bsmtp = tmp_path / "out.bsmtp"
    env = {**os.environ, "FETCHMAILHOME": str(home), "HOME": str(home)}

    def fetch() -> subprocess.CompletedProcess[str]:
        return run(
            [fetchmail, "-f", str(rc), "--nodetach", "--nosyslog", "-v",
             "--bsmtp", str(bsmtp)],
            env=env,
        )  # fmt: skip

    first = await deferToThread(fetch)
    assert first.returncode == 0, first.stdout + first.stderr
    delivered = bsmtp.read_bytes().replace(b"\r\n", b"\n")
    for n in (1, 2):
        body = message(n).split(b"\r\n\r\n", 1)[1].replace(b"\r\n.", b"\r\n..")
        assert body.replace(b"\r\n", b"\n") in delivered
    folder = mail_lab.store.folder(USER)
    assert all("\\Seen" in folder.entry(uid).flags for uid in folder.uids())
    second = await deferToThread(fetch)
    assert second.returncode == 1, second.stdout + second.stderr


@pytest_twisted.ensureDeferred
async def test_neomutt(mail_lab: MailLab, tmp_path: Path) -> None:
    """
    neomutt in a tmux pane opens the lab's INBOX over IMAPS with the lab's
    CA (host name verified) and shows the message's subject in its index.
    """
    neomutt = need("neomutt")
    tmux = need("tmux")
    mail_lab.store.deliver(USER, message(7))
    muttrc = private(
        tmp_path / "muttrc",
        f'set folder = "imaps://localhost:{mail_lab.imaps_port}/"\n'
        'set spoolfile = "+INBOX"\n'
        f'set imap_user = "{USER}"\n'
        f'set imap_pass = "{PASSWORD}"\n'
        f'set ssl_ca_certificates_file = "{mail_lab.ca_path}"\n'
        f'set certificate_file = "{tmp_path / "certificates"}"\n'
        "set ssl_verify_host = yes\n"
        "set ssl_force_tls = yes\n"
        'set header_cache = ""\n'
        "set imap_passive = no\n",
    )
    socket = f"netlab-neomutt-{os.getpid()}"

    def session() -> str:
        env = {**os.environ, "HOME": str(tmp_path), "TERM": "xterm"}
        subprocess.run(
            [tmux, "-L", socket, "new-session", "-d", "-x", "160", "-y", "40",
             f"{neomutt} -n -F {muttrc}"],
            check=True, env=env, timeout=30,
        )  # fmt: skip
        screen = ""
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                screen = subprocess.run(
                    [tmux, "-L", socket, "capture-pane", "-p"],
                    capture_output=True, text=True, timeout=10, check=False,
                ).stdout  # fmt: skip
                if "program test 7" in screen:
                    break
                time.sleep(0.3)
        finally:
            subprocess.run([tmux, "-L", socket, "kill-server"], check=False, timeout=10)
        return screen

    screen = await deferToThread(session)
    assert "program test 7" in screen, screen
