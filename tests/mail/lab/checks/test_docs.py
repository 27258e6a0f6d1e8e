"""
docs/checks.rst tells the truth about the lint and auth checks: the codes
and severities of its table are the lint's, its records file example parses,
and its example error is the one given.
"""

from __future__ import annotations

import re
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.checks.lint import SEVERITIES
from twisted_netlab.mail.lab.checks.records import RecordsError, parse_records

DOCS = Path(__file__).resolve().parents[4] / "docs" / "checks.rst"


HEADINGS = {"auth": "Authentication check (``auth``)", "lint": "Lint (``lint``)"}


def section(name: str) -> str:
    """
    The text of the check's section: from its heading to the next heading
    of the same level.
    """
    text = DOCS.read_text(encoding="utf-8")
    heading = HEADINGS[name]
    start = text.index(f"{heading}\n{'-' * len(heading)}\n")
    following = re.search(r"\n[^\n]+\n-{3,}\n", text[start + 2 * len(heading) + 2 :])
    end = start + 2 * len(heading) + 2 + following.start() if following else len(text)
    return text[start:end]


class CheckDocsTests(SynchronousTestCase):
    def test_lint_codes(self) -> None:
        """
        The table lists every code, each with its severity, and no other.
        """
        rows = re.findall(
            r"^``([a-z-]+)``\s+(error|warning)\s", section("lint"), re.MULTILINE
        )
        self.assertEqual(dict(rows), SEVERITIES)
        self.assertEqual(len(rows), len(SEVERITIES))

    def test_records_example(self) -> None:
        """
        The records file example is a valid records file, with a record of
        every type it mentions.
        """
        text = section("auth")
        block = text[text.index("# comments (# or ;)") :]
        block = block[: block.index("\n\n")]
        records = parse_records("\n".join(line.strip() for line in block.splitlines()))
        self.assertEqual(records["example.org"], ("v=spf1 ip4:192.0.2.0/24 mx -all",))
        self.assertEqual(
            (
                len(records.a),
                len(records.aaaa),
                len(records.mx),
                len(records.ptr),
                len(records),
            ),
            (1, 1, 1, 1, 3),
        )

    def test_records_error_example(self) -> None:
        """
        The example error is the one a bad line gives.
        """
        match = re.search(r"``(lab\.records:4: .*?)``", section("auth"), re.DOTALL)
        assert match is not None
        shown = " ".join(match.group(1).split())
        with self.assertRaises(RecordsError) as raised:
            parse_records("#\n\n#\nexample.org TXT v=spf1 -all\n", "lab.records")
        self.assertEqual(str(raised.exception), shown)
