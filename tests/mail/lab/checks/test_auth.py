"""
The authentication check (twisted_netlab.mail.lab.checks.auth): messages
signed with dkimpy (DKIM and ARC, keys made here) verify, and say exactly
why not once tampered with; SPF and DMARC from records files pass and fail;
the lab's own Received: line breaks no signature.
"""

from __future__ import annotations

import base64
import functools
import smtplib
import tempfile
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any

import dkim  # type: ignore[import-untyped]
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.checks import auth
from twisted_netlab.mail.lab.checks.auth import authenticate, verify_arc, verify_dkim
from twisted_netlab.mail.lab.checks.context import (
    Arrival,
    CheckContext,
    CheckError,
    CheckSettings,
)
from twisted_netlab.mail.lab.checks.records import (
    DNSTemporaryError,
    RecordsSource,
    load_records,
    parse_records,
)
from twisted_netlab.testing import lab_in_thread

from .checktesting import LAB_RECEIVED, FakeReactor

SIGNED = [b"from", b"to", b"subject", b"date", b"message-id"]


@functools.cache
def key(name: str) -> tuple[bytes, str]:
    """
    A 2048-bit RSA key: the PEM private key, and the p= of its DNS record.
    """
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return pem, base64.b64encode(public).decode("ascii")


def key_record(
    name: str = "first", selector: str = "sel1", domain: str = "example.org"
) -> str:
    public = key(name)[1]
    # split in two strings, as long keys are published
    return (
        f'{selector}._domainkey.{domain} TXT "v=DKIM1; k=rsa; " '
        f'"p={public[:100]}" "{public[100:]}"\n'
    )


def message(sender: str = "Shop <shop@example.org>") -> bytes:
    composed = EmailMessage(policy=policy.SMTP)
    composed["From"] = sender
    composed["To"] = "bob@example.test"
    composed["Subject"] = "Your order has shipped"
    composed["Date"] = formatdate()
    composed["Message-ID"] = make_msgid(domain="example.org")
    composed.set_content("Your parcel is on its way.\n")
    composed.add_alternative("<p>Your parcel is on its way.</p>\n", subtype="html")
    return composed.as_bytes()


def signed(
    raw: bytes | None = None,
    domain: str = "example.org",
    selector: str = "sel1",
    name: str = "first",
) -> bytes:
    raw = message() if raw is None else raw
    signature = dkim.sign(
        raw,
        selector.encode(),
        domain.encode(),
        key(name)[0],
        include_headers=SIGNED,
    )
    return signature + raw


def source(text: str) -> RecordsSource:
    return RecordsSource(parse_records(text))


class DKIMTests(SynchronousTestCase):
    """
    DKIM signatures made by dkimpy, verified signature by signature.
    """

    def only(self, raw: bytes, records: str) -> dict[str, Any]:
        [result] = verify_dkim(raw, source(records))
        return result

    def test_pass_with_the_lab_received_line(self) -> None:
        """
        A signed message, with the lab's Received: line before it, passes;
        the reason names the algorithm, the key and the signed fields.
        """
        result = self.only(LAB_RECEIVED + signed(), key_record())
        self.assertEqual(
            result,
            {
                "Domain": "example.org",
                "Selector": "sel1",
                "Result": "pass",
                "Reason": "signature verified (rsa-sha256, 2048-bit key at "
                "sel1._domainkey.example.org; signed: "
                "from:to:subject:date:message-id)",
            },
        )

    def test_body_length(self) -> None:
        """
        A signature with l= passes with more body appended, and the reason
        warns that it covers only part of the body.
        """
        raw = message()
        signature = dkim.sign(
            raw,
            b"sel1",
            b"example.org",
            key("first")[0],
            include_headers=SIGNED,
            length=True,
        )
        result = self.only(signature + raw + b"appended\r\n", key_record())
        self.assertEqual(result["Result"], "pass")
        self.assertRegex(
            result["Reason"],
            r"; l= signs only the first \d+ bytes of the body: anything can be "
            r"appended$",
        )

    def test_body_tampered(self) -> None:
        """
        A body changed after signing fails with a body hash mismatch.
        """
        raw = signed().replace(b"on its way", b"lost")
        result = self.only(raw, key_record())
        self.assertEqual(result["Result"], "fail")
        self.assertTrue(
            result["Reason"].startswith(
                "body hash mismatch: the body changed after it was signed (bh="
            ),
            result["Reason"],
        )

    def test_header_tampered(self) -> None:
        """
        A signed header field changed after signing fails, and the reason
        lists the signed fields.
        """
        raw = signed().replace(b"Subject: Your order has shipped", b"Subject: Refund")
        result = self.only(raw, key_record())
        self.assertEqual(
            (result["Result"], result["Reason"]),
            (
                "fail",
                "the signature does not verify: a signed header field "
                "(h=from:to:subject:date:message-id) changed after signing, or "
                "the key at sel1._domainkey.example.org is not the one it was "
                "signed with",
            ),
        )

    def test_unsigned_field_added(self) -> None:
        """
        A field that the signature does not cover may be added (as the lab
        adds its Received: line).
        """
        raw = b"X-Mailer: something\r\n" + signed()
        self.assertEqual(self.only(raw, key_record())["Result"], "pass")

    def test_other_key(self) -> None:
        """
        A key that is not the signer's fails.
        """
        self.assertEqual(self.only(signed(), key_record("second"))["Result"], "fail")

    def test_no_key(self) -> None:
        """
        No TXT record at the selector's name: permerror, naming it.
        """
        result = self.only(signed(), "")
        self.assertEqual(
            (result["Result"], result["Reason"]),
            ("permerror", "no key: sel1._domainkey.example.org has no TXT record"),
        )

    def test_key_revoked(self) -> None:
        """
        An empty p= is a revoked key (RFC 6376 3.6.1).
        """
        result = self.only(signed(), 'sel1._domainkey.example.org TXT "v=DKIM1; p="')
        self.assertEqual(
            (result["Result"], result["Reason"]),
            (
                "permerror",
                "key revoked: sel1._domainkey.example.org has an empty p= "
                "(RFC 6376 3.6.1)",
            ),
        )

    def test_bad_key(self) -> None:
        """
        A key record that is not a key: permerror with dkimpy's reason.
        """
        result = self.only(
            signed(), 'sel1._domainkey.example.org TXT "v=DKIM1; p=AAAA"'
        )
        self.assertEqual(result["Result"], "permerror")
        self.assertIn(
            "the key at sel1._domainkey.example.org is not usable", result["Reason"]
        )

    def test_dns_failure(self) -> None:
        """
        A DNS failure is temperror.
        """

        class Failing(RecordsSource):
            def txt(self, name: str) -> list[str]:
                raise DNSTemporaryError(f"TXT {name}: timed out")

        [result] = verify_dkim(signed(), Failing({}))
        self.assertEqual(
            (result["Result"], result["Reason"]),
            (
                "temperror",
                "DNS failed for the key at sel1._domainkey.example.org: TXT "
                "sel1._domainkey.example.org: timed out",
            ),
        )

    def test_broken_signature(self) -> None:
        """
        A DKIM-Signature without its b= is permerror, saying what is
        missing.
        """
        raw = (
            b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org; s=sel1; "
            b"h=from; bh=AAAA\r\n" + message()
        )
        result = self.only(raw, key_record())
        self.assertEqual(
            (result["Domain"], result["Selector"], result["Result"]),
            ("example.org", "sel1", "permerror"),
        )
        self.assertEqual(result["Reason"], "the signature is not valid: missing b=")

    def test_several_signatures(self) -> None:
        """
        Each signature has its entry, topmost first: the sender's and an
        ESP's.
        """
        raw = signed(signed(), domain="esp.example", selector="s2", name="second")
        results = verify_dkim(
            raw, source(key_record() + key_record("second", "s2", "esp.example"))
        )
        self.assertEqual(
            [(r["Domain"], r["Result"]) for r in results],
            [("esp.example", "pass"), ("example.org", "pass")],
        )

    def test_unsigned(self) -> None:
        """
        No DKIM-Signature: no entry.
        """
        self.assertEqual(verify_dkim(message(), source("")), [])


class ARCTests(SynchronousTestCase):
    """
    ARC sets made by dkimpy's arc_sign, as a forwarder adds them.
    """

    def sealed(self) -> bytes:
        raw = (
            b"Authentication-Results: forwarder.example; arc=none; "
            b"dkim=pass header.d=example.org\r\n" + signed()
        )
        seal = dkim.arc_sign(
            raw, b"arc1", b"forwarder.example", key("second")[0], b"forwarder.example"
        )
        return b"".join(seal) + raw

    def records(self) -> RecordsSource:
        return source(key_record() + key_record("second", "arc1", "forwarder.example"))

    def test_pass(self) -> None:
        """
        A sealed message (with the lab's Received: line on top) passes, with
        its set described.
        """
        arc = verify_arc(LAB_RECEIVED + self.sealed(), self.records())
        assert arc is not None
        self.assertEqual((arc["Result"], arc["Reason"]), ("pass", "success"))
        [chain] = arc["Sets"]
        self.assertEqual(
            {k: v for k, v in chain.items() if k != "AuthenticationResults"},
            {
                "Instance": 1,
                "Domain": "forwarder.example",
                "Selector": "arc1",
                "MessageSignature": "pass",
                "Seal": "pass",
                "ChainValidation": "none",
            },
        )

    def test_body_tampered(self) -> None:
        """
        A body changed after sealing fails the message signature, and the
        reason says so.
        """
        raw = self.sealed().replace(b"on its way", b"lost")
        arc = verify_arc(raw, self.records())
        assert arc is not None
        self.assertEqual(arc["Result"], "fail")
        self.assertIn("body hash mismatch", arc["Reason"])

    def test_no_key(self) -> None:
        """
        Without the sealer's key, the chain fails, saying which key.
        """
        arc = verify_arc(self.sealed(), source(key_record()))
        assert arc is not None
        self.assertEqual(arc["Result"], "fail")
        self.assertIn("arc1._domainkey.forwarder.example", arc["Reason"])

    def test_absent(self) -> None:
        """
        A message without ARC has none (null in the answer).
        """
        self.assertIsNone(verify_arc(signed(), self.records()))


RECORDS = (
    key_record()
    + """\
example.org          TXT "v=spf1 ip4:192.0.2.0/24 mx -all"
example.org          MX  10 mx.example.org
mx.example.org       A   198.51.100.25
_dmarc.example.org   TXT "v=DMARC1; p=reject"
"""
)
ARRIVAL = Arrival(
    mail_from="bounces@example.org",
    rcpt_to=("bob@example.test",),
    client_ip="192.0.2.10",
    helo="mta.example.org",
)


class AuthenticateTests(SynchronousTestCase):
    """
    The whole answer: DKIM, SPF, DMARC and ARC together.
    """

    def test_all_pass(self) -> None:
        """
        A signed message from an allowed address: everything passes, DMARC
        aligned both ways.
        """
        answer = authenticate(LAB_RECEIVED + signed(), ARRIVAL, source(RECORDS))
        self.assertEqual(set(answer), {"DKIM", "SPF", "DMARC", "ARC"})
        self.assertEqual([d["Result"] for d in answer["DKIM"]], ["pass"])
        self.assertEqual(
            (answer["SPF"]["Result"], answer["SPF"]["Domain"]), ("pass", "example.org")
        )
        self.assertEqual(
            (answer["DMARC"]["Result"], answer["DMARC"]["Policy"]), ("pass", "reject")
        )
        self.assertTrue(answer["DMARC"]["Alignment"]["DKIM"]["Aligned"])
        self.assertTrue(answer["DMARC"]["Alignment"]["SPF"]["Aligned"])
        self.assertIsNone(answer["ARC"])

    def test_spf_fail_dmarc_pass_by_dkim(self) -> None:
        """
        From an address the SPF record does not allow, SPF fails but the
        aligned DKIM signature carries DMARC.
        """
        arrival = Arrival(mail_from="bounces@example.org", client_ip="203.0.113.9")
        answer = authenticate(signed(), arrival, source(RECORDS))
        self.assertEqual(answer["SPF"]["Result"], "fail")
        self.assertEqual(answer["DMARC"]["Result"], "pass")

    def test_dmarc_fail(self) -> None:
        """
        Unsigned, from an address SPF does not allow: DMARC fails with
        p=reject, saying why.
        """
        arrival = Arrival(mail_from="bounces@example.org", client_ip="203.0.113.9")
        answer = authenticate(message(), arrival, source(RECORDS))
        self.assertEqual(answer["DKIM"], [])
        self.assertEqual(
            (answer["DMARC"]["Result"], answer["DMARC"]["Reason"]),
            (
                "fail",
                "no DKIM signature passed; SPF is fail for example.org: the "
                "policy is p=reject",
            ),
        )

    def test_signed_by_another_domain(self) -> None:
        """
        A pass for an ESP's domain does not align with the From domain.
        """
        records = source(RECORDS + key_record("second", "s2", "esp.example"))
        raw = signed(domain="esp.example", selector="s2", name="second")
        arrival = Arrival(mail_from="bounce@esp.example", client_ip="203.0.113.9")
        answer = authenticate(raw, arrival, records)
        self.assertEqual(answer["DKIM"][0]["Result"], "pass")
        self.assertEqual(answer["DMARC"]["Result"], "fail")
        self.assertIn(
            "DKIM passed for esp.example but not aligned", answer["DMARC"]["Reason"]
        )

    def test_no_envelope(self) -> None:
        """
        A message with no known envelope (dropped into the Maildir): SPF
        none, DMARC on DKIM alone.
        """
        answer = authenticate(signed(), Arrival(), source(RECORDS))
        self.assertEqual(answer["SPF"]["Result"], "none")
        self.assertEqual(answer["DMARC"]["Result"], "pass")


class CheckTests(SynchronousTestCase):
    """
    The check's entry point, with the lab's settings.
    """

    def test_records_file(self) -> None:
        """
        check() answers from the records file in the settings, through the
        reactor's thread pool.
        """
        with tempfile.TemporaryDirectory() as scratch:
            path = Path(scratch) / "lab.records"
            path.write_text(RECORDS)
            settings = CheckSettings(dns_records=load_records(path))
        context = CheckContext(FakeReactor(), ARRIVAL, settings)
        answer = self.successResultOf(auth.check(signed(), context))
        self.assertEqual(
            (
                answer["DKIM"][0]["Result"],
                answer["SPF"]["Result"],
                answer["DMARC"]["Result"],
            ),
            ("pass", "pass", "pass"),
        )

    def test_bug_is_a_check_error(self) -> None:
        """
        A crash fails the Deferred with a one-line CheckError.
        """
        self.patch(auth, "verify_dkim", lambda raw, dns: 1 / 0)
        context = CheckContext(FakeReactor(), settings=CheckSettings(dns_records={}))
        failure = self.failureResultOf(auth.check(signed(), context), CheckError)
        self.assertEqual(
            str(failure.value),
            "the auth check failed on this message: ZeroDivisionError: "
            "division by zero",
        )


class ThroughTheLabTests(SynchronousTestCase):
    """
    A dkimpy-signed message sent to a running lab with smtplib.
    """

    def test_signed_through_smtp(self) -> None:
        """
        The stored copy (the lab's Received: line first) verifies: DKIM pass,
        SPF pass for 127.0.0.1, DMARC pass.
        """
        raw = signed()
        with lab_in_thread() as lab:
            with smtplib.SMTP("127.0.0.1", lab.smtp_port, timeout=30) as client:
                client.ehlo("mta.example.org")
                client.sendmail("bounces@example.org", ["bob@example.test"], raw)
            [stored] = lab.messages("bob@example.test")
        self.assertTrue(stored.startswith(b"Received: from mta.example.org"))
        records = source(RECORDS.replace("ip4:192.0.2.0/24", "ip4:127.0.0.1"))
        arrival = Arrival(
            mail_from="bounces@example.org",
            client_ip="127.0.0.1",
            helo="mta.example.org",
        )
        answer = authenticate(stored, arrival, records)
        self.assertEqual(
            (
                answer["DKIM"][0]["Result"],
                answer["SPF"]["Result"],
                answer["DMARC"]["Result"],
            ),
            ("pass", "pass", "pass"),
        )
