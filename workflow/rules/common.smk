import json
import os
import re
import shlex
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir) / "workflow"))  # the srlm package, also without `pip install -e .`
from srlm import config as cfg
from srlm import pages
from srlm.cleanup import remove_checkpoints
from srlm.tables import report_spec, table_spec

cfg.validate(config)  # stops before any job is planned, naming the bad key

R = config["results"]
MODELS = config["models"]
STAGES = config["stages"]
BENCHMARKS = config["benchmarks"]
TABLES = config["tables"]

# Caches stay inside the workflow's folders (compute nodes may have no writable home, and no network).
for var, sub in [("HF_HOME", "hf"), ("XDG_CACHE_HOME", ""), ("TORCH_EXTENSIONS_DIR", "torch_extensions")]:
    os.environ.setdefault(var, str(Path(".cache", sub).resolve()))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _alt(keys):
    return "|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True))


def _chain_ending_in(stage_type):
    any_stage = _alt(STAGES)
    last = _alt(k for k, v in STAGES.items() if v["type"] == stage_type) or "(?!)"
    return rf"(?:(?:{any_stage})\+)*(?:{last})"


CHAIN_SFT = _chain_ending_in("sft")
CHAIN_GRPO = _chain_ending_in("grpo")


wildcard_constraints:
    model=_alt(MODELS),
    benchmark=_alt(BENCHMARKS),
    chain=rf"base|{CHAIN_SFT}|{CHAIN_GRPO}",
    table=_alt(TABLES),
    scope=rf"all|{_alt(TABLES)}",


def arg(obj):
    """A config slice as one shell-quoted JSON argument: the rule's params, hence its rerun trigger."""
    return shlex.quote(json.dumps(obj, sort_keys=True))


# ---- paths ------------------------------------------------------------------------------------------------
def model_dir(model, chain):
    """Weights of (model, chain); untrained entries that share weights share one download."""
    if chain == cfg.BASE:
        return f"{R}/models/{cfg.weights_model(config, model)}/base/model"
    return f"{R}/models/{model}/{chain}/model"


def eval_path(model, chain, benchmark):
    return f"{R}/evals/{model}/{chain}/{benchmark}.json"


def table_evals(table):
    cols = TABLES[table]["columns"]
    return [eval_path(m, c, b) for m, c in cfg.table_runs(config, table) for b in cols]


def table_summaries(table):
    runs = cfg.table_runs(config, table)
    return sorted({f"{R}/models/{m}/{p}/train_summary.json" for m, c in runs for p in cfg.prefixes(c)})


def get_all_targets():
    """Rule all: each table of config `targets` with its HTML pages, cost and figures, and their joint cost."""
    per_table = [[f"{R}/{t}.md", f"{R}/cost/{t}.md", f"{R}/figures/{t}"] for t in config["targets"]]
    return [f for files in per_table for f in files] + [f"{R}/cost/all.md"]


def scope_tables(scope):
    """The tables a cost page or figure folder covers: one, or `all` = those of config `targets`."""
    return list(config["targets"]) if scope == "all" else [scope]


# ---- input functions --------------------------------------------------------------------------------------
def get_parent_model(wildcards):
    return model_dir(wildcards.model, cfg.parent_chain(wildcards.chain))


def get_gsm8k_tokenizer(wildcards):
    """Token-length statistics of the SFT data use this model's tokenizer (config data.gsm8k.clean)."""
    return model_dir(config["data"]["gsm8k"]["clean"]["tokenizer_model"], cfg.BASE)


def _kd_generates():
    return config["data"]["kd"]["source"] == "generate"


def get_kd_problems(wildcards):
    """Regenerated traces answer the GSM8K train questions; the other sources need no input."""
    return [f"{R}/data/gsm8k/train.jsonl"] if _kd_generates() else []


def get_kd_command(wildcards):
    if _kd_generates():
        return f"python -m srlm.data.generate --problems {R}/data/gsm8k/train.jsonl"
    return "python -m srlm.data.distill"


def get_kd_gpus(wildcards):
    """GPUs for a vLLM teacher started inside the job (0: hub, local files or an external endpoint)."""
    gen = config["data"]["kd"].get("generate", {})
    return gen.get("vllm", {}).get("gpus", 1) if _kd_generates() and gen.get("endpoint") == "vllm" else 0


def get_stage(wildcards):
    return STAGES[cfg.last_stage(wildcards.chain)]


def get_train_data(wildcards):
    stage = get_stage(wildcards)
    if stage["type"] == "grpo":
        return f"{R}/data/gsm8k/rl.jsonl"
    return f"{R}/data/gsm8k/sft.jsonl" if stage["dataset"] == "gsm8k" else f"{R}/data/kd/train.jsonl"


def get_eval_model(wildcards):
    return model_dir(wildcards.model, wildcards.chain)


def get_table_inputs(wildcards):
    return table_evals(wildcards.table) + table_summaries(wildcards.table)


# ---- params: each rule sees only its own slice of the config -------------------------------------------------
def get_fetch_params(wildcards):
    m = MODELS[wildcards.model]
    p = {k: m.get(k) for k in ("source", "hub_id", "local_path")}
    if m["source"] == "tiny":
        p["tiny"] = {**config["tiny_model"], "instruct": m.get("instruct", False)}
        p["tiny"]["seed_offset"] = sorted(MODELS).index(wildcards.model)
        p["system_prompt"] = config["prompt"]["system"]
    return arg(p)


def get_benchmark_params(wildcards):
    b = BENCHMARKS[wildcards.benchmark]
    return arg({"name": wildcards.benchmark, **{k: v for k, v in b.items() if k not in ("label", "generation")}})


def get_train_params(wildcards):
    m = MODELS[wildcards.model]
    return arg(
        {
            "stage": get_stage(wildcards),
            "model": {"eos_token": m["eos_token"]},
            "mixed_precision": config["launch"]["mixed_precision"],
            "report_to": config["launch"]["report_to"],
            "health": config["health"],
            # The stage's batch is per GPU of a full node: jobs on fewer GPUs accumulate to the same global batch.
            "node_gpus": config["gpus"]["train"],
        }
    )


def get_deepspeed(wildcards):
    """DeepSpeed config for full-weight stages (LoRA stages train too few weights for ZeRO to pay)."""
    ds = config["launch"]["deepspeed"]
    return f"--deepspeed {ds}" if ds and not get_stage(wildcards)["lora"] else ""


def get_generate_params(wildcards):
    ev, m = config["evaluation"], MODELS[wildcards.model]
    keys = ("protocol", "engine", "dtype", "max_model_length", "gpu_memory_utilization", "batch_size")
    chat = {"chat_template": m["chat_template"], "enable_thinking": m.get("enable_thinking")}
    if ev["protocol"] == "r1":  # the paper protocol has no system prompt: prompt.system must not rerun it
        chat["system_prompt"] = config["prompt"]["system"]
    generation = {**ev["generation"], **BENCHMARKS[wildcards.benchmark]["generation"]}
    return arg({**{k: ev[k] for k in keys}, "generation": generation, "chat": chat})


def get_grade_params(wildcards):
    g = config["evaluation"]["grading"]
    return arg({**g, "gold_format": BENCHMARKS[wildcards.benchmark]["format"]})


def get_table_spec(wildcards):
    return arg(table_spec(config, wildcards.table))


def get_report_inputs(wildcards):
    return sorted({f for t in scope_tables(wildcards.scope) for f in table_evals(t) + table_summaries(t)})


def get_report_spec(wildcards):
    spec = report_spec(config)
    spec["tables"] = {t: spec["tables"][t] for t in scope_tables(wildcards.scope)}
    return arg(spec)


get_report_category, get_report_subcategory = pages.category, pages.subcategory


onsuccess:
    if not config["launch"]["keep_checkpoints"]:
        for work in remove_checkpoints(Path(R) / "models"):
            print(f"launch.keep_checkpoints false: removed {work}")
