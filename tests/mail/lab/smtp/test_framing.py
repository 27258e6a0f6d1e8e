"""
Property tests for how L{twisted_netlab.mail.lab.smtp} reads its connection:
whatever a client sends (commands, DATA, BDAT chunks holding command-like
lines, garbage), cut into reads at any points, the server answers and stores
exactly as if it had come in one read, and never raises.
"""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.mail.lab.smtp.test_server import Deliveries, Session, shared_users
from twisted_netlab.mail.lab.smtp.server import LabSMTPFactory

_WORDS = [
    b"EHLO client.test",
    b"HELO client.test",
    b"MAIL FROM:<a@x.example>",
    b"MAIL FROM:<a@x.example> SMTPUTF8",
    b"RCPT TO:<alice@example.test>",
    b"RCPT TO:<bob@example.test>",
    b"RCPT TO:<someone@else.example>",
    b"RSET",
    b"NOOP",
    b"DATA",
    b"Subject: x",
    b"",
    b".",
    b"..dot",
    b"QUIT",
    b"\xff\x00junk",
]


@st.composite
def sessions(draw: Any) -> bytes:
    """
    A client's bytes: lines from a small vocabulary, and BDAT commands each
    followed by exactly its chunk (which may hold command lines).
    """
    parts: list[bytes] = [b"EHLO client.test\r\n"]
    for _ in range(draw(st.integers(0, 25))):
        kind = draw(st.integers(0, 5))
        if kind == 1:
            # A whole DATA transaction, its body drawn from the vocabulary.
            body = draw(st.lists(st.sampled_from(_WORDS), max_size=8))
            parts.append(
                b"MAIL FROM:<a@x.example>\r\nRCPT TO:<r@y.example>\r\nDATA\r\n"
                + b"".join(line + b"\r\n" for line in body if line != b".")
                + b".\r\n"
            )
        elif kind == 0:
            chunk = b"".join(
                draw(st.lists(st.sampled_from([*_WORDS, b"\r\n", b"\n"]), max_size=6))
            )
            last = b" LAST" if draw(st.booleans()) else b""
            parts.append(b"BDAT %d%s\r\n" % (len(chunk), last) + chunk)
        else:
            parts.append(draw(st.sampled_from(_WORDS)) + b"\r\n")
    return b"".join(parts)


def replay(
    data: bytes, cuts: list[int], max_size: int = 10_000_000
) -> tuple[bytes, list[tuple[str, bytes]], bool]:
    """
    Feed C{data} to a new session in reads cut at C{cuts}; what was
    replied, what was stored, and whether the connection was closed.
    """
    deliveries = Deliveries()
    factory = LabSMTPFactory(
        users=shared_users(),
        domains=["example.test"],
        deliver=deliveries,
        catch_all="catch@example.test",
        max_message_size=max_size,
        reactor=Clock(),
    )
    s = Session(factory)
    points = sorted({0, *cuts, len(data)})
    for start, end in itertools.pairwise(points):
        if s.closed:
            break
        s.protocol.dataReceived(data[start:end])
    # Received: headers carry the time; compare what follows them.
    stored = [
        (address, message[message.index(b"\r\n", message.index(b"; ")) + 2 :])
        for address, message in deliveries.stored
    ]
    return s.take(), stored, s.closed


class FramingTests(SynchronousTestCase):
    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(
        data=sessions(),
        cuts=st.lists(st.integers(0, 2000), max_size=12),
        max_size=st.sampled_from([30, 80, 10_000_000]),
    )
    def test_reads_do_not_matter(
        self, data: bytes, cuts: list[int], max_size: int
    ) -> None:
        """
        The same bytes in one read, cut anywhere, or one byte a read, give
        the same replies, the same stored messages and the same end of the
        connection (whatever the size limit).
        """
        whole = replay(data, [], max_size)
        cut = replay(data, [c % (len(data) + 1) for c in cuts], max_size)
        self.assertEqual(cut, whole)
        self.assertEqual(replay(data, list(range(len(data))), max_size), whole)

    @settings(max_examples=100, deadline=None)
    @given(data=st.binary(max_size=600), cuts=st.lists(st.integers(0, 600), max_size=8))
    def test_garbage_never_raises(self, data: bytes, cuts: list[int]) -> None:
        """
        Arbitrary bytes never raise out of the protocol, however they are
        cut.
        """
        replay(b"EHLO x\r\n" + data, cuts)
