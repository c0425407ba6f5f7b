"""The conversation log: conversations, turns and feedback in SQLite or MySQL.

Writes (``start_conversation``, ``record_turn``, ``record_feedback``) validate the record,
hand it to the background writer (writer.py) and return its new id at once. The writer
stores it, or journals it while the database is unavailable. Changes to stored
conversations (``rename_conversation``, ``delete_conversation``) run on the writer too,
after the writes queued before them, and the caller waits for their result (changes.py). Reads run in the caller's
thread on a connection that is taken for the call and given back before it returns: from
the pool for MySQL, newly opened for SQLite. A read first waits (up to ``read_wait_s``)
for the writes that this process queued for the same database, so it sees them.

peewee keeps connection state per thread, so the app's worker threads may share one
ConversationLog.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import uuid
import weakref
from contextlib import AbstractContextManager
from collections.abc import Callable
from types import TracebackType
from typing import TypeVar

from chat_ui.errors import (
    ConversationNotFoundError,
    InvalidLogValueError,
    LogDatabaseError,
    LogClosedError,
    TurnNotFoundError,
)
from chat_ui.log import changes, queries
from chat_ui.log.changes import ChangeUnavailable, DeletedConversation
from chat_ui.log.connection import (
    close_connections,
    connected,
    prepare_schema,
    translated_errors,
)
from chat_ui.log.credentials import resolve_target
from chat_ui.log.database import (
    DEFAULT_DATABASE_URL,
    DatabaseTarget,
    describe_error,
    open_database,
)
from chat_ui.log.entries import conversation_entry, feedback_entry, turn_entry
from chat_ui.log.journal import Journal
from chat_ui.log.migrations import LATEST_VERSION, schema_version
from chat_ui.log.models import LogModels, build_models, utc_now
from chat_ui.log.pool import LogMySQLDatabase, LogSqliteDatabase
from chat_ui.log.records import (
    ConversationInfo,
    FeedbackInfo,
    LoggedTurn,
    LogStatus,
    TurnRecord,
    encode_sampling_params,
    encode_sources,
    validate_conversation,
    validate_feedback,
    validate_turn,
)
from chat_ui.log.redact import redact_personal_data
from chat_ui.log.retention import PurgeResult, count_expired, purge_expired, retention_cutoff
from chat_ui.log.settings import LogSettings
from chat_ui.log.registry import register_writer, unregister_writer, wait_for_writers
from chat_ui.log.writer import BackgroundWriter

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

def _parse_id(value: str, not_found: type[LookupError], kind: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise not_found(f"No {kind} with id {value!r}: the id is not a UUID.") from None


class ConversationLog:
    """Conversation log on one database. Create it with ``ConversationLog.open(url)``."""

    def __init__(
        self,
        target: DatabaseTarget,
        database: LogMySQLDatabase | LogSqliteDatabase,
        settings: LogSettings,
        journal: Journal,
    ) -> None:
        self._target = target
        self._database = database
        self._settings = settings
        self._models: LogModels = build_models(database)
        self._closed = False
        self._journal = journal
        self._writer = BackgroundWriter(
            database,
            self._models,
            journal,
            settings,
            database_name=target.display_name,
            describe_error=lambda error: describe_error(target, error),
            redact=redact_personal_data if settings.redact_personal_data else None,
        )

    @classmethod
    def open(
        cls, url: str = DEFAULT_DATABASE_URL, *, settings: LogSettings | None = None
    ) -> ConversationLog:
        """Open the log at ``url``, migrate its schema and start its background writer.

        ``settings`` defaults to LogSettings() read from VERACLAIM_LOG_* variables. Raises
        InvalidDatabaseURL for an unsupported URL, LogDatabaseError when the database
        cannot be reached, LogSchemaError when its schema is unusable, SecretNotFoundError
        or SecretUnavailableError when a configured SSM secret cannot be read, and
        LogJournalError when the journal directory cannot be created.
        """
        settings = settings if settings is not None else LogSettings()
        target = resolve_target(url, settings)
        database = open_database(
            target,
            max_connections=settings.pool_max_connections,
            pool_wait_timeout_s=settings.pool_wait_timeout_s,
        )

        try:
            with translated_errors(target, "prepare the schema"):
                with database.connection_context():
                    prepare_schema(database, target.display_name, settings)
            journal = Journal(settings.journal_dir, target.storage_key, target.display_name)
        except BaseException:
            close_connections(database)
            raise

        log = cls(target, database, settings, journal)
        log._writer.start()
        register_writer(target.storage_key, log._writer)
        # Drains the queue at interpreter exit; the weak reference lets a log be collected.
        atexit.register(_close_at_exit, weakref.ref(log))
        logger.info("Opened the conversation log on %s", target.display_name)
        return log

    @property
    def database_name(self) -> str:
        """Name of the database for messages and logs, with any password masked."""
        return self._target.display_name

    @property
    def journal_directory(self) -> str:
        """Directory of this database's journal."""
        return str(self._journal.directory)

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
        """Write or journal every queued record, then close the log.

        Any later call raises LogClosedError. Closing twice is allowed.
        """
        if self._closed:
            return
        self._closed = True
        self._writer.stop(self._settings.close_timeout_s)
        unregister_writer(self._target.storage_key, self._writer)
        close_connections(self._database)
        logger.info("Closed the conversation log on %s", self._target.display_name)

    def _check_open(self, action: str) -> None:
        if self._closed:
            raise LogClosedError(
                f"Could not {action}: the conversation log on {self._target.display_name} "
                "is closed. Open a new one with ConversationLog.open()."
            )

    def _session(self, action: str, *, transaction: bool) -> AbstractContextManager[None]:
        """Run the block on a connection of its own and translate driver errors.

        ``action`` completes "Could not ..." in the error message.
        """
        self._check_open(action)
        return connected(self._target, self._database, action, transaction=transaction)

    def _read_session(self, action: str) -> AbstractContextManager[None]:
        self._check_open(action)
        wait_for_writers(self._target.storage_key, self._settings.read_wait_s)
        return self._session(action, transaction=False)

    # Writes: validated here, stored by the background writer.

    def start_conversation(self, user: str | None = None, title: str = "") -> str:
        """Create a conversation and return its id.

        Raises InvalidLogValueError for a user or title that its column cannot hold.
        """
        self._check_open("start a conversation")
        validate_conversation(user, title)
        conversation_id = uuid.uuid4()

        self._writer.submit(conversation_entry(conversation_id, user, title, utc_now()))
        logger.debug("Started conversation %s for user %r", conversation_id, user)
        return str(conversation_id)

    def record_turn(self, record: TurnRecord) -> str:
        """Queue one turn for storage and return its id at once.

        The turn's created_at is the time of this call, and storing it moves its
        conversation's updated_at there. Raises InvalidLogValueError for a record the
        tables cannot hold and ConversationNotFoundError for a conversation id that is not
        a UUID. A well-formed conversation id that the database does not know gets an empty
        conversation row, so that the turn is kept.
        """
        self._check_open("record a turn")
        validate_turn(record)
        sources_json = encode_sources(record.sources)
        sampling_json = encode_sampling_params(record.sampling_params)
        conversation_id = _parse_id(
            record.conversation_id, ConversationNotFoundError, "conversation"
        )
        turn_id = uuid.uuid4()

        entry = turn_entry(
            turn_id,
            conversation_id,
            record,
            sources_json=sources_json,
            sampling_json=sampling_json,
            created_at=utc_now(),
        )
        self._writer.submit(entry)
        logger.debug(
            "Queued turn %s of conversation %s with status %s",
            turn_id,
            conversation_id,
            record.status,
        )
        return str(turn_id)

    def record_feedback(
        self, turn_id: str, rating: int, comment: str = "", user: str | None = None
    ) -> str:
        """Queue a user's feedback on a turn and return the feedback id at once.

        ``rating`` is -1 (not helpful), 0 (comment only) or 1 (helpful). Raises
        InvalidLogValueError for invalid fields and TurnNotFoundError for a turn id that is
        not a UUID. Feedback on a turn that never reaches the database is moved to the
        journal's rejected.jsonl.
        """
        self._check_open("record feedback")
        validate_feedback(rating, comment, user)
        turn_uuid = _parse_id(turn_id, TurnNotFoundError, "turn")
        feedback_id = uuid.uuid4()

        self._writer.submit(
            feedback_entry(feedback_id, turn_uuid, rating, comment, user, utc_now())
        )
        return str(feedback_id)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait until every record queued so far is in the database or the journal.

        Tries a replay of the journal first. Returns the number of records still in the
        journal: 0 means that everything is in the database. Raises LogFlushTimeout.
        """
        self._check_open("flush the log")
        return self._writer.wait(timeout, replay=True)

    # Reads, on the caller's thread.

    def turns(self, conversation_id: str) -> list[LoggedTurn]:
        """Return a conversation's turns, oldest first.

        Raises ConversationNotFoundError when no conversation has that id.
        """
        conversation_uuid = _parse_id(conversation_id, ConversationNotFoundError, "conversation")
        with self._read_session("read turns"):
            turns = queries.conversation_turns(self._models, conversation_uuid)
        if turns is None:
            raise ConversationNotFoundError(
                f"No conversation with id {conversation_id!r} in {self._target.display_name}."
            )
        return turns

    def get_turn(self, turn_id: str) -> LoggedTurn:
        """Return one turn. Raises TurnNotFoundError when no turn has that id."""
        turn_uuid = _parse_id(turn_id, TurnNotFoundError, "turn")
        with self._read_session("read a turn"):
            turn = queries.turn_by_id(self._models, turn_uuid)
        if turn is None:
            raise TurnNotFoundError(f"No turn with id {turn_id!r} in {self._target.display_name}.")
        return turn

    def get_conversation(self, conversation_id: str) -> ConversationInfo:
        """Return a conversation's metadata.

        Raises ConversationNotFoundError when no conversation has that id.
        """
        conversation_uuid = _parse_id(conversation_id, ConversationNotFoundError, "conversation")
        with self._read_session("read a conversation"):
            info = queries.conversation_by_id(self._models, conversation_uuid)
        if info is None:
            raise ConversationNotFoundError(
                f"No conversation with id {conversation_id!r} in {self._target.display_name}."
            )
        return info

    def conversations(self, user: str | None, limit: int = 50) -> list[ConversationInfo]:
        """Return a user's conversations, most recently updated first.

        ``user=None`` lists the conversations started without a user.
        """
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise InvalidLogValueError(f"limit must be a positive int, got {limit!r}.")
        with self._read_session("list conversations"):
            return queries.user_conversations(self._models, user, limit)

    def feedback(self, turn_id: str) -> list[FeedbackInfo]:
        """Return the feedback on a turn, oldest first; an unknown turn has none."""
        turn_uuid = _parse_id(turn_id, TurnNotFoundError, "turn")
        with self._read_session("read feedback"):
            return queries.turn_feedback(self._models, turn_uuid)

    # Changes, run by the writer after the writes queued before them.

    def rename_conversation(self, conversation_id: str, title: str, *, user: str | None) -> None:
        """Set the title of ``user``'s conversation (``None``: one started without a user).

        Raises ConversationNotFoundError when no conversation with that id belongs to
        ``user``, InvalidLogValueError for a title its column cannot hold, and
        LogDatabaseError while the database is unavailable.
        """
        self._check_open("rename a conversation")
        validate_conversation(user, title)
        conversation_uuid = _parse_id(conversation_id, ConversationNotFoundError, "conversation")

        renamed = self._change(
            "rename a conversation",
            lambda: changes.rename_conversation(self._models, conversation_uuid, user, title),
        )
        if not renamed:
            raise self._not_owned(conversation_id, user)

    def delete_conversation(self, conversation_id: str, *, user: str | None) -> DeletedConversation:
        """Delete ``user``'s conversation with its turns and their feedback; return what went.

        Turns of the conversation that are still queued are deleted too, and turns recorded
        for it later in this process are dropped. Raises ConversationNotFoundError when no
        conversation with that id belongs to ``user``, and LogDatabaseError while the
        database is unavailable.
        """
        self._check_open("delete a conversation")
        validate_conversation(user, "")
        conversation_uuid = _parse_id(conversation_id, ConversationNotFoundError, "conversation")

        deleted = self._change(
            "delete a conversation",
            lambda: changes.delete_conversation(self._models, conversation_uuid, user),
            tombstones_of=lambda result: [] if result is None else result.ids(),
        )
        if deleted is None:
            raise self._not_owned(conversation_id, user)
        return deleted

    def _change(
        self,
        action: str,
        change: Callable[[], _T],
        tombstones_of: Callable[[_T], list[str]] | None = None,
    ) -> _T:
        """Run ``change`` on the writer thread and return its result; ``action`` completes
        "Could not ..." in error messages."""
        self._check_open(action)
        # Other logs of this process on the same database may hold writes it must follow.
        wait_for_writers(self._target.storage_key, self._settings.read_wait_s)
        try:
            with translated_errors(self._target, action):
                # As long as close() waits for the same queue to drain.
                return self._writer.apply_change(
                    change, self._settings.close_timeout_s, tombstones_of=tombstones_of
                )
        except ChangeUnavailable as error:
            raise LogDatabaseError(
                f"Could not {action} in {self._target.display_name}: {error.detail}. Nothing "
                "was changed; try again once the database is reachable."
            ) from None

    def _not_owned(self, conversation_id: str, user: str | None) -> ConversationNotFoundError:
        # The same message whether the id is unknown or another user's, so ids can't be probed.
        return ConversationNotFoundError(
            f"No conversation with id {conversation_id!r} for user {user!r} in "
            f"{self._target.display_name}."
        )

    # Operations.

    def purge(self, retention_days: int, *, dry_run: bool = False) -> PurgeResult:
        """Delete the records older than ``retention_days`` days and return the counts.

        Also drops older entries from this database's rejected.jsonl. With ``dry_run``,
        count the database rows without deleting anything. Records still queued or in the
        journal are not affected until they reach the database.
        """
        if isinstance(retention_days, bool) or not isinstance(retention_days, int) or retention_days < 1:
            raise InvalidLogValueError(
                f"retention_days must be a positive int, got {retention_days!r}."
            )
        cutoff = retention_cutoff(retention_days)
        with self._read_session("purge old records"):
            if dry_run:
                return count_expired(self._models, cutoff)
            result = purge_expired(self._database, self._models, cutoff)
        rejected = self._journal.purge_rejected(cutoff)

        logger.info(
            "Purged %d conversations, %d turns and %d feedback records older than %s UTC "
            "from %s, and %d rejected journal entries",
            result.conversations,
            result.turns,
            result.feedback,
            cutoff.isoformat(timespec="seconds"),
            self._target.display_name,
            rejected,
        )
        return dataclasses.replace(result, rejected_entries=rejected)

    def schema_version(self) -> int:
        """Return the highest migration version applied to the database."""
        with self._session("read the schema version", transaction=False):
            return schema_version(self._database)

    def journal_backlog(self) -> int:
        """Return the number of records in this database's journal, waiting for a replay."""
        return self._journal.backlog()

    def connections_in_use(self) -> int:
        """Return the database connections that requests of this log hold right now."""
        return self._database.connections_in_use()

    def status(self) -> LogStatus:
        """Return the log's schema version, journal backlog and connection counters."""
        database = self._database
        pooled = isinstance(database, LogMySQLDatabase)
        return LogStatus(
            database_name=self._target.display_name,
            schema_version=self.schema_version(),
            latest_schema_version=LATEST_VERSION,
            journal_directory=str(self._journal.directory),
            journal_backlog=self._journal.backlog(),
            connections_in_use=database.connections_in_use(),
            pool_stale_timeout_s=database.stale_timeout_s if pooled else None,
            reconnects=database.reconnect_count if pooled else 0,
        )


def _close_at_exit(reference: weakref.ref[ConversationLog]) -> None:
    log = reference()
    if log is not None:
        log.close()
