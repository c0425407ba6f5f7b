"""Tests of the S3 source against moto's S3 server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from moto.server import ThreadedMotoServer

from index_builder.build import build_index
from index_builder.errors import SourceNotFoundError, SourceUnavailableError
from index_builder.reading import ReadRequest, fetch_document
from index_builder.sources import SourceDocument
from index_builder.sources.s3 import S3Source
from index_builder.versions import served_dir

BUCKET = "veraclaim-patents"
PREFIX = "patents"

# More than the 1,000 keys that one list_objects_v2 page returns, so listing must paginate.
LATIN_PDF_COUNT = 1_000

# PDF keys whose names a URL or a local path could mangle, with the Korean text of the PDF.
SPECIAL_KEYS = {
    f"{PREFIX}/with space.pdf": "공백이 있는 이름",
    f"{PREFIX}/plus+sign.pdf": "더하기 기호가 있는 이름",
    f"{PREFIX}/특허 출원 제1호.pdf": "특허 출원 제1호의 청구범위",
    f"{PREFIX}/폴더 이름/청구항+요약 2.PDF": "대문자 확장자와 한글 폴더",
    f"{PREFIX}/query?x=1#frag.pdf": "물음표와 샵 기호",
    f"{PREFIX}//double slash.pdf": "빈 경로 구간",
    f"{PREFIX}/%41 percent.pdf": "퍼센트 기호",
}

# A PDF key whose local path would escape the download folder.
ESCAPING_KEY = f"{PREFIX}/../escape.pdf"

# Keys that must not be indexed: not PDFs, or outside the prefix.
IGNORED_KEYS = [
    f"{PREFIX}/readme.txt",
    f"{PREFIX}/scan.png",
    f"{PREFIX}/old.pdf.bak",
    f"{PREFIX}/folder/",
    "other/outside.pdf",
    f"{PREFIX}-old/sibling.pdf",
    "top-level.pdf",
]


def latin_key(number: int) -> str:
    return f"{PREFIX}/2024/batch-{number // 100:02d}/doc-{number:04d}.pdf"


def latin_text(number: int) -> str:
    return f"Veraclaim test document {number:04d} about claim {number}."


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def set_dummy_credentials(patch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    patch.setenv("AWS_ACCESS_KEY_ID", "testing")
    patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    # Keep the developer's own AWS configuration out of the tests.
    patch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        patch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def s3_endpoint(tmp_path_factory: pytest.TempPathFactory, pdfs) -> Iterator[str]:
    """Start moto's S3 server and fill the bucket. Returns the endpoint URL."""
    with pytest.MonkeyPatch.context() as patch:
        set_dummy_credentials(patch, tmp_path_factory.mktemp("aws"))
        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        endpoint = f"http://127.0.0.1:{port}"
        try:
            client = boto3.client("s3", endpoint_url=endpoint)
            client.create_bucket(Bucket=BUCKET)
            objects = {
                latin_key(number): pdfs.latin_bytes(latin_text(number)) for number in range(LATIN_PDF_COUNT)
            }
            objects.update({key: pdfs.korean_bytes([text]) for key, text in SPECIAL_KEYS.items()})
            objects[ESCAPING_KEY] = pdfs.latin_bytes("escape attempt")
            objects.update({key: b"not indexed" for key in IGNORED_KEYS})
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(
                    pool.map(
                        lambda item: client.put_object(Bucket=BUCKET, Key=item[0], Body=item[1]),
                        objects.items(),
                    )
                )
            yield endpoint
        finally:
            server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    set_dummy_credentials(monkeypatch, tmp_path)
    return monkeypatch


def expected_pdf_uris() -> set[str]:
    keys = [latin_key(number) for number in range(LATIN_PDF_COUNT)] + list(SPECIAL_KEYS) + [ESCAPING_KEY]
    return {f"s3://{BUCKET}/{key}" for key in keys}


@pytest.mark.slow
def test_build_indexes_every_pdf_once(s3_endpoint: str, aws_env, tmp_path: Path) -> None:
    report = build_index(
        f"s3://{BUCKET}/{PREFIX}", tmp_path / "index", endpoint_url=s3_endpoint, progress=False
    )

    manifest = json.loads((served_dir(tmp_path / "index") / "manifest.json").read_text(encoding="utf-8"))
    records = [
        json.loads(line)
        for line in (served_dir(tmp_path / "index") / "chunks.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    escaping_uri = f"s3://{BUCKET}/{ESCAPING_KEY}"

    # 1. Every PDF under the prefix appears once in the manifest, and nothing else does.
    listed = [document["uri"] for document in manifest["documents"]]
    assert len(listed) == len(set(listed)) == LATIN_PDF_COUNT + len(SPECIAL_KEYS) + 1
    assert set(listed) == expected_pdf_uris()

    # 2. All are indexed except the key that would escape the download folder.
    skipped = {
        document["uri"]: document["reason"]
        for document in manifest["documents"]
        if document["status"] != "ok"
    }
    assert list(skipped) == [escaping_uri]
    assert "unsafe S3 key" in skipped[escaping_uri]
    assert len(report.indexed) == LATIN_PDF_COUNT + len(SPECIAL_KEYS)

    # 3. Each indexed PDF has its own text under its own URI.
    texts: dict[str, str] = {}
    for record in records:
        texts[record["source_uri"]] = texts.get(record["source_uri"], "") + record["text"]
    assert set(texts) == expected_pdf_uris() - {escaping_uri}
    for number in range(0, LATIN_PDF_COUNT, 97):
        assert f"document {number:04d}" in texts[f"s3://{BUCKET}/{latin_key(number)}"]
    for key, text in SPECIAL_KEYS.items():
        assert text in texts[f"s3://{BUCKET}/{key}"]
    file_names = {record["file_name"] for record in records}
    assert {"특허 출원 제1호.pdf", "청구항+요약 2.PDF", "query?x=1#frag.pdf"} <= file_names


def test_endpoint_from_environment(s3_endpoint: str, aws_env) -> None:
    # boto3 itself reads AWS_ENDPOINT_URL.
    aws_env.setenv("AWS_ENDPOINT_URL", s3_endpoint)

    documents = list(S3Source(f"s3://{BUCKET}/{PREFIX}/").list_documents())

    assert {document.uri for document in documents} == expected_pdf_uris()


def test_download_keeps_bytes(s3_endpoint: str, aws_env, tmp_path: Path, pdfs) -> None:
    source = S3Source(f"s3://{BUCKET}/{PREFIX}", endpoint_url=s3_endpoint)
    key = f"{PREFIX}/폴더 이름/청구항+요약 2.PDF"

    path = source.fetch(SourceDocument(uri=f"s3://{BUCKET}/{key}", file_name="청구항+요약 2.PDF"), tmp_path)

    assert path == tmp_path.resolve() / "폴더 이름" / "청구항+요약 2.PDF"
    assert path.read_bytes()[:5] == b"%PDF-"


def test_object_deleted_after_listing(s3_endpoint: str, aws_env, tmp_path: Path) -> None:
    source = S3Source(f"s3://{BUCKET}/{PREFIX}", endpoint_url=s3_endpoint)
    document = SourceDocument(uri=f"s3://{BUCKET}/{PREFIX}/deleted.pdf", file_name="deleted.pdf")

    status, path = fetch_document(source, ReadRequest(document), tmp_path)

    assert status.status == "skipped"
    assert "download of" in status.reason
    # A failed download may succeed next time, so the next build retries it.
    assert status.transient
    assert path is None


def test_missing_bucket(s3_endpoint: str, aws_env) -> None:
    source = S3Source("s3://no-such-bucket/patents", endpoint_url=s3_endpoint)

    with pytest.raises(SourceNotFoundError, match="'no-such-bucket'"):
        list(source.list_documents())


def test_unreachable_endpoint(aws_env) -> None:
    # Nothing listens on a port that was free a moment ago.
    source = S3Source(f"s3://{BUCKET}/{PREFIX}", endpoint_url=f"http://127.0.0.1:{free_port()}")

    with pytest.raises(SourceUnavailableError, match="Check the endpoint URL") as raised:
        list(source.list_documents())

    assert isinstance(raised.value, ConnectionError)
