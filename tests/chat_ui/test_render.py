from chat_ui.pipeline import AnswerUpdate, Citation
from chat_ui.render import answer_messages, history_from_messages


def _citation(**overrides):
    values = dict(n=1, file_name="patent_act.pdf", page=4, snippet="제64조(출원공개)", score=0.71, chunk_id=7, source_uri="file:///x")
    values.update(overrides)
    return Citation(**values)


def test_sources_follow_the_answer_with_file_and_page():
    update = AnswerUpdate("c1", "질문", "ko", answer="답변 [1]", citations=(_citation(),), status="ok")

    answer, sources = answer_messages(update)

    assert answer == {"role": "assistant", "content": "답변 [1]"}
    assert sources["content"].startswith("**출처**\n\n")
    assert "patent\\_act\\.pdf, 4쪽" in sources["content"]
    assert "제64조\\(출원공개\\)" in sources["content"]


def test_markup_in_sources_is_escaped():
    hostile = _citation(snippet="<img src=x onerror=alert(1)><style>body{display:none}</style>", file_name="<b>x</b>.pdf")
    update = AnswerUpdate("c1", "q", "en", citations=(hostile,), status="ok")

    sources = answer_messages(update)[-1]["content"]

    assert "<img" not in sources and "<style>" not in sources and "<b>" not in sources
    assert "&lt;img src=x onerror=alert\\(1\\)&gt;" in sources


def test_markdown_in_sources_cannot_form_links_or_images():
    hostile = _citation(file_name="![x](http://127.0.0.1:9/p.png).pdf", snippet="[click](javascript:alert(1)) **bold**")
    update = AnswerUpdate("c1", "q", "en", citations=(hostile,), status="ok")

    sources = answer_messages(update)[-1]["content"]

    assert "![x](" not in sources
    assert "[click](" not in sources
    assert "**bold**" not in sources
    assert "\\!\\[x\\]\\(http" in sources


def test_notice_is_appended_to_partial_answer():
    update = AnswerUpdate("c1", "q", "en", answer="Partial", status="error", notice="The model server cannot be reached.")

    assert answer_messages(update)[0]["content"] == "Partial\n\n*The model server cannot be reached.*"


def test_history_skips_source_lists_and_unanswered_questions():
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "Q1"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "A1"}], "metadata": None},
        {"role": "assistant", "content": "**Sources**\n\n[1] file", "metadata": None},
        {"role": "user", "content": "Q2"},
        {"role": "assistant", "content": "reasoning", "metadata": {"title": "Thinking", "status": "done"}},
        {"role": "assistant", "content": "**출처**\n\n[1] 파일"},
        {"role": "user", "content": "Q3"},
        {"role": "assistant", "content": "A3"},
    ]

    history = history_from_messages(messages)

    assert [(e.question, e.answer) for e in history] == [("Q1", "A1"), ("Q3", "A3")]


def test_reasoning_is_a_collapsible_block_before_the_answer():
    thinking = AnswerUpdate("c1", "질문", "ko", answer="", reasoning="<b>검토</b> 중", status="streaming")
    answered = AnswerUpdate("c1", "질문", "ko", answer="답변", reasoning="검토 완료", status="ok")

    (block,) = answer_messages(thinking)
    first, second = answer_messages(answered)

    assert block["metadata"] == {"title": "생각 과정", "status": "pending"}
    assert block["content"] == "&lt;b&gt;검토&lt;/b&gt; 중"
    assert first["metadata"]["status"] == "done"
    assert second == {"role": "assistant", "content": "답변"}
