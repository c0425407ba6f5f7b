"""Application logs: JSON and text lines, the question mask, and one line per finished turn.

The turn tests run the real pipeline on the sample index with the fake TGI server.
"""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from chat_ui.logsetup import NOISY_LIBRARY_LOGGERS, QuestionMaskFilter, TurnLogger, configure_logging

QUESTION = "특허출원은 언제 공개되나요?"
LONG_QUESTION = "청구항 1의 구성요소 중 제2 부재의 결합 방식이 선행문헌과 어떻게 다른가요?"


@pytest.fixture
def restore_root_logger():
    """Put the root logger's handlers and level back after a test that configures logging."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)
    for name in NOISY_LIBRARY_LOGGERS:
        logging.getLogger(name).setLevel(logging.NOTSET)


def _record(message: str, *args, **extra) -> logging.LogRecord:
    record = logging.LogRecord("chat_ui.pipeline", logging.INFO, __file__, 1, message, args or None, None)
    record.__dict__.update(extra)
    return record


@pytest.mark.parametrize(
    ("message", "args", "extra", "hidden"),
    [
        ("asked", (), {"question": QUESTION}, QUESTION),  # the extra field alone
        ("asked %s", (QUESTION,), {"question": QUESTION}, QUESTION),  # also formatted into the message
        ("searched %r", (LONG_QUESTION,), {"search_query": LONG_QUESTION}, LONG_QUESTION),  # a rewritten query
    ],
)
def test_mask_filter_hides_question_text(message, args, extra, hidden):
    record = _record(message, *args, **extra)

    assert QuestionMaskFilter().filter(record) is True

    assert hidden not in record.getMessage()
    for name in extra:
        assert getattr(record, name) == f"[{len(hidden)} characters masked]"


def test_mask_filter_leaves_other_records_alone():
    record = _record("turn %s finished", "t-1", turn_id="t-1")

    QuestionMaskFilter().filter(record)

    assert record.getMessage() == "turn t-1 finished"
    assert record.turn_id == "t-1"


def test_json_lines_carry_extra_fields(restore_root_logger):
    stream = io.StringIO()
    configure_logging(log_format="json", stream=stream)

    logging.getLogger("chat_ui.test").warning("model call failed", extra={"conversation_id": "c-1"})
    line = json.loads(stream.getvalue().splitlines()[-1])

    assert line["level"] == "WARNING"
    assert line["logger"] == "chat_ui.test"
    assert line["message"] == "model call failed"
    assert line["conversation_id"] == "c-1"
    assert line["time"].endswith("+00:00")


def test_text_lines_and_reconfiguration(restore_root_logger):
    first, second = io.StringIO(), io.StringIO()
    configure_logging(log_format="json", stream=first)
    configure_logging(log_format="text", verbose=True, stream=second)

    logging.getLogger("chat_ui.test").debug("debug line")

    assert first.getvalue() == ""
    assert " DEBUG chat_ui.test: debug line" in second.getvalue()
    assert len([h for h in logging.getLogger().handlers if h.get_name() == "veraclaim"]) == 1


def test_library_info_lines_are_hidden_unless_verbose(restore_root_logger):
    # faiss's "Could not load library with AVX2 support" INFO lines read like failures.
    quiet, verbose = io.StringIO(), io.StringIO()
    configure_logging(stream=quiet)
    logging.getLogger("faiss.loader").info("Could not load library with AVX2 support")
    logging.getLogger("bm25s").info("settings")
    logging.getLogger("faiss.loader").warning("real problem")

    configure_logging(verbose=True, stream=verbose)
    logging.getLogger("faiss.loader").info("Could not load library with AVX2 support")

    assert "AVX2" not in quiet.getvalue()
    assert "settings" not in quiet.getvalue()
    assert "real problem" in quiet.getvalue()
    assert "AVX2" in verbose.getvalue()


@pytest.fixture
def pipeline(small_index: Path, tmp_path: Path, fake_tgi):
    from chat_ui.service import ModelEndpoint, build_pipeline
    from chat_ui.settings import ChatSettings

    settings = ChatSettings(
        index_dir=small_index, log_database_url=f"sqlite:///{tmp_path / 'log.sqlite3'}", max_tokens=64
    )
    pipeline = build_pipeline(settings, ModelEndpoint(fake_tgi.base_url, fake_tgi.model_id, timeout_s=10))
    yield pipeline
    pipeline.log.close()


def _ask(pipeline, fake_tgi, *, log_questions: bool) -> tuple[str, object]:
    stream = io.StringIO()
    configure_logging(log_format="json", log_questions=log_questions, stream=stream)
    pipeline.add_observer(TurnLogger(log_questions=log_questions))
    fake_tgi.queue(deltas=["1년 6개월 후 공개됩니다 [1]."])

    final = list(pipeline.stream(QUESTION))[-1]
    return stream.getvalue(), final


def test_turn_line_has_ids_and_no_question(pipeline, fake_tgi, restore_root_logger):
    output, final = _ask(pipeline, fake_tgi, log_questions=False)

    lines = [json.loads(line) for line in output.splitlines()]
    turn_lines = [line for line in lines if line.get("turn_id") == final.turn_id]
    assert len(turn_lines) == 1
    assert turn_lines[0]["conversation_id"] == final.conversation_id
    assert turn_lines[0]["status"] == "ok"
    assert turn_lines[0]["latency_ms"] > 0
    assert QUESTION not in output
    assert "특허출원" not in output


def test_turn_line_keeps_question_when_allowed(pipeline, fake_tgi, restore_root_logger):
    output, final = _ask(pipeline, fake_tgi, log_questions=True)

    turn_line = next(json.loads(line) for line in output.splitlines() if final.turn_id in line)
    assert turn_line["question"] == QUESTION


def test_cli_log_format_json(tmp_path, monkeypatch, restore_root_logger):
    from chat_ui.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VERACLAIM_LOG_DATABASE_URL", f"sqlite:///{tmp_path / 'log.sqlite3'}")

    result = CliRunner().invoke(app, ["--log-format", "json", "log", "migrate"])

    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
    assert any("Opened the conversation log" in line["message"] for line in lines)


def test_cli_rejects_unknown_log_format_setting(tmp_path, monkeypatch, restore_root_logger):
    from chat_ui.cli import app

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("VERACLAIM_LOG_FORMAT", "xml")

    result = CliRunner().invoke(app, ["hash-password", "--password-stdin"], input="pw\n")

    assert result.exit_code == 2
    assert "log_format" in result.output
