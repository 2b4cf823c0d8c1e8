"""The formatter: the exact messages rows Axolotl trains on and evaluation parses, and the disclaimer."""
from __future__ import annotations

from medtune.preprocess.format import FORMATTER_VERSION, MC_INSTRUCTION, to_row, with_disclaimer
from medtune.preprocess.records import Record
from medtune.preprocess.spec import DisclaimerSpec

OFF = DisclaimerSpec()


def mc() -> Record:
    return Record(id="medqa:1", question="Which drug?", answer="Beta", source="medqa", qtype="step1",
                  options=["Alpha", "Beta", "Gamma", "Delta"], answer_key="B")


def test_formatter_version_is_an_int_to_bump():
    assert isinstance(FORMATTER_VERSION, int) and FORMATTER_VERSION >= 1


def test_multiple_choice_row_lists_options_and_answers_with_letter_and_text():
    row = to_row(mc(), None, OFF)
    assert row["messages"] == [
        {"role": "user", "content": f"Which drug?\n\nA. Alpha\nB. Beta\nC. Gamma\nD. Delta\n\n{MC_INSTRUCTION}"},
        {"role": "assistant", "content": "Answer: B. Beta"},
    ]
    assert (row["id"], row["source"], row["qtype"], row["answer_key"], row["choices"]) == ("medqa:1", "medqa", "step1", "B", ["Alpha", "Beta", "Gamma", "Delta"])


def test_pubmedqa_row_has_context_decision_and_long_answer():
    record = Record(id="pubmedqa:1", question="Does X work?", answer="X worked in most patients.", source="pubmedqa",
                    context="RESULTS: 80% improved.", answer_key="yes")
    row = to_row(record, "You are a careful medical assistant.", OFF)
    system, user, assistant = row["messages"]
    assert system == {"role": "system", "content": "You are a careful medical assistant."}
    assert user["content"] == "Context:\nRESULTS: 80% improved.\n\nQuestion: Does X work?\n\nAnswer yes, no or maybe, then explain."
    assert assistant["content"] == "Answer: yes. X worked in most patients."
    assert row["choices"] == ["yes", "no", "maybe"] and row["answer_key"] == "yes"


def test_free_text_row_is_question_and_answer_only():
    record = Record(id="medquad:1", question="What is A1C?", answer="A blood test.", source="medquad", qtype="information")
    row = to_row(record, None, OFF)
    assert [m["content"] for m in row["messages"]] == ["What is A1C?", "A blood test."]
    assert row["answer_key"] is None and row["choices"] is None


def test_disclaimer_is_appended_once_and_never_doubled():
    spec = DisclaimerSpec(enabled=True, text="Consult your doctor.")
    record = Record(id="x:1", question="Q?", answer="Rest and fluids.", source="x")
    assert to_row(record, None, spec)["messages"][-1]["content"] == "Rest and fluids.\n\nConsult your doctor."
    already = Record(id="x:2", question="Q?", answer="Rest. CONSULT your doctor!", source="x")
    assert to_row(already, None, spec)["messages"][-1]["content"] == "Rest. CONSULT your doctor!"
    assert with_disclaimer(with_disclaimer("Rest.", "Consult your doctor."), "Consult your doctor.") == "Rest.\n\nConsult your doctor."


def test_disclaimer_on_multiple_choice_keeps_the_parsable_answer_first():
    content = to_row(mc(), None, DisclaimerSpec(enabled=True))["messages"][-1]["content"]
    assert content.startswith("Answer: B. Beta\n\n") and content.endswith(DisclaimerSpec().text)
