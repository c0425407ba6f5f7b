"""Reads of ConversationLog: turns, conversations and feedback, on the caller's thread."""

from __future__ import annotations

from chat_ui.errors import ConversationNotFoundError, InvalidLogValueError, TurnNotFoundError
from chat_ui.log import queries
from chat_ui.log.base import LogBase, parse_id
from chat_ui.log.records import ConversationInfo, FeedbackInfo, LoggedTurn


class LogReads(LogBase):
    """The methods of ConversationLog that read stored records."""

    def turns(self, conversation_id: str) -> list[LoggedTurn]:
        """Return a conversation's turns, oldest first.

        Raises ConversationNotFoundError when no conversation has that id.
        """
        conversation_uuid = parse_id(conversation_id, ConversationNotFoundError, "conversation")
        with self._read_session("read turns"):
            turns = queries.conversation_turns(self._models, conversation_uuid)
        if turns is None:
            raise ConversationNotFoundError(
                f"No conversation with id {conversation_id!r} in {self._target.display_name}."
            )
        return turns

    def get_turn(self, turn_id: str) -> LoggedTurn:
        """Return one turn. Raises TurnNotFoundError when no turn has that id."""
        turn_uuid = parse_id(turn_id, TurnNotFoundError, "turn")
        with self._read_session("read a turn"):
            turn = queries.turn_by_id(self._models, turn_uuid)
        if turn is None:
            raise TurnNotFoundError(f"No turn with id {turn_id!r} in {self._target.display_name}.")
        return turn

    def get_conversation(self, conversation_id: str) -> ConversationInfo:
        """Return a conversation's metadata.

        Raises ConversationNotFoundError when no conversation has that id.
        """
        conversation_uuid = parse_id(conversation_id, ConversationNotFoundError, "conversation")
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
        turn_uuid = parse_id(turn_id, TurnNotFoundError, "turn")
        with self._read_session("read feedback"):
            return queries.turn_feedback(self._models, turn_uuid)
