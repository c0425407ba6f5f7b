"""The scheduled rebuild script, run as a scheduler runs it: in its own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from index_builder.store import current_version

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "rebuild_index.py"
DRIVER = Path(__file__).with_name("build_driver.py")
ENVIRONMENT = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}


def run_script(*arguments: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *arguments],
        capture_output=True,
        text=True,
        timeout=300,
        env={**ENVIRONMENT, **(env or {})},
        check=False,
    )


def wait_until_stopped(process: subprocess.Popen[str], timeout: float = 180) -> None:
    stat = Path(f"/proc/{process.pid}/stat")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read()
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "T":
            return
        time.sleep(0.05)
    process.kill()
    raise AssertionError("the first build did not reach its stop point")


def test_second_run_exits_while_first_runs(tmp_path: Path, pdfs) -> None:
    source, out = tmp_path / "source", tmp_path / "index"
    pdfs.korean(source / "a.pdf", ["예약 재색인 시험 문서의 청구항."])

    # 1. A first build that holds the lock, paused in the middle of its work.
    first = subprocess.Popen(
        [sys.executable, str(DRIVER), str(source), str(out), "Reading and embedding"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENVIRONMENT,
    )
    try:
        wait_until_stopped(first)

        # 2. The second run gives up at once, with its own exit code and no report.
        started = time.monotonic()
        second = run_script(str(source), "--out", str(out))
        elapsed = time.monotonic() - started

        assert second.returncode == 3, second.stderr
        assert "another build, rollback or pull is running" in second.stderr
        assert elapsed < 30
        assert not (out / "last-build.json").exists()
    finally:
        first.send_signal(signal.SIGCONT)
        first.wait(timeout=300)
        first.stdout.close()
        first.stderr.close()

    # 3. The first build finished normally, and a later run finds nothing to do.
    assert first.returncode == 0
    version = current_version(out)
    third = run_script(str(source), "--out", str(out), "--report", str(tmp_path / "report.json"))
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))

    assert third.returncode == 0, third.stderr
    assert "unchanged" in third.stdout
    assert report["published"] is False
    assert report["version"] == version
    assert report["counts"]["unchanged"] == 1


def test_failed_run_exit_code_and_report(tmp_path: Path, pdfs) -> None:
    pdfs.encrypted(tmp_path / "source" / "locked.pdf", ["비밀"])

    result = run_script(str(tmp_path / "source"), "--out", str(tmp_path / "index"))
    report = json.loads((tmp_path / "index" / "last-build.json").read_text(encoding="utf-8"))

    assert result.returncode == 1
    assert "none of the 1 PDF" in result.stderr
    assert report["skipped"][0]["reason"].startswith("password required")


def test_invalid_arguments_exit_code(tmp_path: Path) -> None:
    result = run_script(str(tmp_path / "absent"), "--out", str(tmp_path / "index"))

    assert result.returncode == 2
    assert "source folder not found" in result.stderr


def test_gate_rejection_keeps_current(tmp_path: Path, pdfs) -> None:
    source, out = tmp_path / "source", tmp_path / "index"
    pdfs.korean(source / "act.pdf", ["제64조(출원공개) 출원공개는 일정 기간이 지난 후에 한다."])
    pdfs.korean(source / "cart.pdf", ["캐디 역할을 수행하는 스마트카트의 청구항."])
    golden = tmp_path / "golden.jsonl"
    golden.write_text(
        json.dumps(
            {"id": "cart", "question": "스마트카트 청구항", "kind": "formal", "expected": [{"file": "cart.pdf", "page": 1}]},
            ensure_ascii=False,
        )
        + "\n",
        encoding="utf-8",
    )

    # 1. A first version that finds the question, published through the gate.
    first = run_script(str(source), "--out", str(out), env={"VERACLAIM_EVAL_GOLDEN": str(golden)})
    assert first.returncode == 0, first.stderr
    version = current_version(out)

    # 2. Without cart.pdf the question has no answer: recall@5 falls from 1.0 to 0.0.
    (source / "cart.pdf").unlink()
    second = run_script(str(source), "--out", str(out), env={"VERACLAIM_EVAL_GOLDEN": str(golden)})
    report = json.loads((out / "last-build.json").read_text(encoding="utf-8"))

    assert second.returncode == 1
    assert "was not published: hybrid recall@5 0.000" in second.stderr
    assert "VERACLAIM_EVAL_MAX_DROP" in report["error"]
    assert report["version"] == version
    assert current_version(out) == version
    rejected = list((out / "rejected").iterdir())
    assert len(rejected) == 1
    assert json.loads((rejected[0] / "evaluation.json").read_text(encoding="utf-8"))["current_version"] == version


def test_invalid_golden_exit_code(tmp_path: Path, pdfs) -> None:
    pdfs.korean(tmp_path / "source" / "a.pdf", ["문서"])
    golden = tmp_path / "golden.jsonl"
    golden.write_text('{"id": "q", "question": "질문", "kind": "formal", "expected": [{"file": "a.pdf", "page": 0}]}\n')

    result = run_script(str(tmp_path / "source"), "--out", str(tmp_path / "index"), env={"VERACLAIM_EVAL_GOLDEN": str(golden)})

    assert result.returncode == 2
    assert f"{golden}:1: field 'expected[0].page'" in result.stderr
    assert not (tmp_path / "index").exists()
