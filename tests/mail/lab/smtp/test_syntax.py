"""
Tests for L{twisted_netlab.mail.lab.smtp.syntax}: the MAIL and RCPT paths,
MAIL's parameters and BDAT's arguments.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.smtp.syntax import (
    BDAT_ARGUMENTS,
    MAIL_ARGUMENTS,
    RCPT_ARGUMENTS,
    UTF8Address,
    mail_parameters,
)


def refusal(options: bytes) -> int:
    """The code of the reply refusing MAIL's C{options} (limit 100 bytes)."""
    found = mail_parameters(options, 100)
    assert isinstance(found, tuple), found
    return found[0]


class SyntaxTests(SynchronousTestCase):
    def test_paths(self) -> None:
        """
        MAIL takes the null path and parameters; RCPT does not take the
        null path; both take UTF-8 addresses.
        """
        mail = MAIL_ARGUMENTS.match(b"FROM:<> SIZE=10 SMTPUTF8")
        assert mail is not None
        self.assertEqual((mail["path"], mail["opts"]), (b"<>", b"SIZE=10 SMTPUTF8"))
        self.assertIsNone(RCPT_ARGUMENTS.match(b"TO:<>"))
        rcpt = RCPT_ARGUMENTS.match("TO:<jürgen@exämple.test>".encode())
        assert rcpt is not None
        address = UTF8Address(rcpt["path"])
        self.assertEqual(address.local.decode(), "jürgen")
        self.assertEqual(address.domain.decode(), "exämple.test")

    def test_mail_parameters(self) -> None:
        """
        SIZE is checked against the limit, BODY takes 7BIT or 8BITMIME,
        SMTPUTF8 takes no value; anything else is refused with 555.
        """
        self.assertIs(mail_parameters(b"SIZE=100 BODY=8BITMIME", 100), False)
        self.assertIs(mail_parameters(b"smtputf8", 100), True)
        self.assertEqual(refusal(b"SIZE=101"), 552)
        self.assertEqual(refusal(b"SIZE=x"), 501)
        self.assertEqual(refusal(b"BODY=BINARYMIME"), 501)
        self.assertEqual(refusal(b"SMTPUTF8=yes"), 555)
        self.assertEqual(refusal(b"RET=FULL"), 555)

    def test_bdat(self) -> None:
        """
        BDAT takes a size and an optional LAST, nothing else.
        """
        match = BDAT_ARGUMENTS.match(b"12 last")
        assert match is not None
        self.assertEqual((match[1], match[2]), (b"12", b"last"))
        for bad in (b"", b"x", b"-1", b"12 LAST more", b"1234567890123"):
            self.assertIsNone(BDAT_ARGUMENTS.match(bad), bad)
