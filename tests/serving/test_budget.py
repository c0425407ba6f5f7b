"""Token budget: limits from /info or settings, token counts, and prompts cut to fit.

Korean patent context that overflows the limits is cut against the fake TGI (its /info,
/chat_tokenize and its chat route's limit check) and against the real SmolLM2 tokenizer.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from serving.budget import (
    TgiTokenCounter,
    TokenLimits,
    TransformersTokenCounter,
    build_chat_messages,
    fit_prompt,
    read_token_limits,
    token_counter_for,
)
from serving.client import ChatClient
from serving.errors import ModelStreamError, PromptTooLong, TokenLimitsUnknown
from serving.sampling import apply_thinking_switch

pytestmark = pytest.mark.timeout(120)

SYSTEM = "당신은 한국 특허 실무자를 돕는 조수입니다. 아래의 번호가 붙은 자료만 근거로 한국어로 답하세요."
QUESTION = "청구항 1의 구성요소와 그 기술적 효과를 요약해 주세요."

# Ranked context chunks: the first is the best match. Each is about 200-250 characters.
CHUNKS = [
    f"【청구항 {n}】 기판; 상기 기판 위에 형성된 제{n} 전극층; 상기 전극층 위에 배치되며 고분자 전해질을 포함하는 "
    f"분리막; 및 상기 분리막 위에 형성된 대향 전극을 포함하는 이차전지로서, 상기 고분자 전해질은 리튬염을 "
    f"{n * 5} 중량% 포함하고, 상기 분리막의 두께는 {n + 10} 마이크로미터 이하인 것을 특징으로 하는 이차전지. "
    "【발명의 효과】 본 발명에 따르면 전해질의 누액을 방지하고 충방전 수명을 향상시킬 수 있다."
    for n in range(1, 9)
]
HISTORY = [
    ("이 특허의 출원인은 누구인가요?", "제공된 문서에 따르면 출원인은 주식회사 베라클레임입니다 [1]."),
    ("우선권 주장일은 언제인가요?", "우선권 주장일은 2023년 3월 2일입니다 [2]."),
    ("독립항은 몇 개인가요?", "독립항은 청구항 1과 청구항 8, 두 개입니다 [1]."),
]


def test_limits_read_from_info(fake_tgi) -> None:
    fake_tgi.max_input_tokens, fake_tgi.max_total_tokens = 2000, 3000

    limits = read_token_limits(fake_tgi.base_url)

    assert (limits.max_input_tokens, limits.max_total_tokens) == (2000, 3000)
    assert limits.source == f"{fake_tgi.root_url}/info"


def test_limits_fall_back_without_info(fake_tgi) -> None:
    fake_tgi.serves_info = False
    fallback = TokenLimits(1000, 2048, source="settings")

    assert read_token_limits(fake_tgi.base_url, fallback=fallback) == fallback


def test_missing_limits_name_settings(fake_tgi) -> None:
    fake_tgi.serves_info = False

    with pytest.raises(TokenLimitsUnknown) as caught:
        read_token_limits(fake_tgi.base_url)

    assert "VERACLAIM_MODEL_MAX_TOTAL_TOKENS" in str(caught.value)
    assert isinstance(caught.value, LookupError)


def test_chat_tokenize_counts_templated_prompt(fake_tgi) -> None:
    counter = TgiTokenCounter(fake_tgi.base_url)
    messages = [{"role": "user", "content": "청구항"}]

    count = counter.count_chat(messages)

    # The fake's template wraps the message in ChatML and counts one token per character.
    assert count == len("<|im_start|>user\n청구항<|im_end|>\n<|im_start|>assistant\n")
    assert fake_tgi.requests[-1].path == "/chat_tokenize"


def test_unfitted_korean_prompt_is_rejected_by_fake(fake_tgi) -> None:
    # Guards the tests below: the fake enforces the limits as TGI does in a stream.
    fake_tgi.max_input_tokens, fake_tgi.max_total_tokens = 1200, 1600
    messages = build_chat_messages(SYSTEM, CHUNKS, HISTORY, QUESTION)(len(CHUNKS), len(HISTORY))
    client = ChatClient(fake_tgi.base_url, fake_tgi.model_id)

    with pytest.raises(ModelStreamError) as caught:
        client.complete_chat(messages, max_tokens=400)

    assert caught.value.error_type == "validation"
    assert "must have less than 1200 tokens" in str(caught.value)


def test_overflowing_chunks_dropped_lowest_first(fake_tgi) -> None:
    fake_tgi.max_input_tokens, fake_tgi.max_total_tokens = 1200, 1600
    build = build_chat_messages(SYSTEM, CHUNKS, HISTORY, QUESTION)
    counter = TgiTokenCounter(fake_tgi.base_url)
    limits = read_token_limits(fake_tgi.base_url)

    fitted = fit_prompt(
        build, chunk_count=len(CHUNKS), turn_count=len(HISTORY), counter=counter, limits=limits, max_new_tokens=400
    )

    assert 0 < fitted.kept_chunks < len(CHUNKS)
    assert fitted.kept_turns == len(HISTORY)
    system = fitted.messages[0]["content"]
    # The highest-ranked chunks stay, numbered from 1, and the next one did not fit.
    assert all(CHUNKS[n] in system for n in range(fitted.kept_chunks))
    assert CHUNKS[fitted.kept_chunks] not in system
    assert fitted.prompt_tokens + 400 <= 1600
    assert fitted.prompt_tokens <= 1200
    # One more chunk would not have fitted.
    bigger = counter.count_chat(build(fitted.kept_chunks + 1, len(HISTORY)))
    assert not limits.fits(bigger, 400)

    # The fitted prompt passes the server's own check.
    fake_tgi.queue(deltas=["요약입니다."])
    answer = ChatClient(fake_tgi.base_url, fake_tgi.model_id).complete_chat(fitted.messages, max_tokens=400)
    assert answer == "요약입니다."


def test_turns_dropped_oldest_first_after_chunks(fake_tgi) -> None:
    # Room for the question and about one turn, but no context.
    fake_tgi.max_input_tokens, fake_tgi.max_total_tokens = 330, 430
    long_history = [(question * 2, answer * 2) for question, answer in HISTORY]
    build = build_chat_messages(SYSTEM, CHUNKS, long_history, QUESTION)

    fitted = fit_prompt(
        build,
        chunk_count=len(CHUNKS),
        turn_count=len(long_history),
        counter=TgiTokenCounter(fake_tgi.base_url),
        limits=read_token_limits(fake_tgi.base_url),
        max_new_tokens=100,
    )

    assert fitted.kept_chunks == 0
    assert fitted.dropped_chunks == len(CHUNKS)
    assert 0 < fitted.kept_turns < len(long_history)
    contents = [message["content"] for message in fitted.messages]
    # The newest turn stays and the oldest goes.
    assert long_history[-1][0] in contents
    assert long_history[0][0] not in contents
    assert contents[-1] == QUESTION


def test_question_alone_too_long_names_limits(fake_tgi) -> None:
    fake_tgi.max_input_tokens, fake_tgi.max_total_tokens = 50, 100
    build = build_chat_messages(SYSTEM, CHUNKS, HISTORY, QUESTION)

    with pytest.raises(PromptTooLong) as caught:
        fit_prompt(
            build,
            chunk_count=len(CHUNKS),
            turn_count=len(HISTORY),
            counter=TgiTokenCounter(fake_tgi.base_url),
            limits=read_token_limits(fake_tgi.base_url),
            max_new_tokens=20,
        )

    assert "input 50, total 100" in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_fit_counts_thinking_switch(fake_tgi) -> None:
    build = build_chat_messages(SYSTEM, CHUNKS[:1], [], QUESTION)
    counter = TgiTokenCounter(fake_tgi.base_url)
    without = counter.count_chat(build(1, 0))
    limits = TokenLimits(without, without + 10, source="test")

    # Exactly at the limit without the switch; " /no_think" pushes it over.
    assert fit_prompt(build, chunk_count=1, turn_count=0, counter=counter, limits=limits, max_new_tokens=10).kept_chunks == 1
    fitted = fit_prompt(
        build, chunk_count=1, turn_count=0, counter=counter, limits=limits, max_new_tokens=1, thinking=False
    )
    assert fitted.kept_chunks == 0
    assert counter.count_chat(apply_thinking_switch(fitted.messages, False)) <= without


def test_fit_uses_few_counts(fake_tgi) -> None:
    fake_tgi.max_input_tokens, fake_tgi.max_total_tokens = 1200, 1600
    build = build_chat_messages(SYSTEM, CHUNKS, HISTORY, QUESTION)

    fit_prompt(
        build,
        chunk_count=len(CHUNKS),
        turn_count=len(HISTORY),
        counter=TgiTokenCounter(fake_tgi.base_url),
        limits=read_token_limits(fake_tgi.base_url),
        max_new_tokens=400,
    )

    # Bisection over 8 chunks: the full prompt, no chunks, and at most 4 more.
    assert len([r for r in fake_tgi.requests if r.path == "/chat_tokenize"]) <= 6


# Each row: token limits that TokenLimits must reject.
INVALID_LIMITS = [
    # Input above total.
    (2048, 1024),
    # Zero input.
    (0, 1024),
]


@pytest.mark.parametrize(("max_input", "max_total"), INVALID_LIMITS)
def test_invalid_limits_are_rejected(max_input: int, max_total: int) -> None:
    with pytest.raises(ValueError):
        TokenLimits(max_input, max_total, source="test")


@pytest.mark.slow
def test_counter_choice_follows_settings(fake_tgi, local_model_dir: Path) -> None:
    assert isinstance(token_counter_for(fake_tgi.base_url), TgiTokenCounter)
    assert isinstance(token_counter_for(fake_tgi.base_url, tokenizer_path=local_model_dir), TransformersTokenCounter)


@pytest.mark.slow
def test_real_tokenizer_fits_korean_context(local_model_dir: Path) -> None:
    counter = TransformersTokenCounter(local_model_dir)
    build = build_chat_messages(SYSTEM, CHUNKS, HISTORY, QUESTION)
    full = counter.count_chat(build(len(CHUNKS), len(HISTORY)))
    # Limits that hold the question and history but only part of the context.
    limits = TokenLimits(full // 2, full // 2 + 256, source="settings")

    fitted = fit_prompt(
        build, chunk_count=len(CHUNKS), turn_count=len(HISTORY), counter=counter, limits=limits, max_new_tokens=256
    )

    assert 0 < fitted.kept_chunks < len(CHUNKS)
    assert fitted.kept_turns == len(HISTORY)
    assert fitted.prompt_tokens <= full // 2
    assert counter.count_chat(fitted.messages) == fitted.prompt_tokens
    assert not limits.fits(counter.count_chat(build(fitted.kept_chunks + 1, len(HISTORY))), 256)


@pytest.mark.slow
def test_real_tokenizer_counts_hangul_as_served(local_model_server, local_model_dir: Path) -> None:
    # transformers serve reports the prompt tokens it counted; ours must match.
    messages = build_chat_messages(SYSTEM, CHUNKS[:2], HISTORY[:1], QUESTION)(2, 1)
    client = ChatClient(local_model_server.base_url, local_model_server.model_id, timeout=120)

    stream = client.stream_events(messages, max_tokens=2)
    list(stream)

    assert stream.result.prompt_tokens == TransformersTokenCounter(local_model_dir).count_chat(messages)
