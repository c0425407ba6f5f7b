"""Path traversal against the launched app: Gradio's file, static, asset and upload routes
must not hand out files from the machine, the index, the conversation log or the `.env`.

The app runs on 127.0.0.1 from a working directory that contains a `.env`, the SQLite log and
the index, each with a marker string. Every attack is a real HTTP request; dot segments
that httpx would normalise away are sent raw through httpcore, which httpx runs on.
"""

from __future__ import annotations

import os

# Before gradio is imported anywhere: no version check or telemetry calls leave the machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import json  # noqa: E402
import shutil  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import quote  # noqa: E402

import httpcore  # noqa: E402
import httpx  # noqa: E402
import pytest  # noqa: E402

from chat_ui.log import ConversationLog, TurnRecord  # noqa: E402
from chat_ui.service import ModelEndpoint  # noqa: E402
from chat_ui.settings import ChatSettings  # noqa: E402

PASSWD_MARKER = b"root:x:0:0"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Target:
    """A file that must not leak: its absolute path, its path from the working directory,
    and bytes that only its contents hold."""

    name: str
    path: Path
    relative: str
    marker: bytes


@dataclass
class LaunchedApp:
    url: str
    port: int
    workdir: Path
    targets: list[Target]
    upload_dir: Path


@pytest.fixture
def app(small_index: Path, tmp_path: Path, fake_tgi, monkeypatch: pytest.MonkeyPatch) -> Iterator[LaunchedApp]:
    from chat_ui.app import build_app
    from chat_ui.server import launch
    from chat_ui.service import build_pipeline

    # 1. A working directory as an operator's: .env, the index and the SQLite log inside it.
    workdir = tmp_path / "work"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    secret = f"VERACLAIM_SECRET_MARKER_{uuid.uuid4().hex}"
    (workdir / ".env").write_text(f"VERACLAIM_LOG_DATABASE_PASSWORD={secret}\n", encoding="utf-8")
    index_dir = workdir / "var" / "index"
    shutil.copytree(small_index, index_dir, symlinks=True)
    upload_dir = tmp_path / "gradio-uploads"
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(upload_dir))

    # 2. A logged question with a marker, written to the SQLite file before the attacks.
    question_marker = f"질문표식-{uuid.uuid4().hex}"
    with ConversationLog.open("sqlite:///var/veraclaim.sqlite3") as log:
        conversation_id = log.start_conversation(title="비밀 대화")
        log.record_turn(
            TurnRecord(
                conversation_id=conversation_id,
                question=question_marker,
                answer="답변",
                model_id="m",
                model_base_url="http://127.0.0.1:1/v1",
                latency_ms=1,
            )
        )
    database = workdir / "var" / "veraclaim.sqlite3"
    manifest = next(index_dir.rglob("manifest.json"))
    version_line = next(line for line in manifest.read_bytes().splitlines() if b'"version"' in line)
    chunks = next(index_dir.rglob("chunks.jsonl"))

    settings = ChatSettings(
        index_dir=index_dir, log_database_url="sqlite:///var/veraclaim.sqlite3", port=_free_port()
    )
    pipeline = build_pipeline(settings, ModelEndpoint(fake_tgi.base_url, fake_tgi.model_id, timeout_s=10))
    demo = build_app(pipeline, settings)
    launch(demo, settings, prevent_thread_lock=True)

    targets = [
        Target("/etc/passwd", Path("/etc/passwd"), "../" * 12 + "etc/passwd", PASSWD_MARKER),
        Target(".env", workdir / ".env", ".env", secret.encode()),
        Target("SQLite log", database, "var/veraclaim.sqlite3", question_marker.encode()),
        Target("index manifest", manifest, str(manifest.relative_to(workdir)), version_line.strip()),
        Target("index chunks", chunks, str(chunks.relative_to(workdir)), chunks.read_bytes()[:80]),
    ]
    for target in targets:
        assert target.marker in target.path.read_bytes(), f"{target.name} lacks its marker"
    try:
        yield LaunchedApp(f"http://127.0.0.1:{settings.port}", settings.port, workdir, targets, upload_dir)
    finally:
        demo.close()
        pipeline.log.close()


def _file_route_attacks(target: Target) -> list[str]:
    """Request targets that name `target` through Gradio's file routes."""
    absolute = str(target.path)
    relative = target.relative
    dotted = "../" * 12 + absolute.lstrip("/")
    attacks = []
    for prefix in ("/gradio_api/file=", "/file=", "/gradio_api/file/", "/gradio_api/proxy="):
        attacks += [
            prefix + absolute,
            prefix + relative,
            prefix + dotted,
            # Percent-encoded slashes and dots, which a router may decode after matching.
            prefix + quote(absolute, safe=""),
            prefix + dotted.replace("../", "%2e%2e%2f"),
            prefix + dotted.replace("../", "%2e%2e/"),
            prefix + dotted.replace("../", "..%2f"),
            # Double encoding, for a server that decodes twice.
            prefix + dotted.replace("../", "%252e%252e%252f"),
            # Backslashes, for path handling that treats them as separators.
            prefix + dotted.replace("../", "..\\"),
            prefix + "file://" + absolute,
            prefix + "//" + absolute.lstrip("/"),
            # Through /proc: this process's working directory and root.
            prefix + "/proc/self/cwd/" + relative,
            prefix + "/proc/self/root" + absolute,
        ]
    for prefix in ("/static/", "/assets/", "/gradio_api/static/", "/svelte/", "/gradio_api/custom_component/x/client/"):
        attacks += [
            prefix + dotted,
            prefix + dotted.replace("../", "%2e%2e%2f"),
            prefix + dotted.replace("../", "%2e%2e/"),
            prefix + dotted.replace("../", "..%2f"),
            prefix + dotted.replace("../", "..\\"),
        ]
    return attacks


def _raw_get(port: int, target: str) -> tuple[int, bytes]:
    """Send GET with `target` byte for byte, dot segments included."""
    with httpcore.ConnectionPool() as pool:
        url = httpcore.URL(scheme=b"http", host=b"127.0.0.1", port=port, target=target.encode())
        response = pool.request("GET", url, headers={"Host": f"127.0.0.1:{port}"})
        return response.status, response.content


def test_file_routes_never_serve_private_files(app: LaunchedApp) -> None:
    leaks = []
    statuses: dict[int, int] = {}
    for target in app.targets:
        for attack in _file_route_attacks(target):
            status, body = _raw_get(app.port, attack)
            statuses[status] = statuses.get(status, 0) + 1
            if target.marker in body or PASSWD_MARKER in body:
                leaks.append(f"GET {attack} -> {status} with the contents of {target.name}")

    assert leaks == [], "\n".join(leaks)
    # The attacks reached the file route, which refused them rather than failing.
    assert statuses.get(403, 0) > 50, statuses
    assert 500 not in statuses, statuses


def test_httpx_normalised_requests_never_serve_private_files(app: LaunchedApp) -> None:
    # The same paths as a browser or a plain client sends them, after normalisation.
    leaks = []
    with httpx.Client(base_url=app.url, timeout=10) as client:
        for target in app.targets:
            for attack in _file_route_attacks(target):
                response = client.get(attack)
                if target.marker in response.content or PASSWD_MARKER in response.content:
                    leaks.append(f"GET {attack} -> {response.status_code} with {target.name}")
            # HEAD is routed like GET for /file=.
            head = client.head(f"/gradio_api/file={target.path}")
            assert head.status_code in (403, 404, 405), f"HEAD {target.path}: {head.status_code}"

    assert leaks == [], "\n".join(leaks)


def test_file_route_rejects_with_403(app: LaunchedApp) -> None:
    with httpx.Client(base_url=app.url, timeout=10) as client:
        for target in app.targets:
            response = client.get(f"/gradio_api/file={target.path}")

            assert response.status_code == 403, f"{target.name}: {response.status_code}"
            assert target.marker not in response.content


def test_upload_cannot_write_outside_upload_dir(app: LaunchedApp, tmp_path: Path) -> None:
    escape_dir = tmp_path / "escaped"
    escape_dir.mkdir()
    filenames = [
        "../" * 12 + str(escape_dir / "dots.txt").lstrip("/"),
        str(escape_dir / "absolute.txt"),
        "..\\..\\..\\escaped\\backslash.txt",
        "%2e%2e%2f%2e%2e%2fencoded.txt",
    ]

    with httpx.Client(base_url=app.url, timeout=10) as client:
        files = [("files", (name, f"uploaded {index}".encode(), "text/plain")) for index, name in enumerate(filenames)]
        response = client.post("/gradio_api/upload", files=files)
        stored = [Path(path) for path in response.json()] if response.status_code == 200 else []

        # Whatever the server stored sits inside its upload directory and nowhere else.
        assert list(escape_dir.iterdir()) == []
        assert not list(app.workdir.rglob("*.txt"))
        for path in stored:
            assert path.resolve().is_relative_to(app.upload_dir.resolve()), path

        # An uploaded file comes back from the upload directory, so the check above matters.
        if stored:
            echoed = client.get(f"/gradio_api/file={stored[0]}")
            assert echoed.status_code == 200
            assert echoed.content == b"uploaded 0"


class _SecretHandler(BaseHTTPRequestHandler):
    marker = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(self.marker)))
        self.end_headers()
        self.wfile.write(self.marker)

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_file_route_does_not_fetch_local_urls(app: LaunchedApp) -> None:
    # A service on the machine's loopback that only local programs should reach.
    marker = f"internal-only-{uuid.uuid4().hex}".encode()
    handler = type("Handler", (_SecretHandler,), {"marker": marker})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        with httpx.Client(base_url=app.url, timeout=10) as client:
            for url in (
                f"http://127.0.0.1:{port}/secret.txt",
                f"http://localhost:{port}/secret.txt",
                f"http://[::ffff:127.0.0.1]:{port}/secret.txt",
            ):
                for prefix in ("/gradio_api/file=", "/gradio_api/proxy="):
                    response = client.get(prefix + url)
                    assert marker not in response.content, f"{prefix}{url} -> {response.status_code}"
    finally:
        server.shutdown()
        server.server_close()


def test_config_names_no_private_paths(app: LaunchedApp) -> None:
    # The page config goes to every visitor; it must not reveal where the data lives.
    with httpx.Client(base_url=app.url, timeout=10) as client:
        config = client.get("/config").text

    assert str(app.workdir) not in config
    for target in app.targets:
        assert target.marker.decode("utf-8", "replace") not in config
    json.loads(config)
