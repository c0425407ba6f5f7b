"""The sources panel beside the chat: the cited passages of one answer, and a page viewer.

The panel lists each numbered citation of the selected answer with its file, page, the start
of the passage, and the query that was searched. Opening a citation shows the PDF page as an
image with the passage marked, and the page's text with the passage highlighted. Sources in
S3, or whose file cannot be opened, show the passage stored in the index instead.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from typing import Any

import gradio as gr

from chat_ui.language import Language, translate
from chat_ui.pages import PageNotFound, PageRenderer, PageSourceRejected, PageSourceRemote, source_root_of
from chat_ui.render import escape_document_text
from chat_ui.ui.labels import Labels, Text
from chat_ui.ui.session import ChatSession, ShownCitation
from index_builder.errors import IndexBuilderError

logger = logging.getLogger(__name__)

# Characters of a passage shown in the list, as ChatSettings.snippet_chars does by default.
SNIPPET_CHARS = 160
# The HighlightedText category of the cited passage, in the yellow of the marks on the image.
CITED = "cited"
CITED_COLOR = "#ffe066"


@dataclass(frozen=True)
class SourcesPanel:
    column: gr.Column
    summary: gr.Markdown
    picker: gr.Radio
    note: gr.Markdown
    image: gr.Image
    text: gr.HighlightedText

    @property
    def viewer(self) -> list[gr.components.Component]:
        """The page viewer's outputs, in the order SourcesView.open returns them."""
        return [self.note, self.image, self.text]


def build_sources_panel(labels: Labels) -> SourcesPanel:
    """Lay out the panel, whose contents come from SourcesView.summary_markdown and SourcesView.open."""
    with gr.Column(scale=2, min_width=360, elem_id="sources") as column:
        labels.make(gr.Markdown, {"value": Text("sources.panel", "### {}")})
        # Scrolls past this height, so the page viewer stays near the top of the panel.
        summary = labels.make(gr.Markdown, {"value": "sources.empty"}, max_height=240, elem_id="sources-list")
        picker = labels.make(gr.Radio, {"label": "sources.pick"}, choices=[], elem_id="sources-picker")
        note = gr.Markdown(elem_id="source-note")
        image = labels.make(
            gr.Image,
            {"label": "sources.page_image"},
            type="pil",
            format="png",
            interactive=False,
            buttons=["fullscreen"],
            elem_id="source-page",
        )
        text = labels.make(
            gr.HighlightedText,
            {"label": "sources.page_text"},
            color_map={CITED: CITED_COLOR},
            show_inline_category=False,
            show_legend=False,
            combine_adjacent=True,
            elem_id="source-text",
        )
    return SourcesPanel(column, summary, picker, note, image, text)


def file_and_page(citation: ShownCitation, language: Language) -> str:
    """Return "file name, page" of a citation as plain text."""
    if citation.page is None:
        return citation.file_name
    return f"{citation.file_name}, {translate('sources.page', language, page=citation.page)}"


def citation_label(citation: ShownCitation, language: Language) -> str:
    """Return the picker's label for a citation: its number, file name and page, as plain text."""
    return f"[{citation.n}] {file_and_page(citation, language)}"


class SourcesView:
    """Draws the panel for a session, reading passages from the pipeline's current index."""

    def __init__(self, retriever: Any, renderer: PageRenderer) -> None:
        self.retriever = retriever  # IndexRetriever; its reader changes when a new version is published
        self.renderer = renderer

    def summary_markdown(self, session: ChatSession, language: Language) -> str:
        """Return the list of the selected answer's citations as escaped Markdown."""
        turn = session.selected_turn
        if turn is None:
            return translate("sources.empty", language)
        number = session.turns.index(turn) + 1
        lines = [f"**{translate('sources.of_question', language, n=number)}**"]
        if turn.search_query:
            lines.append(f"{translate('sources.query', language)}: *{escape_document_text(turn.search_query)}*")
        if not turn.citations:
            lines.append(translate("sources.none", language) if turn.status != "streaming" else "")
        for citation in turn.citations:
            line = f"**[{citation.n}]** {escape_document_text(file_and_page(citation, language))}"
            snippet = citation.snippet or self._snippet(citation)
            if snippet:
                line += f"  \n{escape_document_text(snippet)}"
            lines.append(line)
        return "\n\n".join(line for line in lines if line)

    @staticmethod
    def picker_choices(session: ChatSession, language: Language) -> list[tuple[str, int]]:
        """Return the picker's (label, number) choices for the selected answer's citations."""
        turn = session.selected_turn
        return [(citation_label(c, language), c.n) for c in turn.citations] if turn else []

    def open(self, session: ChatSession, n: int | None, language: Language) -> tuple[ChatSession, str, Any, Any]:
        """Open citation `n` of the selected answer: (session, note, page image, page text)."""
        turn = session.selected_turn
        citation = next((c for c in turn.citations if c.n == n), None) if turn and n is not None else None
        if citation is None:
            return replace(session, opened=None), "", None, None

        # 1. The passage to mark: the cited chunk as the index stores it.
        session = replace(session, opened=citation.n)
        heading = f"**{escape_document_text(citation_label(citation, language))}**"
        passage = self._passage(citation)
        if not passage:
            return session, f"{heading}\n\n{translate('sources.passage_unknown', language)}", None, None

        # 2. The page image, or the reason there is none.
        reason = None
        try:
            if citation.source_uri is None or citation.page is None:
                raise PageNotFound(f"citation [{citation.n}] of {citation.file_name!r} names no source file or page")
            page = self.renderer.render(
                citation.source_uri, citation.page, passage, source_root=source_root_of(self.retriever.reader.manifest)
            )
        except PageSourceRemote:
            reason = "sources.remote"
        except PageSourceRejected as exc:
            logger.warning("page image rejected: %s", exc)
            reason = "sources.rejected"
        except PageNotFound as exc:
            logger.warning("page image unavailable: %s", exc)
            reason = "sources.missing"
        if reason is not None:
            stored = [(translate("sources.stored_passage", language) + "\n\n", None), (passage, CITED)]
            return session, f"{heading}\n\n{translate(reason, language)}", None, stored

        # 3. The page text with the passage highlighted where it was located.
        if page.passage_span is None:
            segments = [(page.text, None)]
        else:
            start, end = page.passage_span
            segments = [(page.text[:start], None), (page.text[start:end], CITED), (page.text[end:], None)]
        note_key = "sources.marked" if page.marked_on_image else "sources.not_marked"
        return session, f"{heading}\n\n{translate(note_key, language)}", page.image, [s for s in segments if s[0]]

    def _passage(self, citation: ShownCitation) -> str:
        chunk = self._chunk(citation)
        if chunk is not None:
            return chunk.text
        return citation.text or citation.snippet.removesuffix("…")

    def _snippet(self, citation: ShownCitation) -> str:
        # Turns read back from the log store no snippet; the index still has the passage.
        chunk = self._chunk(citation)
        if chunk is None:
            return ""
        text = " ".join(chunk.text.split())
        return text if len(text) <= SNIPPET_CHARS else text[:SNIPPET_CHARS] + "…"

    def _chunk(self, citation: ShownCitation) -> Any:
        if citation.chunk_id is None:
            return None
        try:
            chunk = self.retriever.reader.chunk(citation.chunk_id)
        except IndexBuilderError:
            return None
        # A chunk id names the same passage in every version of one index, but a log may
        # outlive its index: a chunk from another document is not this citation's passage.
        if citation.source_uri is not None and chunk.source_uri != citation.source_uri:
            return None
        return chunk
