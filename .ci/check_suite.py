"""
Wait for the suite started by README.rst's first command and speak to each of
its servers; exit non-zero (showing the suite's log) if one does not answer.
"""

import socket
import sys
import time
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
print(
    "the suite answers on 7070 (hello), 7071 (echo), 2525 (SMTP), 1143 (IMAP), "
    "1110 (POP3), 8025 (HTTP API)"
)
