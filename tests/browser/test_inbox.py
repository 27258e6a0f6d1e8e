"""
The web inbox as a person uses it: the lab's page open in Debian's Chromium
(Playwright), mail sent with smtplib and read or changed with imaplib.
"""

from __future__ import annotations

import os
import re
import secrets
import struct
import time
import zlib
from email.message import EmailMessage
from pathlib import Path

from playwright.sync_api import Route, expect

from tests.browser.conftest import BCC_USER, LAB_USER, Inbox, Lab, message

DOCS = Path(__file__).resolve().parents[2] / "docs"
#: Generous ceilings for the browser to show what the lab already did; speed
#: itself is measured by the benchmarks, not asserted here.
SHOWN = 5_000
#: A one-page PDF.
PDF = (
    b"%PDF-1.1\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages"
    b"/Kids[3 0 R]/Count 1>>endobj 3 0 obj<</Type/Page/Parent 2 0 R"
    b"/MediaBox[0 0 200 200]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
)


def png(width: int = 4, height: int = 3) -> bytes:
    """
    A small valid PNG (opaque red), made without an imaging library.
    """

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def imap_flags(lab: Lab) -> dict[str, str]:
    """
    Subject -> FLAGS of every message in the lab user's INBOX, over IMAP.
    """
    client = lab.imap()
    try:
        _, data = client.uid(
            "FETCH", "1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])"
        )
        flags = {}
        for item in data:
            if isinstance(item, tuple):
                meta, header = item
                subject = header.decode().split(":", 1)[1].strip()
                found = re.search(rb"FLAGS \(([^)]*)\)", meta)
                assert found is not None, meta
                flags[subject] = " ".join(
                    f for f in found.group(1).decode().split() if f != "\\Recent"
                )
        return flags
    finally:
        client.logout()


def test_new_mail_appears_without_reload(inbox: Inbox) -> None:
    """
    A message sent by smtplib shows at the top of an open page through the
    event stream: no reload of the page and no new list request.
    """
    inbox.lab.send(message("first one"))
    inbox.open()
    inbox.page.evaluate("window.__same_document = true")
    lists_before = len(inbox.api_requests("api/v1/messages"))

    inbox.lab.send(message("arrives live"))

    inbox.row("arrives live").wait_for(timeout=SHOWN)
    assert inbox.rows() == ["arrives live", "first one"]
    assert inbox.page.evaluate("window.__same_document") is True
    assert len(inbox.api_requests("api/v1/messages")) == lists_before
    assert inbox.page.locator("#count").inner_text() == "2 messages"
    expect(inbox.page).to_have_title(re.compile(r"^\(2\) "), timeout=SHOWN)


def test_search_narrows_the_list_and_lives_in_the_url(inbox: Inbox) -> None:
    """
    The "?" by the search box explains the language; a search shows only
    the matching messages and their count; the query is in the URL, so the
    back button and a bookmark both work.
    """
    for subject in ("invoice 1", "hello there", "invoice 2"):
        inbox.lab.send(message(subject))
    inbox.open()
    assert inbox.rows() == ["invoice 2", "hello there", "invoice 1"]

    inbox.page.click("#help-button")
    expect(inbox.page.locator("#search-help")).to_be_visible()
    assert "has:attachment" in inbox.page.locator("#search-help").inner_text()
    inbox.page.keyboard.press("Escape")
    expect(inbox.page.locator("#search-help")).to_be_hidden()

    inbox.page.fill("#query", "subject:invoice")
    inbox.page.press("#query", "Enter")
    expect(inbox.page.locator("#list .row")).to_have_count(2)
    assert inbox.rows() == ["invoice 2", "invoice 1"]
    assert inbox.page.locator("#count").inner_text() == "2 results"
    assert "q=subject%3Ainvoice" in inbox.page.url

    inbox.page.go_back()
    expect(inbox.page.locator("#list .row")).to_have_count(3)
    assert inbox.page.input_value("#query") == ""

    inbox.page.go_forward()
    expect(inbox.page.locator("#list .row")).to_have_count(2)
    assert inbox.page.input_value("#query") == "subject:invoice"

    inbox.open("?q=there")
    assert inbox.rows() == ["hello there"]
    assert inbox.page.locator("#count").inner_text() == "1 result"


def test_html_view_runs_no_script_and_loads_nothing_remote(inbox: Inbox) -> None:
    """
    The HTML tab shows the body in a sandboxed frame (an opaque origin the
    page cannot reach into): its <script> and inline handlers never run and
    its remote image is never requested -- until "load remote content" is
    pressed, which still runs no script.
    """
    html = (
        "<html><body><p id=hello>Hello <b>HTML</b></p>"
        '<img src="http://remote.invalid/pixel.png" alt=pixel>'
        "<script>new Image().src = '/script-ran';"
        " parent.document.title = 'pwned';</script>"
        '<img src="/missing-image" onerror="new Image().src = \'/handler-ran\'">'
        "</body></html>"
    )
    inbox.lab.send(message("html mail", html=html))
    inbox.open()
    inbox.row("html mail").click()
    frame = inbox.html_frame()
    frame.wait_for_selector("#hello")
    assert frame.locator("#hello").inner_text() == "Hello HTML"
    inbox.page.wait_for_timeout(300)  # let anything that would run, run

    assert inbox.page.get_attribute("#html-frame", "sandbox") == ""
    assert inbox.page.evaluate(
        "document.getElementById('html-frame').contentDocument === null"
    ), "the HTML frame is not sandboxed into an opaque origin"
    assert not [u for u in inbox.requests if "remote.invalid" in u]
    assert not [
        u for u in inbox.requests if u.endswith(("/script-ran", "/handler-ran"))
    ]
    assert inbox.page.title() != "pwned"

    inbox.page.click("#load-remote")
    frame = inbox.html_frame("#html-frame[src*='remote']")
    frame.wait_for_selector("#hello")
    inbox.page.wait_for_timeout(300)
    assert [u for u in inbox.requests if "remote.invalid" in u]
    assert not [
        u for u in inbox.requests if u.endswith(("/script-ran", "/handler-ran"))
    ]


def test_page_refuses_inline_script(inbox: Inbox) -> None:
    """
    The page's own Content-Security-Policy runs only its own script files:
    an inline event handler that got into the page would not run.
    """
    inbox.open()
    inbox.page.evaluate(
        """() => {
            const img = document.createElement('img');
            img.setAttribute('onerror', 'window.__ran = true');
            img.src = 'data:,broken';
            document.body.append(img);
        }"""
    )
    inbox.page.wait_for_timeout(300)
    assert inbox.page.evaluate("window.__ran === undefined")


def test_markup_in_mail_stays_text(inbox: Inbox) -> None:
    """
    Subjects, names and addresses are shown as text: an <img onerror> in
    them makes no element and runs nothing, in the list and the message view.
    """
    subject = "<img src=x onerror=alert(1)> & <b>bold</b>"
    name = '"<svg onload=alert(2)>" <evil@sender.example>'
    inbox.lab.send(message(subject, sender=name))
    inbox.open()
    row = inbox.row("onerror")
    assert row.locator(".subject").inner_text() == subject
    assert row.locator(".from").inner_text() == "<svg onload=alert(2)>"
    inbox.row("onerror").click()
    inbox.page.wait_for_selector("#subject:not(:empty)")
    assert inbox.page.locator("#subject").inner_text() == subject
    inbox.page.click("[data-tab=headers]")
    inbox.page.wait_for_selector("#headers tr")
    assert subject in inbox.page.locator("#headers").inner_text()
    assert inbox.page.locator("#list img, #list svg, #list b").count() == 0
    assert (
        inbox.page.locator(".message-head img, .message-head svg, #headers img").count()
        == 0
    )
    inbox.page.wait_for_timeout(300)
    assert inbox.dialogs == []


def test_attachment_downloads_byte_for_byte(inbox: Inbox, tmp_path: Path) -> None:
    """
    The Attachments tab lists name, type and size; Download saves exactly the
    attached bytes under the attachment's name, and an image and a PDF
    preview inline.
    """
    data = secrets.token_bytes(50_000) + b"\r\n\n\x00end"
    mail = message("with files")
    mail.add_attachment(
        data, maintype="application", subtype="octet-stream", filename="data.bin"
    )
    mail.add_attachment(png(), maintype="image", subtype="png", filename="red.png")
    mail.add_attachment(PDF, maintype="application", subtype="pdf", filename="doc.pdf")
    inbox.lab.send(mail)
    inbox.open()
    assert inbox.row("with files").locator(".attachment-mark").count() == 1
    inbox.row("with files").click()
    inbox.page.click("[data-tab=attachments]")
    item = inbox.page.locator(".attachment", has_text="data.bin")
    item.wait_for()
    assert "application/octet-stream" in item.inner_text()
    assert "49 kB" in item.inner_text()

    with inbox.page.expect_download() as info:
        item.locator("a", has_text="Download").click()
    download = info.value
    assert download.suggested_filename == "data.bin"
    saved = tmp_path / "data.bin"
    download.save_as(saved)
    assert saved.read_bytes() == data

    inbox.page.locator(".attachment", has_text="red.png").locator("button").click()
    expect(inbox.page.locator("#preview img")).to_have_js_property("naturalWidth", 4)
    assert inbox.page.get_attribute("#preview img", "alt") == "red.png"

    inbox.page.locator(".attachment", has_text="doc.pdf").locator("button").click()
    frame = inbox.html_frame("#preview iframe.pdf")
    frame.wait_for_load_state()
    assert frame.url.startswith("blob:"), frame.url


def test_read_and_delete_in_the_page_show_over_imap(inbox: Inbox) -> None:
    """
    Opening a message marks it \\Seen over IMAP, "mark unread" clears it, and
    deleting in the page deletes it from the IMAP mailbox.
    """
    inbox.lab.send(message("keep me"))
    inbox.lab.send(message("read me"))
    inbox.open()
    assert imap_flags(inbox.lab) == {"keep me": "", "read me": ""}

    inbox.row("read me").click()
    inbox.page.wait_for_selector("#list .row.selected:not(.unread)")
    assert "\\Seen" in imap_flags(inbox.lab)["read me"]

    inbox.page.click("#toggle-read")
    inbox.page.wait_for_selector("#toggle-read:text('Mark read')")
    assert "\\Seen" not in imap_flags(inbox.lab)["read me"]

    inbox.page.click("#delete")
    inbox.row("read me").wait_for(state="detached")
    assert list(imap_flags(inbox.lab)) == ["keep me"]


def test_read_and_delete_over_imap_show_in_the_page(inbox: Inbox) -> None:
    """
    \\Seen set by an IMAP client clears the unread mark in an open page and
    the tab title's count, and an IMAP expunge removes the row, live.
    """
    inbox.lab.send(message("stays"))
    inbox.lab.send(message("goes"))
    inbox.open()
    assert inbox.page.locator("#list .row.unread").count() == 2
    expect(inbox.page).to_have_title(re.compile(r"^\(2\) "))

    client = inbox.lab.imap()
    try:
        _, found = client.uid("SEARCH", "SUBJECT", "stays")
        client.uid("STORE", found[0].decode(), "+FLAGS", "(\\Seen)")
        inbox.page.wait_for_selector(
            "#list .row:not(.unread) >> text=stays", timeout=SHOWN
        )
        expect(inbox.page).to_have_title(re.compile(r"^\(1\) "), timeout=SHOWN)

        _, found = client.uid("SEARCH", "SUBJECT", "goes")
        client.uid("STORE", found[0].decode(), "+FLAGS", "(\\Deleted)")
        client.expunge()
        inbox.row("goes").wait_for(state="detached", timeout=SHOWN)
        assert inbox.rows() == ["stays"]
    finally:
        client.logout()


def test_keyboard_navigation(inbox: Inbox) -> None:
    """
    j/k and the arrow keys move through the list, Delete deletes the message
    shown, / goes to the search box, and ? shows the shortcuts.
    """
    for subject in ("oldest", "middle", "newest"):
        inbox.lab.send(message(subject))
    inbox.open()
    keyboard = inbox.page.keyboard
    shown = inbox.page.locator("#subject")

    keyboard.press("j")
    expect(shown).to_have_text("newest")
    keyboard.press("j")
    expect(shown).to_have_text("middle")
    keyboard.press("ArrowDown")
    expect(shown).to_have_text("oldest")
    keyboard.press("k")
    expect(shown).to_have_text("middle")
    assert inbox.page.locator("#list .row.selected .subject").inner_text() == "middle"

    keyboard.press("Delete")
    inbox.row("middle").wait_for(state="detached")
    expect(shown).to_have_text("oldest")
    assert inbox.rows() == ["newest", "oldest"]
    assert shown.inner_text() == "oldest"

    keyboard.press("?")
    inbox.page.wait_for_selector("#shortcuts:popover-open")
    assert "next message" in inbox.page.locator("#shortcuts").inner_text()
    keyboard.press("Escape")

    keyboard.press("/")
    assert inbox.page.evaluate("document.activeElement.id") == "query"


def test_delete_all_matching_the_search(inbox: Inbox) -> None:
    """
    "Delete N matching" deletes exactly the messages the search shows.
    """
    for subject in ("spam 1", "ham", "spam 2"):
        inbox.lab.send(message(subject))
    inbox.open("?q=subject%3Aspam")
    assert inbox.rows() == ["spam 2", "spam 1"]
    inbox.accept_dialogs = True
    inbox.page.click("#delete-all")
    expect(inbox.page.locator("#list .row")).to_have_count(0)
    assert sorted(imap_flags(inbox.lab)) == ["ham"]


def test_headers_in_order_and_mailbox_filter(inbox: Inbox) -> None:
    """
    A message for two lab users is listed once per mailbox, and the mailbox
    filter (kept in the URL) shows one; the Headers tab shows the headers in
    their order, decoded.
    """
    mail = message("Grüße to you")
    mail["X-First"] = "1"
    inbox.lab.send(mail, to=[LAB_USER, BCC_USER])
    inbox.open()
    assert inbox.rows() == ["Grüße to you", "Grüße to you"]
    assert sorted(inbox.page.locator("#list .mailbox-tag").all_inner_texts()) == [
        BCC_USER,
        LAB_USER,
    ]

    inbox.page.select_option("#mailbox", LAB_USER)
    expect(inbox.page.locator("#list .row")).to_have_count(1)
    assert f"mailbox={LAB_USER.replace('@', '%40')}" in inbox.page.url
    inbox.row("Grüße").click()
    expect(inbox.page.locator("#addresses")).to_contain_text(LAB_USER)

    inbox.page.click("[data-tab=headers]")
    inbox.page.wait_for_selector("#headers tr")
    names = inbox.page.locator("#headers th").all_inner_texts()
    assert names.index("Subject") < names.index("X-First")
    subject = inbox.page.locator("#headers tr", has_text="Subject").locator("td")
    assert subject.inner_text() == "Grüße to you"


def test_screenshots(inbox: Inbox) -> None:
    """
    The list and the message view render with real mail; with
    NETLAB_SCREENSHOTS=docs they are saved as the docs' PNGs.
    """
    samples = [
        ("Build #1841 passed", "ci@builds.example", "All 412 tests passed in 3m 12s."),
        (
            "Your invoice for November",
            "Billing <billing@shop.example>",
            "Amount due: 42.00 EUR.",
        ),
        (
            "Grüße aus Köln",
            "Jörg Müller <joerg@example.de>",
            "Schöne Grüße und bis bald!",
        ),
        (
            "Password reset",
            "Accounts <no-reply@app.example>",
            "Someone asked to reset the password.",
        ),
        ("Welcome aboard!", "Team <hello@app.example>", "Thanks for signing up."),
    ]
    tags = {"Your invoice for November": "invoice", "Welcome aboard!": "onboarding"}
    for subject, sender, text in samples:
        mail = message(subject, text, sender=sender)
        if subject in tags:
            mail["X-Tags"] = tags[subject]
        if subject.startswith("Welcome"):
            mail.add_alternative(
                "<html><body style='font-family:sans-serif'><h1>Welcome aboard!</h1>"
                "<p>Thanks for signing up. "
                "<a href='https://app.example/start'>Get started</a>.</p>"
                "<p><img src='https://tracker.example/pixel.gif' "
                "alt='(remote image blocked)'></p>"
                "</body></html>",
                subtype="html",
            )
            mail.add_attachment(
                b"%PDF-1.4\n",
                maintype="application",
                subtype="pdf",
                filename="guide.pdf",
            )
        inbox.lab.send(mail)
    inbox.open()
    assert len(inbox.rows()) == len(samples)
    target = os.environ.get("NETLAB_SCREENSHOTS")
    if target:
        inbox.page.screenshot(path=str(DOCS / "web-inbox-list.png"))
    inbox.row("Welcome aboard!").click()
    frame = inbox.html_frame()
    frame.wait_for_selector("h1")
    if target:
        inbox.page.screenshot(path=str(DOCS / "web-inbox-message.png"))
    assert inbox.errors == []


def test_phone_sized_and_dark(inbox: Inbox) -> None:
    """
    In a phone-sized window the list and the message take the screen in
    turn (with a way back), and the page follows the browser's dark mode.
    """
    inbox.lab.send(message("small screen"))
    inbox.page.set_viewport_size({"width": 390, "height": 800})
    inbox.page.emulate_media(color_scheme="dark")
    inbox.open()
    background = inbox.page.evaluate("getComputedStyle(document.body).backgroundColor")
    channels = [int(c) for c in re.findall(r"\d+", background)[:3]]
    assert max(channels) < 80, background
    assert inbox.page.evaluate("document.documentElement.scrollWidth") <= 390

    inbox.row("small screen").click()
    expect(inbox.page.locator("#subject")).to_have_text("small screen")
    expect(inbox.page.locator("#list-pane")).to_be_hidden()
    inbox.page.click("#back")
    expect(inbox.page.locator("#list-pane")).to_be_visible()
    expect(inbox.page.locator("#view-pane")).to_be_hidden()


def test_cid_images_show_from_the_message(inbox: Inbox) -> None:
    """
    An HTML body's cid: image is shown from the message's own part inside
    the sandboxed frame, with no request beyond the lab.
    """
    mail = message("with a logo")
    mail.add_alternative(
        '<p>Logo: <img id=logo src="cid:logo@netlab.test" alt=logo></p>', subtype="html"
    )
    html_part = mail.get_body(preferencelist=("html",))
    assert isinstance(html_part, EmailMessage)
    html_part.add_related(
        png(), maintype="image", subtype="png", cid="<logo@netlab.test>"
    )
    inbox.lab.send(mail)
    inbox.open()
    inbox.row("with a logo").click()
    frame = inbox.html_frame()
    expect(frame.locator("#logo")).to_have_js_property("naturalWidth", 4)
    assert all(u.startswith(inbox.lab.url) for u in inbox.requests)


def test_envelope_tab_shows_bcc(inbox: Inbox) -> None:
    """
    The Envelope tab shows MAIL FROM, every RCPT TO (the Bcc recipient too,
    who is in no header), the client, TLS and the AUTH user; the message
    head shows that recipient as Bcc, as Mailpit does.
    """
    mail = message("blind copy")
    inbox.lab.send(mail, to=[LAB_USER, BCC_USER])
    inbox.open(f"?mailbox={LAB_USER}")
    inbox.row("blind copy").click()
    inbox.page.click("[data-tab=envelope]")
    envelope = inbox.page.locator("#envelope")
    expect(envelope).to_contain_text("RCPT TO")
    names = envelope.locator("dt").all_inner_texts()
    values = dict(zip(names, envelope.locator("dd").all_inner_texts(), strict=True))
    assert values["MAIL FROM"] == "alice@sender.example"
    assert values["RCPT TO"] == f"{LAB_USER}, {BCC_USER}"
    assert values["Client"].startswith("127.0.0.1")
    assert values["TLS"] == "yes"
    assert values["AUTH"] == "none"
    heads = inbox.page.locator("#addresses dt").all_inner_texts()
    shown = dict(
        zip(heads, inbox.page.locator("#addresses dd").all_inner_texts(), strict=True)
    )
    assert shown["Bcc"] == BCC_USER
    assert shown["To"] == LAB_USER


def test_mail_arriving_during_the_first_list_request_is_kept(inbox: Inbox) -> None:
    """
    A message announced by the event stream while the list request is out,
    whose answer was made before it arrived, still shows once that answer
    comes in.
    """
    inbox.lab.send(message("before"))
    held: list[Route] = []

    def stale_answer(route: Route) -> None:
        if held:
            route.continue_()
            return
        held.append(route)
        answer = route.fetch()  # made now, without the next message
        inbox.lab.send(message("during"))
        time.sleep(1)  # the page hears of it meanwhile
        route.fulfill(response=answer)

    inbox.page.route("**/api/v1/messages?*", stale_answer)
    inbox.open()
    expect(inbox.page.locator("#list .row .subject")).to_have_text(["during", "before"])
    assert inbox.page.locator("#count").inner_text() == "2 messages"


def test_delete_all_of_one_mailbox(inbox: Inbox) -> None:
    """
    With the mailbox filter on, "Delete all" empties that mailbox only.
    """
    inbox.lab.send(message("mine"))
    inbox.lab.send(message("theirs", to=BCC_USER), to=[BCC_USER])
    inbox.open(f"?mailbox={LAB_USER}")
    assert inbox.rows() == ["mine"]
    inbox.accept_dialogs = True
    inbox.page.click("#delete-all")
    expect(inbox.page.locator("#list .row")).to_have_count(0)
    assert inbox.dialogs == [f"Delete 1 message of {LAB_USER}?"]
    assert imap_flags(inbox.lab) == {}
    inbox.page.select_option("#mailbox", "")
    expect(inbox.page.locator("#list .row .subject")).to_have_text(["theirs"])


def test_paging(inbox: Inbox) -> None:
    """
    The list shows 50 messages a page, newest first; "older" (or n) shows
    the next page, its place is in the URL, and the back button returns.
    """
    inbox.lab.send_many([message(f"number {n:02d}") for n in range(60)])
    inbox.open()
    rows = inbox.page.locator("#list .row .subject")
    expect(rows).to_have_count(50)
    assert inbox.rows()[0] == "number 59"
    assert inbox.rows()[-1] == "number 10"
    assert inbox.page.locator("#range").inner_text() == "1\u201350"

    inbox.page.click("#next-page")
    expect(rows).to_have_count(10)
    assert inbox.rows() == [f"number {n:02d}" for n in range(9, -1, -1)]
    assert "start=50" in inbox.page.url
    assert inbox.page.locator("#range").inner_text() == "51\u201360"
    assert inbox.page.locator("#count").inner_text() == "60 messages"

    inbox.page.go_back()
    expect(rows).to_have_count(50)
    inbox.page.keyboard.press("n")
    expect(rows).to_have_count(10)


def test_no_release_without_a_relay(inbox: Inbox) -> None:
    """
    A lab started without --relay offers no Release button (its webui
    says the relay is off); the message's tags editor is there.
    """
    inbox.lab.send(message("stays here"))
    inbox.open()
    inbox.row("stays here").click()
    expect(inbox.page.locator("#subject")).to_have_text("stays here")
    expect(inbox.page.locator("#tag-editor")).to_be_visible()
    expect(inbox.page.locator("#release")).to_be_hidden()
    assert inbox.lab.api("api/v1/webui")["MessageRelay"]["Enabled"] is False
