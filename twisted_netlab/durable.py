"""
Writing files so that a crash never leaves half of one visible.

The mail lab (Maildir UID lists, the users file, its certificate) and
C{netlab fetch} (its C{--new-only} state) all replace small files this way
(L{replace_file}).  Both of the package's Maildir writers, C{netlab fetch}'s
(L{twisted_netlab.mail.store}) and the lab's store
(L{twisted_netlab.mail.lab.store}), name a new message with L{maildir_name},
write it into C{tmp/} with L{write_new_file} and sync the directory it is
moved into with L{fsync_directory}; how it moves into C{new/} is theirs.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import socket
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

# The host part of Maildir names, with "/" and ":" escaped as mailbox.Maildir
# escapes them.
_HOSTNAME = (
    socket.gethostname().replace("/", "\\057").replace(":", "\\072") or "localhost"
)
_deliveries = itertools.count(1)


def fsync_path(path: str | os.PathLike[str]) -> None:
    """
    Make the file or directory C{path} durable: a file's data, a
    directory's entries.
    """
    _fsync(path, os.O_RDONLY)


def fsync_directory(path: str | os.PathLike[str]) -> None:
    """
    Make the entries of directory C{path} (files created, renamed or removed
    in it) durable.

    @raise NotADirectoryError: C{path} is not a directory.
    """
    _fsync(path, os.O_RDONLY | os.O_DIRECTORY)


def _fsync(path: str | os.PathLike[str], flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_all(fd: int, parts: Iterable[bytes]) -> None:
    """
    Write every byte of C{parts} to C{fd} (C{os.write} may write less than
    it is given), then sync it.
    """
    for part in parts:
        view = memoryview(part)
        while view:
            view = view[os.write(fd, view) :]
    os.fsync(fd)


def replace_file(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """
    Replace C{path} with C{data}, atomically and durably: a temporary file
    beside it (permissions C{mode}) is written and synced, renamed over
    C{path}, and the directory is synced.  On failure C{path} is unchanged
    and the temporary file is gone.

    @raise OSError: the file could not be written.
    """
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    fsync_directory(path.parent)


def write_new_file(
    path: str | os.PathLike[str], parts: Iterable[bytes], *, mode: int = 0o600
) -> None:
    """
    Create C{path}, which must not exist yet, write the concatenation of
    C{parts} into it in full and sync it to disk.  A new name in a Maildir's
    C{tmp/} is written this way before the message is moved where readers
    see it.

    @param mode: the new file's permissions (before the umask).
    @raise FileExistsError: C{path} exists; it is left as it is.
    @raise OSError: the file could not be written; it is gone again.
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        try:
            _write_all(fd, parts)
        finally:
            os.close(fd)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        raise


def maildir_name(
    *, sizes: tuple[int, int] | None = None, random_part: bool = False
) -> str:
    """
    A new Maildir message name, C{SECONDS.MMICROSECONDSPPIDQCOUNT.HOST} as
    C{mailbox.Maildir} makes them: the time, the process and a counter of
    the process's deliveries make it unique among processes on this host.

    @param random_part: add C{R} and eight random hex digits after the
        counter, so that a name is unique without ever checking for a clash
        (a writer that does not retry a taken name wants them).
    @param sizes: the message's size on disk and its size with CRLF line
        ends, recorded as C{,S=...,W=...} after the host (as Dovecot does),
        so that a reader knows them from the name alone.
    """
    now = time.time()
    seconds = int(now)
    micro = int((now - seconds) * 1_000_000)
    random = f"R{secrets.token_hex(4)}" if random_part else ""
    name = f"{seconds}.M{micro}P{os.getpid()}Q{next(_deliveries)}{random}.{_HOSTNAME}"
    if sizes is not None:
        name += f",S={sizes[0]},W={sizes[1]}"
    return name
