"""
The lab's facts file: the search facts (L{SearchFacts}) of every message the
lab has parsed, kept in C{STATE/search-facts.sqlite3} (SQLite, WAL), so that
a lab restarted over a store it has seen answers its first search without
parsing the store again.

A row is keyed by the message's folder (its path under the store) and
Maildir key, and holds the size and modification time (nanoseconds) of the
file it was made of: it is used only while the file still has both, so a
message rewritten behind the lab's back is parsed again, never served
stale; rows of messages that are gone are dropped when the lab next starts.
The file records the format of its rows (C{PRAGMA user_version},
L{FORMAT}): a file of another format, or one SQLite cannot read, is logged
in one line and started afresh. It is a cache: deleting it costs one parse
of every message.

L{FactsKeeper} owns the file for a running lab. Everything it does to the
file, and all its parsing, runs in one thread of its own, never in the
reactor thread (only the look-up of one row on a search's cache miss does):
it loads the facts of the store's messages at start-up and parses only the
missing ones, and it parses each message delivered while the lab runs once
deliveries have paused for L{QUIET} seconds, so that SMTP intake never
shares the CPU with parsing and the first search after a delivery finds its
facts made.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from twisted_netlab.mail.lab.store.maildir import (
    Folder,
    FolderChange,
    MailStore,
    MailStoreError,
)
from twisted_netlab.mail.lab.store.parsed import Address
from twisted_netlab.mail.lab.store.search import FactsCache, SearchFacts, Stamp

log = Logger()

#: The facts file's name in the state directory.
FILE_NAME = "search-facts.sqlite3"
#: The format of the rows (L{encode}); a file of another one is rebuilt.
FORMAT = 1
#: Marks the file as ours (C{PRAGMA application_id}): "NLFT".
APPLICATION_ID = 0x4E4C4654
#: Parse delivered messages once no delivery came for this many seconds.
QUIET = 0.25
#: Write parsed facts to the file in transactions of at most this many.
BATCH = 256

_SCHEMA = """
CREATE TABLE facts (
    folder TEXT NOT NULL,
    key TEXT NOT NULL,
    size INTEGER NOT NULL,
    mtime INTEGER NOT NULL,
    facts TEXT NOT NULL,
    PRIMARY KEY (folder, key)
)
"""

FactsKey = tuple[str, str]


def _address(value: Address | None) -> list[str] | None:
    return None if value is None else [value.name, value.address]


def _addresses(values: Iterable[Address]) -> list[list[str]]:
    return [[a.name, a.address] for a in values]


def _unaddresses(values: list[list[str]]) -> tuple[Address, ...]:
    if not values:
        return ()
    return tuple([Address(name, address) for name, address in values])


def encode(facts: SearchFacts) -> str:
    """
    The row text of C{facts}: a JSON array of its fields (L{FORMAT} 1).
    """
    return json.dumps(
        [
            _address(facts.from_),
            _addresses(facts.to),
            _addresses(facts.cc),
            _addresses(facts.bcc),
            _addresses(facts.reply_to),
            facts.subject,
            facts.message_id,
            facts.date.isoformat() if facts.date is not None else None,
            facts.snippet,
            facts.attachment_count,
            facts.inline_count,
            facts.size,
            facts.headers_folded,
            facts.body_folded,
            facts.attachment_names_folded,
            facts.addresses_folded,
            facts.subject_folded,
            facts.message_id_folded,
        ],
        # ASCII: text the email package decoded with surrogate escapes stays
        # valid, as SQLite wants UTF-8.
        separators=(",", ":"),
    )


def decode(text: str) -> SearchFacts:
    """
    The facts of a row's text (L{encode}).

    @raise ValueError: it is not one (also TypeError, KeyError).
    """
    (
        from_,
        to,
        cc,
        bcc,
        reply_to,
        subject,
        message_id,
        date,
        snippet,
        attachment_count,
        inline_count,
        size,
        headers,
        body,
        attachment_names,
        addresses,
        subject_folded,
        message_id_folded,
    ) = json.loads(text)
    return SearchFacts(
        from_=Address(*from_) if from_ is not None else None,
        to=_unaddresses(to),
        cc=_unaddresses(cc),
        bcc=_unaddresses(bcc),
        reply_to=_unaddresses(reply_to),
        subject=subject,
        message_id=message_id,
        date=datetime.datetime.fromisoformat(date) if date is not None else None,
        snippet=snippet,
        attachment_count=attachment_count,
        inline_count=inline_count,
        size=size,
        headers_folded=tuple(map(tuple, headers)),
        body_folded=body,
        attachment_names_folded=attachment_names,
        addresses_folded=dict(addresses),
        subject_folded=subject_folded,
        message_id_folded=message_id_folded,
    )


class FactsFile:
    """
    The facts file at C{path} for the folders under the directory C{root}
    (the store's), whose paths its rows record relative to C{root}.

    L{open}, L{rows}, L{write} and L{forget} are for one thread at a time
    (the keeper's); L{load} may be called from any thread. Every SQLite
    error is logged in one line: at L{open}, the file is started afresh; a
    later one starts it afresh too, and if that fails the file is left
    alone for the rest of the run (facts are then kept in memory only).
    """

    def __init__(self, path: Path, root: str) -> None:
        self.path = path
        self.root = root.rstrip("/") + "/"
        self._writer: sqlite3.Connection | None = None
        self._reader: sqlite3.Connection | None = None
        self._read_lock = threading.Lock()

    @property
    def is_open(self) -> bool:
        return self._writer is not None

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, timeout=5.0, check_same_thread=False, isolation_level=None
        )
        connection.execute("PRAGMA busy_timeout = 5000")
        return connection

    def open(self) -> bool:
        """
        Open the file (made if missing; started afresh if it cannot be read
        or is of another format).

        @return: whether the file can be used.
        """
        try:
            self._writer = self._prepare()
        except (sqlite3.Error, OSError, ValueError) as e:
            self.close()
            log.warn(
                "facts file {path}: cannot be read ({error}): starting it afresh",
                path=str(self.path),
                error=_reason(e),
            )
            return self._afresh()
        return self._open_reader()

    def _prepare(self) -> sqlite3.Connection:
        connection = self._connect()
        try:
            application = connection.execute("PRAGMA application_id").fetchone()[0]
            version = connection.execute("PRAGMA user_version").fetchone()[0]
            tables = connection.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
            ).fetchone()[0]
            if tables and (application, version) != (APPLICATION_ID, FORMAT):
                connection.close()
                log.info(
                    "facts file {path}: of format {version}, not {wanted}: rebuilt",
                    path=str(self.path),
                    version=version if application == APPLICATION_ID else "unknown",
                    wanted=FORMAT,
                )
                _remove(self.path)
                connection = self._connect()
                tables = 0
            connection.execute("PRAGMA journal_mode = WAL")
            # A cache: a crash may lose the last transactions, never the file.
            connection.execute("PRAGMA synchronous = NORMAL")
            if not tables:
                with connection:
                    connection.execute("BEGIN")
                    connection.execute(_SCHEMA)
                    connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
                    connection.execute(f"PRAGMA user_version = {FORMAT}")
            connection.execute("SELECT count(*) FROM facts WHERE 0").fetchall()
        except BaseException:
            connection.close()
            raise
        return connection

    def _afresh(self) -> bool:
        self.close()
        try:
            _remove(self.path)
            self._writer = self._prepare()
        except (sqlite3.Error, OSError, ValueError) as e:
            self.close()
            log.warn(
                "facts file {path}: cannot be made ({error}): facts are kept in "
                "memory only",
                path=str(self.path),
                error=_reason(e),
            )
            return False
        return self._open_reader()

    def _open_reader(self) -> bool:
        try:
            reader = self._connect()
            reader.execute("PRAGMA query_only = ON")
        except sqlite3.Error as e:
            return self._failed(e)
        with self._read_lock:
            self._reader = reader
        return True

    def _failed(self, error: BaseException) -> bool:
        log.warn(
            "facts file {path}: {error}: starting it afresh",
            path=str(self.path),
            error=_reason(error),
        )
        return self._afresh()

    def close(self) -> None:
        with self._read_lock:
            reader, self._reader = self._reader, None
        for connection in (reader, self._writer):
            if connection is not None:
                with contextlib.suppress(sqlite3.Error):
                    connection.close()
        self._writer = None

    def _relative(self, folder: str) -> str | None:
        if not folder.startswith(self.root):
            return None
        return folder[len(self.root) :]

    def load(self, key: FactsKey, stamp: Stamp) -> SearchFacts | None:
        """
        The facts of C{key} if its row was made of a file with C{stamp}.
        """
        folder = self._relative(key[0])
        if folder is None or not _storable(folder, key[1]):
            return None
        with self._read_lock:
            if self._reader is None:
                return None
            try:
                row = self._reader.execute(
                    "SELECT size, mtime, facts FROM facts WHERE folder = ? AND key = ?",
                    (folder, key[1]),
                ).fetchone()
            except sqlite3.Error:
                return None
        if row is None or (row[0], row[1]) != stamp:
            return None
        try:
            return decode(row[2])
        except (ValueError, TypeError, KeyError):
            return None

    def rows(self, folder: str) -> Iterator[tuple[str, Stamp, str]]:
        """
        (Maildir key, stamp, row text) of each row of C{folder} (its path).
        """
        relative = self._relative(folder)
        if relative is None or self._writer is None:
            return
        try:
            cursor = self._writer.execute(
                "SELECT key, size, mtime, facts FROM facts WHERE folder = ? "
                "ORDER BY key",
                (relative,),
            )
            for key, size, mtime, text in cursor:
                yield key, (size, mtime), text
        except sqlite3.Error as e:
            self._failed(e)

    def write(
        self,
        rows: Iterable[tuple[FactsKey, Stamp, SearchFacts]],
        gone: Iterable[FactsKey] = (),
    ) -> None:
        """
        Keep C{rows} (replacing older rows of their keys) and drop the rows
        of C{gone}, in one transaction.
        """
        if self._writer is None:
            return
        values = []
        for (folder, key), (size, mtime), facts in rows:
            relative = self._relative(folder)
            if relative is not None and _storable(relative, key):
                values.append((relative, key, size, mtime, encode(facts)))
        dropped = []
        for folder, key in gone:
            relative = self._relative(folder)
            if relative is not None and _storable(relative, key):
                dropped.append((relative, key))
        if not values and not dropped:
            return
        try:
            with self._writer:
                self._writer.execute("BEGIN")
                self._writer.executemany(
                    "INSERT OR REPLACE INTO facts VALUES (?, ?, ?, ?, ?)", values
                )
                self._writer.executemany(
                    "DELETE FROM facts WHERE folder = ? AND key = ?", dropped
                )
        except sqlite3.Error as e:
            self._failed(e)


def _storable(*texts: str) -> bool:
    """Whether SQLite can store C{texts} (a file name may not be UTF-8)."""
    try:
        for text in texts:
            text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _reason(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.splitlines()[0] if text else type(error).__name__


def _remove(path: Path) -> None:
    for name in (path.name, path.name + "-wal", path.name + "-shm"):
        (path.parent / name).unlink(missing_ok=True)


class _Stopping(Exception):
    pass


class FactsKeeper:
    """
    Keeps the search facts of C{store}'s messages in C{cache} and in the
    facts file at C{path}, attached to C{cache} as the store's
    L{FactsBacking}.

    L{start} opens the file and starts the keeper's thread; L{warm} loads
    the facts of the given messages from the file and parses the missing
    ones; messages the store reports as new are parsed once no delivery came
    for C{quiet} seconds. Without a thread (C{threaded=False}, for
    single-threaded tests), the work is done at once, in the caller.

    @param reactor: where L{settled} fires (its C{callFromThread}).
    @param clock: the time for C{quiet} (monotonic seconds).
    """

    def __init__(
        self,
        store: MailStore,
        path: Path,
        reactor: Any,
        cache: FactsCache,
        *,
        quiet: float = QUIET,
        clock: Callable[[], float] = time.monotonic,
        name: str = "mail lab",
    ) -> None:
        self.store = store
        self.file = FactsFile(path, str(store.root))
        self.reactor = reactor
        self.cache = cache
        self.quiet = quiet
        self.clock = clock
        self.name = name
        #: messages whose facts were loaded from the file, and parsed by the
        #: keeper (this run)
        self.loaded = 0
        self.parsed = 0
        self._lock = threading.Lock()
        self._jobs: deque[tuple[str, Any]] = deque()
        self._writes: list[tuple[FactsKey, Stamp, SearchFacts]] = []
        self._pending = 0
        self._warming = False
        self._loading = False
        self._loaded: list[Deferred[None]] = []
        self._running = False
        self._started = False
        self._threaded = True
        self._pool: ThreadPool | None = None
        self._stopping = threading.Event()
        self._last_delivery = -float("inf")
        self._settled: list[Deferred[None]] = []

    # --- running --------------------------------------------------------------

    def start(self, *, threaded: bool = True) -> None:
        """
        Attach to the cache, listen to the store and open the file (in the
        keeper's thread, unless not C{threaded}).
        """
        if self._started:
            return
        self._started = True
        self._threaded = threaded
        self._stopping.clear()
        if threaded:
            self._pool = ThreadPool(1, 1, name=f"{self.name} search facts")
            self._pool.start()
        self.cache.attach(str(self.store.root), self)
        self.store.add_listener(self._store_changed)
        self._enqueue("open", None, 0)

    def stop(self) -> None:
        """
        Stop: work not done is dropped (what was parsed is written first),
        and the file is closed.
        """
        if not self._started:
            return
        self._started = False
        self.store.remove_listener(self._store_changed)
        self.cache.detach(str(self.store.root))
        self._stopping.set()
        if self._pool is not None:
            self._pool.stop()
            self._pool = None
        with self._lock:
            self._jobs.clear()
            self._pending = 0
            self._warming = self._loading = False
            self._running = False
        self.file.close()
        self._fire_loaded()
        self._fire_settled()

    def warm(self, messages: Iterable[tuple[Folder, int]]) -> None:
        """
        Make the facts of C{messages} (folder, UID) ready: from the file
        where it has them, else parsed.
        """
        items = list(messages)
        self._enqueue("warm", items, len(items))

    def _store_changed(self, address: str, mailbox: str, change: FolderChange) -> None:
        # Called in the delivery thread: only queue the work.
        if not change.new:
            return
        self._last_delivery = self.clock()
        self._enqueue("new", (address, mailbox, change.new), len(change.new))

    def _enqueue(self, kind: str, job: Any, count: int) -> None:
        with self._lock:
            if not self._started:
                return
            self._jobs.append((kind, job))
            self._pending += count
            if kind == "warm":
                self._warming = self._loading = True
            start = not self._running
            self._running = True
        if start:
            self._run()

    def _run(self) -> None:
        if self._pool is not None:
            self._pool.callInThread(self._drain)
        elif not self._threaded:
            self._drain()

    # --- the keeper's thread ----------------------------------------------------

    def _drain(self) -> None:
        try:
            while True:
                with self._lock:
                    if self._jobs and not self._stopping.is_set():
                        kind, job = self._jobs.popleft()
                    elif self._writes:
                        kind, job = "flush", None
                    else:
                        # Idle only once everything parsed is written.
                        self._running = False
                        break
                try:
                    getattr(self, f"_do_{kind}")(job)
                except _Stopping:
                    pass
                except Exception:
                    log.failure("{name}: keeping search facts failed", name=self.name)
        finally:
            self._settle()

    def _do_flush(self, job: None) -> None:
        self._flush()

    def _do_open(self, job: None) -> None:
        self.file.open()

    def _do_warm(self, items: list[tuple[Folder, int]]) -> None:
        started = time.monotonic()
        loaded, parsed = self.loaded, self.parsed
        try:
            by_folder: dict[str, tuple[Folder, dict[str, int]]] = {}
            for folder, uid in items:
                try:
                    key = folder.entry(uid).key
                except MailStoreError:
                    self._count_done(1)
                    continue
                by_folder.setdefault(str(folder.path), (folder, {}))[1][key] = uid
            missing = [
                (folder, self._load_folder(path, folder, uids))
                for path, (folder, uids) in by_folder.items()
            ]
            self._done_loading()
            for folder, uids in missing:
                for uid in uids:
                    self._keep(folder, uid)
            log.info(
                "{name}: search facts of {count} messages ready in {took:.1f} s "
                "({loaded} kept, {parsed} parsed)",
                name=self.name,
                count=len(items),
                took=time.monotonic() - started,
                loaded=self.loaded - loaded,
                parsed=self.parsed - parsed,
            )
        finally:
            self._done_loading()
            with self._lock:
                self._warming = False

    def _load_folder(
        self, path: str, folder: Folder, uids: dict[str, int]
    ) -> list[int]:
        """
        Read the folder's rows in one pass, oldest first: those of files as
        they are now go to the cache, those of messages gone are dropped.

        @return: the UIDs that had no row of their file as it is now.
        """
        missing = dict(uids)
        gone: list[FactsKey] = []
        for key, stamp, text in self.file.rows(path):
            uid = missing.get(key)
            if uid is None:
                if key not in uids:
                    gone.append((path, key))
                continue
            if self._stopping.is_set():
                raise _Stopping()
            try:
                if folder.stamp(uid) != stamp:
                    continue
                known = self.cache.peek((path, key), stamp) is not None
                if not known:
                    self.cache.put((path, key), decode(text), stamp)
            except (MailStoreError, ValueError, TypeError, KeyError):
                continue
            del missing[key]
            with self._lock:
                self.loaded += not known
                self._pending -= 1
        if gone:
            self.file.write((), gone)
        return list(missing.values())

    def _done_loading(self) -> None:
        with self._lock:
            if not self._loading:
                return
            self._loading = False
        if self._threaded and self._pool is not None:
            self.reactor.callFromThread(self._fire_loaded)
        else:
            self._fire_loaded()

    def _fire_loaded(self) -> None:
        with self._lock:
            if self._loading:
                return
            waiting, self._loaded = self._loaded, []
        for d in waiting:
            d.callback(None)

    def _count_done(self, count: int) -> None:
        with self._lock:
            self._pending -= count

    def _do_new(self, job: tuple[str, str, tuple[int, ...]]) -> None:
        address, mailbox, uids = job
        # Not even a look at the files while deliveries keep coming.
        self._wait_quiet()
        try:
            folder = self.store.folder(address, mailbox)
        except MailStoreError:
            self._count_done(len(uids))
            return
        for uid in uids:
            self._keep(folder, uid)

    def _keep(self, folder: Folder, uid: int) -> None:
        """
        Make the facts of one message ready (counted off the pending ones).
        """
        try:
            if self._stopping.is_set():
                raise _Stopping()
            path = str(folder.path)
            try:
                key = (path, folder.entry(uid).key)
                stamp = folder.stamp(uid)
            except MailStoreError:
                return
            if self.cache.peek(key, stamp) is not None:
                return
            facts = self.file.load(key, stamp)
            if facts is not None:
                self.cache.put(key, facts, stamp)
                with self._lock:
                    self.loaded += 1
                return
            self._wait_quiet()
            try:
                data = folder.read(uid)
            except MailStoreError:
                return
            facts = self.cache.make(data)
            self.cache.put(key, facts, stamp)
            with self._lock:
                self.parsed += 1
            self.save(key, stamp, facts)
            if len(self._writes) >= BATCH:
                self._flush()
        finally:
            with self._lock:
                self._pending -= 1

    def _wait_quiet(self) -> None:
        while True:
            wait = self._last_delivery + self.quiet - self.clock()
            if wait <= 0:
                return
            if self._pause(wait):
                raise _Stopping()

    def _pause(self, seconds: float) -> bool:
        """Wait C{seconds} (less if stopped); whether the keeper stops."""
        return self._stopping.wait(seconds)

    def _flush(self) -> None:
        with self._lock:
            writes, self._writes = self._writes, []
        if writes:
            self.file.write(writes)

    # --- FactsBacking ----------------------------------------------------------

    def load(self, key: FactsKey, stamp: Stamp) -> SearchFacts | None:
        facts = self.file.load(key, stamp)
        if facts is not None:
            with self._lock:
                self.loaded += 1
        return facts

    def save(self, key: FactsKey, stamp: Stamp, facts: SearchFacts) -> None:
        # Any thread: the keeper's thread writes it.
        with self._lock:
            if not self._started:
                return
            self._writes.append((key, stamp, facts))
            start = not self._running
            self._running = True
        if start:
            self._run()

    # --- what the lab tells of it ------------------------------------------------

    def status(self) -> dict[str, Any]:
        """
        The C{SearchFacts} field of C{/api/v1/info}.
        """
        with self._lock:
            pending = self._pending
            ready = not (self._running or self._jobs or self._writes or self._warming)
            return {
                "File": str(self.file.path),
                "Kept": self.file.is_open,
                "Loaded": self.loaded,
                "Parsed": self.parsed,
                "Pending": pending,
                "Ready": ready,
            }

    def loading(self) -> Deferred[None] | None:
        """
        While the keeper loads the start-up facts from its file (which
        takes less than parsing: a second for some 20,000 messages), a
        Deferred that fires in the reactor thread once it is done; else
        None. A search that waits for it reads every fact from memory
        instead of competing with the keeper for the same rows.
        """
        with self._lock:
            if not self._loading:
                return None
            d: Deferred[None] = Deferred()
            self._loaded.append(d)
            return d

    def settled(self) -> Deferred[None]:
        """
        A Deferred that fires (in the reactor thread) once the keeper has
        nothing left to do.
        """
        with self._lock:
            if not self._running and not self._jobs:
                return succeed(None)
            d: Deferred[None] = Deferred()
            self._settled.append(d)
            return d

    def _settle(self) -> None:
        if self._threaded and self._pool is not None:
            self.reactor.callFromThread(self._fire_settled)
        else:
            self._fire_settled()

    def _fire_settled(self) -> None:
        with self._lock:
            if self._running or self._jobs:
                return
            waiting, self._settled = self._settled, []
        for d in waiting:
            d.callback(None)


__all__ = [
    "FILE_NAME",
    "FORMAT",
    "FactsFile",
    "FactsKeeper",
    "decode",
    "encode",
]
