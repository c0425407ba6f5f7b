"""ThinkParser: Qwen3's think block split from the answer, fed as raw stream deltas."""

from __future__ import annotations

import pytest

from serving.thinking import Segment, ThinkParser, split_thinking


def run_parser(chunks: list[str], **options: bool) -> tuple[list[Segment], ThinkParser]:
    parser = ThinkParser(**options)
    segments: list[Segment] = []
    for chunk in chunks:
        segments += parser.feed(chunk)
    segments += parser.close()
    return segments, parser


def joined(segments: list[Segment], kind: str) -> str:
    return "".join(segment.text for segment in segments if segment.kind == kind)


# Each row: the raw deltas as TGI streams them, then the reasoning and the answer they hold,
# and whether the stream ended inside the think block.
CHUNK_CASES = [
    # The usual Qwen3 thinking-mode output, one tag per delta.
    (["<think>", "\n", "청구항 1을 ", "살펴본다.", "\n", "</think>", "\n\n", "답은 ", "A입니다."],
     "청구항 1을 살펴본다.", "답은 A입니다.", False),
    # The opening tag split across deltas.
    (["<th", "ink>", "reason", "</think>", "answer"], "reason", "answer", False),
    # The opening tag split into single characters.
    (list("<think>") + ["r", "</think>", "a"], "r", "a", False),
    # The closing tag split across deltas.
    (["<think>reason", "</th", "ink>", "answer"], "reason", "answer", False),
    # The closing tag split into single characters, with the answer in the last one.
    (["<think>abc"] + list("</think>") + ["\n\nxyz"], "abc", "xyz", False),
    # Both tags and both parts arrive in one delta.
    (["<think>\nreason\n</think>\n\nanswer"], "reason", "answer", False),
    # Qwen3's empty block in non-thinking mode (/no_think) yields no reasoning at all.
    (["<think>", "\n\n", "</think>", "\n\n", "바로 답합니다."], "", "바로 답합니다.", False),
    # The empty block in one delta.
    (["<think>\n\n</think>\n\nOK"], "", "OK", False),
    # Whitespace before the opening tag is not answer text.
    (["\n", "  <think>r</think>a"], "r", "a", False),
    # The token limit hit inside the think block: all reasoning, no answer.
    (["<think>", "먼저 ", "청구항을 ", "검토"], "먼저 청구항을 검토", "", True),
    # The limit hit while the closing tag was half sent: the fragment stays reasoning.
    (["<think>", "almost done", "</thi"], "almost done</thi", "", True),
    # A model without a think block (SmolLM2): everything is answer text, unchanged.
    (["청구항은 ", "권리범위를 ", "정합니다."], "", "청구항은 권리범위를 정합니다.", False),
    # Answer text that only starts like the tag is released once it differs.
    (["<th", "e answer>"], "", "<the answer>", False),
    # A stream that ends on what could have been the opening tag is answer text.
    (["<thin"], "", "<thin", False),
    # After the block, a literal tag in the answer is answer text.
    (["<think>r</think>", "Use <think> in XML."], "r", "Use <think> in XML.", False),
    # A '<' inside the reasoning that starts no tag is reasoning text.
    (["<think>a < b", " and c</think>d"], "a < b and c", "d", False),
    # Whitespace inside the reasoning is kept, only its ends are trimmed.
    (["<think>line 1\n", "\nline 2\n", "</think>ans"], "line 1\n\nline 2", "ans", False),
    # Deltas that carry no text change nothing.
    (["", "<think>", "", "r", "", "</think>", "", "a", ""], "r", "a", False),
    # No deltas at all.
    ([], "", "", False),
]


@pytest.mark.parametrize(("chunks", "reasoning", "answer", "ended_in_reasoning"), CHUNK_CASES)
def test_parser_splits_chunk_sequences(
    chunks: list[str], reasoning: str, answer: str, ended_in_reasoning: bool
) -> None:
    segments, parser = run_parser(chunks)

    assert joined(segments, "reasoning") == reasoning
    assert joined(segments, "answer") == answer
    assert parser.ended_in_reasoning is ended_in_reasoning
    assert all(segment.text for segment in segments)


# Each row: deltas of a response whose prompt already opened the think block.
OPEN_IN_PROMPT_CASES = [
    # Qwen3-2507 thinking models emit only the closing tag.
    (["reason", "</think>", "\n\nanswer"], "reason", "answer"),
    # The closing tag split in two.
    (["reason</", "think>answer"], "reason", "answer"),
]


@pytest.mark.parametrize(("chunks", "reasoning", "answer"), OPEN_IN_PROMPT_CASES)
def test_parser_starting_in_reasoning(chunks: list[str], reasoning: str, answer: str) -> None:
    segments, _ = run_parser(chunks, starts_in_reasoning=True)

    assert joined(segments, "reasoning") == reasoning
    assert joined(segments, "answer") == answer


def test_reasoning_streams_before_block_closes() -> None:
    parser = ThinkParser()

    first = parser.feed("<think>first thought ")
    second = parser.feed("second thought")

    assert first == [Segment("reasoning", "first thought")]
    assert second == [Segment("reasoning", " second thought")]


def test_answer_deltas_keep_their_boundaries() -> None:
    parser = ThinkParser()

    assert parser.feed("Hello ") == [Segment("answer", "Hello ")]
    assert parser.feed("world") == [Segment("answer", "world")]
    assert parser.close() == []


def test_partial_tag_is_held_until_decided() -> None:
    parser = ThinkParser()

    assert parser.feed("<think>abc</th") == [Segment("reasoning", "abc")]
    assert parser.feed("ink>x") == [Segment("answer", "x")]


def test_feed_after_close_is_rejected() -> None:
    parser = ThinkParser()
    parser.close()

    with pytest.raises(ValueError, match="new parser"):
        parser.feed("late")


def test_split_thinking_on_complete_text() -> None:
    assert split_thinking("<think>\nwhy\n</think>\n\nbecause") == ("why", "because")
