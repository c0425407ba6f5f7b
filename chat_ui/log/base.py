"""State and connection sessions that the method groups of ConversationLog share.

``LogBase`` owns the database, its models, the journal and the background writer of one
log. The mixins in writes.py, reads.py and operations.py build on it, and store.py joins
them into ``ConversationLog``. Reads run on a connection taken for the call and given back
before it returns, after waiting (up to ``read_wait_s``) for the writes that this process
queued for the same database.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

from chat_ui.errors import LogClosedError
from chat_ui.log.connection import connected
from chat_ui.log.database import DatabaseTarget, describe_error
from chat_ui.log.journal import Journal
from chat_ui.log.models import LogModels, build_models
from chat_ui.log.pool import LogMySQLDatabase, LogSqliteDatabase
from chat_ui.log.redact import redact_personal_data
from chat_ui.log.registry import wait_for_writers
from chat_ui.log.settings import LogSettings
from chat_ui.log.writer import BackgroundWriter


def parse_id(value: str, not_found: type[LookupError], kind: str) -> uuid.UUID:
    """Parse a record id, raising ``not_found`` for one that is not a UUID."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise not_found(f"No {kind} with id {value!r}: the id is not a UUID.") from None


class LogBase:
    """A log's database, models, journal and writer, and the checks every call runs first."""

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

    @contextmanager
    def reading(self, action: str) -> Iterator[LogModels]:
        """Yield the models on a read session, for read-only queries kept outside the log class.

        stats.py builds its aggregate queries this way instead of adding them all here.
        """
        with self._read_session(action):
            yield self._models
