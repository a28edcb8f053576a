"""Plan shape of the paper's grid (dry runs of config.yaml): job counts written down from the paper's tables,
and partial rebuilds: which jobs one config change reruns once every output exists."""

from __future__ import annotations

import shlex
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from srlm.completions import Params
from tests.conftest import copy_workflow, job_counts, planned_jobs, snakemake

TRAIN = ("train_sft", "train_grpo")
# Rules whose jobs need a GPU.
GPU = (*TRAIN, "generate")


def plan(*targets: str, configs: tuple[str, ...] = ()) -> str:
    extra = ["--configfile", *configs] if configs else []
    return snakemake("-n", *targets, *extra).stdout


def training(counts) -> int:
    return sum(counts[r] for r in TRAIN)


def test_table2_alone():
    counts = job_counts(plan("results/table2.md"))
    # 10 trained rows: {kd, kd-lora, sft, sft-lora, rl} x 2 models; 12 rows x 5 benchmarks.
    assert (counts["train_sft"], counts["train_grpo"]) == (8, 2)
    assert counts["generate"] == counts["grade"] == 60
    assert counts["fetch_model"] == 2
    assert counts["prepare_benchmark"] == 5
    assert counts["render_table"] == 1


def test_table2_one_generation_job_per_chain(tmp_path):
    overlay = tmp_path / "per-chain.yaml"
    overlay.write_text(yaml.safe_dump({"evaluation": {"generate_per": "chain"}}))
    out = plan("results/table2.md", configs=("config.yaml", str(overlay)))
    jobs, counts = planned_jobs(out), job_counts(out)
    # the 12 rows' (model, chain) pairs sample all 5 benchmarks each; grading stays one job per benchmark
    assert counts["generate"] == 12 and counts["grade"] == 60
    assert len({(w["model"], w["chain"]) for r, w in jobs if r == "generate"}) == 12


def test_table3_alone():
    counts = job_counts(plan("results/table3.md"))
    # 8 parents (kd, kd-lora, sft, sft-lora x 2 models) + 8 hybrid rl + 2 direct rl.
    assert (counts["train_sft"], counts["train_grpo"]) == (8, 10)
    # 12 rows (2 baselines, 8 hybrids, 2 direct rl) x 5 benchmarks.
    assert counts["generate"] == 60


def test_table2_and_table3_share_checkpoints():
    counts = job_counts(plan("results/table2.md", "results/table3.md"))
    assert training(counts) == 18  # not 28: parents and direct rl are trained once
    # 2 baselines + 10 table-2 rows + 8 hybrids, each on 5 benchmarks.
    assert counts["generate"] == 100


def test_table1_runs_and_shared_weights():
    jobs = planned_jobs(plan("results/table1.md"))
    counts = job_counts(plan("results/table1.md"))
    assert training(counts) == 2  # the two rl rows
    assert counts["generate"] == 6 * 5  # cited rows are not run
    # Qwen3 thinking and non-thinking share one download.
    fetched = sorted(w["model"] for r, w in jobs if r == "fetch_model")
    assert fetched == ["qwen2.5-0.5b", "qwen2.5-0.5b-instruct", "qwen3-0.6b"]


def test_hybrid_starts_from_parent_checkpoint():
    out = snakemake("-n", "-p", "results/models/qwen2.5-0.5b-instruct/kd-lora+rl/model").stdout
    assert "--model results/models/qwen2.5-0.5b-instruct/kd-lora/model" in out
    assert "--model results/models/qwen2.5-0.5b-instruct/base/model" in out  # kd-lora's own parent


@pytest.mark.parametrize("fmt", ["rulegraph", "dag"])
def test_graphs_render_with_dot(fmt, tmp_path):
    # Snakemake 9: --dag/--rulegraph take an optional format, so targets go first.
    dot_src = snakemake("results/table3.md", f"--{fmt}", "dot", "--quiet", "all").stdout
    svg = subprocess.run(["dot", "-Tsvg"], input=dot_src, capture_output=True, text=True, check=True).stdout
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    if fmt == "rulegraph":
        for rule in ("train_sft", "train_grpo", "generate", "grade", "check_health", "render_table", "prepare_gsm8k"):
            assert rule in svg


@pytest.mark.parametrize("off", [False, True], ids=["decontaminate", "decontaminate-null"])
def test_decontamination_switch_reaches_both_training_sets(off, tmp_path):
    """data.gsm8k.clean.decontaminate: null turns decontamination off: GSM8K and KD preparation get no
    benchmark files (and need no benchmark job); set, both get all five."""
    configs = ("config.yaml",)
    if off:
        (tmp_path / "off.yaml").write_text(yaml.safe_dump({"data": {"gsm8k": {"clean": {"decontaminate": None}}}}))
        configs += (str(tmp_path / "off.yaml"),)
    out = snakemake("-n", "-p", "results/data/gsm8k/sft.jsonl", "results/data/kd/train.jsonl",
                    "--configfile", *configs).stdout  # fmt: skip
    counts = job_counts(out)
    assert (counts["prepare_gsm8k"], counts["prepare_kd"]) == (1, 1)
    assert counts["prepare_benchmark"] == (0 if off else 5)
    gsm8k = next(x for x in out.splitlines() if "python -m srlm.data.gsm8k" in x)
    kd = next(x for x in out.splitlines() if "python -m srlm.data.distill" in x)
    for command in (gsm8k, kd):
        assert ("results/data/bench/" in command) is not off, command
        assert command.count("results/data/bench/") == (0 if off else 5)
    assert ('"decontaminate": null' in kd) is off  # a params change: switching prepares the KD rows again


def test_gpu_memory_utilization_reaches_the_engine_from_config(tmp_path):
    """config evaluation.gpu_memory_utilization is in every generation job's params, and srlm.completions hands
    it to generation.load, which has no default of its own (tests/unit/test_defaults.py)."""
    (tmp_path / "mem.yaml").write_text(yaml.safe_dump({"evaluation": {"gpu_memory_utilization": 0.5}}))
    for configs, want in ((("config.yaml",), 0.95), (("config.yaml", str(tmp_path / "mem.yaml")), 0.5)):
        out = snakemake("-n", "-p", "results/table2.md", "--configfile", *configs).stdout
        commands = [shlex.split(x) for x in out.splitlines() if "python -m srlm.completions" in x]
        params = [c[i + 1] for c in commands for i, a in enumerate(c) if a == "--params"]
        assert len(commands) == 60 and len(params) == 60
        assert {Params.from_json(p).gpu_memory_utilization for p in params} == {want}


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
    # Jobs trust their validated slice: a bad ‡ threshold key stops the plan, not a job.
    ({"health": {"tail": 0.5}}, "health.tail: unknown key"),
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


# ---------------------------------------------------------------- partial rebuilds of the whole paper grid


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A copy of the workflow in which every output of `all` exists and is recorded as made by its rule with
    today's params: empty stand-ins, then `snakemake --touch --forceall` (it records each job's metadata, the
    params included, as a real run would). Planning an overlay on it shows what that change reruns."""
    work = copy_workflow(tmp_path_factory.mktemp("built"))
    plan_all = snakemake("-n", "all", cwd=work).stdout
    for line in plan_all.splitlines():
        if line.strip().startswith("output: "):
            for out in line.strip().removeprefix("output: ").split(", "):
                path = work / out
                if path.name == "model" or path.parent.name == "figures":  # directory() outputs
                    path.mkdir(parents=True, exist_ok=True)
                else:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.touch()
    snakemake("--touch", "--forceall", "--cores", "1", "all", cwd=work)
    return work


def replan(work: Path, overlay: dict | None = None) -> list[tuple[str, dict]]:
    configs = ["config.yaml"]
    if overlay is not None:
        (work / "overlay.yaml").write_text(yaml.safe_dump(overlay))
        configs.append("overlay.yaml")
    return planned_jobs(snakemake("-n", "all", "--configfile", *configs, cwd=work).stdout)


def rules(jobs) -> Counter:
    return Counter(r for r, _ in jobs if r != "all")


def test_built_copy_has_nothing_to_do(built):
    assert rules(replan(built)) == {}


# The report's configuration page shows every setting, so it follows every change.
CONFIG_PAGE = {"render_config": 1}
# One change each: only cheap rules rerun (no training, no generation), and only those whose output it changes.
CHEAP = [
    # A ‡ threshold: every run is judged again; tables and figures show the marks; cost does not.
    ({"health": {"min_rise": 0.3}}, {"check_health": 18, "render_table": 3, "render_figures": 3, **CONFIG_PAGE}),
    # The † threshold: tables and figures only.
    ({"marks": {"not_extractable_threshold": 0.3}}, {"render_table": 3, "render_figures": 3, **CONFIG_PAGE}),
    # A stage's display label: every report names rows by it (cost: each table's page and the joint one).
    (
        {"stages": {"kd": {"label": "Distil"}}},
        {"render_table": 3, "render_cost": 4, "render_figures": 3, **CONFIG_PAGE},
    ),
    # A model's display label (renaming a model): the rows that name it, wherever they are shown.
    (
        {"models": {"qwen2.5-0.5b": {"label": "Qwen 0.5B"}}},
        {"render_table": 3, "render_cost": 4, "render_figures": 3, **CONFIG_PAGE},
    ),
    # A table's label: that table, its cost page and figures, and the joint cost page.
    # (The configuration page leaves `tables` to the tables.)
    ({"tables": {"table2": {"title": "Table 2 (ours)"}}}, {"render_table": 1, "render_cost": 2, "render_figures": 1}),
    # A statistic of the data report only.
    ({"data": {"gsm8k": {"clean": {"max_length": 4096}}}}, {"report_gsm8k": 1, **CONFIG_PAGE}),
]


@pytest.mark.parametrize("overlay,expected", CHEAP,
                         ids=["health", "marks", "stage-label", "model-label", "table-label", "prep-report"])
def test_report_only_changes_plan_no_gpu_job(built, overlay, expected):
    counts = rules(replan(built, overlay))
    assert not [r for r in counts if r in GPU], counts
    assert counts == expected


def test_decontamination_off_prepares_both_training_sets_again(built):
    """Switching data.gsm8k.clean.decontaminate to null is a params change of GSM8K and KD preparation (their
    inputs shrink too): both rerun, and everything trained on them; no benchmark is prepared again."""
    counts = rules(replan(built, {"data": {"gsm8k": {"clean": {"decontaminate": None}}}}))
    assert (counts["prepare_gsm8k"], counts["prepare_kd"], counts["prepare_benchmark"]) == (1, 1, 0)
    assert counts["report_gsm8k"] == 1 and training(counts) == 18


def test_rl_learning_rate_reruns_only_chains_ending_in_rl(built):
    jobs = replan(built, {"stages": {"rl": {"learning_rate": 2.0e-6}}})
    counts = rules(jobs)
    # 2 direct rl + 8 hybrids; their 50 evaluations; the kd/sft parents and the baselines stay.
    assert (counts["train_grpo"], counts["train_sft"]) == (10, 0)
    assert counts["generate"] == counts["grade"] == 50 and counts["check_health"] == 10
    assert all(w["chain"].endswith("rl") for r, w in jobs if r in GPU)


def test_sampling_temperature_reruns_only_that_benchmarks_evaluations(built):
    jobs = replan(built, {"benchmarks": {"math500": {"generation": {"temperature": 0.8}}}})
    counts = rules(jobs)
    assert training(counts) == 0 and counts["check_health"] == 0
    assert counts["generate"] == counts["grade"] == 22  # every (model, chain) of the three tables, once
    assert all(w["benchmark"] == "math500" for r, w in jobs if r in ("generate", "grade"))


def test_compile_switch_is_a_training_param_only_when_off(built):
    """launch.compile is true in config.yaml and absent from the jobs' params (the built copy plans nothing);
    switching it off reaches every training job, which then runs eagerly."""
    counts = rules(replan(built, {"launch": {"compile": False}}))
    every = rules(replan(built, {"stages": {stage: {"seed": 7} for stage in yaml.safe_load(
        (built / "config.yaml").read_text())["stages"]}}))  # fmt: skip
    assert training(counts) == training(every) > 0


def test_switching_maskless_attention_off_retrains_grpo_only(built):
    """rl's maskless_attention is true in config.yaml, so a param of the GRPO jobs (the built copy plans nothing);
    switching it off retrains what a change of rl's learning rate retrains, and nothing else."""
    off = rules(replan(built, {"stages": {"rl": {"maskless_attention": False}}}))
    assert off == rules(replan(built, {"stages": {"rl": {"learning_rate": 2.0e-6}}})) and off["train_grpo"] == 10


def test_a_new_stage_key_at_its_schema_default_reruns_nothing(built):
    """The schema's `default` marks a key that came after finished jobs (docs/architecture.md, "Defaults"): at that
    value it is left out of the jobs' params, so stating it reruns no job (the configuration page shows it); any
    other value retrains what a change of that stage's learning rate retrains."""
    schema_file = built / "workflow" / "schemas" / "config.schema.yaml"
    original = schema_file.read_text()
    schema = yaml.safe_load(original)
    stage = schema["properties"]["stages"]["additionalProperties"]
    stage["properties"]["new_switch"] = {"type": "boolean", "default": False}
    schema_file.write_text(yaml.safe_dump(schema, sort_keys=False))
    try:
        assert rules(replan(built, {"stages": {"rl": {"new_switch": False}}})) == CONFIG_PAGE
        on = rules(replan(built, {"stages": {"rl": {"new_switch": True}}}))
        assert on == rules(replan(built, {"stages": {"rl": {"learning_rate": 2.0e-6}}})) and on["train_grpo"] == 10
    finally:
        schema_file.write_text(original)


def test_sft_epochs_retrain_sft_and_what_starts_from_it(built):
    jobs = replan(built, {"stages": {"sft": {"num_train_epochs": 3}}})
    counts = rules(jobs)
    assert (counts["train_sft"], counts["train_grpo"]) == (2, 2)  # sft, and sft+rl from it, per model
    assert counts["generate"] == 4 * 5
    assert {w["chain"] for r, w in jobs if r in GPU} == {"sft", "sft+rl"}


def test_redefined_model_reruns_everything_made_from_it(built):
    """A model key that now names other weights (hub_id): its download, every training and evaluation of it, and
    every table, cost page and figure folder showing it; the other base model's runs stay."""
    jobs = replan(built, {"models": {"qwen2.5-0.5b": {"hub_id": "Qwen/Qwen2.5-Math-1.5B"}}})
    counts = rules(jobs)
    assert counts["fetch_model"] == 1 and counts["render_table"] == 3 and counts["render_cost"] == 4
    trained = {w["model"] for r, w in jobs if r in GPU}
    assert trained == {"qwen2.5-0.5b"} and training(counts) == 9


def test_report_to_retrains_nothing(built):
    """launch.report_to picks who watches a run, not what it learns: switching it plans no training (the jobs
    get it as $SRLM_REPORT_TO; tests/unit/test_train.py checks that a training reads it): only the report's
    configuration page is redrawn."""
    assert rules(replan(built, {"launch": {"report_to": ["tensorboard"]}})) == CONFIG_PAGE
