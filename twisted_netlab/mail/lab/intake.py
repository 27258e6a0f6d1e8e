"""
The messages of C{POST /api/v1/send}, stored as if received:
L{sent_delivery} makes the store's L{Delivery} of a composed message
(L{twisted_netlab.mail.lab.web.send}) and the HTTP request it came with.

Recipients go where SMTP would send them (L{routing.local_recipient
<twisted_netlab.mail.lab.smtp.routing.local_recipient>}: a lab user, else
the catch-all); those no mailbox takes are left out, as SMTP refuses their
RCPT, and a message no mailbox takes at all is refused.  Each copy starts
with a C{Received:} header that says C{with HTTP} (C{HTTPS}); the envelope
says C{via="api"}, names every recipient of the request (so the Bcc view
shows them), the client's address and its HTTP login, if any.  The
request's Tags are the copies' keywords, whatever C{--tags-disable} says.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from twisted.mail import smtp
from twisted.web.server import Request

from twisted_netlab.mail.lab.smtp.routing import client_address, received_header
from twisted_netlab.mail.lab.store.envelope import Delivery, Envelope
from twisted_netlab.mail.lab.store.keywords import keyword_for_tag
from twisted_netlab.mail.lab.store.tags import unique_tags
from twisted_netlab.mail.lab.web.send import ComposedMessage, SendRequestInvalid

#: The mailbox mail for an address goes to; raises C{smtp.SMTPBadRcpt}.
Route = Callable[[smtp.Address], str]


def sent_delivery(
    composed: ComposedMessage,
    request: Request,
    *,
    route: Route,
    hostname: str,
    max_size: int,
) -> tuple[Delivery, str]:
    """
    The delivery of C{composed}, and the mailbox of its first recipient
    that one takes (its copy's ID is the answer).

    @raise SendRequestInvalid: too large, or no mailbox takes any recipient.
    """
    if len(composed.raw) > max_size:
        raise SendRequestInvalid(
            f"the message is {len(composed.raw)} bytes: the limit is {max_size}"
        )
    mailboxes: dict[str, str] = {}
    refused: list[str] = []
    for address in composed.recipients:
        try:
            mailboxes[address] = route(smtp.Address(address.encode("utf-8")))
        except (smtp.SMTPBadRcpt, smtp.AddressError) as e:
            reason = getattr(e, "resp", str(e))
            if isinstance(reason, bytes):
                reason = reason.decode("ascii", "replace")
            refused.append(f"{address}: {reason}")
    if not mailboxes:
        raise SendRequestInvalid(
            "no lab mailbox takes the recipients: " + "; ".join(refused)
        )
    peer = request.getClientAddress()
    user = request.getUser().decode("utf-8", "replace")
    secure = bool(request.isSecure())
    envelope = Envelope(
        mail_from=composed.sender,
        rcpt_to=composed.recipients,
        client=client_address(peer),
        tls=secure,
        auth_user=user or None,
        received=time.time(),
        via="api",
    )
    header = received_header(
        helo=client_address(peer).encode("ascii", "replace"),
        peer=peer,
        host=hostname.encode("idna"),
        secure=secure,
        authenticated=bool(user),
        protocol=b"HTTPS" if secure else b"HTTP",
    )
    copies = {mailbox: header + b"\r\n" for mailbox in mailboxes.values()}
    keywords = tuple(keyword_for_tag(t) for t in unique_tags(composed.tags))
    delivery = Delivery(composed.raw, list(copies), envelope, copies, keywords)
    return delivery, next(iter(mailboxes.values()))
