"""
Tests for L{twisted_netlab.mail.lab.store.tags} and the keyword side of the
store it stands on: Mailpit's naming rules, the tags a delivery gets (X-Tags,
plus-addresses, rules, and those turned off), the letters in the delivered
file's name, the 26-letter limit, and renaming and deleting across folders.
"""

from __future__ import annotations

import os

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.mail.lab.store.test_maildir import USER, StoreTestCase
from twisted_netlab.errors import UsageProblem
from twisted_netlab.mail.lab.store.catalog import Catalog
from twisted_netlab.mail.lab.store.errors import (
    KeywordExists,
    KeywordLimit,
    NoSuchKeyword,
)
from twisted_netlab.mail.lab.store.keywords import (
    SPACE_IN_KEYWORD,
    keyword_for_tag,
    tag_for_keyword,
)
from twisted_netlab.mail.lab.store.maildir import Delivery, Envelope
from twisted_netlab.mail.lab.store.tags import (
    TagError,
    Tagger,
    clean_tag,
    delete_tag,
    parse_tag_rule,
    parse_tags_disable,
    plus_tags,
    rename_tag,
    set_tags,
    tag_counts,
    tags_of,
    unique_tags,
    valid_tag,
)

OTHER = "bob@netlab.test"


def envelope(*rcpt_to: str) -> Envelope:
    return Envelope(
        mail_from="app@sender.test",
        rcpt_to=rcpt_to or (USER,),
        client="127.0.0.1",
        tls=False,
        auth_user=None,
        received=1764000000.0,
    )


def mail(headers: str = "", body: str = "hello") -> bytes:
    text = (
        f"From: app@sender.test\r\nTo: {USER}\r\nSubject: hi\r\n{headers}\r\n{body}\r\n"
    )
    return text.encode()


class NameTests(SynchronousTestCase):
    def test_clean_tag_as_mailpit(self) -> None:
        """
        Characters other than letters, digits, -, _, ., @ and the space
        become spaces, runs of spaces one, the ends trimmed, 100 kept.
        """
        self.assertEqual(clean_tag("  Hello,  World! "), "Hello World")
        self.assertEqual(clean_tag("a/b\\c"), "a b c")
        self.assertEqual(clean_tag("dev.team@x-y_z"), "dev.team@x-y_z")
        self.assertEqual(clean_tag("ünïcode"), "n code")
        self.assertEqual(len(clean_tag("x" * 150)), 100)
        self.assertEqual(clean_tag("!!!"), "")

    def test_valid(self) -> None:
        """Mailpit's pattern: 1 to 100 of its characters."""
        self.assertTrue(valid_tag("Tag 1"))
        self.assertFalse(valid_tag(""))
        self.assertFalse(valid_tag("a,b"))
        self.assertFalse(valid_tag("x" * 101))

    def test_unique_sorted_first_spelling_kept(self) -> None:
        """
        Each tag once without regard to case (the first spelling wins),
        invalid ones dropped, sorted in byte order (capitals first, as Go).
        """
        self.assertEqual(
            unique_tags(["beta", "Alpha", "BETA", " alpha ", "!!", "Zed"]),
            ["Alpha", "Zed", "beta"],
        )

    def test_keyword_mapping(self) -> None:
        """
        A space of a tag is the keyword's tilde and back; other tag
        characters stay.
        """
        self.assertEqual(SPACE_IN_KEYWORD, "~")
        self.assertEqual(keyword_for_tag("Needs review"), "Needs~review")
        self.assertEqual(tag_for_keyword("Needs~review"), "Needs review")
        self.assertEqual(keyword_for_tag("a.b@c-d_e"), "a.b@c-d_e")

    def test_tags_of_flags(self) -> None:
        """The tags of a message are its keywords, not its system flags."""
        self.assertEqual(
            tags_of(["\\Seen", "urgent", "Needs~review", "\\Flagged"]),
            ["Needs review", "urgent"],
        )

    def test_plus_tags(self) -> None:
        """What follows the first + up to the @, split at each further +."""
        self.assertEqual(plus_tags("dev+feature1@x.test"), ["feature1"])
        self.assertEqual(plus_tags("dev+a+b@x.test"), ["a", "b"])
        self.assertEqual(plus_tags("dev@x.test"), [])


class OptionTests(SynchronousTestCase):
    def test_rule(self) -> None:
        """TAG=QUERY, TAG1,TAG2=QUERY; the query is the search language."""
        rule = parse_tag_rule("invoice, Billing=subject:invoice has:attachment")
        self.assertEqual(rule.tags, ("Billing", "invoice"))
        self.assertEqual(rule.text, "subject:invoice has:attachment")
        self.assertEqual(parse_tag_rule("a=b=c").text, "b=c")

    def test_bad_rules(self) -> None:
        """Each bad rule is one line naming the option."""
        for text, reason in [
            ("urgent", "give TAG=QUERY"),
            ("urgent=", "give TAG=QUERY"),
            ("!!=subject:x", "no valid tag"),
            ("x=is:nonsense", "bad query"),
        ]:
            with self.assertRaises(UsageProblem) as caught:
                parse_tag_rule(text)
            self.assertIn("--tag", str(caught.exception))
            self.assertIn(reason, str(caught.exception))

    def test_disable(self) -> None:
        """Mailpit's names and their aliases; anything else refused."""
        self.assertEqual(
            parse_tags_disable("X-Tags, plus-addressing"),
            {"x-tags", "plus-addresses"},
        )
        self.assertEqual(parse_tags_disable(""), frozenset())
        with self.assertRaises(UsageProblem):
            parse_tags_disable("x-tags,subject")


class TaggerTests(SynchronousTestCase):
    def test_x_tags(self) -> None:
        """The X-Tags header, comma-separated, cleaned and sorted."""
        tagger = Tagger()
        self.assertEqual(
            tagger.tags(mail("X-Tags: Release,  beta 2, release,!!\r\n")),
            ["Release", "beta 2"],
        )

    def test_plus_addresses(self) -> None:
        """
        Plus parts of From, To, Cc, Bcc and of envelope recipients the
        headers do not name.
        """
        message = (
            b"From: app+sender@sender.test\r\nTo: dev+feature1@x.test\r\n"
            b"Cc: qa+smoke+nightly@x.test\r\nSubject: s\r\n\r\nx\r\n"
        )
        self.assertEqual(
            Tagger().tags(
                message, envelope("dev+feature1@x.test", "ops+hidden@x.test")
            ),
            ["feature1", "hidden", "nightly", "sender", "smoke"],
        )

    def test_rules(self) -> None:
        """A rule's query is matched against the decoded message."""
        tagger = Tagger(
            [parse_tag_rule("invoice=subject:hi"), parse_tag_rule("big=larger:1M")]
        )
        self.assertEqual(tagger.tags(mail(), envelope()), ["invoice"])

    def test_rule_per_mailbox(self) -> None:
        """A rule with mailbox: tags only that mailbox's copy."""
        tagger = Tagger([parse_tag_rule(f"mine=mailbox:{OTHER}")])
        found = tagger(mail(), envelope(), [USER, OTHER])
        self.assertEqual(found, {USER: [], OTHER: ["mine"]})

    def test_disabled(self) -> None:
        """Without x-tags and plus-addresses, only the rules tag."""
        tagger = Tagger(x_tags=False, plus_addresses=False)
        message = mail("X-Tags: x\r\nCc: a+b@c.test\r\n")
        self.assertEqual(tagger.tags(message, envelope()), [])
        self.assertFalse(tagger)


class DeliveryTagTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.store.tagger = Tagger([parse_tag_rule("greeting=hello")])

    def test_letters_in_the_delivered_name(self) -> None:
        """
        A delivered message's tags are keywords from the start: their
        letters are in its file's name in new/ (still recent), and
        dovecot-keywords names them.
        """
        uids = self.store.deliver_many(
            mail("X-Tags: Release\r\n"), [USER], envelope=envelope()
        )
        folder = self.store.folder(USER)
        [name] = self.files("new")
        self.assertEqual(self.files("cur"), [])
        self.assertTrue(name.endswith(":2,ab"), name)
        self.assertEqual(
            (self.root / USER / "dovecot-keywords").read_text(),
            "0 Release\n1 greeting\n",
        )
        self.assertEqual(folder.entry(uids[USER]).flags, ("Release", "greeting"))
        self.assertTrue(folder.entry(uids[USER]).recent)
        reopened = self.reopen().folder(USER)
        self.assertEqual(reopened.entry(uids[USER]).flags, ("Release", "greeting"))

    def test_explicit_keywords(self) -> None:
        """A delivery's own keywords join the tagger's, each once."""
        uids = self.store.deliver_batch(
            [Delivery(mail(), [USER], envelope(), None, ("API", "greeting"))]
        )[0]
        assert isinstance(uids, dict)
        self.assertEqual(
            self.store.folder(USER).entry(uids[USER]).flags, ("API", "greeting")
        )

    def test_tagger_failure_costs_only_tags(self) -> None:
        """A tagger that raises: the message is stored, untagged."""

        def broken(
            message: bytes, env: object, addresses: object
        ) -> dict[str, list[str]]:
            raise RuntimeError("boom")

        self.store.tagger = broken
        uids = self.store.deliver_many(mail(), [USER], envelope=envelope())
        self.assertEqual(self.store.folder(USER).entry(uids[USER]).flags, ())
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_past_26_at_delivery(self) -> None:
        """
        With all 26 letters carried by messages, a delivery is still stored,
        without the tags that find no letter.
        """
        self.store.tagger = Tagger()
        names = [f"t{i}" for i in range(26)]
        self.store.deliver_many(mail("X-Tags: " + ",".join(names) + "\r\n"), [USER])
        folder = self.store.folder(USER)
        self.assertEqual(len(folder.keywords()), 26)
        uids = self.store.deliver_many(mail("X-Tags: t3, brand-new\r\n"), [USER])
        self.assertEqual(folder.entry(uids[USER]).flags, ("t3",))

    def test_free_letters_are_reused(self) -> None:
        """
        Letters no message carries any more are freed when a 27th keyword
        comes: the message gets its tag.
        """
        self.store.tagger = Tagger()
        names = [f"t{i}" for i in range(26)]
        first = self.store.deliver_many(
            mail("X-Tags: " + ",".join(names) + "\r\n"), [USER]
        )
        folder = self.store.folder(USER)
        folder.remove([first[USER]])
        uids = self.store.deliver_many(mail("X-Tags: brand-new\r\n"), [USER])
        self.assertEqual(folder.entry(uids[USER]).flags, ("brand-new",))
        self.assertEqual(folder.keywords(), ["brand-new"])


class ChangeTests(StoreTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.store.tagger = Tagger()
        self.catalog = Catalog(self.store, Clock())
        self.addCleanup(self.catalog.close)
        self.store.deliver_many(mail("X-Tags: Urgent\r\n"), [USER, OTHER])
        self.store.deliver_many(mail("X-Tags: later\r\n"), [USER])
        self.store.create_mailbox(USER, "Archive")
        self.store.folder(USER, "Archive").deliver(mail(), ["Urgent"])

    def flags(
        self, address: str = USER, mailbox: str = "INBOX"
    ) -> list[tuple[str, ...]]:
        folder = self.store.folder(address, mailbox)
        folder.refresh(force=True)
        return [folder.entry(uid).flags for uid in folder.uids()]

    def test_set_tags(self) -> None:
        """
        Exactly the tags given, cleaned; system flags kept; a folder's
        spelling of a keyword wins; unknown IMAP keywords given back as
        they are stay.
        """
        folder = self.store.folder(USER)
        uid = folder.uids()[0]
        folder.set_flags({uid: ["\\Seen", "Urgent", "$Forwarded"]})
        entry = next(e for e in self.catalog.entries(USER) if e.uid == uid)
        set_tags(
            self.catalog, [entry], ["urgent", "$Forwarded", "Needs, review!", "!!"]
        )
        self.assertEqual(
            set(folder.entry(uid).flags),
            {"\\Seen", "Urgent", "$Forwarded", "Needs~review"},
        )
        set_tags(self.catalog, [entry], [])
        self.assertEqual(folder.entry(uid).flags, ("\\Seen",))

    def test_set_tags_refused_before_any_change(self) -> None:
        """
        A folder with no letter left refuses, and no message of any folder
        changes.
        """
        bob = self.store.folder(OTHER)
        for i in range(25):
            bob.define_keywords([f"k{i}"])
        bob.set_flags(
            {uid: [f"k{i}" for i in range(25)] + ["Urgent"] for uid in bob.uids()}
        )
        entries = self.catalog.entries()
        before = [e.flags for e in entries]
        with self.assertRaises(KeywordLimit):
            set_tags(self.catalog, entries, ["brand-new"])
        self.assertEqual([e.flags for e in entries], before)

    def test_counts(self) -> None:
        """Per tag over every INBOX (spellings differing in case are one)."""
        self.store.folder(OTHER).set_flags({1: ["urgent"]})
        self.assertEqual(tag_counts(self.catalog), {"Urgent": 2, "later": 1})

    def test_rename_everywhere(self) -> None:
        """
        Every folder with the keyword calls it by the new name; no file is
        renamed (the letter stays); a cleaned name is used.
        """
        names = sorted(os.listdir(self.root / USER / "new"))
        rename_tag(self.store, "Urgent", "Very urgent!")
        self.assertEqual(self.flags(), [("Very~urgent",), ("later",)])
        self.assertEqual(self.flags(OTHER), [("Very~urgent",)])
        self.assertEqual(self.flags(USER, "Archive"), [("Very~urgent",)])
        self.assertEqual(sorted(os.listdir(self.root / USER / "new")), names)

    def test_rename_refusals(self) -> None:
        """No such tag, a taken name, an invalid one: refused, nothing renamed."""
        with self.assertRaises(NoSuchKeyword) as missing:
            rename_tag(self.store, "nope", "x")
        self.assertEqual(str(missing.exception), "tag not found: nope")
        with self.assertRaises(KeywordExists) as taken:
            rename_tag(self.store, "Urgent", "LATER")
        self.assertEqual(str(taken.exception), "tag already exists: LATER")
        with self.assertRaises(TagError):
            rename_tag(self.store, "Urgent", "!!!")
        self.assertEqual(self.flags(OTHER), [("Urgent",)])

    def test_rename_case_only(self) -> None:
        """Only the case changes: allowed."""
        rename_tag(self.store, "Urgent", "URGENT")
        self.assertEqual(self.flags(OTHER), [("URGENT",)])

    def test_delete(self) -> None:
        """The tag leaves every message of every folder; its letter is free."""
        delete_tag(self.store, "urgent")
        self.assertEqual(self.flags(), [(), ("later",)])
        self.assertEqual(self.flags(OTHER), [()])
        self.assertEqual(self.store.folder(OTHER).keywords(), [])
        with self.assertRaises(NoSuchKeyword):
            delete_tag(self.store, "urgent")
