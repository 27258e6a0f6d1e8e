"""
Tests for L{twisted_netlab.mail.lab.imap.mailboxes}: mailbox names checked
before use, SELECT and EXAMINE, LIST, CREATE, DELETE, RENAME, subscriptions,
STATUS and NAMESPACE, over the real C{IMAP4Server} conversation.
"""

from __future__ import annotations

import os
from typing import Any

from tests.mail.lab.imaptesting import (
    SIMPLE,
    USER,
    ServerFixture,
)


def listing(root: Any) -> list[str]:
    return sorted(
        os.path.relpath(os.path.join(d, f), root)
        for d, dirs, files in os.walk(root)
        for f in dirs + files
    )


class MailboxNameTests(ServerFixture):
    """
    Mailbox names can never leave the user's Maildir.
    """

    BAD_NAMES = [
        b'"../x"',
        b'"a/b"',
        b'"/etc/passwd"',
        b"..",
        b'"a..b"',
        b'".hidden"',
        b"&Jjo",
        b"&AGE-",
        b"&Jjo!-",
        b'"caf\xc3\xa9"',
    ]

    def test_bad_names_refused_everywhere(self) -> None:
        """
        Every command taking a mailbox name answers NO to names with C{/},
        C{..}, empty levels or malformed modified UTF-7, and nothing is
        created anywhere.
        """
        self.login()
        self.command(b"a CREATE Good")
        before = listing(self.root)
        commands = [
            b"CREATE %s",
            b"DELETE %s",
            b"RENAME Good %s",
            b"RENAME %s Other",
            b"SUBSCRIBE %s",
            b"STATUS %s (MESSAGES)",
            b"EXAMINE %s",
            b"SELECT %s",
            b"APPEND %s {5}",
        ]
        for name in self.BAD_NAMES:
            for command in commands:
                response = self.command(b"t " + command % name)
                self.assertTrue(
                    response.startswith(b"t NO "), (command % name, response)
                )
        self.command(b"s SELECT INBOX")
        self.store.deliver(USER, SIMPLE)
        self.command(b"n NOOP")
        for name in self.BAD_NAMES:
            response = self.command(b"t COPY 1 " + name)
            self.assertTrue(response.startswith(b"t NO "), (name, response))
        self.assertEqual(
            listing(self.root),
            [
                p
                for p in listing(self.root)
                if p in before or "/new/" in p or "/cur/" in p or "uidlist" in p
            ],
        )
        self.assertEqual(self.store.mailboxes(USER), ["INBOX", "Good"])

    def test_bad_name_as_literal(self) -> None:
        """
        A bad name sent as a literal is refused too.
        """
        self.login()
        self.assertEqual(
            self.command(b"a CREATE {4}"), b"+ Ready for 4 octets of text\r\n"
        )
        self.assertTrue(self.command(b"../x").startswith(b"a NO Illegal mailbox name"))
        self.assertEqual(self.store.mailboxes(USER), ["INBOX"])

    def test_non_ascii_names(self) -> None:
        """
        Canonical modified UTF-7 names work, stored as such on disk.
        """
        self.login()
        self.assertEqual(
            self.command(b"a CREATE Entw&APw-rfe"), b"a OK Mailbox created\r\n"
        )
        self.assertIn(b'"Entw&APw-rfe"', self.command(b'b LIST "" *'))
        self.assertTrue((self.root / USER / ".Entw&APw-rfe" / "cur").is_dir())

    def test_list_patterns_do_not_escape(self) -> None:
        """
        LIST patterns with C{..} or C{/} match nothing outside the Maildir.
        """
        self.login()
        for pattern in [b'"../*"', b'"/*"', b'"*/../*"']:
            self.assertEqual(
                self.command(b'a LIST "" ' + pattern), b"a OK LIST completed\r\n"
            )


class SelectTests(ServerFixture):
    """
    SELECT and EXAMINE.
    """

    def test_select_response(self) -> None:
        """
        SELECT reports FLAGS, PERMANENTFLAGS (with C{\\*}: keywords are
        kept), EXISTS, RECENT, UNSEEN, UIDVALIDITY, UIDNEXT and HIGHESTMODSEQ.
        """
        self.store.deliver(USER, SIMPLE)
        self.store.deliver(USER, SIMPLE)
        self.store.folder(USER).set_flags({1: ["\\Seen"]})
        response = self.select()
        validity = self.store.folder(USER).uidvalidity
        self.assertEqual(
            response,
            b"* FLAGS (\\Draft \\Flagged \\Answered \\Seen \\Deleted)\r\n"
            b"* OK [PERMANENTFLAGS (\\Draft \\Flagged \\Answered \\Seen \\Deleted"
            b" \\*)] Flags kept\r\n"
            b"* 2 EXISTS\r\n"
            b"* 1 RECENT\r\n"
            b"* OK [UNSEEN 2] First unseen\r\n"
            b"* OK [UIDVALIDITY %d] UIDs valid\r\n"
            b"* OK [UIDNEXT 3] Predicted next UID\r\n"
            b"* OK [HIGHESTMODSEQ %d] Highest\r\n"
            b"s1 OK [READ-WRITE] SELECT completed\r\n"
            % (validity, self.store.folder(USER).highest_modseq()),
        )

    def test_recent_once(self) -> None:
        """
        A message is \\Recent in the first session that selects the mailbox
        read-write, and not in the next one; EXAMINE does not claim it.
        """
        self.store.deliver(USER, SIMPLE)
        examiner, _ = self.connect()
        self.login(examiner)
        self.assertIn(b"* 1 RECENT", self.command(b"e EXAMINE INBOX", examiner))
        self.assertIn(b"* 1 RECENT", self.select())
        self.assertIn(b"FLAGS (\\Recent)", self.command(b"f FETCH 1 FLAGS"))
        other, _ = self.connect()
        self.assertIn(b"* 0 RECENT", self.select(server=other))

    def test_examine_is_read_only(self) -> None:
        """
        EXAMINE gives a read-only mailbox: STORE, EXPUNGE and implicit
        \\Seen change nothing.
        """
        self.store.deliver(USER, SIMPLE)
        self.login()
        self.assertIn(b"[READ-ONLY]", self.command(b"a EXAMINE INBOX"))
        self.assertIn(b"b NO", self.command(b"b STORE 1 +FLAGS (\\Deleted)"))
        self.assertIn(b"c NO", self.command(b"c EXPUNGE"))
        response = self.command(b"d FETCH 1 BODY[]")
        self.assertNotIn(b"FLAGS", response)
        self.assertEqual(self.store.folder(USER).entry(1).flags, ())
        self.assertEqual(os.listdir(self.root / USER / "cur"), [])

    def test_select_missing(self) -> None:
        """
        Selecting a missing mailbox answers NO [NONEXISTENT]; creating one
        that exists NO [ALREADYEXISTS] (RFC 9051's response codes).
        """
        self.login()
        self.assertEqual(
            self.command(b"a SELECT Nope"), b"a NO [NONEXISTENT] No such mailbox\r\n"
        )
        self.command(b"b CREATE Here")
        self.assertIn(b"c NO [ALREADYEXISTS]", self.command(b"c CREATE Here"))
        self.assertIn(b"d NO [NONEXISTENT]", self.command(b"d DELETE Nope"))


class MailboxManagementTests(ServerFixture):
    """
    CREATE, DELETE, RENAME, LIST, LSUB, SUBSCRIBE, STATUS, NAMESPACE.
    """

    def setUp(self) -> None:
        super().setUp()
        self.login()

    def test_list(self) -> None:
        """
        LIST with C{*} and C{%}; superiors that are not mailboxes are
        C{\\Noselect}; LIST "" "" gives the delimiter.
        """
        self.command(b"a CREATE Archive.2024")
        self.command(b"b CREATE Sent")
        (self.root / USER / ".Only.Child" / "cur").mkdir(parents=True)
        self.assertEqual(
            self.command(b'c LIST "" *'),
            b'* LIST (\\HasNoChildren) "." "INBOX"\r\n'
            b'* LIST (\\HasChildren) "." "Archive"\r\n'
            b'* LIST (\\HasNoChildren) "." "Archive.2024"\r\n'
            b'* LIST (\\Noselect \\HasChildren) "." "Only"\r\n'
            b'* LIST (\\HasNoChildren) "." "Only.Child"\r\n'
            b'* LIST (\\HasNoChildren \\Sent) "." "Sent"\r\n'
            b"c OK LIST completed\r\n",
        )
        self.assertEqual(
            self.command(b'd LIST "Archive." %'),
            b'* LIST (\\HasNoChildren) "." "Archive.2024"\r\nd OK LIST completed\r\n',
        )
        self.assertEqual(
            self.command(b'e LIST "" ""'),
            b'* LIST (\\Noselect) "." ""\r\ne OK LIST completed\r\n',
        )
        self.assertIn(b'"INBOX"', self.command(b'f LIST "" inbox'))

    def test_create_delete_rename(self) -> None:
        """
        Mailboxes can be created, renamed (with inferiors) and deleted; INBOX
        cannot be deleted or renamed; deleting a parent with children is NO.
        """
        self.assertEqual(
            self.command(b"a CREATE Work.Project"), b"a OK Mailbox created\r\n"
        )
        self.assertIn(b"b NO", self.command(b"b CREATE Work"))
        self.assertIn(b"c NO", self.command(b"c DELETE Work"))
        self.assertIn(b"d NO", self.command(b"d DELETE INBOX"))
        self.assertIn(b"e NO", self.command(b"e RENAME INBOX Other"))
        self.assertEqual(
            self.command(b"f RENAME Work Play"), b"f OK Mailbox renamed\r\n"
        )
        self.assertEqual(self.store.mailboxes(USER), ["INBOX", "Play", "Play.Project"])
        self.assertEqual(
            self.command(b"g DELETE Play.Project"), b"g OK Mailbox deleted\r\n"
        )
        self.assertIn(b"h NO", self.command(b"h DELETE Play.Project"))
        self.assertEqual(
            self.command(b"i CREATE Trailing."), b"i OK Mailbox created\r\n"
        )
        self.assertIn("Trailing", self.store.mailboxes(USER))

    def test_subscriptions(self) -> None:
        """
        LSUB lists subscribed mailboxes only; a missing mailbox cannot be
        subscribed to.
        """
        self.command(b"a CREATE Sent")
        self.command(b"b CREATE Junk")
        self.assertEqual(self.command(b"c SUBSCRIBE Sent"), b"c OK Subscribed\r\n")
        self.assertEqual(
            self.command(b'd LSUB "" *'),
            b'* LSUB (\\HasNoChildren \\Sent) "." "Sent"\r\nd OK LSUB completed\r\n',
        )
        self.command(b"e UNSUBSCRIBE Sent")
        self.assertEqual(self.command(b'f LSUB "" *'), b"f OK LSUB completed\r\n")
        self.assertIn(b"g NO", self.command(b"g SUBSCRIBE Missing"))

    def test_status(self) -> None:
        """
        STATUS counts messages, recent, unseen and tells UIDNEXT/UIDVALIDITY
        without changing anything.
        """
        self.store.deliver(USER, SIMPLE)
        self.store.deliver(USER, SIMPLE)
        self.store.folder(USER).set_flags({1: ["\\Seen"]})
        validity = self.store.folder(USER).uidvalidity
        self.assertEqual(
            self.command(
                b"a STATUS INBOX (MESSAGES RECENT UNSEEN UIDNEXT UIDVALIDITY)"
            ),
            b'* STATUS "INBOX" (MESSAGES 2 RECENT 1 UNSEEN 1 UIDNEXT 3 '
            b"UIDVALIDITY %d)\r\n"
            b"a OK STATUS completed\r\n" % validity,
        )
        self.assertIn(b"b BAD", self.command(b"b STATUS INBOX (FOO)"))
        self.assertIn(b"c NO", self.command(b"c STATUS Nope (MESSAGES)"))
        self.assertEqual(len(os.listdir(self.root / USER / "new")), 1)

    def test_namespace(self) -> None:
        """
        One personal namespace with the C{.} delimiter.
        """
        self.assertEqual(
            self.command(b"a NAMESPACE"),
            b'* NAMESPACE (("" ".")) NIL NIL\r\na OK NAMESPACE command completed\r\n',
        )
