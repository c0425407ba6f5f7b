"""Tests of token-measured chunking."""

from __future__ import annotations

import pytest

from index_builder.chunk import PageChunker, fit_to_model
from index_builder.errors import InvalidSettingsError
from index_builder.extract import PageText

CLAIM = "본 발명은 반도체 소자의 제조 방법에 관한 것으로, 기판 위에 절연막을 형성하는 단계를 포함한다. "

LONG_TEXTS = [
    # Korean prose with spaces, many times the limit.
    pytest.param(CLAIM * 40, id="korean-prose"),
    # Hangul without spaces, so the splitter must cut inside words.
    pytest.param(
        ("반도체소자제조방법에관한것으로기판위에절연막을형성" + ",") * 100, id="hangul-without-spaces"
    ),
    # A URL-like token thousands of characters long.
    pytest.param("https://patent.example/" + "x7Q" * 900, id="long-url"),
    # Mixed lines with chemical formulas and digits.
    pytest.param(("화합물 C6H12O6 및 (CH3)2CO 를 0.5 mol 비율로 혼합한다.\n" * 60), id="formulas"),
]


@pytest.mark.parametrize("text", LONG_TEXTS)
def test_chunks_fit_model_input(embedder, text: str) -> None:
    chunks = PageChunker(embedder).chunk_pages([PageText(page=1, text=text)])

    assert len(chunks) > 1
    for chunk in chunks:
        assert embedder.count_tokens(chunk.text) <= embedder.max_seq_length
        # Chunks are pieces of the page, never rewritten text.
        assert chunk.text in text


def test_chunks_keep_pages_and_skip_blank_ones(embedder) -> None:
    pages = [
        PageText(page=1, text="제1항. " + CLAIM * 6),
        PageText(page=2, text=""),
        PageText(page=3, text="   \n  "),
        PageText(page=4, text="제4항. " + CLAIM),
    ]

    chunks = PageChunker(embedder).chunk_pages(pages)

    assert {chunk.page for chunk in chunks} == {1, 4}
    assert [chunk.chunk_no for chunk in chunks] == list(range(len(chunks)))
    for chunk in chunks:
        assert chunk.text.strip()
        assert chunk.text in pages[chunk.page - 1].text


def test_smaller_chunk_tokens_setting(embedder) -> None:
    chunker = PageChunker(embedder, chunk_tokens=32, overlap_tokens=4)

    chunks = chunker.chunk_pages([PageText(page=1, text=CLAIM * 5)])

    assert len(chunks) > 5
    for chunk in chunks:
        # 32 text tokens plus [CLS] and [SEP].
        assert embedder.count_tokens(chunk.text) <= 34


def test_chunk_tokens_above_model_limit(embedder) -> None:
    with pytest.raises(InvalidSettingsError, match="chunk_tokens=300 exceeds") as raised:
        PageChunker(embedder, chunk_tokens=300)
    assert "254" in str(raised.value)


def test_overlap_not_below_chunk_tokens(embedder) -> None:
    with pytest.raises(
        InvalidSettingsError, match="chunk_overlap_tokens=64 must be smaller than chunk_tokens=64"
    ):
        PageChunker(embedder, chunk_tokens=64, overlap_tokens=64)


def test_fit_to_model_halves_oversized_text(embedder) -> None:
    text = CLAIM * 12
    assert embedder.count_tokens(text) > embedder.max_seq_length

    pieces = fit_to_model(text, embedder)

    assert len(pieces) >= 2
    for piece in pieces:
        assert embedder.count_tokens(piece) <= embedder.max_seq_length
        assert piece in text
    # Halving cuts at spaces and drops only them.
    assert "".join(pieces).replace(" ", "") == text.replace(" ", "")


def test_fit_to_model_keeps_text_that_fits(embedder) -> None:
    assert fit_to_model(CLAIM, embedder) == [CLAIM]
