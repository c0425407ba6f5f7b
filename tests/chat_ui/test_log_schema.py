"""Schema of the conversation log: migrations, in-place upgrades, and the utf8mb4 check."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from pathlib import Path
from typing import Any

import peewee
import pymysql
import pytest

from chat_ui.errors import LogSchemaError
from chat_ui.log import ConversationLog, LogSettings
from chat_ui.log.database import open_database, parse_database_url
from chat_ui.log.migrations import LATEST_VERSION, MIGRATIONS, migrate_schema
from chat_ui.log.models import build_models
from tests.chat_ui.support import make_turn

# The schema that the first release's create_tables() made, copied from the databases it
# created, so the upgrade tests start from the real thing.
LEGACY_SQLITE_DDL = [
    'CREATE TABLE "conversation" ("id" TEXT NOT NULL PRIMARY KEY, "user" VARCHAR(255), '
    '"title" VARCHAR(255) NOT NULL, "created_at" DATETIME NOT NULL, '
    '"updated_at" DATETIME NOT NULL)',
    'CREATE INDEX "conversation_user_updated_at" ON "conversation" ("user", "updated_at")',
    'CREATE TABLE "turn" ("id" TEXT NOT NULL PRIMARY KEY, "conversation_id" TEXT NOT NULL, '
    '"question" TEXT NOT NULL, "answer" TEXT NOT NULL, "sources" TEXT NOT NULL, '
    '"model_id" VARCHAR(512) NOT NULL, "model_base_url" VARCHAR(512) NOT NULL, '
    '"latency_ms" INTEGER NOT NULL, "first_token_ms" INTEGER, "status" VARCHAR(16) NOT NULL, '
    '"error_type" VARCHAR(255), "error_message" TEXT, "created_at" DATETIME NOT NULL, '
    'FOREIGN KEY ("conversation_id") REFERENCES "conversation" ("id") ON DELETE CASCADE)',
    'CREATE INDEX "turn_conversation_id_created_at" ON "turn" ("conversation_id", "created_at")',
]
LEGACY_MARIADB_DDL = [
    """CREATE TABLE `conversation` (
  `id` varchar(40) NOT NULL,
  `user` varchar(255) DEFAULT NULL,
  `title` varchar(255) NOT NULL,
  `created_at` datetime(6) NOT NULL,
  `updated_at` datetime(6) NOT NULL,
  PRIMARY KEY (`id`),
  KEY `conversation_user_updated_at` (`user`,`updated_at`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci""",
    """CREATE TABLE `turn` (
  `id` varchar(40) NOT NULL,
  `conversation_id` varchar(40) NOT NULL,
  `question` longtext NOT NULL,
  `answer` longtext NOT NULL,
  `sources` longtext NOT NULL,
  `model_id` varchar(512) NOT NULL,
  `model_base_url` varchar(512) NOT NULL,
  `latency_ms` int(11) NOT NULL,
  `first_token_ms` int(11) DEFAULT NULL,
  `status` varchar(16) NOT NULL,
  `error_type` varchar(255) DEFAULT NULL,
  `error_message` longtext DEFAULT NULL,
  `created_at` datetime(6) NOT NULL,
  PRIMARY KEY (`id`),
  KEY `turn_conversation_id_created_at` (`conversation_id`,`created_at`),
  CONSTRAINT `turn_ibfk_1` FOREIGN KEY (`conversation_id`) REFERENCES `conversation` (`id`)
    ON DELETE CASCADE
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci""",
]
LEGACY_CONVERSATION_ID = uuid.UUID("7d1f0c2e-3b9a-4a51-9a57-0d3c2b1e4f60")
LEGACY_TURN_ID = uuid.UUID("0b9e6c4d-2f1a-4e8b-8c7d-6a5b4c3d2e1f")


def run_sql(url: str, statements: list[str], params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Run statements on the database at ``url`` outside the log; return the last rows."""
    database = open_database(parse_database_url(url))
    rows: list[tuple[Any, ...]] = []
    with database.connection_context():
        for statement in statements:
            rows = list(database.execute_sql(statement, params or None).fetchall())
    database.close_all() if hasattr(database, "close_all") else database.close()
    return rows


def create_legacy_database(url: str) -> None:
    """Create the first release's tables with one conversation and one turn in them."""
    mysql = url.startswith("mysql")
    ddl = LEGACY_MARIADB_DDL if mysql else LEGACY_SQLITE_DDL
    # peewee's UUIDField stores 32 hex digits without hyphens on both backends.
    conversation_id = LEGACY_CONVERSATION_ID.hex
    turn_id = LEGACY_TURN_ID.hex
    marker = "%s" if mysql else "?"
    run_sql(url, ddl)
    run_sql(
        url,
        [
            "INSERT INTO conversation (id, user, title, created_at, updated_at) VALUES "
            f"({marker}, 'examiner-7', '예전 대화', '2026-01-05 09:00:00', '2026-01-05 09:01:00')"
        ],
        (conversation_id,),
    )
    run_sql(
        url,
        [
            "INSERT INTO turn (id, conversation_id, question, answer, sources, model_id, "
            "model_base_url, latency_ms, first_token_ms, status, created_at) VALUES "
            f"({marker}, {marker}, '예전 질문', '예전 답변 😀', '[]', 'Qwen/Qwen3-8B', "
            "'http://127.0.0.1:8080/v1', 1200, 150, 'ok', '2026-01-05 09:01:00')"
        ],
        (turn_id, conversation_id),
    )


def applied_migrations(url: str) -> list[tuple[int, str]]:
    rows = run_sql(url, ["SELECT version, name FROM schema_migration ORDER BY version"])
    return [(int(version), name) for version, name in rows]


# Migrations on both backends.


def test_new_database_at_latest_version(log_url: str, settings: LogSettings) -> None:
    with ConversationLog.open(log_url, settings=settings) as log:
        assert log.schema_version() == LATEST_VERSION

    expected = [(number, migration.name) for number, migration in enumerate(MIGRATIONS, 1)]
    assert applied_migrations(log_url) == expected


def test_migrated_schema_matches_models(log_url: str, settings: LogSettings) -> None:
    ConversationLog.open(log_url, settings=settings).close()

    database = open_database(parse_database_url(log_url))
    with database.connection_context():
        for model in build_models(database).all():
            table = model._meta.table_name
            columns = {column.name: column for column in database.get_columns(table)}
            fields = {field.column_name: field for field in model._meta.sorted_fields}
            assert sorted(columns) == sorted(fields), table
            for name, field in fields.items():
                assert columns[name].null == field.null, f"{table}.{name}"

            index_names = {index.name for index in database.get_indexes(table)}
            for fields_of_index, _unique in model._meta.indexes:
                column_names = [model._meta.fields[f].column_name for f in fields_of_index]
                assert f"{table}_{'_'.join(column_names)}" in index_names, table


def test_legacy_database_upgraded_in_place(log_url: str, settings: LogSettings) -> None:
    create_legacy_database(log_url)

    with ConversationLog.open(log_url, settings=settings) as log:
        old_turn = log.turns(str(LEGACY_CONVERSATION_ID))[0]
        new_turn_id = log.record_turn(
            make_turn(str(LEGACY_CONVERSATION_ID), reasoning="새 열", input_tokens=10)
        )
        new_turn = log.get_turn(new_turn_id)
        conversation = log.get_conversation(str(LEGACY_CONVERSATION_ID))

    assert old_turn.turn_id == str(LEGACY_TURN_ID)
    assert old_turn.answer == "예전 답변 😀"
    assert old_turn.reasoning is None
    assert old_turn.sampling_params == {}
    assert new_turn.reasoning == "새 열"
    assert new_turn.input_tokens == 10
    assert conversation.title == "예전 대화"
    assert conversation.updated_at == new_turn.created_at
    assert applied_migrations(log_url) == [(number, m.name) for number, m in enumerate(MIGRATIONS, 1)]


def test_partly_applied_migration_completes(log_url: str, settings: LogSettings) -> None:
    # MySQL commits DDL at once: a migration 2 that stopped after one column reruns.
    database = open_database(parse_database_url(log_url))
    with database.connection_context():
        migrate_schema(database, "test database", target=1)
    long_text = "LONGTEXT" if log_url.startswith("mysql") else "TEXT"
    run_sql(log_url, [f"ALTER TABLE turn ADD COLUMN reasoning {long_text} NULL"])

    with ConversationLog.open(log_url, settings=settings) as log:
        turn_id = log.record_turn(make_turn(log.start_conversation(), reasoning="재실행"))
        assert log.get_turn(turn_id).reasoning == "재실행"
        assert log.schema_version() == LATEST_VERSION


def test_version_2_database_gains_invalid_citations(log_url: str, settings: LogSettings) -> None:
    # A log of the release before citation filtering, with one turn in it.
    database = open_database(parse_database_url(log_url))
    with database.connection_context():
        migrate_schema(database, "test database", target=2)
    with ConversationLog.open(log_url, settings=settings) as log:
        conversation_id = log.start_conversation(title="인용 번호")
        new_turn_id = log.record_turn(make_turn(conversation_id, invalid_citations=2))
        assert log.flush(timeout=30) == 0
        assert log.schema_version() == LATEST_VERSION

    marker = "%s" if log_url.startswith("mysql") else "?"
    rows = run_sql(
        log_url, [f"SELECT invalid_citations FROM turn WHERE id = {marker}"], (uuid.UUID(new_turn_id).hex,)
    )
    assert rows == [(2,)]
    assert applied_migrations(log_url)[-1] == (LATEST_VERSION, "turn_invalid_citations")


def test_legacy_turn_has_no_invalid_citation_count(log_url: str, settings: LogSettings) -> None:
    create_legacy_database(log_url)

    ConversationLog.open(log_url, settings=settings).close()

    assert run_sql(log_url, ["SELECT invalid_citations FROM turn"]) == [(None,)]


def test_negative_invalid_citations_rejected(tmp_path: Path, settings: LogSettings) -> None:
    with ConversationLog.open(f"sqlite:///{tmp_path}/log.sqlite3", settings=settings) as log:
        conversation_id = log.start_conversation()
        with pytest.raises(ValueError, match="invalid_citations"):
            log.record_turn(make_turn(conversation_id, invalid_citations=-1))


def test_newer_schema_rejected(log_url: str, settings: LogSettings) -> None:
    ConversationLog.open(log_url, settings=settings).close()
    run_sql(
        log_url,
        [
            "INSERT INTO schema_migration (version, name, applied_at) "
            f"VALUES ({LATEST_VERSION + 1}, 'from_the_future', '2030-01-01 00:00:00')"
        ],
    )

    with pytest.raises(LogSchemaError, match=f"version {LATEST_VERSION + 1}, newer") as caught:
        ConversationLog.open(log_url, settings=settings)

    assert "Upgrade veraclaim" in str(caught.value)


def test_pending_migration_without_auto_migrate_rejected(
    log_url: str, settings: LogSettings
) -> None:
    create_legacy_database(log_url)
    manual = settings.model_copy(update={"auto_migrate": False})

    with pytest.raises(LogSchemaError, match="veraclaim-chat log migrate"):
        ConversationLog.open(log_url, settings=manual)

    # Nothing was changed: the turn table still lacks migration 2's columns.
    with pytest.raises(peewee.DatabaseError):
        run_sql(log_url, ["SELECT reasoning FROM turn"])


def test_concurrent_opens_migrate_once(log_url: str, settings: LogSettings) -> None:
    # Two chat replicas starting at the same moment on a new database.
    errors: list[BaseException] = []

    def open_and_close() -> None:
        try:
            ConversationLog.open(log_url, settings=settings).close()
        except BaseException as error:  # reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=open_and_close) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert errors == []
    assert [version for version, _ in applied_migrations(log_url)] == list(range(1, LATEST_VERSION + 1))


# Backend-specific column types.


def test_sqlite_schema_uses_text(tmp_path: Path, settings: LogSettings) -> None:
    path = tmp_path / "nested" / "dirs" / "log.sqlite3"
    ConversationLog.open(f"sqlite:///{path}", settings=settings).close()

    connection = sqlite3.connect(path)
    try:
        turn_columns = {row[1]: row[2] for row in connection.execute("PRAGMA table_info(turn)")}
        feedback_columns = {
            row[1]: row[2] for row in connection.execute("PRAGMA table_info(feedback)")
        }
        index_columns = [
            row[2]
            for row in connection.execute("PRAGMA index_info(conversation_user_updated_at)")
        ]
    finally:
        connection.close()

    long_columns = ("question", "answer", "sources", "error_message", "search_query", "reasoning")
    for column in (*long_columns, "sampling_params"):
        assert turn_columns[column] == "TEXT", column
    assert feedback_columns["comment"] == "TEXT"
    assert index_columns == ["user", "updated_at"]


def test_mariadb_schema_is_utf8mb4_longtext(
    mariadb_url: str,
    mariadb_database: str,
    mariadb_admin: pymysql.connections.Connection,
    settings: LogSettings,
) -> None:
    ConversationLog.open(mariadb_url, settings=settings).close()

    with mariadb_admin.cursor() as cursor:
        cursor.execute(
            "SELECT TABLE_NAME, TABLE_COLLATION, ENGINE FROM information_schema.TABLES"
            " WHERE TABLE_SCHEMA = %s",
            (mariadb_database,),
        )
        tables = {name: (collation, engine) for name, collation, engine in cursor.fetchall()}
        cursor.execute(
            "SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME, DATETIME_PRECISION"
            " FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = %s",
            (mariadb_database,),
        )
        columns = {(row[0], row[1]): row[2:] for row in cursor.fetchall()}
        cursor.execute(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = %s"
            " AND TABLE_NAME = 'conversation' AND INDEX_NAME = 'conversation_user_updated_at'"
            " ORDER BY SEQ_IN_INDEX",
            (mariadb_database,),
        )
        user_index = [row[0] for row in cursor.fetchall()]

    assert sorted(tables) == ["conversation", "feedback", "schema_migration", "turn"]
    for name, (collation, engine) in tables.items():
        assert collation.startswith("utf8mb4_"), name
        assert engine == "InnoDB", name

    text_columns = {key: value for key, value in columns.items() if value[1] is not None}
    assert ("turn", "question") in text_columns
    assert ("feedback", "comment") in text_columns
    for key, (_, charset, _) in text_columns.items():
        assert charset == "utf8mb4", key

    long_columns = ("question", "answer", "sources", "error_message", "search_query", "reasoning")
    for column in (*long_columns, "sampling_params"):
        assert columns[("turn", column)][0] == "longtext", column
    assert columns[("feedback", "comment")][0] == "longtext"
    for key in (("turn", "created_at"), ("conversation", "updated_at"), ("feedback", "created_at")):
        assert columns[key][2] == 6, key
    assert user_index == ["user", "updated_at"]


# The utf8mb4 check at open.


def fix_statements(message: str) -> list[str]:
    """Return the SQL statements that a LogSchemaError message tells the operator to run."""
    script = message.split("Back up the database, then run: ", 1)[1]
    return [statement.strip() for statement in script.split(";") if statement.strip()]


def run_admin(admin: pymysql.connections.Connection, database: str, statements: list[str]) -> None:
    with admin.cursor() as cursor:
        cursor.execute(f"USE `{database}`")
        for statement in statements:
            cursor.execute(statement)


def test_utf8mb3_column_rejected_with_fix(
    mariadb_url: str,
    mariadb_database: str,
    mariadb_admin: pymysql.connections.Connection,
    settings: LogSettings,
) -> None:
    ConversationLog.open(mariadb_url, settings=settings).close()
    # A careless ALTER turned one column into 3-byte utf8.
    run_admin(
        mariadb_admin,
        mariadb_database,
        ["ALTER TABLE turn MODIFY question LONGTEXT CHARACTER SET utf8mb3 NOT NULL"],
    )

    with pytest.raises(LogSchemaError) as caught:
        ConversationLog.open(mariadb_url, settings=settings)

    message = str(caught.value)
    assert "column turn.question is utf8mb3" in message
    assert fix_statements(message) == ["ALTER TABLE `turn` CONVERT TO CHARACTER SET utf8mb4"]

    run_admin(mariadb_admin, mariadb_database, fix_statements(message))
    with ConversationLog.open(mariadb_url, settings=settings) as log:
        turn_id = log.record_turn(make_turn(log.start_conversation(), question="𠜎 😀"))
        assert log.get_turn(turn_id).question == "𠜎 😀"


def test_latin1_legacy_database_rejected_with_fix(
    mariadb_url: str,
    mariadb_database: str,
    mariadb_admin: pymysql.connections.Connection,
    settings: LogSettings,
) -> None:
    # The first release's tables restored from a dump that declared latin1 throughout.
    run_admin(
        mariadb_admin,
        mariadb_database,
        [ddl.replace("utf8mb4 COLLATE=utf8mb4_general_ci", "latin1") for ddl in LEGACY_MARIADB_DDL],
    )

    with pytest.raises(LogSchemaError) as caught:
        ConversationLog.open(mariadb_url, settings=settings)

    message = str(caught.value)
    assert "column conversation.title is latin1" in message
    assert "column turn.question is latin1" in message
    assert "table turn defaults to latin1" in message
    # MariaDB changes no charset of a column that a foreign key uses, so the fix drops the
    # key first and adds it again last.
    statements = fix_statements(message)
    assert statements[0] == "ALTER TABLE `turn` DROP FOREIGN KEY `turn_ibfk_1`"
    assert "ALTER TABLE `conversation` CONVERT TO CHARACTER SET utf8mb4" in statements
    assert statements[-1].startswith("ALTER TABLE `turn` ADD CONSTRAINT `turn_ibfk_1`")
    assert statements[-1].endswith("ON DELETE CASCADE")
    # The check ran before migration 2, which therefore added no latin1 columns or tables.
    assert run_sql(mariadb_url, ["SHOW TABLES LIKE 'feedback'"]) == []

    run_admin(mariadb_admin, mariadb_database, statements)
    with ConversationLog.open(mariadb_url, settings=settings) as log:
        conversation_id = log.start_conversation(title="😀")
        turn_id = log.record_turn(make_turn(conversation_id, question="𠜎"))
        assert log.get_turn(turn_id).question == "𠜎"
        # The foreign key is back: deleting the conversation deletes its turn.
        run_sql(mariadb_url, ["DELETE FROM conversation"])
        with pytest.raises(LookupError):
            log.get_turn(turn_id)
