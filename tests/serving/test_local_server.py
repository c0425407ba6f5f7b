"""LocalServer: start, health wait, model id, failures with the log tail, and clean stops."""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

import pytest

from serving.errors import LocalServerError, LocalServerModelNotFound, LocalServerTimeout
from serving.local_server import LocalServer, live_group_members, read_log_tail


def port_is_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(1)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_missing_model_folder_raises_at_once(tmp_path: Path) -> None:
    with pytest.raises(LocalServerModelNotFound) as caught:
        LocalServer(tmp_path / "no-such-model")

    assert isinstance(caught.value, FileNotFoundError)
    assert "no-such-model" in str(caught.value)
    assert "veraclaim-serve prepare-model" in str(caught.value)


def test_invalid_reasoning_mode_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="reasoning"):
        LocalServer(tmp_path, reasoning="maybe")


def test_reasoning_mode_reaches_command_line(tmp_path: Path) -> None:
    server = LocalServer(tmp_path, port=8123, reasoning="off")

    command = server.command()

    assert command[command.index("--reasoning") + 1] == "off"
    assert command[command.index("--host") + 1] == "127.0.0.1"
    assert command[command.index("--port") + 1] == "8123"
    assert str(tmp_path.resolve()) in command


def test_folder_without_model_fails_fast_with_log_tail(tmp_path: Path) -> None:
    empty = tmp_path / "empty-model"
    empty.mkdir()
    log_path = tmp_path / "server.log"
    server = LocalServer(empty, log_path=log_path)

    started = time.monotonic()
    with server, pytest.raises(LocalServerError) as caught:
        server.wait_ready(timeout=180)
    elapsed = time.monotonic() - started

    # The server exits within seconds. The wait must notice, not run into its timeout.
    assert elapsed < 60
    assert not isinstance(caught.value, LocalServerTimeout)
    assert "exited with code" in str(caught.value)
    assert "config.json" in caught.value.log_tail
    assert str(log_path) in str(caught.value)
    assert log_path.is_file()


def test_busy_port_is_rejected_before_start(tmp_path: Path) -> None:
    # A listening socket stands in for another server that would answer /health.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as occupant:
        occupant.bind(("127.0.0.1", 0))
        occupant.listen()
        busy_port = occupant.getsockname()[1]
        server = LocalServer(tmp_path, port=busy_port, log_path=tmp_path / "server.log")

        with pytest.raises(LocalServerError) as caught:
            server.start()

    assert f"port {busy_port}" in str(caught.value)
    assert "choose another port" in str(caught.value)
    assert server.pid is None


@pytest.mark.slow
def test_wait_ready_timeout_stops_server(local_model_dir: Path, tmp_path: Path) -> None:
    server = LocalServer(local_model_dir, log_path=tmp_path / "server.log")
    server.start()
    pgid = server.pid

    with pytest.raises(LocalServerTimeout) as caught:
        server.wait_ready(timeout=0.5)

    assert isinstance(caught.value, TimeoutError)
    assert "not healthy" in str(caught.value)
    assert live_group_members(pgid) == []
    # The error points to the log, so the log is kept.
    assert (tmp_path / "server.log").is_file()


@pytest.mark.slow
def test_ready_server_reports_health_and_model_id(local_model_server: LocalServer, local_model_dir: Path) -> None:
    with urllib.request.urlopen(f"{local_model_server.root_url}/health", timeout=5) as response:
        assert response.status == 200

    assert local_model_server.model_id == str(local_model_dir.resolve())
    assert local_model_server.base_url == f"http://127.0.0.1:{local_model_server.port}/v1"


@pytest.mark.slow
def test_stop_ends_process_group_and_frees_port(local_model_dir: Path, tmp_path: Path) -> None:
    log_path = tmp_path / "server.log"
    with LocalServer(local_model_dir, log_path=log_path) as server:
        server.wait_ready(timeout=300)
        pgid = server.pid
        port = server.port
        assert port_is_open(port)

    # The engine runs in a child process of the server, in the same process group. Zombies
    # that init has not reaped yet do not count.
    assert live_group_members(pgid) == []
    assert not port_is_open(port)
    # A log that the caller named is kept.
    assert "Uvicorn running" in read_log_tail(log_path, lines=200)


def test_model_id_and_reasoning_pass_through() -> None:
    # A hub model id is served as given (with HF_HUB_OFFLINE=0 and network access), not as a path.
    server = LocalServer("Qwen/Qwen3-0.6B", port=8123, reasoning="on")

    command = server.command()

    assert command[command.index("serve") + 1] == "Qwen/Qwen3-0.6B"
    assert command[command.index("--reasoning") + 1] == "on"
