"""A build killed with SIGKILL at any step leaves a loadable index behind.

Each test runs a real build in its own process (build_driver.py), stops it at a chosen log
message, kills it with SIGKILL, and checks what a chat replica would then load.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from index_builder.build import build_index
from index_builder.store import current_version, open_index
from index_builder.versions import list_versions

DRIVER = Path(__file__).with_name("build_driver.py")
# Seconds to wait for the driver to reach its stop point: it imports torch and loads the model.
STOP_TIMEOUT_SECONDS = 180

OLD_PAGES = ["특허청구범위 제1항: 브레이크 패드의 마모를 감지하는 센서.", "제2항: 센서는 캘리퍼에 설치된다."]
# Enough new text for several embedding groups, so the kill lands while vectors are computed.
NEW_PAGES = [f"추가 문서 {number}쪽: 게이트 전극은 다결정 실리콘으로 이루어진다. " * 8 for number in range(10)]


@pytest.fixture(scope="module")
def served_index(tmp_path_factory: pytest.TempPathFactory, pdfs) -> tuple[Path, Path, str, int]:
    """A source folder with one more PDF than the index that was built from it before."""
    source = tmp_path_factory.mktemp("kill-source")
    pdfs.korean(source / "old.pdf", OLD_PAGES)
    out = tmp_path_factory.mktemp("kill-index") / "index"
    report = build_index(str(source), out, progress=False)
    pdfs.korean(source / "new.pdf", NEW_PAGES)
    return source, out, report.version, report.chunk_count


def start_build(source: Path, out: Path, stop_at: str) -> subprocess.Popen[str]:
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    return subprocess.Popen(
        [sys.executable, str(DRIVER), str(source), str(out), stop_at],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
    )


def wait_until_stopped(process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    stat = Path(f"/proc/{process.pid}/stat")
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"build ended (exit {process.returncode}) before its stop point:\n{process.stderr.read()}")
        # The state is the field after the parenthesised command name: T means stopped.
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "T":
            return
        time.sleep(0.05)
    process.kill()
    pytest.fail(f"build did not reach its stop point within {STOP_TIMEOUT_SECONDS} s")


def kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    process.stdout.close()
    process.stderr.close()
    assert process.returncode == -signal.SIGKILL


def assert_loadable(out: Path) -> int:
    reader = open_index(out)
    assert reader.version == current_version(out)
    assert reader.search(OLD_PAGES[0], k=1)[0].text == OLD_PAGES[0]
    return reader.chunk_count


KILL_POINTS = [
    # While the first group of new chunks is being embedded.
    ("Embedding ", "old"),
    # The new version is complete in its staging folder but not yet validated.
    ("Wrote staging version", "old"),
    # Validated and moved under versions/, one step before CURRENT is replaced.
    ("Publishing version", "old"),
    # CURRENT names the new version; old versions are not yet pruned.
    ("CURRENT of", "new"),
]


@pytest.mark.parametrize(("stop_at", "served"), KILL_POINTS)
def test_kill_at_step(served_index, tmp_path: Path, stop_at: str, served: str) -> None:
    source, original, old_version, old_count = served_index
    out = tmp_path / "index"
    shutil.copytree(original, out)

    process = start_build(source, out, stop_at)
    wait_until_stopped(process)
    kill(process)

    # 1. What a chat replica loads now.
    if served == "old":
        assert current_version(out) == old_version
        assert assert_loadable(out) == old_count
    else:
        assert current_version(out) != old_version
        assert assert_loadable(out) > old_count

    # 2. The next build is not blocked by the dead one, and clears what it left behind.
    report = build_index(str(source), out, progress=False)
    leftovers = [path.name for path in out.iterdir() if path.name.startswith(".staging-")]
    assert leftovers == []
    assert assert_loadable(out) > old_count
    assert current_version(out) in list_versions(out)
    if served == "old":
        assert report.published
    assert current_version(out) == report.version


@pytest.mark.parametrize("delay", [1.0, 4.0, 7.0])
def test_kill_after_delay(served_index, tmp_path: Path, delay: float) -> None:
    # Without a stop point: the kill lands wherever the build is after ``delay`` seconds.
    source, original, old_version, old_count = served_index
    out = tmp_path / "index"
    shutil.copytree(original, out)

    process = start_build(source, out, "")
    time.sleep(delay)
    if process.poll() is None:
        kill(process)

    count = assert_loadable(out)
    assert count == old_count if current_version(out) == old_version else count > old_count
