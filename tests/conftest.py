"""Session fixtures shared by every test package: the real local model and its server.

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

from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

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
