"""Check that every text column of the log's MySQL tables uses utf8mb4.

MySQL's ``utf8`` (utf8mb3) and ``latin1`` cannot store 4-byte characters such as emoji or
rare Hanja. Strict mode then rejects the whole row, and non-strict mode truncates the text.
SQLite stores all text as UTF-8, so it needs no check.

The error gives the statements that fix the schema. MariaDB 10.11 refuses to change the
character set of a column that a foreign key uses, even with foreign_key_checks=0
(error 1832 or 1833), so the fix drops such keys, converts the tables and adds them again.
"""

from __future__ import annotations

import peewee

from chat_ui.errors import LogSchemaError
from chat_ui.log.database import is_mysql

LOG_TABLES = ("conversation", "turn", "feedback", "schema_migration")
REQUIRED_CHARSET = "utf8mb4"

_COLUMN_CHARSETS_SQL = (
    "SELECT TABLE_NAME, COLUMN_NAME, CHARACTER_SET_NAME FROM information_schema.COLUMNS"
    " WHERE TABLE_SCHEMA = DATABASE() AND CHARACTER_SET_NAME IS NOT NULL"
    f" AND TABLE_NAME IN ({', '.join(['%s'] * len(LOG_TABLES))})"
    " ORDER BY TABLE_NAME, ORDINAL_POSITION"
)
# A table's default character set applies to the columns that later migrations add.
_TABLE_CHARSETS_SQL = (
    "SELECT t.TABLE_NAME, c.CHARACTER_SET_NAME FROM information_schema.TABLES t"
    " JOIN information_schema.COLLATION_CHARACTER_SET_APPLICABILITY c"
    " ON c.COLLATION_NAME = t.TABLE_COLLATION"
    " WHERE t.TABLE_SCHEMA = DATABASE()"
    f" AND t.TABLE_NAME IN ({', '.join(['%s'] * len(LOG_TABLES))})"
    " ORDER BY t.TABLE_NAME"
)

_FOREIGN_KEYS_SQL = (
    "SELECT k.CONSTRAINT_NAME, k.TABLE_NAME, k.COLUMN_NAME, k.REFERENCED_TABLE_NAME,"
    " k.REFERENCED_COLUMN_NAME, r.DELETE_RULE FROM information_schema.KEY_COLUMN_USAGE k"
    " JOIN information_schema.REFERENTIAL_CONSTRAINTS r"
    " ON r.CONSTRAINT_SCHEMA = k.CONSTRAINT_SCHEMA AND r.CONSTRAINT_NAME = k.CONSTRAINT_NAME"
    " AND r.TABLE_NAME = k.TABLE_NAME"
    " WHERE k.TABLE_SCHEMA = DATABASE() AND k.REFERENCED_TABLE_NAME IS NOT NULL"
    f" AND k.TABLE_NAME IN ({', '.join(['%s'] * len(LOG_TABLES))})"
    " ORDER BY k.TABLE_NAME, k.CONSTRAINT_NAME"
)


def _fix_statements(
    db: peewee.Database, tables: list[str], columns: set[tuple[str, str]]
) -> list[str]:
    foreign_keys = [
        (name, table, column, parent, parent_column, on_delete)
        for name, table, column, parent, parent_column, on_delete in db.execute_sql(
            _FOREIGN_KEYS_SQL, LOG_TABLES
        ).fetchall()
        if (table, column) in columns or (parent, parent_column) in columns
    ]
    drops = [f"ALTER TABLE `{fk[1]}` DROP FOREIGN KEY `{fk[0]}`" for fk in foreign_keys]
    converts = [
        f"ALTER TABLE `{table}` CONVERT TO CHARACTER SET {REQUIRED_CHARSET}" for table in tables
    ]
    adds = [
        f"ALTER TABLE `{table}` ADD CONSTRAINT `{name}` FOREIGN KEY (`{column}`) "
        f"REFERENCES `{parent}` (`{parent_column}`) ON DELETE {on_delete}"
        for name, table, column, parent, parent_column, on_delete in foreign_keys
    ]
    return drops + converts + adds


def check_utf8mb4(db: peewee.Database, database_name: str) -> None:
    """Raise LogSchemaError naming each log table or column that is not utf8mb4, and the fix.

    Must run inside a connection context. Does nothing on SQLite.
    """
    if not is_mysql(db):
        return

    wrong: dict[str, list[str]] = {}
    wrong_columns: set[tuple[str, str]] = set()
    for table, charset in db.execute_sql(_TABLE_CHARSETS_SQL, LOG_TABLES).fetchall():
        if charset != REQUIRED_CHARSET:
            wrong.setdefault(table, []).append(f"table {table} defaults to {charset}")
    for table, column, charset in db.execute_sql(_COLUMN_CHARSETS_SQL, LOG_TABLES).fetchall():
        if charset != REQUIRED_CHARSET:
            wrong.setdefault(table, []).append(f"column {table}.{column} is {charset}")
            wrong_columns.add((table, column))
    if not wrong:
        return

    problems = "; ".join(problem for table in sorted(wrong) for problem in wrong[table])
    statements = _fix_statements(db, sorted(wrong), wrong_columns)
    raise LogSchemaError(
        f"{database_name} is not {REQUIRED_CHARSET} throughout ({problems}), so 4-byte "
        "characters such as emoji cannot be stored. Back up the database, then run: "
        + " ".join(statement + ";" for statement in statements)
    )
