"""
SEARCH: the command's arguments (ESEARCH's C{RETURN (...)}, C{CHARSET},
search keys with literals anywhere), its answer as SEARCH or ESEARCH (RFC
4731; always ESEARCH under IMAP4rev2), CONDSTORE's MODSEQ, and SEARCHRES's
C{SAVE} (RFC 5182), the result that C{$} names afterwards.

The keys themselves are evaluated by L{account.LabMailbox.search}.
"""

from __future__ import annotations

import codecs
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.mail import imap4

from twisted_netlab.mail.lab.imap.arguments import ArgumentParsers
from twisted_netlab.mail.lab.imap.session import ascii_bytes, command_entry
from twisted_netlab.mail.lab.imap.syntax import (
    IMAPSyntaxError,
    Token,
    is_atom,
    quote,
    sequence_text,
)


class SearchMixin(ArgumentParsers):
    """
    The SEARCH command.
    """

    def arg_search(self, line: bytes) -> Any:
        """
        The arguments of SEARCH: C{RETURN (...)} (ESEARCH), C{CHARSET x},
        then the search keys, which may hold literals anywhere.
        """
        result = self.read_tokens(line)
        if isinstance(result, defer.Deferred):
            return result.addCallback(_search_request)
        return _search_request(result)

    def do_SEARCH(  # type: ignore[override]
        self, tag: bytes, request: SearchRequest, uid: int = 0
    ) -> None:
        charset = request.charset
        if charset is not None and b"UTF8=ACCEPT" in self.enabled:
            # RFC 6855 section 3: strings are UTF-8 now; a charset conflicts.
            self.sendBadResponse(tag, b"SEARCH takes no CHARSET after UTF8=ACCEPT")
            return
        if charset is not None and not _is_utf8_or_ascii(charset):
            self.sendNegativeResponse(
                tag, b"[BADCHARSET (US-ASCII UTF-8)] Unknown charset"
            )
            return
        try:
            found = self.mbox.search(request.criteria, uid=bool(uid))
        except imap4.IllegalQueryError as e:
            self.sendBadResponse(tag, b"SEARCH failed: " + ascii_bytes(e))
            return
        ids = [self.mbox.getUID(seq) if uid else seq for seq in found]
        modseq = None
        if _mentions(request.criteria, b"MODSEQ"):
            # RFC 7162 3.1.5: the highest MODSEQ of what was found.
            self._enable_condstore()
            modseq = max(
                (self.mbox.modseq(self.mbox.getUID(seq)) for seq in found), default=None
            )
        returns = request.returns or ()
        if b"SAVE" in returns:
            self._save_result(found, returns)
            returns = tuple(r for r in returns if r != b"SAVE")
            if not returns:
                # RFC 5182: SAVE alone answers nothing but the tagged OK.
                self.sendPositiveResponse(tag, b"SEARCH completed")
                return
        if request.returns is None and not self.rev2:
            line = b" ".join(b"%d" % (i,) for i in ids)
            if modseq is not None:
                line += b" (MODSEQ %d)" % (modseq,)
            self.sendUntaggedResponse(b"SEARCH" + (b" " + line if line else b""))
        else:
            response = _esearch_response(tag, returns, ids, uid)
            if modseq is not None:
                response += b" MODSEQ %d" % (modseq,)
            self.sendUntaggedResponse(response)
        self.sendPositiveResponse(tag, b"SEARCH completed")

    select_SEARCH = command_entry(do_SEARCH, arg_search)

    def _save_result(self, found: list[int], returns: tuple[bytes, ...]) -> None:
        """
        SEARCHRES (RFC 5182): keep what SEARCH found (only its MIN and MAX
        when those are all it asked for) as C{$}, by UID.
        """
        uids = [self.mbox.getUID(seq) for seq in found]
        if (
            uids
            and not ({b"ALL", b"COUNT"} & set(returns))
            and ({b"MIN", b"MAX"} & set(returns))
        ):
            kept = []
            if b"MIN" in returns:
                kept.append(uids[0])
            if b"MAX" in returns:
                kept.append(uids[-1])
            uids = sorted(set(kept))
        self.mbox.saved_uids = uids


@dataclass(frozen=True)
class SearchRequest:
    """
    A parsed SEARCH command.

    @ivar charset: the C{CHARSET} given, if any.
    @ivar returns: the ESEARCH C{RETURN} options (upper case; empty means
        C{ALL}), or L{None} for a plain SEARCH.
    @ivar criteria: the search keys as tokens.
    """

    charset: bytes | None
    returns: tuple[bytes, ...] | None
    criteria: list[Token]


_ESEARCH_OPTIONS = (b"MIN", b"MAX", b"ALL", b"COUNT", b"SAVE")


def _search_request(result: tuple[list[Token], bytes]) -> tuple[SearchRequest, bytes]:
    tokens, rest = result
    returns: tuple[bytes, ...] | None = None
    charset: bytes | None = None
    if tokens and is_atom(tokens[0], b"RETURN"):
        tokens.pop(0)
        options = tokens.pop(0) if tokens else None
        if not isinstance(options, list) or not all(
            isinstance(o, bytes) and o.upper() in _ESEARCH_OPTIONS for o in options
        ):
            raise IMAPSyntaxError("RETURN needs a list of MIN, MAX, ALL, COUNT")
        returns = tuple(o.upper() for o in options if isinstance(o, bytes))
    if tokens and is_atom(tokens[0], b"CHARSET"):
        tokens.pop(0)
        value = tokens.pop(0) if tokens else None
        if not isinstance(value, bytes):
            raise IMAPSyntaxError("Missing charset identifier")
        charset = bytes(value)
    if not tokens:
        raise IMAPSyntaxError("Missing search keys")
    return SearchRequest(charset, returns, tokens), rest


def _is_utf8_or_ascii(charset: bytes) -> bool:
    """Whether C{charset} names UTF-8 or US-ASCII (C{utf8} too, as sent)."""
    try:
        name = codecs.lookup(charset.decode("ascii")).name
    except (LookupError, UnicodeError):
        return False
    return name in ("utf-8", "ascii")


def _mentions(tokens: list[Token], atom: bytes) -> bool:
    """Whether C{atom} is among C{tokens} (as an atom, at any depth)."""
    return any(
        _mentions(t, atom) if isinstance(t, list) else is_atom(t, atom) for t in tokens
    )


def _esearch_response(
    tag: bytes, returns: tuple[bytes, ...], ids: list[int], uid: int
) -> bytes:
    """An ESEARCH response (RFC 4731) for the RETURN options asked for."""
    wanted = returns or (b"ALL",)
    parts = [b"ESEARCH (TAG " + quote(tag) + b")"]
    if uid:
        parts.append(b"UID")
    ordered = sorted(ids)
    if ordered:
        if b"MIN" in wanted:
            parts.append(b"MIN %d" % (ordered[0],))
        if b"MAX" in wanted:
            parts.append(b"MAX %d" % (ordered[-1],))
        if b"ALL" in wanted:
            parts.append(b"ALL " + sequence_text(ordered))
    if b"COUNT" in wanted:
        parts.append(b"COUNT %d" % (len(ordered),))
    return b" ".join(parts)
