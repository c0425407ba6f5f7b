"""S3 under faults: throttling, truncated bodies, NFD keys, bounded downloads, publish and pull.

A small HTTP proxy on 127.0.0.1 sits between boto3 and moto's S3 server and injects faults
per object key: 503 SlowDown answers, or bodies cut short.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import boto3
import pytest
from moto.server import ThreadedMotoServer
from typer.testing import CliRunner

from index_builder.build import build_index
from index_builder.cli import app
from index_builder.remote import pull_current
from index_builder.settings import IndexBuilderSettings
from index_builder.store import current_version, open_index
from index_builder.versions import list_versions

BUCKET = "veraclaim-faults"

SLOW_DOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class FaultyProxy(ThreadingHTTPServer):
    """Forwards requests to an upstream S3 server, and injects faults into GETs of chosen keys.

    ``faults`` maps a key to (kind, count): the first ``count`` GETs of that key get the
    fault, later ones pass through. Kinds: "slowdown" (503 SlowDown), "cut" (half the body,
    then the connection closes, under the full Content-Length) and "short" (half the body
    under a matching Content-Length, so only the listed size reveals it).
    """

    daemon_threads = True

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _ProxyHandler)
        self.upstream = urlsplit(upstream)
        self.faults: dict[str, tuple[str, int]] = {}
        self.object_gets: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _ProxyHandler(BaseHTTPRequestHandler):
    server: FaultyProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass

    def do_GET(self) -> None:
        self._forward()

    def do_PUT(self) -> None:
        self._forward()

    def do_POST(self) -> None:
        self._forward()

    def do_HEAD(self) -> None:
        self._forward()

    def do_DELETE(self) -> None:
        self._forward()

    def _forward(self) -> None:
        path = urlsplit(self.path)
        segments = path.path.split("/", 2)
        key = unquote(segments[2]) if len(segments) == 3 and segments[2] else None
        is_object_get = self.command == "GET" and key is not None and not path.query

        # 1. The fault for this request, if any.
        fault = None
        if is_object_get:
            with self.server.lock:
                self.server.object_gets[key] += 1
                kind, count = self.server.faults.get(key, ("", 0))
                if self.server.object_gets[key] <= count:
                    fault = kind
                self.server.in_flight += 1
                self.server.max_in_flight = max(self.server.max_in_flight, self.server.in_flight)
        try:
            if fault == "slowdown":
                self._send(503, {"Content-Type": "application/xml"}, SLOW_DOWN)
                return

            # 2. The upstream response, passed on whole or cut.
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            upstream = http.client.HTTPConnection(self.server.upstream.hostname, self.server.upstream.port, timeout=30)
            headers = {name: value for name, value in self.headers.items() if name.lower() != "connection"}
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            data = response.read()
            upstream.close()
            answer = {
                name: value
                for name, value in response.getheaders()
                if name.lower() not in ("transfer-encoding", "connection", "content-length")
            }
            if fault == "cut":
                answer["Content-Length"] = str(len(data))
                self._send(response.status, answer, data[: len(data) // 2], close=True)
            elif fault == "short":
                self._send(response.status, answer, data[: len(data) // 2])
            else:
                self._send(response.status, answer, data)
        finally:
            if is_object_get:
                with self.server.lock:
                    self.server.in_flight -= 1

    def _send(self, status: int, headers: dict[str, str], body: bytes, *, close: bool = False) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if "Content-Length" not in headers:
            self.send_header("Content-Length", str(len(body)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)
        self.wfile.flush()


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with pytest.MonkeyPatch.context() as patch:
        _dummy_credentials(patch, tmp_path_factory.mktemp("aws"))
        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            server.stop()


def _dummy_credentials(patch: pytest.MonkeyPatch, folder: Path) -> None:
    patch.setenv("AWS_ACCESS_KEY_ID", "testing")
    patch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    patch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    patch.setenv("AWS_CONFIG_FILE", str(folder / "no-aws-config"))
    patch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(folder / "no-aws-credentials"))
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        patch.delenv(name, raising=False)


@pytest.fixture
def bucket(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request) -> str:
    """A fresh bucket for this test; returns its name."""
    _dummy_credentials(monkeypatch, tmp_path)
    name = f"{BUCKET}-{abs(hash(request.node.name)) % 10**8}"
    boto3.client("s3", endpoint_url=moto_endpoint).create_bucket(Bucket=name)
    return name


@pytest.fixture
def proxy(moto_endpoint: str) -> Iterator[FaultyProxy]:
    server = FaultyProxy(moto_endpoint)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


def put_pdfs(endpoint: str, bucket: str, pdfs, documents: dict[str, str]) -> None:
    client = boto3.client("s3", endpoint_url=endpoint)
    for key, text in documents.items():
        client.put_object(Bucket=bucket, Key=key, Body=pdfs.korean_bytes([text]))


def indexed_texts(out: Path) -> dict[str, str]:
    reader = open_index(out)
    return {reader.chunk(i).source_uri: reader.chunk(i).text for i in sorted(reader._chunks)}


def test_throttled_keys_survive(moto_endpoint, bucket, proxy, tmp_path: Path, pdfs) -> None:
    documents = {f"docs/{number}.pdf": f"{number}번 문서의 청구항." for number in range(4)}
    put_pdfs(moto_endpoint, bucket, pdfs, documents)
    # Every key returns SlowDown twice, within botocore's 5 attempts.
    proxy.faults = {key: ("slowdown", 2) for key in documents}

    report = build_index(f"s3://{bucket}/docs", tmp_path / "index", endpoint_url=proxy.endpoint, progress=False)

    assert len(report.indexed) == 4
    assert all(proxy.object_gets[key] == 3 for key in documents)
    assert set(indexed_texts(tmp_path / "index").values()) == set(documents.values())


def test_key_that_keeps_failing_is_reported(moto_endpoint, bucket, proxy, tmp_path: Path, pdfs) -> None:
    documents = {"docs/good.pdf": "정상 문서의 청구항.", "docs/busy.pdf": "계속 거절되는 문서."}
    put_pdfs(moto_endpoint, bucket, pdfs, documents)
    proxy.faults = {"docs/busy.pdf": ("slowdown", 1000)}
    runner = CliRunner()

    result = runner.invoke(
        app, ["rebuild", f"s3://{bucket}/docs", "--out", str(tmp_path / "index"), "--endpoint-url", proxy.endpoint]
    )
    report = json.loads((tmp_path / "index" / "last-build.json").read_text(encoding="utf-8"))

    # Published with the good document; the failing one is reported and retried next run.
    assert result.exit_code == 4, result.output
    assert report["published"] is True
    assert report["counts"]["indexed"] == 1
    [failure] = report["skipped"]
    assert failure["uri"] == f"s3://{bucket}/docs/busy.pdf"
    assert "SlowDown" in failure["reason"]
    assert failure["transient"] is True
    assert proxy.object_gets["docs/busy.pdf"] == 5

    proxy.faults = {}
    again = build_index(f"s3://{bucket}/docs", tmp_path / "index", endpoint_url=proxy.endpoint, progress=False)

    assert again.published
    assert len(again.indexed) == 2
    assert again.embedded_chunks == 1


TRUNCATIONS = [
    # The connection closes halfway through the announced Content-Length, twice.
    ("cut", 2, True),
    # A shorter body with a matching Content-Length, twice: only the listed size shows it.
    ("short", 2, True),
    # Always cut: after three attempts the document is skipped.
    ("cut", 1000, False),
]


@pytest.mark.parametrize(("kind", "count", "indexed"), TRUNCATIONS)
def test_truncated_download(
    moto_endpoint, bucket, proxy, tmp_path: Path, pdfs, kind: str, count: int, indexed: bool
) -> None:
    documents = {"docs/long.pdf": "잘려서 도착하는 문서의 청구항. " * 40, "docs/ok.pdf": "온전한 문서."}
    put_pdfs(moto_endpoint, bucket, pdfs, documents)
    proxy.faults = {"docs/long.pdf": (kind, count)}

    report = build_index(f"s3://{bucket}/docs", tmp_path / "index", endpoint_url=proxy.endpoint, progress=False)

    status = {document.file_name: document for document in report.documents}["long.pdf"]
    if indexed:
        assert status.status == "ok"
        assert proxy.object_gets["docs/long.pdf"] == count + 1
    else:
        assert status.status == "skipped"
        assert "truncated or broken off in all 3 attempts" in status.reason
        assert status.transient
        assert proxy.object_gets["docs/long.pdf"] == 3


def test_nfd_key_fetched_exactly_and_shown_in_nfc(moto_endpoint, bucket, tmp_path: Path, pdfs) -> None:
    nfc_name = "특허 출원서.pdf"
    nfd_key = "docs/" + unicodedata.normalize("NFD", nfc_name)
    assert nfd_key != "docs/" + nfc_name
    put_pdfs(moto_endpoint, bucket, pdfs, {nfd_key: "자모로 분해된 이름의 문서."})

    report = build_index(f"s3://{bucket}/docs", tmp_path / "index", endpoint_url=moto_endpoint, progress=False)

    [document] = report.indexed
    assert document.uri == f"s3://{bucket}/{nfd_key}"
    assert document.file_name == nfc_name
    hit = open_index(tmp_path / "index").search("자모로 분해된 이름의 문서.", k=1)[0]
    assert hit.file_name == nfc_name


def test_downloads_are_bounded(moto_endpoint, bucket, proxy, tmp_path: Path, pdfs) -> None:
    documents = {f"docs/{number:02d}.pdf": f"{number}번째 동시 내려받기 문서." for number in range(12)}
    put_pdfs(moto_endpoint, bucket, pdfs, documents)
    settings = IndexBuilderSettings(download_concurrency=2, s3_retry_mode="adaptive")

    report = build_index(
        f"s3://{bucket}/docs", tmp_path / "index", settings=settings, endpoint_url=proxy.endpoint, progress=False
    )

    assert len(report.indexed) == 12
    assert 1 <= proxy.max_in_flight <= 2


def test_publish_then_pull(moto_endpoint, bucket, tmp_path: Path, pdfs) -> None:
    put_pdfs(moto_endpoint, bucket, pdfs, {"docs/a.pdf": "배포할 색인의 문서."})
    remote = f"s3://{bucket}/index"
    runner = CliRunner()

    built = runner.invoke(
        app,
        ["build", f"s3://{bucket}/docs", "--out", str(tmp_path / "builder"), "--endpoint-url", moto_endpoint,
         "--publish-to", remote, "--no-progress"],
    )

    assert built.exit_code == 0, built.output
    version = current_version(tmp_path / "builder")
    objects = boto3.client("s3", endpoint_url=moto_endpoint).list_objects_v2(Bucket=bucket, Prefix="index/")
    keys = {item["Key"] for item in objects["Contents"]}
    assert "index/CURRENT" in keys
    assert f"index/versions/{version}/manifest.json" in keys

    pulled = runner.invoke(app, ["pull", remote, "--out", str(tmp_path / "replica"), "--endpoint-url", moto_endpoint])

    assert pulled.exit_code == 0, pulled.output
    assert f"Pulled version {version}" in pulled.stdout
    assert current_version(tmp_path / "replica") == version
    assert open_index(tmp_path / "replica").search("배포할 색인의 문서.", k=1)[0].file_name == "a.pdf"

    again = runner.invoke(app, ["pull", remote, "--out", str(tmp_path / "replica"), "--endpoint-url", moto_endpoint])

    assert again.exit_code == 0
    assert "Already current" in again.stdout
    assert list_versions(tmp_path / "replica") == [version]

    # A replica never evaluates, so even an invalid gate setting does not stop its pull.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("VERACLAIM_EVAL_MIN_RECALL_AT_5", "abc")
        gated = runner.invoke(app, ["pull", remote, "--out", str(tmp_path / "other"), "--endpoint-url", moto_endpoint])

    assert gated.exit_code == 0, gated.output
    assert current_version(tmp_path / "other") == version


def test_pull_rejects_version_that_does_not_load(moto_endpoint, bucket, tmp_path: Path, pdfs) -> None:
    put_pdfs(moto_endpoint, bucket, pdfs, {"docs/a.pdf": "첫 배포."})
    remote = f"s3://{bucket}/index"
    report = build_index(f"s3://{bucket}/docs", tmp_path / "builder", endpoint_url=moto_endpoint, progress=False)
    from index_builder.remote import upload_version

    upload_version(tmp_path / "builder", report.version, remote, endpoint_url=moto_endpoint)
    pull_current(remote, tmp_path / "replica", endpoint_url=moto_endpoint)
    # A broken version named by the bucket's CURRENT: its chunk file is empty.
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    broken = "20990101T000000000000Z-dead"
    for item in client.list_objects_v2(Bucket=bucket, Prefix=f"index/versions/{report.version}/")["Contents"]:
        name = item["Key"].split(f"{report.version}/", 1)[1]
        body = b"" if name == "chunks.jsonl" else client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        client.put_object(Bucket=bucket, Key=f"index/versions/{broken}/{name}", Body=body)
    client.put_object(Bucket=bucket, Key="index/CURRENT", Body=f"{broken}\n".encode())

    result = CliRunner().invoke(app, ["pull", remote, "--out", str(tmp_path / "replica"), "--endpoint-url", moto_endpoint])

    assert result.exit_code == 1
    assert "does not load" in result.stderr
    assert current_version(tmp_path / "replica") == report.version
    assert open_index(tmp_path / "replica").chunk_count == 1


def test_pull_ignores_evaluation_gate(
    moto_endpoint, bucket, tmp_path: Path, pdfs, monkeypatch: pytest.MonkeyPatch
) -> None:
    put_pdfs(moto_endpoint, bucket, pdfs, {"docs/a.pdf": "게이트 없이 받을 색인."})
    remote = f"s3://{bucket}/index"
    report = build_index(f"s3://{bucket}/docs", tmp_path / "builder", endpoint_url=moto_endpoint, progress=False)
    from index_builder.remote import upload_version

    upload_version(tmp_path / "builder", report.version, remote, endpoint_url=moto_endpoint)
    # A replica whose environment sets a gate that this version fails: its one question
    # expects a file that is not in the index, so recall@5 is 0 against a floor of 1.
    golden = tmp_path / "golden.jsonl"
    question = {"id": "absent", "question": "포도 재배", "kind": "formal", "expected": [{"file": "grape.pdf", "page": 1}]}
    golden.write_text(json.dumps(question, ensure_ascii=False) + "\n", encoding="utf-8")
    monkeypatch.setenv("VERACLAIM_EVAL_GOLDEN", str(golden))
    monkeypatch.setenv("VERACLAIM_EVAL_MIN_RECALL_AT_5", "1.0")

    version, fetched = pull_current(remote, tmp_path / "replica", endpoint_url=moto_endpoint)

    assert fetched
    assert version == report.version
    assert current_version(tmp_path / "replica") == report.version
    assert not (tmp_path / "replica" / "versions" / version / "evaluation.json").exists()
    assert not (tmp_path / "replica" / "rejected").exists()
