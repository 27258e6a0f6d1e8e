"""
The lint of a message as sent (twisted_netlab.mail.lab.checks.lint): a clean
message has no finding, and each defect, alone in an otherwise clean message,
gives exactly its code.
"""

from __future__ import annotations

import smtplib
import threading
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Any

import pytest_twisted
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.checks import lint as lint_module
from twisted_netlab.mail.lab.checks.context import Arrival, CheckContext, CheckError
from twisted_netlab.mail.lab.checks.lint import (
    SEVERITIES,
    address_problem,
    date_problem,
    lab_received_length,
    lint,
)
from twisted_netlab.testing import lab_in_thread

from .checktesting import LAB_RECEIVED, FakeReactor

HEADER = (
    b"From: Shop <shop@example.org>\r\n"
    b"To: bob@example.test\r\n"
    b"Subject: Your order\r\n"
    b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n"
    b"Message-ID: <order-1@example.org>\r\n"
    b"MIME-Version: 1.0\r\n"
)
PLAIN = (
    HEADER + b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n"
    b"\r\n"
    b"Thank you for your order, J\xc3\xbcrgen.\r\n"
)
ALTERNATIVE = (
    HEADER + b'Content-Type: multipart/alternative; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"\r\n"
    b"Hello\r\n"
    b"--b1\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"<p>H=C3=A9llo</p>\r\n"
    b"--b1--\r\n"
)
BULK = b"List-Id: Shop news <news.example.org>\r\n"
ONE_CLICK = (
    b"List-Unsubscribe: <https://example.org/u/1>, <mailto:u@example.org>\r\n"
    b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
)


def replaced(message: bytes, old: bytes, new: bytes) -> bytes:
    assert message.count(old) == 1, old
    return message.replace(old, new)


def header_added(message: bytes, line: bytes) -> bytes:
    return line + message


#: For each code, messages with that defect only.
DEFECTS: dict[str, list[bytes]] = {
    "bare-lf": [
        replaced(PLAIN, b"Subject: Your order\r\n", b"Subject: Your order\n"),
        replaced(PLAIN, b"order, J\xc3\xbcrgen.\r\n", b"order,\nJ\xc3\xbcrgen.\r\n"),
    ],
    "bare-cr": [replaced(PLAIN, b"order, J", b"order,\rJ")],
    "line-too-long": [PLAIN + b"x" * 999 + b"\r\n"],
    "header-syntax": [
        replaced(PLAIN, b"8bit\r\n\r\n", b"8bit\r\nOops\r\n\r\n"),
        b" folded: nothing\r\n" + PLAIN,
    ],
    "missing-from": [replaced(PLAIN, b"From: Shop <shop@example.org>\r\n", b"")],
    "missing-date": [replaced(PLAIN, b"Date: Mon, 1 Jan 2024 10:00:00 +0000\r\n", b"")],
    "missing-message-id": [
        replaced(PLAIN, b"Message-ID: <order-1@example.org>\r\n", b"")
    ],
    "duplicate-header": [
        header_added(PLAIN, b"Subject: Your other order\r\n"),
        header_added(PLAIN, b"Content-Type: text/plain; charset=utf-8\r\n"),
    ],
    "non-ascii-header": [
        replaced(PLAIN, b"Subject: Your order", b"Subject: Gr\xc3\xbc\xc3\x9fe"),
        replaced(
            ALTERNATIVE,
            b"Content-Type: text/html; charset=utf-8\r\n",
            b"Content-Type: text/html; charset=utf-8\r\n"
            b'Content-Disposition: inline; filename="caf\xc3\xa9.html"\r\n',
        ),
    ],
    "bad-date": [
        replaced(PLAIN, b"Mon, 1 Jan 2024 10:00:00 +0000", b"2024-01-01T10:00:00Z"),
        replaced(PLAIN, b"Mon, 1 Jan 2024", b"Tue, 1 Jan 2024"),
        replaced(PLAIN, b"10:00:00 +0000", b"10:00:00 +0075"),
    ],
    "bad-address": [
        replaced(PLAIN, b"To: bob@example.test", b"To: bob@"),
        replaced(PLAIN, b"To: bob@example.test", b"To: Bob <bob@example.test"),
        replaced(PLAIN, b"To: bob@example.test", b"To: bob"),
        replaced(PLAIN, b"To: bob@example.test", b"To:"),
        replaced(
            PLAIN,
            b"From: Shop <shop@example.org>",
            b"From: shop@example.org, ann@example.org",
        ),
    ],
    "bad-message-id": [
        replaced(PLAIN, b"<order-1@example.org>", b"order-1"),
        replaced(PLAIN, b"<order-1@example.org>", b"<order 1@example.org>"),
    ],
    "mime-boundary": [
        replaced(ALTERNATIVE, b'; boundary="b1"', b""),
        replaced(ALTERNATIVE, b"--b1--\r\n", b""),
        replaced(ALTERNATIVE, b'boundary="b1"', b'boundary="b2"'),
        replaced(ALTERNATIVE, b'boundary="b1"', b'boundary="' + b"b" * 71 + b'"')
        .replace(b"--b1--", b"--" + b"b" * 71 + b"--")
        .replace(b"--b1\r\n", b"--" + b"b" * 71 + b"\r\n"),
    ],
    "bad-transfer-encoding": [
        replaced(
            PLAIN,
            b"Content-Transfer-Encoding: 8bit",
            b"Content-Transfer-Encoding: 7bit",
        ),
        replaced(PLAIN, b"Content-Transfer-Encoding: 8bit\r\n", b""),
        replaced(
            PLAIN,
            b"Content-Transfer-Encoding: 8bit",
            b"Content-Transfer-Encoding: x-uue",
        ),
        replaced(ALTERNATIVE, b"<p>H=C3=A9llo</p>", b"<p>H=C3=Allo</p>"),
        replaced(ALTERNATIVE, b"<p>H=C3=A9llo</p>", b"<p>H\xc3\xa9llo</p>"),
        replaced(
            replaced(ALTERNATIVE, b"quoted-printable", b"base64"),
            b"<p>H=C3=A9llo</p>",
            b"PHA+SMOpbGxvPC9wPg",
        ),
        replaced(
            replaced(ALTERNATIVE, b"quoted-printable", b"base64"),
            b"<p>H=C3=A9llo</p>",
            b"PHA+SMOpbGxv$C9wPg==",
        ),
        replaced(
            ALTERNATIVE,
            b'boundary="b1"\r\n',
            b'boundary="b1"\r\nContent-Transfer-Encoding: base64\r\n',
        ),
    ],
    "charset-mismatch": [
        replaced(PLAIN, b"J\xc3\xbcrgen", b"J\xfcrgen"),
        replaced(PLAIN, b"charset=utf-8", b"charset=x-unknown"),
        replaced(PLAIN, b"charset=utf-8", b"charset=us-ascii"),
    ],
    "no-text-part": [
        replaced(PLAIN, b"text/plain", b"text/html"),
        replaced(
            ALTERNATIVE,
            b"Content-Type: text/plain; charset=us-ascii\r\n",
            b"Content-Type: text/plain; charset=us-ascii\r\n"
            b"Content-Disposition: attachment; filename=notes.txt\r\n",
        ),
    ],
    "list-unsubscribe-missing": [
        header_added(PLAIN, BULK),
        header_added(PLAIN, b"Precedence: bulk\r\n"),
    ],
    "list-unsubscribe-post-missing": [
        header_added(PLAIN, BULK + b"List-Unsubscribe: <https://example.org/u/1>\r\n"),
        header_added(
            PLAIN,
            BULK
            + b"List-Unsubscribe: <mailto:u@example.org>\r\n"
            + b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        ),
        header_added(
            PLAIN,
            b"Precedence: list\r\n"
            b"List-Unsubscribe: <https://example.org/u/1>\r\n"
            b"List-Unsubscribe-Post: yes\r\n",
        ),
    ],
}


def codes(raw: bytes, arrival: Arrival | None = None) -> set[str]:
    return {f["Code"] for f in lint(raw, arrival)["Findings"]}


def composed(**overrides: Any) -> bytes:
    """
    A message as an application composes it with the stdlib's email
    package: text and HTML alternatives, an attachment, non-ASCII text in
    headers and bodies, a long line, CRLF throughout (policy SMTP).
    """
    message = EmailMessage(policy=policy.SMTP)
    message["From"] = "Jürgen's Shop <shop@example.org>"
    message["To"] = "bob@example.test, Ann Example <ann@example.test>"
    message["Subject"] = "Grüße: your order has shipped \N{EN DASH} " * 4
    message["Date"] = formatdate(localtime=True)
    message["Message-ID"] = make_msgid(domain="example.org")
    for name, value in overrides.items():
        message[name.replace("_", "-")] = value
    message.set_content("Hallo Jürgen,\n\n" + "your parcel is on its way. " * 60 + "\n")
    message.add_alternative(
        "<html><body><p>Hallo J&uuml;rgen, <b>your parcel</b></p></body></html>\n",
        subtype="html",
    )
    message.add_attachment(
        bytes(range(256)) * 40,
        maintype="application",
        subtype="pdf",
        filename="Rechnung März.pdf",
    )
    message.add_attachment("a;b\nc;d\n", subtype="csv", filename="items.csv")
    return message.as_bytes()


class CleanTests(SynchronousTestCase):
    """
    Messages without defects have no findings.
    """

    def test_composed_by_the_email_package(self) -> None:
        """
        A message composed with the stdlib's email package (policy SMTP:
        CRLF, encoded words, quoted-printable and base64 where needed), with
        the lab's Received: line before it, has 0 errors and 0 warnings.
        """
        raw = LAB_RECEIVED + composed()
        self.assertEqual(lint(raw), {"Errors": 0, "Warnings": 0, "Findings": []})

    def test_bulk_with_one_click_unsubscribe(self) -> None:
        """
        Bulk mail with List-Unsubscribe (an https URI) and
        List-Unsubscribe-Post: List-Unsubscribe=One-Click has no finding.
        """
        raw = composed(
            List_Id="Shop news <news.example.org>",
            List_Unsubscribe="<https://example.org/u/1>",
            List_Unsubscribe_Post="List-Unsubscribe=One-Click",
        )
        self.assertEqual(codes(raw), set())
        self.assertEqual(codes(header_added(PLAIN, BULK + ONE_CLICK)), set())

    def test_bases(self) -> None:
        """
        The hand-written messages the defects are made from are clean.
        """
        self.assertEqual(codes(PLAIN), set())
        self.assertEqual(codes(ALTERNATIVE), set())

    def test_smtputf8(self) -> None:
        """
        UTF-8 in header fields is allowed when the envelope was SMTPUTF8
        (RFC 6532), local parts included; bytes that are not UTF-8 are not.
        """
        raw = replaced(PLAIN, b"Subject: Your order", b"Subject: Gr\xc3\xbc\xc3\x9fe")
        raw = replaced(raw, b"To: bob@example.test", b"To: J\xc3\xbcrgen@example.test")
        self.assertEqual(codes(raw, Arrival(smtputf8=True)), set())
        self.assertEqual(codes(raw), {"non-ascii-header", "bad-address"})
        latin1 = replaced(PLAIN, b"Subject: Your order", b"Subject: Gr\xfc\xdfe")
        self.assertEqual(codes(latin1, Arrival(smtputf8=True)), {"non-ascii-header"})

    def test_obsolete_but_readable(self) -> None:
        """
        The obsolete forms of RFC 5322 section 4 that receivers must read
        (a GMT zone, a two-digit year, no weekday, comments) are no defect.
        """
        for date in (
            "Mon, 01 Jan 2024 10:00:00 GMT",
            "1 Jan 24 10:00 +0000",
            "Mon, 1 Jan 2024 10:00:00 +0000 (UTC)",
            formatdate(),
            formatdate(usegmt=True),
        ):
            self.assertIsNone(date_problem(date), date)
        self.assertIsNone(address_problem("To", "a@example.org, , b@example.org"))
        self.assertIsNone(address_problem("To", "undisclosed-recipients:;"))
        self.assertIsNone(address_problem("Bcc", ""))


class DefectTests(SynchronousTestCase):
    """
    Each code, from a message with that defect only.
    """

    def assert_only(self, code: str) -> None:
        for raw in DEFECTS[code]:
            answer = lint(raw)
            self.assertEqual({f["Code"] for f in answer["Findings"]}, {code}, raw[:300])
            for finding in answer["Findings"]:
                self.assertEqual(finding["Severity"], SEVERITIES[code])
                self.assertTrue(finding["Message"] and finding["Where"])
            severity = SEVERITIES[code]
            self.assertEqual(
                (answer["Errors"], answer["Warnings"]),
                (len(answer["Findings"]), 0)
                if severity == "error"
                else (0, len(answer["Findings"])),
            )

    def test_every_code_has_a_defect(self) -> None:
        """
        Every code the lint knows is exercised here, and has a test.
        """
        self.assertEqual(set(DEFECTS), set(SEVERITIES))
        for code in SEVERITIES:
            self.assertTrue(hasattr(self, "test_" + code.replace("-", "_")), code)

    def test_bare_lf(self) -> None:
        """
        A line that ends in LF alone, in the header or in the body.
        """
        self.assert_only("bare-lf")

    def test_bare_cr(self) -> None:
        """
        A CR that is not followed by LF.
        """
        self.assert_only("bare-cr")

    def test_line_too_long(self) -> None:
        """
        A line of 999 octets (998 is the limit).
        """
        self.assert_only("line-too-long")
        self.assertEqual(codes(PLAIN + b"x" * 998 + b"\r\n"), set())

    def test_header_syntax(self) -> None:
        """
        A line in the header that is no field, and a message that starts
        with a folded line.
        """
        self.assert_only("header-syntax")

    def test_missing_from(self) -> None:
        """
        No From: field.
        """
        self.assert_only("missing-from")

    def test_missing_date(self) -> None:
        """
        No Date: field.
        """
        self.assert_only("missing-date")

    def test_missing_message_id(self) -> None:
        """
        No Message-ID: field.
        """
        self.assert_only("missing-message-id")

    def test_duplicate_header(self) -> None:
        """
        Two Subject: fields; two Content-Type: fields.
        """
        self.assert_only("duplicate-header")

    def test_non_ascii_header(self) -> None:
        """
        Raw UTF-8 in a header field, or in a MIME part's header, without
        SMTPUTF8.
        """
        self.assert_only("non-ascii-header")

    def test_bad_date(self) -> None:
        """
        An ISO 8601 date, a weekday that is not the date's, a zone with 75
        minutes.
        """
        self.assert_only("bad-date")

    def test_bad_address(self) -> None:
        """
        An address without a domain, an unclosed angle bracket, a bare
        word, an empty To:, several From: addresses without a Sender:.
        """
        self.assert_only("bad-address")

    def test_bad_message_id(self) -> None:
        """
        A Message-ID without angle brackets and @, and one with a space.
        """
        self.assert_only("bad-message-id")

    def test_mime_boundary(self) -> None:
        """
        A multipart without a boundary parameter, without its closing
        delimiter, whose boundary starts no line, whose boundary is over 70
        characters.
        """
        self.assert_only("mime-boundary")

    def test_bad_transfer_encoding(self) -> None:
        """
        8-bit bytes under 7bit (declared, or by default), an unknown
        encoding, broken quoted-printable, 8-bit bytes under
        quoted-printable, base64 that is cut short or has a stray
        character, a multipart that says base64.
        """
        self.assert_only("bad-transfer-encoding")

    def test_charset_mismatch(self) -> None:
        """
        Latin-1 bytes in a part that says UTF-8; an unknown charset; UTF-8
        bytes in a part that says US-ASCII.
        """
        self.assert_only("charset-mismatch")

    def test_no_text_part(self) -> None:
        """
        An HTML-only message, and one whose only text/plain is an
        attachment: a warning.
        """
        self.assert_only("no-text-part")

    def test_list_unsubscribe_missing(self) -> None:
        """
        Bulk mail (List-Id, or Precedence: bulk) without List-Unsubscribe:
        a warning.
        """
        self.assert_only("list-unsubscribe-missing")

    def test_list_unsubscribe_post_missing(self) -> None:
        """
        Bulk mail with List-Unsubscribe but no one-click unsubscribe: no
        List-Unsubscribe-Post, no https URI, or a wrong Post value.
        """
        self.assert_only("list-unsubscribe-post-missing")


class WhereTests(SynchronousTestCase):
    """
    Findings say where the defect is, in lines of the message as sent.
    """

    def finding(self, raw: bytes) -> dict[str, str]:
        [finding] = lint(raw)["Findings"]
        return finding

    def test_lines_count_from_the_message_as_sent(self) -> None:
        """
        The lab's Received: line is not counted: line 3 is the Subject.
        """
        raw = LAB_RECEIVED + replaced(PLAIN, b"Your order\r\n", b"Your order\n")
        self.assertEqual(self.finding(raw)["Where"], "header, line 3")

    def test_many_lines(self) -> None:
        """
        One finding per section, with the first line and how many more.
        """
        raw = PLAIN + b"a\nb\nc\r\n"
        self.assertEqual(self.finding(raw)["Where"], "body, line 11 (and 1 more)")
        self.assertIn("2 lines of the body", self.finding(raw)["Message"])

    def test_header_field(self) -> None:
        """
        A header field's finding names the field and its line.
        """
        raw = replaced(PLAIN, b"To: bob@example.test", b"To: bob@")
        self.assertEqual(self.finding(raw)["Where"], "header To, line 2")
        raw = header_added(PLAIN, b"Subject: again\r\n")
        self.assertEqual(self.finding(raw)["Where"], "header Subject, lines 1, 4")

    def test_part(self) -> None:
        """
        A MIME part's finding names its part number and type.
        """
        raw = replaced(ALTERNATIVE, b"<p>H=C3=A9llo</p>", b"<p>H=C3=Allo</p>")
        self.assertEqual(self.finding(raw)["Where"], "part 2 (text/html)")

    def test_weekday(self) -> None:
        """
        A wrong weekday is named with the right one.
        """
        self.assertIn(
            "1 Jan 2024 is a Mon, not a Tue",
            date_problem("Tue, 1 Jan 2024 10:00:00 +0000") or "",
        )


class LabReceivedTests(SynchronousTestCase):
    """
    Only the lab's own Received: line is skipped.
    """

    def test_lab_line(self) -> None:
        """
        The lab's line, folded over three lines, is measured to its CRLF.
        """
        self.assertEqual(lab_received_length(LAB_RECEIVED + PLAIN), len(LAB_RECEIVED))
        self.assertEqual(lab_received_length(PLAIN), 0)

    def test_other_received_lines_are_linted(self) -> None:
        """
        A Received: line the sender wrote, even one that looks like the
        lab's but is not first, is part of the message as sent.
        """
        theirs = b"Received: from a by b; Mon, 1 Jan 2024 10:00:00 +0000\n"
        self.assertEqual(lab_received_length(theirs + PLAIN), 0)
        self.assertEqual(codes(theirs + PLAIN), {"bare-lf"})
        self.assertEqual(codes(LAB_RECEIVED + theirs + PLAIN), {"bare-lf"})
        self.assertEqual(
            codes(theirs.replace(b"\n", b"\r\n") + LAB_RECEIVED + PLAIN), set()
        )


class CheckTests(SynchronousTestCase):
    """
    The check's entry point: the answer through the reactor's thread pool.
    """

    def test_answer(self) -> None:
        """
        check() gives lint()'s answer, with the Arrival's SMTPUTF8 used.
        """
        raw = replaced(PLAIN, b"Subject: Your order", b"Subject: Gr\xc3\xbc\xc3\x9fe")
        answer = self.successResultOf(
            lint_module.check(raw, CheckContext(FakeReactor(), Arrival(smtputf8=True)))
        )
        self.assertEqual(answer, {"Errors": 0, "Warnings": 0, "Findings": []})
        answer = self.successResultOf(
            lint_module.check(raw, CheckContext(FakeReactor()))
        )
        self.assertEqual(answer["Errors"], 1)

    def test_bug_is_a_check_error(self) -> None:
        """
        A crash of the lint fails the Deferred with a one-line CheckError
        that names the check.
        """
        self.patch(lint_module, "findings", lambda raw, arrival: 1 / 0)
        failure = self.failureResultOf(
            lint_module.check(PLAIN, CheckContext(FakeReactor())), CheckError
        )
        self.assertEqual(
            str(failure.value),
            "the lint check failed on this message: ZeroDivisionError: "
            "division by zero",
        )


@pytest_twisted.ensureDeferred
async def test_runs_in_a_thread() -> None:
    """
    On the real reactor, the lint runs in a thread of its pool, not in the
    reactor's thread, and answers as lint() does.
    """
    from twisted.internet import reactor

    threads: list[threading.Thread] = []
    original = lint_module.findings

    def spy(raw: bytes, arrival: Arrival) -> Any:
        threads.append(threading.current_thread())
        return original(raw, arrival)

    lint_module.findings = spy
    try:
        answer = await lint_module.check(DEFECTS["bare-cr"][0], CheckContext(reactor))
    finally:
        lint_module.findings = original
    assert [f["Code"] for f in answer["Findings"]] == ["bare-cr"]
    assert threads and threads[0] is not threading.main_thread()


class ThroughTheLabTests(SynchronousTestCase):
    """
    A message sent to a running lab with smtplib, linted as the lab stored
    it (its own Received: line first).
    """

    def test_clean_through_smtp(self) -> None:
        """
        The stdlib-composed message, sent with smtplib and read back from
        the store, has no finding; one with a bare LF in its header (sent
        with smtplib's sendmail, which passes bytes through) is found.
        """
        with lab_in_thread() as lab:
            with smtplib.SMTP("127.0.0.1", lab.smtp_port, timeout=30) as client:
                client.sendmail("shop@example.org", ["bob@example.test"], composed())
                client.sendmail(
                    "shop@example.org",
                    ["alice@example.test"],
                    replaced(
                        PLAIN, b"Subject: Your order\r\n", b"Subject: Your order\n"
                    ),
                )
            [clean] = lab.messages("bob@example.test")
            [broken] = lab.messages("alice@example.test")
        self.assertGreater(lab_received_length(clean), 0)
        self.assertEqual(lint(clean), {"Errors": 0, "Warnings": 0, "Findings": []})
        [finding] = lint(broken)["Findings"]
        self.assertEqual(
            (finding["Code"], finding["Where"]), ("bare-lf", "header, line 3")
        )
