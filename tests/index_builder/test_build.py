"""Tests of the build pipeline on folders with good and unreadable PDFs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from index_builder.build import BuildReport, build_index
from index_builder.embed import packaged_default_model_dir
from index_builder.errors import EmbeddingModelError, NothingIndexedError, OutputDirError
from index_builder.settings import DEFAULT_EMBEDDING_MODEL, IndexBuilderSettings
from index_builder.sources import SourceDocument
from index_builder.reading import ReadRequest, fetch_document
from index_builder.sources.local import LocalSource
from index_builder.store import open_index
from index_builder.versions import served_dir

GOOD_PAGES = {
    "출원서 1.pdf": [
        "발명의 명칭: 반도체 소자 및 그 제조 방법",
        "",
        "청구항 1. 기판과 절연막을 포함하는 반도체 소자.",
    ],
    "claims+abstract.pdf": ["요약: 브레이크 패드의 마모를 감지하는 센서를 제공한다."],
}

# Each unreadable file with the reason that the report must give for it.
BAD_FILES = [
    # Needs a user password.
    ("encrypted.pdf", lambda pdfs, path: pdfs.encrypted(path, ["비밀"]), "password required"),
    # The second half is missing.
    (
        "truncated.pdf",
        lambda pdfs, path: pdfs.truncated(path, ["잘린 문서 " * 40] * 2),
        "damaged or truncated PDF",
    ),
    # A scan without a text layer.
    ("scan.pdf", lambda pdfs, path: pdfs.image_only(path), "no text layer"),
    # Plain text with a .pdf name.
    ("notes.pdf", lambda pdfs, path: pdfs.not_a_pdf(path), "not a PDF file"),
]


def make_bad_files(pdfs, folder: Path) -> None:
    for name, make, _ in BAD_FILES:
        make(pdfs, folder / name)


@pytest.fixture(scope="module")
def mixed_build(tmp_path_factory: pytest.TempPathFactory, pdfs) -> tuple[BuildReport, Path]:
    source = tmp_path_factory.mktemp("mixed")
    for name, pages in GOOD_PAGES.items():
        pdfs.korean(source / name, pages)
    make_bad_files(pdfs, source / "bad")
    out = tmp_path_factory.mktemp("mixed-index") / "index"
    return build_index(str(source), out, progress=False), out


def test_report_lists_indexed_and_skipped(mixed_build: tuple[BuildReport, Path]) -> None:
    report, out = mixed_build

    assert sorted(document.file_name for document in report.indexed) == sorted(GOOD_PAGES)
    reasons = {document.file_name: document.reason for document in report.skipped}
    for name, _, reason in BAD_FILES:
        assert reason in reasons[name]
    assert len(report.documents) == len(GOOD_PAGES) + len(BAD_FILES)
    assert report.chunk_count == 3
    assert report.duration > 0
    assert report.out == out


def test_manifest_records_each_document(mixed_build: tuple[BuildReport, Path]) -> None:
    report, out = mixed_build
    manifest = json.loads((served_dir(out) / "manifest.json").read_text(encoding="utf-8"))

    documents = {document["file_name"]: document for document in manifest["documents"]}
    assert documents["출원서 1.pdf"]["status"] == "ok"
    assert documents["출원서 1.pdf"]["pages"] == 3
    assert documents["출원서 1.pdf"]["chunks"] == 2
    assert documents["출원서 1.pdf"]["reason"] is None
    for name, _, reason in BAD_FILES:
        assert documents[name]["status"] == "skipped"
        assert reason in documents[name]["reason"]
        assert documents[name]["chunks"] == 0
    assert manifest["chunk_count"] == report.chunk_count
    assert manifest["source"] == report.source


def test_blank_pages_make_no_chunks(mixed_build: tuple[BuildReport, Path]) -> None:
    _, out = mixed_build
    records = [json.loads(line) for line in (served_dir(out) / "chunks.jsonl").read_text(encoding="utf-8").splitlines()]

    pages = sorted((record["file_name"], record["page"]) for record in records)
    assert pages == [("claims+abstract.pdf", 1), ("출원서 1.pdf", 1), ("출원서 1.pdf", 3)]
    assert all(record["text"].strip() for record in records)


def test_only_bad_pdfs(tmp_path: Path, pdfs) -> None:
    make_bad_files(pdfs, tmp_path / "source")

    with pytest.raises(NothingIndexedError, match="none of the 4 PDF") as raised:
        build_index(str(tmp_path / "source"), tmp_path / "index", progress=False)

    assert len(raised.value.report.skipped) == 4
    # Only the lock file exists: no version, no CURRENT, no staging folder.
    assert [path.name for path in (tmp_path / "index").iterdir()] == [".lock"]


def test_failed_build_keeps_old_index(tmp_path: Path, pdfs) -> None:
    pdfs.korean(tmp_path / "good" / "a.pdf", ["좋은 문서"])
    make_bad_files(pdfs, tmp_path / "bad")
    build_index(str(tmp_path / "good"), tmp_path / "index", progress=False)

    with pytest.raises(NothingIndexedError):
        build_index(str(tmp_path / "bad"), tmp_path / "index", progress=False)

    assert open_index(tmp_path / "index").chunk(0).text == "좋은 문서"


def test_folder_without_pdfs(tmp_path: Path) -> None:
    (tmp_path / "readme.txt").write_text("no PDFs here", encoding="utf-8")

    with pytest.raises(NothingIndexedError, match="no PDF files found"):
        build_index(str(tmp_path), tmp_path.parent / f"{tmp_path.name}-index", progress=False)


def test_output_folder_with_other_files(tmp_path: Path, pdfs) -> None:
    pdfs.korean(tmp_path / "source" / "a.pdf", ["문서"])
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "thesis.tex").write_text("keep", encoding="utf-8")

    with pytest.raises(OutputDirError, match="not an index"):
        build_index(str(tmp_path / "source"), tmp_path / "home", progress=False)

    assert (tmp_path / "home" / "thesis.tex").is_file()


def test_file_deleted_after_listing(tmp_path: Path) -> None:
    # A document that disappears between listing and reading is skipped, not fatal.
    source = LocalSource(tmp_path)
    document = SourceDocument(uri=(tmp_path / "gone.pdf").as_uri(), file_name="gone.pdf")

    status, path = fetch_document(source, ReadRequest(document), tmp_path / "work")

    assert status.status == "skipped"
    assert "cannot read file" in status.reason
    assert path is None


def test_embedding_model_from_environment(tmp_path: Path, pdfs, monkeypatch: pytest.MonkeyPatch) -> None:
    model_folder = str(packaged_default_model_dir())
    monkeypatch.setenv("VERACLAIM_EMBEDDING_MODEL", model_folder)
    pdfs.korean(tmp_path / "source" / "a.pdf", ["환경 변수로 고른 모델"])

    build_index(str(tmp_path / "source"), tmp_path / "index", progress=False)

    manifest = json.loads((served_dir(tmp_path / "index") / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["embedding_model"] == model_folder
    assert open_index(tmp_path / "index").embedding_model == model_folder


def test_settings_precedence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERACLAIM_EMBEDDING_MODEL", "/models/from-env")
    monkeypatch.setenv("VERACLAIM_CHUNK_OVERLAP_TOKENS", "8")

    assert IndexBuilderSettings().embedding_model == "/models/from-env"
    assert IndexBuilderSettings().chunk_overlap_tokens == 8
    assert IndexBuilderSettings(embedding_model="/models/explicit").embedding_model == "/models/explicit"
    monkeypatch.delenv("VERACLAIM_EMBEDDING_MODEL")
    assert IndexBuilderSettings().embedding_model == DEFAULT_EMBEDDING_MODEL


def test_settings_reject_unknown_and_invalid() -> None:
    with pytest.raises(ValidationError):
        IndexBuilderSettings(chunk_size=100)
    with pytest.raises(ValidationError):
        IndexBuilderSettings(chunk_overlap_tokens=-1)


def test_folder_that_is_no_model(tmp_path: Path, pdfs) -> None:
    pdfs.korean(tmp_path / "source" / "a.pdf", ["문서"])
    not_a_model = tmp_path / "empty-model"
    not_a_model.mkdir()

    with pytest.raises(EmbeddingModelError) as raised:
        build_index(
            str(tmp_path / "source"),
            tmp_path / "index",
            settings=IndexBuilderSettings(embedding_model=str(not_a_model)),
            progress=False,
        )

    assert str(not_a_model) in str(raised.value)
    assert "VERACLAIM_EMBEDDING_MODEL" in str(raised.value)
    assert isinstance(raised.value, OSError)
