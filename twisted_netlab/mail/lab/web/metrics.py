"""
C{GET /metrics}: the lab's counters as Prometheus metrics, with Mailpit's
names (C{mailpit_smtp_accepted_total}, C{mailpit_messages}...; see
L{twisted_netlab.mail.lab.stats}), behind the same Host checks as the API.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.web.server import Request

from twisted_netlab.mail.lab.stats import PROMETHEUS_CONTENT_TYPE
from twisted_netlab.mail.lab.store.tags import tag_counts
from twisted_netlab.mail.lab.web.api import LabAPI
from twisted_netlab.mail.lab.web.route import Route


class MetricsRoute(Route):
    """
    C{GET /metrics}: the Prometheus text exposition of the lab's figures.
    """

    def __init__(self, api: LabAPI) -> None:
        super().__init__()
        self.api = api

    def render_GET(self, request: Request) -> Deferred[bytes]:
        def render(size: int) -> bytes:
            total, unread = self.api.catalog.counts()
            text = self.api.stats.render_prometheus(
                messages=total,
                unread=unread,
                database_size=size,
                tags=tag_counts(self.api.catalog),
            )
            request.setHeader(b"content-type", PROMETHEUS_CONTENT_TYPE.encode())
            return text.encode("utf-8")

        return self.api.measured().addCallback(render)
