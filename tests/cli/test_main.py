"""
Tests for L{twisted_netlab.cli}: the C{netlab} command itself.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

import twisted_netlab
from twisted_netlab import cli


class MainTests(SynchronousTestCase):
    def run_main(self, *args: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", out)
        self.patch(sys, "stderr", err)
        e = self.assertRaises(SystemExit, cli.main, list(args))
        return (
            (e.code if isinstance(e.code, int) else 1),
            out.getvalue(),
            err.getvalue(),
        )

    def test_version(self) -> None:
        """
        C{netlab --version} prints the package and Twisted versions, exit 0.
        """
        code, out, _ = self.run_main("--version")
        self.assertEqual(code, 0)
        self.assertTrue(
            out.startswith(f"netlab {twisted_netlab.__version__} (Twisted ")
        )

    def test_no_command(self) -> None:
        """
        Without a command: a one-line error and a hint, exit status 2.
        """
        code, out, err = self.run_main()
        self.assertEqual(code, 2)
        self.assertEqual(out, "")
        self.assertTrue(err.startswith("netlab: no command given"))
        self.assertEqual(len(err.splitlines()), 2)

    def test_unknown_option(self) -> None:
        """
        An unknown option is a usage error, exit status 2, no traceback.
        """
        code, _, err = self.run_main("--frobnicate")
        self.assertEqual(code, 2)
        self.assertIn("frobnicate", err)
        self.assertNotIn("Traceback", err)

    def test_python_m(self) -> None:
        """
        C{python -m twisted_netlab} is the same command.
        """
        result = subprocess.run(
            [sys.executable, "-m", "twisted_netlab", "--version"],
            capture_output=True,
            text=True,
            check=False,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(twisted_netlab.__version__, result.stdout)

    def test_closed_stdout(self) -> None:
        """
        When the reader of the output has gone (C{netlab ... | head}), the
        command stops quietly: no traceback.
        """
        import os

        read_end, write_end = os.pipe()
        os.close(read_end)
        try:
            result = subprocess.run(
                [sys.executable, "-m", "twisted_netlab", "send", "--help"],
                stdout=write_end,
                stderr=subprocess.PIPE,
                text=True,
                check=False,
            )
        finally:
            os.close(write_end)
        self.assertNotIn("Traceback", result.stderr)
        self.assertEqual(result.stderr, "")
        self.assertEqual(result.returncode, 1)


class ReactorTests(SynchronousTestCase):
    def test_commands_get_write_through_reactor(self) -> None:
        """
        A subcommand's C{run} gets the reactor wrapped for the write-through
        transport, so that C{netlab send} and C{netlab fetch} connect with
        it.
        """
        import types

        from twisted.internet import reactor

        from twisted_netlab.transport import write_through_reactor

        seen: list[object] = []

        async def run(r: object, options: object) -> int:
            seen.append(r)
            return 0

        module = types.ModuleType("fake_netlab_command")
        module.run = run  # type: ignore[attr-defined]
        self.patch(sys, "modules", {**sys.modules, "fake_netlab_command": module})
        self.patch(cli, "COMMANDS", {"fake": ("fake_netlab_command", "")})
        coroutine = cli._run(reactor, "fake", None)  # type: ignore[arg-type]
        e = self.assertRaises(SystemExit, coroutine.send, None)
        self.assertEqual(e.code, 0)
        self.assertEqual(len(seen), 1)
        self.assertIsNot(seen[0], reactor)
        self.assertIs(write_through_reactor(seen[0]), seen[0])


def test_commands_run_on_netlab_reactor(tmp_path: Path) -> None:
    """
    A command runs on netlab's epoll reactor (under the write-through
    wrapper), and on Twisted's with C{NETLAB_LEAN_REACTOR=0}.
    """
    (tmp_path / "netlab_probe.py").write_text(
        "from twisted.python import usage\n"
        "class Options(usage.Options):\n"
        "    pass\n"
        "async def run(reactor, options):\n"
        "    print(type(reactor._reactor).__name__)\n"
        "    return 0\n"
    )
    code = (
        "import twisted_netlab.cli as c; "
        "c.COMMANDS['probe'] = ('netlab_probe', 'probe'); c.main(['probe'])"
    )
    for switch, expected in [("1", "NetlabEPollReactor"), ("0", "EPollReactor")]:
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            timeout=60,
            env={
                **os.environ,
                "PYTHONPATH": str(tmp_path),
                "NETLAB_LEAN_REACTOR": switch,
            },
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == expected
