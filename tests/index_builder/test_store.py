"""Tests of the index format: the writer, open_index and IndexReader."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import faiss
import numpy as np
import pytest

from index_builder.build import build_index
from index_builder.embed import load_embedder, packaged_default_model_dir
from index_builder.errors import (
    ChunkNotFoundError,
    IndexFormatError,
    IndexMismatchError,
    IndexNotFoundError,
    InvalidQueryError,
    OutputDirError,
    ValidationFailedError,
)
from index_builder.normalize import NORMALIZATION_VERSION
from index_builder.settings import DEFAULT_EMBEDDING_MODEL
from index_builder.store import Chunk, Hit, IndexReader, open_index, write_index, write_version
from index_builder.versions import current_version, served_dir

# One topic per page, so a query names its page.
PAGES = {
    "semiconductor.pdf": [
        "본 발명은 반도체 소자의 제조 방법에 관한 것으로, 기판 위에 게이트 절연막을 형성한다.",
        "",
        "청구항 3. 상기 게이트 전극은 다결정 실리콘으로 이루어진 것을 특징으로 하는 반도체 소자.",
    ],
    "brake.pdf": [
        "자동차용 디스크 브레이크 장치는 캘리퍼와 브레이크 패드와 로터를 포함한다.",
        "브레이크 패드의 마모를 감지하는 센서가 캘리퍼 하우징에 설치된다.",
    ],
}


@pytest.fixture(scope="module")
def built_index(tmp_path_factory: pytest.TempPathFactory, pdfs) -> Path:
    source = tmp_path_factory.mktemp("store-source")
    for name, pages in PAGES.items():
        pdfs.korean(source / name, pages)
    out = tmp_path_factory.mktemp("store-index") / "index"
    build_index(str(source), out, progress=False)
    return out


@pytest.fixture
def index_copy(built_index: Path, tmp_path: Path) -> Path:
    """A copy of the served version folder that a test may damage; open_index reads it directly."""
    copy = tmp_path / "index"
    shutil.copytree(served_dir(built_index), copy)
    return copy


@pytest.fixture(scope="module")
def reader(built_index: Path) -> IndexReader:
    return open_index(built_index)


def test_files_and_manifest(built_index: Path, reader: IndexReader) -> None:
    version = current_version(built_index)
    folder = built_index / "versions" / version
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))

    assert sorted(path.name for path in built_index.iterdir()) == [".lock", "CURRENT", "versions"]
    assert [path.name for path in (built_index / "versions").iterdir()] == [version]
    assert sorted(path.name for path in folder.iterdir()) == [
        "chunks.jsonl",
        "index.faiss",
        "keyword",
        "manifest.json",
    ]
    assert reader.version == version
    assert manifest["version"] == version
    assert manifest["format_version"] == 3
    assert manifest["normalization"] == NORMALIZATION_VERSION
    assert manifest["embedding_model"] == DEFAULT_EMBEDDING_MODEL
    assert manifest["dimension"] == 384
    assert manifest["metric"] == "inner_product"
    assert manifest["normalized"] is True
    assert manifest["chunk_count"] == reader.chunk_count == 4
    assert manifest["created_at"].endswith("+00:00")
    assert reader.manifest == manifest
    assert reader.embedding_model == DEFAULT_EMBEDDING_MODEL
    documents = {document["file_name"]: document for document in manifest["documents"]}
    record = documents["semiconductor.pdf"]
    assert record == {
        "uri": record["uri"],
        "file_name": "semiconductor.pdf",
        "pages": 3,
        "chunks": 2,
        "status": "ok",
        "reason": None,
        "size": record["size"],
        "etag": None,
        "last_modified": record["last_modified"],
        "sha256": record["sha256"],
        "transient": False,
        "ocr_pages": [],
        "garbled_pages": [],
    }
    assert record["size"] > 1000
    assert len(record["sha256"]) == 64
    assert record["last_modified"].endswith("+00:00")
    assert documents["brake.pdf"]["chunks"] == 2


def test_chunks_jsonl_is_plain_json(built_index: Path) -> None:
    lines = (served_dir(built_index) / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]

    assert [record["id"] for record in records] == [0, 1, 2, 3]
    for record in records:
        assert set(record) == {"id", "text", "source_uri", "file_name", "page", "chunk_no"}
    # The blank second page of semiconductor.pdf yields no chunk, and page numbers stay 1-based.
    pages = [(record["file_name"], record["page"], record["chunk_no"]) for record in records]
    assert pages == [
        ("brake.pdf", 1, 0),
        ("brake.pdf", 2, 1),
        ("semiconductor.pdf", 1, 0),
        ("semiconductor.pdf", 3, 1),
    ]


def test_faiss_ids_are_chunk_ids(built_index: Path) -> None:
    index = faiss.read_index(str(served_dir(built_index) / "index.faiss"))

    assert isinstance(index, faiss.IndexIDMap2)
    assert index.ntotal == 4
    assert sorted(faiss.vector_to_array(index.id_map).tolist()) == [0, 1, 2, 3]
    vectors = np.vstack([index.reconstruct(chunk_id) for chunk_id in range(4)])
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)


# The default model, all-MiniLM-L6-v2, was trained on English and ranks Korean text mostly
# by shared word pieces: "게이트 전극 다결정 실리콘" ranks the brake page first. So the
# queries repeat a sentence of the page, which tests the pipeline rather than the model.
SEARCHES = [
    # The claim on page 3, after a blank page 2.
    (PAGES["semiconductor.pdf"][2], "semiconductor.pdf", 3),
    # The sensor sentence on the second page of the other file.
    (PAGES["brake.pdf"][1], "brake.pdf", 2),
]


@pytest.mark.parametrize(("query", "file_name", "page"), SEARCHES)
def test_search_returns_page(reader: IndexReader, query: str, file_name: str, page: int) -> None:
    hits = reader.search(query, k=2)

    assert isinstance(hits[0], Hit)
    assert (hits[0].file_name, hits[0].page) == (file_name, page)
    assert hits[0].score > hits[1].score
    assert hits[0].source_uri.endswith("/" + file_name)


def test_k_above_chunk_count(reader: IndexReader) -> None:
    hits = reader.search("브레이크", k=50)

    assert len(hits) == reader.chunk_count
    assert sorted(hit.chunk_id for hit in hits) == [0, 1, 2, 3]
    assert [hit.score for hit in hits] == sorted((hit.score for hit in hits), reverse=True)


def test_search_vector_normalises(reader: IndexReader) -> None:
    vector = load_embedder(DEFAULT_EMBEDDING_MODEL).embed(["자동차용 디스크 브레이크 장치"])[0]

    scaled = reader.search_vector(vector * 7.5, k=1)
    as_row = reader.search_vector(vector.reshape(1, -1), k=1)

    assert scaled[0].chunk_id == as_row[0].chunk_id
    assert scaled[0].file_name == "brake.pdf"
    assert scaled[0].score == pytest.approx(as_row[0].score, abs=1e-5)
    assert scaled[0].score <= 1.0 + 1e-5


INVALID_QUERIES = [
    # Empty query.
    ("search", ("",), "empty"),
    # Whitespace only.
    ("search", (" \n\t",), "empty"),
    # k below 1.
    ("search", ("브레이크", 0), "positive integer"),
    # A vector of the wrong dimension.
    ("search_vector", (np.ones(383, dtype=np.float32), 3), "dimension 384"),
    # Two vectors instead of one.
    ("search_vector", (np.ones((2, 384), dtype=np.float32), 3), "one vector"),
    # A zero vector has no direction.
    ("search_vector", (np.zeros(384, dtype=np.float32), 3), "zero"),
    # k must be an int, not a float.
    ("search_vector", (np.ones(384, dtype=np.float32), 2.0), "positive integer"),
]


@pytest.mark.parametrize(("method", "arguments", "message"), INVALID_QUERIES)
def test_invalid_query(reader: IndexReader, method: str, arguments: tuple, message: str) -> None:
    with pytest.raises(InvalidQueryError, match=message) as raised:
        getattr(reader, method)(*arguments)
    assert isinstance(raised.value, ValueError)


def test_chunk_lookup(reader: IndexReader) -> None:
    hit = reader.search("캘리퍼와 브레이크 패드와 로터", k=1)[0]

    chunk = reader.chunk(hit.chunk_id)

    assert isinstance(chunk, Chunk)
    assert (chunk.text, chunk.page, chunk.file_name, chunk.chunk_no) == (
        hit.text,
        hit.page,
        hit.file_name,
        hit.chunk_no,
    )
    with pytest.raises(ChunkNotFoundError, match="chunk id 99 is not in the index") as raised:
        reader.chunk(99)
    assert isinstance(raised.value, KeyError)


def test_missing_index(tmp_path: Path) -> None:
    missing = tmp_path / "no-index"

    with pytest.raises(IndexNotFoundError) as raised:
        open_index(missing)

    assert isinstance(raised.value, FileNotFoundError)
    assert str(missing) in str(raised.value)
    assert "veraclaim-index build" in str(raised.value)


def test_missing_faiss_file(index_copy: Path) -> None:
    (index_copy / "index.faiss").unlink()

    with pytest.raises(IndexNotFoundError, match=r"index\.faiss is missing"):
        open_index(index_copy)


def test_other_model_name(built_index: Path) -> None:
    with pytest.raises(IndexMismatchError) as raised:
        open_index(built_index, embedding_model="intfloat/multilingual-e5-small")

    message = str(raised.value)
    assert "intfloat/multilingual-e5-small" in message
    assert DEFAULT_EMBEDDING_MODEL in message
    assert isinstance(raised.value, ValueError)


def test_same_model_by_folder(built_index: Path) -> None:
    # The packaged folder is the default model under another name.
    reader = open_index(built_index, embedding_model=str(packaged_default_model_dir()))

    assert reader.embedding_model == DEFAULT_EMBEDDING_MODEL


def test_changed_dimension_in_manifest(index_copy: Path) -> None:
    manifest_path = index_copy / "manifest.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    manifest["dimension"] = 512
    manifest_path.write_text(json.dumps(manifest), encoding="utf-8")

    with pytest.raises(IndexMismatchError) as raised:
        open_index(index_copy)

    assert "512" in str(raised.value)
    assert "384" in str(raised.value)


def eight_dimension_chunks() -> tuple[list[Chunk], np.ndarray]:
    """Two chunks with 8-dimension vectors, which the 384-dimension default model cannot query."""
    chunks = [
        Chunk(chunk_id, f"청크 {chunk_id}", "file:///x.pdf", "x.pdf", 1, chunk_id) for chunk_id in range(2)
    ]
    return chunks, np.eye(2, 8, dtype=np.float32)


def test_model_dimension_differs_from_index(tmp_path: Path) -> None:
    chunks, vectors = eight_dimension_chunks()
    write_version(tmp_path / "index", chunks, vectors, embedding_model=DEFAULT_EMBEDDING_MODEL, documents=[])

    with pytest.raises(IndexMismatchError) as raised:
        open_index(tmp_path / "index")

    assert "dimension 384" in str(raised.value)
    assert "dimension 8" in str(raised.value)


def test_publish_rejects_version_that_fails_validation(tmp_path: Path) -> None:
    # A served index, then a version whose dimension does not match its model.
    out = tmp_path / "index"
    good = [Chunk(0, "좋은 청크", "file:///a.pdf", "a.pdf", 1, 0)]
    write_index(out, good, np.eye(1, 384, dtype=np.float32), embedding_model=DEFAULT_EMBEDDING_MODEL, documents=[])
    served = current_version(out)
    chunks, vectors = eight_dimension_chunks()

    with pytest.raises(ValidationFailedError, match="dimension") as raised:
        write_index(out, chunks, vectors, embedding_model=DEFAULT_EMBEDDING_MODEL, documents=[])

    assert isinstance(raised.value, ValueError)
    assert current_version(out) == served
    assert [path.name for path in (out / "versions").iterdir()] == [served]
    assert not [path for path in out.iterdir() if path.name.startswith(".staging-")]
    assert open_index(out).chunk(0).text == "좋은 청크"


def test_publish_rejects_empty_version(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailedError, match="no chunks"):
        write_index(
            tmp_path / "index",
            [],
            np.zeros((0, 384), dtype=np.float32),
            embedding_model=DEFAULT_EMBEDDING_MODEL,
            documents=[],
        )

    assert current_version(tmp_path / "index") is None


DAMAGED = [
    # The manifest is not JSON.
    ("manifest.json", "{not json", "not valid JSON"),
    # A format version this reader does not know.
    ("manifest.json", json.dumps({"format_version": 99}), "format_version 99"),
    # A chunk line lacks its text.
    ("chunks.jsonl", '{"id": 0}\n', "line 1 is not a valid chunk record"),
    # Fewer chunk lines than vectors.
    ("chunks.jsonl", "", "inconsistent"),
]


@pytest.mark.parametrize(("file_name", "content", "message"), DAMAGED)
def test_damaged_index(index_copy: Path, file_name: str, content: str, message: str) -> None:
    (index_copy / file_name).write_text(content, encoding="utf-8")

    with pytest.raises(IndexFormatError, match=message):
        open_index(index_copy)


def test_embedder_loaded_once_per_process(built_index: Path, reader: IndexReader) -> None:
    again = open_index(built_index)

    assert again._embedder is reader._embedder
    assert load_embedder(DEFAULT_EMBEDDING_MODEL) is reader._embedder


def test_write_refuses_folder_that_is_not_an_index(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me", encoding="utf-8")
    chunks = [Chunk(0, "텍스트", "file:///x.pdf", "x.pdf", 1, 0)]

    with pytest.raises(OutputDirError) as raised:
        write_index(tmp_path, chunks, np.eye(1, 8, dtype=np.float32), embedding_model="m", documents=[])

    assert isinstance(raised.value, FileExistsError)
    assert (tmp_path / "notes.txt").read_text(encoding="utf-8") == "keep me"


def test_write_publishes_new_version(tmp_path: Path) -> None:
    out = tmp_path / "index"
    first = [Chunk(0, "첫 번째", "file:///a.pdf", "a.pdf", 1, 0)]
    second = [
        Chunk(0, "두 번째", "file:///b.pdf", "b.pdf", 2, 0),
        Chunk(1, "세 번째", "file:///b.pdf", "b.pdf", 3, 1),
    ]

    write_index(out, first, np.eye(1, 384, dtype=np.float32), embedding_model=DEFAULT_EMBEDDING_MODEL, documents=[])
    first_version = current_version(out)
    write_index(out, second, np.eye(2, 384, dtype=np.float32), embedding_model=DEFAULT_EMBEDDING_MODEL, documents=[])

    served = served_dir(out)
    records = [json.loads(line) for line in (served / "chunks.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [record["text"] for record in records] == ["두 번째", "세 번째"]
    assert current_version(out) > first_version
    # The previous version stays for a rollback, and no staging folder is left behind.
    assert sorted(path.name for path in (out / "versions").iterdir()) == [first_version, current_version(out)]
    assert sorted(path.name for path in out.iterdir()) == [".lock", "CURRENT", "versions"]
    assert [path.name for path in tmp_path.iterdir()] == ["index"]
    assert oct(served.stat().st_mode & 0o777) == oct(0o755)


def _old_format(manifest: dict) -> None:
    manifest["format_version"] = 2
    del manifest["normalization"]


def _old_normalization(manifest: dict) -> None:
    manifest["pipeline"]["normalization"] = NORMALIZATION_VERSION - 1


@pytest.mark.parametrize(
    "age",
    [
        _old_format,  # an index from before normalization, which readers reject
        _old_normalization,  # chunks embedded under other normalization rules
    ],
)
def test_rebuild_after_format_change_reembeds(tmp_path: Path, pdfs, age) -> None:
    source = tmp_path / "source"
    pdfs.korean(source / "claims.pdf", ["[청구항 2] 제 1 항에 있어서, 상기 패드는 세라믹인 장치."])
    out = tmp_path / "index"
    build_index(str(source), out, progress=False)
    manifest_file = served_dir(out) / "manifest.json"
    manifest = json.loads(manifest_file.read_text(encoding="utf-8"))
    age(manifest)
    manifest_file.write_text(json.dumps(manifest), encoding="utf-8")

    report = build_index(str(source), out, progress=False)

    assert report.published
    assert report.reused_chunks == 0
    assert report.embedded_chunks == report.chunk_count > 0
    reader = open_index(out)
    assert reader.manifest["format_version"] == 3
    assert reader.manifest["pipeline"]["normalization"] == NORMALIZATION_VERSION
