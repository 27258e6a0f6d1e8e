"""
Tests for L{twisted_netlab.durable}.
"""

from __future__ import annotations

import os
import stat

from twisted.trial.unittest import SynchronousTestCase

from tests.scratch import fresh_path
from twisted_netlab import durable


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
