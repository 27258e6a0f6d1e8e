"""
The inbox's Mailpit features as a person uses them (Debian's Chromium,
Playwright): tags on rows, the filter by tag, adding and removing tags
(seen over IMAP, and IMAP's keywords seen in the page), the Release dialog
through a second lab started as the relay, the tablet and phone widths of
the HTML view, notifications of new mail once allowed, and List-Unsubscribe.

The lab here is C{twistd netlab-mail --relay ...} relaying to another
C{twistd netlab-mail} (STARTTLS with its CA, AUTH with a password file).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import (
    LAB_USER,
    LOOPBACK,
    Inbox,
    Lab,
    lab_args,
    lab_ports,
    message,
)
from tests.browser.test_inbox import DOCS, imap_flags
from tests.twistd import twistd

CAROL = "carol@relay.test"
SHOWN = 5_000


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """The smarthost: another lab, taking carol's mail after AUTH."""
    state = tmp_path_factory.mktemp("relay")
    args = [
        "netlab-mail",
        "--state",
        str(state),
        "--domain",
        "relay.test",
        "--user",
        f"{CAROL}:carol-password",
        "--smtp",
        LOOPBACK,
        "--imap",
        LOOPBACK,
        "--http",
        LOOPBACK,
    ]
    with twistd(*args, ports=3, timeout=60) as server:
        ports = lab_ports(server)
        yield Lab(server, state, ports["SMTP"], ports["IMAP"], ports["HTTP"])


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory, relay: Lab) -> Iterator[Lab]:
    """The inbox's lab, which releases through C{relay}."""
    state = tmp_path_factory.mktemp("lab")
    secret = state.parent / f"{state.name}.password"
    secret.write_text("carol-password\n")
    more = (
        "--http", LOOPBACK,
        "--relay", f"localhost:{relay.smtp_port}",
        "--relay-cafile", str(relay.ca_path),
        "--relay-user", CAROL,
        "--relay-password-file", str(secret),
        "--relay-allow", r"@relay\.test$",
    )  # fmt: skip
    with twistd(*lab_args(state, *more), ports=3, timeout=60) as server:
        ports = lab_ports(server)
        yield Lab(server, state, ports["SMTP"], ports["IMAP"], ports["HTTP"])


def tagged(subject: str, tags: str) -> EmailMessage:
    mail = message(subject)
    mail["X-Tags"] = tags
    return mail


def test_tags_on_rows_filter_and_edit(inbox: Inbox) -> None:
    """
    Each row shows its tags; the filter by tag lists every tag and narrows
    the list (the search tag:NAME, in the URL); a tag clicked on a row does
    the same.  In the message view a tag is added and removed; IMAP sees
    the change as keywords, and a keyword IMAP sets shows in the page.
    """
    inbox.lab.send(tagged("the invoice", "invoice, beta 2"))
    inbox.lab.send(message("no tags here"))
    inbox.open()
    row = inbox.row("the invoice")
    expect(row.locator(".tag")).to_have_text(["beta 2", "invoice"])
    expect(inbox.row("no tags here").locator(".tag")).to_have_count(0)

    options = inbox.page.locator("#tag-filter option").all_inner_texts()
    assert options == ["All tags", "beta 2", "invoice"]
    inbox.page.select_option("#tag-filter", "beta 2")
    expect(inbox.page.locator("#list .row")).to_have_count(1, timeout=SHOWN)
    assert inbox.rows() == ["the invoice"]
    assert "q=tag%3A%22beta+2%22" in inbox.page.url
    inbox.page.select_option("#tag-filter", "")
    expect(inbox.page.locator("#list .row")).to_have_count(2, timeout=SHOWN)
    inbox.row("the invoice").locator(".tag", has_text="invoice").click()
    expect(inbox.page.locator("#query")).to_have_value("tag:invoice")
    expect(inbox.page.locator("#list .row")).to_have_count(1, timeout=SHOWN)

    inbox.row("the invoice").locator(".subject").click()
    editor = inbox.page.locator("#message-tags")
    expect(editor.locator(".tag")).to_have_text(["beta 2", "invoice"])
    inbox.page.fill("#tag-input", "urgent")
    inbox.page.press("#tag-input", "Enter")
    expect(editor.locator(".tag")).to_have_text(["beta 2", "invoice", "urgent"])
    inbox.page.click('[aria-label="Remove tag beta 2"]')
    expect(editor.locator(".tag")).to_have_text(["invoice", "urgent"])
    assert set(imap_flags(inbox.lab)["the invoice"].split()) == {
        "\\Seen",
        "invoice",
        "urgent",
    }
    assert sorted(inbox.lab.api("api/v1/tags")) == ["invoice", "urgent"]

    client = inbox.lab.imap()
    try:
        _, found = client.uid("SEARCH", "SUBJECT", "invoice")
        uid = found[0].split()[-1].decode()
        assert client.uid("STORE", uid, "+FLAGS", "(fromimap)")[0] == "OK"
    finally:
        client.logout()
    expect(editor.locator(".tag")).to_have_text(
        ["fromimap", "invoice", "urgent"], timeout=SHOWN
    )
    assert inbox.errors == []


def test_release_dialog(inbox: Inbox, relay: Lab) -> None:
    """
    Release opens a dialog with the envelope's recipients filled in; a
    recipient --relay-allow refuses shows the lab's reason and keeps the
    dialog open; an allowed one sends the stored message, unchanged, to
    the relay lab, and the page says so.
    """
    relay.clear()
    inbox.lab.send(message("please release me"))
    inbox.open()
    inbox.row("please release me").click()
    release = inbox.page.locator("#release")
    expect(release).to_be_visible()
    release.click()
    dialog = inbox.page.locator("#release-dialog")
    expect(dialog).to_be_visible()
    expect(inbox.page.locator("#release-to")).to_have_value(LAB_USER)
    expect(inbox.page.locator("#release-allowed")).to_contain_text(r"@relay\.test$")

    inbox.page.fill("#release-to", "someone@elsewhere.example")
    inbox.page.click("#release-send")
    error = inbox.page.locator("#release-error")
    expect(error).to_contain_text("someone@elsewhere.example", timeout=SHOWN)
    expect(dialog).to_be_visible()
    assert relay.api("api/v1/messages")["total"] == 0

    inbox.page.fill("#release-to", CAROL)
    inbox.page.click("#release-send")
    expect(dialog).to_be_hidden(timeout=SHOWN)
    expect(inbox.page.locator("#release-note")).to_have_text(f"Released to {CAROL}.")
    listed = relay.api("api/v1/messages")
    assert [m["Subject"] for m in listed["messages"]] == ["please release me"]
    [stored] = inbox.lab.api("api/v1/messages")["messages"]
    raw = inbox.lab.api(f"api/v1/message/{stored['ID']}/raw")
    released = relay.api(f"api/v1/message/{listed['messages'][0]['ID']}/raw")
    assert released.endswith(raw)
    assert inbox.errors == []


def test_preview_widths(inbox: Inbox) -> None:
    """
    The HTML view shows the mail as a tablet (768 px) and a phone (375 px)
    would, the mail's own layout seeing that width, and back at full width.
    """
    html = (
        "<html><body><p id='w'>wide</p><script>document.title='x'</script>"
        "</body></html>"
    )
    inbox.lab.send(message("responsive", html=html))
    inbox.page.set_viewport_size({"width": 1600, "height": 900})
    inbox.open()
    inbox.row("responsive").click()
    frame = inbox.html_frame()
    frame.wait_for_selector("#w")
    full = inbox.page.locator("#html-frame").bounding_box()
    assert full is not None and full["width"] > 800
    for name, width in (("Tablet", 768), ("Mobile", 375)):
        inbox.page.click(f".widths button:text-is('{name}')")
        expect(
            inbox.page.locator(f".widths button:text-is('{name}')")
        ).to_have_attribute("aria-pressed", "true")
        box = inbox.page.locator("#html-frame").bounding_box()
        assert box is not None and round(box["width"]) == width
        assert inbox.html_frame().evaluate("window.innerWidth") == width
    inbox.page.click(".widths button:text-is('Desktop')")
    box = inbox.page.locator("#html-frame").bounding_box()
    assert box is not None and box["width"] == full["width"]
    if os.environ.get("NETLAB_SCREENSHOTS"):
        inbox.page.click(".widths button:text-is('Mobile')")
        inbox.page.screenshot(path=str(DOCS / "web-inbox-mobile-preview.png"))


def test_notifications_once_allowed(inbox: Inbox) -> None:
    """
    No notification until asked for; once the browser allows them, each
    new message shows one with its subject and sender (text only), and
    turning them off stops them.
    """
    inbox.context.grant_permissions(["notifications"], origin=inbox.lab.url.rstrip("/"))
    inbox.page.add_init_script(
        """
        window.__shown = [];
        const Real = window.Notification;
        class Recorded extends Real {
          constructor(title, options) {
            super(title, options);
            window.__shown.push([title, options && options.body]);
          }
        }
        window.Notification = Recorded;
        """
    )
    inbox.open()
    inbox.lab.send(message("before asking"))
    expect(inbox.page.locator("#list .row")).to_have_count(1, timeout=SHOWN)
    assert inbox.page.evaluate("window.__shown") == []

    inbox.page.click("#notify")
    expect(inbox.page.locator("#notify")).to_have_attribute("aria-pressed", "true")
    inbox.lab.send(message("<b>ring</b> the bell", sender="Bell <bell@example.test>"))
    inbox.page.wait_for_function("window.__shown.length === 1", timeout=SHOWN)
    assert inbox.page.evaluate("window.__shown") == [
        ["<b>ring</b> the bell", "from Bell"]
    ]

    inbox.page.click("#notify")
    expect(inbox.page.locator("#notify")).to_have_attribute("aria-pressed", "false")
    inbox.lab.send(message("after turning off"))
    expect(inbox.page.locator("#list .row")).to_have_count(3, timeout=SHOWN)
    assert len(inbox.page.evaluate("window.__shown")) == 1


def test_list_unsubscribe_shown_and_checked(inbox: Inbox) -> None:
    """
    A message's List-Unsubscribe links show as text (never as links to
    click), with its one-click header; a broken header shows Mailpit's
    check's complaint.
    """
    good = message("newsletter")
    good["List-Unsubscribe"] = (
        "<mailto:leave@list.example>, <https://list.example/u?id=1>"
    )
    good["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    bad = message("broken list")
    bad["List-Unsubscribe"] = "leave@list.example"
    inbox.lab.send(good)
    inbox.lab.send(bad)
    inbox.open()
    inbox.row("newsletter").click()
    links = inbox.page.locator("#unsubscribe-links li")
    expect(links).to_have_text(
        ["mailto:leave@list.example", "https://list.example/u?id=1"]
    )
    expect(inbox.page.locator("#unsubscribe a")).to_have_count(0)
    expect(inbox.page.locator("#unsubscribe-post")).to_contain_text("One-Click")
    expect(inbox.page.locator("#unsubscribe-errors")).to_be_hidden()

    inbox.row("broken list").click()
    expect(inbox.page.locator("#subject")).to_have_text("broken list")
    errors = inbox.page.locator("#unsubscribe-errors")
    expect(errors).to_be_visible()
    assert re.search(r"\S", errors.inner_text())
    assert inbox.errors == []
