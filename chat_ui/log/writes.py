"""Writes and changes of ConversationLog: both are run by the background writer.

Writes (``start_conversation``, ``record_turn``, ``record_feedback``) validate the record,
hand it to the background writer (writer.py) and return its new id at once. The writer
stores it, or journals it while the database is unavailable. Changes to stored
conversations (``rename_conversation``, ``delete_conversation``) run on the writer too,
after the writes queued before them, and the caller waits for their result (changes.py).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from typing import TypeVar

from chat_ui.errors import ConversationNotFoundError, LogDatabaseError, TurnNotFoundError
from chat_ui.log import changes
from chat_ui.log.base import LogBase, parse_id
from chat_ui.log.changes import ChangeUnavailable, DeletedConversation
from chat_ui.log.connection import translated_errors
from chat_ui.log.entries import conversation_entry, feedback_entry, turn_entry
from chat_ui.log.models import utc_now
from chat_ui.log.records import (
    TurnRecord,
    encode_sampling_params,
    encode_sources,
    validate_conversation,
    validate_feedback,
    validate_turn,
)
from chat_ui.log.registry import wait_for_writers

logger = logging.getLogger(__name__)

_T = TypeVar("_T")


class LogWrites(LogBase):
    """The methods of ConversationLog that queue records and change stored conversations."""

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
        conversation_id = parse_id(
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
        turn_uuid = parse_id(turn_id, TurnNotFoundError, "turn")
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

    # Changes, run by the writer after the writes queued before them.

    def rename_conversation(self, conversation_id: str, title: str, *, user: str | None) -> None:
        """Set the title of ``user``'s conversation (``None``: one started without a user).

        Raises ConversationNotFoundError when no conversation with that id belongs to
        ``user``, InvalidLogValueError for a title its column cannot hold, and
        LogDatabaseError while the database is unavailable.
        """
        self._check_open("rename a conversation")
        validate_conversation(user, title)
        conversation_uuid = parse_id(conversation_id, ConversationNotFoundError, "conversation")

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
        conversation_uuid = parse_id(conversation_id, ConversationNotFoundError, "conversation")

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
