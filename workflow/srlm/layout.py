"""Where every output of a run lives, and the chain syntax: the one owner of both (rules and scripts share it).

A trained model is a (model, chain) pair; a chain is stage keys joined by "+" ("kd-lora+rl"), applied in order
to the base model; "base" is the untrained model. The parent of "kd-lora+rl" is "kd-lora", so hybrid rows
reuse the very checkpoint their parent row evaluates.

Path methods take plain strings, so rules pass wildcards ("{model}") and get Snakemake patterns back.
Report scripts never build paths: their rule hands them a mapping of declared files (`inputs`), and they
read what it names.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

BASE = "base"
SEP = "+"


# ---- chain syntax ------------------------------------------------------------------------------------------
def stages(chain: str) -> list[str]:
    """'kd-lora+rl' -> ['kd-lora', 'rl']; 'base' -> []."""
    return [] if chain == BASE else chain.split(SEP)


def parent(chain: str) -> str:
    """The chain one stage shorter: 'kd-lora+rl' -> 'kd-lora', 'rl' -> 'base'."""
    s = stages(chain)
    if not s:
        raise ValueError("the base chain has no parent")
    return SEP.join(s[:-1]) or BASE


def last_stage(chain: str) -> str:
    """'sft-lora+rl' -> 'rl' (the stage a training job of this chain runs)."""
    s = stages(chain)
    if not s:
        raise ValueError("the base chain has no stage")
    return s[-1]


def prefixes(chain: str) -> list[str]:
    """Every trained chain a chain is built from, itself included: 'kd+rl' -> ['kd', 'kd+rl']; 'base' -> []."""
    s = stages(chain)
    return [SEP.join(s[: i + 1]) for i in range(len(s))]


def alternation(keys: Iterable[str]) -> str:
    """A regex matching exactly one of `keys` (longest first, so "kd-lora" is not read as "kd"); none: never."""
    return "|".join(re.escape(k) for k in sorted(keys, key=len, reverse=True)) or "(?!)"


def chain_pattern(stage_keys: Iterable[str], last: Iterable[str]) -> str:
    """Regex of the trained chains built from `stage_keys` whose last stage is one of `last` (a rule's
    wildcard constraint: train_grpo builds the chains ending in a GRPO stage)."""
    return rf"(?:(?:{alternation(stage_keys)}){re.escape(SEP)})*(?:{alternation(last)})"


# ---- paths ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Layout:
    """Paths under one results folder. `weights`: model key -> the key whose download it uses (models that
    share weights, e.g. Qwen3 thinking and non-thinking, share one base/model folder)."""

    results: str
    weights: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, config: dict) -> Layout:
        models = config["models"]
        return cls(config["results"], {k: m.get("same_weights_as") or k for k, m in models.items()})

    # data
    def gsm8k(self, name: str) -> str:
        """GSM8K files: train|test|sft|rl (.jsonl), cleaning (.json: what cleaning did), prep_report (.json)."""
        ext = "json" if name in ("cleaning", "prep_report") else "jsonl"
        return f"{self.results}/data/gsm8k/{name}.{ext}"

    def kd_data(self) -> str:
        return f"{self.results}/data/kd/train.jsonl"

    def kd_report(self) -> str:
        """What KD preparation kept and dropped, and why."""
        return f"{self.results}/data/kd/kd_report.json"

    def kd_partial(self) -> str:
        """Every teacher attempt of KD regeneration as it arrives (not an output: a restarted job resumes from it,
        and a rerun rebuilds the output from it alone)."""
        return f"{self.results}/data/kd/train.partial.jsonl"

    def bench(self, benchmark: str) -> str:
        return f"{self.results}/data/bench/{benchmark}.jsonl"

    # models: one folder per (model, chain)
    def run_dir(self, model: str, chain: str) -> str:
        return f"{self.results}/models/{model}/{chain}"

    def model_dir(self, model: str, chain: str) -> str:
        """Weights of (model, chain); untrained entries that share weights share one download."""
        if chain == BASE:
            return f"{self.run_dir(self.weights.get(model, model), BASE)}/model"
        return f"{self.run_dir(model, chain)}/model"

    def work_dir(self, model: str, chain: str) -> str:
        """Resumable checkpoints of a training job (not an output: a requeued job finds them); the job names what
        it keeps inside (checkpoint-N, attempts.json, a LoRA stage's adapter/: srlm.train.job)."""
        return f"{self.run_dir(model, chain)}/work"

    def train_summary(self, model: str, chain: str) -> str:
        return f"{self.run_dir(model, chain)}/train_summary.json"

    def metrics(self, model: str, chain: str) -> str:
        return f"{self.run_dir(model, chain)}/metrics.jsonl"

    def health(self, model: str, chain: str) -> str:
        return f"{self.run_dir(model, chain)}/health.json"

    # evaluation
    def completions(self, model: str, chain: str, benchmark: str) -> str:
        return f"{self.results}/completions/{model}/{chain}/{benchmark}.jsonl"

    def evals_dir(self) -> str:
        return f"{self.results}/evals"

    def eval_json(self, model: str, chain: str, benchmark: str) -> str:
        return f"{self.evals_dir()}/{model}/{chain}/{benchmark}.json"

    def eval_details(self, model: str, chain: str, benchmark: str) -> str:
        return f"{self.evals_dir()}/{model}/{chain}/{benchmark}.details.jsonl"

    # reports
    def table(self, name: str) -> str:
        return f"{self.results}/{name}.md"

    def table_vs_paper(self, name: str) -> str:
        return f"{self.results}/{name}_vs_paper.md"

    def cost(self, scope: str) -> str:
        """Cost page of one table, or of all tables of config `targets` (scope "all")."""
        return f"{self.results}/cost/{scope}.md"

    def figures(self, table: str) -> str:
        return f"{self.results}/figures/{table}"

    # a job's log and its timing record, under the results folder: a demo's (results/demo) apart from a real run's
    def log(self, name: str) -> str:
        return f"{self.results}/logs/{name}.log"

    def tensorboard(self, name: str) -> str:
        """TensorBoard events of a training job (config launch.report_to), beside its log (`log(name)`)."""
        return f"{self.results}/logs/{name}.tensorboard"

    def benchmark(self, name: str) -> str:
        return f"{self.results}/benchmarks/{name}.tsv"

    def config_page(self) -> str:
        """The configuration a run used, as the report's Configuration page (srlm.pages)."""
        return f"{self.results}/config.html"

    def html(self, md: str) -> str:
        """The HTML page srlm.pages writes beside a Markdown table (what the report shows)."""
        return md.removesuffix(".md") + ".html"

    # what a report rule declares
    def inputs(self, cells: Iterable[tuple[str, str, str]], kinds: Iterable[str]) -> dict:
        """The files behind report cells (model, chain, benchmark), by kind: "evals" ->
        {model: {chain: {benchmark: path}}}; "health" | "train_summary" | "metrics" -> {model: {chain: path}}
        for every trained prefix of the cells' chains. The rule declares `files(...)` of it as input and
        passes it to the script, which reads nothing else."""
        kinds, cells = list(kinds), list(cells)
        unknown = set(kinds) - {"evals", "health", "train_summary", "metrics"}
        if unknown:
            raise ValueError(f"unknown input kind(s) {sorted(unknown)}")
        out: dict = {k: {} for k in kinds}
        for model, chain, benchmark in cells:
            if "evals" in out:
                out["evals"].setdefault(model, {}).setdefault(chain, {})[benchmark] = self.eval_json(
                    model, chain, benchmark
                )
            for kind in kinds:
                if kind != "evals":
                    for prefix in prefixes(chain):
                        out[kind].setdefault(model, {})[prefix] = getattr(self, kind)(model, prefix)
        return out


def files(inputs: dict) -> list[str]:
    """Every path of an `inputs` mapping, sorted and once each."""

    def walk(node):
        if isinstance(node, str):
            yield node
        else:
            for v in node.values():
                yield from walk(v)

    return sorted(set(walk(inputs)))
