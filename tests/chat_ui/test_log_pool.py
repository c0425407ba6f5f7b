"""Connections of the conversation log: the MariaDB pool, its stale timeout, reconnects, and
connections given back after every request on both backends."""

from __future__ import annotations

import logging
import random
import threading
import time
import uuid
from collections.abc import Iterator

import peewee
import pymysql
import pytest

from chat_ui.errors import ConversationNotFoundError, LogDatabaseError, TurnNotFoundError
from chat_ui.log import ConversationLog, LogSettings
from chat_ui.log.database import open_database, parse_database_url
from chat_ui.log.pool import LogMySQLDatabase, stale_timeout_for
from tests.chat_ui.support import make_turn

# A session wait_timeout short enough to expire during a test.
SHORT_WAIT_TIMEOUT_S = 5
IDLE_PERIOD_S = 10


@pytest.fixture
def short_wait_url(mariadb_url: str) -> str:
    """The test database's URL with a per-connection wait_timeout of 5 s."""
    return f"{mariadb_url}?init_command=SET+SESSION+wait_timeout%3D{SHORT_WAIT_TIMEOUT_S}"


@pytest.fixture
def pooled_database(short_wait_url: str) -> Iterator[LogMySQLDatabase]:
    database = open_database(parse_database_url(short_wait_url))
    assert isinstance(database, LogMySQLDatabase)
    yield database
    database.close_all()


def kill_sessions(admin: pymysql.connections.Connection, database: str) -> int:
    """Kill every server session that uses ``database``; return how many there were."""
    with admin.cursor() as cursor:
        cursor.execute(
            "SELECT ID FROM information_schema.PROCESSLIST WHERE DB = %s", (database,)
        )
        ids = [row[0] for row in cursor.fetchall()]
        for session_id in ids:
            try:
                cursor.execute(f"KILL CONNECTION {int(session_id)}")
            except pymysql.err.OperationalError:
                pass  # ended on its own in between
    return len(ids)


STALE_TIMEOUTS = [
    (5, 3600, 4),  # the test's short wait: one second of margin
    (28_800, 3600, 3600),  # MySQL's default 8 hours: capped by the maximum age
    (600, 3600, 480),  # a tuned server: a fifth of the wait as margin
    (1, 3600, 1),  # the server minimum: never below one second
]


@pytest.mark.parametrize(("wait_timeout", "max_age", "expected"), STALE_TIMEOUTS)
def test_stale_timeout_below_wait_timeout(wait_timeout: int, max_age: int, expected: int) -> None:
    assert stale_timeout_for(wait_timeout, max_age) == expected


def test_open_reads_server_wait_timeout(short_wait_url: str, settings: LogSettings) -> None:
    with ConversationLog.open(short_wait_url, settings=settings) as log:
        status = log.status()

    assert status.pool_stale_timeout_s == SHORT_WAIT_TIMEOUT_S - 1


def test_idle_past_wait_timeout_still_works(
    short_wait_url: str, settings: LogSettings, caplog: pytest.LogCaptureFixture
) -> None:
    with ConversationLog.open(short_wait_url, settings=settings) as log:
        conversation_id = log.start_conversation()
        first = log.record_turn(make_turn(conversation_id, question="before"))
        assert log.flush() == 0

        # The server closes every idle session after 5 s; the pool retires them at 4 s.
        time.sleep(IDLE_PERIOD_S)
        caplog.set_level(logging.WARNING)
        second = log.record_turn(make_turn(conversation_id, question="after"))

        assert log.flush() == 0
        assert [t.turn_id for t in log.turns(conversation_id)] == [first, second]
        assert log.connections_in_use() == 0
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_dead_pooled_connection_discarded(
    pooled_database: LogMySQLDatabase, mariadb_admin: pymysql.connections.Connection
) -> None:
    # The pool pings a connection before handing it out, so one the server closed while
    # it sat in the pool is replaced, even with no stale timeout.
    with pooled_database.connection_context():
        first = pooled_database.execute_sql("SELECT CONNECTION_ID()").fetchone()[0]
    kill_sessions(mariadb_admin, pooled_database.database)

    with pooled_database.connection_context():
        second = pooled_database.execute_sql("SELECT CONNECTION_ID()").fetchone()[0]

    assert second != first
    assert pooled_database.reconnect_count == 0


def test_connection_lost_mid_request_reconnects(
    pooled_database: LogMySQLDatabase,
    mariadb_admin: pymysql.connections.Connection,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="chat_ui.log.pool")

    with pooled_database.connection_context():
        first = pooled_database.execute_sql("SELECT CONNECTION_ID()").fetchone()[0]
        kill_sessions(mariadb_admin, pooled_database.database)
        second = pooled_database.execute_sql("SELECT CONNECTION_ID()").fetchone()[0]

    assert second != first
    assert pooled_database.reconnect_count == 1
    assert pooled_database.connections_in_use() == 0
    messages = [record.getMessage() for record in caplog.records]
    assert any("reconnecting (reconnect 1)" in message for message in messages), messages


def test_connection_lost_in_transaction_raises(
    pooled_database: LogMySQLDatabase, mariadb_admin: pymysql.connections.Connection
) -> None:
    # Running the statement again on a new connection would drop the transaction's
    # earlier statements, so the error reaches the caller.
    with pytest.raises((peewee.OperationalError, peewee.InterfaceError)):
        with pooled_database.connection_context():
            with pooled_database.atomic():
                pooled_database.execute_sql("SELECT 1")
                kill_sessions(mariadb_admin, pooled_database.database)
                pooled_database.execute_sql("SELECT 1")

    assert pooled_database.reconnect_count == 0
    assert pooled_database.connections_in_use() == 0
    with pooled_database.connection_context():
        assert pooled_database.execute_sql("SELECT 1").fetchone()[0] == 1


def test_hundred_requests_return_connections(
    log_url: str, settings: LogSettings, request: pytest.FixtureRequest
) -> None:
    admin = request.getfixturevalue("mariadb_admin") if log_url.startswith("mysql") else None
    log = ConversationLog.open(log_url, settings=settings)
    conversation_id = log.start_conversation()
    known_turn = log.record_turn(make_turn(conversation_id))
    outcomes: list[str] = []
    unexpected: list[BaseException] = []
    outcomes_lock = threading.Lock()

    # Each request either succeeds or raises inside its connection context.
    def one_request(index: int) -> None:
        kind = index % 5
        try:
            if kind == 0:
                log.turns(str(uuid.uuid4()))  # raises after its first query
            elif kind == 1:
                log.get_turn(str(uuid.uuid4()))  # raises after its query
            elif kind == 2:
                log.get_turn(known_turn)
            elif kind == 3:
                log.conversations(None, limit=5)
            else:
                log.record_turn(make_turn(conversation_id, question=f"q{index}"))
                log.turns(conversation_id)
            outcome = "ok"
        except (ConversationNotFoundError, TurnNotFoundError) as error:
            outcome = type(error).__name__
        except LogDatabaseError:
            outcome = "LogDatabaseError"  # a session killed while it was in use
        except BaseException as error:  # reported by the assert below
            unexpected.append(error)
            return
        with outcomes_lock:
            outcomes.append(outcome)

    def worker(indexes: list[int]) -> None:
        for index in indexes:
            if admin is not None and index % 25 == 12:
                # Kill the pool's sessions while other threads use them.
                kill_sessions(admin, parse_database_url(log_url).mysql_params["database"])
            one_request(index)
            time.sleep(random.uniform(0, 0.005))

    threads = [threading.Thread(target=worker, args=(list(range(w, 100, 4)),)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert unexpected == []
    assert len(outcomes) == 100
    assert outcomes.count("ConversationNotFoundError") == 20
    assert outcomes.count("TurnNotFoundError") == 20
    assert log.connections_in_use() == 0
    assert log.flush() == 0
    assert len(log.turns(conversation_id)) == 21
    log.close()
    assert log.connections_in_use() == 0
