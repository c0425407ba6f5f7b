"""An index of the real-world lshort-ko.pdf (143 pages of Korean), built once per session."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from pypdf import PdfReader

from index_builder.build import BuildReport, build_index
from index_builder.clean import clean_text
from index_builder.extract import extract_pages
from index_builder.store import IndexReader, open_index
from index_builder.versions import served_dir

# A sentence from the preface (서문, printed page v). The default model, all-MiniLM-L6-v2,
# is English-only: queried with single sentences from every third page of this PDF, it
# ranked the right page first for 5 of 61. So the test uses a sentence that it finds.
# The page is looked up with pypdf below, not written down.
PHRASE = (
    "특히 예제를 주의깊게 보아야 하는데 책자 전체에 걸쳐 "
    "나타나는 예제에 많은 중요한 정보가 담겨 있기 때문이다."
)


@pytest.fixture(scope="session")
def lshort_build(tmp_path_factory: pytest.TempPathFactory, lshort_ko_pdf: Path) -> tuple[BuildReport, Path]:
    source = tmp_path_factory.mktemp("lshort-source")
    shutil.copy(lshort_ko_pdf, source / "lshort-ko.pdf")
    out = tmp_path_factory.mktemp("lshort-index") / "index"
    return build_index(str(source), out, progress=False), out


@pytest.fixture(scope="session")
def lshort_reader(lshort_build: tuple[BuildReport, Path]) -> IndexReader:
    return open_index(lshort_build[1])


def squeeze(text: str) -> str:
    return " ".join(text.split())


@pytest.mark.slow
def test_phrase_found_on_its_page(lshort_ko_pdf: Path, lshort_reader: IndexReader) -> None:
    # pypdf is an independent extractor, so a page-numbering error in ours cannot hide here.
    logging.getLogger("pypdf").setLevel(logging.ERROR)
    pages = [squeeze(page.extract_text() or "") for page in PdfReader(lshort_ko_pdf).pages]
    phrase_pages = [number for number, text in enumerate(pages, start=1) if PHRASE in text]
    assert len(phrase_pages) == 1, f"phrase found on pages {phrase_pages}"

    hits = lshort_reader.search(PHRASE, k=3)

    assert hits[0].file_name == "lshort-ko.pdf"
    assert hits[0].page == phrase_pages[0]
    assert "주의깊게 보아야 하는데" in squeeze(hits[0].text)


@pytest.mark.slow
def test_no_chunk_exceeds_model_input(lshort_reader: IndexReader, embedder) -> None:
    lengths = [
        embedder.count_tokens(lshort_reader.chunk(chunk_id).text)
        for chunk_id in range(lshort_reader.chunk_count)
    ]

    assert max(lengths) <= embedder.max_seq_length == 256
    # The chunks use the budget: the median chunk is within 56 tokens of it.
    assert sorted(lengths)[len(lengths) // 2] > 200


@pytest.mark.slow
def test_chunks_come_from_their_page(lshort_ko_pdf: Path, lshort_reader: IndexReader) -> None:
    pages = {page.page: clean_text(page.text) for page in extract_pages(lshort_ko_pdf)}

    for chunk_id in range(lshort_reader.chunk_count):
        chunk = lshort_reader.chunk(chunk_id)
        assert chunk.text in pages[chunk.page], f"chunk {chunk_id} is not on page {chunk.page}"


@pytest.mark.slow
def test_manifest_counts_pages(lshort_build: tuple[BuildReport, Path]) -> None:
    report, out = lshort_build
    manifest = json.loads((served_dir(out) / "manifest.json").read_text(encoding="utf-8"))

    [document] = manifest["documents"]
    assert document["status"] == "ok"
    assert document["pages"] == 143
    assert document["chunks"] == manifest["chunk_count"] == report.chunk_count
    assert report.chunk_count > 500
