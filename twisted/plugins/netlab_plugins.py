# The twistd dropin for twisted_netlab.  twistd imports every dropin at each
# start, so this imports nothing but ServiceMaker and Reactor and names the
# tap and reactor modules, which are imported only when used.
from twisted.application.reactors import Reactor
from twisted.application.service import ServiceMaker

NetlabHello = ServiceMaker(
    "netlab-hello",
    "twisted_netlab.tap.hello",
    "The greeting server: one line to every client, then close.",
    "netlab-hello",
)

NetlabEcho = ServiceMaker(
    "netlab-echo",
    "twisted_netlab.tap.echo",
    "The line echo server: S: plus every line, byte for byte.",
    "netlab-echo",
)

NetlabMail = ServiceMaker(
    "netlab-mail",
    "twisted_netlab.tap.mail",
    "The mail lab: SMTP, IMAP and POP3 over Maildir, for labs and tests.",
    "netlab-mail",
)

Netlab = ServiceMaker(
    "netlab",
    "twisted_netlab.tap.suite",
    "The whole netlab suite in one process: hello, echo and the mail lab.",
    "netlab",
)

# twistd --reactor=netlab-epoll (the plugins above install it by default).

NetlabEPoll = Reactor(
    "netlab-epoll",
    "twisted_netlab.reactor",
    "epoll without a logging context per event (netlab's default).",
)
