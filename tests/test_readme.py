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


def python_block_after(lead: str) -> str:
    """
    The code of the first Python block after the paragraph starting with
    C{lead}, dedented.
    """
    readme = (ROOT / "README.rst").read_text()
    start = readme.index(lead)
    match = re.search(r"\.\. code-block:: python\n\n((?:    .*\n|\n)+)", readme[start:])
    assert match is not None, lead
    return "\n".join(line[4:] for line in match.group(1).splitlines()) + "\n"


class ReadmeTestInboxTests(SynchronousTestCase):
    """
    The "Test inbox" examples of README.rst run, as they are, under pytest.
    """

    def run_example(self, lead: str) -> None:
        import os
        import subprocess
        import sys
        import tempfile

        with tempfile.TemporaryDirectory(prefix="netlab-readme-") as directory:
            path = Path(directory) / "test_example.py"
            path.write_text(python_block_after(lead))
            done = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "pytest",
                    "-q",
                    "-p",
                    "no:cacheprovider",
                    str(path),
                ],
                cwd=directory,
                capture_output=True,
                text=True,
                timeout=300,
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
                check=False,
            )
        self.assertEqual(done.returncode, 0, done.stdout + done.stderr)
        self.assertIn("1 passed", done.stdout)

    def test_fixture_example(self) -> None:
        """
        The mail_lab fixture's wait_for example passes.
        """
        self.run_example("In tests, the ``mail_lab`` fixture")

    def test_lab_in_thread_example(self) -> None:
        """
        The lab_in_thread example passes.
        """
        self.run_example("Tests that run no reactor")
