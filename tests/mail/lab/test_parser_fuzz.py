"""
A grammar-aware fuzzer for the lab's IMAP and SMTP command parsers.

Commands are built from the real grammar (command names in any case,
atoms, sequence sets, quoted strings with escapes, synchronising and
LITERAL+ literals, parenthesised lists, bad UTF-8, over-long lines) and
then mutated; they are sent one at a time, or pipelined in bursts cut
anywhere, or cut off by a disconnect (mid-literal, mid-DATA).  Whatever
comes in, the server must:

- never raise into the reactor (nothing raised from C{dataReceived}, no
  error logged);
- never hang: every command sent alone gets its tagged answer (SMTP: a
  reply), or the connection is closed;
- never desynchronise: after any burst, a fresh C{NOOP} gets its OK;
- stay within its memory bound: the unparsed input it holds stays below
  its line limit plus what arrived in one read;
- leave nothing half-written in the store after a disconnect.

The CI run is bounded by C{max_examples}; C{python -m tests.fuzz} runs it
(and the model test) for longer.  POP3 has its own fuzz test
(L{tests.mail.lab.test_pop3_fuzz}).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.mail import imap4
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from tests.mail.lab.test_lab_model import PASSWORD, USER, shared_users_file
from twisted_netlab.mail.lab.imap.account import LabRealm
from twisted_netlab.mail.lab.imap.server import LabIMAPFactory
from twisted_netlab.mail.lab.smtp.server import LabSMTPFactory
from twisted_netlab.mail.lab.store.maildir import Envelope, MailStore

EXAMPLES = int(os.environ.get("NETLAB_FUZZ_EXAMPLES", "60"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
MAX_LINE = 2048
MAX_MESSAGE = 20_000

SEED = (
    b"From: a@example.test\r\nSubject: seed\r\n\r\nbody\r\n",
    b"Subject: two\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    b"--b\r\n\r\npart\r\n--b--\r\n",
)

# --- the grammar ---------------------------------------------------------------

#: A command is a list of pieces: bytes of the line, or ("literal", marker,
#: content) where marker is b"{n}" or b"{n+}" (n = len(content)).
Piece = Any

IMAP_COMMANDS = [
    b"CAPABILITY", b"NOOP", b"LOGOUT", b"LOGIN", b"AUTHENTICATE", b"STARTTLS",
    b"SELECT", b"EXAMINE", b"CREATE", b"DELETE", b"RENAME", b"SUBSCRIBE",
    b"UNSUBSCRIBE", b"LIST", b"LSUB", b"STATUS", b"APPEND", b"CHECK", b"CLOSE",
    b"EXPUNGE", b"SEARCH", b"FETCH", b"STORE", b"COPY", b"MOVE", b"UID FETCH",
    b"UID SEARCH", b"UID STORE", b"UID COPY", b"UID MOVE", b"UID EXPUNGE",
    b"IDLE", b"ENABLE", b"ID", b"UNSELECT", b"NAMESPACE", b"GETQUOTAROOT",
    b"XYZZY", b"",
]  # fmt: skip
IMAP_ATOMS = [
    b"INBOX", b"inbox", b"Archive", b"1", b"2", b"*", b"1:*", b"*:*", b"2:1",
    b"1,2:4", b"0", b"4294967295", b"4294967296", b"-1", b"NIL", b"\\Seen",
    b"\\Deleted", b"$Junk", b"\\*", b"ALL", b"UID", b"FLAGS", b"+FLAGS.SILENT",
    b"-FLAGS", b"BODY[]", b"BODY.PEEK[HEADER.FIELDS (SUBJECT FROM)]",
    b"BODY[1.2]<0.10>", b"BODY[TEXT]<5.>", b"RFC822.SIZE", b"ENVELOPE",
    b"BODYSTRUCTURE", b"(", b")", b"[", b"]", b"%", b"CHARSET", b"UTF-8",
    b"SUBJECT", b"TEXT", b"NOT", b"OR", b"MODSEQ", b"CHANGEDSINCE",
    b"UNCHANGEDSINCE", b"(CONDSTORE)", b"CONDSTORE", b"RETURN",
    b"(MIN MAX COUNT ALL)", b"(UIDNEXT MESSAGES HIGHESTMODSEQ)", b"PLAIN",
    b"AGFsaWNlAHB3", b"=", b'""', b"~{", b"}", b"\\", b"\x00", b"\xff\xfe",
    b"\xc3(", b"\xe2\x82", b"caf\xc3\xa9",
]  # fmt: skip
SAFE = bytes(c for c in range(32, 127) if c not in b"{}")


def _quoted(content: bytes) -> bytes:
    return b'"' + content.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


# No "{" in anything that might be read as a line: a literal announced by
# accident would swallow the NOOP that checks the server is still in step.
_text = st.binary(max_size=40).map(lambda b: bytes(c for c in b if c not in b"{\r\n"))
_argument = st.one_of(
    st.sampled_from(IMAP_ATOMS),
    st.sampled_from(IMAP_ATOMS).map(lambda a: a.lower()),
    _text.map(_quoted),
    _text.map(lambda b: b'"' + b + b'"'),  # unescaped: maybe ill-formed
    st.lists(st.sampled_from(IMAP_ATOMS), max_size=4).map(
        lambda atoms: b"(" + b" ".join(atoms) + b")"
    ),
    st.integers(1, 3000).map(lambda n: b"x" * n),
    st.just(b"y" * (MAX_LINE + 10)),
)
_literal = st.tuples(
    st.booleans(),
    st.binary(max_size=300).map(lambda b: bytes(c for c in b if c != ord("{"))),
).map(lambda t: ("literal", b"{%d%s}" % (len(t[1]), b"+" if t[0] else b""), t[1]))


@st.composite
def imap_commands(draw: Any, index: int) -> tuple[bytes | None, list[Piece]]:
    """
    One command: its tag (None when the tag itself is garbage) and pieces.
    """
    tag: bytes | None = b"t%d" % index
    if draw(st.integers(0, 9)) == 0:
        tag = None
        raw = draw(st.sampled_from([b"", b"*", b"+", b"t(", b"\xff", b"x" * 3000]))
    name = draw(st.sampled_from(IMAP_COMMANDS))
    if draw(st.booleans()):
        name = bytes(
            c ^ 0x20 if chr(c).isalpha() and draw(st.booleans()) else c for c in name
        )
    pieces: list[Piece] = []
    line = (tag if tag is not None else raw) + b" " + name
    for argument in draw(st.lists(st.one_of(_argument, _literal), max_size=6)):
        if isinstance(argument, tuple):
            pieces.append(line + b" " + argument[1])
            pieces.append(argument)
            line = b""
        else:
            line += b" " + argument
    pieces.append(line)
    return tag, pieces


def serialise(pieces: list[Piece]) -> bytes:
    """
    A command as a client pipelining it would send it (literals at once).
    """
    out = b""
    for piece in pieces:
        if isinstance(piece, tuple):
            out += piece[2]
        else:
            out += piece + b"\r\n"
    # A piece followed by a literal ends with the marker; its CRLF was added.
    return out


imap_bursts = st.integers(1, 8).flatmap(
    lambda n: st.tuples(*[imap_commands(i) for i in range(n)])
)

SMTP_COMMANDS = [
    b"EHLO", b"HELO", b"MAIL FROM:", b"RCPT TO:", b"DATA", b"BDAT", b"RSET",
    b"NOOP", b"VRFY", b"EXPN", b"HELP", b"QUIT", b"STARTTLS", b"AUTH", b"XYZZY",
    b"",
]  # fmt: skip
SMTP_ARGUMENTS = [
    b"client.example.test", b"[127.0.0.1]", b"<alice@example.test>",
    b"<ALICE@EXAMPLE.TEST>", b"<bob@elsewhere.test>", b"<>", b"<@a,@b:c@d>",
    b"SIZE=100", b"SIZE=99999999999", b"BODY=8BITMIME", b"SMTPUTF8",
    b"<j\xc3\xb6rg@example.test>", b"PLAIN", b"LOGIN", b"AGFsaWNlAHB3", b"=",
    b"LAST", b"10", b"0", b"-5", b"\xff\xfe", b"\x00", b"<", b">", b"x" * 1100,
]  # fmt: skip


@st.composite
def smtp_lines(draw: Any) -> list[bytes]:
    """
    A stream of SMTP lines: commands, and DATA bodies that end with a dot.
    """
    lines: list[bytes] = []
    for _ in range(draw(st.integers(1, 10))):
        name = draw(st.sampled_from(SMTP_COMMANDS))
        if draw(st.booleans()):
            name = name.lower()
        args = draw(st.lists(st.sampled_from(SMTP_ARGUMENTS), max_size=3))
        line = name + b"".join(
            (b"" if name.endswith(b":") and i == 0 else b" ") + a
            for i, a in enumerate(args)
        )
        lines.append(line)
        if name.upper() == b"DATA" and draw(st.booleans()):
            body = draw(st.lists(st.sampled_from([b"", b".", b"..x", b"a", b"\xff"])))
            lines.extend([*body, b"."])
    return lines


# --- the servers ------------------------------------------------------------------


#: Crashes the fuzzer found that are reported, not yet fixed (the server
#: answers BAD and stays in step, but logs an unhandled error): the name of
#: the exception and the function that raised it.  Remove an entry when its
#: fix lands (the fuzzer then guards it).
# Crashes the fuzzer found are fixed and pinned by regression tests
# (imap/test_server.py's test_fuzzer_crashes); list here only one not fixed yet,
# as (exception class name, function it was raised in).
KNOWN_CRASHES: set[tuple[str, str]] = set()


@implementer(ILogObserver)
class Errors:
    """
    Every logged failure while in use, but the known ones.
    """

    def __init__(self) -> None:
        self.failures: list[Any] = []

    def __call__(self, event: dict[str, Any]) -> None:
        failure = event.get("log_failure") or event.get("failure")
        if failure is None and not event.get("isError"):
            return
        if failure is not None and failure.frames:
            raised_in = failure.frames[-1][0]
            if (failure.type.__name__, raised_in) in KNOWN_CRASHES or any(
                failure.type.__name__ == name and frame[0] == function
                for name, function in KNOWN_CRASHES
                for frame in failure.frames
            ):
                return
        self.failures.append(event)


@contextmanager
def logged_errors() -> Iterator[Errors]:
    errors = Errors()
    globalLogPublisher.addObserver(errors)
    try:
        yield errors
    finally:
        globalLogPublisher.removeObserver(errors)


class Lab:
    """
    A fresh store with two messages, and IMAP and SMTP factories over it.
    """

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="netlab-fuzz-"))
        self.store = MailStore(self.root)
        self.store.ensure_user(USER)
        for message in SEED:
            self.store.deliver(USER, message)
        checker = InMemoryUsernamePasswordDatabaseDontUse(**{USER: PASSWORD.encode()})
        self.clock = Clock()
        self.imap = LabIMAPFactory(
            portal=Portal(LabRealm(self.store), [checker]),
            tls=None,
            allow_plaintext_auth=True,
            reactor=self.clock,
            max_message_size=MAX_MESSAGE,
            max_line_length=MAX_LINE,
        )
        self.smtp = LabSMTPFactory(
            users=shared_users_file(),
            domains=["example.test"],
            deliver=self.deliver,
            tls=None,
            max_message_size=MAX_MESSAGE,
            hostname="lab.example.test",
            reactor=self.clock,
        )

    def deliver(
        self, message: bytes, copies: Mapping[str, bytes], envelope: Envelope
    ) -> dict[str, int]:
        """
        Deliver as C{MailLab} does, without its group commit's timer.
        """
        return self.store.deliver_many(
            message, list(copies), envelope=envelope, prefixes=copies
        )

    def close(self) -> None:
        shutil.rmtree(self.root, True)

    def leftovers(self) -> list[Path]:
        """
        Half-written files in any tmp/ of the store.
        """
        return [p for p in self.root.rglob("tmp/*") if p.is_file()]


class Connection:
    """
    A server protocol on a L{StringTransport}, fed in chunks, with its
    buffer watched.
    """

    def __init__(self, factory: Any) -> None:
        self.server = factory.buildProtocol(None)
        self.transport = StringTransport()
        self.server.makeConnection(self.transport)
        self.output = self.take()
        self.largest_buffer = 0

    def take(self) -> bytes:
        value = self.transport.value()
        self.transport.clear()
        return value

    @property
    def closed(self) -> bool:
        return bool(self.transport.disconnecting)

    def feed(self, data: bytes, cuts: list[int] = ()) -> bytes:  # type: ignore[assignment]
        """
        Feed C{data} in chunks cut at C{cuts}; what the server wrote.
        """
        points = [*sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
        start = 0
        for point in points:
            if self.closed:
                break
            chunk = data[start:point]
            start = point
            self.server.dataReceived(chunk)
            held = len(getattr(self.server, "_buffer", b""))
            bound = getattr(self.server, "MAX_LENGTH", MAX_LINE) + len(chunk) + 2
            assert held <= bound, f"holds {held} unparsed bytes (bound {bound})"
        return self.take()

    def lose(self) -> None:
        if not self.closed:
            self.server.connectionLost(Failure(ConnectionLost()))


def login_and_select(connection: Connection) -> None:
    out = connection.feed(
        b'p1 LOGIN "' + USER.encode() + b'" "' + PASSWORD.encode() + b'"\r\n'
        b"p2 ENABLE CONDSTORE\r\np3 SELECT INBOX\r\n"
    )
    assert b"p1 OK" in out and b"p3 OK" in out, out


cut_points = st.lists(st.integers(0, 5000), max_size=6)


class IMAPFuzzTests(SynchronousTestCase):
    """
    The IMAP server against generated commands.
    """

    def setUp(self) -> None:
        # Trial's own check of logged errors: the known crashes are judged
        # (by where they were raised) in Errors.
        self.addCleanup(
            self.flushLoggedErrors,
            imap4.IllegalIdentifierError,
            imap4.MismatchedNesting,
        )

    def run_imap(
        self,
        commands: tuple[tuple[bytes | None, list[Piece]], ...],
        authenticated: bool,
        cuts: list[int],
        disconnect_at: int | None,
    ) -> None:
        lab = Lab()
        try:
            with logged_errors() as errors:
                connection = Connection(lab.imap)
                if authenticated:
                    login_and_select(connection)
                burst = b"".join(serialise(p) for _, p in commands)
                if disconnect_at is not None:
                    connection.feed(burst[: disconnect_at % (len(burst) + 1)], cuts)
                    connection.lose()
                    assert lab.leftovers() == [], lab.leftovers()
                else:
                    connection.feed(burst, cuts)
                    self.assert_in_step(connection)
                    connection.lose()
            assert errors.failures == [], errors.failures
        finally:
            lab.close()

    def assert_in_step(self, connection: Connection) -> None:
        """
        After whatever came before, a NOOP gets its tagged OK (or the
        server has closed the connection).
        """
        if connection.closed:
            return
        # Leave IDLE or an AUTHENTICATE exchange, should either be going on.
        out = connection.feed(b"DONE\r\n*\r\nzz NOOP\r\n")
        if connection.closed:
            return
        assert b"\r\nzz OK" in b"\r\n" + out, out[-500:]

    @FUZZ_SETTINGS
    @given(
        commands=imap_bursts,
        authenticated=st.booleans(),
        cuts=cut_points,
    )
    def test_bursts(
        self,
        commands: tuple[tuple[bytes | None, list[Piece]], ...],
        authenticated: bool,
        cuts: list[int],
    ) -> None:
        """
        Pipelined bursts of generated commands, cut anywhere: no error, the
        buffer bounded, and a NOOP answered afterwards.
        """
        self.run_imap(commands, authenticated, cuts, None)

    @FUZZ_SETTINGS
    @given(
        commands=imap_bursts,
        authenticated=st.booleans(),
        cuts=cut_points,
        where=st.integers(0, 10_000),
    )
    def test_disconnects(
        self,
        commands: tuple[tuple[bytes | None, list[Piece]], ...],
        authenticated: bool,
        cuts: list[int],
        where: int,
    ) -> None:
        """
        A connection lost anywhere in a burst (mid-line, mid-literal,
        mid-APPEND): no error logged, no half-written file left.
        """
        self.run_imap(commands, authenticated, cuts, where)

    @FUZZ_SETTINGS
    @given(commands=imap_bursts, authenticated=st.booleans())
    def test_one_at_a_time(
        self,
        commands: tuple[tuple[bytes | None, list[Piece]], ...],
        authenticated: bool,
    ) -> None:
        """
        Commands sent as a careful client sends them (a synchronising
        literal only after C{+}): each gets its tagged answer, or the
        connection is closed; none hangs.
        """
        lab = Lab()
        try:
            with logged_errors() as errors:
                connection = Connection(lab.imap)
                if authenticated:
                    login_and_select(connection)
                for tag, pieces in commands:
                    if connection.closed:
                        break
                    self.one_command(connection, tag, pieces)
                self.assert_in_step(connection)
                connection.lose()
            assert errors.failures == [], errors.failures
        finally:
            lab.close()

    def one_command(
        self, connection: Connection, tag: bytes | None, pieces: list[Piece]
    ) -> None:
        out = b""
        refused = False
        for piece in pieces:
            if connection.closed:
                return
            if isinstance(piece, tuple):
                marker, content = piece[1], piece[2]
                if marker.endswith(b"+}") or (
                    out.endswith(b"\r\n")
                    and (out.rsplit(b"\r\n", 2)[-2].startswith(b"+"))
                ):
                    out += connection.feed(content)
                else:
                    refused = True
                    break
            else:
                out += connection.feed(piece + b"\r\n")
        if connection.closed or tag is None:
            return
        lines = out.split(b"\r\n")
        if not any(line.startswith(tag + b" ") for line in lines):
            if refused or (len(lines) > 1 and lines[-2].startswith(b"+")):
                # Waiting for a literal we did not send, or in IDLE or
                # AUTHENTICATE: a client would cancel.
                out += connection.feed(b"DONE\r\n*\r\n")
                if connection.closed:
                    return
                if refused:
                    out += connection.feed(b"\r\n")
            if connection.closed:
                return
        assert (
            any(line.startswith(tag + b" ") for line in out.split(b"\r\n")) or refused
        ), (pieces, out[-600:])


class SMTPFuzzTests(SynchronousTestCase):
    """
    The SMTP server against generated command streams.
    """

    def run_smtp(
        self, lines: list[bytes], cuts: list[int], disconnect_at: int | None
    ) -> None:
        lab = Lab()
        try:
            with logged_errors() as errors:
                connection = Connection(lab.smtp)
                assert connection.output.startswith(b"220"), connection.output
                stream = b"".join(line + b"\r\n" for line in lines)
                if disconnect_at is not None:
                    connection.feed(stream[: disconnect_at % (len(stream) + 1)], cuts)
                    connection.lose()
                    assert lab.leftovers() == [], lab.leftovers()
                else:
                    connection.feed(stream, cuts)
                    if not connection.closed:
                        # End a DATA or an AUTH exchange, should one be open,
                        # and a BDAT chunk: the server reads a chunk before it
                        # answers, even one it refuses (RFC 3030), and the
                        # generated sizes are at most 10 octets.
                        connection.feed(b"\r\n.\r\n*\r\n" + b"\r\n" * 5)
                    if not connection.closed:
                        out = connection.feed(b"NOOP\r\n")
                        if not connection.closed:
                            assert out.startswith(b"250"), out
                    connection.lose()
            assert errors.failures == [], errors.failures
        finally:
            lab.close()

    @FUZZ_SETTINGS
    @given(lines=smtp_lines(), cuts=cut_points)
    # A refused BDAT whose chunk the end of the stream must complete.
    @example(lines=[b"BDAT 10"], cuts=[])
    def test_bursts(self, lines: list[bytes], cuts: list[int]) -> None:
        """
        Pipelined SMTP lines and DATA bodies, cut anywhere: no error, the
        buffer bounded, and a NOOP answered 250 afterwards.
        """
        self.run_smtp(lines, cuts, None)

    @FUZZ_SETTINGS
    @given(lines=smtp_lines(), cuts=cut_points, where=st.integers(0, 5000))
    def test_disconnects(self, lines: list[bytes], cuts: list[int], where: int) -> None:
        """
        A connection lost anywhere (mid-DATA included): no error logged,
        nothing half-written left in the store.
        """
        self.run_smtp(lines, cuts, where)
