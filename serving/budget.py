"""Fit a chat prompt into the model server's token limits before it is sent.

TGI rejects a request whose input tokens exceed `max_input_tokens`, or whose input tokens
plus `max_new_tokens` exceed `max_total_tokens` ("`inputs` tokens + `max_new_tokens` must
be <= ..."), and in a stream it does so with an error event after the 200 status. `fit_prompt`
prevents that: it counts the prompt's tokens as the server will, and drops the lowest-ranked
context chunks first, then the oldest conversation turns, until the prompt fits.

Limits come from TGI's `GET /info`, or from settings for servers without it (`transformers
serve`). Tokens are counted by TGI's `POST /chat_tokenize` (the server's own chat template
and tokenizer), or by the model's tokenizer from a local folder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from huggingface_hub.utils import get_session, hf_raise_for_status

from serving.error_mapping import TRANSLATED_ERRORS, translate_error
from serving.errors import ModelServerError, PromptTooLong, TokenLimitsUnknown
from serving.health import root_url
from serving.hub_offline import allow_model_server
from serving.sampling import apply_thinking_switch

logger = logging.getLogger(__name__)

Message = dict[str, Any]


@dataclass(frozen=True)
class TokenLimits:
    """The server's request limits, in tokens, and where they were read (`/info` or settings)."""

    max_input_tokens: int
    max_total_tokens: int
    source: str

    def __post_init__(self) -> None:
        if not 0 < self.max_input_tokens <= self.max_total_tokens:
            raise ValueError(
                f"token limits must satisfy 0 < max_input_tokens <= max_total_tokens, "
                f"got {self.max_input_tokens} and {self.max_total_tokens} from {self.source}"
            )

    def fits(self, input_tokens: int, max_new_tokens: int) -> bool:
        """Return True if TGI accepts a prompt of `input_tokens` with a `max_new_tokens` request."""
        return input_tokens <= self.max_input_tokens and input_tokens + max_new_tokens <= self.max_total_tokens


def read_token_limits(
    base_url: str,
    *,
    fallback: TokenLimits | None = None,
    api_key: str | None = None,
    timeout: float = 10.0,
) -> TokenLimits:
    """Return the limits that `GET /info` reports, or `fallback` for a server without `/info`.

    Raises `TokenLimitsUnknown` when the server has no `/info` and no fallback is given.
    """
    url = f"{root_url(base_url)}/info"
    allow_model_server(url)
    headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = get_session().get(url, headers=headers, timeout=timeout)
        if response.status_code == 404:
            return _fallback_limits(url, fallback)
        hf_raise_for_status(response)
        info = response.json()
    except TRANSLATED_ERRORS as error:
        raise translate_error(error, base_url=base_url, model="", timeout=timeout) from error
    except ValueError as error:
        raise ModelServerError(f"{url} did not return JSON ({error})", base_url=base_url) from error

    try:
        limits = TokenLimits(int(info["max_input_tokens"]), int(info["max_total_tokens"]), source=url)
    except (KeyError, TypeError, ValueError) as error:
        raise ModelServerError(
            f"{url} returned no usable max_input_tokens and max_total_tokens ({error}): is this a TGI server?",
            base_url=base_url,
        ) from error
    logger.info("token limits of %s: input %d, total %d", url, limits.max_input_tokens, limits.max_total_tokens)
    return limits


def _fallback_limits(url: str, fallback: TokenLimits | None) -> TokenLimits:
    if fallback is None:
        raise TokenLimitsUnknown(
            f"{url} does not exist (only TGI serves it): set VERACLAIM_MODEL_MAX_INPUT_TOKENS and "
            "VERACLAIM_MODEL_MAX_TOTAL_TOKENS to the server's limits"
        )
    logger.info("%s does not exist, so the token limits come from %s", url, fallback.source)
    return fallback


class TokenCounter(Protocol):
    """Counts the prompt tokens of chat messages as the server's chat template renders them."""

    def count_chat(self, messages: Sequence[Message]) -> int: ...


class TgiTokenCounter:
    """Count prompt tokens with TGI's `POST /chat_tokenize`, which needs no API key."""

    def __init__(self, base_url: str, *, api_key: str | None = None, timeout: float = 10.0) -> None:
        self.base_url = base_url
        self.url = f"{root_url(base_url)}/chat_tokenize"
        self.timeout = timeout
        self._headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        allow_model_server(self.url)

    def count_chat(self, messages: Sequence[Message]) -> int:
        request = {"model": "tgi", "messages": list(messages)}
        try:
            response = get_session().post(self.url, json=request, headers=self._headers, timeout=self.timeout)
            hf_raise_for_status(response)
            tokens = response.json()["tokenize_response"]
        except TRANSLATED_ERRORS as error:
            raise translate_error(error, base_url=self.base_url, model="", timeout=self.timeout) from error
        except (ValueError, KeyError, TypeError) as error:
            raise ModelServerError(
                f"{self.url} returned no tokenize_response ({error}): is this a TGI server?", base_url=self.base_url
            ) from error
        return len(tokens)


class TransformersTokenCounter:
    """Count prompt tokens with the chat template and tokenizer of a local model folder."""

    def __init__(self, model_path: str | Path) -> None:
        from transformers import AutoTokenizer

        self.model_path = str(model_path)
        # local_files_only: the folder is the source, and nothing is fetched from the Hub.
        self._tokenizer = AutoTokenizer.from_pretrained(self.model_path, local_files_only=True)

    def count_chat(self, messages: Sequence[Message]) -> int:
        encoded = self._tokenizer.apply_chat_template(list(messages), add_generation_prompt=True, tokenize=True)
        # transformers 5 returns a BatchEncoding here, earlier versions a list of ids.
        ids = encoded["input_ids"] if hasattr(encoded, "keys") else encoded
        return len(ids)


def token_counter_for(base_url: str, *, tokenizer_path: Path | None = None, api_key: str | None = None) -> TokenCounter:
    """Return the counter for a server: the local tokenizer if a folder is given, else TGI's /chat_tokenize.

    `tokenizer_path` is the `model_tokenizer` setting (VERACLAIM_MODEL_TOKENIZER), for servers
    without /chat_tokenize such as `transformers serve`.
    """
    if tokenizer_path is not None:
        return TransformersTokenCounter(tokenizer_path)
    return TgiTokenCounter(base_url, api_key=api_key)


@dataclass(frozen=True)
class FittedPrompt:
    """A prompt that fits the limits: use `context_chunks[:kept_chunks]` and `history[-kept_turns:]`."""

    messages: list[Message]
    kept_chunks: int
    kept_turns: int
    prompt_tokens: int
    max_new_tokens: int
    dropped_chunks: int
    dropped_turns: int


BuildMessages = Callable[[int, int], list[Message]]


def fit_prompt(
    build_messages: BuildMessages,
    *,
    chunk_count: int,
    turn_count: int,
    counter: TokenCounter,
    limits: TokenLimits,
    max_new_tokens: int,
    thinking: bool | None = None,
) -> FittedPrompt:
    """Return the largest prompt that fits, dropping low-ranked chunks first, then old turns.

    `build_messages(chunks, turns)` must return the messages built from the `chunks`
    highest-ranked context chunks and the `turns` most recent turns. Tokens are counted with
    `thinking`'s switch added, as `ChatClient.stream_events` sends the messages. Raises
    `PromptTooLong` if even the question alone, without context or history, does not fit.
    """
    if chunk_count < 0 or turn_count < 0:
        raise ValueError(f"chunk_count and turn_count must be 0 or more, got {chunk_count} and {turn_count}")
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")

    counted: dict[tuple[int, int], int] = {}

    def tokens(chunks: int, turns: int) -> int:
        if (chunks, turns) not in counted:
            messages = apply_thinking_switch(build_messages(chunks, turns), thinking)
            counted[(chunks, turns)] = counter.count_chat(messages)
        return counted[(chunks, turns)]

    def fits(chunks: int, turns: int) -> bool:
        return limits.fits(tokens(chunks, turns), max_new_tokens)

    # 1. Everything, which is the usual case and costs one count.
    if fits(chunk_count, turn_count):
        chunks, turns = chunk_count, turn_count
    # 2. All turns, and as many chunks as fit. More chunks never means fewer tokens, so the
    #    largest count that fits is found by bisection.
    elif fits(0, turn_count):
        chunks, turns = _largest_fitting(lambda n: fits(n, turn_count), chunk_count), turn_count
    # 3. No chunks, and as many of the newest turns as fit.
    elif fits(0, 0):
        chunks, turns = 0, _largest_fitting(lambda n: fits(0, n), turn_count)
    else:
        raise PromptTooLong(
            f"the question alone is {tokens(0, 0)} tokens, so with max_tokens={max_new_tokens} it exceeds the "
            f"server's limits (input {limits.max_input_tokens}, total {limits.max_total_tokens}, from "
            f"{limits.source}): shorten the question or lower max_tokens"
        )

    fitted = FittedPrompt(
        messages=build_messages(chunks, turns),
        kept_chunks=chunks,
        kept_turns=turns,
        prompt_tokens=tokens(chunks, turns),
        max_new_tokens=max_new_tokens,
        dropped_chunks=chunk_count - chunks,
        dropped_turns=turn_count - turns,
    )
    if fitted.dropped_chunks or fitted.dropped_turns:
        logger.info(
            "prompt cut to fit %d input tokens (total %d with max_tokens %d): dropped %d of %d context chunks "
            "and %d of %d turns, %d tokens left after %d counts",
            limits.max_input_tokens,
            limits.max_total_tokens,
            max_new_tokens,
            fitted.dropped_chunks,
            chunk_count,
            fitted.dropped_turns,
            turn_count,
            fitted.prompt_tokens,
            len(counted),
        )
    return fitted


def _largest_fitting(fits: Callable[[int], bool], upper: int) -> int:
    """Return the largest n in [0, upper] with fits(n), given fits(0) and that fits is monotone."""
    low, high = 0, upper
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    return low


def build_chat_messages(
    system_prefix: str,
    context_chunks: Sequence[str],
    history: Sequence[tuple[str, str]],
    question: str,
) -> BuildMessages:
    """Return a `build_messages` for `fit_prompt` from plain parts.

    The system message is `system_prefix` followed by the kept chunks, numbered from 1 in
    rank order. `history` contains (question, answer) turns, oldest first.
    """

    def build(chunks: int, turns: int) -> list[Message]:
        numbered = "\n\n".join(f"[{n}] {chunk}" for n, chunk in enumerate(context_chunks[:chunks], start=1))
        system = f"{system_prefix}\n\n{numbered}" if numbered else system_prefix
        messages: list[Message] = [{"role": "system", "content": system}]
        for past_question, past_answer in history[len(history) - turns :] if turns else []:
            messages.append({"role": "user", "content": past_question})
            messages.append({"role": "assistant", "content": past_answer})
        messages.append({"role": "user", "content": question})
        return messages

    return build
