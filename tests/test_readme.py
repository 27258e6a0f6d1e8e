"""
README.rst tells the truth about set-up: its two commands are what CI runs.
"""

from __future__ import annotations

import re
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

ROOT = Path(__file__).resolve().parents[1]


def command_after(heading: str) -> str:
    """
    The first code block after the paragraph starting with C{heading}.
    """
    readme = (ROOT / "README.rst").read_text()
    start = readme.index(heading)
    match = re.search(r"\.\. code-block:: sh\n\n    (.+)\n", readme[start:])
    assert match is not None, heading
    return match.group(1)


class ReadmeTests(SynchronousTestCase):
    def test_start_command_is_run_by_ci(self) -> None:
        """
        The README's "install and start" command is the one CI runs, and it
        installs into a fresh venv and starts C{twistd -n netlab}.
        """
        command = command_after("Install and start the suite")
        ci = (ROOT / ".ci" / "run").read_text()
        self.assertIn(f"setsid bash -c '{command}'", ci)
        self.assertTrue(command.startswith("python3 -m venv .venv && "))
        self.assertTrue(command.endswith("twistd -n netlab"))

    def test_test_command_is_run_by_ci(self) -> None:
        """
        The README's "run the tests" command is a line of CI's script,
        and installs the Debian peers, the package in compat editable mode
        (so twistd sees the plugins) and runs pytest.
        """
        command = command_after("Install everything and run the tests")
        ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
        self.assertIn(command, ci_lines)
        self.assertIn("--config-settings editable_mode=compat", command)
        self.assertTrue(command.endswith(".venv/bin/pytest"))
