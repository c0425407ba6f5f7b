"""Turn a chat session into Gradio chat messages, and text into Markdown that shows as typed.

Nothing from a document or from the model reaches the browser as HTML. Document text and
file names are HTML- and Markdown-escaped. The model's answer keeps its Markdown (lists,
emphasis, code) but its HTML is escaped outside code, and it cannot form images, which would
make the browser fetch a URL the model wrote. The Chatbot's own sanitizer stays on behind
this.
"""

from __future__ import annotations

import html
import re

from chat_ui.language import LANGUAGES, Language, translate
from chat_ui.pipeline import AnswerUpdate
from chat_ui.ui.session import ChatSession, ShownCitation, ShownTurn, turn_from_update

# Markdown's punctuation, escaped so document text cannot form links, images or emphasis.
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|>~])")

# Code in a model answer: fenced blocks (an unclosed fence runs to the end, as while the
# answer streams) and inline spans. Markdown shows their content literally, so it stays.
_CODE = re.compile(r"(?ms)^(?P<fence>```|~~~).*?(?:^(?P=fence)[ \t]*$|\Z)|(?P<ticks>`+)[^`\n]+?(?P=ticks)")
_IMAGE_START = re.compile(r"!(?=\[)")


def escape_document_text(text: str) -> str:
    """Escape HTML and Markdown in text that comes from a document, so it shows as typed."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", html.escape(text))


def answer_markdown(text: str) -> str:
    """Return the model's answer as Markdown whose HTML shows as text and that has no images."""
    pieces: list[str] = []
    position = 0
    for match in _CODE.finditer(text):
        pieces.append(_escape_prose(text[position : match.start()]))
        pieces.append(match.group(0))
        position = match.end()
    pieces.append(_escape_prose(text[position:]))
    return "".join(pieces)


def _escape_prose(text: str) -> str:
    # "![alt](url)" becomes "!\[alt](url)": a "!" before a link, so the URL is never fetched.
    return _IMAGE_START.sub("!\\\\", html.escape(text, quote=False))


def session_messages(session: ChatSession, language: Language) -> tuple[list[dict], list[int]]:
    """Return the chat messages of `session`, and for each message the index of its turn."""
    messages: list[dict] = []
    turn_of_message: list[int] = []
    for index, turn in enumerate(session.turns):
        shown = [{"role": "user", "content": turn.question}, *turn_messages(turn, language)]
        messages.extend(shown)
        turn_of_message.extend([index] * len(shown))
    return messages, turn_of_message


def answer_messages(update: AnswerUpdate, language: Language | None = None) -> list[dict]:
    """Return the assistant messages for one pipeline update (the API's view of a turn)."""
    return turn_messages(turn_from_update(update), language or update.language)


def turn_messages(turn: ShownTurn, language: Language) -> list[dict]:
    """Return a turn's assistant messages: the thinking block, the answer, then its sources."""
    messages = []
    if turn.reasoning.strip():
        # Open with a spinner while the model is still thinking, collapsed once the answer starts.
        thinking_status = "pending" if not turn.answer and turn.status == "streaming" else "done"
        messages.append(
            {
                "role": "assistant",
                "content": html.escape(turn.reasoning.strip()),
                "metadata": {"title": translate("thinking.title", language), "status": thinking_status},
            }
        )

    text = answer_markdown(turn.answer)
    note = turn.notice or _status_note(turn.status, language)
    if note:
        text = f"{text}\n\n*{note}*" if text else note
    # A stream that starts with reasoning has no answer text yet: show no empty bubble.
    if text:
        messages.append({"role": "assistant", "content": text})

    if turn.citations:
        # Plain Markdown under a heading rather than a collapsible block: Gradio keys a block's
        # open state by position, and the Thinking block shifts positions while it streams.
        lines = [sources_heading(language), *(format_citation(c, language) for c in turn.citations)]
        messages.append({"role": "assistant", "content": "\n\n".join(lines)})
    return messages


def _status_note(status: str, language: Language) -> str | None:
    # Turns read back from the log carry a status but not the notice the user saw then.
    if status in ("error", "interrupted", "no_answer"):
        return translate(f"chat.status.{status}", language)
    return None


def format_citation(citation: ShownCitation, language: Language) -> str:
    """Return one source line: its number, file name and page."""
    file_name = escape_document_text(citation.file_name)
    if citation.page is None:
        return f"**[{citation.n}]** {file_name}"
    return f"**[{citation.n}]** {file_name}, {translate('sources.page', language, page=citation.page)}"


def sources_heading(language: Language) -> str:
    return f"**{translate('sources.title', language)}**"


def is_sources_message(text: str) -> bool:
    """Return whether a chat message is a list of sources rather than an answer."""
    return any(text.startswith(sources_heading(language)) for language in LANGUAGES)
