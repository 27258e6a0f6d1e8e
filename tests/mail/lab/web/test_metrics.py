"""
Tests for L{twisted_netlab.mail.lab.web.metrics}: C{GET /metrics} on a live
lab, read by the PyPI C{prometheus-client}'s own parser, with the counters
moved by real SMTP traffic and a delete; and behind the Host checks.
"""

from __future__ import annotations

import smtplib
import ssl

import pytest_twisted
from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.threads import deferToThread

from tests.mail.lab.web.test_api import ALICE, BOB, get, plain, request
from twisted_netlab.mail.lab.service import MailLab


def smtp_traffic(lab: MailLab) -> None:
    """One accepted message, one refused recipient."""
    context = ssl.create_default_context(cafile=str(lab.ca_path))
    with smtplib.SMTP("localhost", lab.smtp_port, timeout=30) as client:
        client.starttls(context=context)
        refused = client.sendmail(ALICE, [BOB, "nobody@example.test"], plain("m"))
        assert list(refused) == ["nobody@example.test"]


@pytest_twisted.ensureDeferred
async def test_metrics_as_prometheus_reads_them(mail_lab: MailLab) -> None:
    """
    /metrics is Prometheus text that prometheus-client parses, under
    Mailpit's names: accepted (and its size), rejected, messages, unread
    and deleted follow the traffic; the same counters as /api/v1/info.
    """
    await deferToThread(smtp_traffic, mail_lab)
    mail_lab.store.deliver(BOB, plain("direct"))
    answer = await get(mail_lab, "/metrics")
    assert answer.status == 200
    assert answer.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples = {
        sample.name: sample.value
        for family in text_string_to_metric_families(answer.body.decode())
        for sample in family.samples
    }
    info = (await get(mail_lab, "/api/v1/info")).json()["RuntimeStats"]
    assert samples["mailpit_smtp_accepted_total"] == 1 == info["SMTPAccepted"]
    assert samples["mailpit_smtp_rejected_total"] == 1 == info["SMTPRejected"]
    assert samples["mailpit_smtp_accepted_size_bytes_total"] == info["SMTPAcceptedSize"]
    # The bytes the client sent, as Mailpit counts them (no Received: line).
    assert info["SMTPAcceptedSize"] == len(plain("m"))
    assert samples["mailpit_messages"] == 2
    assert samples["mailpit_messages_unread"] == 2
    assert samples["mailpit_memory_usage_bytes"] > 0
    assert samples["mailpit_database_size_bytes"] > 0

    await request(mail_lab, "DELETE", "/api/v1/messages", {"IDs": []})
    answer = await get(mail_lab, "/metrics")
    after = {
        sample.name: sample.value
        for family in text_string_to_metric_families(answer.body.decode())
        for sample in family.samples
    }
    assert after["mailpit_messages_deleted_total"] == 2
    assert after["mailpit_messages"] == 0


@pytest_twisted.ensureDeferred
async def test_metrics_behind_the_host_check(mail_lab: MailLab) -> None:
    """
    /metrics for a Host the lab does not answer for is refused (421), as
    the API is, against DNS rebinding.
    """
    answer = await get(mail_lab, "/metrics", headers={"Host": "evil.example"})
    assert answer.status == 421
    assert b"mailpit_" not in answer.body
