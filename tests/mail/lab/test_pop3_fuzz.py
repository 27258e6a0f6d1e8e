"""
A grammar-aware fuzz test of the lab's POP3 server (Hypothesis): mutated
commands in random case, random bytes, missing and extra arguments,
over-long lines, pipelined bursts cut at random places, and a disconnect in
the middle of a line.

After every burst the server must have answered every complete line with
exactly one well-formed response (multi-line ones terminated, RETR's
content intact), logged no error, kept its buffers bounded, and still time
out an idle connection; a connection that ends without QUIT must leave the
maildrop as it was.

The number of examples is bounded for the test suite (a few seconds);
C{NETLAB_FUZZ_EXAMPLES=20000 pytest tests/mail/lab/test_pop3_fuzz.py} runs
longer.
"""

from __future__ import annotations

import base64
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.logger import ILogObserver, LogEvent, LogLevel, globalLogPublisher
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.mail.lab.test_pop3 import FIRST, SECOND, THIRD, TLSStringTransport
from twisted_netlab.mail.lab.pop3 import LabMaildropRealm, LabPOP3Factory, pop3_lines
from twisted_netlab.mail.lab.store.maildir import MailStore

USER = b"alice@netlab.test"
PASSWORD = b"secret pass"
# Hypothesis keeps a cache in ./.hypothesis; keep it out of the checkout.
if not os.environ.get("HYPOTHESIS_STORAGE_DIRECTORY"):
    set_hypothesis_home_dir(Path(tempfile.gettempdir()) / "netlab-hypothesis")

MAX_LENGTH = 512
EXAMPLES = int(os.environ.get("NETLAB_FUZZ_EXAMPLES", "120"))
# Each example copies a small Maildir and may sync it: on tmpfs if there is
# one, so that the disk does not set the pace.
SCRATCH = "/dev/shm" if os.path.isdir("/dev/shm") else None
MESSAGES = (FIRST, SECOND, THIRD)

COMMANDS = [
    b"USER",
    b"PASS",
    b"APOP",
    b"AUTH",
    b"STLS",
    b"CAPA",
    b"STAT",
    b"LIST",
    b"UIDL",
    b"RETR",
    b"TOP",
    b"DELE",
    b"NOOP",
    b"RSET",
    b"QUIT",
    b"LAST",
    b"RPOP",
    b"XTND",
]


def plain(authzid: bytes, user: bytes, password: bytes) -> bytes:
    return base64.b64encode(authzid + b"\0" + user + b"\0" + password)


@st.composite
def random_case(draw: st.DrawFn, word: bytes) -> bytes:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return bytes(
        c ^ 0x20 if flip and chr(c).isalpha() else c
        for c, flip in zip(word, flips, strict=True)
    )


ARGUMENTS = st.one_of(
    st.integers(min_value=-2, max_value=5).map(lambda n: b"%d" % n),
    st.sampled_from(
        [
            b"99999999999999999999",
            b"1.5",
            b"0x1",
            b"\xd9\xa3",
            USER,
            PASSWORD,
            b"wrong",
            b"PLAIN",
            b"plain",
            b"LOGIN",
            b"=",
            b"*",
            plain(b"", USER, PASSWORD),
            plain(USER, USER, PASSWORD),
            plain(b"", USER, b"wrong"),
            plain(b"bob@netlab.test", USER, PASSWORD),
            b"AAAA!",
            b"",
        ]
    ),
    st.binary(max_size=12),
)


@st.composite
def command_line(draw: st.DrawFn) -> bytes:
    kind = draw(st.integers(min_value=0, max_value=9))
    if kind == 0:
        return draw(st.binary(max_size=40))
    if kind == 1:
        return b"X" * draw(
            st.integers(min_value=MAX_LENGTH - 2, max_value=MAX_LENGTH * 3)
        )
    word = draw(random_case(draw(st.sampled_from(COMMANDS))))
    separator = draw(st.sampled_from([b" ", b" ", b" ", b"  ", b"\t"]))
    args = draw(st.lists(ARGUMENTS, max_size=3))
    return separator.join([word, *args])


TERMINATORS = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b""])

LOGIN = b"USER " + USER + b"\r\nPASS " + PASSWORD + b"\r\n"


@st.composite
def session(draw: st.DrawFn) -> tuple[list[bytes], bool]:
    """
    A byte stream of commands cut into reads; whether it ends with QUIT.
    """
    parts = []
    if draw(st.booleans()):
        parts.append(draw(st.sampled_from([LOGIN, b"STLS\r\n" + LOGIN])))
    for line in draw(st.lists(command_line(), max_size=25)):
        parts.append(line + draw(TERMINATORS))
    quit_at_end = draw(st.booleans())
    if quit_at_end:
        parts.append(b"QUIT\r\n")
    stream = b"".join(parts)
    cuts = sorted(
        set(draw(st.lists(st.integers(min_value=0, max_value=len(stream)), max_size=8)))
    )
    reads = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    return [r for r in reads if r], quit_at_end


@dataclass
class Reader:
    """
    What a client reads: responses off the server's output, one at a time.
    """

    data: bytes
    offset: int = 0

    def line(self) -> bytes:
        end = self.data.find(b"\r\n", self.offset)
        assert end >= 0, f"unterminated response: {self.data[self.offset :][:200]!r}"
        line = self.data[self.offset : end]
        self.offset = end + 2
        return line

    def rest(self) -> bytes:
        return self.data[self.offset :]


@dataclass
class Model:
    """
    How the server splits lines and which of its answers are multi-line:
    just enough of the protocol to read its responses.
    """

    buffer: bytes = b""
    discarding: bool = False
    sasl: bool = False
    logged_in: bool = False
    closed: bool = False
    committed: bool = False
    problems: list[str] = field(default_factory=list)

    def lines_of(self, data: bytes) -> list[bytes | None]:
        """The lines a read completes (L{None}: one too long)."""
        pieces = (self.buffer + data).split(b"\n")
        self.buffer = pieces.pop()
        lines: list[bytes | None] = []
        for piece in pieces:
            if self.discarding:
                self.discarding = False
                continue
            if len(piece) > MAX_LENGTH:
                lines.append(None)
            else:
                lines.append(piece[:-1] if piece.endswith(b"\r") else piece)
        if len(self.buffer) > MAX_LENGTH:
            self.buffer = b""
            if not self.discarding:
                self.discarding = True
                lines.append(None)
        return lines

    def read_response(self, reader: Reader, line: bytes | None) -> bool:
        """
        Read the answer to C{line}; return whether the rest of the read is
        dropped (STLS).
        """
        status = reader.line()
        assert status.startswith((b"+OK", b"-ERR")) or status == b"+ ", status
        ok = status.startswith(b"+OK")
        if line is None:
            assert status.startswith(b"-ERR"), status
            self.sasl = False
            return False
        if self.sasl:
            self.sasl = False
            self.logged_in = self.logged_in or ok
            return False
        command, _, rest = line.partition(b" ")
        command = command.upper()
        args = rest.split()
        if status == b"+ ":
            assert command == b"AUTH", line
            self.sasl = True
            return False
        multi = command in (b"CAPA", b"RETR", b"TOP") or (
            command in (b"LIST", b"UIDL", b"AUTH") and not args
        )
        if ok and multi:
            body = []
            while (piece := reader.line()) != b".":
                assert not piece.startswith(b".") or piece.startswith(b".."), piece
                body.append(piece[1:] if piece.startswith(b".") else piece)
            if command == b"RETR":
                expected = pop3_lines(MESSAGES[int(args[0]) - 1])
                assert b"".join(p + b"\r\n" for p in body) == expected.replace(
                    b"\r\n..", b"\r\n."
                ).removeprefix(b"."), line
        if command in (b"USER", b"PASS") and ok and status.startswith(b"+OK Logged"):
            self.logged_in = True
        if command == b"AUTH" and ok and args:
            self.logged_in = True
        if (command == b"QUIT" and not args) or b"too many attempts" in status:
            self.closed = True
            self.committed = self.logged_in and command == b"QUIT"
        return command == b"STLS" and ok


class SlowChecker:
    """
    Checks passwords like C{checker}, but answers only when L{fire} is
    called (as the lab's thread pool does, later), so that the commands
    behind a PASS or AUTH wait in the server's queue.
    """

    credentialInterfaces = InMemoryUsernamePasswordDatabaseDontUse.credentialInterfaces

    def __init__(self, checker: InMemoryUsernamePasswordDatabaseDontUse) -> None:
        self.checker = checker
        self.pending: list[tuple[Any, Deferred[Any]]] = []

    def requestAvatarId(self, credentials: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.pending.append((credentials, d))
        return d

    def fire(self) -> None:
        """Answer every check asked so far, and those they lead to."""
        while self.pending:
            credentials, d = self.pending.pop(0)
            self.checker.requestAvatarId(credentials).chainDeferred(d)


class POP3FuzzTests(SynchronousTestCase):
    """
    The POP3 server against Hypothesis' sessions.
    """

    def setUp(self) -> None:
        self.template = Path(tempfile.mkdtemp(prefix="netlab-pop3-fuzz-"))
        self.addCleanup(shutil.rmtree, self.template, True)
        store = MailStore(self.template / "mail")
        store.ensure_user(USER.decode())
        for message in MESSAGES:
            store.deliver(USER.decode(), message)
        self.events: list[LogEvent] = []
        observer = cast(ILogObserver, self.events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def run_session(self, reads: list[bytes], **options: Any) -> None:
        work = Path(tempfile.mkdtemp(prefix="netlab-pop3-fuzz-", dir=SCRATCH))
        try:
            shutil.copytree(self.template / "mail", work / "mail")
            self._run_session(MailStore(work / "mail"), reads, **options)
        finally:
            shutil.rmtree(work, True)

    def _run_session(
        self, store: MailStore, reads: list[bytes], slow: bool = False, **options: Any
    ) -> None:
        del self.events[:]
        checker: Any = InMemoryUsernamePasswordDatabaseDontUse(
            **{USER.decode(): PASSWORD}
        )
        if slow:
            checker = SlowChecker(checker)
        clock = Clock()
        factory = LabPOP3Factory(
            portal=Portal(LabMaildropRealm(store), [checker]),
            reactor=clock,
            max_line_length=MAX_LENGTH,
            **options,
        )
        server = factory.buildProtocol(None)
        transport = TLSStringTransport()
        server.makeConnection(transport)
        assert transport.value().startswith(b"+OK")
        model = Model()
        for data in reads:
            transport.clear()
            server.dataReceived(data)
            if slow:
                checker.fire()
            reader = Reader(transport.value())
            for line in model.lines_of(data):
                if model.closed:
                    break
                if model.read_response(reader, line):
                    model.buffer, model.discarding = b"", False
                    break
            self.assertEqual(reader.rest(), b"", "more output than answers")
            self.assertLessEqual(len(server._buffer), MAX_LENGTH)
            self.assertIsNone(server.blocked)
            if model.closed:
                self.assertTrue(transport.disconnecting)
                break
        if not model.closed:
            # Never hangs: the idle timer runs.
            clock.advance(factory.idle_timeout)
            self.assertTrue(transport.disconnecting)
        server.connectionLost(Failure(ConnectionLost()))
        bad = [
            e
            for e in self.events
            if "log_failure" in e
            or e.get("log_level") in (LogLevel.error, LogLevel.critical)
        ]
        self.assertEqual(bad, [])
        if not model.committed:
            folder = store.folder(USER.decode())
            self.assertEqual(len(folder.uids()), 3)
            self.assertFalse(
                any("\\Seen" in folder.entry(u).flags for u in folder.uids())
            )

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(session())
    def test_plaintext_allowed(self, stream: tuple[list[bytes], bool]) -> None:
        """
        No TLS, plaintext logins allowed: the whole protocol is reachable.
        """
        self.run_session(stream[0], tls=None, allow_plaintext_auth=True)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(session())
    def test_stls_required(self, stream: tuple[list[bytes], bool]) -> None:
        """
        TLS offered with STLS, plaintext logins refused: what follows STLS
        in the same read is dropped, and nothing else is lost.
        """
        self.run_session(stream[0], tls=object(), allow_plaintext_auth=False)

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(session(), st.booleans())
    def test_slow_password_checks(
        self, stream: tuple[list[bytes], bool], plaintext: bool
    ) -> None:
        """
        Password checks that answer later: the lines behind PASS and AUTH
        wait in the queue and are answered in order, STLS among them too.
        """
        self.run_session(
            stream[0], slow=True, tls=object(), allow_plaintext_auth=plaintext
        )

    def test_regressions(self) -> None:
        """
        Inputs that once went wrong (kept as regression tests).
        """
        for reads in [
            [b"X" * (MAX_LENGTH + 1), b"\r\nNOOP\r\n"],
            [b"X" * MAX_LENGTH + b"\r", b"\n"],
            [b"AUTH PLAIN\r\n", b"X" * 600 + b"\r\nCAPA\r\n"],
            [LOGIN + b"RETR 2\r\nTOP 2 1\r\nDELE 1\r\nRSET\r\n", b"QUIT\r\n"],
            [b"STLS\r\nUSER x\r", b"\nCAPA\r\n"],
            [b"\r\n" * 14 + b"QUIT\r\n" + b"X" * 600 + b"\r", b"\n"],
            [b"USER a\r\nPASS b\r\nSTLS\r\nUSER c\r\n" + b"Y" * 600, b"\nNOOP\r\n"],
        ]:
            self.run_session(reads, tls=object(), allow_plaintext_auth=False)
            self.run_session(reads, tls=None, allow_plaintext_auth=True)
            self.run_session(reads, slow=True, tls=object(), allow_plaintext_auth=True)
