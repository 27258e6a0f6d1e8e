"""
L{MailLab}: the mail lab's SMTP, IMAP and POP3 servers over one state
directory, as one Twisted service.

C{twistd netlab-mail} and C{twistd netlab} run it; tests start it in-process
on ephemeral loopback ports (L{MailLab.start}) and read back what was
delivered (L{MailLab.messages}).  The state directory holds::

    users           the users file (L{twisted_netlab.mail.lab.users})
    tls/cert.pem    the lab's self-signed certificate; clients' --cafile
    tls/key.pem     its key
    mail/ADDRESS/   each user's Maildir (L{twisted_netlab.mail.lab.store.maildir})
    search-facts.sqlite3
                    the parsed search facts of the messages, kept across
                    restarts (L{twisted_netlab.mail.lab.store.factsfile}); a cache
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterable, Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

from twisted.application.service import MultiService
from twisted.cred.portal import Portal
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.endpoints import SSL4ServerEndpoint
from twisted.internet.interfaces import (
    IListeningPort,
    IReactorFromThreads,
    IReactorThreads,
    IReactorTime,
    IStreamServerEndpoint,
)
from twisted.internet.protocol import Factory
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.python.threadpool import ThreadPool
from twisted.web.server import Request
from zope.interface import implementer

from twisted_netlab.durable import replace_file
from twisted_netlab.endpoints import (
    ListeningService,
    is_loopback_endpoint,
    parse_endpoint,
)
from twisted_netlab.errors import NetlabError, UsageProblem
from twisted_netlab.mail.lab.certificate import (
    LabCertificate,
    ensure_certificate,
    load_certificate,
)
from twisted_netlab.mail.lab.checks.context import CheckSettings
from twisted_netlab.mail.lab.checks.records import load_records
from twisted_netlab.mail.lab.checks.runner import CheckRunner
from twisted_netlab.mail.lab.checks.spam import parse_spamd_address
from twisted_netlab.mail.lab.diskusage import DiskUsage
from twisted_netlab.mail.lab.faults import Fault, Faults
from twisted_netlab.mail.lab.imap.account import SPECIAL_USE, LabRealm
from twisted_netlab.mail.lab.imap.server import LabIMAPFactory
from twisted_netlab.mail.lab.intake import sent_delivery
from twisted_netlab.mail.lab.outbox import Outbox
from twisted_netlab.mail.lab.pop3 import LabMaildropRealm, LabPOP3Factory
from twisted_netlab.mail.lab.relay import RelayConfig
from twisted_netlab.mail.lab.smtp.routing import (
    local_recipient,
)
from twisted_netlab.mail.lab.smtp.server import (
    DEFAULT_MAX_MESSAGE_SIZE,
    MAX_RECIPIENTS,
    LabSMTPFactory,
)
from twisted_netlab.mail.lab.store.catalog import (
    CapturedMessage,
    Catalog,
    Entry,
    message_id_for,
)
from twisted_netlab.mail.lab.store.factsfile import FILE_NAME as FACTS_FILE_NAME
from twisted_netlab.mail.lab.store.factsfile import FactsKeeper
from twisted_netlab.mail.lab.store.maildir import (
    INBOX,
    Delivery,
    Envelope,
    FolderChange,
    MailboxExists,
    MailStore,
    MailStoreError,
    MessageGone,
    Retention,
)
from twisted_netlab.mail.lab.store.search import facts_cache, parse_query
from twisted_netlab.mail.lab.store.tags import (
    Tagger,
    TagRule,
    parse_tag_rule,
    parse_tags_disable,
)
from twisted_netlab.mail.lab.users import (
    UsersChecker,
    UsersFile,
    normalize_address,
    normalize_domain,
)
from twisted_netlab.mail.lab.web.api import LabAPI, clock_of
from twisted_netlab.mail.lab.web.chaos import mount_faults
from twisted_netlab.mail.lab.web.send import ComposedMessage, SendRequestInvalid
from twisted_netlab.mail.lab.web.shapes import summary
from twisted_netlab.mail.lab.web.site import make_site
from twisted_netlab.mail.lab.web.v1 import APIResource

#: Where an embedded lab listens unless told otherwise: a free loopback port.
EPHEMERAL = "tcp:0:interface=127.0.0.1"
#: The kinds of listeners, in the order they start.
KINDS = ("smtp", "imap", "smtps", "imaps", "http", "https", "pop3", "pop3s")
_LABELS = {
    "smtp": "SMTP",
    "imap": "IMAP",
    "smtps": "SMTPS (implicit TLS)",
    "imaps": "IMAPS (implicit TLS)",
    "http": "HTTP API",
    "https": "HTTPS API (implicit TLS)",
    "pop3": "POP3",
    "pop3s": "POP3S (implicit TLS)",
}

log = Logger()


class LabStateError(UsageProblem):
    """
    The state directory cannot be prepared (unwritable, say).
    """


@implementer(IStreamServerEndpoint)
class _RecordingEndpoint:
    """
    An endpoint that tells its lab which port it listens on.
    """

    def __init__(
        self, lab: MailLab, kind: str, endpoint: IStreamServerEndpoint
    ) -> None:
        self.lab = lab
        self.kind = kind
        self.endpoint = endpoint

    def listen(self, protocolFactory: Any) -> Deferred[IListeningPort]:
        d = self.endpoint.listen(protocolFactory)
        return d.addCallback(self.lab._listening, self.kind)


class GroupCommit:
    """
    Hands SMTP deliveries to the store in batches (L{MailStore.deliver_batch})
    in a thread of its own: while one batch is being written and synced, the
    next one gathers, so that concurrent deliveries share their syncs.  Each
    delivery's Deferred fires once it is durable (or fails with its error).
    Without a thread pool (L{start} not called), each is stored at once.
    """

    def __init__(self, store: MailStore, reactor: Any) -> None:
        self.store = store
        self.reactor = reactor
        self._pool: ThreadPool | None = None
        self._pending: list[tuple[Delivery, Deferred[dict[str, int]]]] = []
        self._busy = False

    def start(self, name: str) -> None:
        if IReactorFromThreads.providedBy(self.reactor) and self._pool is None:
            self._pool = ThreadPool(1, 1, name=name)
            self._pool.start()

    def stop(self) -> None:
        if self._pool is not None:
            self._pool.stop()
            self._pool = None

    def deliver(self, delivery: Delivery) -> Deferred[dict[str, int]]:
        if self._pool is None:
            return maybeDeferred(
                self.store.deliver_many,
                delivery.message,
                delivery.addresses,
                envelope=delivery.envelope,
                prefixes=delivery.prefixes,
            )
        d: Deferred[dict[str, int]] = Deferred()
        self._pending.append((delivery, d))
        if not self._busy:
            self._flush()
        return d

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch or self._pool is None:
            self._busy = False
            for _, d in batch:
                d.errback(RuntimeError("the mail lab stopped"))
            return
        self._busy = True
        stored = deferToThreadPool(
            self.reactor,
            self._pool,
            self.store.deliver_batch,
            [delivery for delivery, _ in batch],
        )

        def done(results: list[dict[str, int] | BaseException]) -> None:
            for (_, d), result in zip(batch, results, strict=True):
                if isinstance(result, BaseException):
                    d.errback(result)
                else:
                    d.callback(result)

        def failed(reason: Any) -> None:
            for _, d in batch:
                d.errback(reason)

        stored.addCallbacks(done, failed)
        stored.addBoth(lambda _: self._flush())


class MailLab(MultiService):
    """
    The mail lab: SMTP and IMAP servers for C{domains}, with state in
    C{state}.

    @param reactor: the reactor to listen with (a L{MemoryReactor} will do
        for unit tests).
    @param state: the state directory; made if missing.
    @param domains: the local domains.
    @param users: address -> password (or pairs): users added to the users
        file (or given that password) when the lab is prepared.
    @param smtp: endpoint descriptions for SMTP with STARTTLS (default: one
        free loopback port); likewise C{imap}; C{pop3} listens for POP3 with
        STLS (default: none); C{smtps}, C{imaps} and C{pop3s} listen with
        implicit TLS (default: none).
    @param max_message_size: the SMTP size limit, in bytes.
    @param hostname: the servers' name; the lab certificate names it.
    @param tls_cert: a certificate (PEM) to use instead of the lab's own,
        with C{tls_key}.
    @param allow_plaintext_auth: allow logins without TLS from loopback
        clients.
    @param require_auth: accept no SMTP mail before AUTH.
    @param create_first_user: with no user at all, make one and log its
        address and password (C{twistd netlab}).
    @param catch_all: capture: SMTP accepts every recipient at every domain
        (nothing is ever relayed); mail for a lab user goes to its INBOX,
        all other mail to this address's INBOX. The address is made a user
        (password logged once) if it is not one. C{True}: the first user.
    @param max_recipients: RCPT TO commands accepted per message (452 past).
    @param max_messages: each mailbox keeps at most this many messages; the
        oldest go as new ones arrive (L{None}: no limit).
    @param max_age: messages older than this many seconds are removed, at
        delivery and every so often (L{None}: no limit).
    @param program: how log lines and errors name the lab.
    @param http: endpoint descriptions for the HTTP API and inbox page
        (default: none); C{https} serve it with the lab's certificate. Off
        loopback, only over TLS (C{https}, or an C{ssl:} endpoint) and with
        a login as a lab user.
    @param http_hosts: more host names the HTTP API answers for (its
        C{Host} check), besides C{hostname} and the loopback names.
    @param faults: faults to start with (specs or L{Fault}s); more are
        added, and these removed, through C{lab.faults}.
    @param fault_seed: makes the faults' probabilities repeatable.
    @param relay: where released and forwarded mail goes (C{--relay...},
        C{--forward}; L{relay_config_from_options
        <twisted_netlab.mail.lab.relay.relay_config_from_options>}); None:
        nothing is ever relayed.
    @param webhook: a URL that gets each new message's summary (POST).
    @param webhook_limit: webhook requests a second at most (0: no limit).
    @param tag_rules: C{"TAG=QUERY"} (or L{TagRule}s): new messages the
        query matches get the tag.
    @param tags_disable: C{"x-tags"}, C{"plus-addresses"}: automatic tags
        left off.
    @param spamassassin: the spamd the spam check asks (C{"HOST:PORT"} or
        C{(host, port)}); L{None}: the spam check says how to turn it on.
    @param dns_records: the DNS of the auth check: a records file's path,
        or its records already read (L{load_records
        <twisted_netlab.mail.lab.checks.records.load_records>}); L{None}:
        the system's resolver.  The link check may fetch loopback and
        private addresses only when every HTTP listener is on loopback
        (or there is none): see docs/checks.rst.
    """

    #: The user made by the lab itself, who gets the SPECIAL-USE mailboxes.
    _special_use_for: str | None = None

    def __init__(
        self,
        reactor: Any,
        *,
        state: str | Path,
        domains: Iterable[str],
        users: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        smtp: Sequence[str] = (EPHEMERAL,),
        imap: Sequence[str] = (EPHEMERAL,),
        smtps: Sequence[str] = (),
        imaps: Sequence[str] = (),
        pop3: Sequence[str] = (),
        pop3s: Sequence[str] = (),
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        hostname: str = "localhost",
        tls_cert: str | Path | None = None,
        tls_key: str | Path | None = None,
        allow_plaintext_auth: bool = False,
        require_auth: bool = False,
        create_first_user: bool = False,
        catch_all: str | bool | None = None,
        max_recipients: int = MAX_RECIPIENTS,
        max_messages: int | None = None,
        max_age: float | None = None,
        program: str = "mail lab",
        http: Sequence[str] = (),
        https: Sequence[str] = (),
        http_hosts: Sequence[str] = (),
        faults: Iterable[str | Fault] = (),
        fault_seed: int | None = None,
        relay: RelayConfig | None = None,
        webhook: str | None = None,
        webhook_limit: int = 1,
        tag_rules: Iterable[str | TagRule] = (),
        tags_disable: Iterable[str] = (),
        spamassassin: str | tuple[str, int] | None = None,
        dns_records: str | Path | Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        super().__init__()
        self.reactor = reactor
        self.state = Path(state)
        self.domains = [normalize_domain(d) for d in domains]
        if not self.domains:
            raise UsageProblem("a mail lab needs at least one domain")
        pairs = users.items() if isinstance(users, Mapping) else users
        self._initial_users = [(normalize_address(a), p) for a, p in pairs]
        self.descriptions = {
            "smtp": list(smtp),
            "imap": list(imap),
            "smtps": list(smtps),
            "imaps": list(imaps),
            "http": list(http),
            "https": list(https),
            "pop3": list(pop3),
            "pop3s": list(pop3s),
        }
        self.http_hosts = list(http_hosts)
        self.max_message_size = max_message_size
        self.hostname = hostname
        self._own_certificate = (tls_cert, tls_key)
        self.allow_plaintext_auth = allow_plaintext_auth
        self.require_auth = require_auth
        self.create_first_user = create_first_user
        self._catch_all_wanted = catch_all
        #: The catch-all address once prepared (L{None}: no capture).
        self.catch_all: str | None = None
        self.max_recipients = max_recipients
        self.program = program
        self.users = UsersFile(self.state / "users")
        self.store = MailStore(self.state / "mail")
        #: Every user's INBOX as the HTTP and Python APIs see it.
        self.catalog = Catalog(self.store, reactor)
        #: Keeps the messages' search facts in the state directory's facts
        #: file, and parses delivered mail before anyone searches.
        self.facts = FactsKeeper(
            self.store,
            self.state / FACTS_FILE_NAME,
            reactor,
            facts_cache,
            name=program,
        )
        self.api = LabAPI(self.catalog, reactor, database=str(self.state))
        self.api.extra_info = lambda: {"SearchFacts": self.facts.status()}
        self.api.facts_loading = self.facts.loading
        #: Mailpit's runtime counters (C{/api/v1/info}, C{/metrics}).
        self.stats = self.api.stats
        self.api.database_size = DiskUsage(self.state, clock_of(reactor)).size
        disabled = {name for text in tags_disable for name in parse_tags_disable(text)}
        self.store.tagger = Tagger(
            [r if isinstance(r, TagRule) else parse_tag_rule(r) for r in tag_rules],
            x_tags="x-tags" not in disabled,
            plus_addresses="plus-addresses" not in disabled,
        )
        #: Forwarding and the webhook (and the relay releases go through).
        self.outbox = Outbox(
            reactor,
            self.stats,
            relay=relay,
            webhook=webhook,
            webhook_limit=webhook_limit,
        )
        self.api.relay = self.outbox.relay
        self.api.accept_sent = self._accept_sent
        self.store.add_listener(self._count_deleted)
        self.api_resource = APIResource(self.api)
        #: The faults every listener asks (L{Faults.add}, L{Faults.clear}).
        self.faults = Faults(faults, seed=fault_seed, reactor=reactor)
        mount_faults(self.api_resource, self.faults)
        #: Runs the message checks and caches their answers (L{check}, the
        #: API's check routes).
        self.checks = CheckRunner(reactor, _check_settings(spamassassin, dns_records))
        self.api.checks = self.checks
        self.store.retention = Retention(max_messages=max_messages, max_age=max_age)
        self._group_commit = GroupCommit(self.store, reactor)
        self._pruning: LoopingCall | None = None
        #: The listening ports, by kind, once started.
        self.ports: dict[str, list[IListeningPort]] = {k: [] for k in KINDS}
        #: The servers' factories, by kind, once prepared (implicit-TLS ones
        #: wrapped in TLS).
        self.factories: dict[str, list[Factory[Any]]] = {k: [] for k in KINDS}
        self.certificate: LabCertificate | None = None
        self._pool: ThreadPool | None = None
        self._checker = UsersChecker(self.users, reactor=reactor)
        self._prepared = False
        self._users_snapshot: bytes | None = None

    # -- preparing the state directory ---------------------------------------

    def prepare(self) -> None:
        """
        Prepare the state directory (users, certificate, mailboxes) and the
        servers.  Done once; L{start} and twistd do it if nobody did.

        @raise NetlabError: with a one-line reason, when something in the
            state directory cannot be read or made.
        """
        if self._prepared:
            return
        try:
            self.state.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise LabStateError(
                f"cannot make the state directory {self.state}: {e.strerror}"
            ) from None
        for address, password in self._initial_users:
            if not self.users.verify(address, password):
                self.users.add(address, password)
        if self.create_first_user and not self.users.addresses():
            self._make_first_user()
        self._prepare_catch_all()
        tls_cert, tls_key = self._own_certificate
        if tls_cert is not None and tls_key is not None:
            self.certificate = load_certificate(tls_cert, tls_key)
        else:
            self.certificate = ensure_certificate(self.state / "tls", [self.hostname])
        tls = self.certificate.server_options()
        self._users_snapshot = (
            self.users.path.read_bytes() if self.users.path.exists() else b""
        )
        try:
            for address in self.users.addresses():
                self.store.ensure_user(address)
            if self._special_use_for is not None:
                # What mail clients look for (SPECIAL-USE): Sent, Drafts...
                for name in SPECIAL_USE:
                    with suppress(MailboxExists):
                        self.store.create_mailbox(self._special_use_for, name)
        except OSError as e:
            raise LabStateError(
                f"cannot make mailboxes in {self.store.root}: {e.strerror}"
            ) from None
        self._check_http_security()
        self.checks.settings = dataclasses.replace(
            self.checks.settings, private_links=self._http_on_loopback_only()
        )
        checker = self._checker
        threads = self.reactor if IReactorFromThreads.providedBy(self.reactor) else None
        portal = Portal(LabRealm(self.store, reactor=threads), [checker])
        for kind in KINDS:
            implicit = kind.endswith("s")
            for description in self.descriptions[kind]:
                self._pending_description = description
                factory = self._factory(kind, tls, checker, portal, implicit)
                if implicit:
                    factory = TLSMemoryBIOFactory(tls, False, factory)
                self.factories[kind].append(factory)
                endpoint = parse_endpoint(self.reactor, description)
                ListeningService(
                    self.program,
                    description,
                    _RecordingEndpoint(self, kind, endpoint),
                    factory,
                ).setServiceParent(self)
        self._prepared = True

    def _factory(
        self, kind: str, tls: Any, checker: UsersChecker, portal: Portal, implicit: bool
    ) -> Factory[Any]:
        if kind.startswith("pop3"):
            return LabPOP3Factory(
                portal=Portal(LabMaildropRealm(self.store), [checker]),
                tls=tls,
                allow_plaintext_auth=self.allow_plaintext_auth,
                implicit_tls=implicit,
                reactor=self.reactor,
            )
        if kind.startswith("http"):
            return self._site(kind)
        if kind.startswith("smtp"):
            return LabSMTPFactory(
                users=self.users,
                domains=self.domains,
                deliver=self._deliver,
                catch_all=self.catch_all,
                max_recipients=self.max_recipients,
                tls=tls,
                max_message_size=self.max_message_size,
                implicit_tls=implicit,
                allow_plaintext_auth=self.allow_plaintext_auth,
                require_auth=self.require_auth,
                hostname=self.hostname,
                checker=checker,
                reactor=self.reactor,
                faults=self.faults,
                stats=self.stats,
            )
        return LabIMAPFactory(
            portal=portal,
            tls=tls,
            allow_plaintext_auth=self.allow_plaintext_auth,
            implicit_tls=implicit,
            reactor=self.reactor,
            max_message_size=self.max_message_size,
            faults=self.faults,
        )

    def _check_http_security(self) -> None:
        """
        Refuse an HTTP listener off loopback without TLS.

        @raise UsageProblem: with a one-line reason.
        """
        for description in self.descriptions["http"]:
            if is_loopback_endpoint(self.reactor, description):
                continue
            if not isinstance(
                parse_endpoint(self.reactor, description), SSL4ServerEndpoint
            ):
                raise UsageProblem(
                    f"the HTTP API on {description} would be open to the network "
                    "without TLS: use an ssl: endpoint or --https (the lab's "
                    "certificate), or a loopback interface"
                )

    def _http_on_loopback_only(self) -> bool:
        """
        Whether only this machine can reach the HTTP API (every HTTP
        listener on loopback, or none): then the link check may fetch
        loopback and private addresses, which its users reach anyway.
        """
        return all(
            is_loopback_endpoint(self.reactor, description)
            for kind in ("http", "https")
            for description in self.descriptions[kind]
        )

    def _site(self, kind: str) -> Factory[Any]:
        description = self._pending_description
        exposed = not is_loopback_endpoint(self.reactor, description)
        hosts = {"localhost", "127.0.0.1", "::1", self.hostname, *self.http_hosts}
        endpoint = parse_endpoint(self.reactor, description)
        interface = getattr(endpoint, "_interface", "")
        if interface and interface not in ("0.0.0.0", "::"):
            hosts.add(interface)
        return make_site(
            self.api,
            self.api_resource,
            hosts=hosts,
            checker=self._checker if exposed else None,
            reactor=self.reactor,
        )

    def _make_first_user(self) -> None:
        address = f"lab@{self.domains[0]}"
        self._make_user(address)
        self._special_use_for = address

    def _make_user(self, address: str) -> None:
        password = secrets.token_urlsafe(12)
        self.users.add(address, password)
        log.info(
            "{program}: made the mail user {address} with password {password} "
            "(shown this once; change it with: netlab mail-user add --state "
            "{state} {address})",
            program=self.program,
            address=address,
            password=password,
            state=str(self.state),
        )

    def _prepare_catch_all(self) -> None:
        wanted = self._catch_all_wanted
        if wanted is None or wanted is False:
            return
        if wanted is True:
            addresses = self.users.addresses()
            if not addresses:
                self._make_first_user()
                addresses = self.users.addresses()
            address = addresses[0]
        else:
            address = normalize_address(str(wanted))
            if address not in self.users:
                self._make_user(address)
        self.catch_all = address

    def _deliver(
        self, message: bytes, copies: Mapping[str, bytes], envelope: Envelope
    ) -> Deferred[dict[str, int]]:
        delivery = Delivery(message, list(copies), envelope, copies)
        d = self._group_commit.deliver(delivery)

        def stored(uids: dict[str, int]) -> dict[str, int]:
            self._stored(message, copies, envelope, uids)
            return uids

        return d.addCallback(stored)

    def _stored(
        self,
        message: bytes,
        copies: Mapping[str, bytes],
        envelope: Envelope,
        uids: Mapping[str, int],
    ) -> list[str]:
        """
        A message is stored (C{uids} by mailbox): count it, log it, forward
        it and tell the webhook; returns its copies' catalog IDs.
        """
        self.stats.record_accepted(len(message))
        log.info(
            "{program}: stored a {size}-byte message from <{sender}> for "
            "{mailboxes}{via}",
            program=self.program,
            size=len(message),
            sender=envelope.mail_from,
            mailboxes=", ".join(f"{a} (UID {uid})" for a, uid in uids.items()),
            via=" (HTTP API)" if envelope.via == "api" else "",
        )
        ids = []
        for address, uid in uids.items():
            try:
                key = self.store.folder(address).entry(uid).key
            except MailStoreError:
                continue
            ids.append(message_id_for(address, key))
        if self.outbox and copies:
            first = copies[next(iter(copies))]
            self.outbox.arrived(
                first + message, envelope.mail_from, ids, self._summary_of
            )
        return ids

    def _summary_of(self, message_id: str) -> dict[str, Any] | None:
        entry = self.catalog.get(message_id)
        return None if entry is None else summary(entry)

    def _accept_sent(
        self, composed: ComposedMessage, request: Request
    ) -> Deferred[str]:
        """
        Store a message of C{POST /api/v1/send} as if received
        (L{sent_delivery}); fires with the ID of the copy of its first
        recipient a mailbox takes.
        """
        try:
            delivery, first = sent_delivery(
                composed,
                request,
                route=lambda address: local_recipient(
                    address,
                    domains=frozenset(self.domains),
                    users=self.users,
                    catch_all=self.catch_all,
                ),
                hostname=self.hostname,
                max_size=self.max_message_size,
            )
        except SendRequestInvalid as e:
            return fail(e)
        copies = delivery.prefixes or {}
        envelope = delivery.envelope
        assert envelope is not None

        def stored(uids: dict[str, int]) -> str:
            ids = self._stored(composed.raw, copies, envelope, uids)
            uid = uids.get(first)
            if uid is not None:
                key = self.store.folder(first).entry(uid).key
                return message_id_for(first, key)
            return ids[0]

        return self._group_commit.deliver(delivery).addCallback(stored)

    def _count_deleted(self, address: str, mailbox: str, change: FolderChange) -> None:
        """Count messages gone from an INBOX (Mailpit's MessagesDeleted)."""
        if mailbox != INBOX or not change.gone:
            return
        call = getattr(self.reactor, "callFromThread", None)
        if call is None:
            self.stats.record_deleted(len(change.gone))
        else:
            call(self.stats.record_deleted, len(change.gone))

    def _prune(self) -> None:
        for (address, mailbox), uids in self.store.prune().items():
            log.info(
                "{program}: removed {count} old messages from {address} {mailbox}",
                program=self.program,
                count=len(uids),
                address=address,
                mailbox=mailbox,
            )

    # -- running ---------------------------------------------------------------

    def _listening(self, port: IListeningPort, kind: str) -> IListeningPort:
        self.ports[kind].append(port)
        address: Any = port.getHost()
        if isinstance(address, (IPv4Address, IPv6Address)):
            where = f"{address.host}:{address.port}"
        else:
            where = str(getattr(address, "name", address))
        log.info(
            "{program}: {label} on {where}",
            program=self.program,
            label=_LABELS[kind],
            where=where,
        )
        return port

    def privilegedStartService(self) -> None:
        self.prepare()
        super().privilegedStartService()

    def startService(self) -> None:
        self.prepare()
        if IReactorThreads.providedBy(self.reactor):
            # Password hashes are checked in threads of the lab's own, so that
            # blocking clients in the reactor's pool (deferToThread) cannot
            # starve them.
            self._pool = ThreadPool(0, 2, name=f"{self.program} password checks")
            self._pool.start()
            self._checker.pool = self._pool
        self._group_commit.start(f"{self.program} deliveries")
        super().startService()
        if IReactorFromThreads.providedBy(self.reactor):
            self.facts.start()
            self.catalog.warm_up(self.facts)
        else:
            self.catalog.warm_up()
        max_age = self.store.retention.max_age
        if (
            max_age is not None
            and self._pruning is None
            and IReactorTime.providedBy(self.reactor)
        ):
            self._pruning = LoopingCall(self._prune)
            self._pruning.clock = self.reactor
            self._pruning.start(min(max(max_age / 10, 1.0), 60.0), now=True)
        if self.ca_path is not None:
            log.info(
                "{program}: domains {domains}; clients trust the lab with "
                "--cafile {ca}",
                program=self.program,
                domains=", ".join(self.domains),
                ca=str(self.ca_path),
            )

    def stopService(self) -> Deferred[None]:
        if self._pruning is not None:
            if self._pruning.running:
                self._pruning.stop()
            self._pruning = None
        d = maybeDeferred(super().stopService)

        self.api.close()
        outbox_stopped = self.outbox.stop()

        def stopped(result: object) -> None:
            self._group_commit.stop()
            self.facts.stop()
            if self._pool is not None:
                self._checker.pool = None
                self._pool.stop()
                self._pool = None
            for kind in KINDS:
                self.ports[kind] = []

        d.addCallback(stopped)
        return d.addCallback(lambda _: outbox_stopped).addCallback(lambda _: None)

    def start(self) -> Deferred[MailLab]:
        """
        Start listening (for embedding: twistd starts the service itself).

        @return: a Deferred that fires with the lab once every server
            listens (at once with TCP), or fails with a L{NetlabError}.
        """
        try:
            self.prepare()
            self.privilegedStartService()
            self.startService()
        except NetlabError as e:
            for kind, ports in self.ports.items():
                for port in ports:
                    port.stopListening()
                self.ports[kind] = []
            return fail(e)
        return succeed(self)

    def stop(self) -> Deferred[None]:
        """
        Stop listening.
        """
        if not self.running:
            return succeed(None)
        return self.stopService()

    # -- what tests want to know -----------------------------------------------

    def port(self, kind: str = "smtp") -> int:
        """
        The TCP port number of the first listener of C{kind} (C{"smtp"},
        C{"imap"}, C{"smtps"}, C{"imaps"}, C{"http"}, C{"https"}, C{"pop3"}
        or C{"pop3s"}).

        @raise LookupError: there is none (not started, or none configured).
        """
        ports = self.ports[kind]
        if not ports:
            raise LookupError(f"the lab has no {kind} listener running")
        return int(ports[0].getHost().port)  # type: ignore[attr-defined]

    @property
    def smtp_port(self) -> int:
        return self.port("smtp")

    @property
    def imap_port(self) -> int:
        return self.port("imap")

    @property
    def smtps_port(self) -> int:
        return self.port("smtps")

    @property
    def imaps_port(self) -> int:
        return self.port("imaps")

    @property
    def http_port(self) -> int:
        return self.port("http")

    @property
    def https_port(self) -> int:
        return self.port("https")

    @property
    def pop3_port(self) -> int:
        return self.port("pop3")

    @property
    def pop3s_port(self) -> int:
        return self.port("pop3s")

    @property
    def ca_path(self) -> Path | None:
        """
        The certificate file clients trust the lab with (their C{--cafile},
        C{ssl.create_default_context(cafile=...)}); L{None} before L{prepare}.
        """
        return None if self.certificate is None else self.certificate.ca_path

    def add_user(self, address: str, password: str) -> None:
        """
        Add a user (or set its password) and make its mailbox.
        """
        address = normalize_address(address)
        self.users.add(address, password)
        self.store.ensure_user(address)

    def messages(self, address: str, mailbox: str = "INBOX") -> list[bytes]:
        """
        The bytes of every message in C{address}'s C{mailbox}, in UID order,
        each starting with the lab's C{Received:} header.
        """
        return self.store.messages(normalize_address(address), mailbox)

    # -- the test inbox: search, wait_for, clear ---------------------------------

    def search(self, query: str = "") -> list[CapturedMessage]:
        """
        The messages of every user's INBOX that C{query} (the HTTP API's
        search language) matches, newest first.

        @raise QueryError: the query cannot be parsed.
        """
        return self._captured(self.catalog.search(parse_query(query)))

    def wait_for(
        self, query: str = "", count: int = 1, timeout: float = 10.0
    ) -> Deferred[list[CapturedMessage]]:
        """
        A Deferred that fires with the matching messages (newest first) as
        soon as at least C{count} messages of the whole lab match C{query},
        even ones that arrived before the call; it fails with L{WaitTimeout}
        after C{timeout} seconds.

        @raise QueryError: the query cannot be parsed.
        """
        d = self.catalog.wait(parse_query(query), count=count, timeout=timeout)
        return d.addCallback(self._captured)

    @staticmethod
    def _captured(entries: Iterable[Entry]) -> list[CapturedMessage]:
        found = []
        for entry in entries:
            try:
                found.append(CapturedMessage.of(entry))
            except MessageGone:
                continue
        return found

    def clear(self) -> None:
        """
        Delete every message of every user, in every mailbox (users,
        passwords and mailboxes stay).
        """
        for address in self.store.addresses():
            for mailbox in self.store.mailboxes(address):
                try:
                    folder = self.store.folder(address, mailbox)
                except MailStoreError:
                    continue
                folder.refresh()
                folder.remove(folder.uids())
        self.catalog.sync(rescan=False)
        self.checks.clear()

    def reset(self) -> None:
        """
        Start over, for the next test: every user's mail and mailboxes gone
        (UIDs start again from 1), and the users as when the lab was
        prepared (users added since are gone, passwords restored), and no
        faults.
        """
        self.prepare()
        self.faults.clear()
        self.stats.reset()
        self.store.remove_all_users()
        if self._users_snapshot is not None:
            replace_file(self.users.path, self._users_snapshot)
        for address in self.users.addresses():
            self.store.ensure_user(address)
        self.catalog.reload()
        self.checks.clear()

    # -- the message checks ----------------------------------------------------

    def check(self, message_id: str, name: str, **options: Any) -> Deferred[Any]:
        """
        Check C{name} (C{"html"}, C{"links"}, C{"spam"}, C{"auth"},
        C{"lint"}) of message C{message_id} (an ID of L{search},
        L{wait_for} or the HTTP API, or C{"latest"}), from the cache when
        it has the answer (docs/checks.rst); C{follow=True} for the link
        check follows redirects.

        @return: a Deferred that fires with the check's result (a
            L{LintResult<twisted_netlab.mail.lab.checks.results.LintResult>}
            and the like), or fails with L{NoSuchMessage
            <twisted_netlab.mail.lab.checks.runner.NoSuchMessage>},
            L{UnknownCheck<twisted_netlab.mail.lab.checks.runner.UnknownCheck>}
            or L{CheckError<twisted_netlab.mail.lab.checks.context.CheckError>}.
        """
        return self.checks.result(self.catalog, message_id, name, options)


def _check_settings(
    spamassassin: str | tuple[str, int] | None,
    dns_records: str | Path | Mapping[str, Sequence[str]] | None,
) -> CheckSettings:
    """
    The checks' settings of L{MailLab}'s arguments.

    @raise NetlabError: the spamd address is not one, or the records file
        cannot be read (one line, naming the file and line).
    """
    if isinstance(spamassassin, str):
        spamassassin = parse_spamd_address(spamassassin)
    if isinstance(dns_records, (str, Path)):
        dns_records = load_records(dns_records)
    return CheckSettings(spamassassin=spamassassin, dns_records=dns_records)
