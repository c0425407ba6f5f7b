"""Qwen3's thinking switch and the sampling parameters that go with each mode.

Thinking on or off is requested with Qwen3's soft switch: `/think` or `/no_think` at the
end of the last user message. The alternative was to render the chat template ourselves
(TGI's `/chat_tokenize`, then an appended empty `<think>\\n\\n</think>\\n\\n`, then
`/generate_stream`), which is what `enable_thinking=False` does inside the template. The
soft switch was chosen because:

- it stays one request on `/v1/chat/completions`, so the time to first token gains no extra
  round trip through RunPod's proxy, and no second wire format needs its own parser;
- it works unchanged on every OpenAI-compatible server (TGI, vLLM, SGLang, `transformers
  serve`), while the rendered-template path exists on TGI only;
- `ThinkParser` removes whatever think block comes back, so a model that thinks although it
  was asked not to still never shows its reasoning as the answer.

The cost: the switch is an instruction that the model was trained to follow, not a hard
guarantee, and Qwen3 then still emits an empty think block, which the parser drops.

NOTE: only Qwen3's hybrid models (Qwen3-8B, Qwen3-14B, ...) follow the soft switch. The
2507 Instruct and Thinking models ignore it, so pass `thinking=None` for them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

THINK_SWITCH = "/think"
NO_THINK_SWITCH = "/no_think"


@dataclass(frozen=True)
class SamplingParameters:
    """Sampling settings of one request.

    `top_k` records the model card's recommendation only: TGI's chat route ignores it and
    `transformers serve` rejects unknown fields, so `request_fields` never sends it.
    """

    temperature: float
    top_p: float | None = None
    top_k: int | None = None

    def request_fields(self) -> dict[str, float]:
        """Return the fields sent in a `/v1/chat/completions` request."""
        fields = {"temperature": self.temperature}
        if self.top_p is not None:
            fields["top_p"] = self.top_p
        return fields


# Recommended by the Qwen3 model cards ("Best Practices"): thinking mode Temperature=0.6,
# TopP=0.95, TopK=20, MinP=0; non-thinking mode Temperature=0.7, TopP=0.8, TopK=20, MinP=0.
# MinP=0 is the servers' default. The cards' presence_penalty advice is left out on purpose:
# TGI maps presence_penalty to a repetition penalty of presence_penalty + 2.0.
QWEN3_THINKING = SamplingParameters(temperature=0.6, top_p=0.95, top_k=20)
QWEN3_NON_THINKING = SamplingParameters(temperature=0.7, top_p=0.8, top_k=20)

# Used when the request names no mode, as the chat did before thinking control existed.
DEFAULT_SAMPLING = SamplingParameters(temperature=0.3)


def sampling_for(
    thinking: bool | None, *, temperature: float | None = None, top_p: float | None = None
) -> SamplingParameters:
    """Return the sampling for a mode: Qwen3's recommendation, with explicit values winning."""
    if thinking is None:
        base = DEFAULT_SAMPLING
    else:
        base = QWEN3_THINKING if thinking else QWEN3_NON_THINKING

    chosen = SamplingParameters(
        temperature=base.temperature if temperature is None else temperature,
        top_p=base.top_p if top_p is None else top_p,
        top_k=base.top_k,
    )
    if chosen.temperature < 0:
        raise ValueError(f"temperature must be 0 or more, got {chosen.temperature!r}")
    if chosen.top_p is not None and not 0 < chosen.top_p <= 1:
        raise ValueError(f"top_p must be in (0, 1], got {chosen.top_p!r}")
    # Qwen3's cards warn that greedy decoding in thinking mode leads to endless repetition.
    if thinking and chosen.temperature == 0:
        raise ValueError("temperature 0 (greedy decoding) loops in Qwen3's thinking mode: use 0.6 or leave it unset")
    return chosen


def apply_thinking_switch(messages: Sequence[dict[str, Any]], thinking: bool | None) -> list[dict[str, Any]]:
    """Return a copy of `messages` whose last user message ends with `/think` or `/no_think`.

    `thinking=None` returns the messages unchanged, for models without the switch. Qwen3
    follows the most recent switch in a conversation, so only the last user message gets one.
    """
    copied = [dict(message) for message in messages]
    if thinking is None:
        return copied

    switch = THINK_SWITCH if thinking else NO_THINK_SWITCH
    for message in reversed(copied):
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            message["content"] = f"{content.rstrip()} {switch}"
        elif isinstance(content, list):
            # OpenAI's content parts: the switch is one more text part.
            message["content"] = [*content, {"type": "text", "text": switch}]
        else:
            raise ValueError(f"the last user message has no text content to add {switch} to: {content!r}")
        return copied
    raise ValueError(f"no user message to add {switch} to: pass thinking=None or include a user message")
