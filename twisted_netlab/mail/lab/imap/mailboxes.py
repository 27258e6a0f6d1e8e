"""
Mailboxes as a whole: SELECT and EXAMINE (with CONDSTORE's parameter,
UNSEEN, UIDNEXT, HIGHESTMODSEQ and IMAP4rev2's C{[CLOSED]}), UNSELECT,
CREATE, DELETE, RENAME, SUBSCRIBE, LIST (LIST-EXTENDED, LIST-STATUS), LSUB
and STATUS.

Mailbox names are checked before any command uses them (canonical modified
UTF-7, or UTF-8 once enabled, no way out of the user's Maildir: a NO
otherwise); LIST and STATUS quote names so that they can be sent back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from twisted.mail import imap4

from twisted_netlab.mail.lab.imap.account import SPECIAL_USE, LabMailbox
from twisted_netlab.mail.lab.imap.arguments import (
    ArgumentParsers,
    BadMailboxName,
    decode_mailbox_name,
)
from twisted_netlab.mail.lab.imap.session import ascii_bytes, command_entry
from twisted_netlab.mail.lab.imap.syntax import (
    IMAPSyntaxError,
    Token,
    is_atom,
    quote,
)
from twisted_netlab.mail.lab.store.maildir import MailStoreError, validate_mailbox_name


class MailboxMixin(ArgumentParsers):
    """
    Selecting, listing, creating and inspecting mailboxes.
    """

    def do_SELECT(
        self, tag: bytes, name: str, parameters: list[Token], rw: int, command: bytes
    ) -> None:
        """
        SELECT or EXAMINE, with RFC 4466 parameters: C{(CONDSTORE)} turns
        CONDSTORE on (RFC 7162); others are refused.
        """
        options = parameters[0] if parameters else []
        if len(parameters) > 1 or not isinstance(options, list):
            self.sendBadResponse(tag, command + b" takes one list of parameters")
            return
        for option in options:
            if not isinstance(option, bytes) or option.upper() != b"CONDSTORE":
                self.sendBadResponse(tag, b"Unknown " + command + b" parameter")
                return
            self._enable_condstore()
        self._selectWork(tag, name, rw, command)

    auth_SELECT = command_entry(
        do_SELECT,
        ArgumentParsers.arg_mailbox,
        ArgumentParsers.read_tokens,
        1,
        b"SELECT",
    )
    select_SELECT = auth_SELECT
    auth_EXAMINE = command_entry(
        do_SELECT,
        ArgumentParsers.arg_mailbox,
        ArgumentParsers.read_tokens,
        0,
        b"EXAMINE",
    )
    select_EXAMINE = auth_EXAMINE
    auth_DELETE = command_entry(
        imap4.IMAP4Server.do_DELETE, ArgumentParsers.arg_final_mailbox
    )
    select_DELETE = auth_DELETE
    auth_RENAME = command_entry(
        imap4.IMAP4Server.do_RENAME,
        ArgumentParsers.arg_mailbox,
        ArgumentParsers.arg_final_mailbox,
    )
    select_RENAME = auth_RENAME
    auth_SUBSCRIBE = command_entry(
        imap4.IMAP4Server.do_SUBSCRIBE, ArgumentParsers.arg_final_mailbox
    )
    select_SUBSCRIBE = auth_SUBSCRIBE
    auth_UNSUBSCRIBE = command_entry(
        imap4.IMAP4Server.do_UNSUBSCRIBE, ArgumentParsers.arg_final_mailbox
    )
    select_UNSUBSCRIBE = auth_UNSUBSCRIBE

    def _cbListWork(
        self, mailboxes: list[tuple[str, Any]], tag: bytes, sub: int, cmdName: bytes
    ) -> None:
        # Twisted quotes names without escaping C{"} or C{\\}: a name made
        # from a literal could not be copied back from its LIST line.
        for name, box in mailboxes:
            if sub and not self.account.isSubscribed(name):  # type: ignore[union-attr]
                continue
            attributes = b" ".join(flag.encode("ascii") for flag in box.getFlags())
            delimiter = quote(box.getHierarchicalDelimiter().encode("ascii"))
            encoded = quote(self.wire_name(name))
            self.sendUntaggedResponse(
                b"%s (%s) %s %s" % (cmdName, attributes, delimiter, encoded)
            )
        self.sendPositiveResponse(tag, cmdName + b" completed")

    def do_LIST(self, tag: bytes, arguments: list[Token]) -> None:
        """
        LIST, with LIST-EXTENDED's selection options (SUBSCRIBED,
        SPECIAL-USE), several patterns, and return options (SUBSCRIBED,
        CHILDREN, SPECIAL-USE, and LIST-STATUS's STATUS).
        """
        try:
            request = _list_request(arguments)
            reference = decode_mailbox_name(request.reference, self.utf8_names)
            patterns = [
                decode_mailbox_name(p, self.utf8_names) for p in request.patterns
            ]
        except BadMailboxName as e:
            self.sendNegativeResponse(tag, b"Illegal mailbox name: " + ascii_bytes(e))
            return
        account = self.account
        assert account is not None
        found: dict[str, Any] = {}
        for pattern in patterns:
            for name, info in account.listMailboxes(reference, pattern):
                found.setdefault(name, info)
        subscribed_only = b"SUBSCRIBED" in request.selection
        special_only = b"SPECIAL-USE" in request.selection
        show_subscribed = subscribed_only or b"SUBSCRIBED" in request.returns
        for name, info in found.items():
            attributes = list(info.getFlags())
            subscribed = bool(name) and account.isSubscribed(name)
            if subscribed_only and not subscribed:
                continue
            if special_only and not any(a in SPECIAL_USE.values() for a in attributes):
                continue
            if show_subscribed and subscribed:
                attributes.append("\\Subscribed")
            self.sendUntaggedResponse(
                b"LIST (%s) %s %s"
                % (
                    " ".join(attributes).encode("ascii"),
                    quote(info.getHierarchicalDelimiter().encode("ascii")),
                    quote(self.wire_name(name)),
                )
            )
            if request.status and name and "\\Noselect" not in attributes:
                self._list_status(name, request.status)
        self.sendPositiveResponse(tag, b"LIST completed")

    def _list_status(self, name: str, items: list[str]) -> None:
        """LIST-STATUS (RFC 5819): a STATUS response after the LIST line."""
        try:
            status = self.account.status(name, items)  # type: ignore[union-attr]
        except (MailStoreError, imap4.IllegalQueryError):
            return
        values = b" ".join(b"%s %d" % (k.encode(), v) for k, v in status.items())
        self.sendUntaggedResponse(
            b"STATUS " + quote(self.wire_name(name)) + b" (" + values + b")"
        )

    auth_LIST = command_entry(do_LIST, ArgumentParsers.read_tokens)
    select_LIST = auth_LIST
    auth_LSUB = command_entry(
        imap4.IMAP4Server._listWork,
        ArgumentParsers.arg_pattern,
        ArgumentParsers.arg_pattern,
        1,
        b"LSUB",
    )
    select_LSUB = auth_LSUB

    def do_STATUS(self, tag: bytes, mailbox: str, names: list[Any]) -> None:
        """
        STATUS, answered from the counts the folder keeps (no view of the
        mailbox is made, nothing is counted).
        """
        items = [
            n.decode("ascii", "replace") if isinstance(n, bytes) else str(n)
            for n in names
        ]
        account = self.account
        assert account is not None
        try:
            status = account.status(mailbox, items)
        except MailStoreError:
            self.sendNegativeResponse(tag, b"[NONEXISTENT] No such mailbox")
            return
        except imap4.IllegalQueryError as e:
            self.sendBadResponse(tag, ascii_bytes(e))
            return
        finally:
            if any(n.upper() == "HIGHESTMODSEQ" for n in items):
                self._enable_condstore()
        values = b" ".join(b"%s %d" % (k.encode(), v) for k, v in status.items())
        self.sendUntaggedResponse(
            b"STATUS " + quote(self.wire_name(mailbox)) + b" (" + values + b")"
        )
        self.sendPositiveResponse(tag, b"STATUS completed")

    auth_STATUS = command_entry(
        do_STATUS,
        ArgumentParsers.arg_mailbox,
        ArgumentParsers.arg_plist,
    )
    select_STATUS = auth_STATUS

    def do_CREATE(self, tag: bytes, name: bytes | str) -> None:
        try:
            decoded = decode_mailbox_name(name, self.utf8_names)
            stripped = decoded[:-1] if decoded.endswith(".") else decoded
            validate_mailbox_name(stripped)
        except (BadMailboxName, MailStoreError) as e:
            self.sendNegativeResponse(tag, b"Illegal mailbox name: " + ascii_bytes(e))
            return
        super().do_CREATE(tag, decoded)

    auth_CREATE = command_entry(do_CREATE, ArgumentParsers.arg_finalastring)
    select_CREATE = auth_CREATE

    def _cbSelectWork(
        self, mbox: LabMailbox | None, cmdName: bytes, tag: bytes
    ) -> None:
        if mbox is None:
            self.sendNegativeResponse(tag, b"[NONEXISTENT] No such mailbox")
            return
        self._send_flags(mbox)
        self.sendUntaggedResponse(b"%d EXISTS" % (mbox.getMessageCount(),))
        if not self.rev2:
            self.sendUntaggedResponse(b"%d RECENT" % (mbox.getRecentCount(),))
        unseen = mbox.first_unseen()
        if unseen is not None:
            self.sendPositiveResponse(None, b"[UNSEEN %d] First unseen" % (unseen,))
        self.sendPositiveResponse(
            None, b"[UIDVALIDITY %d] UIDs valid" % mbox.getUIDValidity()
        )
        self.sendPositiveResponse(
            None, b"[UIDNEXT %d] Predicted next UID" % mbox.getUIDNext()
        )
        self.sendPositiveResponse(
            None, b"[HIGHESTMODSEQ %d] Highest" % (mbox.highest_modseq(),)
        )
        mode = b"READ-WRITE" if mbox.isWriteable() else b"READ-ONLY"
        mbox.addListener(self)
        self.mbox = mbox
        self.state = "select"
        self.sendPositiveResponse(tag, b"[" + mode + b"] " + cmdName + b" completed")

    def _selectWork(self, tag: bytes, name: str, rw: int, cmdName: bytes) -> None:
        if self.rev2 and self.mbox is not None:
            # RFC 9051 section 7.1: the previous mailbox is closed first.
            self._leave_mailbox()
            self.sendPositiveResponse(None, b"[CLOSED] Previous mailbox closed")
        super()._selectWork(tag, name, rw, cmdName)

    def do_UNSELECT(self, tag: bytes) -> None:
        """UNSELECT (RFC 3691): leave the mailbox without expunging."""
        self._leave_mailbox()
        self.sendPositiveResponse(tag, b"UNSELECT completed")

    select_UNSELECT = command_entry(do_UNSELECT)

    def _leave_mailbox(self) -> None:
        if self.mbox is not None:
            self.mbox.removeListener(self)
            self.mbox = None
        self.state = "auth"


@dataclass(frozen=True)
class ListRequest:
    """
    A parsed LIST (RFC 5258): selection options, the reference, the
    patterns, the return options and LIST-STATUS's items.
    """

    selection: frozenset[bytes]
    reference: bytes
    patterns: list[bytes]
    returns: frozenset[bytes]
    status: list[str]


_LIST_SELECTION = frozenset({b"SUBSCRIBED", b"SPECIAL-USE", b"REMOTE"})
_LIST_RETURNS = frozenset({b"SUBSCRIBED", b"CHILDREN", b"SPECIAL-USE", b"STATUS"})


def _atoms(tokens: Token, allowed: frozenset[bytes], what: str) -> list[bytes]:
    if not isinstance(tokens, list) or not all(
        isinstance(t, bytes) and t.upper() in allowed for t in tokens
    ):
        raise IMAPSyntaxError(f"bad LIST {what} options")
    return [bytes(t).upper() for t in tokens if isinstance(t, bytes)]


def _list_request(tokens: list[Token]) -> ListRequest:
    tokens = list(tokens)
    selection: list[bytes] = []
    if tokens and isinstance(tokens[0], list):
        selection = _atoms(tokens.pop(0), _LIST_SELECTION, "selection")
    if len(tokens) < 2 or isinstance(tokens[0], list):
        raise IMAPSyntaxError("LIST needs a reference and a pattern")
    reference = tokens.pop(0)
    pattern = tokens.pop(0)
    patterns = pattern if isinstance(pattern, list) else [pattern]
    if not patterns or not all(isinstance(p, bytes) for p in patterns):
        raise IMAPSyntaxError("bad LIST patterns")
    returns: list[bytes] = []
    status: list[str] = []
    if tokens:
        if len(tokens) != 2 or not is_atom(tokens[0], b"RETURN"):
            raise IMAPSyntaxError("LIST takes RETURN (options) last")
        options = tokens[1]
        if not isinstance(options, list):
            raise IMAPSyntaxError("bad LIST return options")
        i = 0
        while i < len(options):
            option = options[i]
            if is_atom(option, b"STATUS"):
                items = options[i + 1] if i + 1 < len(options) else None
                if not isinstance(items, list) or not items:
                    raise IMAPSyntaxError("STATUS needs a list of items")
                status = [bytes(t).decode("ascii", "replace") for t in items]  # type: ignore[arg-type]
                i += 2
                continue
            returns.extend(_atoms([option], _LIST_RETURNS, "return"))
            i += 1
    assert isinstance(reference, bytes)
    return ListRequest(
        frozenset(selection),
        bytes(reference),
        [bytes(p) for p in patterns if isinstance(p, bytes)],
        frozenset(returns),
        status,
    )
