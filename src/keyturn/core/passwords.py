"""Password hashing (Argon2id; bcrypt accepted for imports) and the password policy."""

from __future__ import annotations

import contextlib
import gzip
import os
import secrets
import sys
import threading
import unicodedata
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import TypeVar

import bcrypt
from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

MIN_PASSWORD_LENGTH = 8
# NIST SP 800-63B asks for at least 64; the cap only keeps a hash request bounded.
MAX_PASSWORD_LENGTH = 1024
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
# The stored hash of an account without a password: no password matches it.
NO_PASSWORD = ""
# bcrypt reads at most 72 bytes; Node's bcrypt and bcryptjs silently cut there, so we do too.
_BCRYPT_MAX_BYTES = 72


@dataclass(frozen=True, slots=True)
class Argon2Parameters:
    memory_kib: int
    time_cost: int
    parallelism: int


def _usable_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# A hash waits for the event loop, not the other way round: with the default nice value a
# 20 ms Argon2 hash takes turns with the loop in slices of several milliseconds, and every
# token check caught behind one waits that long. At nice 10 the scheduler hands the hash
# short slices while the loop has work (about a tenth of the CPU), and all of it otherwise.
_HASHING_NICENESS = 10
Result = TypeVar("Result")


def _lower_thread_priority() -> None:
    if sys.platform == "linux":  # nice is per thread there; elsewhere it is the process's
        with contextlib.suppress(OSError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _HASHING_NICENESS)


def default_hashing_threads() -> int:
    """One hashing thread per usable CPU: more could run at once, none would finish sooner."""
    return _usable_cpus()


class PasswordHashing:
    """Hashes new passwords with Argon2id; verifies Argon2 and bcrypt hashes.

    The hashing itself runs on a few low-priority threads of its own (`threads`, see
    _run_hash), never on the threads that answer requests or keep the server up: it never
    delays the event loop, and a crowd of hashes never holds up anything but hashes.
    """

    def __init__(self, parameters: Argon2Parameters, *, threads: int | None = None) -> None:
        self._hasher = PasswordHasher(
            time_cost=parameters.time_cost,
            memory_cost=parameters.memory_kib,
            parallelism=parameters.parallelism,
            type=Type.ID,
        )
        self.threads = threads or default_hashing_threads()
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self.hashes_done = 0  # hashes and verifications run so far
        self._placeholder_hash: str | None = None

    def hash_password(self, password: str) -> str:
        normalized = normalize_for_hashing(password)
        return self._run_hash(lambda: self._hasher.hash(normalized))

    def verify_password(self, password_hash: str, password: str) -> bool:
        """True when `password` matches; False for a mismatch or an unreadable hash."""
        return self._run_hash(lambda: self._verify(password_hash, password))

    def close(self) -> None:
        """Let the hashing threads go once their work is done (a later hash starts new ones)."""
        with self._pool_lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)

    def _run_hash(self, work: Callable[[], Result]) -> Result:
        """Run one hash on the hashing threads. Each thread's Argon2 memory (19 MiB at
        OWASP's parameters) stays in its heap between hashes (glibc keeps a freed block
        that size for reuse), so the resident set holds at most one such block per thread.
        Handing it back after every hash was measured: 32-33 ms a hash became 45-49 (the
        pages are faulted in again)."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(
                    max_workers=self.threads,
                    thread_name_prefix="keyturn-hashing",
                    initializer=_lower_thread_priority,
                )
            pool = self._pool
        return pool.submit(self._counted, work).result()

    def _counted(self, work: Callable[[], Result]) -> Result:
        with self._pool_lock:
            self.hashes_done += 1
        return work()

    def _verify(self, password_hash: str, password: str) -> bool:
        if password_hash == NO_PASSWORD:
            # An account without a password (a provider created it) refuses every password,
            # after the work of a real check: the answer's timing does not tell it apart.
            self._verify_exactly(self._placeholder(), password)
            return False
        normalized = normalize_for_hashing(password)
        if self._verify_exactly(password_hash, normalized):
            return True
        # Hashes made before passwords were normalised hold the characters as typed.
        return normalized != password and self._verify_exactly(password_hash, password)

    def _verify_exactly(self, password_hash: str, password: str) -> bool:
        if password_hash.startswith(_BCRYPT_PREFIXES):
            return _verify_bcrypt(password_hash, password)
        try:
            return self._hasher.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    def _placeholder(self) -> str:
        if self._placeholder_hash is None:
            self._placeholder_hash = self._hasher.hash(secrets.token_urlsafe(16))
        return self._placeholder_hash

    def needs_rehash(self, password_hash: str) -> bool:
        if password_hash == NO_PASSWORD:
            return False
        if password_hash.startswith(_BCRYPT_PREFIXES):
            return True
        try:
            return self._hasher.check_needs_rehash(password_hash)
        except InvalidHashError:
            return True


def normalize_for_hashing(password: str) -> str:
    """NIST SP 800-63B §5.1.1.2: one password, however the keyboard or IME composed it
    (full-width letters, ligatures, precomposed or combining accents), hashes the same."""
    return unicodedata.normalize("NFKC", password)


def is_bcrypt_hash(password_hash: str) -> bool:
    return password_hash.startswith(_BCRYPT_PREFIXES)


def _verify_bcrypt(password_hash: str, password: str) -> bool:
    # PHP writes $2y$, which is the same algorithm as $2b$.
    normalized = "$2b$" + password_hash[4:] if password_hash.startswith("$2y$") else password_hash
    try:
        return bcrypt.checkpw(password.encode()[:_BCRYPT_MAX_BYTES], normalized.encode())
    except ValueError:
        return False


@cache
def common_passwords() -> frozenset[str]:
    data = resources.files("keyturn.core").joinpath("data/common_passwords.txt.gz").read_bytes()
    return frozenset(gzip.decompress(data).decode().split())


def password_problems(
    password: str, *, email: str | None = None, username: str | None = None
) -> list[str]:
    """Reasons the password is refused (NIST SP 800-63B §5.1.1.2); empty when it is fine.

    No composition rules: length, a list of common passwords and the account's own names.
    """
    # Length counts the characters as typed (NFC only joins a letter and its accent): NFKC
    # expands some single characters into many (U+FDFA into 18), which would let a
    # one-character password pass the minimum.
    typed_length = len(unicodedata.normalize("NFC", password))
    normalized = normalize_for_hashing(password)
    problems: list[str] = []
    if typed_length < MIN_PASSWORD_LENGTH:
        problems.append(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    if typed_length > MAX_PASSWORD_LENGTH or len(normalized) > MAX_PASSWORD_LENGTH:
        problems.append(f"The password must have at most {MAX_PASSWORD_LENGTH} characters.")
    lowered = normalized.casefold()
    if lowered in common_passwords():
        problems.append("The password is one of the most commonly used passwords.")
    elif len(set(lowered)) == 1 and normalized:
        problems.append("The password repeats a single character.")
    identities = {
        name.casefold()
        for name in (email, email.split("@", 1)[0] if email else None, username)
        if name
    }
    if lowered in identities:
        problems.append("The password must not be your email address or username.")
    return problems
