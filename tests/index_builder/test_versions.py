"""Tests of versioned publishing: CURRENT, rollback, pruning, the lock and open_index on either layout."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from index_builder.build import build_index
from index_builder.cli import app
from index_builder.errors import BuildLockedError, IndexFormatError, VersionNotFoundError
from index_builder.settings import IndexBuilderSettings
from index_builder.store import current_version, open_index
from index_builder.versions import BuildLock, list_versions, rollback, served_dir, switch_current

FIRST = "첫 번째 판의 청구항: 브레이크 패드의 마모를 감지하는 센서."
SECOND = "두 번째 판의 청구항: 게이트 전극은 다결정 실리콘으로 이루어진다."


@pytest.fixture
def two_versions(tmp_path: Path, pdfs) -> tuple[Path, Path, str, str]:
    """An index root built twice from a source whose one PDF changed in between."""
    source, out = tmp_path / "source", tmp_path / "index"
    pdfs.korean(source / "claims.pdf", [FIRST])
    first = build_index(str(source), out, progress=False).version
    pdfs.korean(source / "claims.pdf", [SECOND])
    second = build_index(str(source), out, progress=False).version
    return source, out, first, second


def test_each_build_adds_a_version(two_versions) -> None:
    _, out, first, second = two_versions

    assert first < second
    assert list_versions(out) == [first, second]
    assert current_version(out) == second
    assert (out / "CURRENT").read_text(encoding="utf-8") == second + "\n"
    reader = open_index(out)
    assert reader.version == second
    assert reader.chunk(reader.search(SECOND, k=1)[0].chunk_id).text == SECOND


def test_open_index_on_version_folder(two_versions) -> None:
    # A version folder opens directly, without the root's CURRENT.
    _, out, first, _ = two_versions

    reader = open_index(out / "versions" / first)

    assert reader.version is None
    assert [reader.chunk(chunk_id).text for chunk_id in range(reader.chunk_count)] == [FIRST]


def test_rollback_serves_previous_version(two_versions) -> None:
    _, out, first, second = two_versions

    assert rollback(out) == first

    assert current_version(out) == first
    assert open_index(out).search(FIRST, k=1)[0].text == FIRST
    # Nothing is older than the first version.
    with pytest.raises(VersionNotFoundError, match="nothing to roll back to"):
        rollback(out)
    # Rolling forward names the version explicitly.
    assert rollback(out, to=second) == second


def test_rollback_command(two_versions) -> None:
    _, out, first, second = two_versions
    runner = CliRunner()

    result = runner.invoke(app, ["rollback", str(out)])

    assert result.exit_code == 0, result.output
    assert f"CURRENT: {second} -> {first}" in result.stdout
    assert current_version(out) == first

    again = runner.invoke(app, ["rollback", str(out)])

    assert again.exit_code == 1
    assert "nothing to roll back to" in again.stderr
    assert current_version(out) == first


def test_rollback_to_unknown_version(two_versions) -> None:
    _, out, _, second = two_versions

    with pytest.raises(VersionNotFoundError, match="not in"):
        rollback(out, to="../../etc")

    assert current_version(out) == second


def test_old_versions_are_pruned(tmp_path: Path, pdfs) -> None:
    source, out = tmp_path / "source", tmp_path / "index"
    settings = IndexBuilderSettings(keep_versions=2)
    versions = []
    for number in range(4):
        pdfs.korean(source / "claims.pdf", [f"청구항 {number}: 판마다 바뀌는 문장 {number}번."])
        versions.append(build_index(str(source), out, settings=settings, progress=False).version)

    assert list_versions(out) == versions[-2:]
    assert current_version(out) == versions[-1]


def test_build_after_rollback(tmp_path: Path, pdfs) -> None:
    # After a rollback, the next build compares the source with the served (older) version.
    source, out = tmp_path / "source", tmp_path / "index"
    settings = IndexBuilderSettings(keep_versions=2)
    pdfs.korean(source / "a.pdf", ["첫 문서의 문장."])
    oldest = build_index(str(source), out, settings=settings, progress=False).version
    pdfs.korean(source / "b.pdf", ["둘째 문서의 문장."])
    build_index(str(source), out, settings=settings, progress=False)
    switch_current(out, oldest)
    pdfs.korean(source / "c.pdf", ["셋째 문서의 문장."])

    report = build_index(str(source), out, settings=settings, progress=False)

    assert current_version(out) == report.version
    assert report.previous_version == oldest
    assert report.embedded_chunks == 2
    assert report.reused_chunks == 1
    assert len(list_versions(out)) == 2
    assert open_index(out).chunk_count == 3


def test_keep_versions_below_two_rejected() -> None:
    with pytest.raises(ValueError, match="keep_versions"):
        IndexBuilderSettings(keep_versions=1)


def test_build_while_locked(tmp_path: Path, pdfs) -> None:
    pdfs.korean(tmp_path / "source" / "a.pdf", ["잠금 시험 문서."])
    out = tmp_path / "index"

    with BuildLock(out), pytest.raises(BuildLockedError, match="another build") as raised:
        build_index(str(tmp_path / "source"), out, progress=False)

    assert isinstance(raised.value, BlockingIOError)
    assert current_version(out) is None
    # The lock is free again once its holder is gone.
    assert build_index(str(tmp_path / "source"), out, progress=False).published


def test_rebuild_command_while_locked(tmp_path: Path, pdfs) -> None:
    pdfs.korean(tmp_path / "source" / "a.pdf", ["잠금 시험 문서."])
    out = tmp_path / "index"

    with BuildLock(out):
        result = CliRunner().invoke(app, ["rebuild", str(tmp_path / "source"), "--out", str(out)])

    assert result.exit_code == 3
    assert "another build, rollback or pull is running" in result.stderr
    assert not (out / "last-build.json").exists()


def test_rebuild_command_writes_report(tmp_path: Path, pdfs) -> None:
    pdfs.korean(tmp_path / "source" / "a.pdf", ["보고서 시험 문서의 청구항."])
    pdfs.encrypted(tmp_path / "source" / "locked.pdf", ["비밀"])
    out = tmp_path / "index"
    report_file = tmp_path / "reports" / "build.json"
    runner = CliRunner()

    first = runner.invoke(app, ["rebuild", str(tmp_path / "source"), "--out", str(out), "--report", str(report_file)])
    report = json.loads(report_file.read_text(encoding="utf-8"))

    assert first.exit_code == 0, first.output
    assert report["published"] is True
    assert report["version"] == current_version(out)
    assert report["counts"]["indexed"] == 1
    assert report["counts"]["skipped"] == 1
    assert report["skipped"][0]["file_name"] == "locked.pdf"
    assert "password required" in report["skipped"][0]["reason"]
    assert report["duration_seconds"] > 0
    assert "embed" in report["stage_seconds"]

    second = runner.invoke(app, ["rebuild", str(tmp_path / "source"), "--out", str(out)])
    unchanged = json.loads((out / "last-build.json").read_text(encoding="utf-8"))

    assert second.exit_code == 0, second.output
    assert unchanged["published"] is False
    assert unchanged["version"] == report["version"]
    assert unchanged["counts"]["unchanged"] == 2


def test_rebuild_command_failure_report(tmp_path: Path, pdfs) -> None:
    pdfs.not_a_pdf(tmp_path / "source" / "notes.pdf")
    report_file = tmp_path / "report.json"

    result = CliRunner().invoke(
        app, ["rebuild", str(tmp_path / "source"), "--out", str(tmp_path / "index"), "--report", str(report_file)]
    )
    report = json.loads(report_file.read_text(encoding="utf-8"))

    assert result.exit_code == 1
    assert report["published"] is False
    assert "none of the 1 PDF" in report["error"]
    assert "not a PDF file" in report["skipped"][0]["reason"]


def test_flat_index_is_migrated(tmp_path: Path, pdfs) -> None:
    # An index in the older flat layout: the files of a version folder directly in the root.
    source, out = tmp_path / "source", tmp_path / "index"
    pdfs.korean(source / "a.pdf", ["예전 형식의 색인."])
    build_index(str(source), tmp_path / "built", progress=False)
    shutil.copytree(served_dir(tmp_path / "built"), out)
    assert open_index(out).version is None

    pdfs.korean(source / "b.pdf", ["새 형식으로 옮긴 색인."])
    report = build_index(str(source), out, progress=False)

    assert current_version(out) == report.version
    assert sorted(path.name for path in out.iterdir()) == [".lock", "CURRENT", "versions"]
    assert open_index(out).chunk_count == 2


def test_current_that_is_not_a_version_id(two_versions) -> None:
    _, out, _, _ = two_versions
    (out / "CURRENT").write_text("../../etc\n", encoding="utf-8")

    with pytest.raises(IndexFormatError, match="not a version id"):
        open_index(out)
