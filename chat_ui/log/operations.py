"""Operations on ConversationLog: the retention purge, the schema version and the status."""

from __future__ import annotations

import dataclasses
import logging

from chat_ui.errors import InvalidLogValueError
from chat_ui.log.base import LogBase
from chat_ui.log.migrations import LATEST_VERSION, schema_version
from chat_ui.log.pool import LogMySQLDatabase
from chat_ui.log.records import LogStatus
from chat_ui.log.retention import PurgeResult, count_expired, purge_expired, retention_cutoff

logger = logging.getLogger(__name__)


class LogOperations(LogBase):
    """The methods of ConversationLog for operators: purge, schema version and status."""

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
