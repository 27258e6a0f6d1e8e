"""
Tests for L{twisted_netlab.mail.lab.imap.account}: the IMAP account, mailbox and
message objects over the store, used directly.
"""

from __future__ import annotations

import email.utils

from twisted.mail import imap4

from tests.mail.lab.imaptesting import MULTIPART, SIMPLE, USER, StoreFixture
from twisted_netlab.mail.lab.imap.account import LabAccount, parse_append_date


class AccountTests(StoreFixture):
    def setUp(self) -> None:
        super().setUp()
        self.account = LabAccount(self.store, USER)

    def test_select_bad_or_missing(self) -> None:
        """
        Selecting a missing mailbox or a refused name gives None.
        """
        for name in ["Nope", "../x", "a..b", ""]:
            self.assertIsNone(self.account.select(name))

    def test_errors_are_mailbox_exceptions(self) -> None:
        """
        Store refusals become ASCII MailboxExceptions (Twisted sends them as
        they are).
        """
        self.account.create("Entwürfe")
        error = self.assertRaises(
            imap4.MailboxException, self.account.create, "Entwürfe"
        )
        str(error).encode("ascii")
        self.assertRaises(imap4.MailboxException, self.account.delete, "Nope")
        self.assertRaises(imap4.MailboxException, self.account.rename, "Nope", "X")
        self.assertRaises(imap4.MailboxException, self.account.subscribe, "a/b")

    def test_fetch_message_sets(self) -> None:
        """
        Sequence and UID sets select the right messages without iterating
        over huge ranges; C{n:*} past the end means the last message.
        """
        for _ in range(3):
            self.store.deliver(USER, SIMPLE)
        self.store.folder(USER).remove([2])
        mailbox = self.account.select("INBOX")
        assert mailbox is not None

        def uids(spec: bytes, uid: bool) -> list[int]:
            assert mailbox is not None
            return [m.getUID() for _, m in mailbox.fetch(imap4.parseIdList(spec), uid)]

        self.assertEqual(uids(b"1:*", True), [1, 3])
        self.assertEqual(uids(b"2:4294967295", True), [3])
        self.assertEqual(uids(b"9:*", True), [3])
        self.assertEqual(uids(b"2", True), [])
        self.assertEqual(uids(b"2:*", False), [3])
        self.assertEqual(uids(b"1,5:1000000", False), [1])

    def test_store_modes(self) -> None:
        """
        STORE replaces, adds or removes flags and keywords; \\Recent is not
        stored.
        """
        self.store.deliver(USER, SIMPLE)
        mailbox = self.account.select("INBOX")
        assert mailbox is not None
        one = imap4.parseIdList(b"1")
        self.assertEqual(
            mailbox.store(one, ["\\Seen", "$Label", "\\Recent"], 0, False),
            {1: ["\\Seen", "$Label", "\\Recent"]},
        )
        self.assertEqual(
            mailbox.store(imap4.parseIdList(b"1"), ["\\Flagged"], 1, False),
            {1: ["\\Flagged", "\\Seen", "$Label", "\\Recent"]},
        )
        self.assertEqual(
            mailbox.store(imap4.parseIdList(b"1"), ["\\seen", "$label"], -1, False),
            {1: ["\\Flagged", "\\Recent"]},
        )
        readonly = self.account.select("INBOX", rw=False)
        assert readonly is not None
        self.assertRaises(
            imap4.ReadOnlyMailbox, readonly.store, imap4.parseIdList(b"1"), [], 0, False
        )
        self.assertRaises(imap4.ReadOnlyMailbox, readonly.expunge)

    def test_message_interface(self) -> None:
        """
        L{LabMessage} answers Twisted's IMessage questions from the stored
        bytes.
        """
        self.store.deliver(USER, MULTIPART)
        mailbox = self.account.select("INBOX", rw=False)
        assert mailbox is not None
        ((seq, message),) = mailbox.fetch(imap4.parseIdList(b"1"), False)
        self.assertEqual(seq, 1)
        self.assertTrue(imap4.IMessage.providedBy(message))
        self.assertEqual(message.getSize(), len(MULTIPART))
        self.assertEqual(message.open().read(), MULTIPART)
        self.assertEqual(
            message.getHeaders(False, "Subject"), {"subject": "a multipart"}
        )
        self.assertTrue(message.isMultipart())
        self.assertEqual(message.getSubPart(3).getBodyFile().read(), b"AAECAw==")
        self.assertRaises(TypeError, message.getSubPart(0).getSubPart, 0)
        self.assertIsNotNone(email.utils.parsedate_tz(message.getInternalDate()))

    def test_search_errors(self) -> None:
        """
        Unknown keys, missing arguments and bad dates raise IllegalQueryError.
        """
        self.store.deliver(USER, SIMPLE)
        mailbox = self.account.select("INBOX")
        assert mailbox is not None
        for query in [
            [b"FOO"],
            [b"SUBJECT"],
            [b"SINCE", b"1-Foo-2020"],
            [b"LARGER", b"x"],
            [],
        ]:
            self.assertRaises(imap4.IllegalQueryError, mailbox.search, query, False)

    def test_append_dates(self) -> None:
        """
        APPEND date-times with zones; anything else is refused.
        """
        self.assertEqual(parse_append_date(b" 1-Jan-1970 01:00:00 +0100"), 0.0)
        self.assertEqual(parse_append_date(b"01-Jan-1970 00:00:00 -0030"), 1800.0)
        for bad in [
            b"1970-01-01",
            b"32-Jan-1970 00:00:00 +0000",
            b"01-Foo-1970 00:00:00 +0000",
        ]:
            self.assertRaises(ValueError, parse_append_date, bad)
