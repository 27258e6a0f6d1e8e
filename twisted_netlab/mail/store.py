"""
Where fetched mail is saved, and what C{--new-only} remembers.

A L{MessageStore} writes whole messages byte for byte with the standard
library's C{mailbox} module (Maildir, mbox) or as C{.eml} files.  A
L{FetchState} keeps, per account and mailbox, the UIDVALIDITY and the
highest UID saved, as getmail6 and mbsync do, so a rerun fetches only what
is new and starts over when UIDVALIDITY changes.

L{save_messages} ties them together so that a message is never lost and
never saved twice, even when a run is killed: before a batch is written the
state file records the batch's digests (a journal); the messages are then
written and synced; only then does the state advance past them.  A run that
finds a journal left behind asks the store which of those messages it
already holds, and skips them.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import hashlib
import json
import mailbox
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

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


def _write_error(target: object, e: BaseException) -> LocalWriteFailed:
    if isinstance(e, OSError):
        reason = e.strerror or str(e)
        if e.errno in (errno.ENOSPC, errno.EDQUOT):
            reason += " (the target is full)"
    else:
        reason = str(e) or type(e).__name__
    return LocalWriteFailed(f"cannot write to {target}: {reason}")


@contextlib.contextmanager
def _writing(target: object) -> Iterator[None]:
    """
    Turn file-system failures into L{LocalWriteFailed}.
    """
    try:
        yield
    except (OSError, mailbox.Error) as e:
        raise _write_error(target, e) from None


def _fsync_directory(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class MessageStore:
    """
    A place messages are saved to, byte for byte.

    L{add} writes a message; once L{sync} returns, everything added is on
    disk.  L{holds} says which of some messages (by digest of their stored
    form, see L{digest}) are already there.
    """

    def __init__(self, target: SaveTarget) -> None:
        self.target = target
        self._index: dict[int, list[Callable[[], bytes]]] | None = None
        self._digests: dict[int, set[str]] = {}

    def add(self, message: FetchedMessage) -> None:
        raise NotImplementedError

    def sync(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """
        Release the target.
        """

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
        Which of these (size, digest) pairs the target already holds, as
        stored before this store was opened.
        """
        with _writing(self.target):
            if self._index is None:
                self._index = {}
                for size, read in self._stored():
                    self._index.setdefault(size, []).append(read)
            found = set()
            for size, digest in digests:
                if size not in self._digests:
                    self._digests[size] = {
                        _sha256(r()) for r in self._index.get(size, [])
                    }
                if digest in self._digests[size]:
                    found.add(digest)
            return found


def _read(path: Path) -> Callable[[], bytes]:
    return path.read_bytes


class MaildirStore(MessageStore):
    """
    A Maildir, written with C{mailbox.Maildir}: each message is written to
    C{tmp/}, synced, and moved to C{new/}.
    """

    def __init__(self, target: SaveTarget) -> None:
        super().__init__(target)
        with _writing(target):
            self._box = mailbox.Maildir(target.path, create=True)
            for sub in ("tmp", "new", "cur"):
                (target.path / sub).mkdir(exist_ok=True)
            _check_writable(target.path / "tmp")

    def add(self, message: FetchedMessage) -> None:
        with _writing(self.target):
            self._box.add(message.data)

    def sync(self) -> None:
        with _writing(self.target):
            _fsync_directory(self.target.path / "new")

    def _stored(self) -> Iterable[tuple[int, Callable[[], bytes]]]:
        for sub in ("new", "cur"):
            for entry in os.scandir(self.target.path / sub):
                if entry.is_file():
                    yield entry.stat().st_size, _read(Path(entry.path))


class EmlStore(MessageStore):
    """
    A directory of C{UID.eml} files (C{UID-N.eml} if that name is taken),
    each written under a temporary name, synced, then linked in place.
    """

    def __init__(self, target: SaveTarget) -> None:
        super().__init__(target)
        with _writing(target):
            target.path.mkdir(parents=True, exist_ok=True)
            _check_writable(target.path)

    def add(self, message: FetchedMessage) -> None:
        directory = self.target.path
        temporary = directory / f".{message.uid}.{os.getpid()}.tmp"
        with _writing(self.target):
            try:
                with open(temporary, "wb") as f:
                    f.write(message.data)
                    f.flush()
                    os.fsync(f.fileno())
                for n in range(1000):
                    name = f"{message.uid}.eml" if n == 0 else f"{message.uid}-{n}.eml"
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
            _fsync_directory(self.target.path)

    def _stored(self) -> Iterable[tuple[int, Callable[[], bytes]]]:
        for entry in os.scandir(self.target.path):
            if entry.is_file() and entry.name.endswith(".eml"):
                yield entry.stat().st_size, _read(Path(entry.path))


class MboxStore(MessageStore):
    """
    An mbox file, written with C{mailbox.mbox} and locked while open.

    The mbox format itself changes a message in one way: a line starting
    with C{From } gets a C{>} in front (mboxo quoting), and a message not
    ending in a newline gets one; everything else is kept byte for byte.
    """

    def __init__(self, target: SaveTarget) -> None:
        super().__init__(target)
        with _writing(target):
            if target.path.is_dir():
                raise IsADirectoryError(errno.EISDIR, "it is a directory")
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
        # mailbox quotes "\nFrom "; a first line "From " would pass as a
        # separator line, so it is quoted here.
        return b">" + data if data.startswith(b"From ") else data

    def stored_form(self, data: bytes) -> bytes:
        data = self._quoted(data).replace(b"\nFrom ", b"\n>From ")
        return data if data.endswith(b"\n") else data + b"\n"

    def add(self, message: FetchedMessage) -> None:
        with _writing(self.target):
            self._box.add(self._quoted(message.data))

    def sync(self) -> None:
        with _writing(self.target):
            self._box.flush()

    def close(self) -> None:
        with _writing(self.target):
            self._box.unlock()
            self._box.close()

    def _stored(self) -> Iterable[tuple[int, Callable[[], bytes]]]:
        for key in self._box.iterkeys():
            data = self._box.get_bytes(key)
            yield len(data), functools.partial(bytes, data)


def _check_writable(directory: Path) -> None:
    if not os.access(directory, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "Permission denied")


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


@dataclass(frozen=True)
class PendingMessage:
    """
    A message being written: its UID, and the size and digest of its
    stored form.
    """

    uid: int
    size: int
    sha256: str


class FetchState:
    """
    What C{--new-only} remembers for one account and mailbox: the
    UIDVALIDITY, the highest UID saved, and the journal of a batch being
    written.  The file is replaced atomically (and synced) on every change
    and locked while open, so two runs cannot both save the same messages.
    """

    def __init__(self, path: Path, account: str, mailbox: str) -> None:
        self.path = path
        self.account = account
        self.mailbox = mailbox
        self.uidvalidity: int | None = None
        self.last_uid = 0
        self.pending: list[PendingMessage] = []
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
                    f"(state {state.path} is locked)"
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
            self.pending = [PendingMessage(**p) for p in data.get("pending", [])]
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
            "pending": [asdict(p) for p in self.pending],
        }
        temporary = self.path.with_suffix(".tmp")
        with _writing(self.path):
            with open(temporary, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.replace(temporary, self.path)
            _fsync_directory(self.path.parent)

    def restart(self, uidvalidity: int) -> None:
        """
        Forget everything: the mailbox now has C{uidvalidity}.
        """
        self.uidvalidity, self.last_uid, self.pending = uidvalidity, 0, []
        self._save()

    def begin(self, pending: Sequence[PendingMessage]) -> None:
        """
        Record that these messages are about to be written.
        """
        self.pending = list(pending)
        self._save()

    def commit(self, last_uid: int) -> None:
        """
        Everything up to C{last_uid} is safely written; the journal is done.
        """
        self.last_uid = max(self.last_uid, last_uid)
        self.pending = []
        self._save()

    def recover(self, store: MessageStore) -> int:
        """
        After an interrupted run, advance past the journaled messages that
        C{store} holds (they were written in UID order).

        @return: how many of them it holds.
        """
        if not self.pending:
            return 0
        held = store.holds((p.size, p.sha256) for p in self.pending)
        last, count = self.last_uid, 0
        for p in self.pending:
            if p.sha256 not in held:
                break
            last, count = p.uid, count + 1
        self.commit(last)
        return count

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
    already in the target (after a UIDVALIDITY change or an interrupted
    run), C{restarted} when UIDVALIDITY had changed.
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
    skip_held: bool = False,
) -> tuple[int, int]:
    """
    Write C{batch} (in UID order) to C{store}, journaled in C{state}; the
    state advances only once the messages are synced.  With C{skip_held},
    messages the store already holds are not written again.

    @return: how many were saved and how many skipped.
    @raise LocalWriteFailed: a write failed; the state then covers exactly
        the messages written before it.
    """
    pending = [PendingMessage(m.uid, *store.digest(m.data)) for m in batch]
    held = store.holds((p.size, p.sha256) for p in pending) if skip_held else set()
    if state is not None:
        state.begin(pending)
    saved = skipped = 0
    last_uid: int | None = None
    failed: LocalWriteFailed | None = None
    try:
        for message, entry in zip(batch, pending, strict=True):
            if entry.sha256 in held:
                skipped += 1
            else:
                store.add(message)
                saved += 1
            last_uid = message.uid
    except LocalWriteFailed as e:
        failed = e
    # If syncing fails, the journal stays: the next run sorts it out.
    store.sync()
    if state is not None and last_uid is not None:
        state.commit(last_uid)
    if failed is not None:
        raise failed
    return saved, skipped


async def save_messages(
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
    C{store}, in batches.

    With C{state} (C{--new-only}), only messages above the state's UID are
    fetched, and the state advances as they are saved; when the mailbox's
    UIDVALIDITY differs from the state's, everything is fetched again, but
    messages the store already holds are skipped.  C{limit} keeps the
    oldest C{limit} new messages with a state (the next run continues from
    there), the newest C{limit} without.  C{mark_seen} sets \\Seen on each
    batch once it is saved (the mailbox must be selected read-write).
    """
    selected = session.selected
    if selected is None:
        raise UsageProblem("no mailbox is selected")
    min_uid, skip_held, restarted = 1, False, False
    if state is not None:
        if not selected.uidvalidity:
            raise ServerRefused(
                f"{session.host} gives no UIDVALIDITY for {selected.name!r}; "
                "--new-only cannot work without it"
            )
        if state.uidvalidity != selected.uidvalidity:
            restarted = skip_held = state.uidvalidity is not None
            state.restart(selected.uidvalidity)
        else:
            state.recover(store)
        min_uid = state.last_uid + 1
    uids = await session.search(criteria, min_uid=min_uid)
    if limit is not None:
        uids = uids[:limit] if state is not None else uids[max(len(uids) - limit, 0) :]
    sizes = await session.message_sizes(uids)
    total_bytes = sum(sizes.values())
    done = done_bytes = saved = skipped = 0
    if progress is not None:
        progress(0, len(sizes), 0, total_bytes)
    async for batch in session.iter_messages(uids, sizes=sizes):
        s, k = save_batch(store, batch, state=state, skip_held=skip_held)
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


def account_name(user: str, host: str) -> str:
    """
    How an account is named in state files: C{user@host}.  The port is left
    out on purpose: the same mailbox reached over IMAPS or STARTTLS has the
    same UIDs.
    """
    return f"{user}@{host}"
