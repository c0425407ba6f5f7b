"""A running chat follows the index's CURRENT pointer to a newly published version."""

from __future__ import annotations

import shutil
from pathlib import Path

from chat_ui.retrieve import IndexRetriever
from index_builder.build import build_index
from index_builder.store import open_index

SAMPLES_DIR = Path(__file__).resolve().parents[2] / "data" / "samples"
GOLF_PATENT = "patent_1020090021820.pdf"  # 골프 실연 시뮬레이터


def test_retriever_switches_to_new_published_version(tmp_path):
    source = tmp_path / "pdfs"
    source.mkdir()
    shutil.copy(SAMPLES_DIR / "patent_act.pdf", source)
    index = tmp_path / "index"
    build_index(str(source), index, progress=False)
    retriever = IndexRetriever(reader=open_index(index), k=3, mode="keyword", index_path=index, reload_interval_s=0)
    first_version = retriever.reader.version

    before = retriever.invoke("골프 시뮬레이터 캐디")
    shutil.copy(SAMPLES_DIR / GOLF_PATENT, source)
    build_index(str(source), index, progress=False)
    after = retriever.invoke("골프 시뮬레이터 캐디")

    assert GOLF_PATENT not in {document.metadata["file_name"] for document in before}
    assert retriever.reader.version != first_version
    assert after[0].metadata["file_name"] == GOLF_PATENT


def test_retriever_waits_for_reload_interval(tmp_path):
    source = tmp_path / "pdfs"
    source.mkdir()
    shutil.copy(SAMPLES_DIR / "patent_act.pdf", source)
    index = tmp_path / "index"
    build_index(str(source), index, progress=False)
    retriever = IndexRetriever(reader=open_index(index), k=3, mode="keyword", index_path=index, reload_interval_s=3600)
    first_version = retriever.reader.version

    shutil.copy(SAMPLES_DIR / GOLF_PATENT, source)
    build_index(str(source), index, progress=False)
    retriever.invoke("골프")

    assert retriever.reader.version == first_version
