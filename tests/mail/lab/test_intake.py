"""
Tests for L{twisted_netlab.mail.lab.intake}: the store's delivery of a
message of C{POST /api/v1/send}.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.address import IPv4Address
from twisted.mail import smtp
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.test.requesthelper import DummyRequest

from twisted_netlab.mail.lab.intake import sent_delivery
from twisted_netlab.mail.lab.store.keywords import keyword_for_tag
from twisted_netlab.mail.lab.web.send import SendRequestInvalid, message_from_send_json

BODY = (
    b'{"From": {"Email": "app@example.test"}, "To": [{"Email": "bob@example.test"}],'
    b' "Cc": [{"Email": "nobody@elsewhere.example"}], "Bcc": ["alice@example.test"],'
    b' "Subject": "s", "Text": "t", "Tags": ["Beta", "alpha"]}'
)


def route(address: smtp.Address) -> str:
    text = str(address)
    if text.endswith("@example.test"):
        return text
    raise smtp.SMTPBadRcpt(address, 550, "5.7.1 Relaying denied")


def request() -> Any:
    made = DummyRequest([b"api", b"v1", b"send"])
    made.client = IPv4Address("TCP", "127.0.0.1", 40000)
    made.getUser = lambda: b""  # type: ignore[attr-defined]
    made.isSecure = lambda: False  # type: ignore[attr-defined]
    return made


class SentDeliveryTests(SynchronousTestCase):
    def test_as_if_received(self) -> None:
        """
        A copy for each mailbox that takes a recipient (the others left out,
        as SMTP refuses their RCPT), each after a Received: header that says
        HTTP; the envelope says via api and names every recipient; the tags
        are the copies' keywords; the first taken recipient's mailbox is
        the answer's.
        """
        composed = message_from_send_json(BODY)
        delivery, first = sent_delivery(
            composed, request(), route=route, hostname="lab.test", max_size=10_000
        )
        self.assertEqual(first, "bob@example.test")
        self.assertEqual(
            sorted(delivery.prefixes or {}), ["alice@example.test", "bob@example.test"]
        )
        for prefix in (delivery.prefixes or {}).values():
            self.assertTrue(prefix.startswith(b"Received: from "))
            self.assertIn(b"with HTTP", prefix)
        envelope = delivery.envelope
        assert envelope is not None
        self.assertEqual(envelope.via, "api")
        self.assertEqual(envelope.mail_from, "app@example.test")
        self.assertIn("nobody@elsewhere.example", envelope.rcpt_to)
        self.assertEqual(
            set(delivery.keywords), {keyword_for_tag("Beta"), keyword_for_tag("alpha")}
        )

    def test_refused(self) -> None:
        """
        A message over the size limit, or one no mailbox takes, is refused
        with a one-line reason naming the limit or the recipients.
        """
        composed = message_from_send_json(BODY)
        with self.assertRaises(SendRequestInvalid) as big:
            sent_delivery(composed, request(), route=route, hostname="h", max_size=10)
        self.assertIn("the limit is 10", str(big.exception))

        def nowhere(address: smtp.Address) -> str:
            raise smtp.SMTPBadRcpt(address, 550, "5.1.1 No such user here")

        with self.assertRaises(SendRequestInvalid) as none:
            sent_delivery(
                composed, request(), route=nowhere, hostname="h", max_size=10_000
            )
        self.assertIn("bob@example.test: 5.1.1 No such user here", str(none.exception))
