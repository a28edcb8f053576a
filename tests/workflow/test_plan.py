"""Plan shape of the paper's grid (dry runs of config.yaml): job counts written down from the paper's tables."""

from __future__ import annotations

import subprocess
import time

import pytest
import yaml

from tests.conftest import job_counts, planned_jobs, snakemake

TRAIN = ("train_sft", "train_grpo")


def plan(*targets: str, configs: tuple[str, ...] = ()) -> str:
    extra = ["--configfile", *configs] if configs else []
    return snakemake("-n", *targets, *extra).stdout


def training(counts) -> int:
    return sum(counts[r] for r in TRAIN)


def test_table2_alone():
    counts = job_counts(plan("results/table2.md"))
    # 10 trained rows: {kd, kd-lora, sft, sft-lora, rl} x 2 models; 12 rows x 5 benchmarks.
    assert (counts["train_sft"], counts["train_grpo"]) == (8, 2)
    assert counts["evaluate"] == 60
    assert counts["fetch_model"] == 2
    assert counts["prepare_benchmark"] == 5
    assert counts["render_table"] == 1


def test_table3_alone():
    counts = job_counts(plan("results/table3.md"))
    # 8 parents (kd, kd-lora, sft, sft-lora x 2 models) + 8 hybrid rl + 2 direct rl.
    assert (counts["train_sft"], counts["train_grpo"]) == (8, 10)
    # 12 rows (2 baselines, 8 hybrids, 2 direct rl) x 5 benchmarks.
    assert counts["evaluate"] == 60


def test_table2_and_table3_share_checkpoints():
    counts = job_counts(plan("results/table2.md", "results/table3.md"))
    assert training(counts) == 18  # not 28: parents and direct rl are trained once
    # 2 baselines + 10 table-2 rows + 8 hybrids, each on 5 benchmarks.
    assert counts["evaluate"] == 100


def test_table1_runs_and_shared_weights():
    jobs = planned_jobs(plan("results/table1.md"))
    counts = job_counts(plan("results/table1.md"))
    assert training(counts) == 2  # the two rl rows
    assert counts["evaluate"] == 6 * 5  # cited rows are not run
    # Qwen3 thinking and non-thinking share one download.
    fetched = sorted(w["model"] for r, w in jobs if r == "fetch_model")
    assert fetched == ["qwen2.5-0.5b", "qwen2.5-0.5b-instruct", "qwen3-0.6b"]


def test_hybrid_starts_from_parent_checkpoint():
    out = snakemake("-n", "-p", "results/models/qwen2.5-0.5b-instruct/kd-lora+rl/model").stdout
    assert "--model results/models/qwen2.5-0.5b-instruct/kd-lora/model" in out
    assert "--model results/models/qwen2.5-0.5b-instruct/base/model" in out  # kd-lora's own parent


def test_dry_run_is_fast():
    t0 = time.perf_counter()
    plan("results/table3.md")
    # Generous bound for a loaded CI box; the measured time is reported in docs/, not asserted tightly here.
    assert time.perf_counter() - t0 < 30


@pytest.mark.parametrize("fmt", ["rulegraph", "dag"])
def test_graphs_render_with_dot(fmt, tmp_path):
    # Snakemake 9: --dag/--rulegraph take an optional format, so targets go first.
    dot_src = snakemake("results/table3.md", f"--{fmt}", "dot", "--quiet", "all").stdout
    svg = subprocess.run(["dot", "-Tsvg"], input=dot_src, capture_output=True, text=True, check=True).stdout
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    if fmt == "rulegraph":
        for rule in ("train_sft", "train_grpo", "evaluate", "render_table", "prepare_gsm8k"):
            assert rule in svg


BAD = [
    ({"stages": {"rl": {"learning_rate": "1e-5"}}}, "stages.rl.learning_rate"),
    ({"stages": {"rl": {"lr": 1.0e-5}}}, "stages.rl.lr: unknown key"),
    ({"evaluation": {"top_k": 20}}, "evaluation.top_k: unknown key"),
    (
        {"tables": {"table3": {"sections": [{"title": "x", "rows": [{"model": "qwen2.5-0.5b", "chain": "kd+ppo",
                                                                      "paper": [None] * 5}]}]}}},
        "tables.table3.sections.0.rows.0.chain: 'kd+ppo' names undefined stage 'ppo'",
    ),
    ({"stages": {"sft": {"beta": 0.1}}}, "stages.sft.beta: not allowed"),
    ({"models": {"qwen2.5-0.5b": {"source": "ftp"}}}, "models.qwen2.5-0.5b.source"),
]


@pytest.mark.parametrize("overlay,message", BAD, ids=[m.split(":")[0] for _, m in BAD])
def test_bad_config_stops_before_any_job(overlay, message, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(overlay))
    proc = snakemake("-n", "results/table2.md", "--configfile", str(bad), check=False)
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    assert message in text, text[-3000:]
    assert "Job stats" not in text
