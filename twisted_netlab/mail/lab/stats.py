"""
The lab's runtime counters, as Mailpit reports them: L{RuntimeStats}.

Mailpit's C{GET /api/v1/info} answers C{RuntimeStats} (SMTPAccepted,
SMTPAcceptedSize, SMTPRejected, SMTPIgnored, MessagesDeleted, Memory,
Uptime) and C{GET /metrics} serves the same numbers, with the mailbox's
totals, as Prometheus metrics named C{mailpit_...}
(internal/prometheus/metrics.go).  L{RuntimeStats.as_json} and
L{RuntimeStats.render_prometheus} give both shapes; the forwarding and
webhook counters (L{DeliveryCounters}), which Mailpit does not have, are
served as C{netlab_forward_...} and C{netlab_webhook_...}.

How it is meant to be hooked in (one object per lab, kept by MailLab):

    stats = RuntimeStats(reactor)
    # SMTP, once a message is stored / refused / dropped as a duplicate:
    stats.record_accepted(len(stored_bytes)); stats.record_rejected()
    stats.record_ignored()
    # the store, for each message deleted through any door:
    stats.record_deleted(count)
    # Forwarder(..., counters=stats.forwarding), Webhook(..., counters=stats.webhook)
    # GET /api/v1/info:
    stats.as_json(version=..., database=..., database_size=..., messages=...,
                  unread=..., tags={...})
    # GET /metrics (Content-Type PROMETHEUS_CONTENT_TYPE):
    stats.render_prometheus(messages=..., unread=..., database_size=...,
                            tags={...})

Nothing here does I/O but reading this process's memory use, and nothing
costs more than the number of tags.
"""

from __future__ import annotations

import os
import resource
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

#: The Content-Type of L{RuntimeStats.render_prometheus}'s text (as Mailpit's).
PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

#: The lab's own counters: source, what it counts, and the outcomes it has
#: (the webhook does not retry, as Mailpit's does not).
_SOURCES = (
    ("forward", "Total messages forwarded", ("sent", "failed", "retried", "dropped")),
    ("webhook", "Total webhook requests", ("sent", "failed", "dropped")),
)
_OUTCOME = {
    "sent": "delivered",
    "failed": "given up",
    "retried": "attempts made again",
    "dropped": "dropped (queue full, or the lab stopping)",
}

#: Every metric served: Mailpit's (names, types and help as in its
#: internal/prometheus/metrics.go, sorted by name as it writes them), then the
#: lab's forwarding and webhook counters.
METRICS: tuple[tuple[str, str, str], ...] = (
    ("mailpit_database_size_bytes", "gauge", "Size of the database in bytes"),
    ("mailpit_memory_usage_bytes", "gauge", "Memory usage in bytes"),
    ("mailpit_messages", "gauge", "Total number of messages in the database"),
    ("mailpit_messages_deleted_total", "counter", "Total number of messages deleted"),
    ("mailpit_messages_unread", "gauge", "Number of unread messages in the database"),
    (
        "mailpit_smtp_accepted_size_bytes_total",
        "counter",
        "Total size of accepted SMTP messages in bytes",
    ),
    (
        "mailpit_smtp_accepted_total",
        "counter",
        "Total number of SMTP messages accepted",
    ),
    (
        "mailpit_smtp_ignored_total",
        "counter",
        "Total number of SMTP messages ignored (duplicates)",
    ),
    (
        "mailpit_smtp_rejected_total",
        "counter",
        "Total number of SMTP messages rejected",
    ),
    ("mailpit_tag_messages", "gauge", "Number of messages per tag"),
    ("mailpit_uptime_seconds", "gauge", "Uptime of Mailpit in seconds"),
    *(
        (f"netlab_{source}_{outcome}_total", "counter", f"{what}: {_OUTCOME[outcome]}")
        for source, what, outcomes in _SOURCES
        for outcome in outcomes
    ),
)


@dataclass
class DeliveryCounters:
    """
    What became of the messages a background sender (the forwarder, the
    webhook) was given.

    @ivar sent: delivered.
    @ivar failed: given up on (an error, or the attempts ran out).
    @ivar retried: attempts made again after a temporary failure.
    @ivar dropped: not even tried: the queue was full, or the lab stopped.
    """

    sent: int = 0
    failed: int = 0
    retried: int = 0
    dropped: int = 0


def memory_in_use(statm: str = "/proc/self/statm") -> int:
    """
    This process's resident memory in bytes: from C{statm} where there is
    one (Linux), else the peak that C{getrusage} reports.
    """
    try:
        with open(statm, "rb") as statm_file:
            resident_pages = int(statm_file.read().split()[1])
        return resident_pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # Linux reports kilobytes, macOS bytes.
        return peak if sys.platform == "darwin" else peak * 1024


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _escape_label(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


class RuntimeStats:
    """
    Counters since the lab started, and its uptime on the reactor's clock.

    The counters only grow; L{as_json} and L{render_prometheus} read them
    with the mailbox's figures that the caller passes in.
    """

    def __init__(
        self, reactor: Any, *, memory: Callable[[], int] = memory_in_use
    ) -> None:
        """
        @param reactor: provides C{IReactorTime}; the uptime counts from now.
        @param memory: the memory figure's source (for tests).
        """
        self._clock = reactor
        self._memory = memory
        self.reset()

    def reset(self) -> None:
        """
        Start counting again from zero, and the uptime from now (the lab
        was reset for the next test).
        """
        self.started = self._clock.seconds()
        self.smtp_accepted = 0
        self.smtp_accepted_size = 0
        self.smtp_rejected = 0
        self.smtp_ignored = 0
        self.messages_deleted = 0
        self.forwarding = DeliveryCounters()
        self.webhook = DeliveryCounters()

    def record_accepted(self, size: int) -> None:
        """
        A message of C{size} bytes came in over SMTP and was stored.
        """
        self.smtp_accepted += 1
        self.smtp_accepted_size += size

    def record_rejected(self) -> None:
        """
        An SMTP transaction was refused (a recipient, the data, a fault).
        """
        self.smtp_rejected += 1

    def record_ignored(self) -> None:
        """
        A message was accepted over SMTP but not stored (a duplicate).
        """
        self.smtp_ignored += 1

    def record_deleted(self, count: int = 1) -> None:
        """
        C{count} messages were deleted.
        """
        self.messages_deleted += count

    def uptime(self) -> int:
        """
        Whole seconds since the lab started.
        """
        return max(0, int(self._clock.seconds() - self.started))

    def runtime_json(self) -> dict[str, int]:
        """
        Mailpit's C{RuntimeStats} object.
        """
        return {
            "Memory": self._memory(),
            "MessagesDeleted": self.messages_deleted,
            "SMTPAccepted": self.smtp_accepted,
            "SMTPAcceptedSize": self.smtp_accepted_size,
            "SMTPIgnored": self.smtp_ignored,
            "SMTPRejected": self.smtp_rejected,
            "Uptime": self.uptime(),
        }

    def as_json(
        self,
        *,
        version: str,
        database: str,
        database_size: int,
        messages: int,
        unread: int,
        tags: Mapping[str, int],
        latest_version: str = "",
    ) -> dict[str, Any]:
        """
        Mailpit's C{AppInformation} (the answer of C{GET /api/v1/info}):
        the caller's mailbox figures with L{runtime_json}.

        @param database: what stands for Mailpit's database path (the
            lab's state directory).
        @param database_size: its size in bytes.
        @param tags: the number of messages for each tag.
        @param latest_version: Mailpit looks this up on GitHub; the lab
            never goes online, so it stays empty unless given.
        """
        return {
            "Database": database,
            "DatabaseSize": database_size,
            "LatestVersion": latest_version,
            "Messages": messages,
            "RuntimeStats": self.runtime_json(),
            "Tags": dict(tags),
            "Unread": unread,
            "Version": version,
        }

    def render_prometheus(
        self,
        *,
        messages: int,
        unread: int,
        database_size: int,
        tags: Mapping[str, int],
    ) -> str:
        """
        The Prometheus text exposition (format 0.0.4) of every figure:
        Mailpit's metric names, in its order (sorted by name), then the
        lab's own forwarding and webhook counters.
        """
        runtime = self.runtime_json()
        values: dict[str, float] = {
            "mailpit_database_size_bytes": database_size,
            "mailpit_memory_usage_bytes": runtime["Memory"],
            "mailpit_messages": messages,
            "mailpit_messages_deleted_total": self.messages_deleted,
            "mailpit_messages_unread": unread,
            "mailpit_smtp_accepted_size_bytes_total": self.smtp_accepted_size,
            "mailpit_smtp_accepted_total": self.smtp_accepted,
            "mailpit_smtp_ignored_total": self.smtp_ignored,
            "mailpit_smtp_rejected_total": self.smtp_rejected,
            "mailpit_uptime_seconds": runtime["Uptime"],
        }
        for prefix, counters in (
            ("netlab_forward", self.forwarding),
            ("netlab_webhook", self.webhook),
        ):
            for outcome in _OUTCOME:
                values[f"{prefix}_{outcome}_total"] = getattr(counters, outcome)
        lines = []
        for name, kind, help_text in METRICS:
            lines.append(f"# HELP {name} {_escape_help(help_text)}")
            lines.append(f"# TYPE {name} {kind}")
            if name == "mailpit_tag_messages":
                lines.extend(
                    f'{name}{{tag="{_escape_label(tag)}"}} {_number(count)}'
                    for tag, count in sorted(tags.items())
                )
            else:
                lines.append(f"{name} {_number(values[name])}")
        return "\n".join(lines) + "\n"


__all__ = [
    "METRICS",
    "PROMETHEUS_CONTENT_TYPE",
    "DeliveryCounters",
    "RuntimeStats",
    "memory_in_use",
]
