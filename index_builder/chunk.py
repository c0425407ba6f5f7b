"""Splitting of cleaned pages into chunks measured in the embedding model's tokens.

Invariants of every chunk that chunk_pages returns:
- it comes from one page, so a citation can name that page;
- it contains non-whitespace text;
- the model's tokenizer encodes it, with [CLS] and [SEP], in at most max_seq_length tokens,
  so the model never truncates it silently.

Token counts matter for Korean. The all-MiniLM-L6-v2 tokenizer splits each Hangul syllable
into its jamo, about three word pieces, so its 256-token limit fits about 80 syllables.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass

from langchain_text_splitters import RecursiveCharacterTextSplitter

from index_builder.embed import Embedder
from index_builder.errors import InvalidSettingsError
from index_builder.extract import PageText

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TextChunk:
    """A piece of one page. ``chunk_no`` counts from 0 across the whole document."""

    text: str
    page: int
    chunk_no: int


class PageChunker:
    """Splits pages with LangChain's RecursiveCharacterTextSplitter, counting model tokens."""

    def __init__(
        self, embedder: Embedder, *, chunk_tokens: int | None = None, overlap_tokens: int = 32
    ) -> None:
        # 1. The budget for text: the model's input limit minus [CLS] and [SEP].
        special_tokens = embedder.tokenizer.num_special_tokens_to_add(pair=False)
        text_limit = embedder.max_seq_length - special_tokens
        if chunk_tokens is None:
            chunk_tokens = text_limit
        if chunk_tokens > text_limit:
            raise InvalidSettingsError(
                f"chunk_tokens={chunk_tokens} exceeds what {embedder.name} reads: max_seq_length "
                f"{embedder.max_seq_length} minus {special_tokens} special tokens = {text_limit}. "
                f"Set VERACLAIM_CHUNK_TOKENS to {text_limit} or less."
            )
        if overlap_tokens >= chunk_tokens:
            raise InvalidSettingsError(
                f"chunk_overlap_tokens={overlap_tokens} must be smaller than chunk_tokens={chunk_tokens}. "
                "Lower VERACLAIM_CHUNK_OVERLAP_TOKENS."
            )

        # 2. The splitter measures every piece with the model's own tokenizer. This is what
        #    RecursiveCharacterTextSplitter.from_huggingface_tokenizer does, minus the
        #    tokenizer's warning about pages longer than the model's input.
        self._embedder = embedder
        self.chunk_tokens = chunk_tokens
        self.overlap_tokens = overlap_tokens
        self._splitter = RecursiveCharacterTextSplitter(
            chunk_size=chunk_tokens,
            chunk_overlap=overlap_tokens,
            length_function=lambda text: embedder.count_tokens(text, special_tokens=False),
        )

    def chunk_pages(self, pages: Iterable[PageText]) -> list[TextChunk]:
        """Return the chunks of the given cleaned pages, in page order."""
        chunks: list[TextChunk] = []
        for page in pages:
            for piece in self._splitter.split_text(page.text):
                for text in fit_to_model(piece, self._embedder):
                    if text.strip():
                        chunks.append(TextChunk(text=text, page=page.page, chunk_no=len(chunks)))
        return chunks


def fit_to_model(text: str, embedder: Embedder) -> list[str]:
    """Return ``text`` as one or more pieces that each fit the model's input.

    The splitter adds up the token counts of the pieces it joins. Word pieces need not add
    up across a join, so a merged chunk could come out over the limit. Such a chunk is
    halved until each half fits.
    """
    if embedder.count_tokens(text) <= embedder.max_seq_length:
        return [text]

    # Cut at a space in the second quarter if there is one, else in the middle. Text over
    # the limit has at least two characters, so both halves are shorter.
    middle = len(text) // 2
    space = text.rfind(" ", len(text) // 4, middle)
    cut = space if space > 0 else middle
    logger.debug("Halving a chunk of %d characters at %d to fit the token limit", len(text), cut)
    return fit_to_model(text[:cut].strip(), embedder) + fit_to_model(text[cut:].strip(), embedder)
