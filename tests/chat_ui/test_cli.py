"""`veraclaim-chat` reports bad settings as one clear line and exit code 2, not a traceback."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from chat_ui.cli import app


@pytest.mark.parametrize(
    ("arguments", "environment", "expected"),
    [
        ([], {"VERACLAIM_TOP_K": "abc"}, "top_k"),  # a setting of the wrong type
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


def test_serve_without_model_server_names_the_settings(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("VERACLAIM_MODEL_BASE_URL", raising=False)

    result = CliRunner().invoke(app, ["serve"])

    assert result.exit_code == 2
    assert "VERACLAIM_MODEL_BASE_URL" in result.output
