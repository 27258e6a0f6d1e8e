"""
The pieces of the SMTP command grammar the lab's server reads itself:
C{MAIL FROM} and C{RCPT TO} paths (Twisted's address grammar, widened to
UTF-8 for SMTPUTF8, RFC 6531), C{MAIL}'s parameters, and C{BDAT}'s
arguments (RFC 3030).
"""

from __future__ import annotations

import re

from twisted.mail import smtp

BDAT_ARGUMENTS = re.compile(rb"^(\d{1,12})(?:[ \t]+(LAST))?[ \t]*$", re.I)

# Twisted's address grammar, widened to UTF-8 (RFC 6531) for SMTPUTF8.
_UTF8_ATOM = rb"[-A-Za-z0-9!\#$%&'*+/=?^_`{|}~\x80-\xff]"
_UTF8_QSTRING = rb'("[^"]*"|\\.|' + _UTF8_ATOM + rb"|[@.,:])+"
MAIL_ARGUMENTS = re.compile(
    rb"\s*FROM:\s*(?P<path><>|<" + _UTF8_QSTRING + rb">|" + _UTF8_QSTRING + rb")"
    rb"\s*(\s(?P<opts>.*))?$",
    re.I,
)
RCPT_ARGUMENTS = re.compile(
    rb"\s*TO:\s*(?P<path><" + _UTF8_QSTRING + rb">|" + _UTF8_QSTRING + rb")"
    rb"\s*(\s(?P<opts>.*))?$",
    re.I,
)


class UTF8Address(smtp.Address):
    """
    An address whose local part and domain may be UTF-8 (RFC 6531).
    """

    tstring = re.compile(
        rb'((?:"[^"]*"|\\.|' + _UTF8_ATOM + rb")+|.)",
    )
    atomre = re.compile(_UTF8_ATOM)


def mail_parameters(options: bytes, max_message_size: int) -> tuple[int, bytes] | bool:
    """
    A reply refusing C{MAIL}'s parameters C{options}, or whether SMTPUTF8
    was asked for.
    """
    smtputf8 = False
    for option in options.split():
        name, _, value = option.partition(b"=")
        name = name.upper()
        if name == b"SIZE":
            if not value.isdigit():
                return 501, b"5.5.4 Syntax: SIZE=number"
            if int(value) > max_message_size:
                return 552, (
                    b"5.3.4 Message too big: the limit is %d bytes"
                    % (max_message_size,)
                )
        elif name == b"BODY":
            if value.upper() not in (b"7BIT", b"8BITMIME"):
                return 501, b"5.5.4 Syntax: BODY=7BIT or BODY=8BITMIME"
        elif name == b"SMTPUTF8" and not value:
            smtputf8 = True
        else:
            return 555, b"5.5.4 MAIL FROM parameter not recognized: " + name[:40]
    return smtputf8
