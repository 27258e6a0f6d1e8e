"""
Tests for L{twisted_netlab.tap.mailpit}: the relay, webhook and tag options
of C{twistd netlab-mail} and C{twistd netlab}, how they reach the lab, and
their one-line refusals.
"""

from __future__ import annotations

from twisted.internet.testing import MemoryReactor
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from tests.scratch import fresh_path
from twisted_netlab.mail.lab.store.tags import TagRule
from twisted_netlab.tap import mail, suite

BASE = ["--domain", "example.test"]


class MailpitOptionsTests(SynchronousTestCase):
    def parse(
        self, *args: str, options: mail.LabOptions | None = None
    ) -> mail.LabOptions:
        options = options or mail.Options()
        options.parseOptions(["--state", str(fresh_path(self)), *BASE, *args])
        return options

    def refusal(self, *args: str) -> str:
        with self.assertRaises(usage.UsageError) as caught:
            self.parse(*args)
        text = str(caught.exception)
        self.assertNotIn("\n", text)
        return text

    def test_defaults(self) -> None:
        """
        Nothing is relayed, no webhook, no rules, the automatic tags on.
        """
        arguments = self.parse()["mailpit"]
        self.assertEqual(
            arguments,
            {
                "relay": None,
                "webhook": None,
                "webhook_limit": 1,
                "tag_rules": [],
                "tags_disable": [],
            },
        )

    def test_values_reach_the_lab(self) -> None:
        """
        Every option, in both taps, reaches the MailLab: the relay with its
        password read from the file, the forwards, the webhook and its
        limit, the repeatable --tag rules and --tags-disable.
        """
        secret = fresh_path(self).with_suffix(".password")
        secret.write_text("s3cret\nignored\n")
        cafile = fresh_path(self).with_suffix(".pem")
        cafile.write_text("not read here\n")
        args = (
            "--relay", "smtp.example.org:2525",
            "--relay-tls", "tls",
            "--relay-cafile", str(cafile),
            "--relay-user", "lab",
            "--relay-password-file", str(secret),
            "--relay-allow", r"@example\.org$",
            "--forward", "ops@example.org",
            "--forward", "qa@example.org",
            "--webhook", "http://127.0.0.1:9000/hook",
            "--webhook-limit", "5",
            "--tag", "invoice=subject:invoice",
            "--tag", "a,b=from:shop@example.org",
            "--tags-disable", "x-tags,plus-addresses",
        )  # fmt: skip
        for options in (mail.Options(), suite.Options()):
            parsed = self.parse(*args, options=options)
            lab = mail.make_lab(parsed, MemoryReactor(), "netlab-mail")
            relay = lab.outbox.relay
            assert relay is not None
            self.assertEqual(relay.config.server, "smtp.example.org:2525")
            self.assertEqual(
                (relay.config.tls, relay.config.user, relay.config.password),
                ("tls", "lab", "s3cret"),
            )
            self.assertEqual(
                relay.config.forward, ("ops@example.org", "qa@example.org")
            )
            self.assertTrue(relay.config.admits("x@example.org"))
            self.assertFalse(relay.config.admits("x@example.com"))
            assert lab.outbox.webhook is not None
            self.assertEqual(parsed["mailpit"]["webhook_limit"], 5)
            tagger = lab.store.tagger
            assert tagger is not None
            self.assertEqual(
                [rule.tags for rule in tagger.rules], [("invoice",), ("a", "b")]
            )
            self.assertTrue(all(isinstance(r, TagRule) for r in tagger.rules))
            self.assertFalse(tagger.x_tags)
            self.assertFalse(tagger.plus_addresses)
            self.assertNotIn("s3cret", repr(relay.config))

    def test_refusals(self) -> None:
        """
        Bad values and contradictions end with one line naming the option.
        """
        missing = str(fresh_path(self) / "missing")
        cases = [
            (("--forward", "ops@example.org"), "--forward needs --relay"),
            (("--relay", "h:25", "--relay-tls", "ssl"), "--relay-tls"),
            (("--relay", "h:25", "--relay-user", "u"), "--relay-password-file"),
            (("--relay", "h:25", "--relay-cafile", missing), "--relay-cafile"),
            (("--relay", "h:25", "--relay-allow", "("), "--relay-allow"),
            (("--webhook", "ftp://x/"), "--webhook"),
            (("--webhook-limit", "-1"), "--webhook-limit"),
            (("--tag", "no-query"), "--tag"),
            (("--tags-disable", "colours"), "--tags-disable"),
        ]
        for args, said in cases:
            with self.subTest(args=args):
                self.assertIn(said, self.refusal(*args))
