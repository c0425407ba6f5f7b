"""The in-process Python API: ask questions and get cited answers without the web UI.

    from chat_ui.api import Veraclaim
    from chat_ui.pipeline import AnswerOptions
    from chat_ui.service import ModelEndpoint

    vc = Veraclaim.open(ModelEndpoint("http://127.0.0.1:8000/v1", "MODEL_ID"), index_dir="var/index")
    answer = vc.ask("특허출원은 언제 공개되나요?", options=AnswerOptions(top_k=8))
    print(answer.answer, [(c.file_name, c.page) for c in answer.citations])
    follow_up = vc.ask("그 기간은 단축할 수 있나요?", conversation_id=answer.conversation_id)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from chat_ui.pipeline import AnswerOptions, AnswerPipeline, AnswerUpdate
from chat_ui.service import ModelEndpoint, build_pipeline
from chat_ui.settings import ChatSettings


class Veraclaim:
    """Answer questions from the configured index and model, logging each turn like the app."""

    def __init__(self, pipeline: AnswerPipeline) -> None:
        self.pipeline = pipeline

    @classmethod
    def open(
        cls,
        endpoint: ModelEndpoint,
        *,
        index_dir: str | Path | None = None,
        log_database_url: str | None = None,
        **settings: object,
    ) -> Veraclaim:
        """Open the index and the log; unset values come from VERACLAIM_* variables or defaults."""
        if index_dir is not None:
            settings["index_dir"] = Path(index_dir)
        if log_database_url is not None:
            settings["log_database_url"] = log_database_url
        return cls(build_pipeline(ChatSettings(**settings), endpoint))

    def stream(
        self,
        question: str,
        conversation_id: str | None = None,
        user: str | None = None,
        options: AnswerOptions | None = None,
    ) -> Iterator[AnswerUpdate]:
        """Yield the growing answer; the last update carries the status, citations and turn id.

        A `conversation_id` from an earlier answer continues that conversation: its logged
        turns are sent to the model as history. `options` overrides thinking, top_k and
        temperature for this question.
        """
        yield from self.pipeline.stream(question, conversation_id=conversation_id, user=user, options=options)

    def ask(
        self,
        question: str,
        conversation_id: str | None = None,
        user: str | None = None,
        options: AnswerOptions | None = None,
    ) -> AnswerUpdate:
        """Return the finished answer to `question`, with its citations and turn id."""
        final = None
        for final in self.stream(question, conversation_id=conversation_id, user=user, options=options):
            pass
        return final
