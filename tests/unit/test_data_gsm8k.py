"""GSM8K preparation: '####' parsing, CoT formatting, SFT/RL schemas, determinism, malformed rows."""

import json
from pathlib import Path

import pytest
from srlm.data import gsm8k
from srlm.data.synthetic import gsm8k_rows

from tests.conftest import NO_CLEANING
from tests.conftest import REAL_DATA as DATA
from tests.conftest import gsm8k_argv, gsm8k_files

SYS = "You are a careful solver."


def _lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


@pytest.mark.parametrize(
    "text,want",
    [
        ("a\n#### 72", "72"),
        ("a\n#### 1,600", "1600"),
        ("x\n####  -3 ", "-3"),
        ("#### 2.5", "2.5"),
        ("step #### 1\nmore\n#### 4", "4"),
    ],
)
def test_final_answer(text, want):
    assert gsm8k.final_answer(text) == want


@pytest.mark.parametrize("text", ["no marker 72", "a\n#### ", "a\n#### seventy", "a\n#### 3/4"])
def test_final_answer_malformed(text):
    with pytest.raises(ValueError):
        gsm8k.final_answer(text)


def test_cot_completion():
    raw = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nShe paid $<<2*5=10>>10.\n#### 1,024"
    assert gsm8k.strip_calculator(raw).startswith("Natalia sold 48/2 = 24 clips in May.\nShe paid $10.")
    assert gsm8k.cot_completion(raw) == (
        "<think>Natalia sold 48/2 = 24 clips in May.\nShe paid $10.</think>\n<answer>\\boxed{1024}</answer>"
    )


def _params(data):
    """prepare_gsm8k's params, cleaning off (tests/unit/test_data_clean.py tests it)."""
    clean = {**NO_CLEANING, "on_malformed": "error"}
    return {"data": {**data, "clean": clean}, "system_prompt": SYS, "prompt_training": "r1"}


def test_synthetic_prepare_schemas_and_determinism(tmp_path):
    syn = {"n_train": 40, "n_test": 8, "seed": 0, "level": "gsm8k"}
    params = json.dumps(_params({"source": "synthetic", "synthetic": syn}))
    gsm8k.main(["--params", params, *gsm8k_argv(tmp_path / "a")])
    gsm8k.main(["--params", params, *gsm8k_argv(tmp_path / "b")])
    for f in ("train.jsonl", "test.jsonl", "sft.jsonl", "rl.jsonl", "cleaning.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    sft, rl, train = (_lines(tmp_path / "a" / f) for f in ("sft.jsonl", "rl.jsonl", "train.jsonl"))
    assert len(sft) == len(rl) == len(train) == 40 and len(_lines(tmp_path / "a" / "test.jsonl")) == 8
    for s, r, t in zip(sft, rl, train):
        assert set(s) == {"id", "prompt", "completion", "answer"} and set(r) == {"id", "prompt", "answer"}
        assert s["id"] == r["id"] == t["id"]
        assert (
            s["prompt"]
            == r["prompt"]
            == [{"role": "system", "content": SYS}, {"role": "user", "content": t["question"]}]
        )
        body = s["completion"][0]["content"]
        assert s["completion"][0]["role"] == "assistant"
        assert body.startswith("<think>") and body.endswith(f"</think>\n<answer>\\boxed{{{s['answer']}}}</answer>")
        assert "<<" not in body and "," not in s["answer"] and s["answer"] == r["answer"]
    # the generator writes thousands separators sometimes; they must be gone from the answers
    assert any("#### " in t["answer"] and "," in t["answer"].rsplit("####")[1] for t in train)


def test_synthetic_train_and_test_differ():
    train = {r["question"] for r in gsm8k_rows(200, 0, "gsm8k-train")}
    test = {r["question"] for r in gsm8k_rows(50, 0, "gsm8k-test")}
    assert not train & test


@pytest.mark.real_data
def test_local_real_files(tmp_path):
    rep = gsm8k.prepare(_params({"source": "local", "local_dir": str(DATA / "gsm8k")}), gsm8k_files(tmp_path))
    assert rep["rows_in"] == rep["rows_out"] == 7473 and rep["test_rows_out"] == 1319
    sft = _lines(tmp_path / "sft.jsonl")
    assert sft[0]["answer"] == "72" and sft[0]["completion"][0]["content"] == (
        "<think>Natalia sold 48/2 = 24 clips in May.\n"
        "Natalia sold 48+24 = 72 clips altogether in April and May.</think>\n<answer>\\boxed{72}</answer>"
    )
    assert sft[345]["answer"] == "1080"  # '#### 1,080' in the file


def test_malformed_row_names_file_and_line(tmp_path):
    d = tmp_path / "in"
    d.mkdir()
    good = {"question": "q?", "answer": "1+1 = <<1+1=2>>2\n#### 2"}
    (d / "train.jsonl").write_text(
        "\n".join(json.dumps(r) for r in [good, {"question": "q2", "answer": "2"}])
    )
    (d / "test.jsonl").write_text(json.dumps(good) + "\n")
    with pytest.raises(gsm8k.MalformedRow, match=r"train\.jsonl:2: no '####'"):
        gsm8k.prepare(_params({"source": "local", "local_dir": str(d)}), gsm8k_files(tmp_path / "o"))
