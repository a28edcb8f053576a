"""The tiny end-to-end run (config/demo.yaml) and partial rebuilds planned on top of it.

One session-scoped run of the demo DAG to table2.md in a copy of the workflow; the other tests plan against it.
"""

from __future__ import annotations

import json
import re

import pytest
import yaml

from collections import Counter

from tests.conftest import copy_workflow, planned_jobs, snakemake

pytestmark = pytest.mark.slow
TARGET = "results/demo/table2.md"


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("demo"))
    snakemake(TARGET, "--cores", "2", "--configfile", "config/demo.yaml", cwd=work)
    return work


def plan_with(work, overlay: dict | None = None) -> str:
    configs = ["config/demo.yaml"]
    if overlay is not None:
        (work / "overlay.yaml").write_text(yaml.safe_dump(overlay))
        configs.append("overlay.yaml")
    return snakemake("-n", TARGET, "--configfile", *configs, cwd=work).stdout


def test_table2_has_the_papers_rows_and_columns(demo):
    text = (demo / TARGET).read_text()
    header = next(line for line in text.splitlines() if line.startswith("| Method"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["Method", "OB", "MATH500", "MINERVA", "AMC23", "GSM8K"]
    for section in ("Baselines", "Training on Base Model", "Training on Instruct Model"):
        assert section in text
    for label in (
        "Qwen2.5-0.5B+KD (Lora)",
        "Qwen2.5-0.5B-Instruct+SFT (Lora)",
        "Qwen2.5-0.5B+RL",
        "Qwen2.5-0.5B-Instruct+RL",
    ):
        assert f"| {label}" in text
    rows = [line for line in text.splitlines() if re.match(r"^\| (\*\*)?Qwen", line)]
    assert len(rows) == 12
    for row in rows:  # every cell holds a number we measured
        cells = [c.strip().strip("*") for c in row.strip("|").split("|")[1:]]
        assert all(re.fullmatch(r"\d+\.\d", c) for c in cells), row


def test_every_cell_was_evaluated_with_sampling(demo):
    evals = sorted((demo / "results/demo/evals").rglob("*.json"))
    assert len(evals) == 60
    first = json.loads(evals[0].read_text())
    assert first["n_samples"] == 2 and first["generation"]["temperature"] == 0.6
    assert 0.0 <= first["pass_at_1"] <= 1.0


def test_lora_stage_is_merged_and_hybrid_reuses_parent(demo):
    models = demo / "results/demo/models/qwen2.5-0.5b"
    assert (models / "kd-lora/model/model.safetensors").is_file()  # full merged weights
    assert (models / "kd-lora/adapter/adapter_config.json").is_file()
    summary = json.loads((models / "rl/train_summary.json").read_text())
    assert summary["settings"]["beta"] == 0.04 and summary["settings"]["loss_type"] == "grpo"


def test_nothing_to_do_when_nothing_changed(demo):
    out = plan_with(demo)
    assert "Nothing to be done" in out, out[-2000:]


def test_rl_learning_rate_change_reruns_only_rl_chains(demo):
    jobs = planned_jobs(plan_with(demo, {"stages": {"rl": {"learning_rate": 2.0e-6}}}))
    counts = Counter(r for r, _ in jobs)
    assert counts == {"train_grpo": 2, "check_health": 2, "generate": 10, "grade": 10, "render_table": 1}
    assert all(w["chain"] == "rl" for r, w in jobs if r in ("train_grpo", "check_health", "generate", "grade"))


def test_benchmark_sampling_change_reruns_only_its_evaluations(demo):
    jobs = planned_jobs(plan_with(demo, {"benchmarks": {"math500": {"generation": {"temperature": 0.8}}}}))
    counts = Counter(r for r, _ in jobs)
    assert counts == {"generate": 12, "grade": 12, "render_table": 1}
    assert all(w["benchmark"] == "math500" for r, w in jobs if r in ("generate", "grade"))
