"""
Fixtures for the web inbox's browser tests: the mail lab as users run it
(C{twistd -n netlab-mail} with C{--http}, in a subprocess) and Debian's
Chromium driven by Playwright's sync API from plain pytest tests.

The lab runs once per module and is emptied through its API before each
test; each test gets a fresh browser context whose every request (the page's
and its frames') is logged in C{Inbox.requests}.
"""

from __future__ import annotations

import imaplib
import json
import re
import smtplib
import ssl
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Dialog,
    Frame,
    Page,
    Playwright,
    Request,
    Route,
    sync_playwright,
)

from tests.twistd import TwistdProcess, twistd

CHROMIUM = Path("/usr/bin/chromium")
LOOPBACK = "tcp:0:interface=127.0.0.1"
_LISTENING = re.compile(
    r": (SMTP|IMAP|HTTP)S?(?: API)?(?: \(implicit TLS\))? on \S+:(\d+)"
)
LAB_USER, LAB_PASSWORD = "lab@example.test", "lab-password"
BCC_USER = "bcc@example.test"


@dataclass
class Lab:
    """
    A running C{twistd netlab-mail}: its ports and state directory, with
    the standard library's clients to talk to it.
    """

    server: TwistdProcess
    state: Path
    smtp_port: int
    imap_port: int
    http_port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/"

    @property
    def ca_path(self) -> Path:
        return self.state / "tls" / "cert.pem"

    def send(self, message: EmailMessage, to: list[str] | None = None) -> None:
        """
        Send C{message} with smtplib (STARTTLS, verified against the lab's
        certificate); returns once the lab has answered 250.
        """
        context = ssl.create_default_context(cafile=str(self.ca_path))
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=10) as client:
            client.starttls(context=context)
            client.send_message(message, to_addrs=to)

    def send_many(self, messages: list[EmailMessage]) -> None:
        """
        Send C{messages} in order over one smtplib session.
        """
        context = ssl.create_default_context(cafile=str(self.ca_path))
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=30) as client:
            client.starttls(context=context)
            for mail in messages:
                client.send_message(mail)

    def imap(self) -> imaplib.IMAP4:
        """
        An imaplib session logged in as the lab user with INBOX selected.
        """
        client = imaplib.IMAP4("127.0.0.1", self.imap_port, timeout=10)
        client.starttls(ssl.create_default_context(cafile=str(self.ca_path)))
        client.login(LAB_USER, LAB_PASSWORD)
        client.select("INBOX")
        return client

    def api(self, path: str, method: str = "GET", body: Any = None) -> Any:
        """
        Call the lab's HTTP API directly (to arrange and to check).
        """
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.url + path.lstrip("/"),
            data=data,
            method=method,
            headers={"Content-Type": "application/json"} if data else {},
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            payload = response.read()
        ctype = response.headers.get("Content-Type", "")
        return json.loads(payload) if ctype.startswith("application/json") else payload

    def clear(self) -> None:
        self.api("api/v1/messages", method="DELETE", body={})


def message(
    subject: str,
    body: str = "Hello from the browser tests.",
    *,
    sender: str = "Alice Sender <alice@sender.example>",
    to: str = LAB_USER,
    html: str | None = None,
) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = to
    mail["Subject"] = subject
    mail.set_content(body)
    if html is not None:
        mail.add_alternative(html, subtype="html")
    return mail


def lab_args(state: Path, *more: str) -> list[str]:
    """
    C{twistd netlab-mail} on free loopback ports with the HTTP listener.
    """
    return [
        "netlab-mail",
        "--state",
        str(state),
        "--domain",
        "example.test",
        "--user",
        f"{LAB_USER}:{LAB_PASSWORD}",
        "--user",
        f"{BCC_USER}:bcc-password",
        "--smtp",
        LOOPBACK,
        "--imap",
        LOOPBACK,
        *more,
    ]


def lab_ports(server: TwistdProcess) -> dict[str, int]:
    """
    The ports the lab logged (C{netlab-mail: SMTP on 127.0.0.1:PORT}...).
    """
    server.wait_for_log("HTTP")
    return {kind: int(port) for kind, port in _LISTENING.findall(server.log)}


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    state = tmp_path_factory.mktemp("lab")
    with twistd(*lab_args(state, "--http", LOOPBACK), ports=3, timeout=60) as server:
        ports = lab_ports(server)
        yield Lab(server, state, ports["SMTP"], ports["IMAP"], ports["HTTP"])


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    if not CHROMIUM.exists():  # CI installs it (.ci/run)
        pytest.skip(f"Debian's chromium is not installed ({CHROMIUM})")
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=["--no-sandbox"]
    )
    yield browser
    browser.close()


@dataclass
class Inbox:
    """
    The web inbox open in a browser page, with every request it let out
    (C{requests}: the page's and its frames', in order).
    """

    lab: Lab
    context: BrowserContext
    page: Page
    requests: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    accept_dialogs: bool = False

    def open(self, query: str = "") -> None:
        """
        Load the page (with C{query} as its URL's query string) and wait until
        it has shown the list and its event stream is connected.
        """
        self.page.goto(self.lab.url + query)
        self.page.wait_for_selector("body[data-ready]")
        self.page.wait_for_selector("#live.on")

    def rows(self) -> list[str]:
        """
        The subjects of the listed messages, top to bottom.
        """
        return self.page.locator("#list .row .subject").all_text_contents()

    def row(self, subject: str) -> Any:
        return self.page.locator("#list .row", has_text=subject)

    def html_frame(self, selector: str = "#html-frame[src]") -> Frame:
        """
        The message view's HTML frame, once its C{src} is set.
        """
        element = self.page.wait_for_selector(selector)
        assert element is not None
        frame = element.content_frame()
        assert frame is not None
        return frame

    def api_requests(self, path: str) -> list[str]:
        return [url for url in self.requests if f"/{path}" in url]


@pytest.fixture
def inbox(lab: Lab, browser: Browser) -> Iterator[Inbox]:
    lab.clear()
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, accept_downloads=True
    )
    page = context.new_page()
    opened = Inbox(lab, context, page)

    def log(route: Route, request: Request) -> None:
        # Every request the browser lets out (CSP-blocked loads never get
        # here); nothing but the lab is ever reached.
        opened.requests.append(request.url)
        if request.url.startswith(lab.url):
            route.continue_()
        else:
            route.abort()

    context.route("**/*", log)

    def on_dialog(dialog: Dialog) -> None:
        opened.dialogs.append(dialog.message)
        if opened.accept_dialogs:
            dialog.accept()
        else:
            dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("pageerror", lambda error: opened.errors.append(str(error)))
    yield opened
    context.close()
