"""Conversation log on a real SQLite file and a real MariaDB server: round trips, checks,
URLs and failures. Migrations, the pool, the journal, privacy and secrets have their own
test_log_*.py files."""

from __future__ import annotations

import math
import shutil
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import timezone
from pathlib import Path
from typing import Any

import pymysql
import pytest

from chat_ui.errors import (
    ChatUIError,
    ConversationNotFoundError,
    InvalidDatabaseURL,
    InvalidLogValueError,
    LogClosedError,
    LogDatabaseError,
    TurnNotFoundError,
)
from chat_ui.log import TURN_STATUSES, ConversationLog, LogSettings, TurnRecord, mask_url
from chat_ui.log.database import parse_database_url
from tests.chat_ui import support

# 30,000 distinct-looking Hangul syllables: 90,000 UTF-8 bytes, beyond MySQL TEXT's 65,535.
LONG_HANGUL = "".join(chr(0xAC00 + (i * 7919) % 11172) for i in range(30_000))
# Emoji with a skin-tone modifier, a ZWJ sequence, and U+2070E, a 4-byte CJK ideograph.
FOUR_BYTE_TEXT = "😀 👍🏽 👩‍💻 𠜎"


def cited_source(n: int = 1, **overrides: Any) -> dict[str, Any]:
    source = {
        "n": n,
        "chunk_id": f"lshort-ko.pdf#p12-c{n}",
        "file_name": "lshort-ko.pdf",
        "page": 12,
        "score": 0.8125,
        "source_uri": "s3://veraclaim-docs/ko/lshort-ko.pdf",
    }
    source.update(overrides)
    return source


def make_turn(conversation_id: str, **overrides: Any) -> TurnRecord:
    """Build a turn with a cited source and a first-token time, so round trips cover them."""
    fields: dict[str, Any] = {
        "question": "청구항 1의 구성요소는 무엇인가요?",
        "answer": "청구항 1은 세 가지 구성요소로 이루어집니다 [1].",
        "sources": [cited_source(1)],
        "latency_ms": 1830,
        "first_token_ms": 212,
    }
    fields.update(overrides)
    return support.make_turn(conversation_id, **fields)


@pytest.fixture
def sqlite_log(tmp_path: Path, settings: LogSettings) -> Iterator[ConversationLog]:
    conversation_log = ConversationLog.open(f"sqlite:///{tmp_path}/log.sqlite3", settings=settings)
    yield conversation_log
    conversation_log.close()


# Round trips on both backends.


def test_turn_round_trip_keeps_fields(log: ConversationLog) -> None:
    conversation_id = log.start_conversation(user="examiner-7", title="청구항 해석")
    sources = [
        cited_source(1),
        cited_source(2, page=None, source_uri=None, score=-3.25e-05),
        # An extra key that a later pipeline might add survives the round trip.
        cited_source(3, file_name="특허공보 10-2020-0012345.pdf", section="claims"),
    ]
    record = make_turn(conversation_id, sources=sources)

    turn_id = log.record_turn(record)
    stored = log.get_turn(turn_id)

    assert stored.turn_id == turn_id
    assert stored.conversation_id == conversation_id
    assert stored.question == record.question
    assert stored.answer == record.answer
    assert stored.sources == sources
    assert stored.model_id == "Qwen/Qwen3-8B"
    assert stored.model_base_url == "http://127.0.0.1:8080/v1"
    assert stored.latency_ms == 1830
    assert stored.first_token_ms == 212
    assert stored.status == "ok"
    assert stored.error_type is None
    assert stored.error_message is None
    assert stored.created_at.tzinfo is timezone.utc


def test_long_hangul_and_emoji_survive(log: ConversationLog) -> None:
    text = LONG_HANGUL + FOUR_BYTE_TEXT
    assert len(text.encode("utf-8")) > 65_535
    conversation_id = log.start_conversation(user="사용자😀", title="긴 답변 𠜎")
    record = make_turn(
        conversation_id,
        question=FOUR_BYTE_TEXT + " 이 문자들이 저장되나요?",
        answer=text,
        sources=[cited_source(1, file_name=f"{FOUR_BYTE_TEXT}.pdf")],
        status="error",
        error_type="ModelServerError",
        error_message=text,
    )

    stored = log.get_turn(log.record_turn(record))

    assert stored.answer == text
    assert stored.error_message == text
    assert stored.question == record.question
    assert stored.sources[0]["file_name"] == f"{FOUR_BYTE_TEXT}.pdf"
    conversation = log.get_conversation(conversation_id)
    assert conversation.user == "사용자😀"
    assert conversation.title == "긴 답변 𠜎"


def test_turns_listed_oldest_first(log: ConversationLog) -> None:
    conversation_id = log.start_conversation()
    other_id = log.start_conversation()
    questions = ["첫 번째 질문", "두 번째 질문", "세 번째 질문"]
    turn_ids = [log.record_turn(make_turn(conversation_id, question=q)) for q in questions]
    log.record_turn(make_turn(other_id, question="다른 대화"))

    turns = log.turns(conversation_id)

    assert [t.turn_id for t in turns] == turn_ids
    assert [t.question for t in turns] == questions
    assert turns[0].created_at <= turns[1].created_at <= turns[2].created_at
    assert log.turns(log.start_conversation()) == []


def test_record_turn_moves_updated_at(log: ConversationLog) -> None:
    conversation_id = log.start_conversation(user="examiner-7")
    before = log.get_conversation(conversation_id)
    assert before.updated_at == before.created_at

    turn = log.get_turn(log.record_turn(make_turn(conversation_id)))
    after = log.get_conversation(conversation_id)

    assert after.updated_at == turn.created_at
    assert after.updated_at > before.updated_at
    assert after.created_at == before.created_at


def test_conversations_listed_by_activity(log: ConversationLog) -> None:
    first = log.start_conversation(user="examiner-7", title="first")
    second = log.start_conversation(user="examiner-7", title="second")
    log.start_conversation(user="examiner-8", title="someone else's")
    anonymous = log.start_conversation(title="no user")
    log.record_turn(make_turn(first))

    listed = log.conversations("examiner-7")

    assert [c.conversation_id for c in listed] == [first, second]
    assert [c.title for c in listed] == ["first", "second"]
    assert [c.conversation_id for c in log.conversations(None)] == [anonymous]
    assert len(log.conversations("examiner-7", limit=1)) == 1


STATUS_CASES = [
    ("ok", None, None),  # answered from the sources
    ("no_answer", None, None),  # nothing relevant in the index
    # the model server was down
    ("error", "ModelServerUnavailable", "Connection refused: http://127.0.0.1:8080/v1"),
    ("interrupted", None, None),  # the user pressed stop before the last token
]


@pytest.mark.parametrize(("status", "error_type", "error_message"), STATUS_CASES)
def test_status_and_error_fields_stored(
    log: ConversationLog, status: str, error_type: str | None, error_message: str | None
) -> None:
    conversation_id = log.start_conversation()
    record = make_turn(
        conversation_id,
        status=status,
        first_token_ms=None,
        error_type=error_type,
        error_message=error_message,
    )

    stored = log.get_turn(log.record_turn(record))

    assert stored.status == status
    assert stored.error_type == error_type
    assert stored.error_message == error_message
    assert stored.first_token_ms is None


def test_status_cases_cover_every_status() -> None:
    assert sorted(case[0] for case in STATUS_CASES) == sorted(TURN_STATUSES)


def test_float_times_rounded_to_ms(log: ConversationLog) -> None:
    conversation_id = log.start_conversation()
    record = make_turn(conversation_id, latency_ms=1234.6, first_token_ms=0.4)

    stored = log.get_turn(log.record_turn(record))

    assert stored.latency_ms == 1235
    assert stored.first_token_ms == 0


def test_unknown_ids_raise_lookup_errors(log: ConversationLog) -> None:
    unknown = str(uuid.uuid4())

    with pytest.raises(ConversationNotFoundError, match="not a UUID"):
        log.record_turn(make_turn("not-an-id"))
    with pytest.raises(ConversationNotFoundError, match=unknown):
        log.turns(unknown)
    with pytest.raises(ConversationNotFoundError, match="not a UUID"):
        log.turns("not-an-id")
    with pytest.raises(TurnNotFoundError, match=unknown):
        log.get_turn(unknown)
    with pytest.raises(LookupError):
        log.get_conversation("")


def test_turn_of_unknown_conversation_kept(log: ConversationLog) -> None:
    # A conversation started by another replica whose row has not arrived yet.
    unknown = str(uuid.uuid4())

    turn_id = log.record_turn(make_turn(unknown, question="다른 복제본의 대화"))

    assert [t.turn_id for t in log.turns(unknown)] == [turn_id]
    conversation = log.get_conversation(unknown)
    assert conversation.user is None
    assert conversation.title == ""


def test_record_turn_returns_before_write(log: ConversationLog) -> None:
    conversation_id = log.start_conversation()

    turn_id = log.record_turn(make_turn(conversation_id))

    assert uuid.UUID(turn_id)
    assert log.flush() == 0
    assert log.get_turn(turn_id).conversation_id == conversation_id


def test_second_log_reads_first_logs_turns(log_url: str, settings: LogSettings) -> None:
    # The chat pipeline writes through one log while the API reads through another.
    with ConversationLog.open(log_url, settings=settings) as writer:
        with ConversationLog.open(log_url, settings=settings) as reader:
            conversation_id = writer.start_conversation()
            turn_id = writer.record_turn(make_turn(conversation_id))

            assert reader.get_turn(turn_id).turn_id == turn_id


def test_reopen_keeps_stored_turns(log_url: str, settings: LogSettings) -> None:
    with ConversationLog.open(log_url, settings=settings) as first:
        conversation_id = first.start_conversation(user="examiner-7")
        turn_id = first.record_turn(make_turn(conversation_id))

    with ConversationLog.open(log_url, settings=settings) as second:
        assert [t.turn_id for t in second.turns(conversation_id)] == [turn_id]


def test_concurrent_writers_all_stored(log: ConversationLog) -> None:
    # Gradio runs several chat events at once, each in its own worker thread.
    conversation_id = log.start_conversation()
    errors: list[BaseException] = []

    def write_turns(worker: int) -> None:
        try:
            for index in range(10):
                log.record_turn(make_turn(conversation_id, question=f"{worker}-{index}"))
        except BaseException as error:  # reported by the assert below
            errors.append(error)

    threads = [threading.Thread(target=write_turns, args=(worker,)) for worker in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    questions = {t.question for t in log.turns(conversation_id)}
    assert questions == {f"{w}-{i}" for w in range(4) for i in range(10)}


def test_closed_log_rejects_calls(log: ConversationLog) -> None:
    conversation_id = log.start_conversation()
    log.close()
    log.close()

    with pytest.raises(LogClosedError, match="closed"):
        log.record_turn(make_turn(conversation_id))
    with pytest.raises(LogClosedError):
        log.turns(conversation_id)
    with pytest.raises(LogClosedError):
        log.flush()


def test_close_writes_queued_turns(log_url: str, settings: LogSettings) -> None:
    log = ConversationLog.open(log_url, settings=settings)
    conversation_id = log.start_conversation()
    turn_ids = [log.record_turn(make_turn(conversation_id, question=str(i))) for i in range(50)]
    log.close()

    with ConversationLog.open(log_url, settings=settings) as reopened:
        assert [t.turn_id for t in reopened.turns(conversation_id)] == turn_ids
        assert reopened.journal_backlog() == 0


def test_turn_details_round_trip(log: ConversationLog) -> None:
    conversation_id = log.start_conversation()
    record = make_turn(
        conversation_id,
        index_version="2026-12-01T03:00:00Z-7f3a",
        search_query="청구항 1 구성요소",
        reasoning="<think>청구항 1을 먼저 찾는다.</think>" + FOUR_BYTE_TEXT,
        sampling_params={"temperature": 0.3, "top_p": 0.9, "max_tokens": 512, "seed": None},
        input_tokens=1834,
        output_tokens=211,
    )

    stored = log.get_turn(log.record_turn(record))

    assert stored.index_version == record.index_version
    assert stored.search_query == record.search_query
    assert stored.reasoning == record.reasoning
    assert stored.answer == record.answer
    assert stored.sampling_params == {"temperature": 0.3, "top_p": 0.9, "max_tokens": 512, "seed": None}
    assert stored.input_tokens == 1834
    assert stored.output_tokens == 211


def test_turn_details_default_empty(log: ConversationLog) -> None:
    stored = log.get_turn(log.record_turn(make_turn(log.start_conversation())))

    assert stored.index_version is None
    assert stored.search_query is None
    assert stored.reasoning is None
    assert stored.sampling_params == {}
    assert stored.input_tokens is None
    assert stored.output_tokens is None


def test_feedback_round_trip(log: ConversationLog) -> None:
    turn_id = log.record_turn(make_turn(log.start_conversation()))

    first = log.record_feedback(turn_id, -1, comment="출처 페이지가 틀림 😀", user="examiner-7")
    second = log.record_feedback(turn_id, 1)
    stored = log.feedback(turn_id)

    assert [f.feedback_id for f in stored] == [first, second]
    assert [f.rating for f in stored] == [-1, 1]
    assert stored[0].comment == "출처 페이지가 틀림 😀"
    assert stored[0].user == "examiner-7"
    assert stored[1].comment == ""
    assert stored[1].user is None
    assert stored[0].created_at.tzinfo is timezone.utc
    assert log.feedback(str(uuid.uuid4())) == []


def test_feedback_on_unknown_turn_rejected_to_file(log: ConversationLog) -> None:
    unknown_turn = str(uuid.uuid4())

    feedback_id = log.record_feedback(unknown_turn, 1, comment="orphan")

    assert log.flush() == 0
    assert log.feedback(unknown_turn) == []
    rejected = (Path(log.journal_directory) / "rejected.jsonl").read_text(encoding="utf-8")
    assert feedback_id in rejected
    assert unknown_turn in rejected


# Checks that run before the database, so SQLite stands for both backends.


INVALID_TURNS = [
    ({"status": "done"}, "status"),  # not one of the four statuses
    ({"latency_ms": -1}, "latency_ms"),  # negative time
    ({"latency_ms": math.nan}, "latency_ms"),  # not a number
    ({"latency_ms": True}, "latency_ms"),  # bool is an int subclass, not a time
    ({"first_token_ms": "212"}, "first_token_ms"),  # number as text
    ({"question": None}, "question"),  # missing text
    ({"answer": "반쪽 \ud800 문자"}, "answer"),  # lone surrogate, not encodable as UTF-8
    ({"model_id": "m" * 513}, "model_id"),  # longer than its VARCHAR(512)
    ({"error_type": "E" * 256}, "error_type"),  # longer than its VARCHAR(255)
    ({"sources": cited_source(1)}, "sources must be a list"),  # one source, not a list
    ({"sources": [["n", 1]]}, r"sources\[0\]"),  # pair list instead of a mapping
    # four of the six keys missing
    ({"sources": [{"n": 1, "chunk_id": "c"}]}, "file_name, page, score, source_uri"),
    ({"sources": [cited_source(1, score=math.nan)]}, "JSON"),  # strict JSON has no NaN
    ({"sources": [cited_source(1, chunk_id=object())]}, "JSON"),  # not JSON-serialisable
    ({"index_version": "v" * 256}, "index_version"),  # longer than its VARCHAR(255)
    ({"reasoning": 42}, "reasoning"),  # not text
    ({"input_tokens": -1}, "input_tokens"),  # negative count
    ({"output_tokens": 2.5}, "output_tokens"),  # not a whole number of tokens
    ({"output_tokens": False}, "output_tokens"),  # bool is an int subclass, not a count
    ({"sampling_params": [("temperature", 0.3)]}, "sampling_params must be a mapping"),  # pairs
    ({"sampling_params": {"stop": ["</s>"]}}, r"sampling_params\['stop'\]"),  # a list value
    ({"sampling_params": {"temperature": math.inf}}, "JSON"),  # strict JSON has no infinity
    ({"sampling_params": {1: 0.3}}, "keys must be str"),  # a non-text key
]


@pytest.mark.parametrize(("overrides", "message"), INVALID_TURNS)
def test_invalid_turn_rejected(
    sqlite_log: ConversationLog, overrides: dict[str, Any], message: str
) -> None:
    conversation_id = sqlite_log.start_conversation()

    with pytest.raises(InvalidLogValueError, match=message):
        sqlite_log.record_turn(make_turn(conversation_id, **overrides))

    assert sqlite_log.turns(conversation_id) == []


INVALID_CONVERSATIONS = [
    ({"user": "u" * 256}, "user"),  # longer than its VARCHAR(255)
    ({"title": "제" * 256}, "title"),  # 256 Hangul characters, one past the limit
    ({"title": None}, "title"),  # missing text
]


@pytest.mark.parametrize(("arguments", "message"), INVALID_CONVERSATIONS)
def test_invalid_conversation_rejected(
    sqlite_log: ConversationLog, arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(InvalidLogValueError, match=message):
        sqlite_log.start_conversation(**arguments)

    assert sqlite_log.conversations(arguments.get("user")) == []


def test_invalid_limit_rejected(sqlite_log: ConversationLog) -> None:
    with pytest.raises(InvalidLogValueError, match="limit"):
        sqlite_log.conversations("examiner-7", limit=0)


INVALID_FEEDBACK = [
    ({"rating": 5}, "rating must be one of -1, 0, 1"),  # a five-star scale is not supported
    ({"rating": True}, "rating"),  # bool is an int subclass, not a rating
    ({"rating": 1, "comment": None}, "comment"),  # missing text
    ({"rating": 1, "user": "u" * 256}, "user"),  # longer than its VARCHAR(255)
]


@pytest.mark.parametrize(("arguments", "message"), INVALID_FEEDBACK)
def test_invalid_feedback_rejected(
    sqlite_log: ConversationLog, arguments: dict[str, Any], message: str
) -> None:
    turn_id = sqlite_log.record_turn(make_turn(sqlite_log.start_conversation()))

    with pytest.raises(InvalidLogValueError, match=message):
        sqlite_log.record_feedback(turn_id, **arguments)

    assert sqlite_log.feedback(turn_id) == []


def test_feedback_on_non_uuid_turn_rejected(sqlite_log: ConversationLog) -> None:
    with pytest.raises(TurnNotFoundError, match="not a UUID"):
        sqlite_log.record_feedback("turn-1", 1)


def test_record_is_not_changed_by_log(sqlite_log: ConversationLog) -> None:
    conversation_id = sqlite_log.start_conversation()
    record = make_turn(conversation_id)
    copy = replace(record, sources=[dict(s) for s in record.sources])

    sqlite_log.record_turn(record)

    assert record == copy


# MariaDB storage. The schema itself is tested in test_log_schema.py.


def test_mariadb_stores_long_text_bytes(
    mariadb_url: str,
    mariadb_database: str,
    mariadb_admin: pymysql.connections.Connection,
    settings: LogSettings,
) -> None:
    text = LONG_HANGUL + FOUR_BYTE_TEXT
    with ConversationLog.open(mariadb_url, settings=settings) as log:
        turn_id = log.record_turn(make_turn(log.start_conversation(), answer=text))

    with mariadb_admin.cursor() as cursor:
        cursor.execute(
            f"SELECT LENGTH(answer), CHAR_LENGTH(answer) FROM `{mariadb_database}`.turn"
            " WHERE id = %s",
            (uuid.UUID(turn_id).hex,),
        )
        byte_length, char_length = cursor.fetchone()

    assert byte_length == len(text.encode("utf-8"))
    assert char_length == len(text)


def test_mariadb_close_ends_server_sessions(
    mariadb_url: str,
    mariadb_database: str,
    mariadb_admin: pymysql.connections.Connection,
    settings: LogSettings,
) -> None:
    def server_sessions() -> int:
        with mariadb_admin.cursor() as cursor:
            cursor.execute(
                "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = %s",
                (mariadb_database,),
            )
            return cursor.fetchone()[0]

    with ConversationLog.open(mariadb_url, settings=settings) as log:
        log.record_turn(make_turn(log.start_conversation()))
        log.flush()
        assert log.connections_in_use() == 0
        assert 1 <= server_sessions() <= settings.pool_max_connections

    # The server ends a session shortly after the client's COM_QUIT.
    deadline = time.monotonic() + 5
    while server_sessions() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server_sessions() == 0


def test_two_open_logs_stay_separate(
    tmp_path: Path, mariadb_url: str, settings: LogSettings
) -> None:
    with (
        ConversationLog.open(f"sqlite:///{tmp_path}/log.sqlite3", settings=settings) as sqlite_log,
        ConversationLog.open(mariadb_url, settings=settings) as mariadb_log,
    ):
        sqlite_conversation = sqlite_log.start_conversation(user="sqlite-user")
        mariadb_conversation = mariadb_log.start_conversation(user="mariadb-user")
        sqlite_log.record_turn(make_turn(sqlite_conversation, question="sqlite"))
        mariadb_log.record_turn(make_turn(mariadb_conversation, question="mariadb"))

        assert [t.question for t in sqlite_log.turns(sqlite_conversation)] == ["sqlite"]
        assert [t.question for t in mariadb_log.turns(mariadb_conversation)] == ["mariadb"]
        with pytest.raises(ConversationNotFoundError):
            sqlite_log.turns(mariadb_conversation)
        assert mariadb_log.conversations("sqlite-user") == []


# URLs and failures.


BAD_URLS = [
    # a scheme peewee supports but the log does not
    ("postgres://veraclaim:pg-secret@db.internal/log", "unsupported scheme 'postgres'"),
    ("var/veraclaim.sqlite3", "no scheme"),  # a bare path
    ("", "no scheme"),  # empty setting
    ("sqlite://var/veraclaim.sqlite3", "names no host"),  # two slashes: "var" reads as the host
    ("sqlite:///", "does not persist"),  # no file name
    ("sqlite:///:memory:", "does not persist"),  # gone when the per-call connection closes
    ("sqlite:///log.sqlite3?timeout=5", "no query options"),  # SQLite options are not passed on
    ("mysql://root@127.0.0.1:port/log", "invalid port"),  # port is not a number
    ("mysql://127.0.0.1:3306/log", "no user"),  # user missing
    ("mysql://root@:3306/log", "no host"),  # host missing
    ("mysql://root@127.0.0.1:3306/", "invalid database name"),  # database missing
    ("mysql://root@127.0.0.1/log/extra", "invalid database name"),  # a path, not a name
    ("mysql://root@127.0.0.1/log?charset=latin1", "unknown option 'charset'"),  # fixed to utf8mb4
    # a zero timeout
    ("mysql://root@127.0.0.1/log?connect_timeout=0", "invalid value for connect_timeout"),
    # a flag that is neither true nor false
    ("mysql://root@127.0.0.1/log?ssl_verify_cert=maybe", "invalid value for ssl_verify_cert"),
]


@pytest.mark.parametrize(("url", "message"), BAD_URLS)
def test_bad_url_rejected(url: str, message: str) -> None:
    with pytest.raises(InvalidDatabaseURL, match=message) as caught:
        ConversationLog.open(url)

    assert isinstance(caught.value, ValueError)
    assert mask_url(url) in str(caught.value)


def test_unknown_scheme_names_accepted_forms() -> None:
    with pytest.raises(InvalidDatabaseURL) as caught:
        ConversationLog.open("postgres://veraclaim:pg-secret@db.internal/log")

    message = str(caught.value)
    assert "sqlite:///path/to/file.sqlite3" in message
    assert "mysql://user:password@host:port/dbname" in message
    assert "postgres://veraclaim:***@db.internal/log" in message
    assert "pg-secret" not in message


MASK_CASES = [
    ("mysql://veraclaim:s3cret@db:3306/log", "mysql://veraclaim:***@db:3306/log"),  # plain
    ("mysql://veraclaim:p%40ss@db/log", "mysql://veraclaim:***@db/log"),  # percent-encoded @
    ("mysql://veraclaim:p@ss@db/log", "mysql://veraclaim:***@db/log"),  # unescaped @
    ("mysql://veraclaim:a/b@db/log", "mysql://veraclaim:***@db/log"),  # unescaped /
    ("mysql://root@127.0.0.1/log", "mysql://root@127.0.0.1/log"),  # no password to mask
    ("mysql://root:@127.0.0.1/log", "mysql://root:***@127.0.0.1/log"),  # empty password
    ("sqlite:///var/veraclaim.sqlite3", "sqlite:///var/veraclaim.sqlite3"),  # no user info
    ("not a url", "not a url"),  # nothing to parse
]


@pytest.mark.parametrize(("url", "masked"), MASK_CASES)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


SCRUB_CASES = [
    # A one-letter password is masked in the URL, and the rest of the message stays readable.
    ("a", "mysql://root:a@127.0.0.1/log: Can't connect (a)", "mysql://root:***@127.0.0.1/log: Can't connect (a)"),
    # Keyword-argument and dict reprs, as a driver's TypeError or a logged config shows them.
    ("pw1", "connect() got password='pw1', host='db'", "connect() got password='***', host='db'"),
    ("pw1", "{'user': 'u', 'password': 'pw1'}", "{'user': 'u', 'password': '***'}"),
    ("x", '{"passwd": "x"}', '{"passwd": "***"}'),
    ("x", "PASSWORD=x&ssl_ca=/etc/ca.pem", "PASSWORD=***&ssl_ca=/etc/ca.pem"),
    # The percent-encoded form in a URL.
    ("p@ss", "mysql://u:p%40ss@h/db", "mysql://u:***@h/db"),
    # A long password is masked anywhere, in case a driver echoes it elsewhere.
    ("Very-Long-Secret-1", "token Very-Long-Secret-1 leaked", "token *** leaked"),
    # A value that only starts with a short password is a different value.
    ("ab", "password=abc", "password=abc"),
    # A short password outside a credential position is ordinary text.
    ("root", "Access denied for user 'root'", "Access denied for user 'root'"),
    # No password: nothing to mask.
    ("", "mysql://root:@h/db", "mysql://root:@h/db"),
]


@pytest.mark.parametrize(("password", "text", "scrubbed"), SCRUB_CASES)
def test_scrub_masks_password_in_credential_position(password: str, text: str, scrubbed: str) -> None:
    target = parse_database_url("mysql://root@127.0.0.1:3306/log").with_password(password)

    assert target.scrub(text) == scrubbed


def test_unreachable_mysql_hides_password() -> None:
    port = support.free_port()
    url = f"mysql://veraclaim:s3cr%40t-pw@127.0.0.1:{port}/log?connect_timeout=2"

    with pytest.raises(LogDatabaseError) as caught:
        ConversationLog.open(url)

    message = str(caught.value)
    assert isinstance(caught.value, ConnectionError)
    assert f"mysql://veraclaim:***@127.0.0.1:{port}/log" in message
    assert "s3cr" not in message
    assert "server is running" in message
    assert caught.value.__cause__ is None


def test_wrong_mysql_password_hidden(
    mariadb_admin: pymysql.connections.Connection, mariadb_database: str
) -> None:
    user = f"veraclaim_pw_{uuid.uuid4().hex[:8]}"
    with mariadb_admin.cursor() as cursor:
        cursor.execute(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'right-Pa55'")
    try:
        with pytest.raises(LogDatabaseError) as caught:
            ConversationLog.open(f"mysql://{user}:Wr0ng-Pa55@127.0.0.1:3306/{mariadb_database}")
    finally:
        with mariadb_admin.cursor() as cursor:
            cursor.execute(f"DROP USER '{user}'@'%'")

    message = str(caught.value)
    assert "Wr0ng-Pa55" not in message
    assert "right-Pa55" not in message
    assert "Access denied" in message
    assert "user and password" in message


def test_missing_mysql_database_explained(mariadb_admin: pymysql.connections.Connection) -> None:
    # mariadb_admin fails the test with the start-the-server message when MariaDB is down.
    name = f"veraclaim_test_missing_{uuid.uuid4().hex[:8]}"

    with pytest.raises(LogDatabaseError, match=f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"):
        ConversationLog.open(f"mysql://root@127.0.0.1:3306/{name}")


def test_dropped_mysql_database_journals_turn(
    mariadb_url: str,
    mariadb_database: str,
    mariadb_admin: pymysql.connections.Connection,
    settings: LogSettings,
) -> None:
    log = ConversationLog.open(mariadb_url, settings=settings)
    conversation_id = log.start_conversation()
    log.flush()
    with mariadb_admin.cursor() as cursor:
        cursor.execute(f"DROP DATABASE `{mariadb_database}`")

    turn_id = log.record_turn(make_turn(conversation_id))

    assert log.flush() == 1
    with pytest.raises(LogDatabaseError) as caught:
        log.get_turn(turn_id)
    message = str(caught.value)
    assert message.startswith("Could not read a turn in MySQL database")
    assert mariadb_database in message
    assert isinstance(caught.value, ChatUIError)

    # Recreated and migrated by a second log, the database receives the journaled turn.
    with mariadb_admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{mariadb_database}` CHARACTER SET utf8mb4")
    ConversationLog.open(mariadb_url, settings=settings).close()
    assert log.flush() == 0
    assert log.get_turn(turn_id).conversation_id == conversation_id
    log.close()


def test_deleted_sqlite_directory_journals_turn(tmp_path: Path, settings: LogSettings) -> None:
    directory = tmp_path / "logs"
    log = ConversationLog.open(f"sqlite:///{directory}/log.sqlite3", settings=settings)
    conversation_id = log.start_conversation()
    log.flush()
    shutil.rmtree(directory)

    turn_id = log.record_turn(make_turn(conversation_id))

    assert log.flush() == 1
    with pytest.raises(LogDatabaseError) as caught:
        log.get_turn(turn_id)
    assert str(directory / "log.sqlite3") in str(caught.value)
    log.close()


def test_sqlite_url_relative_to_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    # The conftest points every test's journal into tmp_path; this test checks the default.
    monkeypatch.delenv("VERACLAIM_LOG_JOURNAL_DIR", raising=False)

    with ConversationLog.open("sqlite:///var/veraclaim.sqlite3") as log:
        log.start_conversation()
        assert str(tmp_path / "var" / "veraclaim.sqlite3") in log.database_name
        # The default journal directory is relative to the working directory too.
        assert log.journal_directory.startswith(str(tmp_path / "var" / "journal"))

    assert (tmp_path / "var" / "veraclaim.sqlite3").is_file()


def test_sqlite_parent_is_file_fails(tmp_path: Path) -> None:
    # A regular file where a directory must go fails even for root, unlike permissions.
    blocker = tmp_path / "blocker"
    blocker.write_text("not a directory")

    with pytest.raises(LogDatabaseError, match="writable path"):
        ConversationLog.open(f"sqlite:///{blocker}/sub/log.sqlite3")
