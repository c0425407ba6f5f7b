"""Measure the time to first token through ChatClient against a direct SSE call to the same engine.

Both paths send the same greedy chat request to the same server in one run, alternating,
and the first token is the first non-empty answer text. The direct path is a plain `requests`
session with its own SSE loop, so the difference of the medians is what the client adds (request
building, huggingface_hub's session, SSE parsing, the think-block parser).

Engines: `--engine local` starts `transformers serve` with the local SmolLM2 model (the
real path, whose time to first token varies with the machine's load); `--engine stub` starts
an SSE server in this process that answers at once like TGI, so the difference is the
client's own cost; `--base-url` measures any running server.

    python scripts/bench_client.py --engine stub --runs 200
    python scripts/bench_client.py --engine local --runs 30
    python scripts/bench_client.py --base-url http://127.0.0.1:8000/v1 --model <id> --runs 30
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")

import requests  # noqa: E402

from serving.client import ChatClient  # noqa: E402

MESSAGES = [{"role": "user", "content": "What is a patent claim? Answer in one sentence."}]
MAX_TOKENS = 8


STUB_DELTAS = ["A", " patent", " claim", " defines", " the", " scope", " of", " protection."]


def _stub_chunk(content: str, finish_reason: str | None = None) -> bytes:
    choice = {"index": 0, "delta": {"role": "assistant", "content": content}, "finish_reason": finish_reason}
    payload = {"id": "", "created": 0, "model": "stub", "system_fingerprint": "stub", "choices": [choice]}
    data = f"data: {json.dumps(payload)}\n\n".encode()
    return b"%x\r\n%s\r\n" % (len(data), data)


class _StubHandler(BaseHTTPRequestHandler):
    # Streams a TGI-shaped answer at once, chunked over HTTP/1.1 as TGI does.
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        # No Nagle delay on the small SSE writes, as uvicorn and TGI's server send them.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        for delta in STUB_DELTAS:
            self.wfile.write(_stub_chunk(delta))
            self.wfile.flush()
        self.wfile.write(_stub_chunk("", "stop"))
        done = b"data: [DONE]\n\n"
        self.wfile.write(b"%x\r\n%s\r\n0\r\n\r\n" % (len(done), done))
        self.wfile.flush()


@contextmanager
def stub_engine() -> Iterator[str]:
    """Run the stub SSE server on a free 127.0.0.1 port and yield its base URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _StubHandler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    finally:
        server.shutdown()
        server.server_close()


def first_token_direct(http: requests.Session, url: str, model: str) -> float:
    """Return the seconds from sending the request to the first answer text, with plain requests."""
    body = {"model": model, "messages": MESSAGES, "stream": True, "max_tokens": MAX_TOKENS, "temperature": 0}
    started = time.perf_counter()
    first = None
    with http.post(url, json=body, stream=True, timeout=120) as response:
        response.raise_for_status()
        for line in response.iter_lines(decode_unicode=True):
            if not line.startswith("data:") or line.endswith("[DONE]"):
                continue
            choices = json.loads(line[5:]).get("choices") or []
            content = choices[0].get("delta", {}).get("content") if choices else None
            if content and first is None:
                first = time.perf_counter() - started
    if first is None:
        raise RuntimeError("the direct stream carried no answer text")
    return first


def first_token_client(client: ChatClient) -> float:
    """Return the seconds from calling stream_events to the first answer event."""
    started = time.perf_counter()
    first = None
    for event in client.stream_events(MESSAGES, max_tokens=MAX_TOKENS, temperature=0):
        if event.kind == "answer" and first is None:
            first = time.perf_counter() - started
    if first is None:
        raise RuntimeError("the client stream carried no answer text")
    return first


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine", choices=("local", "stub"), default="local", help="Engine to start (see above).")
    parser.add_argument("--base-url", help="OpenAI-compatible base URL of a running server, instead of --engine.")
    parser.add_argument("--model", help="Model id the server expects. Default: the started server's id.")
    parser.add_argument("--runs", type=int, default=30, help="Measured requests per path.")
    parser.add_argument("--warmup", type=int, default=3, help="Unmeasured requests per path first.")
    args = parser.parse_args()

    with ExitStack() as stack:
        base_url, model = args.base_url, args.model
        if base_url is None and args.engine == "stub":
            base_url, model = stack.enter_context(stub_engine()), "stub"
        elif base_url is None:
            from serving.local_model import prepare_local_model
            from serving.local_server import LocalServer

            server = stack.enter_context(LocalServer(prepare_local_model()))
            server.wait_ready(300)
            base_url, model = server.base_url, server.model_id
        if not model:
            parser.error("--model is required with --base-url")

        client = ChatClient(base_url, model, timeout=120)
        http = stack.enter_context(requests.Session())
        url = f"{base_url.rstrip('/')}/chat/completions"

        for _ in range(args.warmup):
            first_token_direct(http, url, model)
            first_token_client(client)

        # Alternate the two paths, so a drift of the machine's load hits both alike.
        direct, through_client = [], []
        for _ in range(args.runs):
            direct.append(first_token_direct(http, url, model))
            through_client.append(first_token_client(client))

    paired = [c - d for c, d in zip(through_client, direct, strict=True)]
    report = {
        "engine": args.engine if args.base_url is None else "external",
        "base_url": base_url,
        "model": model,
        "runs_per_path": args.runs,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "median_direct_ms": round(statistics.median(direct) * 1000, 1),
        "median_client_ms": round(statistics.median(through_client) * 1000, 1),
        "median_added_ms": round((statistics.median(through_client) - statistics.median(direct)) * 1000, 1),
        "median_paired_difference_ms": round(statistics.median(paired) * 1000, 1),
        "ratio_client_to_direct": round(statistics.median(through_client) / statistics.median(direct), 3),
    }
    json.dump(report, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
