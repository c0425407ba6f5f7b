"""The fake TGI server: a real HTTP server on 127.0.0.1 that follows TGI's OpenAPI spec."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

# ---------------------------------------------------------------------------------------
# A fake TGI server: a real HTTP server on 127.0.0.1 that responds like TGI 3.3.6.
#
# Its response shapes follow TGI's OpenAPI spec (tgi-openapi.json next to this file, TGI
# version 3.3.6-dev0), and the `fake_tgi` fixture validates every JSON payload that the
# fake sent against that spec when the test ends. Move the spec along with this code.
# ---------------------------------------------------------------------------------------

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jsonschema

TGI_SPEC_PATH = Path(__file__).with_name("tgi-openapi.json")
FAKE_MODEL_ID = "Qwen/Qwen3-8B"


@dataclass
class FakeReply:
    """The fake's reply to the next POST /v1/chat/completions.

    A 200 reply streams `deltas` as ChatCompletionChunk events, then `error_event` if set,
    then the final chunk with `finish_reason` and `data: [DONE]`. `stall_s` pauses after
    the deltas, `drop` closes the connection after the deltas without ending the chunked
    body, and `raw_events` are sent verbatim after the deltas. Another status sends `body`
    as JSON (or text, if `body` is a string).
    """

    status: int = 200
    deltas: list[str] = field(default_factory=list)
    error_event: dict[str, str] | None = None
    finish_reason: str | None = "stop"
    raw_events: list[str] = field(default_factory=list)
    stall_s: float = 0.0
    drop: bool = False
    body: dict[str, Any] | str | None = None


@dataclass
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any] | None


@dataclass
class SentPayload:
    schema: str
    payload: dict[str, Any]


class FakeTGI:
    """A TGI-like server for /v1/chat/completions and /v1/models on a free 127.0.0.1 port."""

    model_id = FAKE_MODEL_ID

    def __init__(self) -> None:
        self.replies: list[FakeReply] = []
        self.requests: list[RecordedRequest] = []
        self.sent: list[SentPayload] = []
        self.models_response: dict[str, Any] = {
            "id": FAKE_MODEL_ID,
            "object": "model",
            "created": 1706270978,
            "owned_by": "Qwen",
        }
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def queue(self, **reply_fields: Any) -> None:
        """Queue the reply to the next chat request. Fields are those of `FakeReply`."""
        self.replies.append(FakeReply(**reply_fields))

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def chunk(self, content: str, finish_reason: str | None = None) -> dict[str, Any]:
        # Field for field what TGI 3.3 streams: TextMessage deltas carry role and content.
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
            "usage": None,
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
            else:
                self._send_json(404, {"error": f"no route {self.path}", "error_type": "not_found"}, "ErrorResponse")

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length) or b"null")
            self._record(body)
            if self.path != "/v1/chat/completions":
                self._send_json(404, {"error": f"no route {self.path}", "error_type": "not_found"}, "ErrorResponse")
                return
            reply = fake.replies.pop(0) if fake.replies else FakeReply(deltas=["ok"])
            if reply.status != 200:
                self._send_error_reply(reply)
            else:
                self._stream(reply)

        def _record(self, body: dict[str, Any] | None) -> None:
            headers = {key.lower(): value for key, value in self.headers.items()}
            fake.requests.append(RecordedRequest(self.command, self.path, headers, body))

        def _send_json(self, status: int, payload: dict[str, Any], schema: str) -> None:
            fake.sent.append(SentPayload(schema, payload))
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _send_error_reply(self, reply: FakeReply) -> None:
            if isinstance(reply.body, dict):
                self._send_json(reply.status, reply.body, schema="ErrorResponse")
                return
            data = (reply.body or "").encode()
            self.send_response(reply.status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _stream(self, reply: FakeReply) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            try:
                for delta in reply.deltas:
                    self._event(fake.chunk(delta), schema="ChatCompletionChunk")
                if reply.stall_s:
                    time.sleep(reply.stall_s)
                if reply.drop:
                    self.connection.shutdown(socket.SHUT_RDWR)
                    return
                for raw in reply.raw_events:
                    self._write_chunk(raw.encode())
                if reply.error_event is not None:
                    self._event(reply.error_event, schema="ErrorResponse")
                elif reply.finish_reason is not None:
                    self._event(fake.chunk("", reply.finish_reason), schema="ChatCompletionChunk")
                self._write_chunk(b"data: [DONE]\n\n")
                self.wfile.write(b"0\r\n\r\n")
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up first, as the timeout tests make it.
                pass

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
    names = ("ChatCompletionChunk", "ErrorResponse", "ModelInfo")
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
