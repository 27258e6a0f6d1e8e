"""
Reading mail over IMAP: L{connect} and the async L{IMAPSession} it returns.

This is the API; the wire protocol and its response parser are in
L{twisted_netlab.mail.imapclient} (as L{twisted_netlab.mail.send} is built on
L{twisted_netlab.mail.smtpclient}).  Here the session gives the answers their
meaning, as the result dataclasses, and L{SearchQuery} turns a user's search
criteria into the arguments of UID SEARCH.

L{connect} opens a session with implicit TLS (port 993), STARTTLS (port 143)
or, only when asked for by name, no TLS at all; L{IMAPSession} then logs in,
lists mailboxes, reads their status, selects one (read-only unless flags are
to change), searches it and fetches summaries or whole messages by UID, in
batches over UID ranges.  Results are dataclasses; failures are the
exceptions of L{twisted_netlab.errors} with one-line messages.

Two things C{IMAP4Client} does on its own are avoided on purpose: its
C{login} sends the password in cleartext when the server offers no STARTTLS,
and its C{startTLS()} without an argument verifies no certificate.  Here
STARTTLS always gets the verified options of L{client_tls_options}, and
LOGIN goes over TLS unless the session was opened with C{tls="none"}.
"""

from __future__ import annotations

import email.header
import email.utils
import re
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.endpoints import HostnameEndpoint, connectProtocol, wrapClientTLS
from twisted.internet.error import (
    ConnectionRefusedError,
    DNSLookupError,
    NoRouteError,
    TCPTimedOutError,
    TimeoutError,
)
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.mail import imap4

from twisted_netlab.errors import (
    AuthenticationFailed,
    ConnectionFailed,
    NetlabError,
    ServerRefused,
    TLSFailed,
    UsageProblem,
)
from twisted_netlab.mail.imapclient import (
    Arg,
    BadResponse,
    IMAPClientProtocol,
    LiteralArg,
    Trace,
    astring,
    command_lines,
    decode_mailbox_name,
    decode_text,
    expect_int,
    fetch_items,
    flag_names,
    mailbox_arg,
    parse_response,
    uid_set,
)
from twisted_netlab.mail.tls import client_tls_options

TLS_MODES = ("implicit", "starttls", "none")
DEFAULT_PORTS = {"implicit": 993, "starttls": 143, "none": 143}

#: Batches of whole messages: at most this many messages, and at most this
#: many bytes unless one message alone is bigger.
BATCH_MESSAGES = 500
BATCH_BYTES = 8 * 1024 * 1024
#: Summaries (headers only) per UID FETCH.
SUMMARY_BATCH = 1000


@dataclass(frozen=True)
class Mailbox:
    """
    A mailbox as LIST shows it: its name (decoded from modified UTF-7), the
    hierarchy delimiter (L{None} for a flat name space) and its flags.
    """

    name: str
    delimiter: str | None
    flags: tuple[str, ...]


@dataclass(frozen=True)
class MailboxStatus:
    """
    A mailbox's counters, as STATUS reports them.
    """

    name: str
    messages: int
    recent: int
    unseen: int
    uidvalidity: int
    uidnext: int


@dataclass(frozen=True)
class SelectedMailbox:
    """
    The mailbox a session has selected (or examined, when C{read_only}).
    """

    name: str
    exists: int
    uidvalidity: int
    uidnext: int | None
    read_only: bool


@dataclass(frozen=True)
class MessageSummary:
    """
    What a mail client lists about a message; header fields are decoded
    (encoded words included), C{date} is L{None} when missing or unreadable.
    """

    uid: int
    flags: tuple[str, ...]
    size: int
    sender: str
    recipients: str
    subject: str
    date: datetime | None


@dataclass(frozen=True)
class FetchedMessage:
    """
    A whole message, C{data} byte for byte as the server holds it.
    """

    uid: int
    flags: tuple[str, ...]
    data: bytes


# --- search criteria --------------------------------------------------------

_FLAG_KEYS = {
    "ALL", "SEEN", "UNSEEN", "FLAGGED", "UNFLAGGED", "ANSWERED",
    "UNANSWERED", "DELETED", "UNDELETED", "DRAFT", "UNDRAFT", "NEW", "OLD",
    "RECENT",
}  # fmt: skip
_DATE_KEYS = {"SINCE", "BEFORE", "ON", "SENTSINCE", "SENTBEFORE", "SENTON"}
_TEXT_KEYS = {"FROM", "TO", "CC", "BCC", "SUBJECT", "BODY", "TEXT"}
_SEARCH_TOKEN = re.compile(r""""(?:[^"\\]|\\.)*"?|'[^']*'?|[()]|[^\s()"']+""")
_MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split()  # noqa: SIM905


def _search_date(text: str) -> bytes:
    for fmt in ("%Y-%m-%d", "%d-%b-%Y"):
        try:
            day = datetime.strptime(text, fmt).date()
        except ValueError:
            continue
        return _imap_date(day)
    raise ValueError(f"a date like 2024-05-31 or 31-May-2024, not {text!r}")


def _imap_date(day: date) -> bytes:
    return f"{day.day}-{_MONTHS[day.month - 1]}-{day.year}".encode("ascii")


@dataclass(frozen=True)
class SearchQuery:
    """
    Validated IMAP search criteria, ready to send.

    Build one with L{SearchQuery.parse}; the keys are ALL, SEEN, UNSEEN,
    FLAGGED, ANSWERED (and their UN- forms), NEW, OLD, RECENT, DELETED,
    DRAFT, SINCE/BEFORE/ON DATE (and SENT-), FROM/TO/CC/BCC/SUBJECT/BODY/TEXT
    STRING, NOT KEY, OR KEY KEY and parentheses.  Keys one after another
    must all match.
    """

    args: tuple[Arg, ...]
    text: str

    @classmethod
    def parse(cls, criteria: Sequence[str] | str) -> SearchQuery:
        """
        Parse criteria such as C{["UNSEEN", 'FROM "Jane Doe"', "SINCE
        2024-05-01"]}: words, strings in double or single quotes, and
        parentheses.

        @raise UsageProblem: on an unknown key, a missing or bad value, an
            unclosed quote or unbalanced parentheses; the message says which.
        """
        text = criteria if isinstance(criteria, str) else " ".join(criteria)
        tokens: list[tuple[str, bool]] = []  # (word, quoted)
        for match in _SEARCH_TOKEN.finditer(text):
            word, quoted = match.group(), match.group()[:1] in "\"'"
            if quoted and (len(word) < 2 or word[-1] != word[0]):
                raise UsageProblem(f"bad search criteria {text!r}: unclosed quote")
            if quoted:
                word = (
                    re.sub(r"\\(.)", r"\1", word[1:-1])
                    if word[0] == '"'
                    else word[1:-1]
                )
            tokens.append((word, quoted))
        if not tokens:
            return cls((b"ALL",), "ALL")
        args: list[Arg] = []
        position = 0

        def take() -> tuple[str, bool]:
            nonlocal position
            if position >= len(tokens):
                raise ValueError("a search key is missing at the end")
            position += 1
            return tokens[position - 1]

        def key() -> None:
            word, quoted = take()
            name = "" if quoted else word.upper()
            if name in _FLAG_KEYS:
                args.append(name.encode("ascii"))
            elif name in _DATE_KEYS or name in _TEXT_KEYS:
                if position >= len(tokens) or tokens[position] in (
                    ("(", False),
                    (")", False),
                ):
                    raise ValueError(f"{name} needs a value")
                value = take()[0]
                args.append(name.encode("ascii"))
                try:
                    args.append(
                        _search_date(value) if name in _DATE_KEYS else astring(value)
                    )
                except ValueError as e:
                    raise ValueError(f"{name} needs {e}") from None
            elif name in ("NOT", "OR"):
                args.append(name.encode("ascii"))
                for _ in range(1 if name == "NOT" else 2):
                    key()
            elif name == "(":
                args.append(b"(")
                if tokens[position : position + 1] == [(")", False)]:
                    raise ValueError("empty parentheses")
                while position < len(tokens) and tokens[position] != (")", False):
                    key()
                if position >= len(tokens):
                    raise ValueError("a ')' is missing")
                take()
                args.append(b")")
            elif name == ")":
                raise ValueError("a '(' is missing")
            else:
                known = ", ".join(sorted(_FLAG_KEYS | _DATE_KEYS | _TEXT_KEYS))
                raise ValueError(
                    f"unknown search key {word!r} (known: {known}, NOT, OR, ( ))"
                )

        try:
            while position < len(tokens):
                key()
        except ValueError as e:
            raise UsageProblem(f"bad search criteria {text!r}: {e}") from None
        return cls(tuple(args), text)

    def command_args(self, min_uid: int = 1) -> list[Arg]:
        """
        The arguments of UID SEARCH, limited to UIDs from C{min_uid} on.
        """
        args: list[Arg] = []
        if any(isinstance(a, LiteralArg) for a in self.args):
            args += [b"CHARSET", b"UTF-8"]
        if min_uid > 1:
            args += [b"UID", b"%d:*" % min_uid]
        return args + list(self.args)


_SUMMARY_ITEMS = (
    b"(UID FLAGS RFC822.SIZE BODY.PEEK[HEADER.FIELDS (FROM TO SUBJECT DATE)])"
)
_UID_CODE = re.compile(rb"OK \[(UIDVALIDITY|UIDNEXT) (\d+)\]", re.IGNORECASE)


def _header(parsed: Any, headers: bytes, name: str) -> str:
    """
    Header field C{name} (of C{parsed}, C{headers} parsed with the default
    policy): unfolded, encoded words decoded, 8-bit text taken as UTF-8.
    A field the email package cannot make sense of comes out as it is.
    """
    try:
        value = parsed.get(name)
        text = "" if value is None else str(value)
    except Exception:  # the email package gives up on some malformed fields
        from email.parser import BytesHeaderParser
        from email.policy import compat32

        raw = str(BytesHeaderParser(policy=compat32).parsebytes(headers).get(name, ""))
        try:
            text = str(email.header.make_header(email.header.decode_header(raw)))
        except Exception:
            text = raw
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return " ".join(text.split())


def _summary(uid: int, items: dict[str, Any]) -> MessageSummary:
    # Only summaries parse headers: a fetch that saves messages whole does
    # without the email package's policies (a few ms of start-up).
    from email.parser import BytesHeaderParser
    from email.policy import compat32
    from email.policy import default as default_policy

    headers = items.get("BODY[HEADER.FIELDS]") or items.get("RFC822.HEADER")
    headers = headers if isinstance(headers, bytes) else b""
    parsed = BytesHeaderParser(policy=default_policy).parsebytes(headers)
    raw_date = BytesHeaderParser(policy=compat32).parsebytes(headers).get("Date")
    try:
        when = email.utils.parsedate_to_datetime(str(raw_date)) if raw_date else None
    except (TypeError, ValueError, IndexError):
        when = None
    return MessageSummary(
        uid=uid,
        flags=flag_names(items.get("FLAGS")),
        size=expect_int(items.get("RFC822.SIZE", 0), "a message size"),
        sender=_header(parsed, headers, "From"),
        recipients=_header(parsed, headers, "To"),
        subject=_header(parsed, headers, "Subject"),
        date=when,
    )


# --- the session ------------------------------------------------------------


def _connect_error(
    host: str, port: int, timeout: float, error: Exception
) -> NetlabError:
    if isinstance(error, NetlabError):
        return error
    reasons: list[tuple[type[Exception], str]] = [
        (DNSLookupError, "unknown host"),
        (ConnectionRefusedError, "connection refused"),
        (NoRouteError, "no route to host"),
        (TimeoutError, f"no connection within {timeout:g} seconds"),
        (TCPTimedOutError, f"no connection within {timeout:g} seconds"),
    ]
    why = next((text for kind, text in reasons if isinstance(error, kind)), None)
    if why is None:
        lines = str(error).strip().splitlines()
        why = lines[0].rstrip(".") if lines else type(error).__name__
    return ConnectionFailed(f"cannot connect to {host} port {port}: {why}")


async def connect(
    reactor: Any,
    host: str,
    port: int | None = None,
    *,
    tls: str = "implicit",
    cafile: str | None = None,
    verify: bool = True,
    timeout: float = 30.0,
    trace: Trace | None = None,
) -> IMAPSession:
    """
    Connect to the IMAP server C{host}, set up TLS as C{tls} says, and
    return the session, not yet logged in.

    @param tls: C{"implicit"} (TLS from the first byte, port 993 by
        default), C{"starttls"} (port 143, STARTTLS required) or C{"none"}
        (plaintext; L{IMAPSession.login} then sends the password only if
        told to).
    @param cafile: trust the certificates in this PEM file instead of the
        system's.
    @param verify: C{False} skips certificate checks (unsafe).
    @param timeout: seconds to wait for the connection and for each answer.
    @param trace: called with each line sent (C{"C: ..."}, password masked)
        and received (C{"S: ..."}).

    @raise ConnectionFailed: the server cannot be reached or hung up.
    @raise TLSFailed: TLS cannot be set up, or STARTTLS is not offered.
    """
    if tls not in TLS_MODES:
        raise UsageProblem(f"tls must be one of {', '.join(TLS_MODES)}, not {tls!r}")
    port = port if port is not None else DEFAULT_PORTS[tls]
    options: Any = None
    if tls != "none":
        options = client_tls_options(host, cafile=cafile, verify=verify)
    endpoint: IStreamClientEndpoint = HostnameEndpoint(
        reactor, host, port, timeout=timeout
    )
    if tls == "implicit":
        endpoint = wrapClientTLS(options, endpoint)
    try:
        return await open_session(
            reactor, endpoint, host=host, tls=tls, tls_options=options,
            timeout=timeout, trace=trace,
        )  # fmt: skip
    except NetlabError:
        raise
    except Exception as e:
        raise _connect_error(host, port, timeout, e) from None


async def open_session(
    reactor: Any,
    endpoint: IStreamClientEndpoint,
    *,
    host: str,
    tls: str,
    tls_options: Any = None,
    timeout: float = 30.0,
    trace: Trace | None = None,
) -> IMAPSession:
    """
    L{connect} over any client endpoint: C{tls} says what the endpoint
    already does (C{"implicit"}: it is a TLS endpoint) or what to do after
    the greeting (C{"starttls"} with C{tls_options}).
    """
    protocol = IMAPClientProtocol(reactor, host, timeout, trace)
    await connectProtocol(endpoint, protocol)
    assert protocol.greeting is not None
    await protocol.greeting
    protocol.secure = tls == "implicit"
    session = IMAPSession(reactor, protocol, tls=tls)
    if tls == "starttls":
        await session._starttls(tls_options)
    return session


class IMAPSession:
    """
    One IMAP connection: log in, look at mailboxes, select one, search and
    fetch.  Every method returns a coroutine (await it, or wrap it in
    C{Deferred.fromCoroutine}).
    """

    def __init__(self, reactor: Any, protocol: IMAPClientProtocol, *, tls: str) -> None:
        self.reactor = reactor
        self.protocol = protocol
        self.tls = tls
        self.host = protocol.host
        self.selected: SelectedMailbox | None = None

    @property
    def secure(self) -> bool:
        """
        Whether the connection is encrypted.
        """
        return self.protocol.secure

    async def capabilities(self) -> dict[bytes, Any]:
        """
        The server's capabilities (as C{IMAP4Client.getCapabilities}).
        """
        try:
            caps: dict[bytes, Any] = await self.protocol.getCapabilities()
            return caps
        except imap4.IMAP4Exception as e:
            raise ServerRefused(
                f"{self.host} refused CAPABILITY: {decode_text(_bytes(e))}"
            ) from None

    async def _starttls(self, options: Any) -> None:
        caps = await self.capabilities()
        if b"STARTTLS" not in caps:
            self.protocol.fail(
                TLSFailed(
                    f"{self.host} does not offer STARTTLS; not logging in without "
                    "TLS (try --tls implicit)"
                )
            )
            assert self.protocol.failure is not None
            raise self.protocol.failure
        try:
            await self.protocol.startTLS(options)
        except imap4.IMAP4Exception as e:
            error = TLSFailed(f"{self.host} refused STARTTLS: {decode_text(_bytes(e))}")
            self.protocol.fail(error)
            raise error from None

    async def _run(
        self,
        command: bytes,
        args: Sequence[Arg] = (),
        *,
        refused: str,
        error: type[NetlabError] = ServerRefused,
        mask: str | None = None,
    ) -> tuple[list[bytes], bytes]:
        """
        Send C{command}, literals and all; return its untagged answers and
        the tagged line.

        @raise NetlabError: C{error}, saying C{refused} and the server's
            text, when the server answers NO or BAD.
        """
        try:
            return await self.protocol.run_command(command, args, mask)
        except imap4.IMAP4Exception as e:
            raise error(f"{refused}: {decode_text(_bytes(e))}") from None

    async def login(
        self, user: str, password: str, *, allow_plaintext: bool = False
    ) -> None:
        """
        Log in with LOGIN.  It is only ever sent over TLS, unless the
        session was opened with C{tls="none"} and C{allow_plaintext} is true.

        @raise AuthenticationFailed: the server said no, or LOGIN would go
            unencrypted, or the server disallows it (LOGINDISABLED).
        """
        if self.protocol.state == "auth":
            return  # PREAUTH: the server knows who we are
        if not self.secure and not allow_plaintext:
            raise AuthenticationFailed(
                "refusing to send the password without TLS (use TLS, or allow "
                "it with --tls none --insecure-plaintext-auth)"
            )
        caps = await self.capabilities()
        if b"LOGINDISABLED" in caps:
            where = "" if self.secure else " without TLS (try --tls starttls)"
            raise AuthenticationFailed(
                f"{self.host} does not allow LOGIN{where} (LOGINDISABLED)"
            )
        await self._run(
            b"LOGIN",
            [astring(user), astring(password)],
            refused=f"{self.host} rejected the login of {user!r}",
            error=AuthenticationFailed,
            mask=f"LOGIN {decode_text(command_lines([astring(user)])[0])} ****",
        )
        self.protocol._capCache = None  # capabilities may change on login

    async def list_mailboxes(
        self, pattern: str = "*", reference: str = ""
    ) -> list[Mailbox]:
        """
        The mailboxes matching C{pattern} (C{*} all, C{%} one level).
        """
        reference_arg = mailbox_arg(reference) if reference else b'""'
        lines, _ = await self._run(
            b"LIST",
            [reference_arg, mailbox_arg(pattern)],
            refused=f"{self.host} refused LIST",
        )
        boxes = []
        for line in lines:
            if line[:5].upper() != b"LIST ":
                continue
            parts = parse_response(line[5:])
            if len(parts) != 3 or not isinstance(parts[0], list):
                raise BadResponse(f"malformed LIST answer {decode_text(line[:100])!r}")
            flags, delimiter, name = parts
            boxes.append(
                Mailbox(
                    name=decode_mailbox_name(name if isinstance(name, bytes) else b""),
                    delimiter=None if delimiter is None else decode_text(delimiter),
                    flags=flag_names(flags),
                )
            )
        return boxes

    async def status(self, mailbox: str) -> MailboxStatus:
        """
        C{mailbox}'s counters, without selecting it.

        @raise ServerRefused: no such mailbox.
        """
        lines, _ = await self._run(
            b"STATUS",
            [mailbox_arg(mailbox), b"(MESSAGES RECENT UNSEEN UIDVALIDITY UIDNEXT)"],
            refused=f"no status for mailbox {mailbox!r}",
        )
        values: dict[str, int] = {}
        for line in lines:
            if line[:7].upper() == b"STATUS ":
                parts = parse_response(line[7:])
                items = parts[-1] if parts and isinstance(parts[-1], list) else []
                for k, v in zip(items[::2], items[1::2], strict=False):
                    values[decode_text(k).upper()] = expect_int(
                        v, f"a {decode_text(k)} count"
                    )
        return MailboxStatus(
            name=mailbox,
            messages=values.get("MESSAGES", 0),
            recent=values.get("RECENT", 0),
            unseen=values.get("UNSEEN", 0),
            uidvalidity=values.get("UIDVALIDITY", 0),
            uidnext=values.get("UIDNEXT", 0),
        )

    async def select(
        self, mailbox: str = "INBOX", *, read_only: bool = True
    ) -> SelectedMailbox:
        """
        Open C{mailbox}: with EXAMINE (nothing can change, not even the
        \\Seen flag) unless C{read_only} is false (SELECT).

        @raise ServerRefused: no such mailbox, or it cannot be opened.
        """
        self.selected = None  # even if this fails, as on the server
        lines, tagged = await self._run(
            b"EXAMINE" if read_only else b"SELECT",
            [mailbox_arg(mailbox)],
            refused=f"cannot open mailbox {mailbox!r}",
        )
        exists, uidvalidity, uidnext = 0, 0, None
        for line in lines:
            words = line.split(None, 2)
            if len(words) >= 2 and words[1].upper() == b"EXISTS":
                exists = expect_int(words[0], "a message count")
            code = _UID_CODE.match(line)
            if code and code.group(1).upper() == b"UIDVALIDITY":
                uidvalidity = int(code.group(2))
            elif code:
                uidnext = int(code.group(2))
        writable = b"[READ-WRITE]" in tagged.upper()
        self.selected = SelectedMailbox(
            name=mailbox,
            exists=exists,
            uidvalidity=uidvalidity,
            uidnext=uidnext,
            read_only=not writable,
        )
        return self.selected

    def _require_selected(self) -> SelectedMailbox:
        if self.selected is None:
            raise UsageProblem("no mailbox is selected")
        return self.selected

    async def search(
        self, criteria: SearchQuery | Sequence[str] | str = (), *, min_uid: int = 1
    ) -> list[int]:
        """
        The UIDs of the messages in the selected mailbox that match all
        C{criteria} (see L{SearchQuery}; none means ALL), from C{min_uid} on,
        in ascending order.

        @raise UsageProblem: bad criteria (found before anything is sent).
        @raise ServerRefused: the server rejected the search.
        """
        self._require_selected()
        query = (
            criteria
            if isinstance(criteria, SearchQuery)
            else SearchQuery.parse(criteria)
        )
        lines, _ = await self._run(
            b"UID SEARCH",
            query.command_args(min_uid),
            refused=f"{self.host} refused the search",
        )
        uids: set[int] = set()
        for line in lines:
            words = line.split()
            if words and words[0].upper() == b"SEARCH":
                uids.update(expect_int(w, "a UID") for w in words[1:])
        return sorted(u for u in uids if u >= min_uid)

    async def _fetch(
        self, uids: Sequence[int], items: bytes
    ) -> dict[int, dict[str, Any]]:
        lines, _ = await self._run(
            b"UID FETCH", [uid_set(uids), items], refused=f"{self.host} refused FETCH"
        )
        found = fetch_items(lines)
        return {uid: found[uid] for uid in uids if uid in found}

    async def fetch_summaries(self, uids: Sequence[int]) -> list[MessageSummary]:
        """
        Summaries of the messages with these UIDs (those that still exist),
        in UID order, SUMMARY_BATCH at a time.
        """
        self._require_selected()
        uids = sorted(set(uids))
        summaries: list[MessageSummary] = []
        for start in range(0, len(uids), SUMMARY_BATCH):
            chunk = uids[start : start + SUMMARY_BATCH]
            found = await self._fetch(
                chunk,
                _SUMMARY_ITEMS,
            )
            summaries.extend(_summary(uid, items) for uid, items in found.items())
        return summaries

    async def message_sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """
        The size in octets of each message with these UIDs that still exists.
        """
        self._require_selected()
        uids = sorted(set(uids))
        sizes: dict[int, int] = {}
        for start in range(0, len(uids), 10 * SUMMARY_BATCH):
            found = await self._fetch(
                uids[start : start + 10 * SUMMARY_BATCH], b"(UID RFC822.SIZE)"
            )
            sizes.update(
                (uid, expect_int(i.get("RFC822.SIZE", 0), "a size"))
                for uid, i in found.items()
            )
        return sizes

    async def iter_messages(
        self,
        uids: Sequence[int],
        *,
        sizes: dict[int, int] | None = None,
        batch_messages: int = BATCH_MESSAGES,
        batch_bytes: int = BATCH_BYTES,
    ) -> AsyncIterator[list[FetchedMessage]]:
        """
        The whole messages with these UIDs (that still exist), in UID order,
        in batches of at most C{batch_messages} messages and C{batch_bytes}
        octets (a bigger message comes alone).  Each batch is one UID FETCH
        of BODY.PEEK[], which leaves \\Seen alone; the next batch is asked
        for before this one is handed over, so the server sends it while
        the caller stores this one.
        """
        self._require_selected()
        uids = sorted(set(uids))
        if sizes is None:
            sizes = await self.message_sizes(uids)
        batches: list[list[int]] = [[]]
        total = 0
        for uid in uids:
            if uid not in sizes:
                continue
            size = sizes[uid]
            if batches[-1] and (
                len(batches[-1]) >= batch_messages or total + size > batch_bytes
            ):
                batches.append([])
                total = 0
            batches[-1].append(uid)
            total += size
        todo = iter(b for b in batches if b)

        async def fetch(batch: list[int]) -> dict[int, dict[str, Any]] | Exception:
            # A batch asked for ahead may never be awaited (the caller
            # stopped): its failure is a value, never an unhandled error.
            try:
                return await self._fetch(batch, b"(UID FLAGS BODY.PEEK[])")
            except Exception as e:
                return e

        def ask() -> Deferred[dict[int, dict[str, Any]] | Exception] | None:
            batch = next(todo, None)
            return None if batch is None else Deferred.fromCoroutine(fetch(batch))

        pending = ask()
        while pending is not None:
            # The next batch is asked for now: the server sends it while this
            # one is handled.
            current, pending = pending, ask()
            found = await current
            if isinstance(found, Exception):
                raise found
            yield [
                FetchedMessage(uid, flag_names(items.get("FLAGS")), _body(uid, items))
                for uid, items in found.items()
            ]

    async def fetch_messages(self, uids: Sequence[int]) -> list[FetchedMessage]:
        """
        All of L{iter_messages} at once.
        """
        messages: list[FetchedMessage] = []
        async for batch in self.iter_messages(uids):
            messages.extend(batch)
        return messages

    async def mark_seen(self, uids: Sequence[int]) -> None:
        """
        Set \\Seen on these messages (the mailbox must be selected with
        C{read_only=False}).
        """
        selected = self._require_selected()
        if selected.read_only:
            raise UsageProblem(f"mailbox {selected.name!r} is open read-only")
        if not uids:
            return
        await self._run(
            b"UID STORE",
            [uid_set(uids), b"+FLAGS.SILENT (\\Seen)"],
            refused=f"{self.host} refused to set \\Seen",
        )

    async def logout(self) -> None:
        """
        Say goodbye and close the connection.
        """
        if self.protocol.failure is not None:
            return
        try:
            await self.protocol.logout()
        except (NetlabError, imap4.IMAP4Exception):
            self.close()

    def close(self) -> None:
        """
        Drop the connection without LOGOUT.
        """
        transport = self.protocol.transport
        if transport is not None and self.protocol.failure is None:
            self.protocol.failure = ConnectionFailed("the session was closed")
            transport.abortConnection()  # type: ignore[attr-defined]


def _bytes(error: Exception) -> bytes:
    value = error.args[0] if error.args else b""
    return value if isinstance(value, bytes) else str(value).encode()


def _body(uid: int, items: dict[str, Any]) -> bytes:
    for key in ("BODY[]", "RFC822", "BINARY[]"):
        value = items.get(key)
        if isinstance(value, bytes):
            return value
    raise BadResponse(f"the server sent no body for UID {uid}")


__all__ = [
    "BATCH_BYTES",
    "BATCH_MESSAGES",
    "DEFAULT_PORTS",
    "SUMMARY_BATCH",
    "TLS_MODES",
    "BadResponse",
    "FetchedMessage",
    "IMAPSession",
    "Mailbox",
    "MailboxStatus",
    "MessageSummary",
    "SearchQuery",
    "SelectedMailbox",
    "Trace",
    "connect",
    "open_session",
    "uid_set",
]
