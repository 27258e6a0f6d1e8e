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
C{mail_lab.pop3_port}, C{mail_lab.ca_path}); override the C{mail_lab_options}
fixture to choose its domains and users.  Blocking clients (smtplib, imaplib,
poplib) must run in a thread (C{deferToThread}), never in the reactor thread.

Nothing here imports the reactor, or twisted.mail, until it is used: pytest
loads this module at start-up in every project that installs
twisted_netlab.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

try:
    import pytest
except ImportError:  # pragma: no cover - trial users need no pytest
    pytest = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from twisted.test.iosim import IOPump
    from twisted.trial.unittest import SynchronousTestCase

    from twisted_netlab.mail.lab.service import MailLab

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

    @pytest.fixture
    def mail_lab(tmp_path: Path, mail_lab_options: dict[str, Any]) -> Iterator[MailLab]:
        """
        A L{MailLab} listening on free loopback ports for the test, in the
        reactor run by pytest-twisted; stopped afterwards.
        """
        try:
            import pytest_twisted
        except ImportError:
            pytest.fail(
                "the mail_lab fixture needs pytest-twisted: pip install pytest-twisted"
            )
        from twisted.internet import reactor

        from twisted_netlab.mail.lab.service import MailLab

        options = {
            "state": tmp_path / "mail-lab",
            "pop3": ["tcp:0:interface=127.0.0.1"],
            **mail_lab_options,
        }
        lab = MailLab(reactor, **options)
        pytest_twisted.blockon(lab.start())
        try:
            yield lab
        finally:
            pytest_twisted.blockon(lab.stop())
