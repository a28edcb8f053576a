"""Benchmark loaders: every shared/data file normalizes, golds match the files, synthetic rows round-trip."""

import dataclasses
import json
from pathlib import Path

import pytest
from srlm.data import benchmarks
from srlm.data.io import DataError
from srlm.data.synthetic import benchmark_rows

from tests.conftest import REAL_DATA as DATA

FILES = {"gsm8k": 1319, "math500": 500, "amc23": 40, "minerva": 272, "olympiadbench": 675}


def _local(name):
    return benchmarks.prepare(
        {"name": name, "source": "local", "format": name, "local_path": str(DATA / name / "test.jsonl")}
    )


@pytest.mark.real_data
@pytest.mark.parametrize("name", FILES)
def test_local_files_normalize(name):
    rows = _local(name)
    assert len(rows) == FILES[name]
    assert len({r["id"] for r in rows}) == len(rows)
    for r in rows:
        assert set(r) == {"id", "problem", "answer"}
        assert r["problem"].strip() and r["answer"].strip()
        if name == "olympiadbench":
            assert "$" not in r["answer"]


@pytest.mark.real_data
def test_hand_checked_golds():
    by_id = {n: {r["id"]: r for r in _local(n)} for n in FILES}
    assert by_id["gsm8k"]["0"]["answer"] == "18"  # Janet's ducks
    assert by_id["gsm8k"]["0"]["problem"].startswith("Janet")
    assert by_id["math500"]["test/precalculus/807.json"]["answer"] == "\\left( 3, \\frac{\\pi}{2} \\right)"
    assert by_id["amc23"]["0"]["answer"] == "27"  # stored as 27.0
    assert by_id["amc23"]["3"]["answer"] == "3159"
    assert by_id["minerva"]["0"]["answer"] == "1.6"  # last \boxed{} of the solution
    assert by_id["minerva"]["1"]["answer"] == "4.5e33"
    assert by_id["olympiadbench"]["1606"]["answer"] == "2"
    assert by_id["olympiadbench"]["1664"]["answer"] == "69,84"  # '$69$,$84$'
    assert by_id["olympiadbench"]["1618"]["answer"] == "(1,8,19), (2,7,13), (4,5,7)"


def test_hub_schemas():
    """Field names of the hub datasets config.yaml names differ from the local files."""
    assert benchmarks.normalize({"question": "Q", "answer": "2.5"}, "minerva", 3) == {
        "id": "3",
        "problem": "Q",
        "answer": "2.5",
    }
    assert benchmarks.normalize({"question": "Q", "answer": 27.0}, "amc23", 0)["answer"] == "27"
    assert benchmarks.normalize({"question": "Q", "answer": "27"}, "amc23", 0)["answer"] == "27"
    assert benchmarks.normalize(
        {"id": 7, "question": "Q", "final_answer": ["$3$", "$x^2$"]}, "olympiadbench", 0
    ) == {"id": "7", "problem": "Q", "answer": "3, x^2"}
    assert (
        benchmarks.normalize({"problem": "P", "answer": "\\frac12", "unique_id": "u"}, "math500", 0)["id"]
        == "u"
    )
    assert benchmarks.normalize({"question": "Q", "answer": "x\n#### 1,600"}, "gsm8k", 4)["answer"] == "1600"


@pytest.mark.parametrize(
    "row,fmt",
    [
        ({"problem": "P", "answer": ""}, "math500"),
        ({"question": "Q"}, "amc23"),
        ({"problem": "P", "solution": "no box here", "idx": 9}, "minerva"),
        ({"id": 5, "question": "Q", "final_answer": []}, "olympiadbench"),
        ({"question": "Q", "answer": "no hashes"}, "gsm8k"),
    ],
)
def test_missing_gold_names_row(row, fmt):
    with pytest.raises(ValueError, match=rf"{fmt} row 12"):
        benchmarks.normalize(row, fmt, 12)


@pytest.mark.real_data
@pytest.mark.parametrize("fmt", FILES)
def test_synthetic_rows_match_formats(fmt, tmp_path):
    raw = benchmark_rows(fmt, 20, 0)
    real = json.loads((DATA / fmt / "test.jsonl").open().readline())
    assert set(raw[0]) == set(real)  # same raw schema as the real file
    out = tmp_path / "b.jsonl"
    params = {"name": fmt, "source": "synthetic", "format": fmt, "synthetic": {"n": 20, "seed": 0}}
    benchmarks.main(["--params", json.dumps(params), "--out", str(out)])
    first = out.read_bytes()
    benchmarks.main(["--params", json.dumps(params), "--out", str(out)])
    assert out.read_bytes() == first
    rows = [json.loads(line) for line in first.decode().splitlines()]
    assert len(rows) == 20 and all(r["answer"].lstrip("-").isdigit() for r in rows)


def test_unknown_source_named():
    with pytest.raises(ValueError, match="benchmarks.x.source"):
        benchmarks.prepare({"name": "x", "source": "ftp", "format": "gsm8k"})


def test_a_new_benchmark_layout_is_config_plus_one_format_entry(monkeypatch):
    """docs/howto.md: a benchmark whose rows are laid out unlike the five is one FORMATS entry and its config;
    validation, normalisation and the grader's reading of the gold follow from the entry."""
    import copy

    import yaml
    from srlm import config as cfg
    from srlm import grade

    base = yaml.safe_load((Path(__file__).resolve().parents[2] / "config.yaml").read_text())
    conf = copy.deepcopy(base)
    conf["benchmarks"]["aime"] = {"label": "AIME", "source": "hub", "hub_id": "x/aime", "hub_split": "train",
                                  "format": "aime", "generation": {}}  # fmt: skip
    with pytest.raises(cfg.ConfigError, match="benchmarks.aime.format: unknown format 'aime'"):
        cfg.validate(copy.deepcopy(conf))
    entry = benchmarks.Format(lambda row: str(row["Answer"]), id_field="ID", gold_as="expr")
    monkeypatch.setitem(benchmarks.FORMATS, "aime", entry)
    cfg.validate(copy.deepcopy(conf))
    row = benchmarks.normalize({"ID": "2024-I-1", "Problem": "?", "question": "What is 6 times 7?", "Answer": 42},
                               "aime", 0)  # fmt: skip
    assert row == {"id": "2024-I-1", "problem": "What is 6 times 7?", "answer": "42"}
    assert grade.grader("paper", "aime", 5.0)("so it is 42", "42").correct
    # numeric: the entry's golds must be plain numbers (issue-32's check), as amc23's and gsm8k's are
    monkeypatch.setitem(benchmarks.FORMATS, "aime", dataclasses.replace(entry, numeric=True))
    with pytest.raises(DataError, match="'forty-two' cannot be graded: not a number"):
        benchmarks.normalize({"question": "?", "Answer": "forty-two"}, "aime", 0)
