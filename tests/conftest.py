"""Fixtures shared by every test package: the real local model and its server, and a fake TGI.

The model folder is cached in the model cache
(VERACLAIM_MODEL_CACHE, by default ~/.cache/veraclaim/models), so only the first run on a
machine pays the conversion of about 20 s. Starting the server takes about 10 s more.
"""

from __future__ import annotations

import os

# Set before huggingface_hub is imported, because it reads them once at import. The chat app
# sets the same variables, so the client is tested under the offline mode it runs in.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("HF_HUB_DISABLE_UPDATE_CHECK", "1")
os.environ.setdefault("DO_NOT_TRACK", "1")

import json  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import jsonschema  # noqa: E402
import pytest  # noqa: E402

from serving.local_model import prepare_local_model  # noqa: E402
from serving.local_server import LocalServer  # noqa: E402

# Seconds that the session waits for the server. Start-up takes about 10 s on 2 CPU cores,
# and the margin covers a machine that is busy with other tests.
LOCAL_SERVER_READY_TIMEOUT_S = 300


@pytest.fixture(scope="session")
def local_model_dir() -> Path:
    """Path of the converted SmolLM2-135M-Instruct folder in the model cache."""
    return prepare_local_model()


@pytest.fixture(scope="session")
def local_model_server(local_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    """A ready `transformers serve` on a free 127.0.0.1 port, shared by the whole session."""
    log_path = tmp_path_factory.mktemp("local-model-server") / "transformers-serve.log"
    server = LocalServer(local_model_dir, host="127.0.0.1", log_path=log_path)
    server.start()
    try:
        server.wait_ready(timeout=LOCAL_SERVER_READY_TIMEOUT_S)
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The index of every committed sample PDF, built once per session (a few minutes on 2 cores).

    The chat tests and the retrieval evaluation share it, so tests must not write to it.
    """
    from index_builder.build import build_index

    samples = Path(__file__).resolve().parents[1] / "data" / "samples"
    out = tmp_path_factory.mktemp("sample-index") / "index"
    build_index(str(samples), out, progress=False)
    return out

# ---------------------------------------------------------------------------------------
# The fake TGI server: a real HTTP server on 127.0.0.1 that follows TGI's OpenAPI spec.
#
# It responds like TGI 3.3.6. Its response shapes follow TGI's OpenAPI spec
# (serving/tgi-openapi.json, TGI version 3.3.6-dev0), and the `fake_tgi` fixture validates every JSON
# payload that the fake sent against that spec when the test ends. Move the spec along with
# this code. Routes: POST /v1/chat/completions, GET /v1/models, /health and /info, POST
# /tokenize and /chat_tokenize.
#
# Its tokenizer counts one token per character of the text that its chat template renders.
# That is not Qwen3's tokenizer, but /chat_tokenize, /tokenize and the chat route's limit
# check all use it, as TGI uses one tokenizer for all three.

TGI_SPEC_PATH = Path(__file__).parent / "serving" / "tgi-openapi.json"
FAKE_MODEL_ID = "Qwen/Qwen3-8B"


@dataclass
class FakeReply:
    """The fake's reply to the next POST /v1/chat/completions.

    A 200 reply streams `deltas` as ChatCompletionChunk events, then `error_event` if set,
    then the final chunk with `finish_reason` (and usage, if the request asked for it) and
    `data: [DONE]`. `stall_s` pauses after the deltas, sending an SSE keep-alive comment
    every `keepalive_s` seconds during the pause if set, as TGI does every 15 s. `drop`
    closes the connection after the deltas without ending the chunked body, and
    `raw_events` are sent verbatim after the deltas. Another status sends `body` as JSON
    (or text, if `body` is a string).
    """

    status: int = 200
    deltas: list[str] = field(default_factory=list)
    error_event: dict[str, str] | None = None
    finish_reason: str | None = "stop"
    raw_events: list[str] = field(default_factory=list)
    stall_s: float = 0.0
    keepalive_s: float = 0.0
    drop: bool = False
    body: dict[str, Any] | str | None = None


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class SentPayload:
    schema: str
    payload: Any


def render_chat_template(messages: list[dict[str, Any]]) -> str:
    """Render messages in Qwen3's ChatML layout, with the assistant's turn opened."""
    parts = [f"<|im_start|>{message['role']}\n{message.get('content') or ''}<|im_end|>\n" for message in messages]
    return "".join(parts) + "<|im_start|>assistant\n"


def tokenize(text: str) -> list[dict[str, Any]]:
    """The fake's tokenizer: one SimpleToken per character, with character offsets."""
    return [{"id": ord(char), "text": char, "start": index, "stop": index + 1} for index, char in enumerate(text)]


class QuietHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that ignores clients which reset their connection.

    The client closes pooled connections and abandoned streams, and the standard server
    would print a traceback for each of them.
    """

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            return
        super().handle_error(request, client_address)


class FakeTGI:
    """A TGI-like server on a free (or given) 127.0.0.1 port."""

    model_id = FAKE_MODEL_ID

    def __init__(self, port: int = 0) -> None:
        self.replies: list[FakeReply] = []
        self.requests: list[RecordedRequest] = []
        self.sent: list[SentPayload] = []
        self.models_response: dict[str, Any] = {
            "id": FAKE_MODEL_ID,
            "object": "model",
            "created": 1706270978,
            "owned_by": "Qwen",
        }
        # Limits reported by /info and enforced by the chat route.
        self.max_input_tokens = 4095
        self.max_total_tokens = 4096
        # False makes GET /info a 404, as on servers other than TGI.
        self.serves_info = True
        # Statuses that GET /health returns, one per probe; the last one repeats.
        self.health_statuses: list[int] = [200]
        self._server = QuietHTTPServer(("127.0.0.1", port), _handler_for(self))
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def root_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def queue(self, **reply_fields: Any) -> None:
        """Queue the reply to the next chat request. Fields are those of `FakeReply`."""
        self.replies.append(FakeReply(**reply_fields))

    def chat_requests(self) -> list[RecordedRequest]:
        return [request for request in self.requests if request.path == "/v1/chat/completions"]

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def next_health_status(self) -> int:
        return self.health_statuses.pop(0) if len(self.health_statuses) > 1 else self.health_statuses[0]

    def info(self) -> dict[str, Any]:
        return {
            "model_id": FAKE_MODEL_ID,
            "model_sha": "b968826d9c46dd6066d109eabc6255188de91218",
            "model_pipeline_tag": "text-generation",
            "max_concurrent_requests": 128,
            "max_best_of": 2,
            "max_stop_sequences": 4,
            "max_input_tokens": self.max_input_tokens,
            "max_total_tokens": self.max_total_tokens,
            "validation_workers": 2,
            "max_client_batch_size": 4,
            "router": "text-generation-router",
            "version": "3.3.6",
            "sha": None,
            "docker_label": None,
        }

    def limit_error(self, body: dict[str, Any]) -> str | None:
        """Return TGI's validation message if the request exceeds the token limits."""
        input_tokens = len(render_chat_template(body.get("messages") or []))
        max_new_tokens = body.get("max_tokens") or 1024
        if input_tokens > self.max_input_tokens:
            return (
                f"Input validation error: `inputs` must have less than {self.max_input_tokens} tokens. "
                f"Given: {input_tokens}"
            )
        if input_tokens + max_new_tokens > self.max_total_tokens:
            return (
                f"Input validation error: `inputs` tokens + `max_new_tokens` must be <= {self.max_total_tokens}. "
                f"Given: {input_tokens} `inputs` tokens and {max_new_tokens} `max_new_tokens`"
            )
        return None

    def chunk(
        self, content: str, finish_reason: str | None = None, usage: dict[str, int] | None = None
    ) -> dict[str, Any]:
        # Field for field what TGI 3.3 streams: TextMessage deltas carry role and content,
        # and the last chunk carries usage when the request set stream_options.include_usage.
        return {
            "id": "",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": FAKE_MODEL_ID,
            "system_fingerprint": "3.3.6-dev0-native",
            "choices": [
                {
                    "index": 0,
                    "delta": {"role": "assistant", "content": content},
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
            "usage": usage,
        }


def _handler_for(fake: FakeTGI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.1 with chunked bodies, as TGI streams. A dropped stream then ends without
        # the terminating chunk, which a client can tell apart from a finished one.
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            self._record(None)
            if self.path == "/v1/models":
                self._send_json(200, fake.models_response, schema="ModelInfo")
            elif self.path == "/info" and fake.serves_info:
                self._send_json(200, fake.info(), schema="Info")
            elif self.path == "/health":
                status = fake.next_health_status()
                if status == 200:
                    self._send_empty(200)
                elif status == 503:
                    self._send_json(503, {"error": "unhealthy", "error_type": "healthcheck"}, "ErrorResponse")
                else:
                    # What RunPod's proxy sends while the pod's port is not listening yet.
                    self._send_text(status, "Bad Gateway")
            else:
                self._not_found()

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"null")
            self._record(body)
            if self.path == "/v1/chat/completions":
                self._chat(body)
            elif self.path == "/chat_tokenize":
                templated = render_chat_template(body["messages"])
                payload = {"tokenize_response": tokenize(templated), "templated_text": templated}
                self._send_json(200, payload, schema="ChatTokenizeResponse")
            elif self.path == "/tokenize":
                self._send_json(200, tokenize(body["inputs"]), schema="TokenizeResponse")
            else:
                self._not_found()

        def _chat(self, body: dict[str, Any]) -> None:
            reply = fake.replies.pop(0) if fake.replies else FakeReply(deltas=["ok"])
            if reply.status != 200:
                self._send_error_reply(reply)
                return
            # TGI validates a streamed request inside the stream, so a prompt over the limits
            # becomes an error event in a 200 response.
            limit_error = fake.limit_error(body)
            if limit_error is not None:
                reply = FakeReply(error_event={"error": limit_error, "error_type": "validation"})
            include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
            usage = None
            if include_usage:
                prompt_tokens = len(render_chat_template(body.get("messages") or []))
                completion_tokens = len(reply.deltas) + 1
                usage = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                }
            self._stream(reply, usage)

        def _record(self, body: Any) -> None:
            headers = {key.lower(): value for key, value in self.headers.items()}
            fake.requests.append(RecordedRequest(self.command, self.path, headers, body))

        def _not_found(self) -> None:
            self._send_json(404, {"error": f"no route {self.path}", "error_type": "not_found"}, "ErrorResponse")

        def _send_json(self, status: int, payload: Any, schema: str) -> None:
            fake.sent.append(SentPayload(schema, payload))
            data = json.dumps(payload, ensure_ascii=False).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send_text(self, status: int, text: str) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send_empty(self, status: int) -> None:
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def _send_error_reply(self, reply: FakeReply) -> None:
            if isinstance(reply.body, dict):
                self._send_json(reply.status, reply.body, schema="ErrorResponse")
            else:
                self._send_text(reply.status, reply.body or "")

        def _stream(self, reply: FakeReply, usage: dict[str, int] | None) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for delta in reply.deltas:
                    self._event(fake.chunk(delta), schema="ChatCompletionChunk")
                self._pause(reply)
                if reply.drop:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                for raw in reply.raw_events:
                    self._write_chunk(raw.encode())
                if reply.error_event is not None:
                    self._event(reply.error_event, schema="ErrorResponse")
                elif reply.finish_reason is not None:
                    self._event(fake.chunk("", reply.finish_reason, usage), schema="ChatCompletionChunk")
                self._write_chunk(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up first, as the timeout tests make it.
                pass

        def _pause(self, reply: FakeReply) -> None:
            deadline = time.monotonic() + reply.stall_s
            while time.monotonic() < deadline:
                step = min(reply.keepalive_s or reply.stall_s, deadline - time.monotonic())
                time.sleep(max(step, 0))
                if reply.keepalive_s and time.monotonic() < deadline:
                    # axum's default keep-alive: an empty comment line, then a blank line.
                    self._write_chunk(b":\n\n")

        def _event(self, payload: dict[str, Any], schema: str) -> None:
            fake.sent.append(SentPayload(schema, payload))
            self._write_chunk(f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode())

        def _write_chunk(self, data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    return Handler


def _openapi_to_json_schema(node: Any) -> Any:
    """Rewrite OpenAPI 3.0's `nullable: true` into JSON Schema, which has no such keyword."""
    if isinstance(node, list):
        return [_openapi_to_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    converted = {key: _openapi_to_json_schema(value) for key, value in node.items() if key != "nullable"}
    if not node.get("nullable"):
        return converted
    if "type" in converted:
        converted["type"] = [converted["type"], "null"]
        return converted
    return {"anyOf": [converted, {"type": "null"}]}


@pytest.fixture(scope="session")
def tgi_spec_validators() -> dict[str, jsonschema.protocols.Validator]:
    """JSON Schema validators for TGI's response schemas, by schema name."""
    spec = json.loads(TGI_SPEC_PATH.read_text(encoding="utf-8"))
    components = _openapi_to_json_schema(spec["components"])
    names = ("ChatCompletionChunk", "ErrorResponse", "ModelInfo", "Info", "TokenizeResponse", "ChatTokenizeResponse")
    return {
        name: jsonschema.Draft7Validator({"$ref": f"#/components/schemas/{name}", "components": components})
        for name in names
    }


@pytest.fixture
def fake_tgi(tgi_spec_validators: dict[str, jsonschema.protocols.Validator]) -> Iterator[FakeTGI]:
    """A running fake TGI server. At teardown, every payload it sent must match TGI's spec."""
    fake = FakeTGI()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
    for sent in fake.sent:
        tgi_spec_validators[sent.schema].validate(sent.payload)


@pytest.fixture
def unstarted_fake_tgi(tgi_spec_validators: dict[str, jsonschema.protocols.Validator]) -> Iterator[Callable[[int], FakeTGI]]:
    """A factory of fake TGI servers on a given port, for tests that start them late.

    At teardown every server is stopped, and its payloads must match TGI's spec.
    """
    created: list[FakeTGI] = []

    def make(port: int) -> FakeTGI:
        fake = FakeTGI(port)
        created.append(fake)
        return fake

    yield make
    for fake in created:
        fake.stop()
        for sent in fake.sent:
            tgi_spec_validators[sent.schema].validate(sent.payload)
