"""
What the lab does with each message it captures besides storing it, as
Mailpit does: L{Outbox} forwards it through the relay (C{--forward}) and
posts its summary to the webhook (C{--webhook}), in the background; the
relay (C{--relay}) also releases stored messages for the HTTP API.

Nothing here ever holds a delivery: the SMTP reply (or the API's answer)
is sent once the message is stored, and L{Outbox.arrived} only queues.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.logger import Logger

from twisted_netlab.mail.lab.relay import Forwarder, Relay, RelayConfig
from twisted_netlab.mail.lab.stats import RuntimeStats
from twisted_netlab.mail.lab.webhook import Webhook

log = Logger()


class Outbox:
    """
    Forwarding and the webhook of one lab.

    @param relay: the C{--relay} options (None: nothing is ever relayed).
    @param webhook: the C{--webhook} URL (None: no webhook).
    @param webhook_limit: requests a second at most (0: no limit).
    @param stats: counts what the forwarder and the webhook did.
    """

    def __init__(
        self,
        reactor: Any,
        stats: RuntimeStats,
        *,
        relay: RelayConfig | None = None,
        webhook: str | None = None,
        webhook_limit: int = 1,
    ) -> None:
        self.relay = Relay(relay, reactor) if relay is not None else None
        self.forwarder = (
            Forwarder(
                self.relay,
                reactor,
                addresses=relay.forward,
                counters=stats.forwarding,
            )
            if self.relay is not None and relay is not None and relay.forward
            else None
        )
        self.webhook = (
            Webhook(webhook, reactor, webhook_limit, counters=stats.webhook)
            if webhook
            else None
        )

    def __bool__(self) -> bool:
        """Whether captured mail goes anywhere (forwarding or a webhook)."""
        return self.forwarder is not None or self.webhook is not None

    def arrived(
        self,
        raw: bytes,
        mail_from: str,
        ids: Iterable[str],
        summary_of: Callable[[str], Mapping[str, Any] | None],
    ) -> None:
        """
        A message was stored, as C{raw} (its first copy's bytes) with the
        catalog IDs C{ids}: forward it once, and post each copy's summary
        (C{summary_of(id)}, None if it is gone already).  Never raises.
        """
        ids = list(ids)
        if self.forwarder is not None:
            self.forwarder.feed(raw, mail_from, label=", ".join(ids) or None)
        if self.webhook is not None:
            for message_id in ids:
                try:
                    found = summary_of(message_id)
                except Exception:
                    log.failure(
                        "webhook: cannot make the summary of {id}", id=message_id
                    )
                    continue
                if found is not None:
                    self.webhook.feed(found)

    def stop(self) -> Deferred[Any]:
        """Give up on what is pending; fires once the webhook's connections closed."""
        if self.forwarder is not None:
            self.forwarder.stop()
        if self.webhook is None:
            return succeed(None)
        return DeferredList([self.webhook.stop()], consumeErrors=True)
