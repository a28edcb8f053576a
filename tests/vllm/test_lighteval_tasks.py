"""lighteval 0.13 and the pipeline agree (runs in .venv-vllm, `make test-vllm`: lighteval is kept out of the
demo's environment, where it only pulled scikit-learn into every generation job through transformers' imports).

The benchmarks are lighteval tasks (srlm/lighteval_tasks.py, for the lighteval CLI on the cluster); lighteval's own
objects (Doc from the task's prompt function, PromptManager, extractive match) must render the pipeline's exact
prompts and give its grader's verdicts, so the paper's framework and the pipeline cannot drift.
"""

from __future__ import annotations

import pytest

from srlm import grading, prompts

SYSTEM = "Answer with <answer> tags."


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    """A tiny instruct model's folder (srlm.tiny): its tokenizer and ChatML template are what is rendered."""
    from srlm.tiny import build_tiny

    spec = dict(vocab_size=300, hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4,
                num_key_value_heads=2, max_position_embeddings=256, seed=0)  # fmt: skip
    corpus = [SYSTEM, "What is 2 plus 3?", "<answer>5</answer>"] * 3
    return build_tiny(tmp_path_factory.mktemp("tiny") / "model", spec, corpus, seed=0, instruct=True)

# Responses and golds the paper protocol must grade as lighteval's extractive_match does.
EXTRACTIVE_CASES = [
    ("Therefore, the final answer is: $\\boxed{\\frac{1}{2}}$. I hope it is correct", "\\frac12", "latex"),
    ("Therefore, the final answer is: $\\boxed{0.5}$. I hope it is correct", "\\frac{1}{2}", "latex"),
    ("The answer is $\\boxed{3\\sqrt{2}}$", "3\\sqrt2", "latex"),
    ("so we get 42 apples", "42", "expr"),
    ("first 3 then 7, final 10", "10", "expr"),
    ("<answer>27</answer>", "27", "expr"),
    ("no numbers at all", "5", "expr"),
    ("$x = 2$ and $\\boxed{(1, 2)}$", "(1,2)", "latex"),
    ("Therefore, the final answer is: $\\boxed{18}$.", "18.0", "expr"),
    ("It is \\boxed{\\pi}", "\\pi", "latex"),
    ("It is \\boxed{3.14159}", "\\pi", "latex"),
    ("answer: 1,000", "1000", "expr"),
]


def test_lighteval_renders_and_grades_as_the_pipeline(model_dir):
    """lighteval's own objects (Doc from the task's prompt function, PromptManager, extractive match) agree with
    the pipeline's generation prompt and grader: the paper's framework and the pipeline cannot drift."""
    from lighteval.models.model_output import ModelResponse
    from lighteval.tasks.prompt_manager import PromptManager
    from transformers import AutoTokenizer

    from srlm import lighteval_tasks as lt

    tok = AutoTokenizer.from_pretrained(model_dir)
    row = {"id": "p0", "problem": "What is 2 plus 3?", "answer": "5"}
    for protocol, system in (("paper", None), ("r1", SYSTEM)):
        doc = lt.doc(row, "srlm_toy", protocol)
        rendered = PromptManager(use_chat_template=True, tokenizer=tok, system_prompt=system).prepare_prompt(doc)
        assert rendered == prompts.render(tok, prompts.messages(row["problem"], protocol, SYSTEM))
    for response, gold, gold_as in EXTRACTIVE_CASES:
        fmt = "amc23" if gold_as == "expr" else "math500"
        text = "\\boxed{" + gold + "}" if gold_as == "latex" else gold
        doc = lt.doc({"id": "x", "problem": "?", "answer": text}, "srlm_toy", "paper")
        theirs = lt.metric("paper", fmt).sample_level_fn.compute(doc=doc, model_response=ModelResponse(text=[response]))
        ours = grading.grade_extractive(response, gold, gold_as)
        assert bool(theirs) == ours.correct, (response, gold)


def test_lighteval_task_table():
    from srlm import lighteval_tasks as lt

    names = [t.name for t in lt.TASKS_TABLE]
    assert names == ["srlm_olympiadbench", "srlm_math500", "srlm_minerva", "srlm_amc23", "srlm_gsm8k"]
    math500 = lt.TASKS_TABLE[1]
    assert math500.hf_repo == "HuggingFaceH4/MATH-500" and math500.generation_size == 32768
    raw = {"problem": "What is $1+1$?", "answer": "2", "unique_id": "test/x.json", "solution": "\\boxed{2}"}
    doc = math500.prompt_function(raw, "srlm_math500")
    assert doc.query == prompts.query("What is $1+1$?", "paper") and doc.get_golds() == ["\\boxed{2}"]
