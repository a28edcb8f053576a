"""KD conversion: only traces whose boxed answer verifies against the gold are kept, as SFT rows."""

import json

import pytest
from srlm.data import distill
from srlm.data.synthetic import camel_rows

from tests.conftest import NO_CLEANING

SYS = "S"


def _camel(trace, gold="The total is 3 + 4 = 7.\n\\boxed{7}", problem="What is 3 + 4?"):
    return {
        "problem": problem,
        "reasoning_solution": trace,
        "groud_truth_solution": gold,
        "boxed_answer_success": True,
    }


ROWS = [
    _camel("<think>\n3 plus 4 is 7.\n</think>\n\nSo \\boxed{7}."),  # right
    _camel("<think>3 plus 4 is 8.</think>\nThe answer is \\boxed{8}."),  # wrong
    _camel("<think>3 plus 4 is 7, so the answer is 7.\n\nThe answer is \\boxed{7}."),  # no </think>
    _camel("<think>3 plus 4 is 7.</think>\nThe answer is 7."),  # no \boxed
    _camel("<think>a lot</think> \\boxed{1,600}", gold="x\n#### 1,600", problem="Big?"),  # gold from ####
    _camel("<think>t</think> \\boxed{\\$7.00}"),  # verified as 7
    _camel("<think>t</think> \\boxed{7}", gold="no answer here"),  # no gold
]


def test_convert_file(tmp_path):
    src = tmp_path / "camel.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in ROWS))
    out = tmp_path / "kd" / "train.jsonl"
    params = {"data": {"source": "local", "local_path": str(src)}, "system_prompt": SYS, "prompt_training": "r1",
              "clean": NO_CLEANING}  # fmt: skip
    distill.main(["--params", json.dumps(params), "--out", str(out), "--report", str(out.with_name("kd_report.json"))])
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["kd-0", "kd-4", "kd-5"]
    assert rows[0] == {
        "id": "kd-0",
        "prompt": [{"role": "system", "content": SYS}, {"role": "user", "content": "What is 3 + 4?"}],
        "completion": [{"role": "assistant", "content": "<think>3 plus 4 is 7.</think>\n<answer>\\boxed{7}</answer>"}],
        "answer": "7",
    }
    assert rows[1]["answer"] == "1600" and rows[1]["completion"][0]["content"].endswith(
        "<answer>\\boxed{1600}</answer>"
    )
    rep = json.loads((tmp_path / "kd" / "kd_report.json").read_text())
    assert rep["kept"] == 3 and rep["dropped"] == 4
    assert rep["dropped_by_reason"] == {"no_boxed": 1, "no_gold": 1, "no_think": 1, "wrong_answer": 1}
    first = out.read_bytes()
    distill.main(["--params", json.dumps(params), "--out", str(out), "--report", str(out.with_name("kd_report.json"))])
    assert out.read_bytes() == first


def test_synthetic_camel_rows(tmp_path):
    raw = camel_rows(120, 1)
    assert set(raw[0]) == {"problem", "reasoning_solution", "groud_truth_solution", "boxed_answer_success"}
    rep = distill.prepare(
        {"data": {"source": "synthetic", "synthetic": {"n_train": 120, "seed": 1, "level": "gsm8k"}},
         "system_prompt": SYS, "prompt_training": "r1", "clean": NO_CLEANING},
        tmp_path / "train.jsonl",
    )
    flagged_bad = sum(not r["boxed_answer_success"] for r in raw)
    # the generator's wrong and broken traces are exactly the dropped ones
    assert 0 < rep["dropped"] == flagged_bad < 60 and rep["flag_disagrees"] == 0
    assert rep["dropped_by_reason"]["wrong_answer"] > 0


def _bench(path):
    """A normalized benchmark file (what prepare_benchmark writes) of synthetic MATH-500 problems."""
    from srlm.data import benchmarks
    from srlm.data.synthetic import benchmark_rows

    rows = [benchmarks.normalize(r, "math500", i) for i, r in enumerate(benchmark_rows("math500", 20, 0))]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, rows


def test_kd_rows_are_deduplicated_and_decontaminated(tmp_path):
    """KD rows from the hub get GSM8K's cleaning: repeated problems keep their first usable trace, and a
    benchmark problem (here verbatim, re-cased) is dropped; kd_report.json counts both."""
    bench, brows = _bench(tmp_path / "math500.jsonl")
    leak = brows[5]["problem"]
    right = "<think>3 plus 4 is 7.</think>\nSo \\boxed{7}."
    rows = [
        _camel(right),                                          # kd-0 kept
        _camel(right, problem="What is 3 + 4?"),                # kd-1 exact duplicate of kd-0
        _camel(right, problem="what is 3+4 ?"),                 # kd-2 normalized duplicate
        _camel("<think>x</think> \\boxed{8}", problem="Sum?"),  # kd-3 wrong: dropped before cleaning
        _camel(right, problem=leak.upper()),                    # kd-4 a benchmark problem
        _camel(right, problem="Another 3 + 4, asked differently: what is it?"),  # kd-5 kept
    ]  # fmt: skip
    src = tmp_path / "camel.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    params = {"data": {"source": "local", "local_path": str(src)}, "system_prompt": SYS, "prompt_training": "r1",
              "clean": {"dedup": True, "decontaminate": {"ngram": 13, "threshold": 0.5}}}  # fmt: skip
    out = tmp_path / "kd" / "train.jsonl"
    distill.main(["--params", json.dumps(params), "--out", str(out), "--report", str(out.with_name("kd_report.json")), "--bench", str(bench)])
    assert [json.loads(x)["id"] for x in out.read_text().splitlines()] == ["kd-0", "kd-5"]
    rep = json.loads((tmp_path / "kd" / "kd_report.json").read_text())
    counts = (rep["rows_in"], rep["converted"], rep["duplicates"], rep["contaminated"], rep["kept"])
    assert counts == (6, 5, 2, 1, 2)
    assert [(d["id"], d["duplicate_of"], d["kind"]) for d in rep["duplicate_rows"]] == [
        ("kd-1", "kd-0", "exact"), ("kd-2", "kd-0", "normalized")]  # fmt: skip
    leaked = f"{bench}:{brows[5]['id']}"
    assert rep["contaminated_rows"] == [{"id": "kd-4", "overlap": 1.0, "benchmark": leaked}]
    assert rep["decontamination"] == {"ngram": 13, "threshold": 0.5, "benchmarks": [str(bench)]}
    assert rep["dropped_by_reason"] == {"wrong_answer": 1}
    # decontaminate null: off, as for GSM8K (no --bench); dedup alone still runs
    off = {**params, "clean": {"dedup": True, "decontaminate": None}}
    rep = distill.prepare(off, tmp_path / "off" / "train.jsonl")
    assert (rep["duplicates"], rep["contaminated"], rep["decontamination"], rep["kept"]) == (2, None, None, 3)
    with pytest.raises(ValueError, match="decontamination is off"):
        distill.prepare(off, tmp_path / "x" / "train.jsonl", [str(bench)])


def test_a_gold_in_non_ascii_digits_is_no_gold():
    """Full-width or other non-ASCII digits: math-verify cannot read them, so the row has no usable gold."""
    assert distill.gold_answer("So \\boxed{１２}") is None
    assert distill.gold_answer("x\n#### ١٢") is None
    assert distill.gold_answer("x\n#### 1,600") == "1600"
    row = _camel("<think>t</think> \\boxed{１２}", gold="So \\boxed{１２}")
    assert distill.convert(row, 0, SYS) == (None, "no_gold")
