"""Edge cases of IndexReader: large k, an empty index, faiss's -1 ids, damaged files, and context()."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import pytest

from index_builder.build import build_index
from index_builder.errors import (
    ChunkNotFoundError,
    IndexBuilderError,
    IndexFormatError,
    IndexNotFoundError,
    InvalidQueryError,
)
from index_builder.reader import IndexReader, open_index
from index_builder.settings import DEFAULT_EMBEDDING_MODEL
from index_builder.store import Chunk, write_version
from index_builder.versions import served_dir

PAGES = {
    "brake.pdf": [
        "자동차용 디스크 브레이크 장치는 캘리퍼와 브레이크 패드와 로터를 포함한다.",
        "브레이크 패드의 마모를 감지하는 센서가 캘리퍼 하우징에 설치된다.",
    ],
    "claims.pdf": [
        "[청구항 2] 제 1 항에 있어서, 상기 브레이크 패드는 세라믹 재질인 것을 특징으로 하는 장치.",
    ],
}
MODES = ("dense", "keyword", "hybrid")


@pytest.fixture(scope="module")
def built_root(tmp_path_factory: pytest.TempPathFactory, pdfs) -> Path:
    source = tmp_path_factory.mktemp("edges-source")
    for name, pages in PAGES.items():
        pdfs.korean(source / name, pages)
    out = tmp_path_factory.mktemp("edges-index") / "index"
    build_index(str(source), out, progress=False)
    return out


@pytest.fixture(scope="module")
def reader(built_root: Path) -> IndexReader:
    return open_index(built_root)


@pytest.fixture
def root_copy(built_root: Path, tmp_path: Path) -> Path:
    """A copy of the whole index root, whose served version a test may damage."""
    copy = tmp_path / "root"
    shutil.copytree(built_root, copy)
    return copy


# -- k and empty indexes -------------------------------------------------------------------


@pytest.mark.parametrize("mode", MODES)
def test_k_above_chunk_count_returns_existing_chunks(reader: IndexReader, mode: str) -> None:
    hits = reader.search("브레이크 패드", k=1000, mode=mode)

    assert 0 < len(hits) <= reader.chunk_count
    assert len({hit.chunk_id for hit in hits}) == len(hits)


@pytest.fixture
def empty_reader(tmp_path: Path) -> IndexReader:
    # publish_version refuses an empty version, but write_version writes one, and a reader
    # must still open it: the chat shows "no documents indexed" for chunk_count 0.
    folder = tmp_path / "empty"
    write_version(
        folder, [], np.zeros((0, 384), dtype=np.float32), embedding_model=DEFAULT_EMBEDDING_MODEL, documents=[]
    )
    return open_index(folder)


@pytest.mark.parametrize("mode", MODES)
def test_empty_index_returns_no_hits(empty_reader: IndexReader, mode: str) -> None:
    assert empty_reader.chunk_count == 0
    assert empty_reader.search("특허법 64조가 뭐야?", k=5, mode=mode) == []


def test_empty_index_still_validates_query(empty_reader: IndexReader) -> None:
    with pytest.raises(InvalidQueryError, match="empty"):
        empty_reader.search("  ")
    with pytest.raises(ChunkNotFoundError):
        empty_reader.context(0)


# -- faiss's -1 ids ------------------------------------------------------------------------


def _rewrite_vectors(folder: Path, change: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]) -> None:
    """Rewrite folder/index.faiss with ``change(vectors, ids)``, keeping its type."""
    index = faiss.read_index(str(folder / "index.faiss"))
    ids = faiss.vector_to_array(index.id_map).astype(np.int64)
    vectors = np.vstack([index.reconstruct(int(chunk_id)) for chunk_id in ids])
    vectors, ids = change(vectors, ids)
    rewritten = faiss.IndexIDMap2(faiss.IndexFlatIP(index.d))
    rewritten.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids)
    faiss.write_index(rewritten, str(folder / "index.faiss"))


def _nan_first_vector(vectors: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    vectors = vectors.copy()
    vectors[0, :] = np.nan
    return vectors, ids


@pytest.mark.parametrize("mode", ["dense", "hybrid"])
def test_faiss_minus_one_ids_never_reach_lookup(root_copy: Path, mode: str) -> None:
    # faiss cannot rank a NaN vector and pads its results with id -1 instead.
    folder = served_dir(root_copy)
    _rewrite_vectors(folder, _nan_first_vector)
    reader = open_index(root_copy)
    raw_ids = reader._index.search(np.ones((1, 384), dtype=np.float32) / np.sqrt(384), reader.chunk_count)[1][0]
    assert -1 in raw_ids.tolist()

    hits = reader.search("브레이크 패드", k=reader.chunk_count, mode=mode)

    assert hits
    assert all(hit.chunk_id >= 0 for hit in hits)
    if mode == "dense":
        assert len(hits) == reader.chunk_count - 1


# -- damaged files -------------------------------------------------------------------------


def _truncate(file: Path, keep: float) -> None:
    data = file.read_bytes()
    file.write_bytes(data[: int(len(data) * keep)])


def _truncate_last_line(folder: Path) -> None:
    file = folder / "chunks.jsonl"
    data = file.read_bytes()
    last_line = data.rstrip(b"\n").rfind(b"\n") + 1
    file.write_bytes(data[: last_line + (len(data) - last_line) // 2])


def _truncate_inside_hangul(folder: Path) -> None:
    # Cut one byte into a three-byte UTF-8 syllable of the last line.
    file = folder / "chunks.jsonl"
    data = file.read_bytes()
    syllable = data.rfind("브".encode())
    file.write_bytes(data[: syllable + 1])


def _empty_keyword_folder(folder: Path) -> None:
    for entry in (folder / "keyword").iterdir():
        entry.unlink()


def _drop_last_chunk_id(folder: Path) -> None:
    file = folder / "keyword" / "chunk_ids.json"
    file.write_text(json.dumps(json.loads(file.read_text())[:-1]))


def _add_chunk_id(folder: Path) -> None:
    file = folder / "keyword" / "chunk_ids.json"
    file.write_text(json.dumps([*json.loads(file.read_text()), 999]))


def _shift_vector_ids(folder: Path) -> None:
    _rewrite_vectors(folder, lambda vectors, ids: (vectors, ids + 100))


def _other_normalization(folder: Path) -> None:
    file = folder / "manifest.json"
    manifest = json.loads(file.read_text(encoding="utf-8"))
    manifest["normalization"] = 0
    file.write_text(json.dumps(manifest), encoding="utf-8")


DAMAGES = [
    # index.faiss cut in half, as by a full disk.
    (lambda folder: _truncate(folder / "index.faiss", 0.5), IndexFormatError, r"index\.faiss is damaged"),
    # index.faiss overwritten with text.
    (lambda folder: (folder / "index.faiss").write_text("not an index"), IndexFormatError, r"index\.faiss is damaged"),
    # index.faiss emptied.
    (lambda folder: (folder / "index.faiss").write_bytes(b""), IndexFormatError, r"index\.faiss is damaged"),
    # Vectors stored under ids that no chunk has.
    (_shift_vector_ids, IndexFormatError, r"index\.faiss stores its vectors under other ids"),
    # chunks.jsonl ends in half a line.
    (_truncate_last_line, IndexFormatError, r"chunks\.jsonl line \d+ is not a valid chunk record"),
    # chunks.jsonl ends inside a Hangul syllable, so its last bytes are not UTF-8.
    (_truncate_inside_hangul, IndexFormatError, r"chunks\.jsonl line \d+ is not a valid chunk record"),
    # keyword/ emptied.
    (_empty_keyword_folder, IndexFormatError, r"keyword/chunk_ids\.json is missing"),
    # keyword/ deleted.
    (lambda folder: shutil.rmtree(folder / "keyword"), IndexNotFoundError, r"keyword index .*keyword is missing"),
    # A BM25 file of keyword/ cut in half.
    (lambda folder: _truncate(folder / "keyword" / "params.index.json", 0.5), IndexFormatError, r"keyword is damaged"),
    # chunk_ids.json lists one id fewer than the BM25 rows and the vectors.
    (_drop_last_chunk_id, IndexFormatError, r"chunk_ids\.json lists \d+ chunk ids, but the BM25 index .* has \d+ rows"),
    # chunk_ids.json lists one id more.
    (_add_chunk_id, IndexFormatError, r"chunk_ids\.json lists \d+ chunk ids, but the BM25 index .* has \d+ rows"),
    # chunk_ids.json is not JSON.
    (lambda folder: (folder / "keyword" / "chunk_ids.json").write_text("[1, 2"), IndexFormatError, r"chunk_ids\.json is not valid JSON"),
    # An index made with other normalization rules.
    (_other_normalization, IndexFormatError, r"text normalization 0"),
]


@pytest.mark.parametrize(("damage", "error_type", "message"), DAMAGES)
def test_damaged_version_names_file_and_fix(
    root_copy: Path, damage: Callable[[Path], object], error_type: type[IndexBuilderError], message: str
) -> None:
    damage(served_dir(root_copy))

    with pytest.raises(error_type, match=message) as raised:
        open_index(root_copy)

    text = str(raised.value)
    assert isinstance(raised.value, IndexBuilderError)
    assert f"veraclaim-index build SOURCE --out {root_copy.resolve()} --full" in text
    assert f"veraclaim-index rollback {root_copy.resolve()}" in text


def test_damaged_flat_folder_advises_rebuild_only(built_root: Path, tmp_path: Path) -> None:
    flat = tmp_path / "flat"
    shutil.copytree(served_dir(built_root), flat)
    _truncate(flat / "index.faiss", 0.5)

    with pytest.raises(IndexFormatError) as raised:
        open_index(flat)

    assert f"--out {flat.resolve()} --full" in str(raised.value)
    assert "rollback" not in str(raised.value)


# -- context() -----------------------------------------------------------------------------

# Chunks that overlap by whole words, as the splitter makes them: "사아자" ends chunk 0 and
# starts chunk 1, "파하고" ends chunk 1 and starts chunk 2. Chunk 3 is on the next page, and
# b.pdf has chunk_no 0 and 1 of its own.
CONTEXT_CHUNKS = [
    Chunk(10, "가나다 라마바 사아자", "file:///a.pdf", "a.pdf", 1, 0),
    Chunk(11, "사아자 차카타 파하고", "file:///a.pdf", "a.pdf", 1, 1),
    Chunk(12, "파하고 거너더 러머버", "file:///a.pdf", "a.pdf", 1, 2),
    Chunk(13, "다음 쪽의 글", "file:///a.pdf", "a.pdf", 2, 3),
    Chunk(20, "다른 문서 첫째", "file:///b.pdf", "b.pdf", 1, 0),
    Chunk(21, "다른 문서 둘째", "file:///b.pdf", "b.pdf", 1, 1),
]


@pytest.fixture(scope="module")
def context_reader(tmp_path_factory: pytest.TempPathFactory) -> IndexReader:
    folder = tmp_path_factory.mktemp("context") / "index"
    vectors = np.eye(len(CONTEXT_CHUNKS), 384, dtype=np.float32)
    write_version(folder, CONTEXT_CHUNKS, vectors, embedding_model=DEFAULT_EMBEDDING_MODEL, documents=[])
    return open_index(folder)


CONTEXTS = [
    # Both neighbours, and each overlap once.
    (11, 1000, "가나다 라마바 사아자 차카타 파하고 거너더 러머버"),
    # The first chunk of a document has only a following neighbour.
    (10, 1000, "가나다 라마바 사아자 차카타 파하고"),
    # The next chunk_no is on another page, so only the previous chunk joins.
    (12, 1000, "사아자 차카타 파하고 거너더 러머버"),
    # The previous chunk_no is on another page, so the chunk stays alone.
    (13, 1000, "다음 쪽의 글"),
    # Neighbours without overlap are joined with a space, and other documents stay out.
    (20, 1000, "다른 문서 첫째 다른 문서 둘째"),
    # Room for one word on each side: the hit stays in the middle.
    (11, 19, "라마바 사아자 차카타 파하고 거너더"),
    # Without a previous neighbour, the following one takes all the room.
    (10, 19, "가나다 라마바 사아자 차카타 파하고"),
    # Room for part of a word only: the cut moves to a space, which leaves the hit alone.
    (11, 17, "사아자 차카타 파하고"),
    # A chunk longer than max_chars is cut to its start.
    (11, 5, "사아자 차"),
]


@pytest.mark.parametrize(("chunk_id", "max_chars", "expected"), CONTEXTS)
def test_context(context_reader: IndexReader, chunk_id: int, max_chars: int, expected: str) -> None:
    text = context_reader.context(chunk_id, max_chars=max_chars)

    assert text == expected
    assert len(text) <= max_chars


def test_context_rejects_bad_arguments(context_reader: IndexReader) -> None:
    with pytest.raises(ChunkNotFoundError, match="chunk id 99"):
        context_reader.context(99)
    with pytest.raises(InvalidQueryError, match="max_chars"):
        context_reader.context(11, max_chars=0)


def test_context_joins_overlapping_sample_chunks(sample_subset_index: Path, article_64_page: int) -> None:
    # On the Patent Act page of 제64조, the heading line ends one chunk and starts the next.
    reader = open_index(sample_subset_index)
    hit = reader.search("특허법 64조가 뭐야?", k=1, mode="keyword")[0]

    text = reader.context(hit.chunk_id, max_chars=2000)

    assert (hit.file_name, hit.page) == ("patent_act.pdf", article_64_page)
    assert hit.text in text
    assert text.count("제64조(출원공개)") == 1
    assert len(text) > len(hit.text)
