"""
Tests for L{twisted_netlab.mail.lab.smtp.replies}: the enhanced status code
on every line of a reply.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.smtp.replies import with_enhanced_code


class EnhancedCodeTests(SynchronousTestCase):
    def test_given_code_kept(self) -> None:
        """
        A reply that starts with its own code keeps it, on every line.
        """
        self.assertEqual(
            with_enhanced_code(550, [b"5.7.1 Relaying denied", b"second"]),
            [b"5.7.1 Relaying denied", b"5.7.1 second"],
        )

    def test_code_for_the_reply(self) -> None:
        """
        Otherwise the code comes from Twisted's wording, else from the
        reply code (X.0.0 for one without its own), and an empty line is
        the code alone.
        """
        self.assertEqual(
            with_enhanced_code(250, [b"Recipient address accepted"]),
            [b"2.1.5 Recipient address accepted"],
        )
        self.assertEqual(with_enhanced_code(354, [b""]), [b"3.0.0"])
        self.assertEqual(with_enhanced_code(535, [b"no"]), [b"5.7.8 no"])
        self.assertEqual(with_enhanced_code(459, [b"x", b""]), [b"4.0.0 x", b"4.0.0"])
