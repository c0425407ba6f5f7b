"""Connecting to the log's database: the error translation of every request, and the
checks and migrations that run when a log opens."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import peewee
from playhouse.pool import MaxConnectionsExceeded

from chat_ui.errors import LogDatabaseError, LogSchemaError
from chat_ui.log.charset import check_utf8mb4
from chat_ui.log.database import DatabaseTarget, describe_error
from chat_ui.log.migrations import (
    LATEST_VERSION,
    migrate_schema,
    pending_migrations,
    schema_version,
)
from chat_ui.log.pool import LogMySQLDatabase, mysql_error_code, stale_timeout_for
from chat_ui.log.settings import LogSettings

logger = logging.getLogger(__name__)

# MySQL server and client error codes (pymysql.constants.ER and CR) with a specific fix.
_MYSQL_HINTS = {
    1045: "Check the user and password in the database URL.",
    1049: "Create the database first: CREATE DATABASE `{database}` CHARACTER SET utf8mb4.",
    2003: "Check that the database server is running and that the URL's host and port are right.",
}
_MYSQL_DEFAULT_HINT = "Check that the database is reachable and that the database URL is right."
_SQLITE_HINT = (
    "Check that the file's directory exists and is writable, and that no other process "
    "holds a write lock for long."
)


def hint_for(target: DatabaseTarget, error: BaseException) -> str:
    if target.kind == "sqlite":
        return _SQLITE_HINT
    code = mysql_error_code(error)
    hint = _MYSQL_HINTS.get(code, _MYSQL_DEFAULT_HINT) if code else _MYSQL_DEFAULT_HINT
    return hint.format(database=target.mysql_params["database"])


@contextmanager
def translated_errors(target: DatabaseTarget, action: str) -> Iterator[None]:
    """Turn driver errors into LogDatabaseError; ``action`` completes "Could not ..."."""
    try:
        yield
    except (peewee.PeeweeException, MaxConnectionsExceeded) as error:
        detail = describe_error(target, error)
        hint = hint_for(target, error)
        # "from None": the message already contains the driver's error with the password
        # scrubbed, and a chained traceback would print it unscrubbed.
        raise LogDatabaseError(
            f"Could not {action} in {target.display_name}: {detail}. {hint}"
        ) from None


@contextmanager
def connected(
    target: DatabaseTarget, database: peewee.Database, action: str, *, transaction: bool
) -> Iterator[None]:
    """Run the block on a connection of its own, in a transaction if asked, and turn driver
    errors into LogDatabaseError."""
    with translated_errors(target, action):
        with database.connection_context():
            if transaction:
                with database.atomic():
                    yield
            else:
                yield


def prepare_schema(database: peewee.Database, name: str, settings: LogSettings) -> None:
    """Size the pool's stale timeout, check the character set and migrate the schema."""
    if isinstance(database, LogMySQLDatabase):
        wait_timeout = int(database.execute_sql("SELECT @@SESSION.wait_timeout").fetchone()[0])
        stale = stale_timeout_for(wait_timeout, settings.pool_max_age_s)
        database.set_stale_timeout(stale)
        logger.debug("wait_timeout of %s is %d s; pool stale timeout %d s", name, wait_timeout, stale)

    # Checked before migrating, so that no column is added to a table in a wrong charset.
    check_utf8mb4(database, name)
    version = schema_version(database)
    pending = pending_migrations(version, name)
    if pending and not settings.auto_migrate:
        raise LogSchemaError(
            f"The schema of {name} is at version {version}, and {len(pending)} migrations "
            f"up to version {LATEST_VERSION} are pending. Run `veraclaim-chat log migrate`, "
            "or set VERACLAIM_LOG_AUTO_MIGRATE=true."
        )
    if pending:
        migrate_schema(database, name)
    check_utf8mb4(database, name)


def close_connections(database: peewee.Database) -> None:
    if isinstance(database, LogMySQLDatabase):
        database.close_all()
    else:
        database.close()
