"""Choose the conversation that a question is answered and logged in, and its earlier turns.

A caller may send any conversation id. A UUID is kept when the conversation belongs to the
asking user, or when this resolver started it for that user and its row may still sit in the
log's write queue (see pending.py). It is also kept while the log database cannot be read.
Otherwise a new conversation starts, so another user's turns never reach this user's prompt
or their conversation.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from chat_ui.errors import ChatUIError, ConversationNotFoundError
from chat_ui.history import automatic_title
from chat_ui.log import ConversationLog
from chat_ui.pending import PendingConversations
from chat_ui.prompt import Exchange

logger = logging.getLogger(__name__)


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return False
    return True


class ConversationResolver:
    """Map a question's conversation id and history to the conversation it is logged in."""

    def __init__(self, log: ConversationLog) -> None:
        self.log = log
        self._pending = PendingConversations()

    def resolve(
        self,
        conversation_id: str | None,
        history: Sequence[Exchange] | None,
        user: str | None,
        question: str,
    ) -> tuple[str, Sequence[Exchange]]:
        """Return the conversation id to log the turn in, and the history to answer with.

        `history=None` continues `conversation_id` with its logged turns. A new conversation,
        titled after `question`, starts instead for an id that is not a UUID, for another
        user's conversation, and for an id that is neither in the log nor started here.
        """
        if conversation_id and not _is_uuid(conversation_id):
            logger.warning("conversation id %r is not a UUID, so a new conversation starts", conversation_id[:80])
            conversation_id, history = None, []
        if conversation_id and not self._owned_by(conversation_id, user):
            conversation_id, history = None, []
        if history is None:
            history = self._logged_history(conversation_id) if conversation_id else []
        if not conversation_id:
            conversation_id = self._start_conversation(user, question)
        return conversation_id, history

    def _owned_by(self, conversation_id: str, user: str | None) -> bool:
        """Return whether `user` may continue `conversation_id`.

        Another user's turns must never reach this user's prompt or their conversation. An id
        that the database does not know passes only when this resolver started it for
        `user`, because a conversation just started may still sit in the log's write queue.
        Any other unknown id would otherwise be stored as a new conversation without a user.
        """
        try:
            owner = self.log.get_conversation(conversation_id).user
        except ConversationNotFoundError:
            if self._pending.started_for(conversation_id, user):
                return True
            logger.warning(
                "conversation %s is not in the log and was not started by this process, "
                "so a new conversation starts",
                conversation_id,
            )
            return False
        except ChatUIError:
            # NOTE: while the database is down the owner cannot be read, so the id is kept and
            # its history comes only from the caller. The turn is then stored under that id,
            # without a user if the id is unknown.
            return True

        self._pending.discard(conversation_id)
        if owner == user:
            return True
        logger.warning(
            "conversation %s belongs to another user, so a new conversation starts", conversation_id
        )
        return False

    def _logged_history(self, conversation_id: str) -> list[Exchange]:
        try:
            turns = self.log.turns(conversation_id)
        except ChatUIError as exc:
            # An unknown id, or a log database that cannot be read: answer without history.
            logger.warning("no history for conversation %s: %s", conversation_id, exc)
            return []
        return [
            Exchange(question=t.question, answer=t.answer, search_query=t.search_query)
            for t in turns
            if t.status == "ok"
        ]

    def _start_conversation(self, user: str | None, question: str) -> str:
        try:
            conversation_id = self.log.start_conversation(user=user, title=automatic_title(question))
        except ChatUIError:
            # The log journals writes while its database is down, so this fails only on an
            # invalid value. The chat still answers, under an id the log never stored.
            conversation_id = str(uuid.uuid4())
            logger.exception("could not start conversation %s in the log", conversation_id)
            return conversation_id
        self._pending.add(conversation_id, user)
        return conversation_id
