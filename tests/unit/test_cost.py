"""Cost: GPU-hours from hand-made timing records (train_summary attempts, evaluation timing); shared jobs counted
once per table and overall; only declared files are read."""

import json
from pathlib import Path

import pytest
from srlm import cost, layout
from srlm.tables import Inputs

COLS = ["gsm8k", "math500"]


def spec():
    row = lambda model, chain: {"model": model, "chain": chain, "paper": [None, None]}
    return {
        "tables": {
            "t2": {
                "title": "T2",
                "header": "Method",
                "columns": COLS,
                "sections": [{"title": "S", "rows": [row("m", "kd"), row("m", "rl")]}],
            },
            "t3": {
                "title": "T3",
                "header": "Method",
                "columns": COLS,
                "sections": [
                    {
                        "title": "S",
                        "rows": [
                            {"label": "Cited", "cited": True, "paper": [1.0, 2.0]},
                            row("m", "kd+rl"),
                            row("m", "rl"),
                        ],
                    }
                ],
            },
        },
        "models": {"m": {"label": "M"}},
        "stages": {"kd": {"label": "KD", "type": "sft"}, "rl": {"label": "RL", "type": "grpo"}},
        "benchmarks": {"gsm8k": {"label": "GSM8K"}, "math500": {"label": "MATH500"}},
    }


def cells(md, label, section):
    """The cells of the row starting with `label` under the heading `section`."""
    part = md.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    line = next(x for x in part.splitlines() if x.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")][1:]


def write(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj))


@pytest.fixture
def inputs(tmp_path):
    """The declared files of the cost rule, as common.smk builds them, with timing records in them."""
    lay = layout.Layout(str(tmp_path / "results"))
    mapping = lay.inputs([("m", c, b) for c in ("kd", "rl", "kd+rl") for b in COLS], ["evals", "train_summary"])
    attempts = {"kd": [(3600, 8)], "kd+rl": [(1000, 8), (800, 8)], "rl": [(900, 8)]}  # 8, 4 and 2 GPU-h
    for chain, runs in attempts.items():
        record = {"model": "m", "chain": chain, "attempts": [{"wall_s": s, "gpus": g} for s, g in runs]}
        write(Path(lay.train_summary("m", chain)), record)
        for b in COLS:  # 0.05 GPU-h each
            write(Path(lay.eval_json("m", chain, b)), {"pass_at_1": 0.1, "timing": {"wall_s": 180.0, "gpus": 1}})
    return Inputs(mapping)


def test_rows_tables_and_total(inputs):
    md = cost.render(spec(), inputs)
    assert cells(md, "M+KD", "T2") == ["1", "8.00", "0.10", "8.10"]
    assert cells(md, "M+RL", "T2") == ["1", "2.00", "0.10", "2.10"]
    assert cells(md, "M+KD+RL", "T3") == ["2", "12.00", "0.10", "12.10"]  # kd prefix job included
    assert cells(md, "**Table (each job once)**", "T3") == ["3", "14.00", "0.20", "14.20"]
    assert "Cited" not in md.split("## T3", 1)[1].split("## Jobs")[0]
    # kd is in both tables but counted once overall: 8 + 4 + 2 training, 6 × 0.05 evaluation.
    assert cells(md, "**All tables (each job once)**", "Totals") == ["14.00", "0.30", "14.30"]
    assert "| train_grpo | m | kd+rl |  | 0.50 | 8 | 4.00 |" in md.splitlines()
    assert "| generate | m | rl | gsm8k | 0.05 | 1 | 0.05 |" in md.splitlines()
    assert "Missing timing records" not in md


def test_missing_records_are_dashes_and_listed(inputs):
    missing = [inputs.path("train_summary", "m", "rl"), *(inputs.path("evals", "m", "rl", b) for b in COLS)]
    for p in missing:
        p.unlink()
    md = cost.render(spec(), inputs)
    assert cells(md, "M+RL", "T2") == ["1", "-", "-", "-"]
    assert cells(md, "**Table (each job once)**", "T2") == ["2", "≥8.00", "≥0.10", "≥8.10"]
    for p in missing:
        assert f"- `{p}`" in md.splitlines()


def test_gpus_come_from_the_attempts(inputs):
    # A requeued job: 1000 s on 8 GPUs, then 800 s on 4.
    write(inputs.path("train_summary", "m", "kd+rl"), {"attempts": [{"wall_s": 1000, "gpus": 8}, {"wall_s": 800, "gpus": 4}]})
    md = cost.render(spec(), inputs)
    assert cells(md, "M+KD+RL", "T3") == ["2", "11.11", "0.10", "11.21"]
    assert "| train_grpo | m | kd+rl |  | 0.50 | 8, 4 | 3.11 |" in md.splitlines()


def test_bad_timing_record_names_the_file(inputs):
    write(inputs.path("train_summary", "m", "kd"), {"attempts": [{"wall_s": "1h", "gpus": 8}]})
    with pytest.raises(ValueError, match="m/kd/train_summary.json"):
        cost.render(spec(), inputs)


def test_undeclared_files_do_not_change_the_cost(inputs, tmp_path):
    before = cost.render(spec(), inputs)
    declared = set(layout.files(inputs.mapping))
    # Snakemake's benchmark files and any other file beside the declared ones: renamed, the cost stays.
    bench = tmp_path / "benchmarks" / "train_sft" / "m" / "kd.tsv"
    bench.parent.mkdir(parents=True)
    bench.write_text("s\n99999\n")
    undeclared = [p for p in tmp_path.rglob("*") if p.is_file() and str(p) not in declared]
    assert undeclared
    for p in undeclared:
        p.rename(p.with_name(p.name + ".moved"))
    assert cost.render(spec(), inputs) == before


def test_cli(inputs, tmp_path):
    (tmp_path / "spec.json").write_text(json.dumps(spec()))
    (tmp_path / "inputs.json").write_text(json.dumps(inputs.mapping))
    out = tmp_path / "out" / "cost.md"
    cost.main(["--spec", str(tmp_path / "spec.json"), "--inputs", str(tmp_path / "inputs.json"), "--out", str(out)])
    assert cells(out.read_text(), "T2", "Totals") == ["10.00", "0.20", "10.20"]


def test_page_title_names_the_tables_it_covers(inputs):
    """The demo's cost page covers Table 2 only: its title must not say Tables 1–3."""
    assert cost.scope_title(["table2"]) == "Table 2"
    assert cost.scope_title(["table1", "table2", "table3"]) == "Tables 1, 2 and 3"
    assert cost.scope_title(["t2", "t3"]) == "t2, t3"
    assert cost.render(spec(), inputs).splitlines()[0] == "# Compute cost of t2, t3"
