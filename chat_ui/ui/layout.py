"""Build the chat page from its parts and wire the events between them.

The sidebar contains the language switch, the history panel and the settings panel. Below
the title, the chat column (with the feedback row) sits beside the sources panel.

Handlers return dicts keyed by component, so that one event can update any part and leave
the others as they are. One ChatSession in gr.State contains what the tab shows. The
components and services that handlers share are in page.py, and the history panel's events
are wired in history_wiring.py.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import gradio as gr

from chat_ui.language import Language, translate
from chat_ui.render import session_messages
from chat_ui.stopping import StopRequests
from chat_ui.ui.chat import ChatAnswers, build_chat_column
from chat_ui.ui.feedback import build_feedback_row, record_feedback
from chat_ui.ui.history import HistoryActions, build_history_panel
from chat_ui.ui.history_wiring import wire_history
from chat_ui.ui.labels import Labels, Text, chosen_language, language_choices
from chat_ui.ui.page import QUICK, Page, UIContext, user_of
from chat_ui.ui.session import ChatSession
from chat_ui.ui.settings import answer_options, build_settings_panel
from chat_ui.ui.sources import SourcesView, build_sources_panel

logger = logging.getLogger(__name__)

# Gradio's cache of files this app returned (page images, exports): checked every 10 minutes,
# and files older than an hour deleted, because both contain document and conversation text.
DELETE_CACHE = (600, 3600)
LANGUAGE_STORAGE_KEY = "veraclaim-language"


def build_page(context: UIContext, i18n: gr.I18n) -> gr.Blocks:
    """Lay out the page and wire every event."""
    labels = Labels(i18n)
    with gr.Blocks(title="Veraclaim", analytics_enabled=False, fill_width=True, delete_cache=DELETE_CACHE) as demo:
        session = gr.State(ChatSession())
        language = gr.State("ko")
        language_store = gr.BrowserState(None, storage_key=LANGUAGE_STORAGE_KEY)
        with gr.Sidebar(width=340, open=True):
            # No choice until the page's load event sets it, so a checked switch means loaded.
            language_switch = labels.make(
                gr.Radio, {"label": "ui.language"}, choices=language_choices(), value=None, elem_id="language"
            )
            history = build_history_panel(labels)
            settings = build_settings_panel(labels, context.settings)
        labels.make(gr.Markdown, {"value": Text("app.title", "## {}")})
        labels.make(gr.Markdown, {"value": "app.intro"})
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=480):
                chat = build_chat_column(labels)
                feedback = build_feedback_row(labels)
            sources = build_sources_panel(labels)

        page = Page(
            labels, session, language, language_switch, language_store, chat, feedback, sources, history, settings,
            SourcesView(context.pipeline.retriever, context.renderer),
        )
        answer_events, stopped = _wire_chat(page, context, demo)
        _wire_sources(page)
        _wire_feedback(page, context)
        wire_history(page, context, answer_events, stopped)
        _wire_language(page, context, demo)
    return demo


def _wire_chat(page: Page, context: UIContext, demo: gr.Blocks) -> tuple[list[Any], Any]:
    """Wire asking, retrying, stopping and starting over, and return the answer events and the stop event."""
    answers = ChatAnswers(context.pipeline)
    stops = StopRequests()
    chat, sources = page.chat, page.sources

    def tab_closed(request: gr.Request):
        # Gradio cancels a closed tab's answer only at its next update, which a stalled model
        # delays. The stop signal ends it now, so its turn is logged "interrupted".
        if stops.stop(request.session_hash):
            logger.info("stopped the streaming answer of a closed browser tab")

    demo.unload(tab_closed)

    def stream(sessions: Iterator[ChatSession], language: Language) -> Iterator[dict[Any, Any]]:
        shown_sources = None
        for first, session in _with_first(sessions):
            messages, _ = session_messages(session, language)
            update = {chat.chatbot: messages, page.session: session}
            turn = session.selected_turn
            # The list changes when citations arrive, and once more for an answer without any.
            sources_key = (turn.citations, turn.search_query, not turn.citations and turn.status != "streaming")
            if first:
                update.update({**page.cleared(language), **page.show(session, language)})
            elif sources_key != shown_sources:
                update[sources.summary] = page.view.summary_markdown(session, language)
                # Choices only: a citation the user opened while the answer streams stays open.
                update[sources.picker] = gr.update(choices=page.view.picker_choices(session, language))
            shown_sources = sources_key
            yield update

    def respond(question, session, language, thinking, top_k, temperature, default_temperature, request: gr.Request):
        if session.streaming:
            gr.Warning(translate("chat.busy", language))
            yield {chat.question: gr.skip()}
            return
        if not (question or "").strip():
            gr.Info(translate("answer.empty_question", language))
            yield {chat.question: gr.skip()}
            return
        options = answer_options(thinking, top_k, temperature, default_temperature, language)
        signal = stops.start(request.session_hash)
        try:
            yield from stream(answers.answer(question, session, options, user_of(request), signal), language)
        finally:
            stops.finish(request.session_hash, signal)

    def retry(session, language, thinking, top_k, temperature, default_temperature, request: gr.Request):
        if session.streaming or not session.turns:
            yield {chat.question: gr.skip()}
            return
        options = answer_options(thinking, top_k, temperature, default_temperature, language)
        signal = stops.start(request.session_hash)
        try:
            yield from stream(answers.retry(session, options, user_of(request), signal), language)
        finally:
            stops.finish(request.session_hash, signal)

    # The queue position and progress show on the chat only, not on every output.
    events = {
        "concurrency_limit": context.settings.concurrency_limit,
        "concurrency_id": "chat",
        "api_visibility": "private",
        "show_progress_on": chat.chatbot,
    }
    inputs = [page.session, page.language, *page.settings.inputs]
    answer_events = [
        chat.question.submit(respond, [chat.question, *inputs], page.answer_outputs, **events),
        chat.send.click(respond, [chat.question, *inputs], page.answer_outputs, **events),
        chat.retry.click(retry, inputs, page.answer_outputs, **events),
    ]

    def stop(session, language, request: gr.Request):
        # The signal ends the pipeline's stream now, even while the model sends nothing;
        # `cancels` alone would end it only at the next token.
        stops.stop(request.session_hash)
        return page.show(answers.stopped(session, language), language)

    stopped = chat.stop.click(
        stop,
        [page.session, page.language],
        [chat.chatbot, page.session, sources.summary, sources.picker],
        cancels=answer_events,
        queue=False,
        **QUICK,
    )
    def start_over(language, request: gr.Request):
        stops.stop(request.session_hash)
        return page.cleared(language)

    chat.new.click(start_over, [page.language], page.answer_outputs, cancels=answer_events, queue=False, **QUICK)
    return answer_events, stopped


def _wire_sources(page: Page) -> None:
    """Wire picking an answer in the chat, and opening one of its citations."""
    sources = page.sources

    def select_answer(session, language, event: gr.SelectData):
        _, turn_of_message = session_messages(session, language)
        index = event.index if isinstance(event.index, int) else None
        if index is None or not 0 <= index < len(turn_of_message):
            return {page.session: session}
        session = replace(session, selected=turn_of_message[index], opened=None)
        return {page.session: session, **page.sources_view(session, language), **page.viewer_cleared}

    page.chat.chatbot.select(
        select_answer,
        [page.session, page.language],
        [page.session, sources.summary, sources.picker, *sources.viewer],
        **QUICK,
    )

    def open_citation(n, session, language):
        session, note, image, text = page.view.open(session, n, language)
        return {page.session: session, sources.note: note, sources.image: image, sources.text: text}

    sources.picker.change(
        open_citation,
        [sources.picker, page.session, page.language],
        [page.session, *sources.viewer],
        api_visibility="private",
        show_progress_on=sources.image,
    )


def _wire_feedback(page: Page, context: UIContext) -> None:
    """Wire the rating buttons (the selected answer) and the Chatbot's thumbs (their own answer)."""
    feedback = page.feedback
    inputs = [page.session, feedback.comment, page.language]
    outputs = [feedback.status, feedback.comment]

    def rate(rating):
        def handler(session, comment, language, request: gr.Request):
            status, comment = record_feedback(
                context.history, user_of(request), session, None, rating, comment, language
            )
            return {feedback.status: status, feedback.comment: comment}

        return handler

    feedback.up.click(rate("up"), inputs, outputs, **QUICK)
    feedback.down.click(rate("down"), inputs, outputs, **QUICK)

    def like(session, comment, language, event: gr.LikeData, request: gr.Request):
        if not isinstance(event.liked, bool) or not isinstance(event.index, int):
            return {feedback.status: gr.skip()}  # a removed like, or a message index pair
        _, turn_of_message = session_messages(session, language)
        turn_index = turn_of_message[event.index] if 0 <= event.index < len(turn_of_message) else None
        rating = "up" if event.liked else "down"
        status, comment = record_feedback(
            context.history, user_of(request), session, turn_index, rating, comment, language
        )
        return {feedback.status: status, feedback.comment: comment}

    page.chat.chatbot.like(like, inputs, outputs, **QUICK)


def _wire_language(page: Page, context: UIContext, demo: gr.Blocks) -> None:
    """Wire the language switch and the page load, which both re-label the page and redraw server text."""
    actions = HistoryActions(context.history, context.exports)
    outputs = list(
        dict.fromkeys(
            [*page.labels.components, page.language, page.language_switch, page.language_store,
             *page.answer_outputs, page.history.conversations, page.history.status]
        )
    )

    def switch_language(language, session, selected, request: gr.Request):
        update: dict[Any, Any] = dict(zip(page.labels.components, page.labels.updates(language), strict=True))
        for component, value in page.show(session, language).items():
            update[component] = _merge(update.get(component), value)
        # The open citation's note is server text too. Its page comes from the renderer's cache.
        update[page.sources.note] = page.view.open(session, session.opened, language)[1] if session.opened else ""
        update[page.language] = language
        update[page.language_store] = language
        choices, status = actions.choices(user_of(request), selected, language)
        update[page.history.conversations] = _merge(update.get(page.history.conversations), choices)
        update[page.history.status] = status
        return update

    page.language_switch.input(
        switch_language, [page.language_switch, page.session, page.history.conversations], outputs, **QUICK
    )

    # On load: the language stored in the browser, else the one its Accept-Language header prefers.
    def load(stored, session, request: gr.Request):
        chosen = chosen_language(stored, request.headers.get("accept-language") if request else None)
        update = switch_language(chosen, session, None, request)
        update[page.language_switch] = _merge(update.get(page.language_switch), gr.update(value=chosen))
        return update

    demo.load(load, [page.language_store, page.session], outputs, **QUICK)


def _merge(first: Any, second: Any) -> Any:
    """Merge two updates of one component, where a plain value becomes the update's value."""
    if first is None:
        return second
    if not (isinstance(second, dict) and second.get("__type__") == "update"):
        second = gr.update(value=second)
    return {**first, **second}


def _with_first(items: Iterator[Any]) -> Iterator[tuple[bool, Any]]:
    first = True
    for item in items:
        yield first, item
        first = False
