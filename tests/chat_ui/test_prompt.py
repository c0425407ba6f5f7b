from langchain_core.documents import Document

from chat_ui.prompt import Exchange, build_messages


def _doc(text, file_name="patent_act.pdf", page=3):
    return Document(page_content=text, metadata={"file_name": file_name, "page": page})


def test_messages_number_context_and_keep_history_order():
    documents = [_doc("제64조(출원공개) 특허청장은 ..."), _doc("제33조 ...", page=1)]
    history = [Exchange("첫 질문", "첫 답변 [1]")]

    messages = build_messages("특허출원은 언제 공개되나요?", documents, history, "ko")

    assert [m["role"] for m in messages] == ["system", "user", "assistant", "user"]
    system = messages[0]["content"]
    assert "[1] (patent_act.pdf, 3쪽)\n제64조(출원공개)" in system
    assert "[2] (patent_act.pdf, 1쪽)" in system
    assert "[3]" not in system
    assert messages[1]["content"] == "첫 질문"
    assert messages[2]["content"] == "첫 답변 [1]"
    assert messages[3]["content"] == "특허출원은 언제 공개되나요?"


def test_english_question_gets_english_instructions():
    messages = build_messages("When is an application published?", [_doc("text")], [], "en")

    assert "Answer in English" in messages[0]["content"]
    assert "(patent_act.pdf, p. 3)" in messages[0]["content"]


def test_braces_in_documents_and_questions_are_kept_verbatim():
    # Templates must not treat user or document text as format fields.
    messages = build_messages("{question} 무엇?", [_doc("수식 {x} 와 {{y}}")], [], "ko")

    assert "수식 {x} 와 {{y}}" in messages[0]["content"]
    assert messages[-1]["content"] == "{question} 무엇?"
