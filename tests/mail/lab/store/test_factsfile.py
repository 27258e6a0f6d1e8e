"""
Tests for L{twisted_netlab.mail.lab.store.factsfile}: the search facts kept in the
state directory across restarts, never served for a file that changed, a
broken or foreign file started afresh; and the keeper that parses delivered
mail before anyone searches.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import sqlite3
import ssl
import tempfile
from pathlib import Path
from typing import Any

import pytest_twisted
from twisted.internet.task import Clock
from twisted.internet.threads import deferToThread
from twisted.logger import ILogObserver, globalLogPublisher
from twisted.trial.unittest import SynchronousTestCase
from zope.interface import implementer

from twisted_netlab.mail.lab.service import MailLab
from twisted_netlab.mail.lab.store.catalog import Catalog
from twisted_netlab.mail.lab.store.factsfile import (
    FILE_NAME,
    FORMAT,
    FactsFile,
    FactsKeeper,
    decode,
    encode,
)
from twisted_netlab.mail.lab.store.maildir import MailStore
from twisted_netlab.mail.lab.store.search import FactsCache, facts_cache, parse_facts

ANN = "ann@example.test"
ALICE = "alice@example.test"


def message(word: str) -> bytes:
    """A message whose subject and body only say C{word} once decoded."""
    import base64

    body = base64.encodebytes(f"the word is {word}\n".encode())
    return (
        f"From: =?utf-8?q?J=C3=BCrgen?= <j@example.test>\r\nTo: {ANN}\r\n"
        f"Subject: =?utf-8?b?{base64.b64encode(word.encode()).decode()}?=\r\n"
        "Date: Tue, 01 Dec 2026 10:00:00 +0100\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\n"
    ).encode() + body


@implementer(ILogObserver)
class _Log:
    """The text of every log event while installed."""

    def __init__(self, case: SynchronousTestCase) -> None:
        self.lines: list[str] = []
        globalLogPublisher.addObserver(self)
        case.addCleanup(globalLogPublisher.removeObserver, self)

    def __call__(self, event: dict[str, Any]) -> None:
        from twisted.logger import formatEvent

        if "facts file" in event.get("log_format", ""):
            self.lines.append(formatEvent(event))


class EncodingTests(SynchronousTestCase):
    def test_round_trip(self) -> None:
        """
        A row's text gives back facts equal to those encoded: addresses,
        the aware date, folded headers and body.
        """
        facts = parse_facts(message("café"))
        again = decode(encode(facts))
        self.assertEqual(again, facts)
        self.assertEqual(again.from_ and again.from_.name, "Jürgen")
        self.assertIsNotNone(again.date and again.date.tzinfo)

    def test_undecodable_text(self) -> None:
        """
        8-bit header bytes, and text with surrogate escapes (undecodable
        bytes), are stored as text SQLite takes (UTF-8) and read back as
        they were.
        """
        import dataclasses

        data = b"Subject: caf\xe9 \xff\r\nX-Raw: \xc3\r\n\r\nbody\r\n"
        facts = dataclasses.replace(parse_facts(data), snippet="bad \udcff byte")
        text = encode(facts)
        text.encode("utf-8")
        self.assertEqual(decode(text), facts)


class RestartTests(SynchronousTestCase):
    """
    A keeper (in the caller, no thread) over a store, stopped and started
    again with a cache of its own each time, as a restarted lab is.
    """

    def setUp(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="netlab-facts-"))
        self.addCleanup(shutil.rmtree, self.root, True)
        self.path = self.root / FILE_NAME
        self.store = MailStore(self.root / "mail")
        self.store.ensure_user(ANN)
        for word in ("alpha", "beta", "gamma"):
            self.store.deliver(ANN, message(word))
        self.log = _Log(self)
        self.now = 0.0

    def run_lab(self) -> tuple[Catalog, FactsCache, FactsKeeper]:
        """
        Start a catalog and keeper over the store (a new store object and a
        new cache, as a new process has), warm up, and return them; the
        keeper is stopped at cleanup.
        """
        store = MailStore(self.root / "mail")
        cache = FactsCache(clock=lambda: self.now)
        catalog = Catalog(store, Clock(), cache=cache)
        keeper = FactsKeeper(store, self.path, Clock(), cache, quiet=0)
        keeper.start(threaded=False)
        self.addCleanup(keeper.stop)
        catalog.warm_up(keeper)
        return catalog, cache, keeper

    def words(self, catalog: Catalog, query: str) -> list[str]:
        from twisted_netlab.mail.lab.store.search import parse_query

        return [e.facts.subject for e in catalog.search(parse_query(query))]

    def test_survive_restart(self) -> None:
        """
        The first run parses each message once; a second run over the same
        state loads every one from the file and parses none, even for a
        search that decodes.
        """
        _, cache, keeper = self.run_lab()
        self.assertEqual((cache.parses, keeper.parsed, keeper.loaded), (3, 3, 0))
        keeper.stop()
        catalog, cache, keeper = self.run_lab()
        self.assertEqual((cache.parses, keeper.loaded), (0, 3))
        self.assertEqual(self.words(catalog, "beta"), ["beta"])
        self.assertEqual(cache.parses, 0)
        self.assertTrue(keeper.status()["Ready"])
        self.assertEqual(self.log.lines, [])

    def test_search_before_warm_up_reads_the_file(self) -> None:
        """
        A search that comes before the keeper has loaded anything finds the
        facts in the file itself (one row read each), parsing nothing.
        """
        _, _, keeper = self.run_lab()
        keeper.stop()
        store = MailStore(self.root / "mail")
        cache = FactsCache()
        keeper = FactsKeeper(store, self.path, Clock(), cache, quiet=0)
        keeper.start(threaded=False)
        self.addCleanup(keeper.stop)
        catalog = Catalog(store, Clock(), cache=cache)
        self.assertEqual(self.words(catalog, "gamma"), ["gamma"])
        self.assertEqual((cache.parses, keeper.loaded), (0, 3))

    def rewrite(self, word: str, new_word: str) -> None:
        """
        Rewrite the file of the message saying C{word} in place, same name
        and same size, saying C{new_word} (a later modification time).
        """
        folder = self.store.folder(ANN)
        for uid in folder.uids():
            data = folder.read(uid)
            if parse_facts(data).subject == word:
                entry = folder.entry(uid)
                path = folder.path / entry.subdir / entry.name
                new = message(new_word)
                self.assertEqual(len(new), len(data))
                stat = path.stat()
                path.write_bytes(new)
                os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
                return
        self.fail(f"no message says {word}")

    def test_rewritten_behind_the_labs_back(self) -> None:
        """
        A file rewritten between runs (same name, same size) is parsed
        again: its old facts are not served, the others still come from
        the file.
        """
        _, _, keeper = self.run_lab()
        keeper.stop()
        self.rewrite("alpha", "delta")
        catalog, cache, keeper = self.run_lab()
        self.assertEqual((cache.parses, keeper.loaded), (1, 2))
        self.assertEqual(self.words(catalog, "alpha"), [])
        self.assertEqual(self.words(catalog, "delta"), ["delta"])

    def test_rewritten_while_running(self) -> None:
        """
        Facts already in memory are not served either once the file
        changed: a search a second later (the cache's recheck interval)
        parses it again.
        """
        catalog, cache, _ = self.run_lab()
        self.assertEqual(self.words(catalog, "alpha"), ["alpha"])
        self.rewrite("alpha", "delta")
        self.now += cache.recheck
        self.assertEqual(self.words(catalog, "alpha"), [])
        self.assertEqual(self.words(catalog, "delta"), ["delta"])
        self.assertEqual(cache.parses, 4)

    def test_removed_message(self) -> None:
        """
        A message removed between runs breaks nothing: the others load, its
        row is dropped from the file.
        """
        _, _, keeper = self.run_lab()
        keeper.stop()
        folder = self.store.folder(ANN)
        gone = folder.entry(folder.uids()[0])
        (folder.path / gone.subdir / gone.name).unlink()
        catalog, cache, keeper = self.run_lab()
        self.assertEqual((cache.parses, keeper.loaded), (0, 2))
        self.assertEqual(sorted(self.words(catalog, "")), ["beta", "gamma"])
        keys = {key for key, _, _ in keeper.file.rows(str(folder.path))}
        self.assertEqual(len(keys), 2)
        self.assertNotIn(gone.key, keys)

    def test_corrupt_file(self) -> None:
        """
        A file SQLite cannot read is logged in one line and started afresh:
        every message is parsed again and kept in the new file.
        """
        _, _, keeper = self.run_lab()
        keeper.stop()
        self.path.write_bytes(b"this is not a database\n" * 200)
        catalog, cache, keeper = self.run_lab()
        self.assertEqual(cache.parses, 3)
        self.assertEqual(self.words(catalog, "beta"), ["beta"])
        [line] = self.log.lines
        self.assertIn("cannot be read", line)
        self.assertIn("starting it afresh", line)
        keeper.stop()
        _, cache, keeper = self.run_lab()
        self.assertEqual((cache.parses, keeper.loaded), (0, 3))

    def test_other_format(self) -> None:
        """
        A file of another format version is rebuilt (logged in one line),
        never read as facts of this one.
        """
        _, _, keeper = self.run_lab()
        keeper.stop()
        with sqlite3.connect(self.path) as connection:
            connection.execute(f"PRAGMA user_version = {FORMAT + 1}")
        connection.close()
        _, cache, keeper = self.run_lab()
        self.assertEqual((cache.parses, keeper.loaded), (3, 0))
        [line] = self.log.lines
        self.assertIn(f"of format {FORMAT + 1}, not {FORMAT}: rebuilt", line)
        keeper.stop()
        with sqlite3.connect(self.path) as connection:
            [(version,)] = connection.execute("PRAGMA user_version").fetchall()
        connection.close()
        self.assertEqual(version, FORMAT)

    def test_file_cannot_be_made(self) -> None:
        """
        Where the file cannot be made at all (a directory is in its way),
        one line says so and the facts are kept in memory only.
        """
        self.path.mkdir()
        catalog, _, keeper = self.run_lab()
        self.assertEqual(self.words(catalog, "beta"), ["beta"])
        self.assertFalse(keeper.status()["Kept"])
        self.assertEqual(len(self.log.lines), 2)
        self.assertIn("facts are kept in memory only", self.log.lines[-1])

    def test_delivered_mail_parsed_without_a_search(self) -> None:
        """
        A message the store reports as new is parsed by the keeper, without
        a search, and kept in the file.
        """
        catalog, cache, keeper = self.run_lab()
        catalog.store.deliver(ANN, message("epsilon"))
        self.assertEqual(keeper.parsed, 4)
        self.assertEqual(cache.parses, 4)
        self.assertEqual(self.words(catalog, "epsilon"), ["epsilon"])
        self.assertEqual(cache.parses, 4)
        keeper.stop()
        _, cache, keeper = self.run_lab()
        self.assertEqual((cache.parses, keeper.loaded), (0, 4))

    def test_delivery_waits_for_quiet(self) -> None:
        """
        Parsing waits until no delivery came for C{quiet} seconds (its
        clock), so that intake never shares the CPU with it.
        """
        now = [100.0]
        waited: list[float] = []

        class Keeper(FactsKeeper):
            def _pause(self, seconds: float) -> bool:
                waited.append(seconds)
                now[0] += seconds
                return False

        cache = FactsCache()
        keeper = Keeper(
            self.store, self.path, Clock(), cache, quiet=0.25, clock=lambda: now[0]
        )
        keeper.start(threaded=False)
        self.addCleanup(keeper.stop)
        self.store.deliver(ANN, message("zeta"))
        self.assertEqual(waited, [0.25])
        self.assertEqual(keeper.parsed, 1)

    def test_loading(self) -> None:
        """
        While the start-up facts are read from the file, L{loading} gives a
        Deferred that fires once they are all read (before the missing ones
        are parsed); otherwise None.
        """
        _, _, keeper = self.run_lab()
        keeper.stop()
        self.rewrite("alpha", "delta")
        seen: list[Any] = []

        class Keeper(FactsKeeper):
            def _load_folder(self, *args: Any) -> list[int]:
                d = self.loading()
                seen.append(d)
                missing = super()._load_folder(*args)
                seen.append(d is not None and d.called)
                seen.append(self.loading() is not None)
                return missing

            def _keep(self, folder: Any, uid: int) -> None:
                seen.append(("parse", d.called if (d := seen[0]) else None))
                super()._keep(folder, uid)

        store = MailStore(self.root / "mail")
        cache = FactsCache()
        keeper = Keeper(store, self.path, Clock(), cache, quiet=0)
        keeper.start(threaded=False)
        self.addCleanup(keeper.stop)
        self.assertIsNone(keeper.loading())
        Catalog(store, Clock(), cache=cache).warm_up(keeper)
        self.assertIsNotNone(seen[0])
        # Not yet fired after the rows are read, fired before the parse.
        self.assertEqual(seen[1:], [False, True, ("parse", True)])
        self.assertIsNone(keeper.loading())


class FactsFileTests(SynchronousTestCase):
    def test_only_same_stamp(self) -> None:
        """
        A row is returned only for the stamp (size, mtime) it was made of,
        and only for folders under the file's root.
        """
        root = Path(tempfile.mkdtemp(prefix="netlab-facts-"))
        self.addCleanup(shutil.rmtree, root, True)
        facts_file = FactsFile(root / FILE_NAME, str(root / "mail"))
        self.assertTrue(facts_file.open())
        self.addCleanup(facts_file.close)
        facts = parse_facts(message("eta"))
        key = (str(root / "mail" / ANN), "1.M1P1")
        facts_file.write([(key, (100, 5), facts)])
        self.assertEqual(facts_file.load(key, (100, 5)), facts)
        self.assertIsNone(facts_file.load(key, (100, 6)))
        self.assertIsNone(facts_file.load(key, (101, 5)))
        self.assertIsNone(facts_file.load(("/elsewhere/x", "1.M1P1"), (100, 5)))


async def _send(lab: MailLab, data: bytes) -> None:
    def send() -> None:
        context = ssl.create_default_context(cafile=str(lab.ca_path))
        with smtplib.SMTP("127.0.0.1", lab.smtp_port, timeout=30) as smtp:
            smtp.starttls(context=context)
            smtp.sendmail("sender@example.org", [ALICE], data)

    await deferToThread(send)


def _lab(state: Path) -> MailLab:
    from twisted.internet import reactor

    return MailLab(
        reactor,
        state=state,
        domains=["example.test"],
        users={ALICE: "alice-password"},
        http=("tcp:0:interface=127.0.0.1",),
    )


@pytest_twisted.ensureDeferred
async def test_lab_parses_smtp_mail_and_restarts_warm(tmp_path: Path) -> None:
    """
    Mail taken in over SMTP (smtplib) is parsed by the lab's keeper thread
    without any search; a lab started again over the same state loads the
    facts from its file and answers a search, the HTTP API's info and IMAP
    SEARCH (imaplib) without parsing anything.
    """
    import imaplib

    lab = _lab(tmp_path / "lab")
    await lab.start()
    try:
        await _send(lab, message("theta"))
        await lab.facts.settled()
        status = lab.api.info()["SearchFacts"]
        assert status["Parsed"] == 1
        assert status["Ready"] and status["Kept"]
        [entry] = lab.catalog.entries()
        key = (str(entry.folder.path), entry.key)
        assert facts_cache.peek(key, entry.folder.stamp(entry.uid)) is not None
    finally:
        await lab.stop()
    facts_cache.clear()
    parses = facts_cache.parses
    lab = _lab(tmp_path / "lab")
    await lab.start()
    try:
        await lab.facts.settled()
        assert lab.facts.status()["Loaded"] == 1
        assert lab.facts.status()["Parsed"] == 0
        assert [m.subject for m in lab.search("theta")] == ["theta"]

        def imap_search() -> list[bytes]:
            context = ssl.create_default_context(cafile=str(lab.ca_path))
            client = imaplib.IMAP4("127.0.0.1", lab.imap_port, timeout=30)
            try:
                client.starttls(context)
                client.login(ALICE, "alice-password")
                client.select("INBOX", readonly=True)
                _, found = client.uid("SEARCH", "CHARSET", "UTF-8", "BODY", "theta")
                _, missing = client.uid("SEARCH", "BODY", "alpha")
                return [found[0], missing[0]]
            finally:
                client.logout()

        found, missing = await deferToThread(imap_search)
        assert found == str(entry.uid).encode()
        assert missing == b""
        assert facts_cache.parses == parses
    finally:
        await lab.stop()


@pytest_twisted.ensureDeferred
async def test_http_search_waits_for_loading(tmp_path: Path) -> None:
    """
    An HTTP search that comes while the lab reads its facts file is
    answered once that is done (from memory), not before; other requests
    are answered meanwhile.
    """
    import http.client
    import json

    from twisted.internet.defer import Deferred

    lab = _lab(tmp_path / "lab")
    await lab.start()
    try:
        lab.store.deliver(ALICE, message("iota"))
        loaded: Deferred[None] = Deferred()
        asked: Deferred[None] = Deferred()

        def loading() -> Deferred[None]:
            asked.callback(None)
            return loaded

        lab.api.facts_loading = loading

        def get(path: str) -> Any:
            connection = http.client.HTTPConnection(
                "127.0.0.1", lab.http_port, timeout=30
            )
            try:
                connection.request("GET", path)
                response = connection.getresponse()
                return response.status, json.loads(response.read())
            finally:
                connection.close()

        searching = deferToThread(get, "/api/v1/search?query=iota")
        await asked
        status, info = await deferToThread(get, "/api/v1/info")
        assert status == 200 and "SearchFacts" in info
        assert not searching.called
        loaded.callback(None)
        status, page = await searching
        assert status == 200
        assert [m["Subject"] for m in page["messages"]] == ["iota"]
    finally:
        await lab.stop()
