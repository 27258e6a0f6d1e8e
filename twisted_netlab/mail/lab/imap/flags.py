"""
Flags: STORE (system flags and keywords, CONDSTORE's UNCHANGEDSINCE and
C{[MODIFIED ...]}), and the untagged FETCH that tells the client of flags
changed by other sessions (with MODSEQ once CONDSTORE is on).
"""

from __future__ import annotations

from typing import Any

from twisted.mail import imap4

from twisted_netlab.mail.lab.imap.account import LabMailbox
from twisted_netlab.mail.lab.imap.arguments import ArgumentParsers
from twisted_netlab.mail.lab.imap.session import ascii_bytes, command_entry, flags_item
from twisted_netlab.mail.lab.imap.syntax import IMAPSyntaxError, sequence_text
from twisted_netlab.mail.lab.store.maildir import KeywordLimit, MailStoreError


class FlagsMixin(ArgumentParsers):
    """
    STORE, and the mailbox listener's C{flagsChanged}.
    """

    _STORE_MODES = {
        b"FLAGS",
        b"FLAGS.SILENT",
        b"+FLAGS",
        b"+FLAGS.SILENT",
        b"-FLAGS",
        b"-FLAGS.SILENT",
    }

    def opt_store_modifiers(self, line: bytes) -> Any:
        """
        STORE's optional modifiers (RFC 4466): C{(UNCHANGEDSINCE n)}.
        """
        line = (line or b"").lstrip(b" ")
        if not line.startswith(b"("):
            return None, line
        end = line.find(b")")
        if end < 0:
            raise IMAPSyntaxError("Mismatched parenthesis")
        words = line[1:end].split()
        if len(words) != 2 or words[0].upper() != b"UNCHANGEDSINCE":
            raise IMAPSyntaxError("STORE modifier must be UNCHANGEDSINCE n")
        if not words[1].isdigit():
            raise IMAPSyntaxError("UNCHANGEDSINCE needs a number")
        return int(words[1]), line[end + 1 :].lstrip(b" ")

    def do_STORE(  # type: ignore[override]
        self,
        tag: bytes,
        messages: Any,
        unchanged_since: int | None,
        mode: bytes,
        flags: list[bytes],
        uid: int = 0,
    ) -> None:
        """
        STORE; with CONDSTORE's UNCHANGEDSINCE, messages changed since are
        left alone and named in C{[MODIFIED ...]}.
        """
        mode = mode.upper()
        if mode not in self._STORE_MODES:
            self.sendBadResponse(tag, b"STORE needs FLAGS, +FLAGS or -FLAGS")
            return
        mbox = self.mbox
        if not mbox.isWriteable():
            self.sendNegativeResponse(tag, b"[READ-ONLY] The mailbox is read-only")
            return
        if unchanged_since is not None:
            self._enable_condstore()
        messages, uid = self._messages(messages, uid)
        uids = mbox.selected(messages, bool(uid))
        modified: list[int] = []
        if unchanged_since is not None:
            modified = [u for u in uids if mbox.modseq(u) > unchanged_since]
            uids = [u for u in uids if u not in modified]
        direction = 1 if mode.startswith(b"+") else -1 if mode.startswith(b"-") else 0
        names = [f.decode("utf-8", "replace") for f in flags]
        try:
            result = mbox.store_uids(uids, names, direction)
        except MailStoreError as e:
            code = b"[LIMIT] " if isinstance(e, KeywordLimit) else b""
            self.sendNegativeResponse(tag, code + b"STORE failed: " + ascii_bytes(e))
            return
        self._flags_grew()
        silent = mode.endswith(b".SILENT")
        for message_uid in sorted(result):
            seq = mbox.sequence_number(message_uid)
            if seq is None:
                continue
            items = []
            if not silent:
                items.append(flags_item(self.visible_flags(result[message_uid])))
            if uid:
                items.append(b"UID %d" % (message_uid,))
            if self.condstore:
                items.append(b"MODSEQ (%d)" % (mbox.modseq(message_uid),))
            if items and (not silent or self.condstore):
                self.sendUntaggedResponse(b"%d FETCH (%s)" % (seq, b" ".join(items)))
        if modified:
            shown = (
                modified
                if uid
                else [s for u in modified if (s := mbox.sequence_number(u))]
            )
            self.sendPositiveResponse(
                tag, b"[MODIFIED %s] Conditional STORE failed" % sequence_text(shown)
            )
            return
        self.sendPositiveResponse(tag, b"STORE completed")

    select_STORE = command_entry(
        do_STORE,
        ArgumentParsers.arg_seqset,
        opt_store_modifiers,
        imap4.IMAP4Server.arg_atom,
        imap4.IMAP4Server.arg_flaglist,
    )

    def flagsChanged(self, newFlags: dict[int, list[str]]) -> None:
        # Twisted's, with CONDSTORE's MODSEQ (and the UID) once it is on.
        for seq, flags in newFlags.items():
            items = [flags_item(self.visible_flags(flags))]
            if self.condstore and isinstance(self.mbox, LabMailbox):
                message_uid = self.mbox.getUID(seq)
                items.append(b"UID %d" % (message_uid,))
                items.append(b"MODSEQ (%d)" % (self.mbox.modseq(message_uid),))
            self.sendUntaggedResponse(
                b"%d FETCH (%s)" % (seq, b" ".join(items)), isAsync=True
            )
