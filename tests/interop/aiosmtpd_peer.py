"""
aiosmtpd, an SMTP server no one here wrote, on a loopback port for the tests.

aiosmtpd runs on asyncio: its Controller runs it in a thread of its own, so
it never shares the Twisted reactor with the client under test.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from tests.certs import ServerCertificate


@dataclass
class Arrival:
    """
    One message as aiosmtpd received it.
    """

    mail_from: str
    rcpt_tos: list[str]
    mail_options: list[str]
    content: bytes


@dataclass
class Recorder:
    """
    An aiosmtpd handler that keeps what arrives, refuses the recipients in
    C{refuse} with 550 and, with C{data_reply}, answers the data with it.
    """

    refuse: set[str] = field(default_factory=set)
    data_reply: str | None = None
    arrivals: list[Arrival] = field(default_factory=list)
    logins: list[tuple[str, bytes]] = field(default_factory=list)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return f"550 5.1.1 <{address}>: no such user"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.data_reply is not None:
            return self.data_reply
        self.arrivals.append(
            Arrival(
                envelope.mail_from,
                list(envelope.rcpt_tos),
                list(envelope.mail_options),
                envelope.original_content,
            )
        )
        return "250 2.0.0 OK queued"


class _LoopbackController(Controller):
    """
    A Controller on port 0: the port is read back once the server listens.
    """

    def _trigger_server(self) -> None:
        assert self.server is not None
        self.port = self.server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        super()._trigger_server()


@dataclass
class Peer:
    host: str
    port: int
    recorder: Recorder
    certificate: ServerCertificate


def _server_context(certificate: ServerCertificate) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(certificate.cert, certificate.key)
    return context


@contextmanager
def aiosmtpd_peer(
    certificate: ServerCertificate,
    *,
    tls: str = "starttls",
    users: dict[str, str] | None = None,
    recorder: Recorder | None = None,
    **smtp_options: Any,
) -> Iterator[Peer]:
    """
    Run aiosmtpd on 127.0.0.1 with C{certificate}: STARTTLS offered (and
    required) for C{tls="starttls"}, TLS from the first byte for
    C{"implicit"}, no TLS for C{"none"}.  With C{users}, AUTH (PLAIN and
    LOGIN, after TLS) is required and checks these passwords.
    """
    recorder = recorder or Recorder()
    options: dict[str, Any] = {"enable_SMTPUTF8": True, **smtp_options}
    context = _server_context(certificate)
    if tls == "starttls":
        options.update(tls_context=context, require_starttls=True)
    if users is not None:

        def authenticator(server, session, envelope, mechanism, auth_data):
            ok = (
                isinstance(auth_data, LoginPassword)
                and users.get(auth_data.login.decode()) == auth_data.password.decode()
            )
            recorder.logins.append((mechanism, auth_data.login))
            return AuthResult(success=ok, handled=False)

        options.update(
            authenticator=authenticator,
            auth_required=True,
            # aiosmtpd counts only STARTTLS as TLS: over implicit TLS it
            # would hide AUTH.
            auth_require_tls=tls == "starttls",
        )
    controller = _LoopbackController(
        recorder,
        hostname="127.0.0.1",
        port=0,
        ssl_context=context if tls == "implicit" else None,
        **options,
    )
    controller.start()
    try:
        yield Peer("127.0.0.1", controller.port, recorder, certificate)
    finally:
        controller.stop()
