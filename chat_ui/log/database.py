"""Database URLs of the conversation log, and the peewee databases they open.

Accepted forms:

- ``sqlite:///relative/path.sqlite3`` (relative to the working directory at open time) or
  ``sqlite:////absolute/path.sqlite3``. Missing parent directories are created.
- ``mysql://user:password@host:port/dbname``, optionally followed by driver options such as
  ``?connect_timeout=5&ssl_ca=/etc/ssl/rds-ca.pem``. The database must already exist.
  The password may also come from the environment or AWS SSM (see credentials.py).

The password is percent-decoded before it goes to PyMySQL. Every string this module
builds for messages and logs shows it as ``***``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal
from urllib.parse import parse_qsl, quote, unquote, urlsplit

import peewee

from chat_ui.errors import InvalidDatabaseURL, LogDatabaseError
from chat_ui.log.pool import LogMySQLDatabase, LogSqliteDatabase

DEFAULT_DATABASE_URL = "sqlite:///var/veraclaim.sqlite3"
ACCEPTED_FORMS = "sqlite:///path/to/file.sqlite3 or mysql://user:password@host:port/dbname"
MYSQL_DEFAULT_PORT = 3306
PASSWORD_MASK = "***"


def _parse_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in ("1", "true", "yes"):
        return True
    if lowered in ("0", "false", "no"):
        return False
    raise ValueError(f"expected true or false, got {value!r}")


def _parse_seconds(value: str) -> int:
    seconds = int(value)
    if seconds <= 0:
        raise ValueError(f"expected a positive number of seconds, got {value!r}")
    return seconds


# Query-string options passed on to pymysql.connect(); the timeouts are in seconds.
MYSQL_URL_OPTIONS: dict[str, Callable[[str], Any]] = {
    "connect_timeout": _parse_seconds,
    "read_timeout": _parse_seconds,
    "write_timeout": _parse_seconds,
    "ssl_ca": str,
    "ssl_cert": str,
    "ssl_key": str,
    "ssl_verify_cert": _parse_bool,
    "ssl_verify_identity": _parse_bool,
    # SQL run on every new connection, e.g. SET SESSION wait_timeout=600.
    "init_command": str,
}

# MySQL's TEXT stores at most 65,535 bytes, about 21,800 three-byte Hangul syllables, so long
# columns use LONGTEXT (4 GB). DATETIME without a precision drops microseconds, which
# would tie the created_at of turns written in the same second.
MYSQL_FIELD_TYPES = {"LONGTEXT": "LONGTEXT", "DATETIME": "DATETIME(6)"}
SQLITE_FIELD_TYPES = {"LONGTEXT": "TEXT"}

# WAL lets the app's threads read while one of them writes.
SQLITE_PRAGMAS = {"journal_mode": "wal", "foreign_keys": 1}
# A deferred transaction that reads and then writes fails at once with "database is
# locked" when another writer committed in between. BEGIN IMMEDIATE takes the write lock
# first, so concurrent writers wait up to SQLITE_BUSY_TIMEOUT_S instead.
SQLITE_LOCK_TYPE = "IMMEDIATE"
SQLITE_BUSY_TIMEOUT_S = 5


def mask_url(url: str) -> str:
    """Return ``url`` with the password part of its user info replaced by ``***``.

    Everything up to the last ``@`` after ``://`` counts as user info. That over-masks a
    URL whose query contains ``@``, but it never shows a password, even one that
    contains an unescaped ``/`` or ``@``.
    """
    scheme, separator, rest = url.partition("://")
    if not separator or "@" not in rest:
        return url

    userinfo, _, host_and_path = rest.rpartition("@")
    if ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:{PASSWORD_MASK}@{host_and_path}"


@dataclass(frozen=True)
class DatabaseTarget:
    """A parsed database URL: which database to open and how to name it in messages."""

    kind: Literal["sqlite", "mysql"]
    display_name: str
    # Set exactly when kind is "sqlite".
    sqlite_path: Path | None = None
    mysql_params: dict[str, Any] = field(default_factory=dict, repr=False)
    password: str = field(default="", repr=False)

    @property
    def storage_key(self) -> str:
        """Where the records land, without user or password: the same for every URL that
        reaches the same SQLite file or MySQL database."""
        if self.sqlite_path is not None:
            return f"sqlite:{self.sqlite_path}"
        params = self.mysql_params
        return f"mysql:{params['host']}:{params['port']}/{params['database']}"

    @property
    def has_user_without_password(self) -> bool:
        """Whether this is a MySQL target whose URL names a user but no password."""
        return self.kind == "mysql" and not self.password

    def with_password(self, password: str) -> DatabaseTarget:
        """Return a copy that connects with ``password``."""
        params = {**self.mysql_params, "password": password}
        return dataclasses.replace(self, mysql_params=params, password=password)

    def scrub(self, text: str) -> str:
        """Return ``text`` with the password, plain or percent-encoded, replaced by ``***``.

        The password is masked where it is a credential: in a URL's user info and after
        ``password=`` or ``'password':``. A password of MIN_FREE_MASK_LENGTH or more
        characters is masked anywhere else too.
        """
        return scrub_password(text, self.password)


# A password this long is masked wherever it occurs, in case a driver echoes it somewhere
# unexpected. A string of 8 characters rarely occurs by chance. A shorter password is masked
# only where it is a credential, because masking every "a" in a message for the password
# "a" would garble the message and give the password away.
MIN_FREE_MASK_LENGTH = 8


def _credential_patterns(form: str) -> list[re.Pattern[str]]:
    value = re.escape(form)
    return [
        # URL user info: scheme://user:PASSWORD@host
        re.compile(rf"(://[^\s:/@]*:){value}(?=@)"),
        # Keyword arguments and dict or JSON reprs: password=PW, passwd='PW', "password": "PW".
        re.compile(
            rf"(\b(?:password|passwd)['\"]?\s*[:=]\s*['\"]?){value}(?=['\"\s,;&)}}]|$)",
            re.IGNORECASE,
        ),
    ]


def scrub_password(text: str, password: str) -> str:
    """Return ``text`` with ``password``, plain or percent-encoded, replaced by ``***`` where
    it is a credential, and anywhere if it is MIN_FREE_MASK_LENGTH characters or more."""
    if not password:
        return text
    # Longest form first, so that a form containing the other is masked whole.
    forms = sorted({password, quote(password, safe="")}, key=len, reverse=True)
    for form in forms:
        for pattern in _credential_patterns(form):
            text = pattern.sub(lambda match: match.group(1) + PASSWORD_MASK, text)
        if len(form) >= MIN_FREE_MASK_LENGTH:
            text = text.replace(form, PASSWORD_MASK)
    return text


def _invalid(url: str, problem: str, fix: str) -> InvalidDatabaseURL:
    return InvalidDatabaseURL(f"Invalid database URL {mask_url(url)!r}: {problem}. {fix}")


def parse_database_url(url: str) -> DatabaseTarget:
    """Parse a conversation log URL, raising InvalidDatabaseURL for an unsupported form.

    A relative SQLite path is resolved against the current working directory here, so a
    later ``chdir`` does not move the database.
    """
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    if scheme == "sqlite":
        return _parse_sqlite_url(url)
    if scheme == "mysql":
        return _parse_mysql_url(url)
    problem = f"unsupported scheme {scheme!r}" if scheme else "no scheme"
    raise _invalid(url, problem, f"Use {ACCEPTED_FORMS}.")


def _parse_sqlite_url(url: str) -> DatabaseTarget:
    parts = urlsplit(url)
    if parts.netloc:
        raise _invalid(
            url,
            f"a SQLite URL names no host, got {parts.netloc!r}",
            "Use three slashes: sqlite:///path/to/file.sqlite3.",
        )
    if parts.query:
        raise _invalid(url, "a SQLite URL takes no query options", "Remove the part after '?'.")

    # parts.path starts with the "/" that separates the empty host from the path.
    raw_path = unquote(parts.path[1:])
    if raw_path in ("", ":memory:"):
        # Each call opens a new connection, and an in-memory database vanishes with it.
        raise _invalid(
            url,
            "an in-memory or unnamed SQLite database does not persist between calls",
            "Name a file: sqlite:///path/to/file.sqlite3.",
        )

    path = Path(raw_path).expanduser().absolute()
    return DatabaseTarget(
        kind="sqlite",
        display_name=f"SQLite database {path}",
        sqlite_path=path,
    )


def _parse_mysql_url(url: str) -> DatabaseTarget:
    parts = urlsplit(url)
    try:
        port = parts.port or MYSQL_DEFAULT_PORT
    except ValueError as error:
        raise _invalid(
            url,
            f"invalid port ({error})",
            "Give the port as a number: mysql://user:password@host:3306/dbname.",
        ) from None

    if not parts.hostname:
        raise _invalid(url, "no host", "Use mysql://user:password@host:port/dbname.")
    if not parts.username:
        raise _invalid(url, "no user", "Use mysql://user:password@host:port/dbname.")
    database_name = unquote(parts.path[1:])
    if not database_name or "/" in database_name:
        raise _invalid(
            url,
            f"invalid database name {database_name!r}",
            "Name one database after the host: mysql://user:password@host:port/dbname.",
        )

    password = unquote(parts.password or "")
    params: dict[str, Any] = {
        "host": parts.hostname,
        "port": port,
        "user": unquote(parts.username),
        "password": password,
        "database": database_name,
    }
    params.update(_parse_mysql_options(url, parts.query))

    masked = mask_url(url)
    return DatabaseTarget(
        kind="mysql",
        display_name=f"MySQL database {masked}",
        mysql_params=params,
        password=password,
    )


def _parse_mysql_options(url: str, query: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        parse_value = MYSQL_URL_OPTIONS.get(key)
        if parse_value is None:
            accepted = ", ".join(sorted(MYSQL_URL_OPTIONS))
            raise _invalid(url, f"unknown option {key!r}", f"Use only {accepted}.")
        try:
            options[key] = parse_value(value)
        except ValueError as error:
            problem = f"invalid value for {key} ({error})"
            raise _invalid(url, problem, "Fix the value after '='.") from None
    return options


def open_database(
    target: DatabaseTarget, *, max_connections: int = 10, pool_wait_timeout_s: float = 10.0
) -> LogMySQLDatabase | LogSqliteDatabase:
    """Create an unconnected peewee database for ``target``.

    ``autoconnect`` is off, so a query outside ``connection_context()`` raises instead of
    opening a connection that nothing closes. For MySQL, ``max_connections`` caps the pool
    and a request waits up to ``pool_wait_timeout_s`` for a free connection. The pool's
    stale timeout is set at open, once the server's wait_timeout is known.
    """
    sqlite_path = target.sqlite_path
    if sqlite_path is not None:
        try:
            sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise LogDatabaseError(
                f"Could not create the directory of {target.display_name}: {error}. "
                "Choose a writable path in the database URL."
            ) from error
        return LogSqliteDatabase(
            str(sqlite_path),
            pragmas=SQLITE_PRAGMAS,
            lock_type=SQLITE_LOCK_TYPE,
            timeout=SQLITE_BUSY_TIMEOUT_S,
            field_types=SQLITE_FIELD_TYPES,
            autoconnect=False,
        )

    # A utf8 (3-byte utf8mb3) connection cannot send 4-byte characters such as emoji.
    # peewee's MySQLDatabase already defaults to utf8mb4, and passing it keeps that visible.
    params = dict(target.mysql_params)
    database_name = params.pop("database")
    return LogMySQLDatabase(
        database_name,
        scrub=target.scrub,
        max_connections=max_connections,
        timeout=pool_wait_timeout_s,
        charset="utf8mb4",
        field_types=MYSQL_FIELD_TYPES,
        autoconnect=False,
        **params,
    )


def is_mysql(database: peewee.Database) -> bool:
    """Return whether ``database`` speaks MySQL's SQL dialect (MySQL or MariaDB)."""
    return isinstance(database, peewee.MySQLDatabase)


_WHITESPACE = re.compile(r"\s+")


def describe_error(target: DatabaseTarget, error: BaseException) -> str:
    """Return a one-line description of a driver error with the password scrubbed."""
    text = _WHITESPACE.sub(" ", f"{type(error).__name__}: {error}").strip()
    return target.scrub(text)
