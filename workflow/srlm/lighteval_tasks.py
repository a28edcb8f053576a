"""The project's benchmarks as lighteval 0.13 tasks, for the `lighteval` CLI (a module-level TASKS_TABLE):

    lighteval vllm "model_name=MODEL,dtype=bfloat16,max_model_length=32768,generation_parameters={temperature:0.6,top_p:0.95}" \
        "custom|srlm_math500|0|0" --custom-tasks workflow/srlm/lighteval_tasks.py --use-chat-template

Each task reads the benchmark from the hub id of config.yaml (as the paper's harness did), normalises a row with
srlm.data.benchmarks (the pipeline's own reader), asks it with srlm.prompts' query and scores it with the protocol's
metric: the paper protocol's `extractive_match` is lighteval's own (MultilingualExtractiveMatchMetric as Open-RS
configures it); the r1 protocol's is srlm.grading. SRLM_PROTOCOL=paper|r1 picks the protocol (default: config.yaml's).

The pipeline does not run lighteval's pipeline: its generation job (srlm.completions) renders the same messages
with the model's chat template and samples through srlm.generation, and its grading job (srlm.grade) applies the
same graders through math-verify. tests/unit/test_evaluation.py checks that lighteval's PromptManager renders a
Doc of these tasks to the pipeline's exact prompt text, and that lighteval's metric gives the pipeline's verdicts.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import yaml
from lighteval.metrics.dynamic_metrics import MultilingualExtractiveMatchMetric
from lighteval.metrics.utils.extractive_match_utils import ExprExtractionConfig, LatexExtractionConfig
from lighteval.metrics.utils.metric_utils import SampleLevelComputation, SampleLevelMetric
from lighteval.tasks.lighteval_task import LightevalTaskConfig
from lighteval.tasks.requests import Doc, SamplingMethod

from srlm import grading, prompts
from srlm.data.benchmarks import normalize
from srlm.grade import GOLD_AS

CONFIG = Path(__file__).resolve().parents[2] / "config.yaml"


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
        gold = LatexExtractionConfig() if GOLD_AS.get(gold_format, "latex") == "latex" else ExprExtractionConfig()
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


def task_config(name: str, bench: dict, protocol: str, max_new_tokens: int) -> LightevalTaskConfig:
    """One benchmark of config.yaml (`benchmarks.<name>`, source hub) as a lighteval task `srlm_<name>`."""
    fmt = bench["format"]

    def prompt_fn(line: dict, task_name: str) -> Doc:
        # latex golds go through LaTeX extraction: boxed, as the harness reads a solution's \boxed{} answer
        row = normalize(line, fmt, line.get("__index", 0))
        if protocol == "paper" and GOLD_AS.get(fmt, "latex") == "latex":
            row = {**row, "answer": "\\boxed{" + row["answer"].strip("$") + "}"}
        return doc(row, task_name, protocol)

    return LightevalTaskConfig(
        name=f"srlm_{name}",
        prompt_function=prompt_fn,
        hf_repo=bench["hub_id"],
        hf_subset=bench.get("hub_config") or "default",
        hf_avail_splits=[bench["hub_split"]],
        evaluation_splits=[bench["hub_split"]],
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


TASKS_TABLE = tasks_table(yaml.safe_load(CONFIG.read_text()), os.environ.get("SRLM_PROTOCOL"))
