"""
The fault docs tell the truth: every spec docs/faults.rst shows parses, and
the pytest examples of docs/testing-retries.rst pass when run as a user
runs them (pytest with the installed plugin, in a directory of their own).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from tests.scratch import fresh_path
from twisted_netlab.mail.lab.faults import parse_fault

DOCS = Path(__file__).resolve().parents[1] / "docs"


def code_blocks(name: str, language: str) -> list[str]:
    """
    The code blocks of C{language} in docs/NAME, dedented.
    """
    text = (DOCS / name).read_text()
    blocks = []
    for match in re.finditer(
        rf"\.\. code-block:: {language}\n\n((?:    .*\n|\n)+)", text
    ):
        lines = match.group(1).splitlines()
        blocks.append("\n".join(line[4:] for line in lines) + "\n")
    return blocks


class FaultDocsTests(SynchronousTestCase):
    def test_reference_specs_parse(self) -> None:
        """
        Each spec in the reference's example block, and each --fault and
        "Spec" of its shell examples, is a valid fault.
        """
        [examples] = code_blocks("faults.rst", "text")
        specs = [line.split()[0] for line in examples.splitlines() if line.strip()]
        shell = "".join(code_blocks("faults.rst", "sh")) + "".join(
            code_blocks("testing-retries.rst", "sh")
        )
        specs += re.findall(r"--fault '([^']+)'", shell)
        specs += re.findall(r'"Spec": "([^"]+)"', shell)
        self.assertGreater(len(specs), 10)
        for spec in specs:
            parse_fault(spec)

    def test_retry_recipe_runs(self) -> None:
        """
        The recipe's python blocks, put together as one test module, pass
        under pytest with the mail_lab fixture: all of their tests.
        """
        source = "\n".join(code_blocks("testing-retries.rst", "python"))
        tests = re.findall(r"^async def (test_\w+)", source, re.MULTILINE)
        self.assertEqual(len(tests), 5)
        directory = fresh_path(self, "recipe")
        directory.mkdir()
        (directory / "test_recipe.py").write_text(source)
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
            cwd=directory,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn(f"{len(tests)} passed", result.stdout)
