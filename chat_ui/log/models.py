"""Peewee models of the conversation log: the ``conversation``, ``turn`` and ``feedback`` tables.

These classes describe the schema that the last migration in migrations.py produces, and
the log reads and writes through them. They never create tables: migrations.py does.

``build_models`` defines fresh model classes bound to one database on every call. Two
open logs (a SQLite file and a MySQL server, say) therefore never share a binding, and
no module-level state depends on which log was opened last.

Timestamps are stored as naive UTC datetimes because MySQL's DATETIME has no time zone.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import NamedTuple

import peewee

from chat_ui.log.database import is_mysql
from chat_ui.log.records import (
    MAX_ERROR_TYPE_LENGTH,
    MAX_INDEX_VERSION_LENGTH,
    MAX_MODEL_FIELD_LENGTH,
    MAX_TITLE_LENGTH,
    MAX_USER_LENGTH,
)

# ENGINE=InnoDB gives transactions and foreign keys. The table charset covers every text
# column, so 4-byte characters such as emoji or U+2070E 𠜎 fit.
MYSQL_TABLE_SETTINGS = ("ENGINE=InnoDB", "DEFAULT CHARSET=utf8mb4")

# Longest status name, "interrupted", has 11 characters.
STATUS_LENGTH = 16


class LongTextField(peewee.TextField):
    """Text column for unbounded text: LONGTEXT on MySQL, TEXT on SQLite.

    database.py maps the LONGTEXT field type per backend. MySQL's plain TEXT stops at
    65,535 bytes.
    """

    field_type = "LONGTEXT"


def utc_now() -> datetime:
    """Return the current UTC time as a naive datetime, as the tables store it."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def as_utc(value: datetime) -> datetime:
    """Return a datetime read from the tables with its UTC time zone attached."""
    return value.replace(tzinfo=timezone.utc)


class LogModels(NamedTuple):
    """Model classes bound to one database."""

    conversation: type[peewee.Model]
    turn: type[peewee.Model]
    feedback: type[peewee.Model]

    def all(self) -> list[type[peewee.Model]]:
        """Return the models in creation order: a table before the tables that refer to it."""
        return [self.conversation, self.turn, self.feedback]


def build_models(db: peewee.Database) -> LogModels:
    """Define the log's model classes bound to ``db``."""
    dialect_table_settings = MYSQL_TABLE_SETTINGS if is_mysql(db) else None

    class BaseModel(peewee.Model):
        class Meta:
            database = db
            legacy_table_names = False
            table_settings = dialect_table_settings

    class Conversation(BaseModel):
        id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
        user = peewee.CharField(max_length=MAX_USER_LENGTH, null=True)
        title = peewee.CharField(max_length=MAX_TITLE_LENGTH, default="")
        created_at = peewee.DateTimeField(default=utc_now)
        updated_at = peewee.DateTimeField(default=utc_now)

        class Meta:
            table_name = "conversation"
            indexes = (
                # Lists a user's conversations, most recently active first.
                (("user", "updated_at"), False),
                # Finds the conversations that the retention purge deletes.
                (("updated_at",), False),
            )

    class Turn(BaseModel):
        id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
        # The composite index below starts with this column, which is the index MySQL
        # needs for the foreign key, so the field gets no index of its own.
        conversation = peewee.ForeignKeyField(
            Conversation,
            backref="turns",
            column_name="conversation_id",
            on_delete="CASCADE",
            index=False,
        )
        question = LongTextField()
        answer = LongTextField()
        # JSON list of cited sources, see records.CitedSource.
        sources = LongTextField(default="[]")
        model_id = peewee.CharField(max_length=MAX_MODEL_FIELD_LENGTH)
        model_base_url = peewee.CharField(max_length=MAX_MODEL_FIELD_LENGTH)
        latency_ms = peewee.IntegerField()
        first_token_ms = peewee.IntegerField(null=True)
        status = peewee.CharField(max_length=STATUS_LENGTH)
        error_type = peewee.CharField(max_length=MAX_ERROR_TYPE_LENGTH, null=True)
        error_message = LongTextField(null=True)
        created_at = peewee.DateTimeField(default=utc_now)
        index_version = peewee.CharField(max_length=MAX_INDEX_VERSION_LENGTH, null=True)
        search_query = LongTextField(null=True)
        reasoning = LongTextField(null=True)
        # JSON object of sampling parameters; NULL in rows written before migration 2.
        sampling_params = LongTextField(null=True)
        input_tokens = peewee.IntegerField(null=True)
        output_tokens = peewee.IntegerField(null=True)
        # Citation numbers removed from the answer. NULL in rows written before migration 3.
        invalid_citations = peewee.IntegerField(null=True)

        class Meta:
            table_name = "turn"
            indexes = (
                # Reads a conversation's turns in order.
                (("conversation", "created_at"), False),
                # Finds the turns that the retention purge deletes.
                (("created_at",), False),
            )

    class Feedback(BaseModel):
        id = peewee.UUIDField(primary_key=True, default=uuid.uuid4)
        # Indexed through the composite index below, as for turn.conversation.
        turn = peewee.ForeignKeyField(
            Turn, backref="feedback", column_name="turn_id", on_delete="CASCADE", index=False
        )
        rating = peewee.SmallIntegerField()
        comment = LongTextField()
        user = peewee.CharField(max_length=MAX_USER_LENGTH, null=True)
        created_at = peewee.DateTimeField(default=utc_now)

        class Meta:
            table_name = "feedback"
            indexes = ((("turn", "created_at"), False),)

    return LogModels(conversation=Conversation, turn=Turn, feedback=Feedback)
