"""
The mail lab's message store: one Maildir per user, with IMAP UIDs.

Layout under the store's root (the state directory's C{mail/})::

    <address>/                  the user's Maildir, which is INBOX
        cur/ new/ tmp/
        netlab-uidlist          UIDVALIDITY, UIDNEXT, the UID of each message
                                and the SMTP envelope of each delivered one
        netlab-uidlist.lock     taken (fcntl.flock) to assign UIDs
        netlab-uidvalidity      the last UIDVALIDITY given to a mailbox of this user
        netlab-modseq           MODSEQs of changed messages (CONDSTORE), per folder
        dovecot-keywords        keyword of each info letter a-z, per folder
        subscriptions           subscribed mailbox names, one a line
        .Sent/                  other mailboxes: Maildir++ folders, names in
        .Archive.2024/          modified UTF-7, hierarchy delimiter "."

This module holds L{MailStore}, every user's Maildir under that root: users
and mailboxes, subscriptions, and delivery to several mailboxes at once
(L{MailStore.deliver_batch}, the group commit). A mailbox is a
L{Folder<folder.Folder>}, in L{folder}; what the store calls things and the
errors it raises are in L{names} and L{errors}, the envelope and retention
limits in L{envelope}, the UID list, keywords and MODSEQs in L{uidlist},
L{keywords} and L{modseq}.

It is also the store's one public face: the names its users need (the
folder, the envelope, the names and flags, the errors) are imported here,
in C{__all__}, so that C{from twisted_netlab.mail.lab.store.maildir import
...} is the one import a protocol server, the service or a test writes.

The stdlib C{mailbox} module creates the Maildirs and folders; delivery is
done in L{folder} because C{mailbox.Maildir.add} neither syncs to disk nor
tells us the file name before the message becomes visible.
"""

from __future__ import annotations

import errno
import mailbox as stdlib_mailbox
import os
import secrets
import shutil
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import TypeVar

from twisted.logger import Logger

from twisted_netlab.durable import fsync_directory, fsync_path, replace_file
from twisted_netlab.mail.lab.store.envelope import Delivery, Envelope, Retention, Tagger
from twisted_netlab.mail.lab.store.errors import (
    InvalidName,
    KeywordLimit,
    MailboxExists,
    MailboxHasChildren,
    MailStoreError,
    MessageGone,
    NoSuchMailbox,
)
from twisted_netlab.mail.lab.store.folder import (
    Folder,
    FolderChange,
    FolderListener,
    FolderSnapshot,
    FolderStatus,
    StoredMessage,
)
from twisted_netlab.mail.lab.store.keywords import MAX_KEYWORDS
from twisted_netlab.mail.lab.store.names import (
    FLAG_LETTERS,
    HIERARCHY_DELIMITER,
    INBOX,
    SUBSCRIPTIONS_NAME,
    SYSTEM_FLAGS,
    UIDLIST_NAME,
    UIDVALIDITY_LOCK_NAME,
    UIDVALIDITY_NAME,
    crlf_size,
    decode_folder_name,
    encode_folder_name,
    validate_address,
    validate_mailbox_name,
)
from twisted_netlab.mail.lab.store.table import DELETED, SEEN
from twisted_netlab.mail.lab.store.uidlist import new_uidlist

_T = TypeVar("_T")
#: Starts the name of a user's Maildir renamed aside to be removed
#: (L{MailStore.remove_all_users}).
_REMOVED_PREFIX = ".netlab-removed-"

log = Logger()

# Threads that write and sync the files of one batch of deliveries.
_STAGING_THREADS = 8

#: Called with (address, mailbox, change) for a change in any folder.
StoreListener = Callable[[str, str, FolderChange], None]


class MailStore:
    """
    Every user's Maildir under one root directory.

    Folder objects are cached, so every session of this process shares one
    view of each mailbox and hears of every change made through the store.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self._folders: dict[Path, Folder] = {}
        self._mutex = threading.Lock()
        self._store_listeners: list[StoreListener] = []
        self._retention = Retention()
        #: Gives each delivered copy its keywords (tags), or None.
        self.tagger: Tagger | None = None

    # --- users ---------------------------------------------------------------

    def user_path(self, address: str) -> Path:
        """
        The directory of C{address}'s Maildir (INBOX).
        """
        return self.root / validate_address(address)

    def ensure_user(self, address: str) -> None:
        """
        Create the user's Maildir (INBOX) if missing. Idempotent.
        """
        path = self.user_path(address)
        if (path / "cur").is_dir():
            return
        self.root.mkdir(parents=True, exist_ok=True)
        _create_maildir(path, folder=False)

    def has_user(self, address: str) -> bool:
        """
        Whether the user's Maildir exists.
        """
        return (self.user_path(address) / "cur").is_dir()

    # --- mailboxes -----------------------------------------------------------

    def folder(self, address: str, mailbox: str = INBOX) -> Folder:
        """
        The folder of C{address}'s C{mailbox}.

        @raise NoSuchMailbox: it does not exist.
        @raise InvalidName: the address or mailbox name is refused.
        """
        name = validate_mailbox_name(mailbox)
        user = self.user_path(address)
        path = user if name == INBOX else user / encode_folder_name(name)
        if not (path / "cur").is_dir():
            raise NoSuchMailbox(f"no mailbox {name}")
        with self._mutex:
            folder = self._folders.get(path)
            if folder is None:
                folder = self._folders[path] = Folder(path, name)
                folder.add_listener(self._forwarder(validate_address(address), name))
                folder.retention = self._retention
            return folder

    def _forget(self, path: Path) -> None:
        with self._mutex:
            for cached in list(self._folders):
                if cached == path:
                    del self._folders[cached]

    def mailboxes(self, address: str) -> list[str]:
        """
        The names of C{address}'s mailboxes, INBOX first, then sorted.
        """
        user = self.user_path(address)
        names = []
        try:
            entries = list(os.scandir(user))
        except FileNotFoundError:
            return []
        for entry in entries:
            name = decode_folder_name(entry.name)
            if (
                name is not None
                and name != INBOX
                and os.path.isdir(os.path.join(entry.path, "cur"))
            ):
                names.append(name)
        return [INBOX, *sorted(names)]

    def create_mailbox(self, address: str, mailbox: str) -> None:
        """
        Create C{mailbox}, and its missing superiors.

        @raise MailboxExists: it already exists.
        """
        name = validate_mailbox_name(mailbox)
        if name == INBOX:
            raise MailboxExists("INBOX always exists")
        self.ensure_user(address)
        user = self.user_path(address)
        levels = name.split(HIERARCHY_DELIMITER)
        for depth in range(1, len(levels)):
            parent = HIERARCHY_DELIMITER.join(levels[:depth])
            if parent.upper() == INBOX:
                continue
            path = user / encode_folder_name(parent)
            if not (path / "cur").is_dir():
                _create_maildir(path, folder=True, exist_ok=True)
        path = user / encode_folder_name(name)
        if (path / "cur").is_dir():
            raise MailboxExists(f"mailbox {name} already exists")
        _create_maildir(path, folder=True)

    def delete_mailbox(self, address: str, mailbox: str) -> None:
        """
        Delete C{mailbox} and its messages.

        @raise MailboxHasChildren: it has inferior mailboxes.
        """
        name = validate_mailbox_name(mailbox)
        if name == INBOX:
            raise MailStoreError("INBOX cannot be deleted")
        folder = self.folder(address, name)
        prefix = name + HIERARCHY_DELIMITER
        if any(other.startswith(prefix) for other in self.mailboxes(address)):
            raise MailboxHasChildren(f"mailbox {name} has children, delete them first")
        folder.refresh()
        gone = tuple(folder.uids())
        doomed = folder.path.with_name(f"netlab-deleted-{secrets.token_hex(8)}")
        os.rename(folder.path, doomed)
        fsync_directory(folder.path.parent)
        self._forget(folder.path)
        folder._notify(FolderChange(gone=gone))
        shutil.rmtree(doomed, ignore_errors=True)

    def rename_mailbox(self, address: str, old: str, new: str) -> None:
        """
        Rename C{old} (and its inferiors) to C{new}; UIDs and UIDVALIDITY
        stay. INBOX cannot be renamed here.

        @raise MailboxExists: C{new} (or an inferior's new name) exists.
        """
        old_name = validate_mailbox_name(old)
        new_name = validate_mailbox_name(new)
        if INBOX in (old_name, new_name):
            raise MailStoreError("INBOX cannot be renamed")
        self.folder(address, old_name)
        user = self.user_path(address)
        names = self.mailboxes(address)
        prefix = old_name + HIERARCHY_DELIMITER
        moves = [
            (name, new_name + name[len(old_name) :])
            for name in names
            if name == old_name or name.startswith(prefix)
        ]
        for _, target in moves:
            validate_mailbox_name(target)
            if target in names or target == INBOX:
                raise MailboxExists(f"mailbox {target} already exists")
        new_levels = new_name.split(HIERARCHY_DELIMITER)
        for depth in range(1, len(new_levels)):
            parent = HIERARCHY_DELIMITER.join(new_levels[:depth])
            if parent == old_name or parent.startswith(prefix):
                raise MailStoreError("a mailbox cannot be moved inside itself")
        for source, target in moves:
            source_path = user / encode_folder_name(source)
            os.rename(source_path, user / encode_folder_name(target))
            self._forget(source_path)
        fsync_directory(user)
        for depth in range(1, len(new_levels)):
            parent = HIERARCHY_DELIMITER.join(new_levels[:depth])
            path = user / encode_folder_name(parent)
            if parent.upper() != INBOX and not (path / "cur").is_dir():
                _create_maildir(path, folder=True, exist_ok=True)

    # --- subscriptions -------------------------------------------------------

    def subscriptions(self, address: str) -> list[str]:
        """
        The mailbox names C{address} subscribed to.
        """
        path = self.user_path(address) / SUBSCRIPTIONS_NAME
        try:
            lines = path.read_bytes().split(b"\n")
        except FileNotFoundError:
            return []
        names = []
        for line in lines:
            if line:
                try:
                    names.append(line.decode("imap4-utf-7"))
                except (UnicodeError, ValueError):
                    continue
        return names

    def set_subscribed(self, address: str, mailbox: str, subscribed: bool) -> None:
        """
        Subscribe C{address} to C{mailbox}, or unsubscribe.
        """
        import twisted.mail.imap4  # noqa: F401  registers the imap4-utf-7 codec

        name = validate_mailbox_name(mailbox)
        self.ensure_user(address)
        names = [n for n in self.subscriptions(address) if n != name]
        if subscribed:
            names.append(name)
        data = b"".join(n.encode("imap4-utf-7") + b"\n" for n in names)
        replace_file(self.user_path(address) / SUBSCRIPTIONS_NAME, data)

    # --- the contract with the SMTP side ---------------------------------------

    def deliver(self, address: str, message: bytes, mailbox: str = INBOX) -> int:
        """
        Store one message atomically and durably (write in tmp/, fsync,
        rename into new/, fsync the directory), assign and persist its UID
        (durably, before returning), tell open IMAP sessions of that mailbox
        (EXISTS / IDLE push), and return the UID. Blocking; raises OSError
        on a disk failure (then nothing is visible). Safe against concurrent
        deliveries from several processes.

        The user's INBOX is created if missing; another mailbox must exist
        (L{NoSuchMailbox} otherwise).
        """
        if validate_mailbox_name(mailbox) == INBOX:
            self.ensure_user(address)
        return self.folder(address, mailbox).deliver(message)

    def messages(self, address: str, mailbox: str = INBOX) -> list[bytes]:
        """
        The bytes of every message in the mailbox, in UID order (none for a
        user who never got any mail).
        """
        if validate_mailbox_name(mailbox) == INBOX and not self.has_user(address):
            return []
        folder = self.folder(address, mailbox)
        folder.refresh()
        result = []
        for uid in folder.uids():
            try:
                result.append(folder.read(uid))
            except MessageGone:
                continue
        return result

    # --- store-wide views (the HTTP API) ----------------------------------------

    def addresses(self) -> list[str]:
        """
        The addresses of every user with a Maildir, sorted.
        """
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return []
        return sorted(
            entry.name
            for entry in entries
            if "@" in entry.name
            and not entry.name.startswith(".")
            and os.path.isdir(os.path.join(entry.path, "cur"))
        )

    def add_listener(self, listener: StoreListener) -> None:
        """
        Call C{listener(address, mailbox, change)} after every change to any
        folder of this store (in the thread that made it; for changes found
        on disk, in the thread that refreshed the folder).
        """
        with self._mutex:
            self._store_listeners.append(listener)

    def remove_listener(self, listener: StoreListener) -> None:
        with self._mutex, suppress(ValueError):
            self._store_listeners.remove(listener)

    def remove_all_users(self) -> None:
        """
        Remove every user's Maildir, and whatever a removal cut short left
        behind. Each user's directory is first renamed aside (atomically), so
        that a delivery still in flight in another thread writes, or fails to
        write, into the doomed copy and never into the Maildir made next
        under the same name; then the copy is removed.
        """
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return
        doomed = []
        for entry in entries:
            if entry.name.startswith(_REMOVED_PREFIX):
                doomed.append(Path(entry.path))
            elif "@" in entry.name and not entry.name.startswith("."):
                aside = self.root / f"{_REMOVED_PREFIX}{secrets.token_hex(8)}"
                try:
                    os.rename(entry.path, aside)
                except FileNotFoundError:
                    continue
                self._forget_user(Path(entry.path))
                doomed.append(aside)
        for path in doomed:
            shutil.rmtree(path, ignore_errors=True)

    def _forget_user(self, path: Path) -> None:
        """
        Drop the cached folders of the user whose Maildir is C{path} (it was
        removed): the next L{folder} call reads the disk again.
        """
        with self._mutex:
            for cached in list(self._folders):
                if cached == path or cached.parent == path:
                    del self._folders[cached]

    def _forwarder(self, address: str, mailbox: str) -> FolderListener:
        def forward(change: FolderChange) -> None:
            with self._mutex:
                listeners = list(self._store_listeners)
            for listener in listeners:
                listener(address, mailbox, change)

        return forward

    # --- capture: several recipients, envelopes, retention ----------------------

    def deliver_many(
        self,
        message: bytes,
        addresses: Iterable[str],
        *,
        envelope: Envelope | None = None,
        prefixes: Mapping[str, bytes] | None = None,
    ) -> dict[str, int]:
        """
        Store C{message} once in the INBOX of each of C{addresses} (an address
        named twice, in any case, gets one copy), with C{envelope}, and
        return each mailbox's UID by canonical address. Each copy starts with
        C{prefixes[address]} if given (its C{Received:} header).

        All or nothing: every copy is written and synced, then given its UID
        and made visible, then the directories are synced, and only then are
        sessions told. If anything fails, the copies made visible are taken
        back and the error is raised, so that a retried delivery is not
        stored twice. Blocking.
        """
        [result] = self.deliver_batch(
            [Delivery(message, addresses, envelope, prefixes)]
        )
        if isinstance(result, BaseException):
            raise result
        return result

    def deliver_batch(
        self, deliveries: Iterable[Delivery]
    ) -> list[dict[str, int] | BaseException]:
        """
        Store several deliveries (each as L{deliver_many} would) together:
        their files are written and synced concurrently, each mailbox's UID
        list gets one synced append for all of them and each directory one
        sync, so that N messages cost about N + 2 syncs instead of 3N (group
        commit). Each delivery is all or nothing on its own: the result, in
        order, is its UIDs by address, or the error that made it fail (then
        none of its copies is visible). Blocking.
        """
        items = list(deliveries)
        results: list[dict[str, int] | BaseException] = [{} for _ in items]
        failed: dict[int, BaseException] = {}
        plans: list[tuple[int, str, Folder, bytes]] = []
        for i, item in enumerate(items):
            try:
                wanted = {
                    validate_address(k): v for k, v in (item.prefixes or {}).items()
                }
                seen: set[str] = set()
                for address in item.addresses:
                    canonical = validate_address(address)
                    if canonical in seen:
                        continue
                    seen.add(canonical)
                    self.ensure_user(canonical)
                    folder = self.folder(canonical)
                    plans.append((i, canonical, folder, wanted.get(canonical, b"")))
            except Exception as e:
                failed[i] = e
        plans = [plan for plan in plans if plan[0] not in failed]
        # Write and sync every copy, concurrently: the file system commits
        # the syncs of several files together.
        staged: dict[int, tuple[str, Path]] = {}

        def stage(index: int) -> None:
            i, _, folder, prefix = plans[index]
            try:
                staged[index] = folder._stage([prefix, items[i].message])
            except Exception as e:
                failed.setdefault(i, e)

        _concurrently(stage, range(len(plans)))
        keywords = self._keywords_of(items, plans, failed)
        # One append to each folder's UID list for all its copies.
        by_folder: dict[Path, list[int]] = {}
        for index, (i, _, folder, _) in enumerate(plans):
            if i not in failed:
                by_folder.setdefault(folder.path, []).append(index)
        committed: dict[int, tuple[int, str]] = {}
        done: list[tuple[Folder, list[int]]] = []
        for indexes in by_folder.values():
            folder = plans[indexes[0]][2]
            indexes = [index for index in indexes if plans[index][0] not in failed]
            if not indexes:
                continue
            infos = _keyword_infos(
                folder, [keywords.get(index, ()) for index in indexes]
            )
            named = [
                (
                    f"{staged[index][0]}:2,{info}" if info else staged[index][0],
                    staged[index][1],
                )
                for index, info in zip(indexes, infos, strict=True)
            ]
            try:
                uids = folder._commit(
                    [staged[index] for index in indexes],
                    [items[plans[index][0]].envelope for index in indexes],
                    sync=False,
                    infos=infos,
                )
            except Exception as e:
                _abandon(folder, named)
                for index in indexes:
                    failed.setdefault(plans[index][0], e)
                continue
            for index, (uid, name) in zip(indexes, uids, strict=True):
                committed[index] = (uid, name)
            done.append((folder, indexes))
            staged.update(
                (index, pair) for index, pair in zip(indexes, named, strict=True)
            )
        # The UID lists and the directories, synced together: a message is
        # durable (file, UID, name in new/) once both are.
        problems = _sync_all(
            [f._uidlist_path for f, _ in done] + [f.path / "new" for f, _ in done]
        )
        for folder, indexes in done:
            problem = problems.get(folder._uidlist_path) or problems.get(
                folder.path / "new"
            )
            if problem is None:
                continue
            _abandon(folder, [staged[index] for index in indexes])
            for index in indexes:
                failed.setdefault(plans[index][0], problem)
                committed.pop(index, None)
        # Take back the copies of deliveries that failed elsewhere; tell
        # sessions of the rest.
        retracted: set[Path] = set()
        publish: dict[Path, tuple[Folder, list[tuple[int, str]]]] = {}
        for index, (i, address, folder, _) in enumerate(plans):
            if i in failed:
                if index in committed:
                    folder._retract(committed[index][1])
                    retracted.add(folder.path)
                elif index in staged:
                    with suppress(FileNotFoundError):
                        os.unlink(staged[index][1])
                continue
            uid, name = committed[index]
            result = results[i]
            assert isinstance(result, dict)
            result[address] = uid
            publish.setdefault(folder.path, (folder, []))[1].append((uid, name))
        for path in retracted:
            with suppress(OSError):
                fsync_directory(path / "new")
        for folder, delivered in publish.values():
            folder._publish(delivered)
        for i, error in failed.items():
            results[i] = error
        return results

    def _keywords_of(
        self,
        items: list[Delivery],
        plans: list[tuple[int, str, Folder, bytes]],
        failed: dict[int, BaseException],
    ) -> dict[int, tuple[str, ...]]:
        """
        The keywords of each copy (by its index in C{plans}): its
        delivery's, and the L{tagger}'s, asked once per delivery in the
        staging threads.  A tagger that fails costs the tags, never the
        message.
        """
        copies: dict[int, list[int]] = {}
        for index, (i, _, _, _) in enumerate(plans):
            if i not in failed:
                copies.setdefault(i, []).append(index)
        tagger = self.tagger
        if tagger is None and not any(items[i].keywords for i in copies):
            return {}
        keywords: dict[int, tuple[str, ...]] = {}

        def tag(i: int) -> None:
            item = items[i]
            addresses = [plans[index][1] for index in copies[i]]
            found: Mapping[str, Sequence[str]] = {}
            if tagger is not None:
                try:
                    found = tagger(item.message, item.envelope, addresses)
                except Exception:
                    log.failure("tagging a delivered message failed; stored untagged")
            for index, address in zip(copies[i], addresses, strict=True):
                wanted = (*item.keywords, *found.get(address, ()))
                unique = {k.lower(): k for k in reversed(wanted)}
                keywords[index] = tuple(sorted(unique.values()))

        _concurrently(tag, list(copies))
        return keywords

    def envelope(self, address: str, uid: int, mailbox: str = INBOX) -> Envelope | None:
        """
        The SMTP envelope of message C{uid} of C{address}'s C{mailbox}, or
        L{None}.
        """
        try:
            return self.folder(address, mailbox).envelope(uid)
        except NoSuchMailbox:
            return None

    @property
    def retention(self) -> Retention:
        """
        What every mailbox keeps (see L{Folder.prune}); no limit by default.
        """
        return self._retention

    @retention.setter
    def retention(self, retention: Retention) -> None:
        with self._mutex:
            self._retention = retention
            for folder in self._folders.values():
                folder.retention = retention

    def prune(self, now: float | None = None) -> dict[tuple[str, str], list[int]]:
        """
        Apply the retention limits to every mailbox of every user now (for
        the age limit's timer); return the UIDs removed by (address, mailbox).
        """
        removed: dict[tuple[str, str], list[int]] = {}
        if not self._retention:
            return removed
        try:
            users = sorted(entry.name for entry in os.scandir(self.root))
        except FileNotFoundError:
            return removed
        for address in users:
            if address.startswith(".") or not self.has_user(address):
                continue
            for mailbox in self.mailboxes(address):
                try:
                    folder = self.folder(address, mailbox)
                    gone = folder.prune(now=now)
                except MailStoreError:
                    continue
                if gone:
                    removed[(address, mailbox)] = gone
        return removed


def _keyword_infos(folder: Folder, keywords: list[tuple[str, ...]]) -> list[str]:
    """
    The info letters of copies for C{folder} with C{keywords} each: the
    keywords are given letters first (those that find none, when the
    folder's 26 are all in use, are left out and logged: a delivery is
    never refused for its tags).
    """
    wanted = [k for each in keywords for k in each]
    if not wanted:
        return ["" for _ in keywords]
    try:
        with folder._mutex:
            kept = {k.lower() for k in folder._define_keywords(wanted, partial=True)}
    except MailStoreError as e:
        log.warn(
            "delivered untagged to {folder}: {reason}",
            folder=str(folder.path),
            reason=str(e),
        )
        return ["" for _ in keywords]
    dropped = sorted({k for k in wanted if k.lower() not in kept})
    if dropped:
        log.warn(
            "delivered without the tags {tags} to {folder}: its {limit} keyword "
            "letters are all in use",
            tags=", ".join(dropped),
            folder=str(folder.path),
            limit=MAX_KEYWORDS,
        )
    return [
        folder._info_with_flags("", [k for k in each if k.lower() in kept])
        for each in keywords
    ]


def _abandon(folder: Folder, staged: list[tuple[str, Path]]) -> None:
    """
    Remove staged or committed (unpublished) copies of a failed delivery
    (file name in C{new/}, temporary path).
    """
    for name, temporary in staged:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        folder._retract(name)


_io_pool: ThreadPoolExecutor | None = None
_io_pool_lock = threading.Lock()


def _concurrently(work: Callable[[_T], None], items: Iterable[_T]) -> None:
    """
    Call C{work} on every item of C{items}, at once in the threads of one
    pool shared by every store (started on first use, so that no thread is
    started per batch), and return when all are done. C{work} reports its
    own errors.
    """
    global _io_pool
    todo = list(items)
    if len(todo) <= 1:
        for item in todo:
            work(item)
        return
    with _io_pool_lock:
        if _io_pool is None:
            _io_pool = ThreadPoolExecutor(
                _STAGING_THREADS, thread_name_prefix="netlab-maildir-io"
            )
        pool = _io_pool
    for _ in pool.map(work, todo):
        pass


def _sync_all(paths: list[Path]) -> dict[Path, BaseException]:
    """
    fsync every file or directory of C{paths} at once (in threads, so that
    the file system commits them together); return the errors by path.
    """
    problems: dict[Path, BaseException] = {}

    def sync(path: Path) -> None:
        try:
            fsync_path(path)
        except OSError as e:
            problems[path] = e

    _concurrently(sync, paths)
    return problems


def _create_maildir(path: Path, *, folder: bool, exist_ok: bool = False) -> None:
    """
    Create a Maildir (with C{mailbox.Maildir}) and its UID list in a
    temporary directory beside C{path}, then rename it into place, so that
    no half-made mailbox is ever visible.  (C{netlab fetch} makes its
    Maildir's directories in place instead: that Maildir may be another
    program's, and has no UID list to go with it.)
    """
    if exist_ok and (path / "cur").is_dir():
        return
    staging = path.with_name(f"netlab-new-{secrets.token_hex(8)}")
    user_directory = path.parent if folder else None
    try:
        stdlib_mailbox.Maildir(staging, create=True)
        if folder:
            (staging / "maildirfolder").touch()
        new_uidlist(staging / UIDLIST_NAME, user_directory)
        try:
            os.rename(staging, path)
        except OSError as e:
            if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
                if exist_ok or (not folder and (path / "cur").is_dir()):
                    return
                raise MailboxExists(f"{path.name} already exists") from None
            raise
        fsync_directory(path.parent)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)


__all__ = [
    "DELETED",
    "FLAG_LETTERS",
    "HIERARCHY_DELIMITER",
    "INBOX",
    "SEEN",
    "SYSTEM_FLAGS",
    "UIDLIST_NAME",
    "UIDVALIDITY_LOCK_NAME",
    "UIDVALIDITY_NAME",
    "Delivery",
    "Envelope",
    "Folder",
    "FolderChange",
    "FolderSnapshot",
    "FolderStatus",
    "InvalidName",
    "KeywordLimit",
    "MailStore",
    "MailStoreError",
    "MailboxExists",
    "MailboxHasChildren",
    "MessageGone",
    "NoSuchMailbox",
    "Retention",
    "StoreListener",
    "StoredMessage",
    "crlf_size",
    "validate_address",
    "validate_mailbox_name",
]
