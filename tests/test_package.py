"""
The package's top level: public names, and an import that costs little.
"""

from __future__ import annotations

import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

import twisted_netlab


class PackageTests(SynchronousTestCase):
    def test_public_names(self) -> None:
        """
        Every public name resolves to the object of its module.
        """
        from twisted_netlab.echo import EchoFactory
        from twisted_netlab.mail.send import send_message

        self.assertIs(twisted_netlab.EchoFactory, EchoFactory)
        self.assertIs(twisted_netlab.send_message, send_message)
        for name in twisted_netlab.__all__:
            self.assertTrue(hasattr(twisted_netlab, name), name)
        self.assertRaises(AttributeError, getattr, twisted_netlab, "nothing")

    def test_import_is_lazy(self) -> None:
        """
        C{import twisted_netlab} imports no protocol module and installs no
        reactor (the pytest plugin and every command import it).
        """
        code = (
            "import sys, twisted_netlab; "
            "print(sorted(m for m in sys.modules if m.startswith('twisted_netlab.')"
            " or m in ('twisted.internet.reactor', 'twisted.mail.smtp')))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        )
        self.assertEqual(result.stdout.strip(), "[]")

    def test_all_matches_lazy_table(self) -> None:
        """
        C{__all__} names exactly the lazily imported names and the version.
        """
        self.assertEqual(
            sorted(twisted_netlab.__all__),
            sorted([*twisted_netlab._PUBLIC, "__version__"]),
        )
