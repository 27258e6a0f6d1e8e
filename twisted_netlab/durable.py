"""
Writing files so that a crash never leaves half of one visible.

The mail lab (Maildir UID lists, the users file, its certificate) and
C{netlab fetch} (its C{--new-only} state) all replace small files this way.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def fsync_directory(path: Path) -> None:
    """
    Make the entries of directory C{path} (files created, renamed or removed
    in it) durable.
    """
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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
