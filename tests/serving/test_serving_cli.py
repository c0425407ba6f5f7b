"""`veraclaim-serve` run as operators run it: the installed console script in a subprocess."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from serving.client import ChatClient
from serving.local_server import live_group_members

CLI = str(Path(sys.executable).with_name("veraclaim-serve"))


def cli_env(**overrides: str) -> dict[str, str]:
    """Return the environment without VERACLAIM_* variables, plus `overrides`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("VERACLAIM_")}
    env.update(HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", **overrides)
    return env


def run_cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    # cwd is a temp folder, so no .env file of the repository is loaded.
    return subprocess.run(
        [CLI, *args], cwd=cwd, env=env or cli_env(), capture_output=True, text=True, timeout=300
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_chat_streams_answer_from_discovered_model(fake_tgi, tmp_path: Path) -> None:
    fake_tgi.queue(deltas=["청구항은 ", "권리범위를 ", "정합니다."])

    result = run_cli("chat", "청구항이란?", "--base-url", fake_tgi.base_url, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "청구항은 권리범위를 정합니다.\n"
    # No --model and no VERACLAIM_MODEL_ID, so the id came from /v1/models.
    assert fake_tgi.requests[-1].body["model"] == fake_tgi.model_id


def test_chat_reads_settings_from_environment(fake_tgi, tmp_path: Path) -> None:
    fake_tgi.queue(deltas=["ok"])
    env = cli_env(VERACLAIM_MODEL_BASE_URL=fake_tgi.base_url, VERACLAIM_MODEL_ID="my-model")

    result = run_cli("chat", "hi", "--system", "Answer briefly.", "--max-tokens", "7", cwd=tmp_path, env=env)

    assert result.returncode == 0, result.stderr
    body = fake_tgi.requests[-1].body
    assert body["model"] == "my-model"
    assert body["max_tokens"] == 7
    assert body["messages"][0] == {"role": "system", "content": "Answer briefly."}


def test_chat_without_server_names_the_fix(tmp_path: Path) -> None:
    result = run_cli("chat", "hi", cwd=tmp_path)

    assert result.returncode == 1
    assert "veraclaim-serve local" in result.stderr
    assert "VERACLAIM_MODEL_BASE_URL" in result.stderr
    assert "Traceback" not in result.stderr


def test_chat_debug_flag_shows_traceback(tmp_path: Path) -> None:
    result = run_cli("--debug", "chat", "hi", cwd=tmp_path)

    assert result.returncode == 1
    assert "Traceback" in result.stderr


def test_chat_on_closed_port_names_url(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    # A short retry deadline: the client retries a refused connection until then.
    env = cli_env(VERACLAIM_MODEL_RETRY_DEADLINE_S="1")

    result = run_cli("chat", "hi", "--base-url", url, "--model", "m", cwd=tmp_path, env=env)

    assert result.returncode == 1
    assert url in result.stderr
    assert "unreachable" in result.stderr


def test_chat_stream_error_keeps_partial_answer(fake_tgi, tmp_path: Path) -> None:
    fake_tgi.queue(deltas=["half an "], error_event={"error": "shard died", "error_type": "incomplete_generation"})

    result = run_cli("chat", "hi", "--base-url", fake_tgi.base_url, "--model", "m", cwd=tmp_path)

    assert result.returncode == 1
    assert result.stdout.startswith("half an ")
    assert "shard died" in result.stderr


@pytest.mark.slow
def test_prepare_model_prints_cached_folder(local_model_dir: Path, tmp_path: Path) -> None:
    env = cli_env(VERACLAIM_MODEL_CACHE=str(local_model_dir.parent))

    result = run_cli("prepare-model", cwd=tmp_path, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(local_model_dir)


@pytest.mark.slow
def test_local_serves_until_sigint(local_model_dir: Path, tmp_path: Path) -> None:
    port = free_port()
    stdout_path = tmp_path / "stdout.txt"
    env = cli_env(VERACLAIM_MODEL_CACHE=str(local_model_dir.parent))

    with stdout_path.open("w") as stdout:
        process = subprocess.Popen(
            [CLI, "local", "--port", str(port), "--log-file", str(tmp_path / "server.log")],
            cwd=tmp_path,
            env=env,
            stdout=stdout,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        # 1. Wait for the ready message, which names the base URL and the model id.
        deadline = time.monotonic() + 300
        while "Press Ctrl-C" not in stdout_path.read_text() and process.poll() is None:
            assert time.monotonic() < deadline, stdout_path.read_text()
            time.sleep(0.5)
        output = stdout_path.read_text()
        assert process.poll() is None, output
        server_pid = int(re.search(r"started transformers serve \(pid (\d+)\)", output).group(1))
        base_url = re.search(r"base URL: (\S+)", output).group(1)
        model_id = re.search(r"model id: (\S+)", output).group(1)
        assert base_url == f"http://127.0.0.1:{port}/v1"
        assert model_id == str(local_model_dir)

        # 2. The printed values are what a client needs.
        assert ChatClient(base_url, model_id).complete_chat([{"role": "user", "content": "Hi"}], max_tokens=5)

        # 3. Ctrl-C stops the CLI and the server with it.
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert "stopping the model server" in stdout_path.read_text()
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    # The server ran in a process group of its own, led by its pid.
    assert live_group_members(server_pid) == []


def test_chat_thinking_splits_streams(fake_tgi, tmp_path: Path) -> None:
    fake_tgi.queue(deltas=["<think>", "\n생각 중", "</think>", "\n\n", "답입니다."])

    result = run_cli(
        "chat", "질문", "--base-url", fake_tgi.base_url, "--thinking", "--show-reasoning", cwd=tmp_path
    )

    assert result.returncode == 0, result.stderr
    assert result.stdout == "답입니다.\n"
    assert "생각 중" in result.stderr
    body = fake_tgi.chat_requests()[-1].body
    assert body["messages"][-1]["content"] == "질문 /think"
    assert body["temperature"] == 0.6


def test_chat_shows_retry_status(fake_tgi, tmp_path: Path) -> None:
    fake_tgi.queue(status=503, body="no healthy upstream")
    fake_tgi.queue(deltas=["ok"])
    env = cli_env(VERACLAIM_MODEL_RETRY_DEADLINE_S="10")

    result = run_cli("chat", "hi", "--base-url", fake_tgi.base_url, "--no-thinking", cwd=tmp_path, env=env)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"
    assert "retrying in" in result.stderr
    assert fake_tgi.chat_requests()[-1].body["messages"][-1]["content"] == "hi /no_think"
