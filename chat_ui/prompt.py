"""Build the grounded chat prompt: numbered context, earlier turns, and the question.

The instructions are written in the question's language, because small models follow
instructions in the language they must answer in far more often than a cross-language rule.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from langchain_core.documents import Document
from langchain_core.messages import AIMessage, HumanMessage, convert_to_openai_messages
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder

from chat_ui.language import Language

_INSTRUCTIONS: dict[Language, str] = {
    "ko": (
        "당신은 한국 특허 실무자를 돕는 조수입니다. 아래의 번호가 붙은 자료만 근거로 한국어로 답하세요.\n"
        "- 근거로 쓴 자료의 번호를 문장 끝에 [1]처럼 표시하세요. 주어진 번호 외의 번호는 쓰지 마세요.\n"
        "- 자료에 답이 없으면 '제공된 문서에서 답을 찾을 수 없습니다.'라고 말하고 추측하지 마세요.\n"
        "\n"
        "자료:\n{context}"
    ),
    "en": (
        "You assist Korean patent professionals. Answer in English, using only the numbered "
        "context below.\n"
        "- Cite the context you used at the end of each sentence as [1]. Cite no other numbers.\n"
        "- If the context does not contain the answer, say 'The provided documents do not "
        "answer this question.' and do not guess.\n"
        "\n"
        "Context:\n{context}"
    ),
}

_PAGE_LABEL: dict[Language, str] = {"ko": "{file_name}, {page}쪽", "en": "{file_name}, p. {page}"}


@dataclass(frozen=True)
class Exchange:
    """One earlier question and the answer shown for it."""

    question: str
    answer: str
    search_query: str | None = None  # the standalone query searched for `question`, if logged


def format_context(documents: Sequence[Document], language: Language) -> str:
    """Number the retrieved chunks from 1, each headed by its file and page."""
    blocks = []
    for n, document in enumerate(documents, start=1):
        label = _PAGE_LABEL[language].format(
            file_name=document.metadata["file_name"], page=document.metadata["page"]
        )
        blocks.append(f"[{n}] ({label})\n{document.page_content.strip()}")
    return "\n\n".join(blocks)


def build_messages(
    question: str,
    documents: Sequence[Document],
    history: Sequence[Exchange],
    language: Language,
) -> list[dict]:
    """Return OpenAI-style chat messages for `question`, grounded in `documents`."""
    template = ChatPromptTemplate.from_messages(
        [
            ("system", _INSTRUCTIONS[language]),
            MessagesPlaceholder("history"),
            ("human", "{question}"),
        ]
    )

    past = []
    for exchange in history:
        past.append(HumanMessage(exchange.question))
        past.append(AIMessage(exchange.answer))

    prompt = template.invoke(
        {"context": format_context(documents, language), "history": past, "question": question}
    )
    return convert_to_openai_messages(prompt.to_messages())
