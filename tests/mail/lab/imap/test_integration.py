"""
Integration tests of the lab IMAP server on a loopback socket, with Python's
C{imaplib} (run in a thread) as the client, over STARTTLS with a certificate
from L{tests.certs} verified by the client.
"""

from __future__ import annotations

import email
import email.utils
import imaplib
import shutil
import ssl
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import pytest_twisted
from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import Portal
from twisted.internet import threads
from twisted.mail import imap4

from tests.certs import make_server_certificate
from tests.mail.lab.imaptesting import MULTIPART, PASSWORD, SIMPLE, USER
from twisted_netlab.mail.lab.certificate import load_certificate
from twisted_netlab.mail.lab.imap.account import LabRealm
from twisted_netlab.mail.lab.imap.server import LabIMAPFactory
from twisted_netlab.mail.lab.store.maildir import MailStore

T = TypeVar("T")


@dataclass
class Lab:
    store: MailStore
    port: int
    ca: Path

    def client(self) -> imaplib.IMAP4:
        """A connected client that has done STARTTLS, verifying the server."""
        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=30)
        client.starttls(ssl.create_default_context(cafile=str(self.ca)))
        return client


@pytest.fixture
def lab() -> Iterator[Lab]:
    from twisted.internet import reactor

    directory = Path(tempfile.mkdtemp(prefix="netlab-imap-it-"))
    certificate = make_server_certificate(directory / "tls")
    options = load_certificate(certificate.cert, certificate.key).server_options()
    store = MailStore(directory / "mail")
    store.ensure_user(USER)
    checker = InMemoryUsernamePasswordDatabaseDontUse(**{USER: PASSWORD})
    portal = Portal(LabRealm(store, reactor=reactor), [checker])  # type: ignore[arg-type]
    factory = LabIMAPFactory(portal=portal, tls=options, reactor=reactor)
    port = reactor.listenTCP(0, factory, interface="127.0.0.1")
    yield Lab(store, port.getHost().port, certificate.ca)  # type: ignore[attr-defined]
    pytest_twisted.blockon(port.stopListening())
    shutil.rmtree(directory, ignore_errors=True)


def in_thread(f: Callable[..., T], *args: Any) -> Any:
    return threads.deferToThread(f, *args)


@pytest_twisted.ensureDeferred
async def test_login_needs_starttls(lab: Lab) -> None:
    """
    imaplib sees LOGINDISABLED and its LOGIN fails before STARTTLS; after
    STARTTLS (certificate verified) LOGIN and AUTHENTICATE PLAIN work.
    """

    def session() -> tuple[tuple[str, ...], str, tuple[str, ...], str]:
        plain = imaplib.IMAP4("127.0.0.1", lab.port, timeout=30)
        before = plain.capabilities
        try:
            plain.login(USER, PASSWORD.decode())
            refused = "accepted"
        except imaplib.IMAP4.error as e:
            refused = str(e)
        plain.starttls(ssl.create_default_context(cafile=str(lab.ca)))
        after = plain.capabilities
        status, _ = plain.login(USER, PASSWORD.decode())
        plain.logout()
        other = lab.client()
        other.authenticate("PLAIN", lambda _: b"\0" + USER.encode() + b"\0" + PASSWORD)
        other.logout()
        return before, refused, after, status

    before, refused, after, status = await in_thread(session)
    assert "LOGINDISABLED" in before and "STARTTLS" in before
    assert "PRIVACYREQUIRED" in refused
    assert "AUTH=PLAIN" in after and "LOGINDISABLED" not in after
    assert status == "OK"


@pytest_twisted.ensureDeferred
async def test_fetch_matches_email_package(lab: Lab) -> None:
    """
    A message is read back byte for byte; its BODYSTRUCTURE and ENVELOPE
    agree with what the stdlib email package parses; partial fetches give
    the right slice.
    """
    lab.store.deliver(USER, MULTIPART)

    def session() -> list[Any]:
        client = lab.client()
        client.login(USER, PASSWORD.decode())
        client.select("INBOX")
        results = [
            client.uid("FETCH", "1", "(BODY.PEEK[])"),
            client.uid("FETCH", "1", "(BODYSTRUCTURE ENVELOPE)"),
            client.uid("FETCH", "1", "(BODY.PEEK[]<10.20>)"),
            client.uid("FETCH", "1", "(BODY.PEEK[2.2])"),
        ]
        client.logout()
        return results

    whole, structure, partial, part = await in_thread(session)
    assert whole[0] == "OK"
    assert whole[1][0][1] == MULTIPART
    assert partial[1][0][1] == MULTIPART[10:30]
    assert partial[1][0][0].endswith(b"BODY[]<10> {20}")
    assert part[1][0][1] == b"<p>html</p>"

    fetched = imap4.parseNestedParens(structure[1][0].split(b" ", 1)[1])[0]
    items = dict(zip(fetched[::2], fetched[1::2], strict=True))
    parsed = email.message_from_bytes(MULTIPART)

    def leaves(body: list[Any]) -> Iterator[list[Any]]:
        if isinstance(body[0], list):
            for child in body:
                if not isinstance(child, list):
                    break
                yield from leaves(child)
        else:
            yield body

    def email_leaves(message: Any) -> Iterator[Any]:
        if message.get_content_type() == "message/rfc822":
            yield message
        elif message.is_multipart():
            for sub in message.get_payload():
                yield from email_leaves(sub)
        else:
            yield message

    expected = list(email_leaves(parsed))
    got = list(leaves(items[b"BODYSTRUCTURE"]))
    assert len(got) == len(expected)
    for leaf, message_part in zip(got, expected, strict=True):
        assert (leaf[0] + b"/" + leaf[1]).decode() == message_part.get_content_type()
        params = dict(zip(leaf[2][::2], leaf[2][1::2], strict=True)) if leaf[2] else {}
        assert {k.decode(): v.decode() for k, v in params.items()} == dict(
            message_part.get_params()[1:]
        )
        encoding = message_part.get("Content-Transfer-Encoding", "7bit").lower()
        assert leaf[5].decode() == encoding
        if message_part.get_content_maintype() != "message":
            assert int(leaf[6]) == len(message_part.get_payload().encode())

    envelope = items[b"ENVELOPE"]
    assert envelope[1].decode() == parsed["Subject"]
    assert envelope[9].decode() == parsed["Message-ID"]
    to = [(a[2] + b"@" + a[3]).decode() for a in envelope[5]]
    assert to == [addr for _, addr in email.utils.getaddresses([parsed["To"]])]


@pytest_twisted.ensureDeferred
async def test_idle_push_on_deliver(lab: Lab) -> None:
    """
    An imaplib client in IDLE hears of a message delivered with
    MailStore.deliver at once (EXISTS), then ends IDLE with DONE.
    """
    from twisted.internet import reactor

    def session() -> list[bytes]:
        client = lab.client()
        client.login(USER, PASSWORD.decode())
        client.select("INBOX")
        client.send(b"i1 IDLE\r\n")
        lines = [client.readline()]
        reactor.callFromThread(  # type: ignore[attr-defined]
            lab.store.deliver, USER, SIMPLE
        )
        lines.append(client.readline())
        lines.append(client.readline())
        client.send(b"DONE\r\n")
        lines.append(client.readline())
        _, data = client.fetch("1", "(BODY.PEEK[])")
        lines.append(data[0][1])  # type: ignore[index,arg-type]
        client.logout()
        return lines

    lines = await in_thread(session)
    assert lines == [
        b"+ idling\r\n",
        b"* 1 EXISTS\r\n",
        b"* 1 RECENT\r\n",
        b"i1 OK IDLE terminated\r\n",
        SIMPLE,
    ]


@pytest_twisted.ensureDeferred
async def test_append_store_expunge(lab: Lab) -> None:
    """
    APPEND, STORE, SEARCH and EXPUNGE through imaplib change the Maildir as
    expected.
    """

    def session() -> list[Any]:
        client = lab.client()
        client.login(USER, PASSWORD.decode())
        client.create("Archive")
        client.append("INBOX", "(\\Seen)", None, SIMPLE)
        client.append("INBOX", None, None, MULTIPART)
        client.select("INBOX")
        unseen = client.search(None, "UNSEEN")
        client.store("1", "+FLAGS", "(\\Deleted)")
        client.copy("2", "Archive")
        expunged = client.expunge()
        listed = client.list()
        client.logout()
        return [unseen, expunged, listed]

    unseen, expunged, listed = await in_thread(session)
    assert unseen == ("OK", [b"2"])
    assert expunged == ("OK", [b"1"])
    assert b'(\\HasNoChildren) "." Archive' in listed[1] or (
        b'(\\HasNoChildren) "." "Archive"' in listed[1]
    )
    assert lab.store.messages(USER) == [MULTIPART]
    assert lab.store.messages(USER, "Archive") == [MULTIPART]
