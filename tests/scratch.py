"""
Scratch paths for synchronous tests.

Trial's C{mktemp} makes its directories under the current directory, which
under pytest is the checkout; these live in the system's temporary directory
instead and are removed when the test ends, under either runner.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase


def fresh_path(test_case: SynchronousTestCase, name: str = "scratch") -> Path:
    """
    A path that does not exist yet, in a new temporary directory that is
    removed after C{test_case}.
    """
    directory = Path(tempfile.mkdtemp(prefix="netlab-test-"))
    test_case.addCleanup(shutil.rmtree, directory, True)
    return directory / name
