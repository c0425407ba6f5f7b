"""The conversation log: conversations and their turns in SQLite or MySQL.

Every method opens its own connection and closes it before returning. A long-running app
therefore never reuses a connection that the server dropped while idle (MySQL drops one
after ``wait_timeout``, 8 hours by default). peewee keeps connection state per thread, so
the app's worker threads may share one ConversationLog. Each write is one short
transaction.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import peewee

from chat_ui.errors import (
    ConversationNotFoundError,
    InvalidLogValueError,
    LogClosedError,
    LogDatabaseError,
    TurnNotFoundError,
)
from chat_ui.log.database import (
    DEFAULT_DATABASE_URL,
    DatabaseTarget,
    describe_error,
    open_database,
    parse_database_url,
)
from chat_ui.log.models import LogModels, as_utc, build_models, utc_now
from chat_ui.log.records import (
    ConversationInfo,
    LoggedTurn,
    TurnRecord,
    decode_sources,
    encode_sources,
    validate_conversation,
    validate_turn,
)

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


def _parse_id(value: str, not_found: type[LookupError], kind: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise not_found(f"No {kind} with id {value!r}: the id is not a UUID.") from None


def _hint_for(target: DatabaseTarget, error: BaseException) -> str:
    if target.kind == "sqlite":
        return _SQLITE_HINT
    code = error.args[0] if error.args else None
    if not isinstance(code, int):
        return _MYSQL_DEFAULT_HINT
    hint = _MYSQL_HINTS.get(code, _MYSQL_DEFAULT_HINT)
    return hint.format(database=target.mysql_params["database"])


class ConversationLog:
    """Conversation log on one database. Create it with ``ConversationLog.open(url)``."""

    def __init__(self, target: DatabaseTarget, database: peewee.Database) -> None:
        self._target = target
        self._database = database
        self._models: LogModels = build_models(database)
        self._closed = False

    @classmethod
    def open(cls, url: str = DEFAULT_DATABASE_URL) -> ConversationLog:
        """Open the log at ``url`` and create its tables if they are missing.

        Raises InvalidDatabaseURL for an unsupported URL and LogDatabaseError when the
        database cannot be reached.
        """
        target = parse_database_url(url)
        log = cls(target, open_database(target))

        # NOTE: create_tables(safe=True) only creates missing tables and never alters an
        # existing one. A schema change needs a migration, which this package lacks so far.
        with log._session("create the tables", transaction=False):
            log._database.create_tables(log._models.all(), safe=True)

        logger.info("Opened the conversation log on %s", target.display_name)
        return log

    @property
    def database_name(self) -> str:
        """Name of the database for messages and logs, with any password masked."""
        return self._target.display_name

    def __repr__(self) -> str:
        return f"<ConversationLog {self._target.display_name}>"

    def __enter__(self) -> ConversationLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc_value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the log. Any later call raises LogClosedError. Closing twice is allowed."""
        if self._closed:
            return
        self._closed = True
        self._database.close()
        logger.info("Closed the conversation log on %s", self._target.display_name)

    @contextmanager
    def _session(self, action: str, *, transaction: bool) -> Iterator[None]:
        """Run the block on a fresh connection and translate driver errors.

        ``action`` completes "Could not ..." in the error message.
        """
        if self._closed:
            raise LogClosedError(
                f"Could not {action}: the conversation log on {self._target.display_name} "
                "is closed. Open a new one with ConversationLog.open()."
            )

        try:
            with self._database.connection_context():
                if transaction:
                    with self._database.atomic():
                        yield
                else:
                    yield
        except (peewee.DatabaseError, peewee.InterfaceError) as error:
            detail = describe_error(self._target, error)
            hint = _hint_for(self._target, error)
            # "from None": the message already contains the driver's error with the password
            # scrubbed, and a chained traceback would print it unscrubbed.
            raise LogDatabaseError(
                f"Could not {action} in {self._target.display_name}: {detail}. {hint}"
            ) from None

    def start_conversation(self, user: str | None = None, title: str = "") -> str:
        """Create a conversation and return its id."""
        validate_conversation(user, title)
        conversation_id = uuid.uuid4()
        now = utc_now()

        with self._session("start a conversation", transaction=True):
            self._models.conversation.insert(
                id=conversation_id, user=user, title=title, created_at=now, updated_at=now
            ).execute()

        logger.debug("Started conversation %s for user %r", conversation_id, user)
        return str(conversation_id)

    def record_turn(self, record: TurnRecord) -> str:
        """Store one turn, move its conversation's updated_at to now, and return the turn id.

        Raises InvalidLogValueError for a record the tables cannot hold, ConversationNotFoundError
        for an unknown conversation, and LogDatabaseError when the write fails.
        """
        validate_turn(record)
        sources_json = encode_sources(record.sources)
        conversation_id = _parse_id(
            record.conversation_id, ConversationNotFoundError, "conversation"
        )
        first_token_ms = None if record.first_token_ms is None else round(record.first_token_ms)
        turn_id = uuid.uuid4()
        now = utc_now()
        conversation, turn = self._models

        with self._session("record a turn", transaction=True):
            # Checked by a SELECT because MySQL reports an UPDATE that changes nothing as
            # 0 affected rows, so the row count cannot tell a missing conversation apart.
            if not conversation.select().where(conversation.id == conversation_id).exists():
                raise ConversationNotFoundError(
                    f"No conversation with id {record.conversation_id!r} in "
                    f"{self._target.display_name}. Start one with start_conversation()."
                )
            conversation.update(updated_at=now).where(conversation.id == conversation_id).execute()
            turn.insert(
                id=turn_id,
                conversation=conversation_id,
                question=record.question,
                answer=record.answer,
                sources=sources_json,
                model_id=record.model_id,
                model_base_url=record.model_base_url,
                latency_ms=round(record.latency_ms),
                first_token_ms=first_token_ms,
                status=record.status,
                error_type=record.error_type,
                error_message=record.error_message,
                created_at=now,
            ).execute()

        logger.debug(
            "Recorded turn %s of conversation %s with status %s",
            turn_id,
            conversation_id,
            record.status,
        )
        return str(turn_id)

    def turns(self, conversation_id: str) -> list[LoggedTurn]:
        """Return a conversation's turns, oldest first.

        Raises ConversationNotFoundError when no conversation has that id.
        """
        conversation_uuid = _parse_id(conversation_id, ConversationNotFoundError, "conversation")
        conversation, turn = self._models

        with self._session("read turns", transaction=False):
            if not conversation.select().where(conversation.id == conversation_uuid).exists():
                raise ConversationNotFoundError(
                    f"No conversation with id {conversation_id!r} in {self._target.display_name}."
                )
            # The id breaks ties between turns stored in the same microsecond, so the
            # order is at least stable.
            rows = list(
                turn.select()
                .where(turn.conversation == conversation_uuid)
                .order_by(turn.created_at, turn.id)
            )

        return [_to_logged_turn(row) for row in rows]

    def get_turn(self, turn_id: str) -> LoggedTurn:
        """Return one turn. Raises TurnNotFoundError when no turn has that id."""
        turn_uuid = _parse_id(turn_id, TurnNotFoundError, "turn")
        turn = self._models.turn

        with self._session("read a turn", transaction=False):
            row = turn.get_or_none(turn.id == turn_uuid)

        if row is None:
            raise TurnNotFoundError(f"No turn with id {turn_id!r} in {self._target.display_name}.")
        return _to_logged_turn(row)

    def get_conversation(self, conversation_id: str) -> ConversationInfo:
        """Return a conversation's metadata.

        Raises ConversationNotFoundError when no conversation has that id.
        """
        conversation_uuid = _parse_id(conversation_id, ConversationNotFoundError, "conversation")
        conversation = self._models.conversation

        with self._session("read a conversation", transaction=False):
            row = conversation.get_or_none(conversation.id == conversation_uuid)

        if row is None:
            raise ConversationNotFoundError(
                f"No conversation with id {conversation_id!r} in {self._target.display_name}."
            )
        return _to_conversation_info(row)

    def conversations(self, user: str | None, limit: int = 50) -> list[ConversationInfo]:
        """Return a user's conversations, most recently updated first.

        ``user=None`` lists the conversations started without a user.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidLogValueError(f"limit must be a positive int, got {limit!r}.")
        conversation = self._models.conversation
        if user is None:
            owner = conversation.user.is_null()
        else:
            owner = conversation.user == user

        with self._session("list conversations", transaction=False):
            rows = list(
                conversation.select()
                .where(owner)
                .order_by(conversation.updated_at.desc(), conversation.id)
                .limit(limit)
            )

        return [_to_conversation_info(row) for row in rows]


def _to_logged_turn(row: Any) -> LoggedTurn:
    return LoggedTurn(
        turn_id=str(row.id),
        conversation_id=str(row.conversation_id),
        question=row.question,
        answer=row.answer,
        sources=decode_sources(row.sources),
        model_id=row.model_id,
        model_base_url=row.model_base_url,
        latency_ms=row.latency_ms,
        first_token_ms=row.first_token_ms,
        status=row.status,
        error_type=row.error_type,
        error_message=row.error_message,
        created_at=as_utc(row.created_at),
    )


def _to_conversation_info(row: Any) -> ConversationInfo:
    return ConversationInfo(
        conversation_id=str(row.id),
        user=row.user,
        title=row.title,
        created_at=as_utc(row.created_at),
        updated_at=as_utc(row.updated_at),
    )
