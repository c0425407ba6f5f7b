"""Privacy of the conversation log: redaction of personal data, the retention purge, and
the `log` commands of the chat CLI."""

from __future__ import annotations

import sqlite3
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from chat_ui.log import ConversationLog, LogSettings
from chat_ui.log import retention
from chat_ui.log.cli import log_app
from chat_ui.log.database import parse_database_url
from chat_ui.log.journal import Journal
from chat_ui.log.migrations import LATEST_VERSION
from chat_ui.log.models import utc_now
from chat_ui.log.redact import redact_personal_data
from tests.chat_ui.support import connect_outside_log, make_turn


def run_sql(url: str, statement: str, params: list[Any]) -> None:
    """Run one statement on the database at ``url`` outside the log."""
    connection, marker = connect_outside_log(url)
    statement = statement.replace("%s", marker)
    try:
        connection.cursor().execute(statement, params)
        connection.commit()
    finally:
        connection.close()


def backdate(url: str, table: str, row_id: str, days: int, *, column: str = "created_at") -> None:
    when = (utc_now() - timedelta(days=days)).isoformat(sep=" ")
    run_sql(url, f"UPDATE {table} SET {column} = %s WHERE id = %s", [when, uuid.UUID(row_id).hex])


# Redaction as a pure function.


REDACTION_CASES = [
    ("연락처는 010-1234-5678입니다", "연락처는 [PHONE]입니다"),  # mobile, particle attached
    ("01012345678로 전화", "[PHONE]로 전화"),  # mobile without separators
    ("010 1234 5678", "[PHONE]"),  # mobile with spaces
    ("011-123-4567", "[PHONE]"),  # old mobile prefix with a 3-digit exchange
    ("사무실 02-123-4567", "사무실 [PHONE]"),  # Seoul landline
    ("(02) 1234-5678", "[PHONE]"),  # Seoul landline with the area code in brackets
    ("031-987-6543번", "[PHONE]번"),  # Gyeonggi landline
    ("070-1234-5678", "[PHONE]"),  # internet phone
    ("대표번호 1588-1234", "대표번호 [PHONE]"),  # nationwide number
    ("+82 10-1234-5678", "[PHONE]"),  # Korean mobile in international form
    ("+82-2-123-4567", "[PHONE]"),  # Seoul landline in international form
    ("+1 415 555 0100", "[PHONE]"),  # a foreign number
    ("kim.minsu+patent@example.co.kr에게", "[EMAIL]에게"),  # e-mail with a plus tag
    ("주민등록번호 900101-1234567", "주민등록번호 [RRN]"),  # resident registration number
    ("800229 - 2234567이고", "[RRN]이고"),  # RRN with spaces around the hyphen
    ("a@b.co, 010-0000-0000", "[EMAIL], [PHONE]"),  # two kinds in one text
    # The following must survive: they are what patent questions are about.
    ("출원번호 10-2020-0012345", "출원번호 10-2020-0012345"),  # application number
    ("1020200012345", "1020200012345"),  # application number without hyphens, 13 digits
    ("등록 제10-1234567호", "등록 제10-1234567호"),  # registration number
    ("KR 10-2019-0123456 A", "KR 10-2019-0123456 A"),  # publication number
    ("PCT/KR2020/012345", "PCT/KR2020/012345"),  # PCT application
    ("US 2020/0123456 A1", "US 2020/0123456 A1"),  # US publication
    ("G06F 16/33", "G06F 16/33"),  # IPC class
    ("2024-01-15 출원", "2024-01-15 출원"),  # a date
    ("2020.01.15", "2020.01.15"),  # a date with dots
    ("청구항 1~3, 12-15쪽", "청구항 1~3, 12-15쪽"),  # claim and page ranges
    ("1600-1700년", "1600-1700년"),  # a range of years that looks like 16xx-xxxx
    ("991332-1234567", "991332-1234567"),  # month 13: not a date, so not an RRN
    ("900101-9234567", "900101-9234567"),  # 9 is an 1800s code, not issued today
    ("점수 0.8125, +3점", "점수 0.8125, +3점"),  # scores and short signed numbers
    ("x010-1234-5678", "x010-1234-5678"),  # part of a longer identifier
]


@pytest.mark.parametrize(("text", "expected"), REDACTION_CASES)
def test_redact_personal_data(text: str, expected: str) -> None:
    assert redact_personal_data(text) == expected


# Redaction in the log.


def test_stored_text_redacted(log_url: str, settings: LogSettings) -> None:
    redacting = settings.model_copy(update={"redact_personal_data": True})
    with ConversationLog.open(log_url, settings=redacting) as log:
        conversation_id = log.start_conversation(
            user="examiner-7", title="010-1234-5678 고객 문의"
        )
        turn_id = log.record_turn(
            make_turn(
                conversation_id,
                question="제 메일 kim@example.com, 주민번호 900101-1234567 입니다. 청구항 1은?",
                answer="청구항 1은 10-2020-0012345 출원의 핵심입니다 [1].",
                reasoning="사용자가 kim@example.com을 남겼다.",
                search_query="900101-1234567 청구항 1",
                error_message="callback 02-123-4567 failed",
            )
        )
        feedback_id = log.record_feedback(turn_id, 1, comment="답장은 010-9876-5432로")
        turn = log.get_turn(turn_id)
        conversation = log.get_conversation(conversation_id)
        [feedback] = log.feedback(turn_id)

    assert turn.question == "제 메일 [EMAIL], 주민번호 [RRN] 입니다. 청구항 1은?"
    assert turn.answer == "청구항 1은 10-2020-0012345 출원의 핵심입니다 [1]."
    assert turn.reasoning == "사용자가 [EMAIL]을 남겼다."
    assert turn.search_query == "[RRN] 청구항 1"
    assert turn.error_message == "callback [PHONE] failed"
    assert conversation.title == "[PHONE] 고객 문의"
    assert conversation.user == "examiner-7"  # an account id, needed to list conversations
    assert feedback.feedback_id == feedback_id
    assert feedback.comment == "답장은 [PHONE]로"


def test_redaction_off_by_default(tmp_path: Path, settings: LogSettings) -> None:
    assert LogSettings().redact_personal_data is False
    with ConversationLog.open(f"sqlite:///{tmp_path}/log.sqlite3", settings=settings) as log:
        question = "연락처 010-1234-5678"
        turn_id = log.record_turn(make_turn(log.start_conversation(), question=question))
        assert log.get_turn(turn_id).question == question


def test_journal_holds_redacted_text(tmp_path: Path, settings: LogSettings) -> None:
    directory = tmp_path / "db"
    redacting = settings.model_copy(update={"redact_personal_data": True})
    log = ConversationLog.open(f"sqlite:///{directory}/log.sqlite3", settings=redacting)
    conversation_id = log.start_conversation()
    log.flush()
    directory.rename(tmp_path / "db-away")

    log.record_turn(make_turn(conversation_id, question="메일 lee@example.org, 900101-1234567"))
    assert log.flush() == 1
    log.close()

    [segment] = list(Path(log.journal_directory).glob("segment-*.jsonl"))
    text = segment.read_text(encoding="utf-8")
    assert "[EMAIL]" in text
    assert "lee@example.org" not in text
    assert "900101-1234567" not in text


# Retention.


def seed_ages(url: str, settings: LogSettings) -> dict[str, str]:
    """Create an old conversation, an active one with an old turn, and a new one."""
    with ConversationLog.open(url, settings=settings) as log:
        ids = {
            "old": log.start_conversation(user="u", title="old"),
            "active": log.start_conversation(user="u", title="active"),
            "new": log.start_conversation(user="u", title="new"),
        }
        ids["old_turn_1"] = log.record_turn(make_turn(ids["old"]))
        ids["old_turn_2"] = log.record_turn(make_turn(ids["old"]))
        ids["active_old_turn"] = log.record_turn(make_turn(ids["active"]))
        ids["active_new_turn"] = log.record_turn(make_turn(ids["active"]))
        ids["new_turn"] = log.record_turn(make_turn(ids["new"]))
        ids["old_feedback"] = log.record_feedback(ids["old_turn_1"], -1)
        ids["active_old_feedback"] = log.record_feedback(ids["active_old_turn"], 1)
        ids["new_feedback"] = log.record_feedback(ids["new_turn"], 1)

    for name in ("old_turn_1", "old_turn_2", "active_old_turn"):
        backdate(url, "turn", ids[name], 100)
    for name in ("old_feedback", "active_old_feedback"):
        backdate(url, "feedback", ids[name], 100)
    for column in ("created_at", "updated_at"):
        backdate(url, "conversation", ids["old"], 100, column=column)
    backdate(url, "conversation", ids["active"], 100)
    return ids


def test_purge_deletes_expired_records(
    log_url: str, settings: LogSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Small batches, so the purge loops over several transactions.
    monkeypatch.setattr(retention, "PURGE_BATCH_SIZE", 2)
    ids = seed_ages(log_url, settings)

    with ConversationLog.open(log_url, settings=settings) as log:
        counted = log.purge(30, dry_run=True)
        assert len(log.turns(ids["old"])) == 2
        purged = log.purge(30)

        assert log.conversations("u") == [log.get_conversation(ids["new"]),
                                          log.get_conversation(ids["active"])]
        assert [t.turn_id for t in log.turns(ids["active"])] == [ids["active_new_turn"]]
        assert [t.turn_id for t in log.turns(ids["new"])] == [ids["new_turn"]]
        assert log.feedback(ids["active_old_turn"]) == []
        assert [f.feedback_id for f in log.feedback(ids["new_turn"])] == [ids["new_feedback"]]
        with pytest.raises(LookupError):
            log.turns(ids["old"])
        assert log.purge(30).turns == 0

    for result in (counted, purged):
        assert (result.conversations, result.turns, result.feedback) == (1, 3, 2)
    assert abs(purged.cutoff - (utc_now() - timedelta(days=30))) < timedelta(minutes=1)


def test_purge_trims_rejected_file(tmp_path: Path, settings: LogSettings) -> None:
    url = f"sqlite:///{tmp_path}/log.sqlite3"
    with ConversationLog.open(url, settings=settings) as log:
        journal = Journal(settings.journal_dir, parse_database_url(url).storage_key, "x")
        old = {"id": "old", "created_at": (utc_now() - timedelta(days=100)).isoformat()}
        new = {"id": "new", "created_at": utc_now().isoformat()}
        journal.reject([(old, "bad"), (new, "bad"), ("{broken line", "unreadable")])

        result = log.purge(30)

    lines = (Path(log.journal_directory) / "rejected.jsonl").read_text(encoding="utf-8")
    assert result.rejected_entries == 1
    assert '"old"' not in lines
    assert '"new"' in lines
    assert "{broken line" in lines


INVALID_RETENTION = [0, -5, True, 1.5]  # zero, negative, bool, fraction


@pytest.mark.parametrize("days", INVALID_RETENTION)
def test_invalid_retention_rejected(tmp_path: Path, settings: LogSettings, days: Any) -> None:
    with ConversationLog.open(f"sqlite:///{tmp_path}/log.sqlite3", settings=settings) as log:
        with pytest.raises(ValueError, match="retention_days"):
            log.purge(days)


# The `log` commands.


@pytest.fixture
def cli_env(settings: LogSettings) -> dict[str, str]:
    return {"VERACLAIM_LOG_JOURNAL_DIR": str(settings.journal_dir)}


def test_cli_purge(log_url: str, settings: LogSettings, cli_env: dict[str, str]) -> None:
    ids = seed_ages(log_url, settings)
    runner = CliRunner()

    dry = runner.invoke(log_app, ["purge", "--database-url", log_url, "--days", "30", "--dry-run"], env=cli_env)
    real = runner.invoke(
        log_app, ["purge", "--database-url", log_url],
        env={**cli_env, "VERACLAIM_LOG_RETENTION_DAYS": "30"},
    )

    assert dry.exit_code == 0, dry.output
    assert "would delete 1 conversations, 3 turns and 2 feedback records" in dry.output
    assert real.exit_code == 0, real.output
    assert "deleted 1 conversations, 3 turns and 2 feedback records" in real.output
    with ConversationLog.open(log_url, settings=settings) as log:
        with pytest.raises(LookupError):
            log.get_conversation(ids["old"])


def test_cli_purge_needs_retention(tmp_path: Path, cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        log_app, ["purge", "--database-url", f"sqlite:///{tmp_path}/log.sqlite3"], env=cli_env
    )

    assert result.exit_code == 1
    assert "VERACLAIM_LOG_RETENTION_DAYS" in result.output


def test_cli_status_migrate_replay(tmp_path: Path, cli_env: dict[str, str]) -> None:
    url = f"sqlite:///{tmp_path}/log.sqlite3"
    runner = CliRunner()

    migrated = runner.invoke(log_app, ["migrate", "--database-url", url], env=cli_env)
    status = runner.invoke(log_app, ["status"], env={**cli_env, "VERACLAIM_LOG_DATABASE_URL": url})
    replayed = runner.invoke(log_app, ["replay", "--database-url", url], env=cli_env)

    assert migrated.exit_code == 0, migrated.output
    assert f"schema version {LATEST_VERSION}" in migrated.output
    assert status.exit_code == 0, status.output
    assert f"schema version: {LATEST_VERSION} of {LATEST_VERSION}" in status.output
    assert "journal backlog: 0 records" in status.output
    assert replayed.exit_code == 0, replayed.output


def test_cli_reports_error_without_traceback(tmp_path: Path, cli_env: dict[str, str]) -> None:
    result = CliRunner().invoke(
        log_app, ["status", "--database-url", "postgres://u:pw-secret@db/log"], env=cli_env
    )

    assert result.exit_code == 1
    assert "Error: Invalid database URL" in result.output
    assert "pw-secret" not in result.output
    assert "Traceback" not in result.output


def test_cli_migrate_with_auto_migrate_off(tmp_path: Path, cli_env: dict[str, str]) -> None:
    url = f"sqlite:///{tmp_path}/log.sqlite3"
    env = {**cli_env, "VERACLAIM_LOG_AUTO_MIGRATE": "false"}
    runner = CliRunner()

    before = runner.invoke(log_app, ["status", "--database-url", url], env=env)
    migrated = runner.invoke(log_app, ["migrate", "--database-url", url], env=env)
    after = runner.invoke(log_app, ["status", "--database-url", url], env=env)

    assert before.exit_code == 1
    assert "veraclaim-chat log migrate" in before.output
    assert migrated.exit_code == 0, migrated.output
    assert after.exit_code == 0, after.output
