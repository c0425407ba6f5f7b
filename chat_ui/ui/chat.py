"""The chat column: the conversation, the question box, and send, stop, retry and new buttons.

`ChatAnswers` streams the pipeline's updates into a ChatSession. The stop button signals
the pipeline to stop (chat_ui/stopping.py), and Gradio closes the stream when it cancels
the event (a closed tab); either way the pipeline logs the turn as "interrupted".
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, replace

import gradio as gr

from chat_ui.language import Language, translate
from chat_ui.pipeline import AnswerOptions, AnswerPipeline
from chat_ui.ui.labels import Labels
from chat_ui.ui.session import ChatSession, ShownTurn, turn_from_update

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChatColumn:
    chatbot: gr.Chatbot
    question: gr.Textbox
    send: gr.Button
    stop: gr.Button
    retry: gr.Button
    new: gr.Button


def build_chat_column(labels: Labels) -> ChatColumn:
    """Lay out the chat and its buttons. The caller places the column and wires the events."""
    chatbot = labels.make(
        gr.Chatbot,
        {"label": "chat.label"},
        height=620,
        elem_id="chat",
        # render.py escapes the answers, so no custom tag needs to survive the sanitizer.
        allow_tags=False,
        sanitize_html=True,
        buttons=["copy"],
        feedback_options=("Like", "Dislike"),
    )
    with gr.Row(equal_height=True):
        question = labels.make(
            gr.Textbox,
            {"label": "input.label", "placeholder": "chat.placeholder"},
            scale=8,
            # One line, so that Enter sends. The box grows for a pasted claim.
            lines=1,
            max_lines=8,
            elem_id="question",
        )
        with gr.Column(scale=1, min_width=120):
            send = labels.make(gr.Button, {"value": "input.submit"}, variant="primary", elem_id="send")
            stop = labels.make(gr.Button, {"value": "input.stop"}, variant="stop", elem_id="stop")
    with gr.Row():
        retry = labels.make(gr.Button, {"value": "input.retry"}, size="sm", elem_id="retry")
        new = labels.make(gr.Button, {"value": "input.clear"}, size="sm", elem_id="new-conversation")
    return ChatColumn(chatbot, question, send, stop, retry, new)


class ChatAnswers:
    """Streams answers from the pipeline into chat sessions."""

    def __init__(self, pipeline: AnswerPipeline) -> None:
        self.pipeline = pipeline

    def answer(
        self,
        question: str,
        session: ChatSession,
        options: AnswerOptions,
        user: str | None,
        stop: threading.Event | None = None,
    ) -> Iterator[ChatSession]:
        """Yield the session with the new turn as it grows, ending with its final status."""
        history = session.history()
        session = session.with_turn(ShownTurn(question=question.strip()))
        yield session

        stream = self.pipeline.stream(
            question,
            history=history,
            conversation_id=session.conversation_id or None,
            user=user,
            options=options,
            stop=stop,
        )
        # closing(): Gradio closes this generator on cancel (a closed tab), and the pipeline's
        # stream must close with it, so that the pipeline logs the turn as interrupted. Gradio
        # can close it only between two updates; the stop button's `stop` signal does not wait.
        with closing(stream) as updates:
            for update in updates:
                session = session.with_last_turn(turn_from_update(update), update.conversation_id)
                yield session

    def retry(
        self, session: ChatSession, options: AnswerOptions, user: str | None, stop: threading.Event | None = None
    ) -> Iterator[ChatSession]:
        """Ask the last question again, replacing its answer (after a failure, for example)."""
        if not session.turns:
            return
        question = session.turns[-1].question
        yield from self.answer(question, session.without_last_turn(), options, user, stop)

    @staticmethod
    def stopped(session: ChatSession, language: Language) -> ChatSession:
        """Mark a turn cut off by the stop button, keeping what had arrived."""
        if not session.streaming:
            return session
        last = session.turns[-1]
        logger.info("user stopped the answer in conversation %s", session.conversation_id or "(new)")
        return session.with_last_turn(replace(last, status="interrupted", notice=translate("chat.stopped", language)))
