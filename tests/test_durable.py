"""
Tests for L{twisted_netlab.durable}.
"""

from __future__ import annotations

import errno
import os
import re
import stat

from twisted.trial.unittest import SynchronousTestCase

from tests.scratch import fresh_path
from twisted_netlab import durable


def record_fsyncs(test_case: SynchronousTestCase) -> list[str]:
    """
    The paths that C{os.fsync} is called on during C{test_case}, in order
    (the calls still sync).
    """
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real_fsync(fd)

    test_case.patch(os, "fsync", fsync)
    return synced


class ReplaceFileTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = fresh_path(self)
        self.directory.mkdir()
        self.path = self.directory / "state"

    def test_replaces_with_mode(self) -> None:
        """
        The file ends up with exactly the new bytes and the given mode, and
        nothing else is left in the directory.
        """
        self.path.write_bytes(b"old")
        durable.replace_file(self.path, b"new", mode=0o640)
        self.assertEqual(self.path.read_bytes(), b"new")
        self.assertEqual(stat.S_IMODE(self.path.stat().st_mode), 0o640)
        self.assertEqual(os.listdir(self.directory), ["state"])

    def test_syncs_file_and_directory(self) -> None:
        """
        The data and the directory entry are both synced.
        """
        synced: list[int] = []
        real_fsync = os.fsync

        def fsync(fd: int) -> None:
            synced.append(fd)
            real_fsync(fd)

        self.patch(os, "fsync", fsync)
        durable.replace_file(self.path, b"data")
        self.assertEqual(len(synced), 2)

    def test_failure_leaves_old_file(self) -> None:
        """
        When the rename fails, the old file is intact and no temporary file
        stays behind.
        """
        self.path.write_bytes(b"old")

        def failing_replace(source: str, target: object) -> None:
            raise OSError(28, "No space left on device")

        self.patch(os, "replace", failing_replace)
        self.assertRaises(OSError, durable.replace_file, self.path, b"new")
        self.assertEqual(self.path.read_bytes(), b"old")
        self.assertEqual(os.listdir(self.directory), ["state"])


class WriteNewFileTests(SynchronousTestCase):
    """
    L{durable.write_new_file}: how both Maildir writers (netlab fetch's and
    the lab's store) put a message into C{tmp/}.
    """

    def setUp(self) -> None:
        self.directory = fresh_path(self)
        self.directory.mkdir()
        self.path = self.directory / "message"

    def test_writes_parts_synced(self) -> None:
        """
        The file holds the parts one after the other, with the given mode,
        and its own descriptor was synced before the call returned.
        """
        synced = record_fsyncs(self)
        durable.write_new_file(self.path, [b"Received: x\r\n", b"", b"body"])
        self.assertEqual(self.path.read_bytes(), b"Received: x\r\nbody")
        self.assertEqual(stat.S_IMODE(self.path.stat().st_mode), 0o600)
        self.assertEqual(synced, [str(self.path)])

    def test_short_writes(self) -> None:
        """
        A file written a few bytes at a time (C{os.write} may write less
        than it is given) is written whole.
        """
        real_write = os.write
        self.patch(os, "write", lambda fd, data: real_write(fd, data[:3]))
        data = bytes(range(256)) * 40
        durable.write_new_file(self.path, [data, b"end"])
        self.assertEqual(self.path.read_bytes(), data + b"end")

    def test_existing_file_is_left_alone(self) -> None:
        """
        A name that is taken raises C{FileExistsError} (the writers then make
        another) and the file of that name keeps its bytes.
        """
        self.path.write_bytes(b"someone else's")
        self.assertRaises(FileExistsError, durable.write_new_file, self.path, [b"mine"])
        self.assertEqual(self.path.read_bytes(), b"someone else's")

    def test_failed_write_leaves_nothing(self) -> None:
        """
        When the disk fills part-way through, the error is raised and the
        half-written file is gone.
        """
        real_write = os.write
        calls: list[int] = []

        def write(fd: int, data: bytes) -> int:
            calls.append(fd)
            if len(calls) == 2:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real_write(fd, data)

        self.patch(os, "write", write)
        error = self.assertRaises(
            OSError, durable.write_new_file, self.path, [b"first", b"second"]
        )
        self.assertEqual(error.errno, errno.ENOSPC)
        self.assertEqual(os.listdir(self.directory), [])

    def test_failed_sync_leaves_nothing(self) -> None:
        """
        A file whose sync fails is removed: it might not be on disk.
        """

        def fsync(fd: int) -> None:
            raise OSError(errno.EIO, os.strerror(errno.EIO))

        self.patch(os, "fsync", fsync)
        self.assertRaises(OSError, durable.write_new_file, self.path, [b"data"])
        self.assertEqual(os.listdir(self.directory), [])

    def test_missing_directory(self) -> None:
        """
        A file in a directory that does not exist is refused, and nothing is
        made.
        """
        missing = self.directory / "tmp" / "message"
        self.assertRaises(FileNotFoundError, durable.write_new_file, missing, [b"data"])
        self.assertEqual(os.listdir(self.directory), [])


class FsyncTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.directory = fresh_path(self)
        self.directory.mkdir()
        self.synced = record_fsyncs(self)

    def test_fsync_path(self) -> None:
        """
        L{durable.fsync_path} syncs a file or a directory, the one named.
        """
        path = self.directory / "file"
        path.write_bytes(b"x")
        durable.fsync_path(path)
        durable.fsync_path(self.directory)
        self.assertEqual(self.synced, [str(path), str(self.directory)])

    def test_fsync_directory_refuses_a_file(self) -> None:
        """
        L{durable.fsync_directory} syncs a directory and refuses anything
        else, syncing nothing.
        """
        path = self.directory / "file"
        path.write_bytes(b"x")
        durable.fsync_directory(self.directory)
        self.assertRaises(NotADirectoryError, durable.fsync_directory, path)
        self.assertEqual(self.synced, [str(self.directory)])


class MaildirNameTests(SynchronousTestCase):
    def test_as_mailbox_makes_them(self) -> None:
        """
        By default a name is made as C{mailbox.Maildir} makes them
        (C{SECONDS.MMICROSECONDSPPIDQCOUNT.HOST}), and no two are alike.
        """
        names = [durable.maildir_name() for _ in range(1000)]
        self.assertEqual(len(set(names)), 1000)
        shape = re.compile(rf"\d+\.M\d+P{os.getpid()}Q(\d+)\.[^/:,]+")
        counts = []
        for name in names:
            match = shape.fullmatch(name)
            assert match is not None, name
            counts.append(int(match[1]))
        self.assertEqual(counts, sorted(counts))

    def test_random_part_and_sizes(self) -> None:
        """
        The lab's store asks for random bits after the counter and for the
        size and the CRLF size after the host (C{,S=...,W=...}).
        """
        name = durable.maildir_name(sizes=(10, 12), random_part=True)
        self.assertRegex(
            name, rf"^\d+\.M\d+P{os.getpid()}Q\d+R[0-9a-f]{{8}}\.[^/:,]+,S=10,W=12$"
        )
        self.assertNotEqual(
            name, durable.maildir_name(sizes=(10, 12), random_part=True)
        )
