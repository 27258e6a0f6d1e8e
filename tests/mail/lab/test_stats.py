"""
Tests for L{twisted_netlab.mail.lab.stats}: the counters, Mailpit's
C{AppInformation} shape (checked against its swagger.json), and the
Prometheus text read back by the official client's parser.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.mail.lab.web.swagger import check_answer, load_mailpit_swagger
from twisted_netlab.mail.lab.stats import (
    METRICS,
    PROMETHEUS_CONTENT_TYPE,
    RuntimeStats,
    memory_in_use,
)

FIGURES: dict[str, Any] = {"messages": 7, "unread": 3, "database_size": 4096}


def families(text: str) -> dict[str, tuple[str, list[tuple[dict[str, str], float]]]]:
    """
    The metric families in C{text} as the Prometheus client parses them:
    name -> (type, [(labels, value)]), sample names as written.
    """
    parsed: dict[str, tuple[str, list[tuple[dict[str, str], float]]]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            entry = parsed.setdefault(sample.name, (family.type, []))
            entry[1].append((sample.labels, sample.value))
    return parsed


class RuntimeStatsTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.stats = RuntimeStats(self.clock, memory=lambda: 12345)

    def test_counters(self) -> None:
        """
        Each record_ method moves its own counter only; the uptime counts
        whole seconds on the reactor's clock from the start.
        """
        stats = self.stats
        stats.record_accepted(100)
        stats.record_accepted(50)
        stats.record_rejected()
        stats.record_ignored()
        stats.record_ignored()
        stats.record_deleted(5)
        stats.record_deleted()
        self.clock.advance(61.9)
        self.assertEqual(
            stats.runtime_json(),
            {
                "Memory": 12345,
                "MessagesDeleted": 6,
                "SMTPAccepted": 2,
                "SMTPAcceptedSize": 150,
                "SMTPIgnored": 2,
                "SMTPRejected": 1,
                "Uptime": 61,
            },
        )

    def test_app_information_shape(self) -> None:
        """
        C{as_json} is Mailpit's C{GET /api/v1/info} answer: every property
        of its swagger schema, with the right types.
        """
        self.stats.record_accepted(10)
        answer = self.stats.as_json(
            version="1.2.3",
            database="/state",
            tags={"invoice": 2},
            **FIGURES,
        )
        check_answer(load_mailpit_swagger(), "/api/v1/info", "get", 200, answer)
        self.assertEqual(answer["Tags"], {"invoice": 2})
        self.assertEqual(answer["RuntimeStats"]["SMTPAccepted"], 1)
        self.assertEqual(
            (answer["Messages"], answer["Unread"], answer["DatabaseSize"]), (7, 3, 4096)
        )

    def test_prometheus_parses(self) -> None:
        """
        The Prometheus text parses with the official client: every metric
        with its HELP and TYPE, Mailpit's names and types, the counters'
        values, and a tag label with characters that need escaping.
        """
        stats = self.stats
        stats.record_accepted(2048)
        stats.record_rejected()
        stats.record_deleted(4)
        stats.forwarding.sent = 3
        stats.forwarding.retried = 2
        stats.webhook.failed = 1
        stats.webhook.dropped = 5
        self.clock.advance(42)
        tag = 'say "hi"\\ now\nplease'
        text = stats.render_prometheus(tags={tag: 2, "plain": 1}, **FIGURES)
        parsed = families(text)
        expected = {name for name, _, _ in METRICS} - {"mailpit_tag_messages"}
        self.assertEqual(set(parsed) - {"mailpit_tag_messages"}, expected)
        for name, kind, _ in METRICS:
            self.assertEqual(parsed[name][0], kind, name)
            self.assertIn(f"# HELP {name} ", text)

        def value(name: str) -> float:
            [(labels, number)] = parsed[name][1]
            self.assertEqual(labels, {})
            return number

        self.assertEqual(value("mailpit_smtp_accepted_total"), 1)
        self.assertEqual(value("mailpit_smtp_accepted_size_bytes_total"), 2048)
        self.assertEqual(value("mailpit_smtp_rejected_total"), 1)
        self.assertEqual(value("mailpit_smtp_ignored_total"), 0)
        self.assertEqual(value("mailpit_messages_deleted_total"), 4)
        self.assertEqual(value("mailpit_messages"), 7)
        self.assertEqual(value("mailpit_messages_unread"), 3)
        self.assertEqual(value("mailpit_database_size_bytes"), 4096)
        self.assertEqual(value("mailpit_uptime_seconds"), 42)
        self.assertEqual(value("mailpit_memory_usage_bytes"), 12345)
        self.assertEqual(value("netlab_forward_sent_total"), 3)
        self.assertEqual(value("netlab_forward_retried_total"), 2)
        self.assertEqual(value("netlab_webhook_failed_total"), 1)
        self.assertEqual(value("netlab_webhook_dropped_total"), 5)
        self.assertEqual(
            sorted(parsed["mailpit_tag_messages"][1], key=lambda s: s[1]),
            [({"tag": "plain"}, 1), ({"tag": tag}, 2)],
        )
        self.assertTrue(text.endswith("\n"))
        self.assertIn("version=0.0.4", PROMETHEUS_CONTENT_TYPE)

    def test_mailpit_names(self) -> None:
        """
        Mailpit's metric names come sorted as it writes them, before the
        lab's own (netlab_...).
        """
        names = [name for name, _, _ in METRICS]
        mailpit = [n for n in names if n.startswith("mailpit_")]
        self.assertEqual(mailpit, sorted(mailpit))
        self.assertEqual(names[: len(mailpit)], mailpit)
        self.assertTrue(all(n.startswith("netlab_") for n in names[len(mailpit) :]))


class MemoryTestCase(SynchronousTestCase):
    def test_resident_memory(self) -> None:
        """
        The memory figure is this process's resident size: more than a
        megabyte, and close to what /proc/self/status says (VmRSS).
        """
        used = memory_in_use()
        self.assertGreater(used, 1 << 20)
        if os.path.exists("/proc/self/status"):
            with open("/proc/self/status") as status:
                line = next(x for x in status if x.startswith("VmRSS:"))
            rss = int(line.split()[1]) * 1024
            self.assertLess(abs(used - rss), max(rss // 4, 8 << 20))

    def test_without_proc(self) -> None:
        """
        Without /proc the figure comes from getrusage (the peak), still in
        bytes.
        """
        self.assertGreater(memory_in_use(statm="/nonexistent/statm"), 1 << 20)
