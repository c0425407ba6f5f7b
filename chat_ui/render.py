"""Turn pipeline updates into Gradio chat messages, and chat messages back into history.

Document text and file names are HTML-escaped before they reach the Markdown renderer, so
a chunk holding markup shows as text instead of changing the page.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from chat_ui.language import LANGUAGES, translate
from chat_ui.pipeline import AnswerUpdate, Citation
from chat_ui.prompt import Exchange

def message_text(message: dict) -> str:
    """Return the plain text of a Gradio message, whose content is a string or a list of parts."""
    content = message.get("content")
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def history_from_messages(messages: Sequence[dict]) -> list[Exchange]:
    """Pair each user message with the answer that followed it.

    Thinking blocks (assistant messages with a metadata title) and source lists never go back
    to the model.
    """
    exchanges: list[Exchange] = []
    question: str | None = None
    for message in messages:
        metadata = message.get("metadata") or {}
        if message.get("role") == "user":
            question = message_text(message)
        elif message.get("role") == "assistant" and not metadata.get("title") and question is not None:
            text = message_text(message)
            if _is_sources(text):
                continue
            exchanges.append(Exchange(question=question, answer=text))
            question = None
    return exchanges


# Markdown's punctuation, escaped so document text cannot form links, images or emphasis.
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~])")


def escape_document_text(text: str) -> str:
    """Escape HTML and Markdown in text that comes from a document, so it shows as typed."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(text))


def format_citation(citation: Citation, update: AnswerUpdate) -> str:
    page = translate("sources.page", update.language, page=citation.page)
    file_name = escape_document_text(citation.file_name)
    return f"**[{citation.n}]** {file_name}, {page} — {escape_document_text(citation.snippet)}"


def answer_messages(update: AnswerUpdate) -> list[dict]:
    """Return the assistant messages for one update: the answer, then its sources."""
    text = update.answer
    if update.notice:
        text = f"{text}\n\n*{update.notice}*" if text else update.notice

    messages = []
    if update.reasoning.strip():
        # Collapsed once the answer starts, open while the model is still thinking.
        thinking_status = "pending" if not update.answer and not update.done else "done"
        messages.append(
            {
                "role": "assistant",
                "content": html.escape(update.reasoning.strip()),
                "metadata": {"title": translate("thinking.title", update.language), "status": thinking_status},
            }
        )
    # A stream that starts with reasoning has no answer text yet: show no empty bubble.
    if text:
        messages.append({"role": "assistant", "content": text})
    if update.citations:
        # Plain Markdown under a heading rather than a collapsible block: Gradio keys a block's
        # open state by position, and the Thinking block shifts positions while it streams.
        lines = [sources_heading(update.language), *(format_citation(c, update) for c in update.citations)]
        messages.append({"role": "assistant", "content": "\n\n".join(lines)})
    return messages


def sources_heading(language: str) -> str:
    return f"**{translate('sources.title', language)}**"


def _is_sources(text: str) -> bool:
    return any(text.startswith(sources_heading(language)) for language in LANGUAGES)
