"""
Dovecot, an IMAP server no one here wrote, run by the tests from a temporary
directory on loopback ports.

L{Dovecot} writes a configuration with one passwd-file user whose mail is a
Maildir, a certificate from L{tests.certs}, an IMAP port (with STARTTLS) and
an IMAPS port; it starts the server in well under a second, fills mailboxes
by writing Maildir files directly (much faster than APPEND), and changes a
mailbox's UIDVALIDITY.  It needs root (Dovecot drops privileges to its own
users) and C{/usr/sbin/dovecot}; L{skip_reason} says why not.  (Dovecot
counts loopback connections as secure, so it allows LOGIN on the IMAP port
before STARTTLS, where a remote client would see LOGINDISABLED.)

Used by the fetch integration tests and the benchmarks.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import twisted.mail.imap4  # noqa: F401  (registers the imap4-utf-7 codec)

from tests.certs import ServerCertificate, make_server_certificate

DOVECOT = "/usr/sbin/dovecot"
DOVEADM = "/usr/bin/doveadm"
MAIL_UID = MAIL_GID = 65534  # nobody: Dovecot refuses mail owned by root


def skip_reason() -> str | None:
    """
    Why Dovecot cannot be run here, or L{None} when it can.
    """
    if shutil.which(DOVECOT) is None:
        return (
            f"Dovecot is not installed ({DOVECOT} is absent; apt install dovecot-imapd)"
        )
    if os.geteuid() != 0:
        return "running Dovecot from a temporary directory needs root"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _group_alive(pgid: int) -> bool:
    """
    Whether a process of group C{pgid} is still running (zombies are not).
    """
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def make_message(index: int, *, size: int = 0, subject: str | None = None) -> bytes:
    """
    A small, distinct RFC 5322 message (CRLF line ends), padded with body
    lines to at least C{size} bytes.
    """
    subject = subject if subject is not None else f"Message {index}"
    head = (
        f"From: Sender {index} <sender{index}@example.org>\r\n"
        f"To: alice@example.org\r\n"
        f"Subject: {subject}\r\n"
        f"Date: Mon, 01 Jan 2024 10:{index // 60 % 60:02d}:{index % 60:02d} +0000\r\n"
        f"Message-ID: <{index}.netlab@example.org>\r\n"
        "\r\n"
    ).encode()
    body = f"Body of message {index}.\r\n".encode()
    line = b"The quick brown fox jumps over the lazy dog. 0123456789\r\n"
    while len(head) + len(body) < size:
        body += line
    return head + body


@dataclass
class Dovecot:
    """
    One Dovecot instance, listening on 127.0.0.1 and 127.0.0.2 (whose name
    its certificate lacks), in a fresh directory under C{/tmp} (its processes
    run as other users, who must be able to reach their files: pytest's
    C{tmp_path} is private to root); L{start} it, L{stop} it, L{remove} it.
    """

    directory: Path = field(
        default_factory=lambda: Path(tempfile.mkdtemp(prefix="netlab-dovecot-"))
    )
    user: str = "alice"
    password: str = "secret"
    imap_port: int = 0
    imaps_port: int = 0
    certificate: ServerCertificate = field(init=False)
    _counter: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        self.directory = self.directory.resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o755)
        self.certificate = make_server_certificate(self.directory / "tls")
        self.home = self.directory / "mail" / self.user
        self.maildir = self.home / "Maildir"
        self.config = self.directory / "dovecot.conf"

    @property
    def ca(self) -> Path:
        """
        The PEM file of the CA that signed the server's certificate.
        """
        return self.certificate.ca

    def _write_config(self) -> None:
        d = self.directory
        (d / "passwd").write_text(
            f"{self.user}:{{PLAIN}}{self.password}:{MAIL_UID}:{MAIL_GID}::{self.home}\n"
        )
        self.config.write_text(
            f"""\
base_dir = {d}/run
state_dir = {d}/state
log_path = {d}/dovecot.log
info_log_path = {d}/dovecot.log
listen = 127.0.0.1, 127.0.0.2
protocols = imap
default_login_user = dovenull
default_internal_user = dovecot
default_internal_group = dovecot
first_valid_uid = 100
ssl = yes
ssl_cert = <{self.certificate.cert}
ssl_key = <{self.certificate.key}
disable_plaintext_auth = yes
auth_failure_delay = 0
auth_mechanisms = plain
passdb {{
  driver = passwd-file
  args = {d}/passwd
}}
userdb {{
  driver = passwd-file
  args = {d}/passwd
}}
mail_location = maildir:~/Maildir
mail_fsync = never
service imap-login {{
  inet_listener imap {{
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = {self.imaps_port}
    ssl = yes
  }}
}}
service anvil {{
  chroot =
}}
"""
        )

    def start(self) -> Dovecot:
        """
        Start the server and wait until both ports accept connections.
        """
        self.imap_port = self.imap_port or _free_port()
        self.imaps_port = self.imaps_port or _free_port()
        self._write_config()
        self.mailbox_path("INBOX")
        subprocess.run([DOVECOT, "-c", str(self.config)], check=True)
        deadline = time.monotonic() + 10
        for port in (self.imap_port, self.imaps_port):
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        self.stop()
                        raise RuntimeError(
                            f"Dovecot did not listen on {port}: {self.log()}"
                        ) from None
                    time.sleep(0.02)
        return self

    def stop(self) -> None:
        """
        Stop the server: all its processes, quickly.

        Dovecot's master is the leader of its own process group; on SIGTERM
        it waits seconds for its login and config processes, so whatever is
        left of the group after a moment is killed.
        """
        try:
            pid = self.master_pid()
        except (OSError, ValueError):
            return
        for sig, wait in ((signal.SIGTERM, 0.3), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not _group_alive(pid):
                    return
                time.sleep(0.01)

    def master_pid(self) -> int:
        """
        The process id of the running server's master process, the leader of
        the process group all its processes belong to.
        """
        return int((self.directory / "run" / "master.pid").read_text())

    def __enter__(self) -> Dovecot:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def remove(self) -> None:
        """
        Stop the server and delete its directory.
        """
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def log(self) -> str:
        """
        The server's log so far (for failure messages).
        """
        try:
            return (self.directory / "dovecot.log").read_text(errors="replace")
        except OSError:
            return ""

    def mailbox_path(self, mailbox: str) -> Path:
        """
        The Maildir of C{mailbox} (created if missing): the Maildir itself
        for INBOX, C{.NAME} in it for others (C{NAME} in modified UTF-7).
        """
        if mailbox == "INBOX":
            path = self.maildir
        else:
            path = self.maildir / ("." + mailbox.encode("imap4-utf-7").decode())
        for sub in ("", "cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
        for p in [self.directory / "mail", self.home, *path.parents, path]:
            if p == self.directory or self.directory not in p.parents:
                continue
            os.chown(p, MAIL_UID, MAIL_GID)
        for sub in ("cur", "new", "tmp"):
            os.chown(path / sub, MAIL_UID, MAIL_GID)
        return path

    def deliver(
        self,
        data: bytes,
        mailbox: str = "INBOX",
        *,
        seen: bool = False,
        received: float | None = None,
        recent: bool = True,
    ) -> Path:
        """
        Put one message into C{mailbox} by writing its Maildir file directly
        (named so that Dovecot numbers messages in delivery order, with its
        size and its size with CRLF line ends, C{S=} and C{W=}, as Dovecot
        names the mail it delivers: without them it reads every file to
        answer RFC822.SIZE): in C{cur/} with the S flag when C{seen}, dated
        C{received} (a timestamp: Dovecot's INTERNALDATE) when given.

        With C{recent} false the message goes to C{cur/} even when not
        seen, as if a client had opened the mailbox since (a mailbox in use:
        Dovecot moves none of its files when it is selected).
        """
        self._counter += 1
        crlf_size = len(data) + data.count(b"\n") - data.count(b"\r\n")
        name = (
            f"{1_600_000_000 + self._counter}.M{self._counter}P1.netlab,"
            f"S={len(data)},W={crlf_size}"
        )
        folder = self.mailbox_path(mailbox)
        if seen or not recent:
            path = folder / "cur" / f"{name}:2,{'S' if seen else ''}"
        else:
            path = folder / "new" / name
        path.write_bytes(data)
        os.chown(path, MAIL_UID, MAIL_GID)
        if received is not None:
            os.utime(path, (received, received))
        return path

    def fill(
        self, messages: Iterable[bytes], mailbox: str = "INBOX", *, recent: bool = True
    ) -> list[bytes]:
        """
        Deliver C{messages} into C{mailbox} (see L{deliver}), much faster
        than APPEND.

        @return: the messages, in UID order.
        """
        stored = list(messages)
        for data in stored:
            self.deliver(data, mailbox, recent=recent)
        return stored

    def doveadm(self, *args: str) -> str:
        """
        Run C{doveadm} against this instance and return its output.
        """
        result = subprocess.run(
            [DOVEADM, "-c", str(self.config), *args],
            check=True,
            capture_output=True,
            text=True,
        )
        return result.stdout

    def set_uidvalidity(self, mailbox: str, uidvalidity: int) -> None:
        """
        Give C{mailbox} a new UIDVALIDITY, as a server does after losing its
        UID database: every client's saved UIDs become meaningless.
        """
        self.doveadm(
            "mailbox", "update", "-u", self.user, "--uid-validity",
            str(uidvalidity), mailbox,
        )  # fmt: skip

    def uidvalidity(self, mailbox: str = "INBOX") -> int:
        """
        The current UIDVALIDITY of C{mailbox}, as Dovecot reports it.
        """
        out = self.doveadm(
            "-f", "flow", "mailbox", "status", "-u", self.user, "uidvalidity", mailbox
        )
        return int(out.split("=", 1)[1])
