"""The two Python APIs: the in-process `Veraclaim` class, and the running app's named `ask`
endpoint called through gradio_client. Both run against the fake TGI server, a real index
of two sample PDFs and a real SQLite log."""

from __future__ import annotations

import os

# Before gradio is imported anywhere: no version check or telemetry calls leave the machine.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import socket  # noqa: E402
from collections.abc import Iterator  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from chat_ui.api import Veraclaim  # noqa: E402
from chat_ui.log import ConversationLog  # noqa: E402
from chat_ui.pipeline import AnswerOptions  # noqa: E402
from chat_ui.service import ModelEndpoint  # noqa: E402
from chat_ui.settings import ChatSettings  # noqa: E402

QUESTION = "특허출원은 언제 공개되나요?"
FOLLOW_UP = "그 기간은 단축할 수 있나요?"
ANSWER_DELTAS = ["출원일부터 ", "1년 6개월이 ", "지나면 ", "공개됩니다 [1]."]
ANSWER = "".join(ANSWER_DELTAS)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _logged_turns(url: str, conversation_id: str) -> list:
    with ConversationLog.open(url) as log:
        return log.turns(conversation_id)


@pytest.fixture
def log_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'log.sqlite3'}"


@pytest.fixture
def veraclaim(small_index: Path, log_url: str, fake_tgi) -> Iterator[Veraclaim]:
    # "rules" rewrites follow-ups without a model call, so each question costs exactly one
    # of the fake's queued replies.
    vc = Veraclaim.open(
        ModelEndpoint(fake_tgi.base_url, fake_tgi.model_id, timeout_s=10),
        index_dir=small_index,
        log_database_url=log_url,
        max_tokens=64,
        thinking=True,
        query_rewrite="rules",
    )
    yield vc
    vc.pipeline.log.close()


# The in-process API.


def test_ask_returns_answer_citations_reasoning_and_turn(veraclaim, fake_tgi, log_url):
    fake_tgi.queue(deltas=["<think>", "제64조를 ", "확인한다.", "</think>\n\n", *ANSWER_DELTAS])

    answer = veraclaim.ask(QUESTION)

    assert answer.status == "ok"
    assert answer.answer.strip() == ANSWER
    assert answer.reasoning == "제64조를 확인한다."
    assert answer.citations, "an answer from the index cites its sources"
    assert all(c.file_name.endswith(".pdf") and c.page >= 1 for c in answer.citations)
    assert [c.n for c in answer.citations] == list(range(1, len(answer.citations) + 1))
    [turn] = _logged_turns(log_url, answer.conversation_id)
    assert turn.turn_id == answer.turn_id
    assert turn.answer == answer.answer
    assert turn.reasoning == answer.reasoning
    assert [(s["n"], s["file_name"], s["page"]) for s in turn.sources] == [
        (c.n, c.file_name, c.page) for c in answer.citations
    ]


def test_follow_up_continues_conversation(veraclaim, fake_tgi, log_url):
    fake_tgi.queue(deltas=ANSWER_DELTAS)
    fake_tgi.queue(deltas=["조기공개를 ", "신청할 수 있습니다 [1]."])

    first = veraclaim.ask(QUESTION)
    second = veraclaim.ask(FOLLOW_UP, conversation_id=first.conversation_id)

    assert second.conversation_id == first.conversation_id
    assert second.answer.strip() == "조기공개를 신청할 수 있습니다 [1]."
    turns = _logged_turns(log_url, first.conversation_id)
    assert [t.turn_id for t in turns] == [first.turn_id, second.turn_id]
    # The earlier exchange went to the model as history.
    contents = [m["content"] for m in fake_tgi.chat_requests()[-1].body["messages"]]
    assert any(QUESTION in content for content in contents[:-1])


def test_stream_yields_growing_answer(veraclaim, fake_tgi):
    fake_tgi.queue(deltas=ANSWER_DELTAS)

    updates = list(veraclaim.stream(QUESTION))

    partial = [u.answer for u in updates if not u.done]
    assert len(set(partial)) >= 2, "the answer arrived in one piece, not as a stream"
    assert all(b.startswith(a) for a, b in zip(partial, partial[1:]))
    final = updates[-1]
    assert final.done and final.status == "ok"
    assert final.turn_id is not None
    assert all(u.turn_id is None for u in updates[:-1])


def test_options_override_top_k(veraclaim, fake_tgi):
    fake_tgi.queue(deltas=ANSWER_DELTAS)
    fake_tgi.queue(deltas=ANSWER_DELTAS)

    default = veraclaim.ask(QUESTION)
    narrowed = veraclaim.ask(QUESTION, options=AnswerOptions(top_k=2))

    assert len(default.citations) > 2
    assert 1 <= len(narrowed.citations) <= 2
    assert narrowed.status == "ok"


def test_model_failure_reported_in_final_update(veraclaim, fake_tgi, log_url):
    fake_tgi.queue(status=503, body={"error": "overloaded", "error_type": "overloaded"})

    answer = veraclaim.ask(QUESTION)

    assert answer.status == "error"
    assert answer.notice
    assert answer.turn_id is not None
    [turn] = _logged_turns(log_url, answer.conversation_id)
    assert turn.status == "error"


# The launched app's `ask` endpoint through gradio_client.


@pytest.fixture
def app_url(small_index: Path, log_url: str, fake_tgi) -> Iterator[str]:
    from chat_ui.app import build_app
    from chat_ui.server import launch
    from chat_ui.service import build_pipeline

    settings = ChatSettings(
        index_dir=small_index,
        log_database_url=log_url,
        port=_free_port(),
        max_tokens=64,
        query_rewrite="rules",
    )
    pipeline = build_pipeline(settings, ModelEndpoint(fake_tgi.base_url, fake_tgi.model_id, timeout_s=10))
    demo = build_app(pipeline, settings)
    launch(demo, settings, prevent_thread_lock=True)
    try:
        yield f"http://127.0.0.1:{settings.port}/"
    finally:
        demo.close()
        pipeline.log.close()


def _client(url: str):
    from gradio_client import Client

    # analytics_enabled=False: Client's default sends telemetry whatever the environment says.
    return Client(url, verbose=False, analytics_enabled=False)


def test_gradio_client_submit_streams_answer(app_url, fake_tgi, log_url):
    fake_tgi.queue(deltas=ANSWER_DELTAS)
    client = _client(app_url)

    job = client.submit(QUESTION, "", api_name="/ask")
    outputs = list(job)
    answer, sources, conversation_id = job.result()

    answers = [output[0] for output in outputs]
    assert len(set(answers)) >= 2, "the endpoint did not stream"
    assert all(b.startswith(a) for a, b in zip(answers, answers[1:]))
    assert answer.strip() == ANSWER
    assert sources and {"n", "file_name", "page", "snippet", "score"} <= set(sources[0])
    assert all(s["file_name"].endswith(".pdf") for s in sources)
    [turn] = _logged_turns(log_url, conversation_id)
    assert turn.answer.strip() == ANSWER
    client.close()


def test_gradio_client_predict_continues_conversation(app_url, fake_tgi, log_url):
    fake_tgi.queue(deltas=ANSWER_DELTAS)
    fake_tgi.queue(deltas=["조기공개를 ", "신청할 수 있습니다 [1]."])
    client = _client(app_url)

    first_answer, _, conversation_id = client.predict(QUESTION, api_name="/ask")
    second_answer, sources, same_id = client.predict(FOLLOW_UP, conversation_id, api_name="/ask")

    assert first_answer.strip() == ANSWER
    assert second_answer.strip() == "조기공개를 신청할 수 있습니다 [1]."
    assert same_id == conversation_id
    assert sources
    assert [t.question for t in _logged_turns(log_url, conversation_id)] == [QUESTION, FOLLOW_UP]
    client.close()


def test_gradio_client_sees_documented_signature(app_url):
    client = _client(app_url)

    info = client.view_api(print_info=False, return_format="dict")

    endpoint = info["named_endpoints"]["/ask"]
    assert [p["parameter_name"] for p in endpoint["parameters"]][:2] == ["question", "conversation_id"]
    # Any later parameter must be optional, so existing callers keep working.
    assert all(p["parameter_has_default"] for p in endpoint["parameters"][1:])
    client.close()
