"""Cost: GPU-hours from hand-made Snakemake benchmark files; shared jobs counted once per table, overall."""

import json

import pytest
from srlm import cost

HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def bench_file(root, rel, *seconds):
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(
        HEADER + "".join(f"{s:.4f}\t0:00:00\t1.0\t2.0\t1.0\t1.0\t0.0\t0.0\t90.0\t{s}\n" for s in seconds)
    )


def spec():
    cols = ["gsm8k", "math500"]
    row = lambda model, chain: {"model": model, "chain": chain, "paper": [None, None]}  # noqa: E731
    return {
        "tables": {
            "t2": {
                "title": "T2",
                "header": "Method",
                "columns": cols,
                "sections": [{"title": "S", "rows": [row("m", "kd"), row("m", "rl")]}],
            },
            "t3": {
                "title": "T3",
                "header": "Method",
                "columns": cols,
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
        "gpus": {"train": 8, "evaluate": 1},
    }


def cells(md, label, section):
    """The cells of the row starting with `label` under the heading `section`."""
    part = md.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    line = next(x for x in part.splitlines() if x.startswith(f"| {label} |"))
    return [c.strip() for c in line.strip("|").split("|")][1:]


@pytest.fixture
def bench(tmp_path):
    b = tmp_path / "benchmarks"
    bench_file(b, "train_sft/m/kd.tsv", 3600)  # 1 h × 8 GPUs = 8 GPU-h
    bench_file(b, "train_grpo/m/kd+rl.tsv", 1000, 2600)  # repeats: mean 1800 s -> 4 GPU-h
    bench_file(b, "train_grpo/m/rl.tsv", 900)  # 2 GPU-h
    for chain in ("kd", "kd+rl", "rl"):
        for bm in ("gsm8k", "math500"):
            bench_file(b, f"evaluate/m/{chain}/{bm}.tsv", 180)  # 0.05 GPU-h each
    return b


def test_rows_tables_and_total(bench):
    md = cost.render(spec(), bench)
    assert cells(md, "M+KD", "T2") == ["1", "8.00", "0.10", "8.10"]
    assert cells(md, "M+RL", "T2") == ["1", "2.00", "0.10", "2.10"]
    assert cells(md, "M+KD+RL", "T3") == ["2", "12.00", "0.10", "12.10"]  # kd prefix job included
    assert cells(md, "**Table (each job once)**", "T3") == ["3", "14.00", "0.20", "14.20"]
    assert "Cited" not in md.split("## T3", 1)[1].split("## Jobs")[0]
    # kd is in both tables but counted once overall: 8 + 4 + 2 training, 6 × 0.05 evaluation.
    assert cells(md, "**All tables (each job once)**", "Totals") == ["14.00", "0.30", "14.30"]
    assert "| train_grpo | m | kd+rl |  | 0.50 | 8 | 4.00 |" in md.splitlines()
    assert "Missing benchmark files" not in md


def test_missing_files_are_dashes_and_listed(bench, tmp_path):
    (bench / "train_grpo/m/rl.tsv").unlink()
    for bm in ("gsm8k", "math500"):
        (bench / f"evaluate/m/rl/{bm}.tsv").unlink()
    md = cost.render(spec(), bench)
    assert cells(md, "M+RL", "T2") == ["1", "-", "-", "-"]
    assert cells(md, "**Table (each job once)**", "T2") == ["2", "≥8.00", "≥0.10", "≥8.10"]
    assert f"- `{bench / 'train_grpo/m/rl.tsv'}`" in md.splitlines()
    assert f"- `{bench / 'evaluate/m/rl/gsm8k.tsv'}`" in md.splitlines()


def test_gpu_counts_come_from_spec(bench):
    s = spec()
    s["gpus"] = {"train": 2, "evaluate": 0}
    assert cells(cost.render(s, bench), "M+KD+RL", "T3") == ["2", "3.00", "0", "3.00"]


def test_bad_benchmark_file_names_it(bench):
    (bench / "train_sft/m/kd.tsv").write_text("x\ty\n1\t2\n")
    with pytest.raises(ValueError, match="train_sft/m/kd.tsv"):
        cost.render(spec(), bench)


def test_cli(bench, tmp_path):
    (tmp_path / "spec.json").write_text(json.dumps(spec()))
    out = tmp_path / "results" / "cost.md"
    cost.main(
        [
            "--spec",
            str(tmp_path / "spec.json"),
            "--results",
            str(tmp_path / "results"),
            "--benchmarks",
            str(bench),
            "--out",
            str(out),
        ]
    )
    assert cells(out.read_text(), "T2", "Totals") == ["10.00", "0.20", "10.20"]
