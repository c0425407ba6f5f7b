"""Thumbs up or down, with an optional comment, on one answer.

The buttons under the chat rate the selected answer (the last one unless the user clicked
another). The Chatbot's own thumbs rate the answer they sit on. Both store the rating through
ConversationHistory.feedback for the answer's turn id, which refuses turns of other users.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

import gradio as gr

from chat_ui.errors import ChatUIError
from chat_ui.history import ConversationHistory
from chat_ui.language import Language, translate
from chat_ui.ui.labels import Labels
from chat_ui.ui.session import ChatSession

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class FeedbackRow:
    up: gr.Button
    down: gr.Button
    comment: gr.Textbox
    status: gr.Markdown


def build_feedback_row(labels: Labels) -> FeedbackRow:
    """Lay out the rating buttons, the comment box and the status line."""
    with gr.Group(elem_id="feedback"):
        with gr.Row(equal_height=True):
            comment = labels.make(
                gr.Textbox,
                {"label": "feedback.comment", "placeholder": "feedback.comment_placeholder"},
                lines=1,
                max_lines=4,
                scale=6,
                elem_id="feedback-comment",
            )
            up = labels.make(gr.Button, {"value": "feedback.up"}, scale=1, size="md", elem_id="feedback-up")
            down = labels.make(gr.Button, {"value": "feedback.down"}, scale=1, size="md", elem_id="feedback-down")
    status = gr.Markdown(elem_id="feedback-status")
    return FeedbackRow(up, down, comment, status)


def record_feedback(
    history: ConversationHistory,
    user: str | None,
    session: ChatSession,
    turn_index: int | None,
    rating: Literal["up", "down"],
    comment: str | None,
    language: Language,
) -> tuple[str, str | None]:
    """Store a rating of turn `turn_index` (None: the selected turn); return (status, comment).

    The comment box is emptied after a stored rating and kept after a failure.
    """
    if turn_index is None:
        turn = session.selected_turn
        turn_index = session.turns.index(turn) if turn is not None else None
    if turn_index is None or not 0 <= turn_index < len(session.turns):
        return translate("feedback.no_answer", language), comment
    turn = session.turns[turn_index]
    if turn.turn_id is None:
        return translate("feedback.not_logged", language), comment

    try:
        history.feedback(user, turn.turn_id, rating, (comment or "").strip() or None)
    except ChatUIError:
        logger.exception("could not store %s feedback of user %r on turn %s", rating, user, turn.turn_id)
        return translate("feedback.failed", language), comment
    logger.info("stored %s feedback on turn %s", rating, turn.turn_id)
    return translate(f"feedback.saved_{rating}", language, n=turn_index + 1), ""
