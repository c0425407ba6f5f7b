"""The chat page's components and services, which every event handler of the page uses.

`Page` contains the components that build_page lays out, and the views drawn from one
ChatSession. `UIContext` contains the services behind them. Handlers return dicts keyed by
component, so the methods here return such dicts too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from chat_ui.history import ConversationHistory
from chat_ui.language import Language
from chat_ui.pages import PageRenderer
from chat_ui.pipeline import AnswerPipeline
from chat_ui.render import session_messages
from chat_ui.settings import ChatSettings
from chat_ui.ui.chat import ChatColumn
from chat_ui.ui.exports import ExportFolder
from chat_ui.ui.feedback import FeedbackRow
from chat_ui.ui.history import HistoryPanel
from chat_ui.ui.labels import Labels
from chat_ui.ui.session import ChatSession
from chat_ui.ui.settings import SettingsPanel
from chat_ui.ui.sources import SourcesPanel, SourcesView

# Events that only read or write small state: no queue position or progress to show.
QUICK = {"api_visibility": "private", "show_progress": "hidden"}


@dataclass(frozen=True)
class UIContext:
    """The services the page's handlers use."""

    pipeline: AnswerPipeline
    history: ConversationHistory
    settings: ChatSettings
    renderer: PageRenderer
    exports: ExportFolder


@dataclass(frozen=True)
class Page:
    """The page's components, and the views drawn from a session."""

    labels: Labels
    session: gr.State
    language: gr.State  # the page's language, which every handler writes in
    language_switch: gr.Radio
    language_store: gr.BrowserState
    chat: ChatColumn
    feedback: FeedbackRow
    sources: SourcesPanel
    history: HistoryPanel
    settings: SettingsPanel
    view: SourcesView

    @property
    def answer_outputs(self) -> list[Any]:
        """The outputs an answer changes: the chat, the question box and the sources panel."""
        return [
            self.chat.chatbot,
            self.session,
            self.chat.question,
            self.sources.summary,
            self.sources.picker,
            *self.sources.viewer,
            self.feedback.status,
        ]

    @property
    def viewer_cleared(self) -> dict[Any, Any]:
        return {self.sources.note: "", self.sources.image: None, self.sources.text: None}

    def sources_view(self, session: ChatSession, language: Language) -> dict[Any, Any]:
        """Return the sources list and the picker of the session's selected answer."""
        choices = self.view.picker_choices(session, language)
        return {
            self.sources.summary: self.view.summary_markdown(session, language),
            self.sources.picker: gr.update(choices=choices, value=session.opened),
        }

    def show(self, session: ChatSession, language: Language) -> dict[Any, Any]:
        """Return everything drawn from the session: the chat, the sources list and the picker."""
        messages, _ = session_messages(session, language)
        return {self.chat.chatbot: messages, self.session: session, **self.sources_view(session, language)}

    def cleared(self, language: Language) -> dict[Any, Any]:
        """Return an empty chat, so that the next question starts a new conversation."""
        return {
            **self.show(ChatSession(), language),
            **self.viewer_cleared,
            self.chat.question: "",
            self.feedback.status: "",
        }


def user_of(request: gr.Request | None) -> str | None:
    """Return the signed-in user's name, or None in an app without sign-in."""
    return getattr(request, "username", None) if request is not None else None
