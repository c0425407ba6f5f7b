"""Usage statistics for the admin page on SQLite and MariaDB, and the /admin page over HTTP.

The turns and feedback are written through the real log. A second connection then moves
their created_at times to known days, so the log looks like one that has run for weeks.
"""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone

import httpx
import peewee
import pytest
from pydantic import SecretStr

from chat_ui.errors import InvalidLogValueError
from chat_ui.log import ConversationLog, TurnRecord
from chat_ui.log.models import build_models
from chat_ui.log.stats import MAX_WINDOW_DAYS, collect_stats, percentile

# Noon UTC of today, so that "an hour ago" is always today.
NOW = datetime.combine(datetime.now(timezone.utc).date(), time(12, 0))


@pytest.fixture(params=["sqlite", "mariadb"])
def backend(request, tmp_path):
    """(log URL, a peewee database on the same data) for each supported backend."""
    if request.param == "sqlite":
        path = tmp_path / "log.sqlite3"
        return f"sqlite:///{path}", peewee.SqliteDatabase(str(path))
    name = request.getfixturevalue("mariadb_database")
    url = request.getfixturevalue("mariadb_url")
    return url, peewee.MySQLDatabase(name, host="127.0.0.1", port=3306, user="root", password="")


def _turn(log, conversation_id, status, latency_ms, first_token_ms=None, question="질문"):
    return log.record_turn(
        TurnRecord(
            conversation_id=conversation_id,
            question=question,
            answer="" if status != "ok" else "답변",
            model_id="m",
            model_base_url="http://127.0.0.1:9/v1",
            latency_ms=latency_ms,
            first_token_ms=first_token_ms,
            status=status,
        )
    )


@pytest.fixture
def seeded(backend):
    """A log with turns today, two days ago and ten days ago, and votes on them."""
    url, database = backend
    log = ConversationLog.open(url)
    conversation = log.start_conversation(user="alice", title="t")
    hour_ago = NOW - timedelta(hours=1)
    two_days = NOW - timedelta(days=2)
    ten_days = NOW - timedelta(days=10)

    when = {
        _turn(log, conversation, "ok", 100, 10): hour_ago,
        _turn(log, conversation, "ok", 200, 20): hour_ago,
        _turn(log, conversation, "ok", 300): hour_ago,
        _turn(log, conversation, "error", 50): hour_ago,
        _turn(log, conversation, "no_answer", 5, question="문서에 없는 질문 A"): hour_ago - timedelta(minutes=1),
        _turn(log, conversation, "ok", 1000, 100): two_days,
        _turn(log, conversation, "no_answer", 5, question="older question B"): two_days,
        _turn(log, conversation, "ok", 5000, 500): ten_days,
        _turn(log, conversation, "no_answer", 5, question="ancient question C"): ten_days,
    }
    turns = list(when)
    # alice changes her vote from up to down, bob votes up, carol only comments, and dave's
    # vote on the old turn is ten days old.
    votes = {
        log.record_feedback(turns[0], 1, user="alice"): hour_ago - timedelta(minutes=30),
        log.record_feedback(turns[0], -1, user="alice"): hour_ago,
        log.record_feedback(turns[0], 1, user="bob"): hour_ago,
        log.record_feedback(turns[0], 0, "a comment", user="carol"): hour_ago,
        log.record_feedback(turns[7], 1, user="dave"): ten_days,
    }
    assert log.flush() == 0

    models = build_models(database)
    with database.connection_context():
        for turn_id, created_at in when.items():
            models.turn.update(created_at=created_at).where(models.turn.id == turn_id).execute()
        for feedback_id, created_at in votes.items():
            models.feedback.update(created_at=created_at).where(models.feedback.id == feedback_id).execute()
    database.close()

    yield log
    log.close()


def test_week_statistics(seeded):
    stats = collect_stats(seeded, 7, now=NOW)

    assert stats.turns == 7
    assert stats.status_counts == {"ok": 4, "error": 1, "no_answer": 2}
    assert stats.error_rate == pytest.approx(1 / 7)
    # Answered turns: 100, 200, 300 and 1000 ms; the ten-day-old 5000 ms is outside.
    assert stats.latency_samples == 4
    assert stats.latency_median_ms == pytest.approx(250.0)
    assert stats.latency_p95_ms == pytest.approx(895.0)
    assert stats.first_token_median_ms == pytest.approx(20.0)
    assert stats.first_token_p95_ms == pytest.approx(92.0)
    assert (stats.feedback_up, stats.feedback_down) == (1, 1)
    assert stats.feedback_up_ratio == pytest.approx(0.5)
    assert [item.question for item in stats.unanswered] == ["문서에 없는 질문 A", "older question B"]


def test_week_statistics_per_day(seeded):
    stats = collect_stats(seeded, 7, now=NOW)

    assert [row.day for row in stats.per_day] == [NOW.date() - timedelta(days=n) for n in range(6, -1, -1)]
    by_day = {row.day: row for row in stats.per_day}
    today = by_day[NOW.date()]
    assert (today.turns, today.errors, today.no_answer) == (5, 1, 1)
    two_days = by_day[NOW.date() - timedelta(days=2)]
    assert (two_days.turns, two_days.errors, two_days.no_answer) == (2, 0, 1)
    assert sum(row.turns for row in stats.per_day) == stats.turns


def test_month_statistics_include_older_turns(seeded):
    stats = collect_stats(seeded, 30, now=NOW)

    assert stats.turns == 9
    assert len(stats.per_day) == 30
    assert stats.latency_samples == 5
    assert (stats.feedback_up, stats.feedback_down) == (2, 1)
    assert [item.question for item in stats.unanswered][-1] == "ancient question C"


def test_unanswered_list_is_limited(seeded):
    stats = collect_stats(seeded, 30, now=NOW, unanswered_limit=1)

    assert [item.question for item in stats.unanswered] == ["문서에 없는 질문 A"]
    assert stats.unanswered[0].asked_at.tzinfo is not None


def test_empty_window_has_no_rates(tmp_path):
    with ConversationLog.open(f"sqlite:///{tmp_path / 'log.sqlite3'}") as log:
        stats = collect_stats(log, 7)

    assert stats.turns == 0
    assert stats.error_rate is None
    assert stats.latency_median_ms is None
    assert stats.feedback_up_ratio is None
    assert len(stats.per_day) == 7


@pytest.mark.parametrize("window", [0, MAX_WINDOW_DAYS + 1, True, "7"])  # zero, too long, a bool, a str
def test_window_outside_limits_is_rejected(tmp_path, window):
    with ConversationLog.open(f"sqlite:///{tmp_path / 'log.sqlite3'}") as log:
        with pytest.raises(InvalidLogValueError, match="window_days"):
            collect_stats(log, window)


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 50, None),  # no data
        ([7.0], 95, 7.0),  # one value is every percentile
        ([1.0, 2.0, 3.0, 4.0], 50, 2.5),  # median of an even count
        ([4.0, 1.0, 3.0, 2.0], 50, 2.5),  # order does not matter
        ([100.0, 200.0, 300.0, 1000.0], 95, 895.0),  # interpolates between the top two
        ([1.0, 2.0], 100, 2.0),  # the maximum
        ([1.0, 2.0], 0, 1.0),  # the minimum
    ],
)
def test_percentile(values, q, expected):
    result = percentile(values, q)

    assert result == (None if expected is None else pytest.approx(expected))


# ---------------------------------------------------------------------------------------
# The /admin page, launched beside the chat on 127.0.0.1


@pytest.fixture
def admin_server(launch_chat_app):
    """(URL, pipeline) of the chat app with accounts alice (an admin) and bob."""
    from chat_ui.auth import hash_password
    from chat_ui.ops_settings import OpsSettings

    users = ",".join(f"{name}:{hash_password(name + '-pw', iterations=1000)}" for name in ("alice", "bob"))
    ops = OpsSettings(auth_users=SecretStr(users), admin_users="alice")
    app = launch_chat_app(ops)
    return app.url, app.pipeline


def test_admin_page_needs_an_admin_sign_in(admin_server):
    url, _ = admin_server

    with httpx.Client(base_url=url, trust_env=False, timeout=30) as client:
        assert client.get("/admin/config").status_code == 401
        assert client.post("/admin/gradio_api/call/stats", json={"data": [7]}).status_code == 401
        # bob may use the chat but not the admin page.
        assert client.post("/login", data={"username": "bob", "password": "bob-pw"}).status_code == 200
        assert client.post("/admin/login", data={"username": "bob", "password": "bob-pw"}).status_code == 400
        assert client.get("/admin/config").status_code == 401

        assert client.post("/admin/login", data={"username": "alice", "password": "alice-pw"}).status_code == 200
        assert client.get("/admin/config").status_code == 200


def test_admin_statistics_through_gradio_client(admin_server, fake_tgi):
    from gradio_client import Client

    url, pipeline = admin_server
    fake_tgi.queue(deltas=["답변 [1]"])
    updates = list(pipeline.stream("특허출원은 언제 공개되나요?"))
    assert updates[-1].status == "ok"
    assert pipeline.log.flush() == 0

    client = Client(f"{url}/admin/", auth=("alice", "alice-pw"), verbose=False)
    result = client.predict(7, api_name="/stats")

    turns, error_rate, *_rest, per_day, unanswered = result
    assert turns == 1
    assert error_rate == 0.0
    assert per_day["data"][-1][1] == 1
    assert unanswered["data"] == []


def test_admin_client_rejects_non_admin(admin_server):
    from gradio_client import Client

    url, _ = admin_server

    with pytest.raises(ValueError):
        Client(f"{url}/admin/", auth=("bob", "bob-pw"), verbose=False)
