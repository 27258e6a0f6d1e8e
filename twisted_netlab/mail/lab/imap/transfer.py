"""
Messages into and out of mailboxes: APPEND (APPENDUID), COPY (COPYUID), MOVE
(RFC 6851), EXPUNGE and UIDPLUS's UID EXPUNGE (RFC 4315), and the UID prefix
that the UID forms of FETCH, STORE, SEARCH, COPY and MOVE go through.
"""

from __future__ import annotations

from typing import Any

from twisted.mail import imap4
from twisted.python.failure import Failure

from twisted_netlab.mail.lab.imap.account import LabMailbox, LabMessage
from twisted_netlab.mail.lab.imap.arguments import ArgumentParsers
from twisted_netlab.mail.lab.imap.session import ascii_bytes, command_entry
from twisted_netlab.mail.lab.imap.syntax import IMAPSyntaxError, sequence_text
from twisted_netlab.mail.lab.store.maildir import (
    KeywordLimit,
    MailStoreError,
    MessageGone,
)


class TransferMixin(ArgumentParsers):
    """
    APPEND, COPY, MOVE, EXPUNGE and UID.
    """

    auth_APPEND = command_entry(
        imap4.IMAP4Server.do_APPEND,
        ArgumentParsers.arg_mailbox,
        imap4.IMAP4Server.opt_plist,
        imap4.IMAP4Server.opt_datetime,
        ArgumentParsers.arg_literal,
    )
    select_APPEND = auth_APPEND

    def _cbAppendGotMailbox(
        self,
        mbox: LabMailbox | None,
        tag: bytes,
        flags: list[bytes] | None,
        date: bytes | None,
        message: Any,
    ) -> None:
        # Twisted's version sends "* n EXISTS" counting the target mailbox,
        # which is wrong whenever another mailbox is selected.
        if mbox is None:
            self.sendNegativeResponse(tag, b"[TRYCREATE] No such mailbox")
            return
        names = [f.decode("ascii", "replace") for f in flags or []]
        d = mbox.addMessage(message, names, date)
        d.addCallback(self._appended, tag, mbox)
        d.addErrback(self._append_failed, tag)

    def _appended(self, uid: int, tag: bytes, mbox: LabMailbox) -> None:
        validity = mbox.getUIDValidity()
        mbox.close()
        self._flags_grew()
        self.sendPositiveResponse(
            tag, b"[APPENDUID %d %d] APPEND completed" % (validity, uid)
        )

    def _append_failed(self, failure: Failure, tag: bytes) -> None:
        if failure.check(ValueError):
            reason = ascii_bytes(failure.value)  # type: ignore[arg-type]
            self.sendBadResponse(tag, b"APPEND failed: " + reason)
        elif failure.check(MailStoreError):
            reason = ascii_bytes(failure.value)  # type: ignore[arg-type]
            code = b"[LIMIT] " if failure.check(KeywordLimit) else b""
            self.sendNegativeResponse(tag, code + b"APPEND failed: " + reason)
        else:
            self.factory.log.failure("APPEND failed", failure)
            self.sendNegativeResponse(
                tag, b"APPEND failed: could not store the message"
            )

    def do_COPY(self, tag: bytes, messages: Any, mailbox: str, uid: int = 0) -> None:
        """
        COPY, answered with UIDPLUS's C{[COPYUID ...]} (RFC 4315).
        """
        copied = self._copy(tag, messages, mailbox, uid)
        if copied is not None:
            code, _ = copied
            self.sendPositiveResponse(tag, (code + b" COPY completed").lstrip())

    select_COPY = command_entry(
        do_COPY, ArgumentParsers.arg_seqset, ArgumentParsers.arg_final_mailbox
    )

    def do_MOVE(self, tag: bytes, messages: Any, mailbox: str, uid: int = 0) -> None:
        """
        MOVE (RFC 6851): copy, then expunge the originals, with COPYUID
        first in an untagged OK.
        """
        if not self.mbox.isWriteable():
            self.sendNegativeResponse(tag, b"[READ-ONLY] The mailbox is read-only")
            return
        copied = self._copy(tag, messages, mailbox, uid)
        if copied is None:
            return
        code, sources = copied
        if sources:
            self.sendPositiveResponse(None, code + b" Moved")
        for seq in self.mbox.remove_messages(sources):
            self.sendUntaggedResponse(b"%d EXPUNGE" % (seq,))
        self.sendPositiveResponse(tag, b"MOVE completed")

    select_MOVE = command_entry(
        do_MOVE, ArgumentParsers.arg_seqset, ArgumentParsers.arg_final_mailbox
    )

    def _copy(
        self, tag: bytes, messages: Any, mailbox: str, uid: int
    ) -> tuple[bytes, list[int]] | None:
        """
        Copy the messages into C{mailbox}; return the COPYUID response code
        and the source UIDs copied, or L{None} once a NO was sent.
        """
        target = self.account.select(mailbox)  # type: ignore[union-attr]
        if target is None:
            # (Twisted's version fails here, mixing str and bytes.)
            self.sendNegativeResponse(tag, b"[TRYCREATE] No such mailbox")
            return None
        source = self.mbox
        messages, uid = self._messages(messages, uid)
        pairs: list[tuple[int, int]] = []
        try:
            for source_uid in source.selected(messages, bool(uid)):
                try:
                    pairs.append(
                        (source_uid, target.copy(LabMessage(source, source_uid)))
                    )
                except MessageGone:
                    continue
        except MailStoreError as e:
            self.sendNegativeResponse(tag, b"COPY failed: " + ascii_bytes(e))
            return None
        except OSError:
            self.factory.log.failure("COPY failed")
            self.sendNegativeResponse(tag, b"COPY failed: could not store")
            return None
        finally:
            target.close()
        if not pairs:
            return b"", []
        code = b"[COPYUID %d %s %s]" % (
            target.getUIDValidity(),
            sequence_text([a for a, _ in pairs]),
            sequence_text([b for _, b in pairs]),
        )
        return code, [a for a, _ in pairs]

    def do_EXPUNGE(self, tag: bytes, messages: Any = None) -> None:
        """EXPUNGE, and UIDPLUS's UID EXPUNGE of the messages given."""
        if not self.mbox.isWriteable():
            self.sendNegativeResponse(tag, b"EXPUNGE ignored on read-only mailbox")
            return
        if messages is not None:
            messages, _ = self._messages(messages, 1)
        uids = None if messages is None else self.mbox.selected(messages, True)
        for seq in self.mbox.expunge(uids):
            self.sendUntaggedResponse(b"%d EXPUNGE" % (seq,))
        self.sendPositiveResponse(tag, b"EXPUNGE completed")

    select_EXPUNGE = command_entry(do_EXPUNGE)

    def do_UID(self, tag: bytes, command: bytes, line: bytes) -> None:
        command = command.upper()
        if command == b"EXPUNGE":
            self._uid_expunge(tag, line)
            return
        if command not in (b"COPY", b"FETCH", b"STORE", b"SEARCH", b"MOVE"):
            raise imap4.IllegalClientResponse(command.decode("ascii", "replace"))
        self.dispatchCommand(tag, command, line, uid=1)

    def _uid_expunge(self, tag: bytes, line: bytes) -> None:
        messages, rest = self.arg_seqset(line)
        if rest:
            raise IMAPSyntaxError("Too many arguments for UID EXPUNGE")
        self.do_EXPUNGE(tag, messages)

    select_UID = command_entry(
        do_UID, imap4.IMAP4Server.arg_atom, ArgumentParsers.arg_rest
    )
