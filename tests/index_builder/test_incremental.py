"""Incremental rebuilds: unchanged documents keep their chunks, ids and vectors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import faiss
import numpy as np
import pytest

from index_builder.build import build_index
from index_builder.incremental import same_listing
from index_builder.report import DocumentStatus
from index_builder.settings import IndexBuilderSettings
from index_builder.sources import SourceDocument
from index_builder.store import current_version, open_index
from index_builder.versions import served_dir

DOCUMENTS = {
    "brake.pdf": ["자동차용 디스크 브레이크 장치는 캘리퍼와 패드를 포함한다.", "패드 마모 센서가 하우징에 설치된다."],
    "gate.pdf": ["게이트 전극은 다결정 실리콘으로 이루어진다."],
    "golf.pdf": ["골프 스윙 연습 장치는 매트와 센서를 포함한다.", "", "스윙 속도를 측정하여 표시한다."],
}


def chunks_by_file(out: Path) -> dict[str, list[tuple[int, str]]]:
    reader = open_index(out)
    grouped: dict[str, list[tuple[int, str]]] = {}
    for chunk_id in sorted(reader._chunks):
        chunk = reader.chunk(chunk_id)
        grouped.setdefault(chunk.file_name, []).append((chunk.chunk_id, chunk.text))
    return grouped


def stored_vectors(out: Path) -> dict[int, np.ndarray]:
    index = faiss.read_index(str(served_dir(out) / "index.faiss"))
    ids = faiss.vector_to_array(index.id_map)
    return {int(chunk_id): index.reconstruct(int(chunk_id)) for chunk_id in ids}


@pytest.fixture
def source(tmp_path: Path, pdfs) -> Path:
    folder = tmp_path / "source"
    for name, pages in DOCUMENTS.items():
        pdfs.korean(folder / name, pages)
    return folder


def test_unchanged_rebuild_publishes_nothing(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "index"
    first = build_index(str(source), out, progress=False)

    again = build_index(str(source), out, progress=False)

    assert again.published is False
    assert again.version == first.version == current_version(out)
    assert again.embedded_chunks == 0
    assert again.chunk_count == first.chunk_count
    assert {document.change for document in again.documents} == {"unchanged"}


def test_changed_document_alone_is_embedded(source: Path, tmp_path: Path, pdfs) -> None:
    out = tmp_path / "index"
    build_index(str(source), out, progress=False)
    before, vectors_before = chunks_by_file(out), stored_vectors(out)

    pdfs.korean(source / "gate.pdf", ["게이트 절연막은 산화 실리콘으로 형성된다.", "둘째 쪽이 새로 생겼다."])
    report = build_index(str(source), out, progress=False)
    after, vectors_after = chunks_by_file(out), stored_vectors(out)

    assert report.published
    assert report.embedded_chunks == 2
    # brake.pdf has 2 chunks and golf.pdf 2 (its blank page makes none).
    assert report.reused_chunks == 4
    changes = {document.file_name: document.change for document in report.documents}
    assert changes == {"brake.pdf": "unchanged", "gate.pdf": "changed", "golf.pdf": "unchanged"}
    # Unchanged documents keep their ids, texts and vectors exactly.
    for name in ("brake.pdf", "golf.pdf"):
        assert after[name] == before[name]
        for chunk_id, _ in after[name]:
            np.testing.assert_array_equal(vectors_after[chunk_id], vectors_before[chunk_id])
    # The changed document's chunks get ids that no earlier version used.
    old_ids = {chunk_id for chunks in before.values() for chunk_id, _ in chunks}
    new_ids = [chunk_id for chunk_id, _ in after["gate.pdf"]]
    assert min(new_ids) > max(old_ids)
    assert [text for _, text in after["gate.pdf"]] == ["게이트 절연막은 산화 실리콘으로 형성된다.", "둘째 쪽이 새로 생겼다."]


def test_deleted_document_disappears(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "index"
    build_index(str(source), out, progress=False)

    (source / "brake.pdf").unlink()
    report = build_index(str(source), out, progress=False)

    assert report.removed_documents == [(source / "brake.pdf").resolve().as_uri()]
    assert report.embedded_chunks == 0
    assert "brake.pdf" not in chunks_by_file(out)
    assert all(hit.file_name != "brake.pdf" for hit in open_index(out).search("브레이크 패드", k=10))
    manifest = json.loads((served_dir(out) / "manifest.json").read_text(encoding="utf-8"))
    assert sorted(document["file_name"] for document in manifest["documents"]) == ["gate.pdf", "golf.pdf"]


def test_own_vector_finds_chunk_after_churn(source: Path, tmp_path: Path, pdfs) -> None:
    # Deletions and re-additions over several versions must keep ids and vectors paired.
    out = tmp_path / "index"
    build_index(str(source), out, progress=False)
    (source / "brake.pdf").unlink()
    build_index(str(source), out, progress=False)
    pdfs.korean(source / "brake.pdf", DOCUMENTS["brake.pdf"])
    pdfs.korean(source / "new.pdf", ["새로 추가된 문서: 승마용 운동기구의 안장."])
    build_index(str(source), out, progress=False)

    reader = open_index(out)
    vectors = stored_vectors(out)
    assert len(vectors) == reader.chunk_count == 6
    for chunk_id, vector in vectors.items():
        hit = reader.search_vector(vector, k=1)[0]
        assert hit.chunk_id == chunk_id
        assert hit.score == pytest.approx(1.0, abs=1e-5)
    # The re-added document has new ids, so a cached citation of the old ids cannot point at it.
    assert len({chunk_id for chunk_id, _ in chunks_by_file(out)["brake.pdf"]} & set(range(5))) == 0


def test_touched_file_reused_by_hash(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "index"
    build_index(str(source), out, progress=False)
    before = chunks_by_file(out)

    # The same bytes with a new modification time, as after a copy or a checkout.
    stat = (source / "golf.pdf").stat()
    os.utime(source / "golf.pdf", ns=(stat.st_atime_ns, stat.st_mtime_ns + 5_000_000_000))
    report = build_index(str(source), out, progress=False)

    assert report.embedded_chunks == 0
    assert chunks_by_file(out) == before
    golf = next(document for document in report.documents if document.file_name == "golf.pdf")
    assert golf.change == "unchanged"
    # The manifest records the new time, so the next rebuild needs no hash at all.
    assert build_index(str(source), out, progress=False).published is False


def test_other_chunk_settings_rebuild_everything(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "index"
    first = build_index(str(source), out, progress=False)

    report = build_index(str(source), out, settings=IndexBuilderSettings(chunk_tokens=64), progress=False)

    assert report.published
    assert report.previous_version is None
    assert report.reused_chunks == 0
    assert report.embedded_chunks == first.chunk_count


def test_full_rebuild_reads_everything(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "index"
    first = build_index(str(source), out, progress=False)

    report = build_index(str(source), out, progress=False, full=True)

    assert report.published
    assert report.embedded_chunks == first.chunk_count
    assert {document.change for document in report.documents} == {"new"}


LISTINGS = [
    # Same size and ETag: unchanged, whatever the modification time.
    (dict(size=10, etag='"a"', last_modified="t2"), dict(size=10, etag='"a"', last_modified="t1"), True),
    # Another ETag: changed.
    (dict(size=10, etag='"b"'), dict(size=10, etag='"a"'), False),
    # Another size: changed.
    (dict(size=11, etag='"a"'), dict(size=10, etag='"a"'), False),
    # Local files have no ETag: size and time decide.
    (dict(size=10, last_modified="t1"), dict(size=10, last_modified="t1"), True),
    # A local file with a new time: changed (the hash may still show it is the same).
    (dict(size=10, last_modified="t2"), dict(size=10, last_modified="t1"), False),
    # Nothing to compare: changed.
    (dict(), dict(), False),
]


@pytest.mark.parametrize(("listed", "recorded", "same"), LISTINGS)
def test_same_listing(listed: dict, recorded: dict, same: bool) -> None:
    document = SourceDocument(uri="s3://b/k.pdf", file_name="k.pdf", **listed)
    record = DocumentStatus(uri="s3://b/k.pdf", file_name="k.pdf", **recorded)

    assert same_listing(document, record) is same
