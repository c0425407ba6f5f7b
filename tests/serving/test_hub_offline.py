"""With HF_HUB_OFFLINE=1 the client still reaches its model server, and the Hub stays blocked.

huggingface_hub reads HF_HUB_OFFLINE once at import, so each case runs in a fresh Python
process. The Hub request in the script never leaves the machine: huggingface_hub's request
hook raises before it opens a connection.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from serving.hub_offline import origin_of

OFFLINE_SCRIPT = textwrap.dedent(
    """
    import sys

    from huggingface_hub import InferenceClient
    from huggingface_hub.errors import OfflineModeIsEnabled
    from huggingface_hub.utils import get_session

    from serving.client import ChatClient

    base_url = sys.argv[1]
    messages = [{"role": "user", "content": "hi"}]

    # 1. Plain InferenceClient: offline mode blocks even a server on 127.0.0.1.
    try:
        InferenceClient(base_url=base_url).chat_completion(messages, model="m", stream=False)
        print("plain client: reached")
    except OfflineModeIsEnabled:
        print("plain client: blocked")

    # 2. ChatClient allows its own server.
    print("chat client:", ChatClient(base_url, "m").complete_chat(messages))

    # 3. Other hosts stay blocked.
    try:
        get_session().get("https://huggingface.co/api/models/gpt2", timeout=1)
        print("hub: reached")
    except OfflineModeIsEnabled:
        print("hub: blocked")
    """
)


def test_offline_mode_allows_only_model_server(fake_tgi) -> None:
    fake_tgi.queue(deltas=["hello ", "offline"])
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}

    result = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT, fake_tgi.base_url],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "plain client: blocked" in lines
    assert "chat client: hello offline" in lines
    assert "hub: blocked" in lines
    # Only ChatClient's request reached the fake.
    assert len(fake_tgi.requests) == 1


# Each row: a URL and its origin.
ORIGINS = [
    # Explicit port and path.
    ("http://127.0.0.1:8000/v1", ("http", "127.0.0.1", 8000)),
    # Default HTTPS port, upper-case host.
    ("https://ABC-8080.proxy.runpod.net/v1", ("https", "abc-8080.proxy.runpod.net", 443)),
    # Default HTTP port.
    ("http://localhost/v1/chat/completions", ("http", "localhost", 80)),
    # IPv6 literal.
    ("http://[::1]:9000/v1", ("http", "::1", 9000)),
]


@pytest.mark.parametrize(("url", "origin"), ORIGINS)
def test_origin_of_url(url: str, origin: tuple[str, str, int]) -> None:
    assert origin_of(url) == origin
