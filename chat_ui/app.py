"""The Gradio chat app: a streamed, cited answer per question, and a named API endpoint.

Gradio is imported here only, after the CLI has switched analytics off in the environment.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import gradio as gr

from chat_ui.language import catalog
from chat_ui.pipeline import AnswerPipeline
from chat_ui.render import answer_messages, history_from_messages, message_text
from chat_ui.settings import ChatSettings

logger = logging.getLogger(__name__)

def build_i18n() -> gr.I18n:
    """Korean and English catalogs; browsers set to Korean get Korean, all others English."""
    return gr.I18n(ko=catalog("ko"), en=catalog("en"))


def build_app(pipeline: AnswerPipeline, settings: ChatSettings) -> gr.Blocks:
    """Lay out the chat page and wire its events to `pipeline`."""
    i18n = build_i18n()

    def respond(question: str, messages: list[dict], conversation_id: str) -> Iterator[tuple]:
        """Stream the answer into the chat, then keep the conversation id for the next turn."""
        history = history_from_messages(messages)
        shown = [*messages, {"role": "user", "content": question}]
        for update in pipeline.stream(question, history=history, conversation_id=conversation_id or None):
            yield shown + answer_messages(update), update.conversation_id or conversation_id, ""

    def retry(messages: list[dict], conversation_id: str) -> Iterator[tuple]:
        """Ask the last question again, replacing its answer (after a failure, for example)."""
        last_user = max((i for i, message in enumerate(messages) if message.get("role") == "user"), default=None)
        if last_user is None:
            yield messages, conversation_id, ""
            return
        yield from respond(message_text(messages[last_user]), messages[:last_user], conversation_id)

    def ask(question: str, conversation_id: str = "") -> Iterator[tuple[str, list[dict], str]]:
        """Stream the answer text, the cited sources and the conversation id."""
        for update in pipeline.stream(question, conversation_id=conversation_id or None):
            answer = update.answer if not update.notice else f"{update.answer}\n\n{update.notice}".strip()
            sources = [
                {"n": c.n, "file_name": c.file_name, "page": c.page, "snippet": c.snippet, "score": c.score}
                for c in update.citations
            ]
            yield answer, sources, update.conversation_id

    def clear() -> tuple[list, str, str]:
        return [], "", ""

    with gr.Blocks(title="Veraclaim", analytics_enabled=False) as demo:
        gr.Markdown(f"## {i18n('app.title')}")
        gr.Markdown(i18n("app.intro"))
        conversation_id = gr.State("")
        chatbot = gr.Chatbot(label=i18n("chat.label"), height=560, elem_id="chat")
        with gr.Row():
            question = gr.Textbox(
                label=i18n("input.label"),
                placeholder=i18n("chat.placeholder"),
                scale=8,
                elem_id="question",
            )
            send = gr.Button(i18n("input.submit"), variant="primary", scale=1, elem_id="send")
            again = gr.Button(i18n("input.retry"), scale=1, elem_id="retry")
            new = gr.Button(i18n("input.clear"), scale=1, elem_id="new-conversation")

        chat_event = dict(
            fn=respond,
            inputs=[question, chatbot, conversation_id],
            outputs=[chatbot, conversation_id, question],
            api_visibility="private",
            concurrency_limit=settings.concurrency_limit,
            concurrency_id="chat",
        )
        question.submit(**chat_event)
        send.click(**chat_event)
        again.click(
            retry,
            inputs=[chatbot, conversation_id],
            outputs=[chatbot, conversation_id, question],
            api_visibility="private",
            concurrency_limit=settings.concurrency_limit,
            concurrency_id="chat",
        )
        new.click(clear, outputs=[chatbot, conversation_id, question], api_visibility="private")

        # The named endpoint that gradio_client and other programs call.
        gr.api(ask, api_name="ask", concurrency_limit=settings.concurrency_limit, concurrency_id="chat")

    demo.queue(default_concurrency_limit=settings.concurrency_limit)
    return demo
