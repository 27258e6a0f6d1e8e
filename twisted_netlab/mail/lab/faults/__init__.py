"""
Faults on purpose: the mail lab's SMTP and IMAP servers fail when, where
and how a test asks, so that the software under test shows how it copes.

A fault is a I{stage} (where in a session), an I{action} (what goes wrong)
and a I{selection} (which attempts it hits).  The listeners ask the lab's
one L{Faults} registry at each stage (L{Faults.check}); the command line
(C{--fault SPEC}), the HTTP API and Python (C{lab.faults.add(...)}) all
configure that same object.

Stages::

    smtp.connect   before the greeting        imap.connect   before the greeting
    smtp.ehlo      EHLO or HELO               imap.login     LOGIN or AUTHENTICATE
    smtp.auth      AUTH                       imap.select    SELECT or EXAMINE
    smtp.mail      MAIL FROM                  imap.fetch     FETCH, UID FETCH
    smtp.rcpt      RCPT TO (that recipient)   imap.append    APPEND
    smtp.data      DATA                       imap.NAME      the command NAME
    smtp.message   after the final dot,                      (imap.noop, ...)
                   before the 250: nothing is stored

Actions::

    reply=CODE[ TEXT]   SMTP: a 4xx or 5xx reply (421 also closes);
                        IMAP: NO, BAD (tagged) or BYE (then closes)
    drop[=close|abort]  close the connection, or abort it (RST)
    delay=SECONDS       hold the reply (and what follows) that long
    throttle=BYTES      send the rest of the session at BYTES bytes/s

Selection (all must match)::

    p=P            with probability P (0 < P <= 1; C{--fault-seed} repeats a run)
    times=N        the next N matching attempts only
    greylist=N     the first N attempts of each sender+recipient pair
                   (default action: reply=451 4.7.1 Greylisted, try again later)
    from=PATTERN   the MAIL FROM address (fnmatch, case-insensitive)
    to=PATTERN     the RCPT TO address (at data/message: any recipient)
    user=PATTERN   the AUTH or LOGIN user
    client=ADDR    the client's address: an IP, a CIDR network (IPv6 in
                   brackets: client=[::1]) or an fnmatch pattern
    after-bytes=N  with drop: let N more bytes of the reply out, then drop
                   (imap.fetch:drop:after-bytes=1000 cuts a FETCH literal)

A spec joins a stage and items with ``:``; a ``:`` inside a value is
written ``\\:``.  Examples::

    rcpt:reply=451:times=2
    message:drop=abort:p=0.1
    smtp.mail:greylist=2
    imap.fetch:drop:after-bytes=1000
    rcpt:reply=550 5.1.1 No such user:to=*@bad.example

The package, by role: L{model} (stages, actions, L{Fault}), L{spec} (the spec
syntax above: L{parse_fault}), L{registry} (L{Faults} and the selection of
attempts), L{hooks} (what the SMTP and IMAP listeners call at each stage) and
L{shaping} (the transport that delays, throttles and cuts).  Every name is
imported from here.
"""

from twisted_netlab.mail.lab.faults.hooks import (
    apply_output_fault,
    drop,
    imap_fault,
    peer_text,
    plain_user,
    smtp_command_hook,
    smtp_fault,
    smtp_message_fault,
    smtp_reply_bytes,
)
from twisted_netlab.mail.lab.faults.model import (
    GREYLIST_REPLY,
    IMAP_COMMANDS,
    IMAP_GROUPS,
    SMTP_STAGES,
    Action,
    Attempt,
    Delay,
    Drop,
    Fault,
    FaultSpecError,
    Reply,
    Throttle,
)
from twisted_netlab.mail.lab.faults.registry import FaultHandle, Faults
from twisted_netlab.mail.lab.faults.shaping import (
    THROTTLE_TICK,
    ShapedTransport,
    shaped_transport,
)
from twisted_netlab.mail.lab.faults.spec import parse_fault, parse_stage

__all__ = [
    "GREYLIST_REPLY",
    "IMAP_COMMANDS",
    "IMAP_GROUPS",
    "SMTP_STAGES",
    "THROTTLE_TICK",
    "Action",
    "Attempt",
    "Delay",
    "Drop",
    "Fault",
    "FaultHandle",
    "FaultSpecError",
    "Faults",
    "Reply",
    "ShapedTransport",
    "Throttle",
    "apply_output_fault",
    "drop",
    "imap_fault",
    "parse_fault",
    "parse_stage",
    "peer_text",
    "plain_user",
    "shaped_transport",
    "smtp_command_hook",
    "smtp_fault",
    "smtp_message_fault",
    "smtp_reply_bytes",
]
