"""Peewee database classes of the log: a pooled, reconnecting MySQL database and a SQLite one.

MySQL connections come from a pool. A connection is replaced before the server's
``wait_timeout`` closes it (the stale timeout), and the pool pings each connection when
it is taken. A connection that dies while a request uses it (error 2006, 2013 or 4031) is
replaced and the statement runs again, but only outside a transaction, where running it
again cannot apply half a transaction twice.

SQLite opens one connection per request and closes it afterwards, so a deleted or moved
file shows up as an error at the next request instead of a write to an unlinked inode.
Both classes count the connections in use, which tests and ``status`` report.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

import peewee
from playhouse.pool import PooledMySQLDatabase

logger = logging.getLogger(__name__)

# MySQL client and server error codes that mean the connection is gone:
# 2006 server has gone away, 2013 lost connection during a query, 4031 the server closed
# an idle connection (MySQL 8.0.24 and later).
RECONNECT_ERROR_CODES = frozenset({2006, 2013, 4031})


def mysql_error_code(error: BaseException) -> int | None:
    """Return the MySQL error number of a PyMySQL or peewee error, or None."""
    code = error.args[0] if error.args else None
    return code if isinstance(code, int) and not isinstance(code, bool) else None


def stale_timeout_for(wait_timeout_s: int, max_age_s: int) -> int:
    """Return the pool's stale timeout in seconds for the server's ``wait_timeout``.

    A fifth of the wait (at least 1 s) stays as a margin, so the pool retires a connection
    before the server closes it. ``max_age_s`` caps the result.
    """
    margin = max(1, wait_timeout_s // 5)
    return max(1, min(max_age_s, wait_timeout_s - margin))


class LogMySQLDatabase(PooledMySQLDatabase):
    """Pooled MySQL database that replaces a dropped connection outside transactions.

    ``scrub`` removes the password from error text before it is logged.
    """

    def __init__(self, database: str, *, scrub: Callable[[str], str], **kwargs: Any) -> None:
        super().__init__(database, **kwargs)
        self._scrub = scrub
        self._reconnect_count = 0
        self._reconnect_lock = threading.Lock()

    @property
    def stale_timeout_s(self) -> int | None:
        """Seconds after which a pooled connection is replaced, or None for never."""
        return self._stale_timeout

    def set_stale_timeout(self, seconds: int) -> None:
        """Replace pooled connections older than ``seconds`` from now on."""
        with self._pool_lock:
            self._stale_timeout = seconds

    @property
    def reconnect_count(self) -> int:
        """Dropped connections replaced since the database was created."""
        return self._reconnect_count

    def connections_in_use(self) -> int:
        """Return the number of pooled connections that requests hold right now."""
        with self._pool_lock:
            return len(self._in_use)

    def execute_sql(self, sql: str, params: Any = None) -> Any:
        try:
            return super().execute_sql(sql, params)
        except (peewee.OperationalError, peewee.InterfaceError) as error:
            if self.in_transaction() or mysql_error_code(error) not in RECONNECT_ERROR_CODES:
                raise
            self._replace_dead_connection(error)
        return super().execute_sql(sql, params)

    def _replace_dead_connection(self, error: BaseException) -> None:
        with self._reconnect_lock:
            self._reconnect_count += 1
            count = self._reconnect_count
        logger.warning(
            "Lost the connection to MySQL database %s (%s); reconnecting (reconnect %d)",
            self.database,
            self._scrub(f"{type(error).__name__}: {error}"),
            count,
        )

        # manual_close() drops the connection from the pool instead of returning it, and
        # connect() resets the thread's list of open connection contexts, which the
        # enclosing connection_context() needs to close the new connection at its end.
        contexts = list(self._state.ctx)
        self.manual_close()
        self.connect()
        self._state.ctx = contexts


class LogSqliteDatabase(peewee.SqliteDatabase):
    """SQLite database that counts its open connections."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._open_count = 0
        self._count_lock = threading.Lock()

    def _connect(self) -> Any:
        connection = super()._connect()
        with self._count_lock:
            self._open_count += 1
        return connection

    def _close(self, conn: Any) -> None:
        try:
            super()._close(conn)
        finally:
            with self._count_lock:
                self._open_count -= 1

    def connections_in_use(self) -> int:
        """Return the number of connections that requests hold right now."""
        with self._count_lock:
            return self._open_count
