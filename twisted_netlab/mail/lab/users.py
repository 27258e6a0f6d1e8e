"""
The mail lab's users: a file of addresses with salted C{hashlib.scrypt}
password hashes, and a L{twisted.cred} checker over it.

The file (C{STATE/users}) has one user a line, C{ADDRESS SCHEME:N:R:P:SALT:HASH}
with C{scrypt} as the scheme and base64 salt and hash; C{#} starts a comment.
It is rewritten atomically (a temporary file, then C{os.replace}) under a lock,
so C{netlab mail-user} can change it while the lab runs: the lab reads it
again whenever it changes.  Login names are full addresses, compared
case-insensitively.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.interfaces import IReactorThreads
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from zope.interface import implementer

from twisted_netlab.durable import replace_file
from twisted_netlab.errors import UsageProblem

#: scrypt cost parameters for new hashes: 16 MiB and about 50 ms a hash.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_HASH_BYTES = 32

_HEADER = (
    "# netlab mail lab users: ADDRESS scrypt:N:R:P:SALT:HASH (base64).\n"
    "# Manage with: netlab mail-user add|remove|list --state DIR ADDRESS\n"
)

# A dot-atom local part (without '/', which would name a directory) and a
# domain of letter-digit-hyphen labels: the address is also a directory name
# under STATE/mail, so nothing in it may climb out of there.
_LOCAL = r"[A-Za-z0-9!#$%&'*+=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+=?^_`{|}~-]+)*"
_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_ADDRESS = re.compile(rf"{_LOCAL}@{_LABEL}(?:\.{_LABEL})*")
_DOMAIN = re.compile(rf"{_LABEL}(?:\.{_LABEL})*")


class BadAddress(UsageProblem):
    """
    Not an address the lab can serve (C{local@domain}, ASCII, no C{/}).
    """


class BadDomain(UsageProblem):
    """
    Not a domain name the lab can serve.
    """


class UsersFileError(UsageProblem):
    """
    The users file cannot be read, parsed or written.
    """


class BadPassword(UsageProblem):
    """
    A password the lab refuses to store (an empty one).
    """


class UnknownUser(UsageProblem):
    """
    No such user in the users file.
    """


def normalize_address(address: str) -> str:
    """
    The lowercased form of C{address}, the lab's name for the user.

    @raise BadAddress: C{address} is not C{local@domain} with a dot-atom
        local part and a domain name (at most 254 characters).
    """
    if not (len(address) <= 254 and _ADDRESS.fullmatch(address)):
        raise BadAddress(
            f"bad address {address!r}: expected local@domain "
            "(ASCII letters, digits and !#$%&'*+=?^_`{|}~- in the local part)"
        )
    return address.lower()


def normalize_domain(domain: str) -> str:
    """
    The lowercased form of C{domain}.

    @raise BadDomain: C{domain} is not a domain name.
    """
    if not (len(domain) <= 253 and _DOMAIN.fullmatch(domain)):
        raise BadDomain(f"bad domain {domain!r}: expected a name like example.test")
    return domain.lower()


@dataclass(frozen=True)
class _Hash:
    n: int
    r: int
    p: int
    salt: bytes
    digest: bytes

    @classmethod
    def new(cls, password: str) -> _Hash:
        salt = secrets.token_bytes(_SALT_BYTES)
        digest = _scrypt(password, salt, SCRYPT_N, SCRYPT_R, SCRYPT_P)
        return cls(SCRYPT_N, SCRYPT_R, SCRYPT_P, salt, digest)

    @classmethod
    def parse(cls, text: str) -> _Hash:
        scheme, n, r, p, salt, digest = text.split(":")
        if scheme != "scrypt":
            raise ValueError(f"unknown scheme {scheme!r}")
        log_n = int(n).bit_length() - 1
        if int(n) != 2**log_n or not (1 <= log_n <= 20):
            raise ValueError("N is not a power of two up to 2**20")
        if not (1 <= int(r) <= 32 and 1 <= int(p) <= 16):
            raise ValueError("r or p out of range")
        return cls(
            int(n),
            int(r),
            int(p),
            base64.b64decode(salt, validate=True),
            base64.b64decode(digest, validate=True),
        )

    def __str__(self) -> str:
        salt = base64.b64encode(self.salt).decode("ascii")
        digest = base64.b64encode(self.digest).decode("ascii")
        return f"scrypt:{self.n}:{self.r}:{self.p}:{salt}:{digest}"

    def matches(self, password: str) -> bool:
        candidate = _scrypt(password, self.salt, self.n, self.r, self.p)
        return hmac.compare_digest(candidate, self.digest)


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"),
        salt=salt,
        n=n,
        r=r,
        p=p,
        maxmem=256 * n * r + 1024 * 1024,
        dklen=_HASH_BYTES,
    )


# Compared against when the user does not exist, so that a wrong address
# costs as much time as a wrong password.
_DUMMY = _Hash(SCRYPT_N, SCRYPT_R, SCRYPT_P, b"\0" * _SALT_BYTES, b"\0" * _HASH_BYTES)


class UsersFile:
    """
    The users file at C{path}; a missing file has no users.

    Every method reads the file afresh when it has changed on disk, so
    changes made by other processes are seen.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._cache: tuple[tuple[int, int, int], dict[str, _Hash]] | None = None

    def _lock_path(self) -> Path:
        return self.path.with_name(self.path.name + ".lock")

    def _load(self) -> dict[str, _Hash]:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return {}
        except OSError as e:
            raise UsersFileError(
                f"cannot read users file {self.path}: {e.strerror}"
            ) from None
        key = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
        cache = self._cache
        if cache is not None and cache[0] == key:
            return cache[1]
        try:
            text = self.path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            reason = e.strerror if isinstance(e, OSError) else "not UTF-8 text"
            raise UsersFileError(
                f"cannot read users file {self.path}: {reason}"
            ) from None
        users = self._parse(text)
        self._cache = (key, users)
        return users

    def _parse(self, text: str) -> dict[str, _Hash]:
        users: dict[str, _Hash] = {}
        for number, line in enumerate(text.splitlines(), 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            try:
                address, hashed = line.split()
                users[normalize_address(address)] = _Hash.parse(hashed)
            except (ValueError, BadAddress):
                raise UsersFileError(
                    f"users file {self.path}, line {number}: not "
                    "'ADDRESS scrypt:N:R:P:SALT:HASH'"
                ) from None
        return users

    @contextmanager
    def _locked(self) -> Iterator[None]:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self._lock_path(), os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as e:
            raise UsersFileError(
                f"cannot lock users file {self.path}: {e.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write(self, users: dict[str, _Hash]) -> None:
        lines = [_HEADER] + [f"{a} {h}\n" for a, h in sorted(users.items())]
        try:
            replace_file(self.path, "".join(lines).encode("utf-8"))
        except OSError as e:
            raise UsersFileError(
                f"cannot write users file {self.path}: {e.strerror}"
            ) from None
        self._cache = None

    def add(self, address: str, password: str) -> None:
        """
        Add the user C{address}, or set its password if it exists.

        @raise BadAddress: C{address} is not an address.
        @raise BadPassword: C{password} is empty.
        @raise UsersFileError: the file cannot be read or written.
        """
        address = normalize_address(address)
        if not password:
            raise BadPassword(f"empty password for {address}")
        hashed = _Hash.new(password)
        with self._locked():
            users = dict(self._load())
            users[address] = hashed
            self._write(users)

    def remove(self, address: str) -> None:
        """
        Remove the user C{address} (its mail stays where it is).

        @raise UnknownUser: there is no such user.
        @raise UsersFileError: the file cannot be read or written.
        """
        address = normalize_address(address)
        with self._locked():
            users = dict(self._load())
            if address not in users:
                raise UnknownUser(f"no user {address} in {self.path}")
            del users[address]
            self._write(users)

    def addresses(self) -> list[str]:
        """
        Every user's address, sorted.
        """
        return sorted(self._load())

    def verify(self, address: str, password: str) -> bool:
        """
        Whether C{password} is C{address}'s password.  Takes as long for an
        unknown address as for a wrong password.
        """
        try:
            address = normalize_address(address)
        except BadAddress:
            address = ""
        hashed = self._load().get(address)
        if hashed is None:
            _DUMMY.matches(password)
            return False
        return hashed.matches(password)

    def __contains__(self, address: object) -> bool:
        if not isinstance(address, str):
            return False
        try:
            return normalize_address(address) in self._load()
        except BadAddress:
            return False

    def __len__(self) -> int:
        return len(self._load())


@implementer(ICredentialsChecker)
class UsersChecker:
    """
    Check user names and passwords against a L{UsersFile}.

    The avatar ID is the lowercased address as bytes.  Given a C{reactor}
    with threads, the (deliberately slow) hash runs in C{pool} (default: the
    reactor's thread pool) instead of blocking the reactor; otherwise at once.
    """

    credentialInterfaces = (IUsernamePassword,)
    log = Logger()

    def __init__(
        self, users: UsersFile, *, reactor: Any = None, pool: Any = None
    ) -> None:
        self.users = users
        self._reactor = reactor if IReactorThreads.providedBy(reactor) else None
        #: Where hashes are checked (L{None}: the reactor's thread pool).
        self.pool = pool

    def requestAvatarId(self, credentials: Any) -> Deferred[bytes | tuple[()]]:
        username, password = credentials.username, credentials.password
        try:
            if isinstance(username, bytes):
                username = username.decode("utf-8")
            if isinstance(password, bytes):
                password = password.decode("utf-8")
            address = normalize_address(username)
        except (UnicodeDecodeError, BadAddress):
            return fail(UnauthorizedLogin("bad user name or password"))
        if self._reactor is None:
            try:
                ok = self.users.verify(address, password)
            except UsersFileError:
                self.log.failure("cannot check a password")
                return fail(UnauthorizedLogin("users file unreadable"))
            return self._result(ok, address)
        d = deferToThreadPool(
            self._reactor,
            self.pool if self.pool is not None else self._reactor.getThreadPool(),
            self.users.verify,
            address,
            password,
        )

        def checked(ok: bool) -> Deferred[bytes | tuple[()]]:
            return self._result(ok, address)

        def broken(reason: Any) -> Deferred[bytes | tuple[()]]:
            self.log.failure("cannot check a password", reason)
            return fail(UnauthorizedLogin("users file unreadable"))

        return d.addCallbacks(checked, broken)

    def _result(self, ok: bool, address: str) -> Deferred[bytes | tuple[()]]:
        if ok:
            return succeed(address.encode("ascii"))
        return fail(UnauthorizedLogin("bad user name or password"))
