"""Tests of the veraclaim-index command line."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from index_builder.cli import app
from index_builder.errors import SourceNotFoundError

SENSOR = "브레이크 패드의 마모를 감지하는 센서가 캘리퍼 하우징에 설치된다."


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def make_bad_pdfs(pdfs, folder: Path) -> None:
    pdfs.encrypted(folder / "locked.pdf", ["비밀"])
    pdfs.not_a_pdf(folder / "notes.pdf")


def test_build_then_search(tmp_path: Path, pdfs, runner: CliRunner) -> None:
    pdfs.korean(tmp_path / "source" / "brake.pdf", ["디스크 브레이크 장치", SENSOR])
    make_bad_pdfs(pdfs, tmp_path / "source")
    out = tmp_path / "index"

    built = runner.invoke(app, ["build", str(tmp_path / "source"), "--out", str(out), "--no-progress"])

    assert built.exit_code == 0, built.output
    assert "Indexed 1 of 3 document(s) into 2 chunks" in built.stdout
    assert "locked.pdf: password required" in built.stdout
    assert "notes.pdf: not a PDF file" in built.stdout

    found = runner.invoke(app, ["search", str(out), SENSOR, "-k", "1"])

    assert found.exit_code == 0, found.output
    lines = found.stdout.splitlines()
    assert lines[0].startswith("1. ")
    assert "brake.pdf  page 2" in lines[0]
    assert "센서가 캘리퍼" in lines[1]
    assert len([line for line in lines if line[:1].isdigit()]) == 1


def test_build_only_bad_pdfs(tmp_path: Path, pdfs, runner: CliRunner) -> None:
    make_bad_pdfs(pdfs, tmp_path / "source")

    result = runner.invoke(
        app, ["build", str(tmp_path / "source"), "--out", str(tmp_path / "index"), "--no-progress"]
    )

    assert result.exit_code == 1
    assert "Error: none of the 2 PDF(s)" in result.stderr
    assert "locked.pdf: password required" in result.stdout
    assert not (tmp_path / "index" / "CURRENT").exists()


USAGE_ERRORS = [
    # A folder that does not exist.
    (["build", "{tmp}/absent", "--out", "{tmp}/index"], "source folder not found"),
    # A scheme that no source supports.
    (["build", "ftp://host/pdfs", "--out", "{tmp}/index"], "unsupported source"),
    # Chunks longer than the model reads.
    (["build", "{tmp}", "--out", "{tmp}/index"], "chunk_tokens=999 exceeds"),
]


@pytest.mark.parametrize(("arguments", "message"), USAGE_ERRORS)
def test_build_usage_errors(
    tmp_path: Path,
    pdfs,
    runner: CliRunner,
    monkeypatch: pytest.MonkeyPatch,
    arguments: list[str],
    message: str,
) -> None:
    pdfs.korean(tmp_path / "a.pdf", ["문서"])
    monkeypatch.setenv("VERACLAIM_CHUNK_TOKENS", "999")

    result = runner.invoke(app, [argument.format(tmp=tmp_path) for argument in arguments])

    assert result.exit_code == 2
    assert message in result.stderr


def test_search_missing_index(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(app, ["search", str(tmp_path / "none"), "질문"])

    assert result.exit_code == 1
    assert "veraclaim-index build" in result.stderr


def test_debug_reraises(tmp_path: Path, runner: CliRunner) -> None:
    result = runner.invoke(
        app, ["--debug", "build", str(tmp_path / "absent"), "--out", str(tmp_path / "index")]
    )

    assert isinstance(result.exception, SourceNotFoundError)


def test_console_script_exit_code(tmp_path: Path, pdfs) -> None:
    # The installed entry point, in its own process, so the exit code is the real one.
    script = shutil.which("veraclaim-index", path=str(Path(sys.executable).parent))
    assert script, "veraclaim-index is not installed; run pip install -e '.[test]'"
    make_bad_pdfs(pdfs, tmp_path / "source")
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}

    result = subprocess.run(
        [script, "build", str(tmp_path / "source"), "--out", str(tmp_path / "index"), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=300,
        env=environment,
        check=False,
    )

    assert result.returncode == 1
    assert "could be indexed" in result.stderr


def test_invalid_gate_setting_names_its_variable(
    tmp_path: Path, pdfs, runner: CliRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The message names the variable the user set, not only the settings field.
    pdfs.korean(tmp_path / "source" / "a.pdf", ["게이트 설정 시험 문서."])
    monkeypatch.setenv("VERACLAIM_EVAL_MIN_RECALL_AT_5", "1.5")

    built = runner.invoke(app, ["build", str(tmp_path / "source"), "--out", str(tmp_path / "index"), "--no-progress"])

    assert built.exit_code == 2
    assert "invalid value '1.5' for setting eval_min_recall_at_5 (VERACLAIM_EVAL_MIN_RECALL_AT_5)" in built.output
    assert not (tmp_path / "index").exists()
