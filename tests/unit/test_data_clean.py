"""GSM8K cleaning (phase 2): dedup, n-gram decontamination, malformed rows, token lengths, idempotence."""

import json
import shutil
from pathlib import Path

import pytest
from srlm.data import benchmarks, clean, gsm8k, prep_report
from srlm.data.io import write_jsonl
from srlm.data.synthetic import benchmark_rows, camel_rows, gsm8k_rows

from tests.conftest import NO_CLEANING
from tests.conftest import REAL_DATA as DATA
from tests.conftest import gsm8k_argv, gsm8k_files

TOKENIZER = DATA / "qwen2.5-0.5b-instruct-tokenizer"
SYS = "Think, then answer."


def _lines(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


# config data.gsm8k.clean as prepare_gsm8k's params hold it, every step off
CLEAN_OFF = {**NO_CLEANING, "on_malformed": "error"}


def _params(data: dict) -> dict:
    return {"data": data, "system_prompt": SYS, "prompt_training": "r1"}


def _rows(questions):
    return [{"id": f"r{i}", "question": q} for i, q in enumerate(questions)]


def test_dedup_exact_and_normalized_keeps_first():
    rows = _rows(
        ["How many apples?", "How many pears?", "How many apples?", "how  many APPLES ?!", "How many"]
    )
    kept, log = clean.dedup(rows)
    assert [r["id"] for r in kept] == ["r0", "r1", "r4"]
    assert log == [{"id": "r2", "duplicate_of": "r0", "kind": "exact"},
                   {"id": "r3", "duplicate_of": "r0", "kind": "normalized"}]  # fmt: skip


def _bench_sets(n=200):
    """Normalized synthetic benchmark rows of every format, plus the synthetic GSM8K test split and KD set."""
    sets = {f: [benchmarks.normalize(r, f, i) for i, r in enumerate(benchmark_rows(f, n, 0))]
            for f in benchmarks.FORMATS}  # fmt: skip
    sets["gsm8k-test"] = [
        {"id": str(i), "problem": r["question"]} for i, r in enumerate(gsm8k_rows(n, 0, "gsm8k-test"))
    ]
    sets["camel"] = [{"id": str(i), "problem": r["problem"]} for i, r in enumerate(camel_rows(n, 1))]
    return sets


@pytest.mark.parametrize("ngram", [10, 13])
def test_disjoint_synthetic_sets_are_not_flagged(ngram):
    train = _rows(r["question"] for r in gsm8k_rows(1000, 0))
    kept, log = clean.decontaminate(train, _bench_sets(), ngram, threshold=1e-9)  # any shared n-gram
    assert log == [] and len(kept) == 1000


def test_planted_overlaps_are_found():
    bench = _bench_sets(50)
    train = _rows(r["question"] for r in gsm8k_rows(100, 0))
    b_math, b_amc = bench["math500"][7], bench["amc23"][3]
    words = b_amc["problem"].split()
    planted = [
        {"id": "copy", "question": b_math["problem"]},                                   # verbatim
        {"id": "recased", "question": "  " + b_math["problem"].upper().replace(". ", " .  ")},  # case/space
        {"id": "edited", "question": " ".join(words[:-3] + ["what", "remains?"])},       # tail changed
    ]  # fmt: skip
    kept, log = clean.decontaminate(train[:50] + planted + train[50:], bench, 13, 0.5)
    assert {e["id"]: e["benchmark"] for e in log} == {
        "copy": f"math500:{b_math['id']}",
        "recased": f"math500:{b_math['id']}",
        "edited": f"amc23:{b_amc['id']}",
    }
    assert [e["overlap"] for e in log][:2] == [1.0, 1.0] and 0.5 <= log[2]["overlap"] < 1.0
    assert [r["id"] for r in kept] == [r["id"] for r in train]


@pytest.mark.real_data
def test_real_gsm8k_train(tmp_path):
    """Numbers found in openai/grade-school-math train: 7473 rows, no (normalized) duplicate question;
    with 13-grams at threshold 0.5 two rows are near-copies of test problem 602 (train/plane, same rate)."""
    bench = tmp_path / "gsm8k_test.jsonl"
    write_jsonl(bench, benchmarks.prepare({"name": "gsm8k", "source": "local", "format": "gsm8k",
                                           "local_path": str(DATA / "gsm8k" / "test.jsonl")}))  # fmt: skip
    data = {"source": "local", "local_dir": str(DATA / "gsm8k"),
            "clean": {**CLEAN_OFF, "dedup": True, "decontaminate": {"ngram": 13, "threshold": 0.5}}}  # fmt: skip
    rep = gsm8k.prepare(_params(data), gsm8k_files(tmp_path / "a"), [str(bench)])
    assert (rep["rows_in"], rep["duplicates"], rep["contaminated"], rep["rows_out"]) == (7473, 0, 2, 7471)
    assert sorted(e["id"] for e in rep["contaminated_rows"]) == ["gsm8k-train-1314", "gsm8k-train-5162"]
    assert {e["benchmark"] for e in rep["contaminated_rows"]} == {f"{bench}:602"}
    sft = _lines(tmp_path / "a" / "sft.jsonl")
    assert len(sft) == 7471
    for r in sft:
        body = r["completion"][0]["content"]
        assert "<<" not in body and ">>" not in body
        assert r["answer"].lstrip("-").replace(".", "", 1).isdigit()
        assert body.endswith(f"</think>\n<answer>\\boxed{{{r['answer']}}}</answer>")
    # idempotent: preparing the prepared train/test files again changes nothing
    again = tmp_path / "in"
    again.mkdir()
    for f in ("train.jsonl", "test.jsonl"):
        shutil.copy(tmp_path / "a" / f, again / f)
    rep2 = gsm8k.prepare(_params({**data, "local_dir": str(again)}), gsm8k_files(tmp_path / "b"), [str(bench)])
    assert (rep2["duplicates"], rep2["contaminated"], rep2["rows_out"]) == (0, 0, 7471)
    for f in ("train.jsonl", "test.jsonl", "sft.jsonl", "rl.jsonl"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def _local_dir(tmp_path, train_lines):
    d = tmp_path / "in"
    d.mkdir()
    (d / "train.jsonl").write_text("\n".join(train_lines) + "\n")
    (d / "test.jsonl").write_text(train_lines[0] + "\n")
    return d


BAD = [
    json.dumps({"question": "Q1?", "answer": "2+2 = <<2+2=4>>4\n#### 4"}),
    json.dumps({"question": "Q2?", "answer": "no final line"}),
    json.dumps({"question": "Q3?", "answer": "x\n#### four"}),
    json.dumps({"question": "  ", "answer": "x\n#### 4"}),
    json.dumps({"question": "Q5?", "answer": "x\n#### 1,250"}),
]


@pytest.mark.parametrize(
    "line,msg", [(2, "no '####'"), (3, "'four' is not a number"), (4, "empty or missing")]
)
def test_malformed_error_names_file_and_line(tmp_path, line, msg):
    d = _local_dir(tmp_path, [BAD[0], BAD[line - 1]])
    with pytest.raises(gsm8k.MalformedRow, match=rf"train\.jsonl:2: .*{msg}"):
        gsm8k.prepare(_params({"source": "local", "local_dir": str(d), "clean": CLEAN_OFF}), gsm8k_files(tmp_path / "o"))


def test_malformed_dropped_when_configured(tmp_path):
    d = _local_dir(tmp_path, BAD)
    data = {"source": "local", "local_dir": str(d), "clean": {**CLEAN_OFF, "on_malformed": "drop"}}
    rep = gsm8k.prepare(_params(data), gsm8k_files(tmp_path / "o"))
    assert (rep["rows_in"], rep["malformed"], rep["rows_out"]) == (5, 3, 2)
    assert [m.split(": ")[0].rsplit(":", 1)[1] for m in rep["malformed_rows"]] == ["2", "3", "4"]
    assert [r["answer"] for r in _lines(tmp_path / "o" / "rl.jsonl")] == ["4", "1250"]


@pytest.mark.real_data
def test_cli_with_bench_and_tokenizer_is_deterministic(tmp_path):
    bench = tmp_path / "bench.jsonl"
    write_jsonl(bench, _bench_sets(20)["gsm8k"])
    plant = json.loads(bench.read_text().splitlines()[0])["problem"]
    d = _local_dir(
        tmp_path,
        [json.dumps(r) for r in gsm8k_rows(30, 0)]
        + [json.dumps({"question": plant, "answer": "x\n#### 3"}), json.dumps(gsm8k_rows(1, 0)[0])],
    )
    data = {
        "source": "local",
        "local_dir": str(d),
        "clean": {"dedup": True, "decontaminate": {"ngram": 13, "threshold": 0.5}, "on_malformed": "error"},
    }
    args = ["--params", json.dumps(_params(data)), "--bench", str(bench)]
    for run in ("a", "b"):
        out = tmp_path / run
        gsm8k.main([*args, *gsm8k_argv(out)])
        prep_report.main(["--cleaning", str(out / "cleaning.json"), "--sft", str(out / "sft.jsonl"),
                          "--tokenizer", str(TOKENIZER), "--max-length", "120", "--out", str(out / "prep_report.json")])  # fmt: skip
    for f in ("train.jsonl", "sft.jsonl", "rl.jsonl", "cleaning.json", "prep_report.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    rep = json.loads((tmp_path / "a" / "prep_report.json").read_text())
    assert (rep["rows_in"], rep["duplicates"], rep["contaminated"], rep["rows_out"]) == (32, 1, 1, 30)
    tl = rep["token_lengths"]
    assert tl["n"] == 30 and 0 < tl["p50"] <= tl["p90"] <= tl["p95"] <= tl["p99"] <= tl["max"]
    assert tl["max_length"] == 120 and 0 < tl["over_max_length"] < 30


def _planted_local(tmp_path):
    """Local GSM8K files whose train split holds a benchmark problem verbatim, and that benchmark file."""
    bench = tmp_path / "bench.jsonl"
    write_jsonl(bench, _bench_sets(20)["math500"])
    plant = json.loads(bench.read_text().splitlines()[3])["problem"]
    d = _local_dir(tmp_path, [json.dumps(r) for r in gsm8k_rows(30, 0)]
                   + [json.dumps({"question": plant, "answer": "x\n#### 3"})])  # fmt: skip
    return d, bench


@pytest.mark.parametrize("dc", [{"ngram": 13, "threshold": 0.5}, None], ids=["on", "null"])
def test_decontaminate_null_turns_it_off(tmp_path, dc):
    """config data.gsm8k.clean.decontaminate: null means off (schema and config say so): the planted benchmark
    problem stays, and the report says the step did not run."""
    d, bench = _planted_local(tmp_path)
    data = {"source": "local", "local_dir": str(d), "clean": {**CLEAN_OFF, "dedup": True, "decontaminate": dc}}
    rep = gsm8k.prepare(_params(data), gsm8k_files(tmp_path / "o"), [str(bench)] if dc else [])
    if dc:
        assert (rep["contaminated"], rep["rows_out"]) == (1, 30)
        assert rep["decontamination"]["benchmarks"] == [str(bench)]
    else:
        assert (rep["contaminated"], rep["decontamination"], rep["rows_out"]) == (None, None, 31)


def test_benchmark_files_must_match_the_setting(tmp_path):
    """The rule passes benchmark files exactly when decontamination is on; a mismatch is refused."""
    d, bench = _planted_local(tmp_path)
    off = {"source": "local", "local_dir": str(d), "clean": {**CLEAN_OFF, "dedup": True}}
    with pytest.raises(ValueError, match="decontamination is off"):
        gsm8k.prepare(_params(off), gsm8k_files(tmp_path / "o"), [str(bench)])
    on = {**off, "clean": {**CLEAN_OFF, "dedup": True, "decontaminate": {"ngram": 13, "threshold": 0.5}}}
    with pytest.raises(gsm8k.DataError, match="no benchmark file given"):
        gsm8k.prepare(_params(on), gsm8k_files(tmp_path / "o"), [])
