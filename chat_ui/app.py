"""The Gradio chat app: the chat page (chat_ui/ui/) and the named API endpoint `ask`.

Gradio is imported here only, after the CLI has switched analytics off in the environment.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import gradio as gr

from chat_ui.history import ConversationHistory
from chat_ui.language import catalog
from chat_ui.pages import PageRenderer
from chat_ui.pipeline import AnswerPipeline
from chat_ui.settings import ChatSettings
from chat_ui.ui.exports import ExportFolder
from chat_ui.ui.layout import UIContext, build_page, user_of

logger = logging.getLogger(__name__)


def build_i18n() -> gr.I18n:
    """Korean and English catalogs; browsers set to Korean get Korean, all others English."""
    return gr.I18n(ko=catalog("ko"), en=catalog("en"))


def build_app(
    pipeline: AnswerPipeline, settings: ChatSettings, history: ConversationHistory | None = None
) -> gr.Blocks:
    """Lay out the chat page, wire its events to `pipeline`, and add the `ask` endpoint.

    `history` defaults to the conversations in the pipeline's log.
    """
    context = UIContext(
        pipeline=pipeline,
        history=history if history is not None else ConversationHistory(pipeline.log),
        settings=settings,
        renderer=PageRenderer(),
        exports=ExportFolder(),
    )

    def ask(
        question: str, conversation_id: str = "", request: gr.Request = None
    ) -> Iterator[tuple[str, list[dict], str]]:
        """Stream the answer text, the cited sources and the conversation id."""
        for update in pipeline.stream(question, conversation_id=conversation_id or None, user=user_of(request)):
            answer = update.answer if not update.notice else f"{update.answer}\n\n{update.notice}".strip()
            sources = [
                {"n": c.n, "file_name": c.file_name, "page": c.page, "snippet": c.snippet, "score": c.score}
                for c in update.citations
            ]
            yield answer, sources, update.conversation_id

    demo = build_page(context, build_i18n())
    with demo:
        # The named endpoint that gradio_client and other programs call.
        gr.api(ask, api_name="ask", concurrency_limit=settings.concurrency_limit, concurrency_id="chat")

    demo.queue(default_concurrency_limit=settings.concurrency_limit)
    return demo
