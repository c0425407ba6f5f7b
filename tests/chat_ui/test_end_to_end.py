"""The whole path on the embedded default: sample index, local model, streamed and cited answer, log.

These tests use the real SmolLM2 server, the real index of the committed sample PDFs and a
real SQLite log. SmolLM2-135M answers Korean poorly, so they check that an answer streams
and is logged, and that retrieval cites the right page, not what the answer says.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from chat_ui.embedded import local_token_limits
from chat_ui.log import ConversationLog
from chat_ui.pipeline import AnswerPipeline
from chat_ui.service import ModelEndpoint, build_pipeline
from chat_ui.settings import ChatSettings

pytestmark = pytest.mark.slow

QUESTION = "특허출원은 언제 공개되나요?"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def settings(sample_index: Path, tmp_path: Path) -> ChatSettings:
    return ChatSettings(
        index_dir=sample_index,
        log_database_url=f"sqlite:///{tmp_path / 'log.sqlite3'}",
        max_tokens=48,
        port=_free_port(),
    )


@pytest.fixture
def pipeline(settings: ChatSettings, local_model_server, local_model_dir) -> AnswerPipeline:
    # The same endpoint as `veraclaim-chat embedded`: prompts fitted with the model's own tokenizer.
    endpoint = ModelEndpoint(
        local_model_server.base_url,
        local_model_server.model_id,
        token_limits=local_token_limits(local_model_dir),
        tokenizer_path=local_model_dir,
    )
    return build_pipeline(settings, endpoint)


def _cited_pages(citations) -> set[tuple[str, int]]:
    return {(citation.file_name, citation.page) for citation in citations}


def test_korean_question_streams_cited_answer_and_logs_turn(pipeline, settings, patent_act_page_of_article_64):
    updates = list(pipeline.stream(QUESTION))

    final = updates[-1]
    assert pipeline.budget is not None
    streamed = [update for update in updates if not update.done]
    assert len(streamed) >= 2, "the answer arrived in one piece, not as a stream"
    assert all(len(a.answer) <= len(b.answer) for a, b in zip(streamed, streamed[1:]))
    assert final.status == "ok"
    assert final.answer.strip()
    assert final.language == "ko"
    assert ("patent_act.pdf", patent_act_page_of_article_64) in _cited_pages(final.citations)

    log = ConversationLog.open(settings.log_database_url)
    turn = log.get_turn(final.turn_id)
    assert turn.question == QUESTION
    assert turn.answer == final.answer
    assert turn.status == "ok"
    assert turn.first_token_ms is not None and turn.latency_ms >= turn.first_token_ms
    assert any(
        source["file_name"] == "patent_act.pdf" and source["page"] == patent_act_page_of_article_64
        for source in turn.sources
    )


def test_follow_up_continues_conversation(pipeline, settings):
    from chat_ui.prompt import Exchange

    first = list(pipeline.stream(QUESTION))[-1]
    second = list(
        pipeline.stream(
            "그 기간은 어떻게 계산하나요?",
            history=[Exchange(QUESTION, first.answer)],
            conversation_id=first.conversation_id,
        )
    )[-1]

    log = ConversationLog.open(settings.log_database_url)
    turns = log.turns(first.conversation_id)
    assert [t.turn_id for t in turns] == [first.turn_id, second.turn_id]


def test_unreachable_model_keeps_question_and_logs_error(settings, sample_index):
    endpoint = ModelEndpoint(f"http://127.0.0.1:{_free_port()}/v1", "missing-model", timeout_s=5)
    pipeline = build_pipeline(settings, endpoint)

    final = list(pipeline.stream(QUESTION))[-1]

    assert final.status == "error"
    assert "모델 서버에 연결할 수 없습니다" in final.notice
    assert final.citations, "sources are still shown when the model fails"
    turn = ConversationLog.open(settings.log_database_url).get_turn(final.turn_id)
    assert turn.question == QUESTION
    assert turn.status == "error"
    assert turn.error_type == "ModelServerUnavailable"


def test_closed_stream_is_logged_as_interrupted(pipeline, settings):
    stream = pipeline.stream(QUESTION)
    first = next(stream)
    stream.close()

    log = ConversationLog.open(settings.log_database_url)
    turns = log.turns(first.conversation_id)
    assert len(turns) == 1
    assert turns[0].status == "interrupted"
    assert turns[0].question == QUESTION


@pytest.mark.parametrize(
    ("question", "fragment"),
    [
        ("   ", "질문을 입력해 주세요"),  # blank: nothing to ask
        ("\u200b\u200b\ufeff", "질문을 입력해 주세요"),  # only zero-width characters: blank to the user
        ("가" * 5000, "5000자"),  # longer than the limit: the notice names the length
        ("x" * 5000, "5000 characters"),  # same in English
    ],
)
def test_invalid_question_is_rejected_before_model(pipeline, question, fragment):
    final = list(pipeline.stream(question))[-1]

    assert final.status == "error"
    assert fragment in final.notice
    assert final.turn_id is None


def test_gradio_client_streams_answer_from_launched_app(pipeline, settings, patent_act_page_of_article_64):
    from gradio_client import Client

    from chat_ui.app import build_app
    from chat_ui.server import launch

    demo = build_app(pipeline, settings)
    launch(demo, settings, prevent_thread_lock=True)
    try:
        client = Client(f"http://127.0.0.1:{settings.port}/", verbose=False)
        job = client.submit(QUESTION, "", api_name="/ask")
        outputs = list(job)
        answer, sources, conversation_id = job.result()
    finally:
        demo.close()

    assert len(outputs) >= 2, "the endpoint did not stream"
    assert answer.strip()
    assert any(s["file_name"] == "patent_act.pdf" and s["page"] == patent_act_page_of_article_64 for s in sources)
    turns = ConversationLog.open(settings.log_database_url).turns(conversation_id)
    assert len(turns) == 1
    assert turns[0].status == "ok"
