"""Schema migrations of the conversation log: an ordered list of named, forward-only steps.

The ``schema_migration`` table stores one row per applied migration: its version (the
1-based position in MIGRATIONS), its name and the UTC time it ran. A database whose
highest version is above the last known one was migrated by newer code, and this code
refuses to write to it.

Each migration defines the tables and columns it adds itself, frozen as they were in its
release, and never uses the model classes of models.py. A later change to those classes
therefore cannot change what an old migration creates. A test checks that the migrated
schema matches them.

Every step skips what already exists. MySQL commits each DDL statement at once, so a
migration interrupted there leaves part of its changes behind, and running it again then
completes it. On SQLite a migration and its record are one transaction.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import peewee
from playhouse.migrate import SchemaMigrator, migrate

from chat_ui.errors import LogSchemaError
from chat_ui.log.database import is_mysql
from chat_ui.log.models import MYSQL_TABLE_SETTINGS, LongTextField, utc_now

logger = logging.getLogger(__name__)

SCHEMA_TABLE = "schema_migration"

# Seconds that open() waits for another process that is migrating the same MySQL database.
MYSQL_SCHEMA_LOCK_TIMEOUT_S = 120


def _frozen_base(db: peewee.Database) -> type[peewee.Model]:
    dialect_table_settings = MYSQL_TABLE_SETTINGS if is_mysql(db) else None

    class FrozenModel(peewee.Model):
        class Meta:
            database = db
            legacy_table_names = False
            table_settings = dialect_table_settings

    return FrozenModel


def _migration_1_create_conversation_and_turn(db: peewee.Database) -> None:
    """Create the conversation and turn tables of the first release.

    That release created them with ``create_tables(safe=True)`` and recorded no version, so
    on one of its databases this step finds both tables and changes nothing.
    """
    base = _frozen_base(db)

    class Conversation(base):  # type: ignore[misc, valid-type]
        id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
        user = peewee.CharField(max_length=255, null=True)
        title = peewee.CharField(max_length=255, default="")
        created_at = peewee.DateTimeField()
        updated_at = peewee.DateTimeField()

        class Meta:
            table_name = "conversation"
            indexes = ((("user", "updated_at"), False),)

    class Turn(base):  # type: ignore[misc, valid-type]
        id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
        conversation = peewee.ForeignKeyField(
            Conversation, column_name="conversation_id", on_delete="CASCADE", index=False
        )
        question = LongTextField()
        answer = LongTextField()
        sources = LongTextField(default="[]")
        model_id = peewee.CharField(max_length=512)
        model_base_url = peewee.CharField(max_length=512)
        latency_ms = peewee.IntegerField()
        first_token_ms = peewee.IntegerField(null=True)
        status = peewee.CharField(max_length=16)
        error_type = peewee.CharField(max_length=255, null=True)
        error_message = LongTextField(null=True)
        created_at = peewee.DateTimeField()

        class Meta:
            table_name = "turn"
            indexes = ((("conversation", "created_at"), False),)

    db.create_tables([Conversation, Turn], safe=True)


def _migration_2_turn_details_and_feedback(db: peewee.Database) -> None:
    """Add the turn's retrieval, reasoning, sampling and token columns, the feedback table,
    and the indexes that the retention purge uses."""
    migrator = SchemaMigrator.from_database(db)

    # New columns are nullable: rows written before this migration have no value for them.
    turn_columns: list[tuple[str, peewee.Field]] = [
        ("index_version", peewee.CharField(max_length=255, null=True)),
        ("search_query", LongTextField(null=True)),
        ("reasoning", LongTextField(null=True)),
        ("sampling_params", LongTextField(null=True)),
        ("input_tokens", peewee.IntegerField(null=True)),
        ("output_tokens", peewee.IntegerField(null=True)),
    ]
    existing_columns = {column.name for column in db.get_columns("turn")}
    operations = [
        migrator.add_column("turn", name, field)
        for name, field in turn_columns
        if name not in existing_columns
    ]

    new_indexes = [("turn", ("created_at",)), ("conversation", ("updated_at",))]
    for table, columns in new_indexes:
        name = f"{table}_{'_'.join(columns)}"
        if name not in {index.name for index in db.get_indexes(table)}:
            operations.append(migrator.add_index(table, columns, False))
    migrate(*operations)

    base = _frozen_base(db)

    class Turn(base):  # type: ignore[misc, valid-type]
        id = peewee.UUIDField(primary_key=True)

        class Meta:
            table_name = "turn"

    class Feedback(base):  # type: ignore[misc, valid-type]
        id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
        turn = peewee.ForeignKeyField(
            Turn, column_name="turn_id", on_delete="CASCADE", index=False
        )
        rating = peewee.SmallIntegerField()
        comment = LongTextField()
        user = peewee.CharField(max_length=255, null=True)
        created_at = peewee.DateTimeField()

        class Meta:
            table_name = "feedback"
            indexes = ((("turn", "created_at"), False),)

    db.create_tables([Feedback], safe=True)


def _migration_3_turn_invalid_citations(db: peewee.Database) -> None:
    """Add the count of citation numbers that the pipeline removed from each answer."""
    if "invalid_citations" in {column.name for column in db.get_columns("turn")}:
        return
    migrator = SchemaMigrator.from_database(db)
    # Nullable: rows written before this migration have no count.
    migrate(migrator.add_column("turn", "invalid_citations", peewee.IntegerField(null=True)))


@dataclass(frozen=True)
class Migration:
    """One schema change; its version is its 1-based position in MIGRATIONS."""

    name: str
    apply: Callable[[peewee.Database], None]


# Append only. Never edit, reorder or remove an entry that has shipped.
MIGRATIONS: tuple[Migration, ...] = (
    Migration("create_conversation_and_turn", _migration_1_create_conversation_and_turn),
    Migration("turn_details_and_feedback", _migration_2_turn_details_and_feedback),
    Migration("turn_invalid_citations", _migration_3_turn_invalid_citations),
)
LATEST_VERSION = len(MIGRATIONS)


def _schema_migration_model(db: peewee.Database) -> type[peewee.Model]:
    base = _frozen_base(db)

    class SchemaMigration(base):  # type: ignore[misc, valid-type]
        version = peewee.IntegerField(primary_key=True)
        name = peewee.CharField(max_length=255)
        applied_at = peewee.DateTimeField()

        class Meta:
            table_name = SCHEMA_TABLE

    return SchemaMigration


def schema_version(db: peewee.Database) -> int:
    """Return the highest applied migration version, 0 for a database without the table.

    Must run inside a connection context.
    """
    if not db.table_exists(SCHEMA_TABLE):
        return 0
    record = _schema_migration_model(db)
    return record.select(peewee.fn.MAX(record.version)).scalar() or 0


@contextmanager
def _schema_lock(db: peewee.Database) -> Iterator[None]:
    """Hold a lock that keeps two processes from migrating the same database at once."""
    if not is_mysql(db):
        # BEGIN IMMEDIATE (the database's lock_type) takes SQLite's write lock, and SQLite
        # runs DDL inside the transaction.
        with db.atomic():
            yield
        return

    # GET_LOCK names are server-wide and at most 64 characters long.
    digest = hashlib.sha256(db.database.encode("utf-8")).hexdigest()[:32]
    lock_name = f"veraclaim_log_schema_{digest}"
    acquired = db.execute_sql(
        "SELECT GET_LOCK(%s, %s)", (lock_name, MYSQL_SCHEMA_LOCK_TIMEOUT_S)
    ).fetchone()[0]
    if acquired != 1:
        raise LogSchemaError(
            f"Timed out after {MYSQL_SCHEMA_LOCK_TIMEOUT_S} s waiting for the schema lock "
            f"{lock_name!r} of database {db.database!r}. Another process is migrating it or "
            "holds the lock; retry when it has finished."
        )
    try:
        yield
    finally:
        db.execute_sql("SELECT RELEASE_LOCK(%s)", (lock_name,))


def pending_migrations(version: int, database_name: str) -> list[tuple[int, Migration]]:
    """Return the migrations after ``version``, raising LogSchemaError for a newer schema."""
    if version > LATEST_VERSION:
        raise LogSchemaError(
            f"The schema of {database_name} is at version {version}, newer than the latest "
            f"version {LATEST_VERSION} that this code knows. Upgrade veraclaim on this "
            "machine; migrations are forward-only."
        )
    return [(number, MIGRATIONS[number - 1]) for number in range(version + 1, LATEST_VERSION + 1)]


def migrate_schema(db: peewee.Database, database_name: str, *, target: int | None = None) -> int:
    """Apply the pending migrations up to ``target`` (default: all) and return the version.

    Must run inside a connection context. ``database_name`` names the database in logs
    and errors, with any password masked.
    """
    record = _schema_migration_model(db)

    with _schema_lock(db):
        db.create_tables([record], safe=True)
        version = schema_version(db)
        last = LATEST_VERSION if target is None else target

        for number, migration in pending_migrations(version, database_name):
            if number > last:
                break
            logger.info(
                "Applying migration %d (%s) to %s", number, migration.name, database_name
            )
            migration.apply(db)
            record.insert(version=number, name=migration.name, applied_at=utc_now()).execute()
            version = number

    return version
