"""The conversation log: conversations, turns and feedback in SQLite or MySQL.

Writes (``start_conversation``, ``record_turn``, ``record_feedback``) validate the record,
hand it to the background writer (writer.py) and return its new id at once. The writer
stores it, or journals it while the database is unavailable. Changes to stored
conversations (``rename_conversation``, ``delete_conversation``) run on the writer too,
after the writes queued before them, and the caller waits for their result (changes.py).
Reads run in the caller's thread on a connection that is taken for the call and given back
before it returns: from the pool for MySQL, newly opened for SQLite. A read first waits (up
to ``read_wait_s``) for the writes that this process queued for the same database, so it
sees them.

This module opens and closes a log. The methods live in writes.py, reads.py and
operations.py, on the shared state of base.py.

peewee keeps connection state per thread, so the app's worker threads may share one
ConversationLog.
"""

from __future__ import annotations

import atexit
import logging
import weakref
from types import TracebackType

from chat_ui.log.connection import close_connections, prepare_schema, translated_errors
from chat_ui.log.credentials import resolve_target
from chat_ui.log.database import DEFAULT_DATABASE_URL, open_database
from chat_ui.log.journal import Journal
from chat_ui.log.operations import LogOperations
from chat_ui.log.reads import LogReads
from chat_ui.log.registry import register_writer, unregister_writer
from chat_ui.log.settings import LogSettings
from chat_ui.log.writes import LogWrites

logger = logging.getLogger(__name__)


class ConversationLog(LogWrites, LogReads, LogOperations):
    """Conversation log on one database. Create it with ``ConversationLog.open(url)``."""

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


def _close_at_exit(reference: weakref.ref[ConversationLog]) -> None:
    log = reference()
    if log is not None:
        log.close()
