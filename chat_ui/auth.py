"""Sign-in accounts of the chat server: user names, password hashes and admin rights.

Accounts come from `VERACLAIM_AUTH_USERS` (comma-separated `user:secret` pairs) and from the
file named by `VERACLAIM_AUTH_FILE` (one `user:secret` per line, `#` starts a comment). A
secret is one of:

- `pbkdf2_sha256$ITERATIONS$SALT$HASH`, as `veraclaim-chat hash-password` prints it (the
  layout of Django's PBKDF2 hasher, so its hashes work too),
- a bcrypt hash (`$2a$`, `$2b$` or `$2y$`, as `htpasswd -B` writes it), which needs the
  `bcrypt` package,
- anything else, taken as a plain-text password (accepted, with a warning at start-up).

Secrets never reach a log line, an error message or a repr.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path

from chat_ui.errors import ChatUIError
from chat_ui.log.records import MAX_USER_LENGTH
from chat_ui.ops_settings import OpsSettings
from chat_ui.sign_in_limit import SignInLimiter

logger = logging.getLogger(__name__)

PBKDF2_PREFIX = "pbkdf2_sha256"
# OWASP's Password Storage Cheat Sheet (2023) recommends 600,000 iterations of
# PBKDF2-HMAC-SHA256. One check then takes about 0.3 s of CPU on a 2-core cloud VM.
PBKDF2_ITERATIONS = 600_000
_BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")


class AuthConfigError(ChatUIError, ValueError):
    """The sign-in settings (users, password file, admin users) are invalid."""


def hash_password(password: str, *, iterations: int = PBKDF2_ITERATIONS, salt: str | None = None) -> str:
    """Hash `password` with PBKDF2-HMAC-SHA256 into `pbkdf2_sha256$ITERATIONS$SALT$HASH`."""
    if not password:
        raise AuthConfigError("Cannot hash an empty password: choose a non-empty one.")
    salt = salt if salt is not None else secrets.token_urlsafe(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode("utf-8"), iterations)
    return f"{PBKDF2_PREFIX}${iterations}${salt}${base64.b64encode(digest).decode('ascii')}"


def verify_password(password: str, stored: str) -> bool:
    """Check `password` against a stored hash or plain-text password, in constant time."""
    if stored.startswith(PBKDF2_PREFIX + "$"):
        _, iterations, salt, expected = stored.split("$", 3)
        digest = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt.encode("utf-8"), int(iterations))
        return hmac.compare_digest(base64.b64encode(digest).decode("ascii"), expected)

    if stored.startswith(_BCRYPT_PREFIXES):
        import bcrypt

        try:
            return bcrypt.checkpw(password.encode("utf-8"), stored.encode("ascii"))
        except ValueError:
            # bcrypt 5 rejects passwords over 72 bytes instead of truncating them.
            return False

    return hmac.compare_digest(password.encode("utf-8"), stored.encode("utf-8"))


def is_hashed(stored: str) -> bool:
    return stored.startswith((PBKDF2_PREFIX + "$", *_BCRYPT_PREFIXES))


class Accounts:
    """The users who may sign in, their stored secrets, and which of them are admins.

    `limiter` counts failed sign-ins per user name and locks a name that fails too often.
    The default is a SignInLimiter with its default limits (see chat_ui.sign_in_limit).
    """

    def __init__(
        self,
        stored: dict[str, str],
        admins: frozenset[str] = frozenset(),
        *,
        limiter: SignInLimiter | None = None,
    ) -> None:
        self._stored = dict(stored)
        self.admins = admins
        self._timing_secret: str | None = None
        self.limiter = limiter if limiter is not None else SignInLimiter()

    def __bool__(self) -> bool:
        return bool(self._stored)

    def __len__(self) -> int:
        return len(self._stored)

    def __repr__(self) -> str:
        return f"<Accounts users={len(self._stored)} admins={len(self.admins)}>"

    @property
    def users(self) -> frozenset[str]:
        return frozenset(self._stored)

    def is_admin(self, user: str | None) -> bool:
        return user is not None and user in self.admins

    def verify(self, user: str, password: str) -> bool:
        """Return whether `user` may sign in with `password`, counting failures per user name.

        A locked name is rejected without checking the password. Unknown names are counted
        and locked like known ones, so a lock does not tell which names exist.
        """
        # NOTE: attempts that run at the same time all pass this check before any of them
        # fails, so a burst on several worker threads can try a few more than max_failures.
        if self.limiter.reject_if_locked(user):
            return False
        accepted = self._check_password(user, password)
        if accepted:
            self.limiter.record_success(user)
        else:
            self.limiter.record_failure(user)
        return accepted

    def _check_password(self, user: str, password: str) -> bool:
        stored = self._stored.get(user)
        if stored is None:
            # Check against a real account's stored secret and reject anyway, so an unknown
            # name costs what a known one does, whatever hash or plain text that account uses.
            # NOTE: with accounts of mixed kinds (bcrypt, PBKDF2, plain text) the time still
            # distinguishes a known name of another kind from an unknown one.
            verify_password(password, self._timing_reference())
            return False
        return verify_password(password, stored)

    def _timing_reference(self) -> str:
        if self._timing_secret is None:
            # The most common kind of stored secret; a PBKDF2 hash when there are no accounts.
            kinds: dict[bool, list[str]] = {True: [], False: []}
            for secret in self._stored.values():
                kinds[is_hashed(secret)].append(secret)
            common = max(kinds.values(), key=len)
            self._timing_secret = common[0] if common else hash_password(secrets.token_urlsafe(16))
        return self._timing_secret

    def verify_admin(self, user: str, password: str) -> bool:
        return self.verify(user, password) and self.is_admin(user)

    async def verify_async(self, user: str, password: str) -> bool:
        """`verify` on a worker thread: Gradio awaits a coroutine auth function on its event
        loop, and a PBKDF2 check would otherwise block every other request for its duration."""
        return await asyncio.to_thread(self.verify, user, password)

    async def verify_admin_async(self, user: str, password: str) -> bool:
        return await asyncio.to_thread(self.verify_admin, user, password)


def load_accounts(settings: OpsSettings) -> Accounts:
    """Read the accounts from `VERACLAIM_AUTH_USERS` and `VERACLAIM_AUTH_FILE`.

    Raises AuthConfigError for a malformed entry, a user defined twice, an admin without an
    account, or a password file that others may read. No accounts means no sign-in.
    """
    stored: dict[str, str] = {}
    origin: dict[str, str] = {}

    # 1. Collect every entry, refusing a user defined twice: which password wins would be a guess.
    for user, secret, where in _entries(settings):
        if user in stored:
            raise AuthConfigError(
                f"User {user!r} is defined twice, in {origin[user]} and in {where}. Keep one of them."
            )
        stored[user] = secret
        origin[user] = where

    # 2. Sign-in that was asked for but names nobody would leave the chat open to anyone.
    if not stored and _sign_in_requested(settings):
        raise AuthConfigError(
            "VERACLAIM_AUTH_USERS or VERACLAIM_AUTH_FILE is set but names no account, so sign-in "
            "would be off. Add user:password lines, or unset both to run without sign-in."
        )

    # 3. An admin without an account could never sign in, which hides a typo.
    admins = settings.admin_names()
    missing = sorted(admins - stored.keys())
    if missing:
        raise AuthConfigError(
            f"Admin users {', '.join(missing)} have no password in VERACLAIM_AUTH_USERS or "
            "VERACLAIM_AUTH_FILE. Add an account for each, or remove them from VERACLAIM_ADMIN_USERS."
        )

    plain = sum(1 for secret in stored.values() if not is_hashed(secret))
    if plain:
        logger.warning(
            "%d of %d sign-in accounts have a plain-text password; store a hash from "
            "`veraclaim-chat hash-password` instead",
            plain,
            len(stored),
        )
    if stored:
        logger.info("sign-in required: %d accounts, %d of them admins", len(stored), len(admins))
    return Accounts(stored, frozenset(admins))


def _sign_in_requested(settings: OpsSettings) -> bool:
    users = settings.auth_users.get_secret_value() if settings.auth_users is not None else ""
    return bool(users.strip()) or settings.auth_file is not None


def _entries(settings: OpsSettings) -> Iterator[tuple[str, str, str]]:
    """Yield (user, secret, where) for every account entry, `where` naming its source."""
    if settings.auth_users is not None:
        pairs = settings.auth_users.get_secret_value().split(",")
        for number, pair in enumerate(pairs, start=1):
            if pair.strip():
                yield _parse_entry(pair.strip(), f"VERACLAIM_AUTH_USERS entry {number}")

    if settings.auth_file is not None:
        path = settings.auth_file
        _check_private(path)
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise AuthConfigError(
                f"The password file {path} (VERACLAIM_AUTH_FILE) is not UTF-8 text ({exc.reason} at byte "
                f"{exc.start}). Save it as UTF-8 with one user:password or user:hash per line."
            ) from exc
        for number, line in enumerate(text.splitlines(), start=1):
            line = line.strip()
            if line and not line.startswith("#"):
                yield _parse_entry(line, f"{path}:{number}")


def _parse_entry(entry: str, where: str) -> tuple[str, str, str]:
    user, separator, secret = entry.partition(":")
    user = user.strip()
    if not separator or not user or not secret:
        raise AuthConfigError(f"Invalid account in {where}: expected user:password or user:hash.")
    check_user_name(user, where)
    _check_hash_form(secret, where)
    return user, secret, where


def check_user_name(user: str, where: str) -> None:
    """Reject a user name that the log's user column cannot hold or that Gradio's sign-in form
    would change, because the form strips spaces. `where` names the source in the message."""
    if not user or len(user) > MAX_USER_LENGTH or ":" in user or "," in user:
        raise AuthConfigError(
            f"Invalid user name in {where}: use 1 to {MAX_USER_LENGTH} characters without ':' or ','."
        )
    if any(ch.isspace() or not ch.isprintable() for ch in user):
        raise AuthConfigError(f"Invalid user name in {where}: remove spaces and control characters.")


def _check_hash_form(secret: str, where: str) -> None:
    """Reject a hash that verify_password could not check, naming the entry but not the secret."""
    if secret.startswith(PBKDF2_PREFIX + "$"):
        parts = secret.split("$")
        if len(parts) != 4 or not parts[1].isdigit() or int(parts[1]) < 1 or not parts[2] or not parts[3]:
            raise AuthConfigError(
                f"Invalid PBKDF2 hash in {where}: expected pbkdf2_sha256$ITERATIONS$SALT$HASH. "
                "Create one with `veraclaim-chat hash-password`."
            )
    elif secret.startswith(_BCRYPT_PREFIXES):
        try:
            import bcrypt  # noqa: F401
        except ImportError:
            # NOTE: no test runs this branch, because the test environment has bcrypt.
            raise AuthConfigError(
                f"{where} has a bcrypt hash, but the bcrypt package is missing. Install it with "
                "`pip install bcrypt`, or use a hash from `veraclaim-chat hash-password`."
            ) from None


def _check_private(path: Path) -> None:
    """Refuse a password file that its group or other users may read or write, as ssh does."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        raise AuthConfigError(
            f"The password file {path} (VERACLAIM_AUTH_FILE) does not exist. Create it or unset the variable."
        ) from None
    if not stat.S_ISREG(mode):
        raise AuthConfigError(f"The password file {path} (VERACLAIM_AUTH_FILE) is not a regular file.")
    if os.name == "posix" and mode & 0o077:
        raise AuthConfigError(
            f"The password file {path} has mode {stat.S_IMODE(mode):o}, so other users may read it. "
            f"Run `chmod 600 {path}`."
        )
