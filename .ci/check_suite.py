"""
Wait for the suite started by README.rst's first command and speak to each of
its servers; exit non-zero (showing the suite's log) if one does not answer.
"""

import imaplib
import json
import re
import smtplib
import socket
import ssl
import sys
import time
import urllib.request
from pathlib import Path

log_path = sys.argv[1]
deadline = time.monotonic() + 600


def connect(port: int) -> socket.socket:
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), timeout=10)
        except OSError:
            if time.monotonic() > deadline:
                print(Path(log_path).read_text())
                sys.exit(f"the suite never listened on port {port}")
            time.sleep(0.5)


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


with connect(7070) as sock:
    assert read_all(sock) == b"Hello Client! I am a HelloHandler\r\n"
with connect(7071) as sock:
    sock.sendall(b"Hi\n")
    sock.shutdown(socket.SHUT_WR)
    assert read_all(sock) == b"S:Hi\n"
with connect(2525) as sock:
    smtp = sock.makefile("rwb")
    assert smtp.readline().startswith(b"220 "), "no SMTP greeting"
    smtp.write(b"EHLO ci.example\r\n")
    smtp.flush()
    lines = [smtp.readline()]
    while lines[-1][3:4] == b"-":
        lines.append(smtp.readline())
    assert any(b"STARTTLS" in line for line in lines), lines
    smtp.write(b"QUIT\r\n")
    smtp.flush()
with connect(1143) as sock:
    imap = sock.makefile("rwb")
    greeting = imap.readline()
    assert greeting.startswith(b"* OK"), greeting
    imap.write(b"a CAPABILITY\r\n")
    imap.flush()
    capability = imap.readline()
    assert b"STARTTLS" in capability and b"LOGINDISABLED" in capability, capability
with connect(1110) as sock:
    pop3 = sock.makefile("rwb")
    greeting = pop3.readline()
    assert greeting.startswith(b"+OK"), greeting
    pop3.write(b"CAPA\r\n")
    pop3.flush()
    capabilities = [pop3.readline()]
    while capabilities[-1] != b".\r\n":
        capabilities.append(pop3.readline())
    assert b"STLS\r\n" in capabilities, capabilities
    assert b"USER\r\n" not in capabilities, capabilities
    pop3.write(b"QUIT\r\n")
    pop3.flush()
with connect(8025) as sock:
    sock.sendall(b"GET /api/v1/messages HTTP/1.0\r\nHost: localhost\r\n\r\n")
    answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.0 200 "), answer[:200]
    assert b'"messages"' in answer, answer[:500]

# Issue 11's newcomer: mail to anyone, Cc and Bcc included, is caught once,
# listed by the HTTP API with its envelope recipients, and readable over IMAP
# (STARTTLS, the lab's certificate verified) by the first user.
made = re.search(
    r"made the mail user (\S+) with password (\S+)", Path(log_path).read_text()
)
assert made, "the suite logged no first user"
user, password = made[1], made[2].rstrip(".,;")
subject = f"CI newcomer {time.time()}"
with smtplib.SMTP("127.0.0.1", 2525, timeout=30) as client:
    client.sendmail(
        "app@example.com",
        ["someone@anywhere.example", "cc@else.example", "hidden@bcc.example"],
        f"From: app@example.com\r\nTo: someone@anywhere.example\r\n"
        f"Cc: cc@else.example\r\nSubject: {subject}\r\n\r\nHello\r\n",
    )
listing = json.load(urllib.request.urlopen("http://localhost:8025/api/v1/messages"))
caught = [m for m in listing["messages"] if m["Subject"] == subject]
assert len(caught) == 1, listing
detail = json.load(
    urllib.request.urlopen(f"http://localhost:8025/api/v1/message/{caught[0]['ID']}")
)
assert set(detail["Envelope"]["RcptTo"]) == {
    "someone@anywhere.example",
    "cc@else.example",
    "hidden@bcc.example",
}, detail["Envelope"]
context = ssl.create_default_context(cafile="netlab-state/tls/cert.pem")
with imaplib.IMAP4("localhost", 1143, timeout=30) as imap:
    imap.starttls(context)
    imap.login(user, password)
    imap.select("INBOX", readonly=True)
    status, found = imap.search(None, "SUBJECT", f'"{subject}"')
    assert status == "OK" and len(found[0].split()) == 1, found

print(
    "the suite answers on 7070 (hello), 7071 (echo), 2525 (SMTP), 1143 (IMAP), "
    "1110 (POP3), 8025 (HTTP API); mail to anyone is caught once, with its\n"
    "envelope, and read over IMAP by the first user"
)
