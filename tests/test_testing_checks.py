"""
Tests for the checks in L{twisted_netlab.testing}: the C{blocking_mail_lab}
fixture (a L{lab_in_thread} with the C{mail_lab_options}) in a test that
is not C{async}, and L{lab_in_thread}'s,
on messages sent by smtplib (a real client), one of them with a bare LF.
"""

from __future__ import annotations

import smtplib

import pytest

from twisted_netlab.mail.lab.checks.results import AuthResult, LintResult
from twisted_netlab.mail.lab.checks.runner import NoSuchMessage, UnknownCheck
from twisted_netlab.testing import ThreadedLab, lab_in_thread

CLEAN = (
    b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\n"
    b"Subject: clean\r\nDate: Mon, 07 Dec 2026 09:00:00 +0000\r\n"
    b"Message-ID: <clean-1@example.test>\r\nMIME-Version: 1.0\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n\r\nHello Bob\r\n"
)
BARE_LF = CLEAN.replace(b"Subject: clean", b"Subject: bare").replace(
    b"Hello Bob\r\n", b"Hello\nBob\r\n"
)


def send(port: int, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        smtp.sendmail("alice@example.test", ["bob@example.test"], raw)


def test_blocking_mail_lab(blocking_mail_lab: ThreadedLab) -> None:
    """
    In a plain (not C{async}) pytest test, smtplib sends in the test
    itself and C{blocking_mail_lab.check} returns the result: the clean
    message has no lint error, the one with a bare LF in its body has a
    C{bare-lf} error; the auth result has its parts.
    """
    lab = blocking_mail_lab
    send(lab.smtp_port, CLEAN)
    [clean] = lab.wait_for("subject:clean")
    lint = lab.check(clean.id, "lint")
    assert isinstance(lint, LintResult)
    assert lint.errors == []
    auth = lab.check(clean.id, "auth")
    assert isinstance(auth, AuthResult)
    assert auth.dkim == []
    assert auth.dmarc.result in {"none", "temperror"}

    send(lab.smtp_port, BARE_LF)
    [bare] = lab.wait_for("subject:bare")
    errors = lab.check(bare.id, "lint").errors
    assert [e.code for e in errors] == ["bare-lf"]
    assert errors[0].severity == "error"


def test_lab_in_thread() -> None:
    """
    L{lab_in_thread}'s C{check} blocks until the result is there; an
    unknown message or check is an exception of its own.
    """
    with lab_in_thread() as lab:
        send(lab.smtp_port, BARE_LF)
        [message] = lab.wait_for("subject:bare")
        assert lab.check(message.id, "lint").codes == ["bare-lf"]
        assert lab.check("latest", "lint").codes == ["bare-lf"]
        with pytest.raises(NoSuchMessage):
            lab.check("no-such-message", "lint")
        with pytest.raises(UnknownCheck):
            lab.check(message.id, "spelling")
