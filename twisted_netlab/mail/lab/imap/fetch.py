"""
FETCH, rendered here rather than by Twisted: the request (Twisted's item
parser, with CONDSTORE's C{MODSEQ} and C{(CHANGEDSINCE n)} and BINARY's
items taken out first) and L{FetchResponder}, which streams the responses.

Partial fetches (C{BODY[]<0.100>}), sections of parts, C{\\Seen} set by
C{BODY[]}, C{BODYSTRUCTURE}/C{ENVELOPE} from the stored bytes (L{message}),
BINARY's decoded parts (RFC 3516), and streaming with backpressure, fast
for thousands of messages; the messages are held against retention pruning
until sent.
"""

from __future__ import annotations

import binascii
import quopri
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from itertools import count
from typing import Any

from twisted.internet.interfaces import IPushProducer
from twisted.mail import imap4
from zope.interface import implementer

from twisted_netlab.mail.lab.imap.account import LabMailbox, LabMessage
from twisted_netlab.mail.lab.imap.arguments import ArgumentParsers
from twisted_netlab.mail.lab.imap.message import (
    Section,
    format_internal_date,
    serialize,
)
from twisted_netlab.mail.lab.imap.session import (
    IMAPSession,
    command_entry,
    flags_item,
)
from twisted_netlab.mail.lab.imap.syntax import IMAPSyntaxError
from twisted_netlab.mail.lab.store.maildir import MessageGone

# Bytes of FETCH responses gathered before one write.
_FETCH_CHUNK = 256 * 1024


class FetchMixin(ArgumentParsers):
    """
    The FETCH command.
    """

    def arg_fetchatt(self, line: bytes) -> Any:
        """
        FETCH items (Twisted's parser) with CONDSTORE's C{MODSEQ} item and
        C{(CHANGEDSINCE n)} modifier taken out first.
        """
        line = line or b""
        changed_since = None
        match = _CHANGEDSINCE.search(line)
        if match is not None:
            changed_since = int(match.group(1))
            line = line[: match.start()]
        line, modseq, binary = _take_items(line)
        query: list[Any] = []
        if line.strip() not in (b"", b"()"):
            try:
                query = super().arg_fetchatt(line)[0]
            except imap4.IllegalClientResponse:
                raise
            except Exception as e:
                raise imap4.IllegalClientResponse(f"bad FETCH items: {e}") from None
        elif not modseq and not binary:
            raise IMAPSyntaxError("FETCH needs items")
        return FetchRequest(query, modseq, changed_since, binary), b""

    def do_FETCH(
        self, tag: bytes, messages: Any, request: FetchRequest, uid: int = 0
    ) -> None:
        if request.modseq or request.changed_since is not None:
            self._enable_condstore()
        messages, uid = self._messages(messages, uid)
        since = request.changed_since
        modseq = request.modseq or since is not None
        if not request.query and not modseq and not request.binary:
            self.sendPositiveResponse(tag, b"FETCH completed")
            return
        if isinstance(self.mbox, LabMailbox) and _flags_only(request):
            # The usual sync (FETCH 1:* FLAGS): from the folder's flag words.
            FlagFetchResponder(
                self,
                tag,
                self.mbox.position_ranges(messages, bool(uid)),
                request,
                bool(uid),
            ).start()
            return
        results = self.mbox.fetch(messages, uid=bool(uid))
        if since is not None:
            results = [(s, m) for s, m in results if self.mbox.modseq(m.uid) > since]
        FetchResponder(
            self, tag, results, request.query, bool(uid), modseq, request.binary
        ).start()

    select_FETCH = command_entry(do_FETCH, ArgumentParsers.arg_seqset, arg_fetchatt)


# --- the request --------------------------------------------------------------


@dataclass(frozen=True)
class FetchRequest:
    """
    A parsed FETCH: Twisted's items, whether C{MODSEQ} was asked for, and
    the C{CHANGEDSINCE} modifier (CONDSTORE).
    """

    query: list[Any]
    modseq: bool = False
    changed_since: int | None = None
    binary: list[BinaryItem] = field(default_factory=list)


_CHANGEDSINCE = re.compile(
    rb"\s*\(\s*CHANGEDSINCE\s+(\d{1,20})(?:\s+VANISHED)?\s*\)\s*$", re.IGNORECASE
)
_MODSEQ_WORD = re.compile(rb"MODSEQ(?=[\s)]|$)", re.IGNORECASE)
_BINARY_ITEM = re.compile(
    rb"BINARY(\.PEEK|\.SIZE)?\[([0-9.]*)\](?:<(\d{1,10})(?:\.(\d{1,10}))?>)?"
    rb"(?=[\s)]|$)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class BinaryItem:
    """
    A BINARY fetch item (RFC 3516): C{BINARY[1.2]<0.100>},
    C{BINARY.PEEK[...]} or C{BINARY.SIZE[...]}.
    """

    part: tuple[int, ...]
    peek: bool = False
    size_only: bool = False
    begin: int | None = None
    length: int | None = None

    def label(self) -> bytes:
        section = ".".join(str(p + 1) for p in self.part).encode()
        name = b"BINARY.SIZE" if self.size_only else b"BINARY"
        partial = b"" if self.begin is None else b"<%d>" % (self.begin,)
        return name + b"[" + section + b"]" + partial


def _take_items(line: bytes) -> tuple[bytes, bool, list[BinaryItem]]:
    """
    C{line} without its top-level C{MODSEQ} and C{BINARY} items (which
    Twisted's parser does not know), whether there was a C{MODSEQ}, and the
    C{BINARY} items.
    """
    found = False
    binary: list[BinaryItem] = []
    out = bytearray()
    depth = 0
    i = 0
    while i < len(line):
        c = line[i : i + 1]
        at_word = depth == 0 and (i == 0 or line[i - 1 : i] in b" (")
        if at_word and _MODSEQ_WORD.match(line, i):
            found = True
            i += len(b"MODSEQ")
            continue
        match = _BINARY_ITEM.match(line, i) if at_word else None
        if match is not None:
            binary.append(_binary_item(match))
            i = match.end()
            continue
        if c == b"[":
            depth += 1
        elif c == b"]":
            depth -= 1
        out += c
        i += 1
    text = re.sub(rb"\( +", b"(", re.sub(rb" +\)", b")", bytes(out)))
    return re.sub(rb"  +", b" ", text).strip(), found, binary


def _binary_item(match: re.Match[bytes]) -> BinaryItem:
    kind, section, begin, length = match.groups()
    numbers = section.split(b".") if section else []
    if not all(n.isdigit() and int(n) > 0 for n in numbers):
        raise IMAPSyntaxError("BINARY takes part numbers only")
    size_only = (kind or b"").upper() == b".SIZE"
    if size_only and begin is not None:
        raise IMAPSyntaxError("BINARY.SIZE takes no partial range")
    if begin is not None and length is None:
        raise IMAPSyntaxError("a partial range needs a length")
    return BinaryItem(
        tuple(int(n) - 1 for n in numbers),
        peek=(kind or b"").upper() == b".PEEK",
        size_only=size_only,
        begin=None if begin is None else int(begin),
        length=None if length is None else int(length),
    )


# --- the responses ------------------------------------------------------------


@implementer(IPushProducer)
class FetchResponder:
    """
    Send the responses of one FETCH, pausing when the client does not read
    them fast enough, then the tagged OK.
    """

    def __init__(
        self,
        server: IMAPSession,
        tag: bytes,
        messages: list[tuple[int, LabMessage]],
        query: list[Any],
        uid: bool,
        modseq: bool = False,
        binary: list[BinaryItem] | None = None,
    ) -> None:
        self.server = server
        self.modseq = modseq
        self.binary = binary or []
        self._unknown_encoding = False
        self.tag = tag
        self.messages = messages
        self.query = query
        self.uid = uid
        self._exhausted = False
        self._paused = False
        self._producing = False
        self._stopped = False
        self._sets_seen = (
            server.mbox is not None
            and server.mbox.isWriteable()
            and (
                any(_sets_seen(item) for item in query)
                or any(not (b.peek or b.size_only) for b in self.binary)
            )
        )
        self._wants_flags = any(item.type == "flags" for item in query)
        # The messages are in use until sent: retention pruning skips them.
        mailbox = server.mbox
        self._folder = mailbox.folder if isinstance(mailbox, LabMailbox) else None
        self._held = [message.uid for _, message in messages]
        self._pieces: Iterator[bytes] = self._responses()

    def _responses(self) -> Iterator[bytes]:
        """The responses to send, one message at a time (empty: none)."""
        for seq, message in self.messages:
            yield self._render(seq, message)

    def _release(self) -> None:
        held, self._held = self._held, []
        if self._folder is not None and held:
            self._folder.release(held)

    def start(self) -> None:
        if self._folder is not None:
            self._folder.hold(self._held)
        if self.server.blocked is None:
            self.server.blocked = []
        self.server.transport.registerProducer(self, True)
        self.resumeProducing()

    def pauseProducing(self) -> None:
        self._paused = True

    def stopProducing(self) -> None:
        self._stopped = True
        self._release()

    def resumeProducing(self) -> None:
        self._paused = False
        if self._producing or self._stopped:
            return
        self._producing = True
        try:
            while not self._paused and not self._stopped:
                if self._exhausted:
                    self._finish()
                    return
                chunk: list[bytes] = []
                size = 0
                for response in self._pieces:
                    if response:
                        chunk.append(response)
                        size += len(response)
                        if size >= _FETCH_CHUNK:
                            break
                else:
                    self._exhausted = True
                self._flush(chunk)
        finally:
            self._producing = False

    def _flush(self, chunk: list[bytes]) -> None:
        if chunk:
            self.server.resetTimeout()
            self.server.transport.writeSequence(chunk)

    def _finish(self) -> None:
        self._stopped = True
        self._release()
        server = self.server
        server.transport.unregisterProducer()
        if self._unknown_encoding:
            server.sendNegativeResponse(
                self.tag, b"[UNKNOWN-CTE] A part has an unknown transfer encoding"
            )
        else:
            server.sendPositiveResponse(self.tag, b"FETCH completed")
        server._unblock()

    def _render(self, seq: int, message: LabMessage) -> bytes:
        """
        One message's FETCH response, or nothing if it is gone.
        """
        try:
            flags_changed = False
            if self._sets_seen:
                mailbox = self.server.mbox
                assert isinstance(mailbox, LabMailbox)
                flags_changed = mailbox.set_seen(message.uid)
            items = []
            if self.uid and not any(i.type == "uid" for i in self.query):
                items.append(b"UID %d" % (message.uid,))
            for item in self.query:
                if item.type == "flags":
                    flags = self.server.visible_flags(message.getFlags())
                    items.append(flags_item(flags))
                else:
                    items.append(_render_item(item, message))
            for binary in self.binary:
                try:
                    items.append(_render_binary(binary, message))
                except UnknownTransferEncoding:
                    self._unknown_encoding = True
            if flags_changed and not self._wants_flags:
                items.append(flags_item(self.server.visible_flags(message.getFlags())))
            if self.modseq or (
                self.server.condstore and (flags_changed or self._wants_flags)
            ):
                items.append(b"MODSEQ (%d)" % (message.mailbox.modseq(message.uid),))
        except MessageGone:
            return b""
        if not items:
            return b""
        return b"* %d FETCH (%s)\r\n" % (seq, b" ".join(items))


def _flags_only(request: FetchRequest) -> bool:
    """Whether a FETCH asks for UIDs, flags and MODSEQs only."""
    return not request.binary and all(
        item.type in ("uid", "flags") for item in request.query
    )


# Messages whose responses FlagFetchResponder renders from one look at the
# folder.
_FLAG_RUN = 2048


class FlagFetchResponder(FetchResponder):
    """
    The responses of a FETCH of UIDs, flags and MODSEQs only (a client's
    sync, C{FETCH 1:* (FLAGS)}), rendered straight from the folder's flag
    words (L{Folder.flag_words<twisted_netlab.mail.lab.store.folder.Folder>}),
    runs of messages at a time, without a message object per message; the
    same bytes as L{FetchResponder} would send.
    """

    def __init__(
        self,
        server: IMAPSession,
        tag: bytes,
        ranges: list[tuple[int, int]],
        request: FetchRequest,
        uid: bool,
    ) -> None:
        modseq = request.modseq or request.changed_since is not None
        super().__init__(server, tag, [], request.query, uid, modseq)
        mailbox = server.mbox
        assert isinstance(mailbox, LabMailbox)
        self.mailbox = mailbox
        self.changed_since = request.changed_since
        # The messages chosen now: the view may grow while we send.
        view = mailbox.view()
        self.runs = [
            (begin, view[begin : min(begin + _FLAG_RUN, stop)])
            for start, stop in ranges
            for begin in range(start, stop, _FLAG_RUN)
        ]
        self.gone = mailbox.gone_uids()
        kinds = [item.type for item in request.query]
        if uid and "uid" not in kinds:
            kinds.insert(0, "uid")
        if modseq or (server.condstore and "flags" in kinds):
            kinds.append("modseq")
        self.kinds = kinds
        placeholders = {
            "uid": b"UID %d",
            "flags": b"FLAGS %s",
            "modseq": b"MODSEQ (%d)",
        }
        self.template = (
            b"* %d FETCH (" + b" ".join(placeholders[k] for k in kinds) + b")\r\n"
        )
        self._rendered: dict[tuple[int, bool], bytes] = {}
        self._keywords: object = None

    def _flags(self, word: int, recent: bool) -> bytes:
        """The C{(...)} of a FLAGS item (cached: flag words are few)."""
        rendered = self._rendered.get((word, recent))
        if rendered is None:
            folder = self.mailbox.folder
            flags = [] if word < 0 else list(folder.flags_of_word(word))
            if recent:
                flags.append("\\Recent")
            rendered = flags_item(self.server.visible_flags(flags))[len(b"FLAGS ") :]
            self._rendered[(word, recent)] = rendered
        return rendered

    def _responses(self) -> Iterator[bytes]:
        folder = self.mailbox.folder
        gone = self.gone
        recent = self.mailbox.recent_uids()
        template = self.template
        kinds = self.kinds
        wants_modseq = "modseq" in kinds
        since = self.changed_since
        # The two usual shapes, rendered without building the values.
        shape = {("uid", "flags"): 1, ("flags",): 2}.get(tuple(kinds), 0)
        for start, uids in self.runs:
            keywords = folder.keyword_version()
            if keywords is not self._keywords:
                self._rendered = {}
                self._keywords = keywords
            words: Sequence[int] = folder.flag_words(uids)
            modseqs: Sequence[int] = (
                folder.modseqs(uids) if wants_modseq or since is not None else ()
            )
            flags = self._flags
            lines = []
            for i, seq, uid, word in zip(count(), count(start + 1), uids, words):
                if gone and uid in gone:
                    continue
                if since is not None and modseqs[i] <= since:
                    continue
                rendered = flags(word, uid in recent)
                if shape == 1:
                    lines.append(template % (seq, uid, rendered))
                elif shape == 2:
                    lines.append(template % (seq, rendered))
                else:
                    values = {"uid": uid, "flags": rendered}
                    if wants_modseq:
                        values["modseq"] = modseqs[i]
                    lines.append(template % (seq, *(values[k] for k in kinds)))
            yield b"".join(lines)


def _sets_seen(item: Any) -> bool:
    if item.type in ("rfc822", "rfc822text"):
        return True
    return item.type == "body" and not item.peek and _is_section(item)


def _is_section(item: Any) -> bool:
    return bool(item.header or item.text or item.mime or item.empty)


def _literal(data: bytes) -> bytes:
    return b"{%d}\r\n%s" % (len(data), data)


def _render_flags(message: LabMessage) -> bytes:
    return flags_item(message.getFlags())


def _section_of(item: Any) -> Section:
    header = item.header
    if header is not None:
        if not header.fields:
            return Section(item.part, "HEADER")
        kind = "HEADER.FIELDS.NOT" if header.negate else "HEADER.FIELDS"
        return Section(item.part, kind, header.fields)
    if item.text:
        return Section(item.part, "TEXT")
    if item.mime:
        return Section(item.part, "MIME")
    return Section(item.part, "")


def _render_item(item: Any, message: LabMessage) -> bytes:
    kind = item.type
    if kind == "uid":
        return b"UID %d" % (message.uid,)
    if kind == "flags":
        return _render_flags(message)
    if kind == "internaldate":
        return b"INTERNALDATE " + format_internal_date(message.internal_date())
    if kind == "rfc822size":
        return b"RFC822.SIZE %d" % (message.getSize(),)
    if kind == "envelope":
        return b"ENVELOPE " + serialize(message.part.envelope())
    if kind == "bodystructure":
        return b"BODYSTRUCTURE " + serialize(message.part.body_structure())
    if kind == "rfc822":
        return b"RFC822 " + _literal(message.data)
    if kind == "rfc822header":
        return b"RFC822.HEADER " + _literal(message.part.header_bytes)
    if kind == "rfc822text":
        return b"RFC822.TEXT " + _literal(message.part.body)
    if kind == "body":
        if not _is_section(item):
            return b"BODY " + serialize(message.part.body_structure(extended=False))
        section = _section_of(item)
        label = b"BODY" + section.label()
        try:
            if not section.part and not section.kind:
                data = message.data
            else:
                data = section.extract(message.part)
        except IndexError:
            return label + b" NIL"
        if item.partialBegin is not None:
            begin = item.partialBegin
            data = data[begin : begin + item.partialLength]
            label += b"<%d>" % (begin,)
        return label + b" " + _literal(data)
    raise imap4.IllegalClientResponse(f"unsupported fetch item {kind}")


class UnknownTransferEncoding(Exception):
    """A part's Content-Transfer-Encoding that BINARY cannot decode."""


def _decoded_part(message: LabMessage, part: tuple[int, ...]) -> bytes:
    """
    The content of a part with its Content-Transfer-Encoding undone (the
    whole message, as stored, for an empty section).

    @raise IndexError: no such part.
    @raise UnknownTransferEncoding: an encoding not in RFC 2045.
    """
    if not part:
        return message.data
    entity = message.part
    for depth, index in enumerate(part):
        entity = entity.subpart(index, top=depth == 0)
    encoding = (entity.header("content-transfer-encoding") or "7bit").strip().lower()
    body = entity.body
    if encoding in ("7bit", "8bit", "binary"):
        return body
    if encoding == "base64":
        return binascii.a2b_base64(body)
    if encoding == "quoted-printable":
        return quopri.decodestring(body)
    raise UnknownTransferEncoding(encoding)


def _render_binary(item: BinaryItem, message: LabMessage) -> bytes:
    try:
        data = _decoded_part(message, item.part)
    except IndexError:
        return item.label() + b" NIL"
    if item.size_only:
        return item.label() + b" %d" % (len(data),)
    if item.begin is not None and item.length is not None:
        data = data[item.begin : item.begin + item.length]
    prefix = b"~" if b"\0" in data else b""
    return item.label() + b" " + prefix + b"{%d}\r\n%s" % (len(data), data)
