"""
The message checks in the web inbox (checks.js): a tab per check and the
authentication badge, in Debian's Chromium, on mail sent by smtplib to a
C{twistd netlab-mail} that asks a real spamd (C{--spamassassin}) and
answers the auth check's DNS from a records file (C{--dns-records}).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    LOOPBACK,
    Inbox,
    Lab,
    lab_args,
    lab_ports,
    message,
)
from tests.mail.lab.checks.conftest import spamd as spamd  # the session's spamd
from tests.twistd import twistd

SHOWN = 15_000
#: SPF lets 127.0.0.1 send for sender.example (aligned with its From: DMARC
#: passes) and nobody for forged.example, whose DMARC policy is reject.
RECORDS = """\
sender.example TXT "v=spf1 ip4:127.0.0.1 -all"
_dmarc.sender.example TXT "v=DMARC1; p=reject"
forged.example TXT "v=spf1 -all"
_dmarc.forged.example TXT "v=DMARC1; p=reject"
"""
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"


@pytest.fixture(scope="module")
def lab(
    tmp_path_factory: pytest.TempPathFactory, spamd: tuple[str, int]
) -> Iterator[Lab]:
    state = tmp_path_factory.mktemp("lab")
    records = state.parent / f"{state.name}.records"
    records.write_text(RECORDS)
    host, port = spamd
    args = lab_args(
        state,
        *("--http", LOOPBACK),
        *("--dns-records", str(records)),
        *("--spamassassin", f"{host}:{port}"),
    )
    with twistd(*args, ports=3, timeout=60) as server:
        ports = lab_ports(server)
        yield Lab(server, state, ports["SMTP"], ports["IMAP"], ports["HTTP"])


def open_message(inbox: Inbox, subject: str) -> None:
    inbox.open()
    inbox.row(subject).click()
    expect(inbox.page.locator("#subject")).to_have_text(subject, timeout=SHOWN)


def test_auth_badge(inbox: Inbox) -> None:
    """
    The badge says pass for mail whose SPF pass aligns with its From
    domain, and fail for a forged sender; its title names each result.
    """
    inbox.lab.send(message("genuine", sender="Alice <alice@sender.example>"))
    inbox.lab.send(message("forged", sender="Eve <eve@forged.example>"))
    open_message(inbox, "genuine")
    badge = inbox.page.locator("#auth-badge")
    expect(badge).to_have_text("auth: pass", timeout=SHOWN)
    expect(badge).to_have_class("badge pass")
    expect(badge).to_have_attribute("title", "DKIM none, SPF pass, DMARC pass")
    inbox.row("forged").click()
    expect(badge).to_have_text("auth: fail", timeout=SHOWN)
    expect(badge).to_have_attribute("title", "DKIM none, SPF fail, DMARC fail")
    inbox.page.click("[data-tab=auth-check]")
    panel = inbox.page.locator("[data-panel=auth-check]")
    rows = panel.locator("tbody tr")
    expect(rows).to_have_count(3, timeout=SHOWN)
    expect(rows.nth(0)).to_contain_text("DKIMnone")
    expect(rows.nth(1)).to_contain_text("SPFfailforged.example")
    expect(rows.nth(2)).to_contain_text("DMARCfailforged.example p=reject")
    assert inbox.errors == []


def test_check_tabs(inbox: Inbox) -> None:
    """
    The HTML check shows the score and a row per client family; the links
    their status (the lab's own page answers 200); the spam tab spamd's
    score and rules for GTUBE; the lint tab each finding with its severity
    (this message has no Date).
    """
    html = (
        "<div style='display:flex'><p>News</p>"
        f"<a href='{inbox.lab.url}'>the lab</a>"
        f"<a href='{inbox.lab.url}no-such-page'>gone</a></div>"
    )
    inbox.lab.send(message("news", body=f"News\n{GTUBE}\n", html=html))
    open_message(inbox, "news")
    page = inbox.page

    page.click("[data-tab=html-check]")
    panel = page.locator("[data-panel=html-check]")
    expect(panel.locator(".html-score")).to_contain_text("Supported", timeout=SHOWN)
    expect(panel.locator("td.family", has_text="Outlook")).to_have_count(1)
    expect(panel.locator("td", has_text="css-display-flex").first).to_be_visible()

    page.click("[data-tab=link-check]")
    panel = page.locator("[data-panel=link-check]")
    expect(panel.locator(".links-summary")).to_have_text(
        "2 links, 1 broken", timeout=SHOWN
    )
    expect(panel.locator("tr", has_text="no-such-page")).to_contain_text("404")

    page.click("[data-tab=sa-check]")
    panel = page.locator("[data-panel=sa-check]")
    expect(panel.locator(".spam-score")).to_contain_text("spam", timeout=SHOWN)
    expect(panel.locator(".spam-score")).not_to_contain_text("not spam")
    expect(panel.locator("td.rule", has_text="GTUBE")).to_have_count(1)

    page.click("[data-tab=lint]")
    panel = page.locator("[data-panel=lint]")
    row = panel.locator("tr", has_text="missing-date")
    expect(row.locator(".severity")).to_have_text("error", timeout=SHOWN)
    assert inbox.errors == []
