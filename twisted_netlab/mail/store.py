"""
Where fetched mail is saved, and what C{--new-only} remembers.

A L{MessageStore} writes whole messages byte for byte: to a Maildir (as
mail is delivered, in six system calls a message), to an mbox (with the
standard library's C{mailbox}) or as C{.eml} files.  A
L{FetchState} keeps, per account and mailbox, the UIDVALIDITY and the
highest UID saved, as getmail6 and mbsync do, so a rerun fetches only what
is new, and starts over when UIDVALIDITY changes.

L{save_messages} ties them together so that a message is never lost and
never saved twice, even when a run is killed:

  - before a batch is written, the state file lists its UIDs (a journal);
  - the messages are written, each synced to disk before it is visible
    (in a Maildir's C{new/}), and the directory or mbox synced after them;
  - only then does the state advance past them and the journal empty.

A run that finds a journal left behind, or a changed UIDVALIDITY, fetches
those messages again but first asks the store whether it already holds
each one (by size and SHA-256 of its content) and skips those it does.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet.threads import deferToThreadPool

from twisted_netlab.durable import (
    fsync_directory,
    maildir_name,
    replace_file,
    write_new_file,
)
from twisted_netlab.errors import LocalWriteFailed, ServerRefused, UsageProblem

if TYPE_CHECKING:
    from twisted_netlab.mail.fetch import FetchedMessage, IMAPSession, SearchQuery

SAVE_KINDS = ("maildir", "mbox", "eml")

#: Called as progress(messages_done, messages_total, bytes_done, bytes_total).
Progress = Callable[[int, int, int, int], None]


@dataclass(frozen=True)
class SaveTarget:
    """
    Where to save: C{kind} is C{maildir}, C{mbox} or C{eml}.
    """

    kind: str
    path: Path

    @classmethod
    def parse(cls, text: str) -> SaveTarget:
        """
        Parse C{maildir:DIR}, C{mbox:FILE} or C{eml:DIR}.

        @raise UsageProblem: anything else.
        """
        kind, sep, path = text.partition(":")
        if not sep or kind not in SAVE_KINDS or not path:
            raise UsageProblem(
                f"--save {text!r}: expected maildir:DIR, mbox:FILE or eml:DIR"
            )
        return cls(kind, Path(path).expanduser())

    def __str__(self) -> str:
        return f"{self.kind}:{self.path}"


@contextlib.contextmanager
def _writing(
    target: object, errors: tuple[type[Exception], ...] = (OSError,)
) -> Iterator[None]:
    """
    Turn file-system failures (and the other C{errors}, such as
    C{mailbox.Error}) into L{LocalWriteFailed}.
    """
    try:
        yield
    except errors as e:
        if isinstance(e, OSError):
            reason = e.strerror or str(e)
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                reason += " (the target is full)"
        else:
            reason = str(e) or type(e).__name__
        raise LocalWriteFailed(f"cannot write to {target}: {reason}") from None


def _check_writable(directory: Path) -> None:
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "Permission denied")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class MessageStore:
    """
    A place messages are saved to, byte for byte.

    L{add_all} writes messages; once L{sync} returns, everything written is
    on disk.  L{holds} says which messages (by the size and digest of their
    stored form, see L{digest}) the target held when it was opened.
    """

    #: How many messages are written at once (each write ends in an fsync,
    #: which waits for the disk; several waits overlap).
    writers = 1

    def __init__(self, target: SaveTarget) -> None:
        self.target = target
        self._index: dict[int, list[Callable[[], bytes]]] | None = None
        self._digests: dict[int, set[str]] = {}
        self._pool: ThreadPoolExecutor | None = None
        #: what a failure to write to the target is raised as
        self._errors: tuple[type[Exception], ...] = (OSError,)

    def add(self, message: FetchedMessage) -> None:
        """
        Write one message.

        @raise LocalWriteFailed: it could not be written.
        """
        raise NotImplementedError

    def add_all(
        self, messages: Sequence[FetchedMessage]
    ) -> tuple[set[int], LocalWriteFailed | None]:
        """
        Write C{messages}, L{writers} at a time: each writer writes one
        contiguous slice of them, in order.

        @return: the UIDs of those written, and the first failure if any (in
            the order of C{messages}); nothing after a failure in the same
            slice is written (with one writer: nothing after a failure).
        """
        if self.writers == 1 or len(messages) <= 1:
            return self._add_in_order(messages)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.writers, "netlab-store")
        # One task per writer rather than per message: per-message tasks
        # cost more in thread hand-offs (and GIL contention) than a write to
        # a fast disk does.
        size = -(-len(messages) // self.writers)
        futures = [
            self._pool.submit(self._add_in_order, messages[start : start + size])
            for start in range(0, len(messages), size)
        ]
        written: set[int] = set()
        failure: LocalWriteFailed | None = None
        for future in futures:
            done, error = future.result()
            written |= done
            if failure is None:
                failure = error
        return written, failure

    def _add_in_order(
        self, messages: Sequence[FetchedMessage]
    ) -> tuple[set[int], LocalWriteFailed | None]:
        written: set[int] = set()
        for message in messages:
            try:
                self.add(message)
            except LocalWriteFailed as e:
                return written, e
            written.add(message.uid)
        return written, None

    def sync(self) -> None:
        """
        Make everything written so far durable.
        """
        raise NotImplementedError

    def close(self) -> None:
        """
        Release the target.
        """
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def stored_form(self, data: bytes) -> bytes:
        """
        C{data} as this store gives it back.
        """
        return data

    def digest(self, data: bytes) -> tuple[int, str]:
        """
        The size and SHA-256 of C{data}'s stored form.
        """
        stored = self.stored_form(data)
        return len(stored), _sha256(stored)

    def _stored(self) -> Iterable[tuple[int, Callable[[], bytes]]]:
        """
        The size of each stored message, and how to read it.
        """
        raise NotImplementedError

    def holds(self, digests: Iterable[tuple[int, str]]) -> set[str]:
        """
        Which of these (size, digest) pairs the target held when this store
        first looked (the first call lists it; messages are read only when
        their size matches).
        """
        with _writing(self.target, self._errors):
            if self._index is None:
                self._index = {}
                for size, read in self._stored():
                    self._index.setdefault(size, []).append(read)
            found = set()
            for size, digest in digests:
                if size not in self._digests:
                    self._digests[size] = {
                        _sha256(read()) for read in self._index.get(size, [])
                    }
                if digest in self._digests[size]:
                    found.add(digest)
            return found


class MaildirStore(MessageStore):
    """
    A Maildir, written as new mail is delivered (the Maildir protocol: each
    message is created under a unique name in C{tmp/}, written, synced,
    linked into C{new/} and unlinked from C{tmp/}), in six system calls.

    C{mailbox.Maildir.add} does the same in thirteen (it stats the name,
    opens the file twice, asks for the host name each time, ...), which cost
    a 5,000-message fetch to tmpfs about a fifth of its time (see
    docs/benchmarks-mail.rst).  The names are the ones C{mailbox} makes
    (L{maildir_name}), a name is never reused (C{O_EXCL} in C{tmp/}, a link
    that fails rather than replace in C{new/}), and a message is in C{new/}
    only once it is whole and on disk: C{mailbox}, mutt and Dovecot read the
    result (C{tests/mail/test_store.py}, C{tests/interop}).
    """

    writers = 8

    def __init__(self, target: SaveTarget) -> None:
        super().__init__(target)
        with _writing(target):
            for sub in ("tmp", "new", "cur"):
                (target.path / sub).mkdir(parents=True, exist_ok=True)
            _check_writable(target.path / "tmp")
        self._tmp = os.path.join(target.path, "tmp")
        self._new = os.path.join(target.path, "new")

    def add(self, message: FetchedMessage) -> None:
        with _writing(self.target):
            self._deliver(message.data)

    def _add_in_order(
        self, messages: Sequence[FetchedMessage]
    ) -> tuple[set[int], LocalWriteFailed | None]:
        # The same as the base class's, without a context manager entered
        # per message; a subclass's own add() (the tests') is still called.
        if type(self).add is not MaildirStore.add:
            return super()._add_in_order(messages)
        written: set[int] = set()
        try:
            with _writing(self.target):
                for message in messages:
                    self._deliver(message.data)
                    written.add(message.uid)
        except LocalWriteFailed as e:
            return written, e
        return written, None

    def _deliver(self, data: bytes) -> None:
        """
        Write one message into C{new/}: all of it, synced, or nothing.

        @raise OSError: it could not be; nothing of it is left in C{new/}
            or C{tmp/}.
        """
        for _ in range(3):
            # Names exactly as mailbox.Maildir makes them (no random part, no
            # S=/W= sizes: this Maildir is the user's, for any program), so a
            # clash with another program's name is possible: try another.
            name = maildir_name()
            temporary = os.path.join(self._tmp, name)
            try:
                # 0o666: the user's mail, readable as their umask allows (the
                # lab's store keeps its files 0o600).
                write_new_file(temporary, (data,), mode=0o666)
            except FileExistsError:
                continue  # another program's name: make another
            try:
                # A link, not a rename: it fails rather than replace a message
                # another program put in new/ under the same name.
                try:
                    os.link(temporary, os.path.join(self._new, name))
                except FileExistsError:
                    continue
                except PermissionError:  # a file system without hard links
                    final = os.path.join(self._new, name)
                    if os.path.lexists(final):
                        continue
                    os.rename(temporary, final)
                return
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)
        raise FileExistsError(errno.EEXIST, "no unique name could be made")

    def sync(self) -> None:
        with _writing(self.target):
            fsync_directory(self.target.path / "new")

    def _stored(self) -> Iterable[tuple[int, Callable[[], bytes]]]:
        for sub in ("new", "cur"):
            for entry in os.scandir(self.target.path / sub):
                if entry.is_file():
                    yield entry.stat().st_size, Path(entry.path).read_bytes


class EmlStore(MessageStore):
    """
    A directory of C{UID.eml} files (C{UID-N.eml} if that name is taken),
    each written under a temporary name, synced, then linked in place.
    """

    writers = 8

    def __init__(self, target: SaveTarget) -> None:
        super().__init__(target)
        with _writing(target):
            target.path.mkdir(parents=True, exist_ok=True)
            _check_writable(target.path)

    def add(self, message: FetchedMessage) -> None:
        directory = self.target.path
        # A temporary name no other write (of this run or a killed one) has.
        temporary = directory / f".{message.uid}.{maildir_name()}.tmp"
        with _writing(self.target):
            write_new_file(temporary, (message.data,), mode=0o666)
            try:
                for n in range(1000):
                    name = f"{message.uid}-{n}.eml" if n else f"{message.uid}.eml"
                    try:
                        os.link(temporary, directory / name)
                        break
                    except FileExistsError:
                        continue
            finally:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(temporary)

    def sync(self) -> None:
        with _writing(self.target):
            fsync_directory(self.target.path)

    def _stored(self) -> Iterable[tuple[int, Callable[[], bytes]]]:
        for entry in os.scandir(self.target.path):
            if entry.is_file() and entry.name.endswith(".eml"):
                yield entry.stat().st_size, Path(entry.path).read_bytes


class MboxStore(MessageStore):
    """
    An mbox file, written with C{mailbox.mbox} and locked while open; it is
    synced once per batch.

    The mbox format changes a message in one way: a line starting with
    C{From } gets a C{>} in front (mboxo quoting), and a message not ending
    in a newline gets one; everything else is kept byte for byte.
    """

    def __init__(self, target: SaveTarget) -> None:
        import mailbox  # only mbox targets need it

        super().__init__(target)
        self._errors = (OSError, mailbox.Error)
        with _writing(target, self._errors):
            if target.path.is_dir():
                raise IsADirectoryError(errno.EISDIR, "it is a directory")
            if any(p.exists() and not p.is_dir() for p in target.path.parents):
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
            target.path.parent.mkdir(parents=True, exist_ok=True)
            self._box = mailbox.mbox(target.path, create=True)
            try:
                self._box.lock()
            except mailbox.ExternalClashError:
                self._box.close()
                raise LocalWriteFailed(
                    f"cannot write to {target}: another program has it locked"
                ) from None

    @staticmethod
    def _quoted(data: bytes) -> bytes:
        # mailbox quotes "\nFrom "; a first line "From " would pass for the
        # separator line, so that one is quoted here.
        return b">" + data if data.startswith(b"From ") else data

    def stored_form(self, data: bytes) -> bytes:
        data = self._quoted(data).replace(b"\nFrom ", b"\n>From ")
        return data if data.endswith(b"\n") else data + b"\n"

    def add(self, message: FetchedMessage) -> None:
        with _writing(self.target, self._errors):
            self._box.add(self._quoted(message.data))

    def sync(self) -> None:
        with _writing(self.target, self._errors):
            self._box.flush()

    def close(self) -> None:
        super().close()
        with _writing(self.target, self._errors):
            self._box.unlock()
            self._box.close()

    def _stored(self) -> Iterable[tuple[int, Callable[[], bytes]]]:
        for key in self._box.iterkeys():
            data = self._box.get_bytes(key)
            yield len(data), functools.partial(bytes, data)


def open_store(target: SaveTarget) -> MessageStore:
    """
    Open C{target} for saving (creating it if needed).

    @raise LocalWriteFailed: it cannot be created or written.
    """
    kinds: dict[str, type[MessageStore]] = {
        "maildir": MaildirStore,
        "mbox": MboxStore,
        "eml": EmlStore,
    }
    return kinds[target.kind](target)


# --- the --new-only state ---------------------------------------------------


def default_state_directory() -> Path:
    """
    C{$XDG_STATE_HOME/netlab/fetch}, by default C{~/.local/state/netlab/fetch}.
    """
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "netlab" / "fetch"


def account_name(user: str, host: str) -> str:
    """
    How an account is named in state files: C{user@host}.  The port is left
    out on purpose: the same mailbox reached over IMAPS or STARTTLS has the
    same UIDs.
    """
    return f"{user}@{host}"


class FetchState:
    """
    What C{--new-only} remembers for one account and mailbox: the
    UIDVALIDITY, the highest UID saved, and the UIDs of a batch being
    written (the journal).  The file is replaced atomically, and synced, on
    every change; it is locked while open, so that two runs cannot both
    save the same messages.
    """

    def __init__(self, path: Path, account: str, mailbox: str) -> None:
        self.path = path
        self.account = account
        self.mailbox = mailbox
        self.uidvalidity: int | None = None
        self.last_uid = 0
        self.pending: list[int] = []
        self._lock: int | None = None

    @classmethod
    def open(cls, directory: Path, account: str, mailbox: str) -> FetchState:
        """
        Load (or start) the state of C{mailbox} of C{account}, in
        C{directory}, and lock it.

        @raise LocalWriteFailed: the directory cannot be written, or
            another run holds the lock.
        @raise UsageProblem: the state file is damaged.
        """
        key = hashlib.sha256(f"{account}\0{mailbox}".encode()).hexdigest()[:24]
        state = cls(directory / f"{key}.json", account, mailbox)
        with _writing(directory):
            directory.mkdir(parents=True, exist_ok=True)
            lock = os.open(
                state.path.with_suffix(".lock"), os.O_RDWR | os.O_CREAT, 0o600
            )
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(lock)
                raise LocalWriteFailed(
                    f"another netlab fetch is saving {mailbox!r} of {account} "
                    f"(its state {state.path} is locked)"
                ) from None
            state._lock = lock
        try:
            state._load()
        except BaseException:
            state.close()
            raise
        return state

    def _load(self) -> None:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return
        except OSError as e:
            raise UsageProblem(
                f"cannot read state file {self.path}: {e.strerror}"
            ) from None
        try:
            data = json.loads(text)
            uidvalidity = data["uidvalidity"]
            self.uidvalidity = None if uidvalidity is None else int(uidvalidity)
            self.last_uid = int(data["last_uid"])
            self.pending = [int(uid) for uid in data.get("pending", [])]
        except (ValueError, KeyError, TypeError):
            raise UsageProblem(
                f"state file {self.path} is damaged; "
                "delete it to fetch everything again"
            ) from None

    def _save(self) -> None:
        data = {
            "account": self.account,
            "mailbox": self.mailbox,
            "uidvalidity": self.uidvalidity,
            "last_uid": self.last_uid,
            "pending": self.pending,
        }
        with _writing(self.path):
            replace_file(self.path, json.dumps(data).encode() + b"\n")

    def restart(self, uidvalidity: int) -> None:
        """
        Forget every UID: the mailbox now has C{uidvalidity}.
        """
        self.uidvalidity, self.last_uid, self.pending = uidvalidity, 0, []
        self._save()

    def begin(self, uids: Sequence[int]) -> None:
        """
        Record that the messages with these UIDs are about to be written.
        """
        self.pending = sorted(uids)
        self._save()

    def commit(self, last_uid: int, pending: Sequence[int] = ()) -> None:
        """
        Everything up to C{last_uid} is safely written; C{pending} lists
        the UIDs above it that may or may not be.
        """
        self.last_uid = max(self.last_uid, last_uid)
        self.pending = sorted(u for u in pending if u > self.last_uid)
        self._save()

    def close(self) -> None:
        """
        Release the lock.
        """
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None


# --- fetching and saving ----------------------------------------------------


@dataclass(frozen=True)
class SaveReport:
    """
    What L{save_messages} did: C{saved} messages written, C{skipped} found
    already in the target (after an interrupted run or a UIDVALIDITY
    change), C{restarted} when UIDVALIDITY had changed.
    """

    mailbox: str
    target: str
    saved: int
    skipped: int
    uidvalidity: int
    last_uid: int | None
    restarted: bool


def save_batch(
    store: MessageStore,
    batch: Sequence[FetchedMessage],
    *,
    state: FetchState | None = None,
    recheck: Callable[[int], bool] = lambda uid: False,
) -> tuple[int, int]:
    """
    Write C{batch} (in UID order) to C{store}, journaled in C{state}, which
    advances only once the messages are written and synced.  Messages whose
    UID C{recheck} accepts are first looked for in the store, and skipped
    if it holds them already.

    @return: how many were saved and how many skipped.
    @raise LocalWriteFailed: a write failed; the state then covers the
        messages up to the first that failed, and the journal the rest.
    """
    check = [m for m in batch if recheck(m.uid)]
    digests = {m.uid: store.digest(m.data) for m in check}
    held = store.holds(digests.values()) if check else set()
    skip = {uid for uid, (_, digest) in digests.items() if digest in held}
    if state is not None:
        state.begin([m.uid for m in batch])
    written, failure = store.add_all([m for m in batch if m.uid not in skip])
    store.sync()  # if this fails, the journal stays for the next run
    done = written | skip
    if state is not None:
        last = state.last_uid
        for message in batch:
            if message.uid not in done:
                break
            last = message.uid
        state.commit(last, [m.uid for m in batch])
    if failure is not None:
        raise failure
    return len(written), len(skip)


async def save_messages(
    reactor: Any,
    session: IMAPSession,
    store: MessageStore,
    *,
    criteria: SearchQuery | Sequence[str] = (),
    limit: int | None = None,
    state: FetchState | None = None,
    mark_seen: bool = False,
    progress: Progress | None = None,
) -> SaveReport:
    """
    Save the messages of the selected mailbox that match C{criteria} to
    C{store}, in batches; each batch is written in the reactor's thread
    pool while the next one arrives.

    With C{state} (C{--new-only}) only messages above the state's UID are
    fetched, and the state advances as they are saved; when the mailbox's
    UIDVALIDITY is not the state's, everything is fetched again, skipping
    what the store already holds.  C{limit} keeps the oldest C{limit} new
    messages with a state (the next run continues from there), the newest
    C{limit} without.  C{mark_seen} sets \\Seen on each batch once it is
    saved (the mailbox must be selected read-write).
    """
    selected = session.selected
    if selected is None:
        raise UsageProblem("no mailbox is selected")
    min_uid, restarted = 1, False
    recheck: Callable[[int], bool] = lambda uid: False  # noqa: E731
    if state is not None:
        if not selected.uidvalidity:
            raise ServerRefused(
                f"{session.host} gives no UIDVALIDITY for {selected.name!r}; "
                "--new-only cannot work without it"
            )
        if state.uidvalidity != selected.uidvalidity:
            restarted = state.uidvalidity is not None
            state.restart(selected.uidvalidity)
            if restarted:
                recheck = lambda uid: True  # noqa: E731
        elif state.pending:
            recheck = frozenset(state.pending).__contains__
        min_uid = state.last_uid + 1
    uids = await session.search(criteria, min_uid=min_uid)
    if limit is not None:
        uids = uids[:limit] if state is not None else uids[-limit:]
    sizes = await session.message_sizes(uids)
    total_bytes = sum(sizes.values())
    done = done_bytes = saved = skipped = 0
    if progress is not None:
        progress(0, len(sizes), 0, total_bytes)
    pool = reactor.getThreadPool()
    async for batch in session.iter_messages(uids, sizes=sizes):
        s, k = await deferToThreadPool(
            reactor, pool, save_batch, store, batch, state=state, recheck=recheck
        )
        saved, skipped = saved + s, skipped + k
        if mark_seen:
            await session.mark_seen([m.uid for m in batch])
        done += len(batch)
        done_bytes += sum(len(m.data) for m in batch)
        if progress is not None:
            progress(done, len(sizes), done_bytes, total_bytes)
    return SaveReport(
        mailbox=selected.name,
        target=str(store.target),
        saved=saved,
        skipped=skipped,
        uidvalidity=selected.uidvalidity,
        last_uid=state.last_uid if state is not None else None,
        restarted=restarted,
    )
