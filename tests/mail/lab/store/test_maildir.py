"""
Tests for L{twisted_netlab.mail.lab.store.maildir}: the Maildir store with IMAP UIDs.
"""

from __future__ import annotations

import mailbox
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from twisted_netlab.mail.lab.store import maildir, uidlist
from twisted_netlab.mail.lab.store.maildir import (
    INBOX,
    FolderChange,
    InvalidName,
    MailboxExists,
    MailboxHasChildren,
    MailStore,
    MessageGone,
    NoSuchMailbox,
    validate_mailbox_name,
)

USER = "alice@netlab.test"
MESSAGE = b"From: bob@netlab.test\r\nSubject: hi\r\n\r\nHello, Alice.\r\n"


def message(n: int) -> bytes:
    return b"Subject: message %d\r\n\r\nbody %d\r\n" % (n, n)


class StoreTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="netlab-store-"))
        self.addCleanup(_rmtree, self.root)
        self.store = MailStore(self.root)

    def reopen(self) -> MailStore:
        return MailStore(self.root)

    def files(self, *parts: str) -> list[str]:
        return sorted(os.listdir(self.root.joinpath(USER, *parts)))


def _rmtree(path: Path) -> None:
    import shutil

    shutil.rmtree(path, ignore_errors=True)


class DeliveryTests(StoreTestCase):
    def test_deliver_returns_increasing_uids(self) -> None:
        """
        Each delivery gets the next UID, starting at 1.
        """
        uids = [self.store.deliver(USER, message(n)) for n in range(3)]
        self.assertEqual(uids, [1, 2, 3])

    def test_messages_byte_for_byte_in_uid_order(self) -> None:
        """
        C{messages} gives back exactly the delivered bytes, in UID order.
        """
        sent = [MESSAGE, message(1), b"bare\nLF\n", b"\x00\xff binary"]
        for data in sent:
            self.store.deliver(USER, data)
        self.assertEqual(self.store.messages(USER), sent)

    def test_delivery_lands_in_new(self) -> None:
        """
        A delivered message is one file in C{new/}; C{tmp/} is left empty.
        """
        self.store.deliver(USER, MESSAGE)
        self.assertEqual(len(self.files("new")), 1)
        self.assertEqual(self.files("tmp"), [])
        self.assertEqual(self.files("cur"), [])
        name = self.files("new")[0]
        self.assertIn(f",S={len(MESSAGE)},W={len(MESSAGE)}", name)

    def test_deliver_creates_the_users_maildir(self) -> None:
        """
        Delivering to INBOX of a user without a Maildir creates it; a user
        without one has no messages.
        """
        self.assertEqual(self.store.messages(USER), [])
        self.assertFalse(self.store.has_user(USER))
        self.store.deliver(USER.upper(), MESSAGE)
        self.assertTrue((self.root / USER / "cur").is_dir())
        self.assertEqual(self.store.messages(USER), [MESSAGE])

    def test_deliver_to_missing_mailbox(self) -> None:
        """
        Delivering to a mailbox other than INBOX that does not exist fails and
        stores nothing.
        """
        self.store.ensure_user(USER)
        self.assertRaises(NoSuchMailbox, self.store.deliver, USER, MESSAGE, "Junk")
        self.assertEqual(self.store.messages(USER), [])

    def test_deliver_to_folder(self) -> None:
        """
        Messages delivered to a folder are in its Maildir++ directory, with
        their own UIDs.
        """
        self.store.create_mailbox(USER, "Junk")
        self.store.deliver(USER, message(1))
        self.assertEqual(self.store.deliver(USER, message(2), "Junk"), 1)
        self.assertEqual(self.store.messages(USER, "Junk"), [message(2)])
        self.assertEqual(len(os.listdir(self.root / USER / ".Junk" / "new")), 1)

    def test_ensure_user_idempotent(self) -> None:
        """
        C{ensure_user} creates a Maildir with a UID list once, and leaves it
        alone afterwards.
        """
        self.store.ensure_user(USER)
        uidvalidity = self.store.folder(USER).uidvalidity
        self.store.deliver(USER, MESSAGE)
        self.store.ensure_user(USER)
        self.assertEqual(self.store.messages(USER), [MESSAGE])
        self.assertEqual(self.reopen().folder(USER).uidvalidity, uidvalidity)
        self.assertEqual(self.files("tmp"), [])

    def test_fsync_before_returning(self) -> None:
        """
        Before C{deliver} returns, the message file, the UID list and the
        directory it was renamed into have been synced to disk.
        """
        self.store.ensure_user(USER)
        synced: list[str] = []
        real_fsync = os.fsync

        def recording_fsync(fd: int) -> None:
            synced.append(os.readlink(f"/proc/self/fd/{fd}"))
            real_fsync(fd)

        self.patch(os, "fsync", recording_fsync)
        self.store.deliver(USER, MESSAGE)
        user = str(self.root / USER)
        self.assertIn(os.path.join(user, "new"), synced)
        self.assertIn(os.path.join(user, maildir.UIDLIST_NAME), synced)
        self.assertTrue(
            any(p.startswith(os.path.join(user, "tmp") + "/") for p in synced),
            synced,
        )

    def test_failed_rename_leaves_nothing(self) -> None:
        """
        If the message cannot be moved into C{new/}, C{deliver} raises
        C{OSError}, and neither C{new/} nor C{tmp/} holds anything.
        """
        self.store.ensure_user(USER)

        def failing_rename(source: object, target: object) -> None:
            raise OSError(28, "No space left on device")

        self.patch(os, "rename", failing_rename)
        self.assertRaises(OSError, self.store.deliver, USER, MESSAGE)
        self.assertEqual(self.files("tmp"), [])
        self.assertEqual(self.files("new"), [])
        self.assertEqual(self.store.messages(USER), [])

    def test_failed_write_leaves_nothing(self) -> None:
        """
        A write failure (disk full) raises C{OSError} and leaves no file
        behind, and no UID is used up.
        """
        self.store.ensure_user(USER)
        real_write = os.write

        def failing_write(fd: int, data: bytes) -> int:
            if len(data) == len(MESSAGE):
                raise OSError(28, "No space left on device")
            return real_write(fd, data)

        self.patch(os, "write", failing_write)
        self.assertRaises(OSError, self.store.deliver, USER, MESSAGE)
        self.patch(os, "write", real_write)
        self.assertEqual(self.files("tmp"), [])
        self.assertEqual(self.store.deliver(USER, message(2)), 1)


class UIDTests(StoreTestCase):
    def test_uids_stable_across_reopen(self) -> None:
        """
        A new store on the same directory sees the same UIDs, UIDVALIDITY
        and UIDNEXT.
        """
        for n in range(5):
            self.store.deliver(USER, message(n))
        folder = self.store.folder(USER)
        before = (folder.uids(), folder.uidvalidity, folder.uidnext)
        again = self.reopen().folder(USER)
        self.assertEqual((again.uids(), again.uidvalidity, again.uidnext), before)
        self.assertEqual(before[0], [1, 2, 3, 4, 5])
        self.assertEqual(before[2], 6)

    def test_uid_survives_renames_by_other_programs(self) -> None:
        """
        A message moved to C{cur/} with flags by another Maildir program keeps
        its UID.
        """
        self.store.deliver(USER, message(1))
        self.store.deliver(USER, message(2))
        (second,) = [
            name
            for name in self.files("new")
            if (self.root / USER / "new" / name).read_bytes() == message(2)
        ]
        os.rename(
            self.root / USER / "new" / second,
            self.root / USER / "cur" / (second + ":2,S"),
        )
        folder = self.reopen().folder(USER)
        self.assertEqual(folder.uids(), [1, 2])
        self.assertEqual(folder.entry(2).flags, ("\\Seen",))
        self.assertEqual(folder.read(2), message(2))

    def test_dropped_in_files_get_new_uids(self) -> None:
        """
        Files added by other programs (here the stdlib's C{mailbox}) get the
        next UIDs at the next scan; existing UIDs do not change, and the new
        ones stay the same after reopening.
        """
        self.store.deliver(USER, message(1))
        folder = self.store.folder(USER)
        self.assertEqual(folder.uids(), [1])
        box = mailbox.Maildir(self.root / USER, create=False)
        box.add(message(2))
        box.add(message(3))
        change = folder.refresh(force=True)
        self.assertEqual(change.new, (2, 3))
        self.assertEqual(folder.read(1), message(1))
        self.assertEqual({folder.read(2), folder.read(3)}, {message(2), message(3)})
        reopened = self.reopen().folder(USER)
        self.assertEqual(reopened.uids(), [1, 2, 3])
        self.assertEqual(
            [reopened.read(uid) for uid in (1, 2, 3)],
            [folder.read(uid) for uid in (1, 2, 3)],
        )
        self.assertEqual(self.store.deliver(USER, message(4)), 4)

    def test_expunged_uids_not_reused(self) -> None:
        """
        After the message with the highest UID is removed, the next delivery
        still gets a new UID, also after reopening.
        """
        for n in range(3):
            self.store.deliver(USER, message(n))
        folder = self.store.folder(USER)
        self.assertEqual(folder.remove([3]), [3])
        self.assertEqual(folder.uids(), [1, 2])
        self.assertEqual(self.reopen().deliver(USER, message(9)), 4)

    def test_torn_uidlist_line(self) -> None:
        """
        A half-written last line in the UID list (a writer that died) is cut
        off by the next delivery, which then gets a correct UID.
        """
        self.store.deliver(USER, message(1))
        with open(self.root / USER / maildir.UIDLIST_NAME, "ab") as f:
            f.write(b"2 12345.torn")
        store = self.reopen()
        self.assertEqual(store.deliver(USER, message(2)), 2)
        lines = (self.root / USER / maildir.UIDLIST_NAME).read_bytes().split(b"\n")
        self.assertNotIn(b"2 12345.torn", lines)
        self.assertEqual(store.folder(USER).uids(), [1, 2])
        self.assertEqual(self.reopen().messages(USER), [message(1), message(2)])

    def test_compaction_keeps_uids_and_uidnext(self) -> None:
        """
        When most lines of the UID list are for vanished messages, the list
        is rewritten without them; UIDs, UIDVALIDITY and UIDNEXT stay.
        """
        self.patch(uidlist, "_COMPACT_AFTER", 3)
        for n in range(8):
            self.store.deliver(USER, message(n))
        folder = self.store.folder(USER)
        uidvalidity = folder.uidvalidity
        folder.remove([1, 2, 3, 4, 5, 6])
        folder.refresh(force=True)
        lines = (self.root / USER / maildir.UIDLIST_NAME).read_text().splitlines()
        self.assertEqual(len(lines), 3)
        self.assertEqual(lines[0].split()[-1], "9")
        reopened = self.reopen().folder(USER)
        self.assertEqual(reopened.uids(), [7, 8])
        self.assertEqual(reopened.uidvalidity, uidvalidity)
        self.assertEqual(reopened.read(8), message(7))
        folder.remove([8])
        folder.refresh(force=True)
        self.assertEqual(self.reopen().deliver(USER, message(10)), 9)

    def test_concurrent_deliveries_from_processes(self) -> None:
        """
        Four processes delivering at once into the same Maildir: every
        message is stored once, with distinct UIDs 1..N, and UIDs stay the same
        after reopening.
        """
        self.store.ensure_user(USER)
        script = (
            "import sys\n"
            "from twisted_netlab.mail.lab.store.maildir import MailStore\n"
            "store = MailStore(sys.argv[1])\n"
            "for n in range(int(sys.argv[3])):\n"
            "    store.deliver(sys.argv[2], b'Subject: %s %d\\r\\n\\r\\nx\\r\\n'"
            " % (sys.argv[4].encode(), n))\n"
        )
        workers = [
            subprocess.Popen(
                [sys.executable, "-c", script, str(self.root), USER, "25", f"w{i}"]
            )
            for i in range(4)
        ]
        for worker in workers:
            self.assertEqual(worker.wait(timeout=120), 0)
        folder = self.reopen().folder(USER)
        self.assertEqual(folder.uids(), list(range(1, 101)))
        expected = {
            b"Subject: w%d %d\r\n\r\nx\r\n" % (i, n)
            for i in range(4)
            for n in range(25)
        }
        got = [folder.read(uid) for uid in folder.uids()]
        self.assertEqual(len(got), 100)
        self.assertEqual(set(got), expected)
        self.assertEqual(
            [self.store.folder(USER).read(uid) for uid in range(1, 101)], got
        )


class FlagTests(StoreTestCase):
    def test_flags_round_trip(self) -> None:
        """
        Flags set on a message are in its file name's info, survive reopening,
        and keep letters that are not IMAP flags.
        """
        uid = self.store.deliver(USER, MESSAGE)
        folder = self.store.folder(USER)
        result = folder.set_flags({uid: ["\\Seen", "\\flagged", "\\Other"]})
        self.assertEqual(result, {uid: ("\\Flagged", "\\Seen")})
        self.assertEqual(self.files("new"), [])
        (name,) = self.files("cur")
        self.assertTrue(name.endswith(":2,FS"), name)
        os.rename(
            self.root / USER / "cur" / name, self.root / USER / "cur" / (name + "P")
        )
        reopened = self.reopen().folder(USER)
        self.assertEqual(reopened.entry(uid).flags, ("\\Flagged", "\\Seen"))
        reopened.set_flags({uid: ["\\Deleted"]})
        (name,) = self.files("cur")
        self.assertTrue(name.endswith(":2,PT"), name)

    def test_flags_of_message_renamed_meanwhile(self) -> None:
        """
        Setting flags on a message another program renamed meanwhile finds
        it under its new name.
        """
        uid = self.store.deliver(USER, MESSAGE)
        folder = self.store.folder(USER)
        folder.uids()
        (name,) = self.files("new")
        os.rename(
            self.root / USER / "new" / name, self.root / USER / "cur" / (name + ":2,R")
        )
        self.assertEqual(
            folder.set_flags({uid: ["\\Answered", "\\Seen"]}),
            {uid: ("\\Answered", "\\Seen")},
        )
        self.assertEqual(folder.read(uid), MESSAGE)

    def test_read_gone_message(self) -> None:
        """
        Reading a message whose file was deleted by another program raises
        L{MessageGone}, and a rescan reports it gone.
        """
        uid = self.store.deliver(USER, MESSAGE)
        folder = self.store.folder(USER)
        folder.uids()
        (name,) = self.files("new")
        os.unlink(self.root / USER / "new" / name)
        self.assertRaises(MessageGone, folder.read, uid)
        self.assertEqual(folder.uids(), [])

    def test_deliver_with_flags_and_date(self) -> None:
        """
        A message delivered with flags goes straight to C{cur/} with them, and
        its internal date is the given time.
        """
        folder = self.store.folder(USER) if self.store.has_user(USER) else None
        self.assertIsNone(folder)
        self.store.ensure_user(USER)
        folder = self.store.folder(USER)
        uid = folder.deliver(MESSAGE, ["\\Seen"], internal_date=1_000_000_000.0)
        self.assertEqual(folder.entry(uid).flags, ("\\Seen",))
        self.assertEqual(folder.internal_date(uid), 1_000_000_000.0)
        self.assertEqual(self.files("new"), [])


class ListenerTests(StoreTestCase):
    def test_changes_are_reported(self) -> None:
        """
        Listeners hear of deliveries, flag changes and removals, and stop
        hearing once removed.
        """
        self.store.ensure_user(USER)
        folder = self.store.folder(USER)
        heard: list[FolderChange] = []
        folder.add_listener(heard.append)
        uid = self.store.deliver(USER, MESSAGE)
        folder.set_flags({uid: ["\\Seen"]})
        folder.set_flags({uid: ["\\Seen"]})
        folder.remove([uid])
        folder.remove_listener(heard.append)
        self.store.deliver(USER, MESSAGE)
        self.assertEqual(
            heard,
            [
                FolderChange(new=(uid,)),
                FolderChange(flags=(uid,)),
                FolderChange(gone=(uid,)),
            ],
        )

    def test_external_removal_reported_on_refresh(self) -> None:
        """
        A file deleted by another program is reported gone at the next
        refresh.
        """
        uid = self.store.deliver(USER, MESSAGE)
        folder = self.store.folder(USER)
        folder.uids()
        heard: list[FolderChange] = []
        folder.add_listener(heard.append)
        (name,) = self.files("new")
        os.unlink(self.root / USER / "new" / name)
        folder.refresh()
        self.assertEqual(heard, [FolderChange(gone=(uid,))])


class MailboxTests(StoreTestCase):
    def test_create_list_delete(self) -> None:
        """
        Mailboxes are Maildir++ folders; superiors are created too; INBOX is
        listed first.
        """
        self.store.create_mailbox(USER, "Archive.2024")
        self.store.create_mailbox(USER, "Sent")
        self.assertEqual(
            self.store.mailboxes(USER), [INBOX, "Archive", "Archive.2024", "Sent"]
        )
        self.assertTrue((self.root / USER / ".Archive.2024" / "maildirfolder").exists())
        self.assertRaises(MailboxExists, self.store.create_mailbox, USER, "Sent")
        self.assertRaises(
            MailboxHasChildren, self.store.delete_mailbox, USER, "Archive"
        )
        self.store.delete_mailbox(USER, "Archive.2024")
        self.store.delete_mailbox(USER, "Archive")
        self.assertEqual(self.store.mailboxes(USER), [INBOX, "Sent"])
        self.assertEqual(
            sorted(os.listdir(self.root / USER)),
            sorted(
                [
                    "cur",
                    "new",
                    "tmp",
                    ".Sent",
                    maildir.UIDLIST_NAME,
                    maildir.UIDVALIDITY_NAME,
                    maildir.UIDVALIDITY_LOCK_NAME,
                ]
            ),
        )

    def test_names_stored_in_modified_utf7(self) -> None:
        """
        Non-ASCII names are stored in modified UTF-7, as Dovecot and Courier do.
        """
        self.store.create_mailbox(USER, "Entwürfe & Co")
        self.assertTrue((self.root / USER / ".Entw&APw-rfe &- Co").is_dir())
        self.assertEqual(self.store.mailboxes(USER), [INBOX, "Entwürfe & Co"])

    def test_recreated_mailbox_gets_new_uidvalidity(self) -> None:
        """
        A mailbox deleted and created again at once gets a larger UIDVALIDITY.
        """
        self.store.create_mailbox(USER, "Junk")
        first = self.store.folder(USER, "Junk").uidvalidity
        self.store.delete_mailbox(USER, "Junk")
        self.store.create_mailbox(USER, "Junk")
        self.assertGreater(self.store.folder(USER, "Junk").uidvalidity, first)

    def test_rename_keeps_uids_and_children(self) -> None:
        """
        Renaming a mailbox moves its inferiors too; messages keep UIDs and the
        mailbox keeps its UIDVALIDITY.
        """
        self.store.create_mailbox(USER, "Old.Child")
        self.store.deliver(USER, message(1), "Old")
        self.store.deliver(USER, message(2), "Old")
        uidvalidity = self.store.folder(USER, "Old").uidvalidity
        self.store.rename_mailbox(USER, "Old", "New.Place")
        self.assertEqual(
            self.store.mailboxes(USER), [INBOX, "New", "New.Place", "New.Place.Child"]
        )
        folder = self.store.folder(USER, "New.Place")
        self.assertEqual(folder.uids(), [1, 2])
        self.assertEqual(folder.uidvalidity, uidvalidity)
        self.assertRaises(NoSuchMailbox, self.store.folder, USER, "Old")
        self.assertRaises(
            MailboxExists, self.store.rename_mailbox, USER, "New", "New.Place"
        )

    def test_bad_names_refused(self) -> None:
        """
        Names that could leave the user's Maildir, or name something else in
        it, are refused before anything touches the disk.
        """
        self.store.ensure_user(USER)
        for name in [
            "",
            "..",
            "a..b",
            ".a",
            "a.",
            "../x",
            "a/b",
            "/etc",
            "x\x00y",
            "x\ny",
            "*",
            "a%",
            "x" * 201,
        ]:
            self.assertRaises(InvalidName, validate_mailbox_name, name)
            self.assertRaises(InvalidName, self.store.create_mailbox, USER, name)
        self.assertEqual(self.store.mailboxes(USER), [INBOX])
        self.assertEqual(validate_mailbox_name("inBox"), INBOX)
        # A backslash is an ordinary character in a POSIX file name.
        self.store.create_mailbox(USER, "foo\\bar")
        self.assertEqual(self.store.mailboxes(USER), [INBOX, "foo\\bar"])

    def test_bad_addresses_refused(self) -> None:
        """
        Addresses that are not one plain directory name are refused.
        """
        for address in ["", "../x", "a/b", ".hidden", "..", "a\x00b"]:
            self.assertRaises(InvalidName, self.store.deliver, address, MESSAGE)
        self.assertFalse(any(self.root.iterdir()))

    def test_foreign_directories_ignored(self) -> None:
        """
        Directories that are not folders this store would make (bad modified
        UTF-7, no C{cur/}) are not listed.
        """
        self.store.ensure_user(USER)
        (self.root / USER / ".&Jjo").mkdir()
        (self.root / USER / ".&Jjo" / "cur").mkdir()
        (self.root / USER / ".nocur").mkdir()
        self.assertEqual(self.store.mailboxes(USER), [INBOX])

    def test_subscriptions(self) -> None:
        """
        Subscriptions are kept in the C{subscriptions} file in modified UTF-7.
        """
        self.store.set_subscribed(USER, "Entwürfe", True)
        self.store.set_subscribed(USER, "Sent", True)
        self.store.set_subscribed(USER, "Sent", False)
        self.assertEqual(self.reopen().subscriptions(USER), ["Entwürfe"])
        self.assertEqual(
            (self.root / USER / "subscriptions").read_bytes(), b"Entw&APw-rfe\n"
        )


class KeywordTests(StoreTestCase):
    """
    Keywords kept the Dovecot way: letters a-z in the file name's info and a
    C{dovecot-keywords} file per folder.
    """

    def test_stored_in_name_and_table(self) -> None:
        """
        Keywords given at delivery and by C{set_flags} become info letters
        listed in C{dovecot-keywords}; they survive a restart and are part
        of the message's flags; removing one removes its letter only.
        """
        self.store.ensure_user(USER)
        folder = self.store.folder(USER)
        uid = folder.deliver(MESSAGE, ["$Forwarded", "\\Flagged"])
        self.assertEqual(folder.entry(uid).flags, ("\\Flagged", "$Forwarded"))
        folder.set_flags({uid: ["\\Flagged", "$forwarded", "abc", "$Junk"]})
        (name,) = self.files("cur")
        self.assertTrue(name.endswith(":2,Fabc"), name)
        self.assertEqual(
            (self.root / USER / "dovecot-keywords").read_text(),
            "0 $Forwarded\n1 abc\n2 $Junk\n",
        )
        reopened = self.reopen().folder(USER)
        self.assertEqual(
            reopened.entry(uid).flags, ("\\Flagged", "$Forwarded", "abc", "$Junk")
        )
        reopened.set_flags({uid: ["\\Flagged", "$Junk"]})
        (name,) = self.files("cur")
        self.assertTrue(name.endswith(":2,Fc"), name)
        self.assertEqual(reopened.keywords(), ["$Forwarded", "abc", "$Junk"])

    def test_dovecot_table_read(self) -> None:
        """
        A C{dovecot-keywords} file written by Dovecot, and letters set by
        another program, are understood.
        """
        self.store.ensure_user(USER)
        uid = self.store.deliver(USER, MESSAGE)
        (self.root / USER / "dovecot-keywords").write_text("0 Work\n3 $Label1\n")
        (name,) = self.files("new")
        os.rename(
            self.root / USER / "new" / name,
            self.root / USER / "cur" / (name + ":2,Sad"),
        )
        folder = self.reopen().folder(USER)
        self.assertEqual(folder.entry(uid).flags, ("\\Seen", "Work", "$Label1"))

    def test_limit(self) -> None:
        """
        A 27th keyword is refused (L{maildir.KeywordLimit}) and nothing
        changes; C{can_add_keywords} says so beforehand.
        """
        uid = self.store.deliver(USER, MESSAGE)
        folder = self.store.folder(USER)
        folder.set_flags({uid: [f"k{i}" for i in range(26)]})
        self.assertFalse(folder.can_add_keywords())
        self.assertRaises(
            maildir.KeywordLimit, folder.set_flags, {uid: ["\\Seen", "one-more"]}
        )
        self.assertEqual(len(folder.entry(uid).flags), 26)
        self.assertRaises(maildir.InvalidName, folder.set_flags, {uid: ["a b"]})


class ModseqTests(StoreTestCase):
    """
    MODSEQ and HIGHESTMODSEQ (RFC 7162), derived from UIDs for deliveries
    and recorded for changes.
    """

    def test_grows_with_every_change(self) -> None:
        """
        Each delivery, flag change and expunge raises HIGHESTMODSEQ; a
        message's MODSEQ is that of its last change; none ever goes down.
        """
        self.store.ensure_user(USER)
        folder = self.store.folder(USER)
        seen = [folder.highest_modseq()]
        first = folder.deliver(MESSAGE)
        seen.append(folder.highest_modseq())
        self.assertEqual(folder.modseq(first), folder.highest_modseq())
        second = folder.deliver(MESSAGE)
        seen.append(folder.highest_modseq())
        folder.set_flags({first: ["\\Seen"]})
        seen.append(folder.highest_modseq())
        self.assertEqual(folder.modseq(first), folder.highest_modseq())
        self.assertLess(folder.modseq(second), folder.modseq(first))
        third = folder.deliver(MESSAGE)
        seen.append(folder.highest_modseq())
        self.assertGreater(folder.modseq(third), folder.modseq(first))
        folder.set_flags({second: ["\\Seen"]})
        seen.append(folder.highest_modseq())
        folder.remove([third])
        seen.append(folder.highest_modseq())
        self.assertEqual(seen, sorted(set(seen)))
        # A flag "change" that changes nothing records nothing.
        before = folder.highest_modseq()
        folder.set_flags({first: ["\\Seen"]})
        self.assertEqual(folder.highest_modseq(), before)

    def test_survive_restart(self) -> None:
        """
        MODSEQs read back the same from the folder's C{netlab-modseq}
        after a restart; deliveries write nothing there.
        """
        self.store.ensure_user(USER)
        folder = self.store.folder(USER)
        uids = [folder.deliver(MESSAGE) for _ in range(3)]
        self.assertFalse((self.root / USER / "netlab-modseq").exists())
        folder.set_flags({uids[1]: ["\\Answered"]})
        folder.deliver(MESSAGE)
        values = [folder.modseq(u) for u in folder.uids()]
        highest = folder.highest_modseq()
        again = self.reopen().folder(USER)
        self.assertEqual([again.modseq(u) for u in again.uids()], values)
        self.assertEqual(again.highest_modseq(), highest)

    def test_changes_by_other_programs(self) -> None:
        """
        A flag change made by another Maildir program (a rename) gets a new
        MODSEQ when the folder notices it.
        """
        uid = self.store.deliver(USER, MESSAGE)
        folder = self.store.folder(USER)
        folder.uids()
        before = folder.modseq(uid)
        (name,) = self.files("new")
        os.rename(
            self.root / USER / "new" / name, self.root / USER / "cur" / (name + ":2,S")
        )
        folder.refresh(force=True)
        self.assertGreater(folder.modseq(uid), before)

    def test_shared_between_stores(self) -> None:
        """
        Two stores on the same directory (two processes) agree: a change
        recorded by one is seen by the other after a refresh, and MODSEQs
        keep growing whichever records next.
        """
        uid = self.store.deliver(USER, MESSAGE)
        other = self.reopen().folder(USER)
        other.uids()
        folder = self.store.folder(USER)
        folder.set_flags({uid: ["\\Seen"]})
        first = folder.modseq(uid)
        other.refresh(force=True)
        self.assertGreaterEqual(other.modseq(uid), first)
        other.set_flags({uid: ["\\Seen", "\\Flagged"]})
        folder.refresh(force=True)
        self.assertGreater(folder.modseq(uid), first)
        other.refresh(force=True)
        self.assertEqual(folder.highest_modseq(), other.highest_modseq())


class RemoveAllUsersTests(StoreTestCase):
    def test_everything_goes(self) -> None:
        """
        Every user's Maildir and its folders are removed, and the same users
        can be made again with UIDs from 1.
        """
        self.store.ensure_user(USER)
        self.store.ensure_user("bob@netlab.test")
        self.store.create_mailbox(USER, "Sent")
        self.store.deliver(USER, message(1))
        self.store.folder(USER)  # cached: must be forgotten
        self.store.remove_all_users()
        self.assertEqual(self.store.addresses(), [])
        self.assertEqual(os.listdir(self.root), [])
        self.store.ensure_user(USER)
        self.assertEqual(self.store.deliver(USER, message(2)), 1)
        self.assertEqual(self.store.mailboxes(USER), [INBOX])

    def test_leftover_of_a_cut_short_removal(self) -> None:
        """
        A user directory without C{cur/} (what an interrupted removal
        leaves, with a file a delivery was still writing) is removed too, so
        the user's Maildir can be made again under its name.
        """
        half = self.root / USER / "tmp"
        half.mkdir(parents=True)
        (half / "1.M1P1.host").write_bytes(b"in flight")
        self.assertEqual(self.store.addresses(), [])
        self.assertRaises(MailboxExists, self.store.ensure_user, USER)
        self.store.remove_all_users()
        self.store.ensure_user(USER)
        self.assertEqual(self.store.addresses(), [USER])

    def test_writer_in_flight_writes_aside(self) -> None:
        """
        A file a delivery thread still holds open in the old Maildir's
        C{tmp/} never shows up in the Maildir made next under the same name.
        """
        self.store.ensure_user(USER)
        with open(self.root / USER / "tmp" / "1.M1P1.host", "wb") as f:
            self.store.remove_all_users()
            self.store.ensure_user(USER)
            f.write(b"late bytes")
        self.assertEqual(self.files("tmp"), [])
        self.assertEqual(self.files("new"), [])
        self.assertEqual(os.listdir(self.root), [USER])
