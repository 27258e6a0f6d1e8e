"""
The mail lab for other projects' tests: helpers for trial, and a pytest
plugin (registered as the C{pytest11} entry point C{netlab_mail_lab}).

With trial, unit tests run the lab on a L{MemoryReactor} and talk to it in
memory (L{twisted.test.iosim}), synchronously::

    class MyTests(SynchronousTestCase):
        def test_send(self):
            lab = memory_mail_lab(self, users={"alice@example.test": "pw"})
            client = MyESMTPClient(...)
            pump = connect_in_memory(lab, "smtp", client)
            pump.flush()
            self.assertEqual(len(lab.messages("alice@example.test")), 1)

With pytest and pytest-twisted, the C{mail_lab} fixture is a lab on real
loopback ports (C{mail_lab.smtp_port}, C{mail_lab.imap_port},
C{mail_lab.http_port}, C{mail_lab.pop3_port}, C{mail_lab.ca_path}; C{await
mail_lab.wait_for(query)} for the messages a test expects); override the
C{mail_lab_options} fixture to choose its domains and users. One lab serves
the tests that share their options, reset between them. Blocking clients
(smtplib, imaplib, poplib) must run in a thread (C{deferToThread}), never in
the reactor thread.

Each message check is a call: C{result = await mail_lab.check(message.id,
"lint")}, then C{assert result.errors == []} (docs/checks.rst). Tests that
are not C{async} take the C{blocking_mail_lab} fixture instead (a
L{lab_in_thread} with the same options), whose C{check} returns the result:
C{assert blocking_mail_lab.check(message.id, "lint").errors == []}.

Tests that run no reactor use L{lab_in_thread}: a lab on a reactor of its
own in a background thread, with blocking C{wait_for}, C{search}, C{clear},
C{check} (C{lab.check(message.id, "lint").errors == []}).

Nothing here imports the reactor, or twisted.mail, until it is used: pytest
loads this module at start-up in every project that installs
twisted_netlab.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

try:
    import pytest
except ImportError:  # pragma: no cover - trial users need no pytest
    pytest = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from twisted.test.iosim import IOPump
    from twisted.trial.unittest import SynchronousTestCase

    from twisted_netlab.mail.lab.faults import FaultHandle
    from twisted_netlab.mail.lab.service import MailLab
    from twisted_netlab.mail.lab.store.catalog import CapturedMessage

#: The lab's defaults for tests: one domain, two users.
DEFAULT_DOMAINS = ("example.test",)
DEFAULT_USERS = {
    "alice@example.test": "alice-password",
    "bob@example.test": "bob-password",
}


def memory_mail_lab(
    test_case: SynchronousTestCase,
    *,
    domains: tuple[str, ...] | list[str] = DEFAULT_DOMAINS,
    users: dict[str, str] | None = None,
    **options: Any,
) -> MailLab:
    """
    A started L{MailLab} on a fresh L{MemoryReactorClock} (C{lab.reactor};
    advance it to run timeouts), its state in a new temporary directory; it
    is stopped, and the directory removed, when the test ends.

    @param options: more L{MailLab} keyword arguments (C{require_auth=True},
        C{max_message_size=...}, ...).
    """
    from twisted.internet.testing import MemoryReactorClock

    from twisted_netlab.mail.lab.service import MailLab

    # Not test_case.mktemp(): under pytest that writes into the checkout.
    directory = Path(tempfile.mkdtemp(prefix="netlab-mail-lab-"))
    test_case.addCleanup(shutil.rmtree, directory, True)
    options.setdefault("pop3", ["tcp:0:interface=127.0.0.1"])
    lab = MailLab(
        MemoryReactorClock(),
        state=directory / "state",
        domains=domains,
        users=DEFAULT_USERS if users is None else users,
        **options,
    )
    test_case.successResultOf(lab.start())
    test_case.addCleanup(lab.stop)
    return lab


def connect_in_memory(
    lab: MailLab,
    kind: str,
    client: Any,
    *,
    client_address: tuple[str, int] = ("127.0.0.1", 54321),
) -> IOPump:
    """
    Connect protocol C{client} in memory to the lab's first C{kind}
    (C{"smtp"}, C{"imap"} or C{"pop3"}) server, as from C{client_address},
    and deliver the server's greeting; pump the returned L{IOPump} to move more bytes.

    There is no TLS in memory (no STARTTLS is offered): to log in, make the
    lab with C{allow_plaintext_auth=True} (the client is on loopback).

    @raise LookupError: the lab has no such server.
    """
    from twisted.internet.address import IPv4Address
    from twisted.internet.interfaces import IConsumer, ITransport
    from twisted.test.iosim import FakeTransport, connect
    from zope.interface import implementer_only

    # iosim's transports pretend to do TLS in a way real TLS options cannot
    # follow: these cannot, so neither side offers or tries STARTTLS.
    @implementer_only(ITransport, IConsumer)
    class PlainTransport(FakeTransport):
        pass

    factories = lab.factories.get(kind)
    if not factories:
        raise LookupError(f"the lab has no {kind} server")
    host = IPv4Address("TCP", "127.0.0.1", 2525 if kind == "smtp" else 1143)
    peer = IPv4Address("TCP", *client_address)
    server = factories[0].buildProtocol(peer)
    return connect(
        server,
        PlainTransport(server, isServer=True, hostAddress=host, peerAddress=peer),
        client,
        PlainTransport(client, isServer=False, hostAddress=peer, peerAddress=host),
    )


class ThreadedLab:
    """
    A L{MailLab} running on a reactor of its own in a background thread, for
    tests that run no reactor (plain pytest with Django, Flask, requests):
    every method blocks until the lab has answered. Made by L{lab_in_thread}.

    @ivar lab: the L{MailLab} (use it only through L{call}).
    """

    def __init__(self, lab: MailLab, reactor: Any) -> None:
        self.lab = lab
        self.reactor = reactor
        self.smtp_port = lab.smtp_port
        self.imap_port = lab.imap_port
        self.http_port = lab.http_port
        self.ca_path = lab.ca_path
        self.base_url = f"http://127.0.0.1:{self.http_port}"

    def call(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """
        Run C{function} in the lab's reactor thread and return its result
        (waiting for it if it is a Deferred).
        """
        from twisted.internet.threads import blockingCallFromThread

        return blockingCallFromThread(self.reactor, function, *args, **kwargs)

    def wait_for(
        self, query: str = "", count: int = 1, timeout: float = 10.0
    ) -> list[CapturedMessage]:
        """
        The messages matching C{query} once at least C{count} do (newest
        first); raises L{twisted_netlab.mail.lab.store.catalog.WaitTimeout} after
        C{timeout} seconds.
        """
        return self.call(self.lab.wait_for, query, count=count, timeout=timeout)

    def search(self, query: str = "") -> list[CapturedMessage]:
        """The messages matching C{query} now, newest first."""
        return self.call(self.lab.search, query)

    def clear(self) -> None:
        """Delete every message."""
        self.call(self.lab.clear)

    def messages(self, address: str, mailbox: str = "INBOX") -> list[bytes]:
        """The bytes of every message of C{address}'s C{mailbox}."""
        return self.call(self.lab.messages, address, mailbox)

    def check(self, message_id: str, name: str, **options: Any) -> Any:
        """
        The result of check C{name} (C{"html"}, C{"links"}, C{"spam"},
        C{"auth"}, C{"lint"}) of message C{message_id}, with attributes::

            assert lab.check(message.id, "lint").errors == []

        (L{MailLab.check<twisted_netlab.mail.lab.service.MailLab.check>};
        docs/checks.rst lists each result's attributes.)
        """
        return self.call(self.lab.check, message_id, name, **options)

    def add_fault(self, spec: str) -> FaultHandle:
        """
        Make the lab fail on purpose (docs/faults.rst): C{spec} such as
        C{"rcpt:reply=451:times=2"}. The handle counts its C{hits}; its
        C{remove()}, and a C{with} block, work from this thread.
        """
        return self.call(self.lab.faults.add, spec)

    def clear_faults(self) -> None:
        """Remove every fault."""
        self.call(self.lab.faults.clear)

    def stop(self) -> None:
        """
        Stop the lab and its reactor (done by L{lab_in_thread} at the end).
        """
        if self.lab.running:
            self.call(self.lab.stop)


_clock_lock = threading.Lock()
_thread_clocks: dict[int, Any] = {}


def _use_thread_reactors_for_tls() -> None:
    """
    Make TLS connections made in a lab's reactor thread schedule their
    writes on that reactor. Twisted's TLS (C{twisted.protocols.tls}) takes
    its clock from C{_get_default_clock()}, the global reactor, for every
    STARTTLS; Twisted made it a function to be replaced so. The
    replacement answers the reactor of the calling thread when
    L{lab_in_thread} runs one there, and the global reactor otherwise.
    """
    from twisted.protocols import tls

    with _clock_lock:
        if getattr(tls._get_default_clock, "netlab_threads", False):
            return
        original = tls._get_default_clock

        def clock() -> Any:
            reactor = _thread_clocks.get(threading.get_ident())
            return reactor if reactor is not None else original()

        clock.netlab_threads = True  # type: ignore[attr-defined]
        tls._get_default_clock = clock


def _new_reactor() -> Any:
    try:
        from twisted.internet.epollreactor import EPollReactor

        return EPollReactor()
    except ImportError:  # pragma: no cover - not Linux
        from twisted.internet.selectreactor import SelectReactor

        return SelectReactor()


@contextmanager
def lab_in_thread(**options: Any) -> Iterator[ThreadedLab]:
    """
    Start a mail lab on free loopback ports (SMTP, IMAP and the HTTP API),
    on a reactor of its own running in a background thread, and stop both
    at the end::

        with lab_in_thread() as lab:
            smtplib.SMTP("127.0.0.1", lab.smtp_port).sendmail(...)
            [message] = lab.wait_for("to:bob@example.test")

    For tests that run no reactor themselves (plain pytest with Django,
    Flask or requests). The reactor is not the global one, so this works
    whether or not the process runs that (pytest-twisted does).

    @param options: L{MailLab} keyword arguments (default domains
        example.test, users alice and bob, and a temporary state directory
        removed at the end).
    """
    from twisted.internet.defer import Deferred
    from twisted.internet.threads import blockingCallFromThread

    from twisted_netlab.mail.lab.service import EPHEMERAL, MailLab

    _use_thread_reactors_for_tls()
    reactor = _new_reactor()
    directory = None
    if "state" not in options:
        directory = Path(tempfile.mkdtemp(prefix="netlab-mail-lab-"))
        options["state"] = directory / "state"
    options.setdefault("domains", DEFAULT_DOMAINS)
    options.setdefault("users", DEFAULT_USERS)
    options.setdefault("http", (EPHEMERAL,))

    def run() -> None:
        _thread_clocks[threading.get_ident()] = reactor
        try:
            reactor.run(installSignalHandlers=False)
        finally:
            _thread_clocks.pop(threading.get_ident(), None)

    thread = threading.Thread(target=run, name="netlab mail lab reactor", daemon=True)
    thread.start()
    try:

        def start() -> Deferred[MailLab]:
            return MailLab(reactor, **options).start()

        lab: MailLab = blockingCallFromThread(reactor, cast(Callable[[], Any], start))
        threaded = ThreadedLab(lab, reactor)
        try:
            yield threaded
        finally:
            threaded.stop()
    finally:
        reactor.callFromThread(reactor.stop)
        thread.join(30)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)


if pytest is not None:
    # Only for pytest users; trial users need no pytest.

    @pytest.fixture
    def mail_lab_options() -> dict[str, Any]:
        """
        Keyword arguments for the C{mail_lab} fixture's L{MailLab}: override
        this fixture to change them (defaults: domain example.test, users
        alice@example.test / alice-password and bob@example.test / bob-password).
        """
        return {"domains": DEFAULT_DOMAINS, "users": DEFAULT_USERS}

    class _LabPool:
        """
        The labs the C{mail_lab} fixture made, one per set of options.
        """

        def __init__(self, root: Path) -> None:
            self.root = root
            self.labs: dict[str, MailLab] = {}

    @pytest.fixture(scope="session")
    def _mail_lab_pool(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_LabPool]:
        """
        The session's labs, stopped at its end.
        """
        pool = _LabPool(tmp_path_factory.mktemp("mail-labs"))
        try:
            yield pool
        finally:
            import pytest_twisted

            for lab in pool.labs.values():
                pytest_twisted.blockon(lab.stop())

    @pytest.fixture
    def mail_lab(
        tmp_path: Path,
        mail_lab_options: dict[str, Any],
        _mail_lab_pool: _LabPool,
    ) -> Iterator[MailLab]:
        """
        A L{MailLab} listening on free loopback ports (SMTP, IMAP and the HTTP
        API), in the reactor run by pytest-twisted.

        One lab serves every test that asks for the same options, and is
        reset between them (L{MailLab.reset}: no mail, UIDs from 1, the
        users as given), which costs a few file operations. Put
        C{"fresh": True} in C{mail_lab_options} for a lab of the test's own.
        """
        try:
            import pytest_twisted
        except ImportError:
            pytest.fail(
                "the mail_lab fixture needs pytest-twisted: pip install pytest-twisted"
            )
        from twisted.internet import reactor

        from twisted_netlab.mail.lab.service import EPHEMERAL, MailLab

        options = dict(mail_lab_options)
        fresh = bool(options.pop("fresh", False))
        options.setdefault("http", (EPHEMERAL,))
        options.setdefault("pop3", (EPHEMERAL,))
        if fresh:
            options.setdefault("state", tmp_path / "mail-lab")
            lab = MailLab(reactor, **options)
            pytest_twisted.blockon(lab.start())
            try:
                yield lab
            finally:
                pytest_twisted.blockon(lab.stop())
            return
        key = repr(sorted((k, repr(v)) for k, v in options.items()))
        pool = _mail_lab_pool.labs
        pooled = pool.get(key)
        if pooled is None:
            options.setdefault("state", _mail_lab_pool.root / f"lab-{len(pool)}")
            pooled = MailLab(reactor, **options)
            pytest_twisted.blockon(pooled.start())
            pool[key] = pooled
        else:
            pooled.reset()
        yield pooled

    @pytest.fixture
    def blocking_mail_lab(mail_lab_options: dict[str, Any]) -> Iterator[ThreadedLab]:
        """
        A lab for pytest tests that are not C{async}: L{lab_in_thread} with
        the C{mail_lab_options} (a lab of the test's own, on a reactor of
        its own in a thread), so blocking clients run in the test itself
        and C{check}, C{wait_for} and C{search} return their answers::

            def test_lint(blocking_mail_lab):
                smtplib.SMTP("127.0.0.1", blocking_mail_lab.smtp_port).sendmail(...)
                [message] = blocking_mail_lab.wait_for("subject:hi")
                assert blocking_mail_lab.check(message.id, "lint").errors == []
        """
        options = dict(mail_lab_options)
        options.pop("fresh", None)
        with lab_in_thread(**options) as lab:
            yield lab
