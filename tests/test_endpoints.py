"""
Tests for L{twisted_netlab.endpoints} and the plugin option base classes in
L{twisted_netlab.tap}.
"""

from __future__ import annotations

import io
import sys

from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import Factory
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.endpoints import ListeningService, StartupError
from twisted_netlab.tap import echo


class FailingEndpoint:
    def listen(self, factory: Factory) -> defer.Deferred[None]:
        return defer.fail(
            CannotListenError("127.0.0.1", 7071, OSError(98, "Address in use"))
        )


class ListeningServiceTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.addCleanup(setattr, sys, "excepthook", sys.excepthook)

    def test_listen_failure_is_one_line(self) -> None:
        """
        A port that cannot be bound raises L{StartupError} naming the program
        and the endpoint, in one line, from C{privilegedStartService}.
        """
        service = ListeningService(
            "netlab-echo",
            "tcp:7071",
            FailingEndpoint(),  # type: ignore[arg-type]
            Factory(),
        )
        e = self.assertRaises(StartupError, service.privilegedStartService)
        self.assertTrue(str(e).startswith("netlab-echo: cannot listen on 'tcp:7071': "))
        self.assertIn("Address in use", str(e))
        self.assertNotIn("\n", str(e))

    def test_uncaught_startup_error_prints_one_line(self) -> None:
        """
        Left uncaught (as twistd leaves it), the error is printed as one line
        by the interpreter's excepthook, without a traceback; other exceptions
        still go to the previous hook.
        """
        seen: list[object] = []
        sys.excepthook = lambda *a: seen.append(a[1])
        service = ListeningService(
            "netlab-echo",
            "tcp:7071",
            FailingEndpoint(),  # type: ignore[arg-type]
            Factory(),
        )
        e = self.assertRaises(StartupError, service.privilegedStartService)
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        sys.excepthook(StartupError, e, None)
        self.assertEqual(stderr.getvalue(), f"{e}\n")
        other = ValueError("x")
        sys.excepthook(ValueError, other, None)
        self.assertEqual(seen, [other])


class PluginOptionsTests(SynchronousTestCase):
    def test_standalone_raises(self) -> None:
        """
        Parsed on their own, plugin options raise L{usage.UsageError}.
        """
        self.assertRaises(usage.UsageError, echo.Options().parseOptions, ["--bogus"])

    def test_under_twistd_one_line(self) -> None:
        """
        Under twistd (a parent is set), a usage error prints one line and a
        hint on standard error and exits with status 1, instead of twistd's
        whole usage text.
        """
        options = echo.Options()
        options.parent = usage.Options()
        options.parent.subCommand = "netlab-echo"
        stderr = io.StringIO()
        self.patch(sys, "stderr", stderr)
        e = self.assertRaises(
            SystemExit, options.parseOptions, ["--max-connections", "0"]
        )
        self.assertEqual(e.code, 1)
        self.assertEqual(
            stderr.getvalue(),
            "twistd netlab-echo: --max-connections must be at least 1, not 0\n"
            "Try 'twistd netlab-echo --help'.\n",
        )
