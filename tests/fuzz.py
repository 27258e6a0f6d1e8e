"""
The long run of the standing fuzz and model tests: C{python -m tests.fuzz
--minutes 10} runs the model check (L{tests.mail.lab.test_lab_model}) and
the parser fuzzers (L{tests.mail.lab.test_parser_fuzz},
L{tests.mail.lab.test_pop3_fuzz}) again and again with many more examples
than CI does, each round with new random data, until the time is up or
something fails (then the failing example is printed, and the exit status
is non-zero).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time

MODULES = [
    "tests/mail/lab/test_lab_model.py",
    "tests/mail/lab/test_parser_fuzz.py",
    "tests/mail/lab/test_pop3_fuzz.py",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--examples", type=int, default=1000, help="per round")
    options = parser.parse_args(argv)
    deadline = time.monotonic() + options.minutes * 60
    environment = {
        **os.environ,
        "NETLAB_FUZZ_EXAMPLES": str(options.examples),
        "NETLAB_MODEL_EXAMPLES": str(max(options.examples // 10, 1)),
    }
    environment.pop("CI", None)  # random data each round (CI derandomizes)
    modules = [m for m in MODULES if os.path.exists(m)]
    rounds = 0
    while time.monotonic() < deadline:
        rounds += 1
        done = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
             *modules],
            env=environment,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            print(f"fuzz: round {rounds} failed", file=sys.stderr)
            return 1
    print(f"fuzz: {rounds} rounds passed in {options.minutes:g} minutes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
