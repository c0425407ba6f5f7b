"""`veraclaim-chat` reports bad settings as one clear line and exit code 2, not a traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from chat_ui.cli import app


@pytest.mark.parametrize(
    ("arguments", "environment", "expected"),
    [
        ([], {"VERACLAIM_TOP_K": "abc"}, "invalid value 'abc' for setting top_k (VERACLAIM_TOP_K)"),  # wrong type
        ([], {"VERACLAIM_RELEVANCE_FLOOR": "-1"}, "VERACLAIM_RELEVANCE_FLOOR"),  # below its range
        ([], {"VERACLAIM_LOG_FORMAT": "xml"}, "invalid value 'xml' for setting log_format"),  # read at start-up
        ([], {"VERACLAIM_RETRIEVAL_MODE": "semantic"}, "retrieval_mode"),  # not one of the modes
        (["--index-dir", "{tmp}/missing"], {}, "veraclaim-index build"),  # no index there
        (["--port", "99999"], {}, "port"),  # out of range
    ],
)
def test_serve_rejects_bad_settings_cleanly(tmp_path, monkeypatch, arguments, environment, expected):
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    arguments = [argument.replace("{tmp}", str(tmp_path)) for argument in arguments]

    result = CliRunner().invoke(app, ["serve", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", *arguments])

    assert result.exit_code == 2, result.output
    assert "Error:" in result.output
    assert expected in result.output
    assert "Traceback" not in result.output
    assert "errors.pydantic.dev" not in result.output


def test_serve_without_model_server_names_the_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VERACLAIM_MODEL_BASE_URL", raising=False)

    result = CliRunner().invoke(app, ["serve"])

    assert result.exit_code == 2
    assert "VERACLAIM_MODEL_BASE_URL" in result.output


# ---------------------------------------------------------------------------------------
# Sign-in, share links and password hashes


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "--base-url", "http://127.0.0.1:9/v1", "--model", "m", "--share"],
        ["embedded", "--samples", "{tmp}/no-pdfs", "--share"],
    ],
)
def test_share_without_sign_in_exits_before_start_up(tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    for name in ("VERACLAIM_AUTH_USERS", "VERACLAIM_AUTH_FILE"):
        monkeypatch.delenv(name, raising=False)
    # The index folder does not exist, so any start-up step past the share check would fail
    # with another message.
    monkeypatch.setenv("VERACLAIM_INDEX_DIR", str(tmp_path / "missing-index"))
    command = [argument.replace("{tmp}", str(tmp_path)) for argument in command]

    result = CliRunner().invoke(app, command)

    assert result.exit_code == 2, result.output
    assert "--share creates a public URL" in result.output
    assert "--force-share" in result.output
    assert "Traceback" not in result.output


def test_invalid_password_file_exits_cleanly(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    auth_file = tmp_path / "users"
    auth_file.write_text("alice:Sup3r-Secret\n", encoding="utf-8")
    auth_file.chmod(0o644)
    monkeypatch.setenv("VERACLAIM_AUTH_FILE", str(auth_file))

    result = CliRunner().invoke(app, ["serve", "--base-url", "http://127.0.0.1:9/v1", "--model", "m"])

    assert result.exit_code == 2, result.output
    assert "chmod 600" in result.output
    assert "Sup3r-Secret" not in result.output


def test_hash_password_prints_a_usable_account_line(tmp_path):
    from chat_ui.auth import load_accounts
    from chat_ui.ops_settings import OpsSettings

    result = CliRunner().invoke(app, ["hash-password", "--user", "alice", "--password-stdin"], input="정답 pw\n")

    assert result.exit_code == 0, result.output
    line = result.stdout.strip()
    assert line.startswith("alice:pbkdf2_sha256$")
    assert "정답" not in line
    auth_file = tmp_path / "users"
    auth_file.write_text(line + "\n", encoding="utf-8")
    auth_file.chmod(0o600)
    assert load_accounts(OpsSettings(auth_file=auth_file)).verify("alice", "정답 pw")


def test_hash_password_prompts_twice(tmp_path):
    result = CliRunner().invoke(app, ["hash-password"], input="pw\npw\n")

    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1].startswith("pbkdf2_sha256$")


def test_hash_password_rejects_invalid_user():
    result = CliRunner().invoke(app, ["hash-password", "--user", "al:ice", "--password-stdin"], input="pw\n")

    assert result.exit_code == 2
    assert "Invalid user name" in result.output
