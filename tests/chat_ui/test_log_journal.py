"""No lost turns: the background writer, the durable journal, replays, and outages of the
real database, including a MariaDB server stopped and started during the test and a
replaying process killed with SIGKILL."""

from __future__ import annotations

import json
import logging
import os
import signal
import sqlite3
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path

import pytest

from chat_ui.log import ConversationLog, LogSettings
from chat_ui.log.database import parse_database_url
from chat_ui.log.entries import conversation_entry, turn_entry
from chat_ui.log.journal import Journal
from chat_ui.log.models import utc_now
from tests.chat_ui.support import connect_outside_log, make_turn

REPO_ROOT = Path(__file__).resolve().parents[2]
OUTAGE_TURNS = 20


def journal_for(url: str, root: Path) -> Journal:
    target = parse_database_url(url)
    return Journal(root, target.storage_key, target.display_name)


def journaled_conversation(
    url: str, root: Path, turns: int, *, turns_first: bool = False
) -> tuple[str, list[str]]:
    """Write a conversation and its turns to the journal as a log would during an outage.

    Returns the conversation id and the turn ids.
    """
    conversation_id = uuid.uuid4()
    conversation = conversation_entry(conversation_id, "examiner-7", "정전 중 대화", utc_now())
    turn_ids = [uuid.uuid4() for _ in range(turns)]
    turn_entries = [
        turn_entry(
            turn_id,
            conversation_id,
            make_turn(str(conversation_id), question=f"질문 {index}"),
            sources_json="[]",
            sampling_json="{}",
            created_at=utc_now(),
        )
        for index, turn_id in enumerate(turn_ids)
    ]
    entries = [*turn_entries, conversation] if turns_first else [conversation, *turn_entries]

    journal = journal_for(url, root)
    journal.append(entries)
    journal.close()
    return str(conversation_id), [str(turn_id) for turn_id in turn_ids]


def count_turns(url: str, turn_ids: list[str]) -> dict[str, int]:
    """Return how many rows each turn id has, read outside the log."""
    hex_ids = [uuid.UUID(turn_id).hex for turn_id in turn_ids]
    connection, marker = connect_outside_log(url)
    try:
        cursor = connection.cursor()
        placeholders = ", ".join([marker] * len(hex_ids))
        cursor.execute(f"SELECT id, COUNT(*) FROM turn WHERE id IN ({placeholders}) GROUP BY id", hex_ids)
        counts = {row[0]: row[1] for row in cursor.fetchall()}
    finally:
        connection.close()
    return {turn_id: counts.get(uuid.UUID(turn_id).hex, 0) for turn_id in turn_ids}


# The journal on its own.


def test_appended_entries_read_back(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "sqlite:/var/log.sqlite3", "SQLite database /var/log.sqlite3")
    entries = [
        conversation_entry(uuid.uuid4(), "사용자😀", "제목 𠜎", utc_now()) for _ in range(3)
    ]

    journal.append(entries[:2])
    journal.append(entries[2:])
    journal.seal()
    [path] = journal.segment_paths()
    with journal.claim(path) as segment:
        assert segment is not None
        contents = segment.read()

    assert contents.entries == entries
    assert contents.unreadable == []
    assert journal.backlog() == 3
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(journal.directory.stat().st_mode) == 0o700
    assert (journal.directory / "TARGET").read_text(encoding="utf-8").startswith("SQLite database")


def test_journals_separate_per_database(tmp_path: Path) -> None:
    first = Journal(tmp_path, "mysql:db-a:3306/log", "MySQL database a")
    second = Journal(tmp_path, "mysql:db-b:3306/log", "MySQL database b")
    again = Journal(tmp_path, "mysql:db-a:3306/log", "MySQL database a")

    assert first.directory != second.directory
    assert first.directory == again.directory


UNREADABLE_LINES = [
    (b"{not json\n", "Expecting property name"),  # garbage
    (b'["a", "list"]\n', "must be a JSON object"),  # JSON, but not an entry
    (b'{"format": 99, "kind": "turn", "id": "x"}\n', "unknown entry format 99"),  # newer release
    (b'{"format": 1, "kind": "vote", "id": "x"}\n', "unknown entry kind 'vote'"),  # no such kind
    (b'{"format": 1, "kind": "turn", "id": "42"}\n', "is not a UUID"),  # id not a UUID
    (b'{"format": 1, "kind": "tu', "cut short"),  # a crash during the append
]


@pytest.mark.parametrize(("line", "reason"), UNREADABLE_LINES)
def test_unreadable_line_reported(tmp_path: Path, line: bytes, reason: str) -> None:
    journal = Journal(tmp_path, "sqlite:/x", "x")
    good = conversation_entry(uuid.uuid4(), None, "", utc_now())
    journal.append([good])
    journal.seal()
    [path] = journal.segment_paths()
    with path.open("ab") as stream:
        stream.write(line)

    with journal.claim(path) as segment:
        assert segment is not None
        contents = segment.read()

    assert contents.entries == [good]
    assert len(contents.unreadable) == 1
    number, _raw, found_reason = contents.unreadable[0]
    assert number == 2
    assert reason in found_reason


def test_active_segment_claimed_after_seal(tmp_path: Path) -> None:
    journal = Journal(tmp_path, "sqlite:/x", "x")
    journal.append([conversation_entry(uuid.uuid4(), None, "", utc_now())])
    [path] = journal.segment_paths()

    with journal.claim(path) as segment:
        assert segment is None
    journal.seal()
    with journal.claim(path) as segment:
        assert segment is not None


def test_dead_writers_segment_claimable(tmp_path: Path) -> None:
    # A process that appended to its active segment and was then killed.
    script = (
        "import sys, time, uuid\n"
        "from pathlib import Path\n"
        "from chat_ui.log.journal import Journal\n"
        "from chat_ui.log.entries import conversation_entry\n"
        "from chat_ui.log.models import utc_now\n"
        "journal = Journal(Path(sys.argv[1]), 'sqlite:/x', 'x')\n"
        "journal.append([conversation_entry(uuid.uuid4(), None, 'child', utc_now())])\n"
        "print('appended', flush=True)\n"
        "time.sleep(120)\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", script, str(tmp_path)], cwd=REPO_ROOT, stdout=subprocess.PIPE
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == b"appended"
        journal = Journal(tmp_path, "sqlite:/x", "x")
        [path] = journal.segment_paths()
        with journal.claim(path) as segment:
            assert segment is None, "a live process's active segment was claimed"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)

    with journal.claim(path) as segment:
        assert segment is not None
        assert [entry["title"] for entry in segment.read().entries] == ["child"]


# Outages and replays through the log.


def test_sqlite_outage_journals_and_replays(tmp_path: Path, settings: LogSettings) -> None:
    directory = tmp_path / "db"
    url = f"sqlite:///{directory}/log.sqlite3"
    log = ConversationLog.open(url, settings=settings)
    conversation_id = log.start_conversation(user="examiner-7")
    assert log.flush() == 0

    # The directory disappears, as when a volume is unmounted.
    directory.rename(tmp_path / "db-away")
    turn_ids = [
        log.record_turn(make_turn(conversation_id, question=f"정전 {index}"))
        for index in range(OUTAGE_TURNS)
    ]
    assert log.flush() == OUTAGE_TURNS
    assert log.journal_backlog() == OUTAGE_TURNS

    (tmp_path / "db-away").rename(directory)
    assert log.flush() == 0

    assert set(count_turns(url, turn_ids).values()) == {1}
    assert [t.turn_id for t in log.turns(conversation_id)] == turn_ids
    assert list(Path(log.journal_directory).glob("segment-*")) == []
    log.close()


def test_mariadb_outage_loses_no_turns(
    mariadb_url: str,
    settings: LogSettings,
    mariadb_outage: Callable[[], AbstractContextManager[None]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="chat_ui.log")
    log = ConversationLog.open(mariadb_url, settings=settings)
    conversation_id = log.start_conversation(user="examiner-7", title="정전 시험")
    assert log.flush() == 0

    with mariadb_outage():
        outage_started = time.monotonic()
        started = time.perf_counter()
        turn_ids = [
            log.record_turn(make_turn(conversation_id, question=f"정전 {index}"))
            for index in range(OUTAGE_TURNS)
        ]
        recording_s = time.perf_counter() - started
        assert log.flush(timeout=30) == OUTAGE_TURNS
    outage_s = time.monotonic() - outage_started

    assert log.flush(timeout=30) == 0
    assert recording_s < 1.0, "record_turn waited for the stopped database"
    assert outage_s < 30
    assert set(count_turns(mariadb_url, turn_ids).values()) == {1}
    assert [t.turn_id for t in log.turns(conversation_id)] == turn_ids
    log.close()

    messages = [record.getMessage() for record in caplog.records]
    assert any("writing to the journal" in message for message in messages), messages
    assert any("Replayed 20 journaled entries" in message for message in messages), messages


def test_replay_skips_stored_turns(log_url: str, tmp_path: Path, settings: LogSettings) -> None:
    # A commit whose reply was lost: the rows are stored, and the entries journaled too.
    conversation_id, turn_ids = journaled_conversation(log_url, settings.journal_dir, 5)
    journal = journal_for(log_url, settings.journal_dir)
    [path] = journal.segment_paths()
    copy = path.with_name(path.name.replace("segment-", "segment-9"))
    copy.write_bytes(path.read_bytes())

    with ConversationLog.open(log_url, settings=settings) as log:
        assert log.flush() == 0
        assert [t.turn_id for t in log.turns(conversation_id)] == turn_ids

    assert set(count_turns(log_url, turn_ids).values()) == {1}
    assert not (journal.directory / "rejected.jsonl").exists()


def test_turns_before_conversation_fill_it_in(log_url: str, settings: LogSettings) -> None:
    conversation_id, turn_ids = journaled_conversation(
        log_url, settings.journal_dir, 3, turns_first=True
    )

    with ConversationLog.open(log_url, settings=settings) as log:
        assert log.flush() == 0
        conversation = log.get_conversation(conversation_id)
        turns = log.turns(conversation_id)

    assert conversation.user == "examiner-7"
    assert conversation.title == "정전 중 대화"
    assert conversation.created_at < turns[0].created_at
    assert conversation.updated_at == turns[-1].created_at
    assert [t.turn_id for t in turns] == turn_ids


def test_unreadable_lines_rejected_to_file(log_url: str, settings: LogSettings) -> None:
    conversation_id, turn_ids = journaled_conversation(log_url, settings.journal_dir, 2)
    journal = journal_for(log_url, settings.journal_dir)
    [path] = journal.segment_paths()
    with path.open("ab") as stream:
        stream.write(b'{"format": 99, "kind": "turn", "id": "from-a-newer-release"}\n')

    with ConversationLog.open(log_url, settings=settings) as log:
        assert log.flush() == 0
        assert [t.turn_id for t in log.turns(conversation_id)] == turn_ids

    rejected = [
        json.loads(line)
        for line in (journal.directory / "rejected.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert len(rejected) == 1
    assert "unknown entry format 99" in rejected[0]["reason"]
    assert "from-a-newer-release" in rejected[0]["entry"]


KILLED_REPLAY_TURNS = 600
# Rows the child must have written before it is killed, so the kill lands mid-replay.
KILL_AFTER_ROWS = 30

REPLAY_CHILD = """
import sys
from pathlib import Path
from chat_ui.log import ConversationLog, LogSettings
settings = LogSettings(journal_dir=Path(sys.argv[2]), replay_batch_size=1, replay_interval_s=0.1)
log = ConversationLog.open(sys.argv[1], settings=settings)
log.flush(timeout=600)
print("replayed everything before the kill", flush=True)
"""


def test_killed_replay_loses_and_duplicates_nothing(
    log_url: str, tmp_path: Path, settings: LogSettings
) -> None:
    # The schema exists before the child starts, so the parent can count rows.
    ConversationLog.open(log_url, settings=settings.model_copy(update={"journal_dir": tmp_path / "other"})).close()
    conversation_id, turn_ids = journaled_conversation(
        log_url, settings.journal_dir, KILLED_REPLAY_TURNS
    )
    child = subprocess.Popen(
        [sys.executable, "-c", REPLAY_CHILD, log_url, str(settings.journal_dir)],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while sum(count_turns(log_url, turn_ids).values()) < KILL_AFTER_ROWS:
            assert child.poll() is None, child.stderr.read().decode() if child.stderr else ""
            assert time.monotonic() < deadline, "the child did not start replaying"
            time.sleep(0.005)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)

    written_before_kill = sum(count_turns(log_url, turn_ids).values())
    assert KILL_AFTER_ROWS <= written_before_kill < KILLED_REPLAY_TURNS, "not killed mid-replay"
    assert journal_for(log_url, settings.journal_dir).backlog() == KILLED_REPLAY_TURNS + 1

    with ConversationLog.open(log_url, settings=settings) as log:
        assert log.flush(timeout=120) == 0
        stored = [t.turn_id for t in log.turns(conversation_id)]

    assert stored == turn_ids
    assert set(count_turns(log_url, turn_ids).values()) == {1}
    assert not (journal_for(log_url, settings.journal_dir).directory / "rejected.jsonl").exists()


def test_full_queue_overflows_to_journal(
    tmp_path: Path, settings: LogSettings, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"sqlite:///{tmp_path}/log.sqlite3"
    small = settings.model_copy(update={"writer_queue_size": 2, "writer_batch_size": 1})
    log = ConversationLog.open(url, settings=small)
    conversation_id = log.start_conversation()
    assert log.flush() == 0

    # Another process holds SQLite's write lock, so the writer waits on its first batch.
    blocker = sqlite3.connect(tmp_path / "log.sqlite3", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        caplog.set_level(logging.WARNING, logger="chat_ui.log.writer")
        durations: list[float] = []
        turn_ids = []
        for index in range(10):
            started = time.perf_counter()
            turn_ids.append(log.record_turn(make_turn(conversation_id, question=str(index))))
            durations.append(time.perf_counter() - started)
        time.sleep(0.5)
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()

    assert max(durations) < 0.5, "record_turn waited for the locked database"
    assert log.flush() == 0
    # Overflowing entries may reach the database out of order, but all of them arrive.
    assert sorted(t.turn_id for t in log.turns(conversation_id)) == sorted(turn_ids)
    assert set(count_turns(url, turn_ids).values()) == {1}
    assert any("queue" in record.getMessage() for record in caplog.records)
    log.close()


@pytest.fixture
def journal_files(settings: LogSettings) -> Iterator[Callable[[], list[Path]]]:
    yield lambda: sorted(settings.journal_dir.rglob("*.jsonl"))


def test_close_during_outage_keeps_turns(
    tmp_path: Path, settings: LogSettings, journal_files: Callable[[], list[Path]]
) -> None:
    directory = tmp_path / "db"
    url = f"sqlite:///{directory}/log.sqlite3"
    log = ConversationLog.open(url, settings=settings)
    conversation_id = log.start_conversation()
    log.flush()
    directory.rename(tmp_path / "db-away")

    turn_ids = [log.record_turn(make_turn(conversation_id)) for _ in range(5)]
    log.close()

    assert len(journal_files()) == 1
    (tmp_path / "db-away").rename(directory)
    with ConversationLog.open(url, settings=settings) as reopened:
        assert reopened.flush() == 0
        assert [t.turn_id for t in reopened.turns(conversation_id)] == turn_ids
    assert journal_files() == []
    assert os.listdir(settings.journal_dir)  # the per-database directory stays


def test_write_racing_close_journaled(tmp_path: Path, settings: LogSettings) -> None:
    # A worker thread passed the closed-check just before another thread closed the log.
    from chat_ui.log.database import open_database
    from chat_ui.log.models import build_models
    from chat_ui.log.writer import BackgroundWriter

    url = f"sqlite:///{tmp_path}/log.sqlite3"
    ConversationLog.open(url, settings=settings).close()
    target = parse_database_url(url)
    database = open_database(target)
    journal = journal_for(url, settings.journal_dir)
    writer = BackgroundWriter(
        database,
        build_models(database),
        journal,
        settings,
        database_name=target.display_name,
        describe_error=str,
        redact=None,
    )
    writer.start()
    assert writer.stop(timeout=10)

    conversation_id = uuid.uuid4()
    writer.submit(conversation_entry(conversation_id, "late", "경합", utc_now()))

    assert journal.backlog() == 1
    with ConversationLog.open(url, settings=settings) as log:
        assert log.flush() == 0
        assert log.get_conversation(str(conversation_id)).title == "경합"
