"""The project's benchmarks as lighteval 0.13 tasks, for the `lighteval` CLI (a module-level TASKS_TABLE):

    lighteval accelerate "model_name=MODEL,dtype=bfloat16,max_length=32768,batch_size=64,override_chat_template=true,generation_parameters={temperature:0.6,top_p:0.95}" \
        "srlm_math500|0" --custom-tasks workflow/srlm/lighteval_tasks.py

(lighteval 0.13's `lighteval vllm` requires vllm<0.10.2 and refuses the project's vLLM, 0.26 on the cluster and
0.31 in CI; its `endpoint litellm` backend against `vllm serve` works: config/lighteval/vllm-serve.yaml,
docs/vllm.md.)

The benchmarks are config.yaml's, with the overlays named in $SRLM_CONFIGFILES (space-separated, as given to
`snakemake --configfile`; e.g. config/local-data.yaml). A hub benchmark is read from its hub id (as the paper's
harness did); a local or synthetic one is written once, raw, to .cache/lighteval/<benchmark>/test.jsonl, the
folder lighteval's dataset loader is given. Each task normalises a row with
srlm.data.benchmarks (the pipeline's own reader), asks it with srlm.prompts' query and scores it with the protocol's
metric: the paper protocol's `extractive_match` is lighteval's own (MultilingualExtractiveMatchMetric as Open-RS
configures it); the r1 protocol's is srlm.grading. SRLM_PROTOCOL=paper|r1 picks the protocol (default: config.yaml's).

The pipeline does not run lighteval's pipeline: its generation job (srlm.completions) renders the same messages
with the model's chat template and samples through srlm.generation, and its grading job (srlm.grade) applies the
same graders through math-verify. tests/unit/test_evaluation.py checks that lighteval's PromptManager renders a
Doc of these tasks to the pipeline's exact prompt text, and that lighteval's metric gives the pipeline's verdicts.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
from lighteval.metrics.dynamic_metrics import MultilingualExtractiveMatchMetric
from lighteval.metrics.utils.extractive_match_utils import ExprExtractionConfig, LatexExtractionConfig
from lighteval.metrics.utils.metric_utils import SampleLevelComputation, SampleLevelMetric
from lighteval.tasks.lighteval_task import LightevalTaskConfig
from lighteval.tasks.requests import Doc, SamplingMethod

# The CLI loads this file by path, not as part of an installed package: make its package importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from srlm import config as cfg  # noqa: E402
from srlm import grading, prompts  # noqa: E402
from srlm.data.benchmarks import load_raw, normalize  # noqa: E402
from srlm.grade import gold_as  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "config.yaml"


def doc(row: dict, task_name: str, protocol: str, r1_system: str = "") -> Doc:
    """A normalised bench row {"id", "problem", "answer"} as lighteval's Doc: the protocol's user turn as query,
    its system prompt (r1) as instruction-free system prompt is the PromptManager's (`system_prompt`) business."""
    return Doc(
        task_name=task_name,
        query=prompts.query(row["problem"], protocol),
        choices=[str(row["answer"])],
        gold_index=0,
        specific={"id": str(row["id"])},
    )


class SrlmGrade(SampleLevelComputation):
    """The r1 protocol's grader (srlm.grading: the <answer> span, math-verify) as a lighteval metric."""

    def compute(self, doc: Doc, model_response, **kwargs) -> float:
        return float(grading.grade(model_response.final_text[0], doc.get_golds()[0]).correct)


def metric(protocol: str, gold_format: str) -> SampleLevelMetric:
    if protocol == "paper":
        gold = LatexExtractionConfig() if gold_as(gold_format) == "latex" else ExprExtractionConfig()
        fn = MultilingualExtractiveMatchMetric(
            gold_extraction_target=(gold,),
            pred_extraction_target=(ExprExtractionConfig(), LatexExtractionConfig(boxed_match_priority=0)),
            fallback_mode="first_match",
            precision=grading.PAPER_PRECISION,
        )
        name = "extractive_match"
    else:
        fn, name = SrlmGrade(), "srlm_answer_match"
    return SampleLevelMetric(
        metric_name=name, higher_is_better=True, category=SamplingMethod.GENERATIVE,
        sample_level_fn=fn, corpus_level_fn=np.mean,
    )  # fmt: skip


def dataset(name: str, bench: dict, cache: Path = ROOT / ".cache" / "lighteval") -> tuple[str, str, str]:
    """(hf_repo, hf_subset, split) lighteval loads the benchmark from: the hub's, or for a local or synthetic
    benchmark a folder holding its raw rows alone as test.jsonl (lighteval's loader takes a folder, and would
    merge every file of the benchmark's own one)."""
    if bench["source"] == "hub":
        return bench["hub_id"], bench.get("hub_config") or "default", bench["hub_split"]
    folder = cache / name
    folder.mkdir(parents=True, exist_ok=True)
    rows = "".join(json.dumps(r, ensure_ascii=False) + "\n" for _, r in load_raw({**bench, "name": name}))
    out = folder / "test.jsonl"
    if not out.is_file() or out.read_text(encoding="utf-8") != rows:
        out.write_text(rows, encoding="utf-8")
    return str(folder), "default", "test"


def task_config(name: str, bench: dict, protocol: str, max_new_tokens: int) -> LightevalTaskConfig:
    """One benchmark of the config (`benchmarks.<name>`) as a lighteval task `srlm_<name>`."""
    fmt = bench["format"]
    repo, subset, split = dataset(name, bench)

    def prompt_fn(line: dict, task_name: str) -> Doc:
        # latex golds go through LaTeX extraction: boxed, as the harness reads a solution's \boxed{} answer
        row = normalize(line, fmt, line.get("__index", 0))
        if protocol == "paper" and gold_as(fmt) == "latex":
            row = {**row, "answer": "\\boxed{" + row["answer"].strip("$") + "}"}
        return doc(row, task_name, protocol)

    return LightevalTaskConfig(
        name=f"srlm_{name}",
        prompt_function=prompt_fn,
        hf_repo=repo,
        hf_subset=subset,
        hf_avail_splits=[split],
        evaluation_splits=[split],
        few_shots_split=None,
        few_shots_select=None,
        generation_size=max_new_tokens,
        stop_sequence=[],
        metrics=[metric(protocol, fmt)],
        version=0,
    )


def tasks_table(config: dict, protocol: str | None = None) -> list[LightevalTaskConfig]:
    ev = config["evaluation"]
    protocol = prompts.check(protocol or ev["protocol"])
    return [
        task_config(name, b, protocol, {**ev["generation"], **b["generation"]}["max_new_tokens"])
        for name, b in config["benchmarks"].items()
    ]


def load_config() -> dict:
    """config.yaml and the overlays of $SRLM_CONFIGFILES, merged and checked as the workflow does."""
    return cfg.validate(cfg.load([CONFIG, *os.environ.get("SRLM_CONFIGFILES", "").split()]))


TASKS_TABLE = tasks_table(load_config(), os.environ.get("SRLM_PROTOCOL"))
