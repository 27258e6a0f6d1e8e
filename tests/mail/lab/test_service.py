"""
Tests for L{twisted_netlab.mail.lab.service}: L{MailLab}, the lab as one
Twisted service.
"""

from __future__ import annotations

import re
from typing import Any, cast

from twisted.internet.error import CannotListenError
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import ILogObserver, LogEvent, formatEvent, globalLogPublisher
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial.unittest import SynchronousTestCase

from tests.certs import make_server_certificate
from tests.scratch import fresh_path
from twisted_netlab.endpoints import StartupError
from twisted_netlab.errors import NetlabError, UsageProblem
from twisted_netlab.mail.lab.imap.server import LabIMAPFactory
from twisted_netlab.mail.lab.service import LabStateError, MailLab
from twisted_netlab.mail.lab.smtp.server import LabSMTPFactory
from twisted_netlab.mail.lab.store.maildir import Envelope, MailStore
from twisted_netlab.mail.lab.users import UsersFile

USERS = {"alice@example.test": "alice-pw"}


class FailingReactor(MemoryReactorClock):
    """
    A memory reactor on which the second listen fails (its port is taken);
    it remembers which ports stopped listening.
    """

    def __init__(self) -> None:
        super().__init__()
        self.stopped: list[object] = []

    def listenTCP(
        self, port: int, factory: Any, backlog: int = 50, interface: str = ""
    ) -> Any:
        if self.tcpServers:
            error = OSError(98, "Address already in use")
            raise CannotListenError(interface, port, error)
        listening = super().listenTCP(port, factory, backlog, interface)
        listening.stopListening = lambda: self.stopped.append(listening)
        return listening


class MailLabTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.state = fresh_path(self)
        self.events: list[LogEvent] = []
        observer = cast(ILogObserver, self.events.append)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)

    def lab(self, reactor: Any = None, **kwargs: Any) -> MailLab:
        settings: dict[str, Any] = {
            "state": self.state,
            "domains": ["Example.test"],
            "users": USERS,
        }
        settings.update(kwargs)
        return MailLab(reactor or MemoryReactorClock(), **settings)

    def logged(self) -> str:
        return "\n".join(formatEvent(e) for e in self.events)

    def test_prepare(self) -> None:
        """
        Preparing makes the state directory: the users file with the given
        users, the lab's certificate, and each user's Maildir.
        """
        lab = self.lab()
        lab.prepare()
        self.assertEqual(
            UsersFile(self.state / "users").addresses(), ["alice@example.test"]
        )
        self.assertEqual(lab.ca_path, self.state / "tls" / "cert.pem")
        self.assertTrue(lab.ca_path is not None and lab.ca_path.exists())
        self.assertTrue((self.state / "mail" / "alice@example.test" / "cur").is_dir())
        self.assertEqual(lab.domains, ["example.test"])

    def test_given_password_replaces(self) -> None:
        """
        A user given again with another password gets that password.
        """
        self.lab().prepare()
        self.lab(users={"alice@example.test": "new-pw"}).prepare()
        users = UsersFile(self.state / "users")
        self.assertTrue(users.verify("alice@example.test", "new-pw"))

    def test_start(self) -> None:
        """
        Started, the lab listens for SMTP and IMAP on free loopback ports by
        default, logs where, and reports the ports.
        """
        reactor = MemoryReactorClock()
        lab = self.lab(reactor=reactor)
        self.assertIs(self.successResultOf(lab.start()), lab)
        listening = [
            (port, type(f), interface) for port, f, _, interface in reactor.tcpServers
        ]
        self.assertEqual(
            listening,
            [(0, LabSMTPFactory, "127.0.0.1"), (0, LabIMAPFactory, "127.0.0.1")],
        )
        self.assertEqual((lab.smtp_port, lab.imap_port), (0, 0))
        self.assertRaises(LookupError, lambda: lab.smtps_port)
        self.assertIn("mail lab: SMTP on 0.0.0.0:0", self.logged())
        self.assertIn(f"--cafile {lab.ca_path}", self.logged())
        self.successResultOf(lab.stop())
        self.assertFalse(lab.running)
        self.assertRaises(LookupError, lambda: lab.smtp_port)
        self.successResultOf(lab.stop())

    def test_restart_in_process(self) -> None:
        """
        A stopped lab can be started again: it listens anew.
        """
        reactor = MemoryReactorClock()
        lab = self.lab(reactor=reactor)
        self.successResultOf(lab.start())
        self.successResultOf(lab.stop())
        self.successResultOf(lab.start())
        self.assertEqual(len(reactor.tcpServers), 4)
        self.assertEqual(len(lab.ports["smtp"]), 1)
        self.assertTrue(lab.running)

    def test_implicit_tls_listeners(self) -> None:
        """
        SMTPS and IMAPS listeners serve the lab's factories behind TLS.
        """
        reactor = MemoryReactorClock()
        lab = self.lab(
            reactor=reactor, smtp=[], imap=[], smtps=["tcp:4650"], imaps=["tcp:9930"]
        )
        self.successResultOf(lab.start())
        factories: dict[int, Any] = {port: f for port, f, _, _ in reactor.tcpServers}
        self.assertIsInstance(factories[4650], TLSMemoryBIOFactory)
        self.assertIsInstance(factories[4650].wrappedFactory, LabSMTPFactory)
        self.assertTrue(factories[4650].wrappedFactory.implicit_tls)
        self.assertIsInstance(factories[9930].wrappedFactory, LabIMAPFactory)
        self.assertEqual((lab.smtps_port, lab.imaps_port), (4650, 9930))

    def test_settings_reach_the_servers(self) -> None:
        """
        The size limit, host name and login rules reach the SMTP factory.
        """
        lab = self.lab(
            max_message_size=1234,
            hostname="mail.example.test",
            require_auth=True,
            allow_plaintext_auth=True,
        )
        lab.prepare()
        [smtp] = lab.factories["smtp"]
        assert isinstance(smtp, LabSMTPFactory)
        self.assertEqual(smtp.max_message_size, 1234)
        self.assertEqual(smtp.hostname, "mail.example.test")
        self.assertTrue(smtp.require_auth)
        self.assertTrue(smtp.allow_plaintext_auth)
        self.assertEqual(smtp.domains, frozenset({"example.test"}))

    def test_delivery_through_smtp_factory(self) -> None:
        """
        What the SMTP side delivers is in the store, readable with
        C{messages} (address in any case), and logged with its UID.
        """
        lab = self.lab()
        lab.prepare()
        [smtp] = lab.factories["smtp"]
        assert isinstance(smtp, LabSMTPFactory)
        envelope = Envelope(
            "x@remote.test", ("Alice@example.test",), "::1", False, None, 1.0
        )
        self.assertEqual(
            self.successResultOf(
                smtp.deliver(
                    b"Subject: x\r\n\r\nhi\r\n",
                    {"alice@example.test": b"Received: by lab\r\n"},
                    envelope,
                )
            ),
            {"alice@example.test": 1},
        )
        self.assertEqual(
            lab.messages("ALICE@example.test"),
            [b"Received: by lab\r\nSubject: x\r\n\r\nhi\r\n"],
        )
        self.assertEqual(lab.store.envelope("alice@example.test", 1), envelope)
        self.assertIn(
            "stored a 18-byte message from <x@remote.test> for "
            "alice@example.test (UID 1)",
            self.logged(),
        )

    def test_add_user(self) -> None:
        """
        C{add_user} adds a user with a mailbox.
        """
        lab = self.lab()
        lab.prepare()
        lab.add_user("Bob@example.test", "bob-pw")
        self.assertTrue(lab.users.verify("bob@example.test", "bob-pw"))
        self.assertTrue((self.state / "mail" / "bob@example.test" / "cur").is_dir())

    def test_first_user(self) -> None:
        """
        With create_first_user and no user, one is made in the first domain
        and its password logged, once; it works; it gets the SPECIAL-USE
        mailboxes Sent, Drafts, Trash and Junk.
        """
        self.lab(users={}, create_first_user=True).prepare()
        match = re.search(
            r"made the mail user (\S+) with password (\S+) ", self.logged()
        )
        assert match is not None
        self.assertEqual(match.group(1), "lab@example.test")
        self.assertTrue(UsersFile(self.state / "users").verify(*match.groups()))
        self.assertEqual(
            MailStore(self.state / "mail").mailboxes("lab@example.test"),
            ["INBOX", "Drafts", "Junk", "Sent", "Trash"],
        )
        self.events.clear()
        self.lab(users={}, create_first_user=True).prepare()
        self.assertNotIn("made the mail user", self.logged())

    def test_no_first_user_when_users_given(self) -> None:
        """
        Given users, no extra one is made.
        """
        self.lab(create_first_user=True).prepare()
        self.assertEqual(
            UsersFile(self.state / "users").addresses(), ["alice@example.test"]
        )

    def test_own_certificate(self) -> None:
        """
        With tls_cert and tls_key the lab serves that certificate and makes
        none of its own.
        """
        files = make_server_certificate(fresh_path(self))
        lab = self.lab(tls_cert=files.cert, tls_key=files.key)
        lab.prepare()
        self.assertEqual(lab.ca_path, files.cert)
        self.assertFalse((self.state / "tls").exists())

    def test_unusable_state(self) -> None:
        """
        A state directory that cannot be made is a one-line error.
        """
        blocker = fresh_path(self)
        blocker.write_text("a file")
        with self.assertRaises(LabStateError) as caught:
            self.lab(state=blocker / "state").prepare()
        self.assertIn(
            f"cannot make the state directory {blocker / 'state'}",
            str(caught.exception),
        )

    def test_no_domain(self) -> None:
        """
        A lab needs a domain.
        """
        self.assertRaises(UsageProblem, self.lab, domains=[])

    def test_listen_failure(self) -> None:
        """
        If one server cannot listen, C{start} fails with a one-line
        L{StartupError} and the servers already listening stop.
        """
        reactor = FailingReactor()
        lab = self.lab(reactor=reactor)
        failure = self.failureResultOf(lab.start(), StartupError)
        self.assertIsInstance(failure.value, NetlabError)
        self.assertIn(
            "cannot listen on 'tcp:0:interface=127.0.0.1'", str(failure.value)
        )
        [(_, smtp, _, _)] = reactor.tcpServers
        self.assertIsInstance(smtp, LabSMTPFactory)
        self.assertEqual(len(reactor.stopped), 1)
        self.assertEqual(lab.ports["smtp"], [])


class MailLabPOP3Tests(SynchronousTestCase):
    def test_pop3_listeners(self) -> None:
        """
        POP3 listens only when asked; a pop3 listener serves the store with
        STLS, a pop3s one behind TLS, with the lab's login rules, and their
        ports are reported.
        """
        from twisted_netlab.mail.lab.pop3 import LabMaildropRealm, LabPOP3Factory

        state = fresh_path(self)
        default = MailLab(MemoryReactorClock(), state=state, domains=["example.test"])
        self.assertEqual(default.descriptions["pop3"], [])
        reactor = MemoryReactorClock()
        lab = MailLab(
            reactor,
            state=state,
            domains=["example.test"],
            users=USERS,
            smtp=[],
            imap=[],
            pop3=["tcp:1110"],
            pop3s=["tcp:9950"],
            allow_plaintext_auth=True,
        )
        self.successResultOf(lab.start())
        factories: dict[int, Any] = {port: f for port, f, _, _ in reactor.tcpServers}
        pop3 = factories[1110]
        self.assertIsInstance(pop3, LabPOP3Factory)
        self.assertFalse(pop3.implicit_tls)
        self.assertTrue(pop3.allow_plaintext_auth)
        self.assertIsNotNone(pop3.tls)
        self.assertIsInstance(pop3.portal.realm, LabMaildropRealm)
        self.assertIs(pop3.portal.realm.store, lab.store)
        self.assertIsInstance(factories[9950], TLSMemoryBIOFactory)
        self.assertTrue(factories[9950].wrappedFactory.implicit_tls)
        self.assertEqual((lab.pop3_port, lab.pop3s_port), (1110, 9950))
