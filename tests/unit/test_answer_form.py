"""The answer form the pipeline trains is the one its graders read (docs/fidelity.md "The answer form").

SFT/KD targets and the GRPO rewards use `<think>…</think>\\n<answer>\\boxed{N}</answer>`. The default evaluation
protocol (paper: lighteval's extractive match as Open-RS configures it) reads a `\\boxed{}` first and otherwise the
last expression of the text; it never reads a bare `<answer>N</answer>` span. So every target, from each data
source, must be extracted as its own gold by that grader (and by the r1 grader), including targets whose reasoning
ends in another number.
"""

import json

import pytest

from srlm import grading, rewards
from srlm.data import distill, gsm8k
from srlm.data.io import format_completion, read_jsonl
from srlm.data.synthetic import camel_rows, gsm8k_rows
from tests.conftest import NO_CLEANING, REAL_DATA, gsm8k_files

# The cases: the reasoning ends in another number, in an expression, or in nothing gradable.
TRICKY = [
    ("27 x 6 = 161.", "162"),
    ("We compute 3 + 4.", "7"),
    ("x", "72"),
    ("She pays $10, so 1,024 - 10 = 1,014 is wrong; recount.", "1024"),
]


def _graded_as_gold(target: str, gold: str) -> None:
    paper = grading.grade_extractive(target, gold, gold_as="expr")
    assert paper.correct, f"paper protocol read {paper.extracted!r} from {target[-80:]!r}, gold {gold}"
    r1 = grading.grade(target, gold)
    assert r1.correct and r1.extracted == gold, (r1, gold)
    # What the GRPO rewards give the very same text: well-formed and right.
    assert rewards.format_reward([target]) == [1.0]
    assert rewards.accuracy_reward([target], answer=[gold]) == [1.0]


@pytest.mark.parametrize(("think", "gold"), TRICKY)
def test_target_form_is_graded_on_its_box(think, gold):
    _graded_as_gold(format_completion(think, gold), gold)


def test_a_bare_answer_span_is_what_the_paper_protocol_misreads():
    """Why the targets carry a box: the form they had before is graded on the reasoning's last number."""
    bare = "<think>27 x 6 = 161.</think>\n<answer>162</answer>"
    assert not grading.grade_extractive(bare, "162", gold_as="expr").correct
    assert rewards.format_reward([bare]) == [-1.0] and rewards.accuracy_reward([bare], answer=["162"]) == [-1.0]


def _sft_targets(rows: list[dict]) -> list[tuple[str, str]]:
    return [(r["completion"][0]["content"], r["answer"]) for r in rows]


def test_gsm8k_and_kd_targets_are_graded_as_their_gold(tmp_path):
    """Every SFT row of the synthetic GSM8K set and every KD row (hub-schema traces, converted) grade right."""
    params = {"data": {"source": "synthetic", "synthetic": {"n_train": 48, "n_test": 4, "seed": 3, "level": "gsm8k"},
                       "clean": {**NO_CLEANING, "on_malformed": "error"}},
              "system_prompt": "S", "prompt_training": "r1"}  # fmt: skip
    gsm8k.prepare(params, gsm8k_files(tmp_path / "g"))
    kd = tmp_path / "kd.jsonl"
    distill.prepare({"data": {"source": "synthetic", "synthetic": {"n_train": 24, "seed": 3, "level": "gsm8k"}},
                     "system_prompt": "S", "prompt_training": "r1", "clean": NO_CLEANING}, kd)  # fmt: skip
    targets = _sft_targets(read_jsonl(tmp_path / "g" / "sft.jsonl")) + _sft_targets(read_jsonl(kd))
    assert len(targets) > 60
    for target, gold in targets:
        _graded_as_gold(target, gold)
    # The RL rows' gold is the same string the SFT target boxes.
    rl = read_jsonl(tmp_path / "g" / "rl.jsonl")
    assert [r["answer"] for r in rl] == [g for _, g in _sft_targets(read_jsonl(tmp_path / "g" / "sft.jsonl"))]


def test_prompt_training_paper_asks_as_the_paper_protocol_evaluates(tmp_path):
    """config prompt.training: paper puts the evaluation's prompt (srlm.prompts "paper") in SFT, RL and KD rows;
    r1, the rows keep the system prompt and the raw problem."""
    from srlm import prompts

    syn = {"source": "synthetic", "synthetic": {"n_train": 8, "n_test": 2, "seed": 3, "level": "easy"},
           "clean": {**NO_CLEANING, "on_malformed": "error"}}
    gsm8k.prepare({"data": syn, "system_prompt": "S", "prompt_training": "paper"}, gsm8k_files(tmp_path / "p"))
    gsm8k.prepare({"data": syn, "system_prompt": "S", "prompt_training": "r1"}, gsm8k_files(tmp_path / "r"))
    kd = tmp_path / "kd.jsonl"
    distill.prepare({"data": {"source": "synthetic", "synthetic": {"n_train": 8, "seed": 3, "level": "gsm8k"}},
                     "system_prompt": "S", "prompt_training": "paper", "clean": NO_CLEANING}, kd)  # fmt: skip
    train = {r["id"]: r["question"] for r in read_jsonl(tmp_path / "p" / "train.jsonl")}
    for name in ("sft.jsonl", "rl.jsonl"):
        for row in read_jsonl(tmp_path / "p" / name):
            assert row["prompt"] == prompts.messages(train[row["id"]], "paper")
        for row in read_jsonl(tmp_path / "r" / name):
            assert row["prompt"] == [{"role": "system", "content": "S"}, {"role": "user", "content": train[row["id"]]}]
    kd_rows = read_jsonl(kd)
    head = prompts.query("", "paper")
    assert kd_rows and all([m["role"] for m in r["prompt"]] == ["user"] for r in kd_rows)
    assert all(r["prompt"][0]["content"].startswith(head) for r in kd_rows)


@pytest.mark.real_data
def test_real_gsm8k_targets_are_graded_as_their_gold():
    """The first 150 rows of the real GSM8K train split, whose rationales often end in other numbers."""
    for i, line in enumerate((REAL_DATA / "gsm8k" / "train.jsonl").read_text().splitlines()[:150]):
        row = json.loads(line)
        _graded_as_gold(gsm8k.cot_completion(row["answer"]), gsm8k.final_answer(row["answer"]))


def test_synthetic_camel_traces_keep_the_gold_boxed():
    rows = camel_rows(12, seed=5)
    kept = [distill.convert(r, i, "S")[0] for i, r in enumerate(rows)]
    kept = [k for k in kept if k is not None]
    assert kept
    for k in kept:
        assert k["completion"][0]["content"].endswith(f"<answer>\\boxed{{{k['answer']}}}</answer>")
    assert gsm8k_rows(1, 0)  # the generator the demo's tokenizer is trained on still yields rows
