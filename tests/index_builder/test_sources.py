"""Tests of source parsing, local folders and S3 key safety (S3 itself is in test_s3.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from index_builder.errors import InvalidSourceError, SourceNotFoundError, UnsafeKeyError
from index_builder.sources import open_source
from index_builder.sources.local import LocalSource
from index_builder.sources.s3 import local_download_path, parse_s3_uri

S3_URIS = [
    # Bucket only: the whole bucket.
    ("s3://patents", ("patents", "")),
    # A trailing slash after the bucket changes nothing.
    ("s3://patents/", ("patents", "")),
    # Nested prefix, kept as written.
    ("s3://patents/kr/2024", ("patents", "kr/2024")),
    # Spaces, plus signs, Korean, ? and # are key characters, not URL syntax.
    ("s3://patents/특허 출원+공개?v=1#a", ("patents", "특허 출원+공개?v=1#a")),
]


@pytest.mark.parametrize(("uri", "expected"), S3_URIS)
def test_parse_s3_uri(uri: str, expected: tuple[str, str]) -> None:
    assert parse_s3_uri(uri) == expected


INVALID_S3_URIS = [
    # No bucket at all.
    "s3://",
    # An empty bucket before the key.
    "s3:///key.pdf",
    # Another scheme.
    "https://bucket.s3.amazonaws.com/key.pdf",
]


@pytest.mark.parametrize("uri", INVALID_S3_URIS)
def test_parse_s3_uri_rejects(uri: str) -> None:
    with pytest.raises(InvalidSourceError, match="s3://bucket/prefix"):
        parse_s3_uri(uri)


SAFE_KEYS = [
    # A plain name.
    ("a.pdf", "a.pdf"),
    # Folders, spaces, plus signs and Korean stay as they are.
    ("2024/특허 출원+1.pdf", "2024/특허 출원+1.pdf"),
    # Empty and "." segments, as in keys written with doubled slashes, are dropped.
    ("//x/./y.pdf", "x/y.pdf"),
    # Dots inside a name are not a parent reference.
    ("..hidden..pdf", "..hidden..pdf"),
]


@pytest.mark.parametrize(("key", "relative"), SAFE_KEYS)
def test_local_download_path_keeps_key_inside(tmp_path: Path, key: str, relative: str) -> None:
    assert local_download_path(tmp_path, key) == tmp_path.resolve() / relative


UNSAFE_KEYS = [
    # Parent reference at the start.
    "../escape.pdf",
    # Parent references that climb out after a folder.
    "a/../../escape.pdf",
    # A key made only of a parent reference.
    "..",
    # Nothing left after dropping empty segments: it would be the folder itself.
    "/",
    # An empty key.
    "",
    # NUL cannot be part of a local file name.
    "a\x00.pdf",
]


@pytest.mark.parametrize("key", UNSAFE_KEYS)
def test_local_download_path_rejects_escaping_key(tmp_path: Path, key: str) -> None:
    with pytest.raises(UnsafeKeyError, match="unsafe S3 key"):
        local_download_path(tmp_path, key)


def test_local_download_path_rejects_symlink_escape(tmp_path: Path) -> None:
    # A folder inside the download folder that links outside it.
    (tmp_path / "downloads").mkdir()
    (tmp_path / "downloads" / "link").symlink_to(tmp_path)

    with pytest.raises(UnsafeKeyError, match="outside"):
        local_download_path(tmp_path / "downloads", "link/escape.pdf")


def test_open_source_local_forms(tmp_path: Path) -> None:
    folder = tmp_path / "특허 문서"
    folder.mkdir()

    assert isinstance(open_source(str(folder)), LocalSource)
    assert open_source(folder.as_uri()).root == folder.resolve()
    assert open_source("file://localhost" + str(folder)).root == folder.resolve()


INVALID_SOURCES = [
    # A file URI with a remote host cannot be read locally.
    "file://server/share/pdfs",
    # A relative path inside a file URI.
    "file:relative/pdfs",
    # Schemes that have no source.
    "https://example.com/pdfs",
    "gs://bucket/prefix",
]


@pytest.mark.parametrize("source", INVALID_SOURCES)
def test_open_source_rejects(source: str) -> None:
    with pytest.raises(InvalidSourceError) as raised:
        open_source(source)
    assert isinstance(raised.value, ValueError)


def test_open_source_missing_folder(tmp_path: Path) -> None:
    missing = tmp_path / "absent"

    with pytest.raises(SourceNotFoundError) as raised:
        open_source(str(missing))

    assert isinstance(raised.value, FileNotFoundError)
    assert str(missing) in str(raised.value)


def test_local_source_lists_pdfs_recursively(tmp_path: Path) -> None:
    names = ["b.pdf", "a/특허 출원+1.PDF", "a/nested/c.Pdf", "z.txt", "notes.pdf.txt"]
    for name in names:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"%PDF-1.4\n")
    (tmp_path / "folder.pdf").mkdir()

    source = LocalSource(tmp_path)
    documents = list(source.list_documents())

    # Sorted by path: a/nested/c.Pdf, a/특허 출원+1.PDF, b.pdf.
    assert [document.file_name for document in documents] == ["c.Pdf", "특허 출원+1.PDF", "b.pdf"]
    for document in documents:
        assert document.uri.startswith("file:///")
        assert source.fetch(document, tmp_path / "unused").is_file()
    assert source.fetch(documents[1], tmp_path) == tmp_path.resolve() / "a" / "특허 출원+1.PDF"


def test_malformed_s3_endpoint_is_invalid_source(monkeypatch):
    from index_builder.errors import InvalidSourceError
    from index_builder.sources import open_source

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")

    with pytest.raises(InvalidSourceError, match="S3 endpoint not-a-url is invalid"):
        open_source("s3://bucket/prefix/", endpoint_url="not-a-url")
