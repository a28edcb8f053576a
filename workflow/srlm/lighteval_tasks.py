"""lighteval 0.13 glue: the project's benchmarks as custom tasks, its grading as a metric, and a runner.

lighteval does the generation (vLLM on the cluster, transformers/accelerate elsewhere) and the scoring loop.
Worked around here, each for a reason found by trying lighteval 0.13 (see shared/notes/dependencies.md):
- only our tasks are registered: its start-up imports every built-in task, and one downloads a file;
- its built-in math metrics score 0 on `<think>…</think><answer>N</answer>`: srlm.grading is the metric;
- transformers backend: it never sets `do_sample`, so the model's generation_config (in memory; the model
  folder is never touched) gets do_sample=True and neutral top_k/repetition_penalty (Qwen ships 20/1.1,
  which vLLM's explicit SamplingParams do not apply either);
- generation length = the task's generation_size (generation_parameters.max_new_tokens would truncate the
  prompt to that many tokens);
- its sample cache lives under cache_dir/<model_name>, i.e. INSIDE the model folder for an absolute path:
  the model is given through a temporary overlay of symlinks and the cache is switched off;
- its PromptManager cannot pass `enable_thinking` to the chat template and joins the system prompt to the
  raw problem: prompts are built by srlm.evaluate.build_prompt, identical to the native engine.
"""

from __future__ import annotations

import tempfile
import types
from pathlib import Path
from unittest import mock

import numpy as np
from lighteval.metrics.metrics_sample import SampleLevelComputation, SamplingMetric
from lighteval.metrics.utils.metric_utils import SampleLevelMetricGrouping
from lighteval.tasks.lighteval_task import LightevalTaskConfig
from lighteval.tasks.prompt_manager import PromptManager
from lighteval.tasks.registry import Registry
from lighteval.tasks.requests import Doc, SamplingMethod

PASS_AT_1 = "srlm_pass@1"
NOT_EXTRACTABLE = "srlm_not_extractable"


def task_name(benchmark: str) -> str:
    """Task name that cannot clash with lighteval's built-ins (math_500, gsm8k, olympiad_bench, ...)."""
    return f"srlm_{benchmark}"


class SrlmGrade(SamplingMetric, SampleLevelComputation):
    """Per problem, by srlm.grading: mean correctness of its n samples (pass@1) and the unextractable share.
    Being a SamplingMetric with num_samples() = n is what makes lighteval generate n samples per problem."""

    def __init__(self, n: int, timeout_s: float):
        super().__init__()
        self.n, self.timeout_s = n, timeout_s

    def compute(self, doc: Doc, model_response, **kwargs) -> dict:
        from srlm.grading import grade

        texts = model_response.text[: self.n]
        if len(texts) != self.n:
            raise RuntimeError(
                f"lighteval returned {len(texts)} samples for doc {doc.specific}, expected {self.n}"
            )
        grades = [grade(t, doc.get_golds()[0], self.timeout_s) for t in texts]
        return {
            PASS_AT_1: float(np.mean([g.correct for g in grades])),
            NOT_EXTRACTABLE: float(np.mean([g.extracted is None for g in grades])),
        }

    def num_samples(self) -> int:
        return self.n


def srlm_metric(n: int, timeout_s: float) -> SampleLevelMetricGrouping:
    return SampleLevelMetricGrouping(
        metric_name=[PASS_AT_1, NOT_EXTRACTABLE],
        higher_is_better={PASS_AT_1: True, NOT_EXTRACTABLE: False},
        category=SamplingMethod.GENERATIVE,
        sample_level_fn=SrlmGrade(n, timeout_s),
        corpus_level_fn={PASS_AT_1: np.mean, NOT_EXTRACTABLE: np.mean},
    )


def prompt_fn(line: dict, task_name: str) -> Doc:
    """Normalised bench row {"id","problem","answer"} -> Doc (the prompt is built by SrlmPromptManager)."""
    return Doc(
        task_name=task_name,
        query=line["problem"],
        choices=[str(line["answer"])],
        gold_index=0,
        specific={"id": str(line["id"])},
    )


def task_config(
    benchmark: str, data_dir: Path, n_samples: int, generation_size: int, timeout_s: float
) -> LightevalTaskConfig:
    """One task per benchmark; `data_dir` holds test.jsonl (lighteval loads it with datasets.load_dataset)."""
    return LightevalTaskConfig(
        name=task_name(benchmark),
        prompt_function=prompt_fn,
        hf_repo=str(data_dir),
        hf_subset="default",
        hf_avail_splits=["test"],
        evaluation_splits=["test"],
        few_shots_split=None,
        few_shots_select=None,
        generation_size=generation_size,
        stop_sequence=[],
        metrics=[srlm_metric(n_samples, timeout_s)],
        version=0,
    )


class OwnTasksRegistry(Registry):
    """Registry of the given module's TASKS_TABLE only (lighteval's own __init__ imports every built-in)."""

    def __init__(self, tasks=None, load_multilingual=False, custom_tasks=None):
        self.tasks_list = self._get_full_task_list_from_input_string(tasks)
        self._load_multilingual = False
        self._custom_tasks = custom_tasks
        self._task_registry = Registry._extract_configs(custom_tasks)
        self.task_to_configs = self._update_task_configs()


class SrlmPromptManager(PromptManager):
    def __init__(self, tokenizer, chat):
        super().__init__(use_chat_template=chat.chat_template, tokenizer=tokenizer)
        self.chat = chat

    def prepare_prompt(self, doc: Doc) -> str:
        from srlm.evaluate import build_prompt

        return build_prompt(self.tokenizer, doc.query, self.chat)


def _overlay(model_dir: Path, dest: Path) -> Path:
    """Folder of symlinks to the model's files: lighteval may write beside them without touching the model."""
    dest.mkdir()
    for f in model_dir.iterdir():
        (dest / f.name).symlink_to(f.resolve())
    return dest


def run_lighteval(
    model_dir: Path, bench: Path, rows: list[dict], p, benchmark: str
) -> tuple[list[dict], dict]:
    """Evaluate with lighteval; returns (details regraded from its saved details, extra summary fields)."""
    import pandas as pd
    import torch
    from lighteval.logging.evaluation_tracker import EvaluationTracker
    from lighteval.models.model_input import GenerationParameters
    from lighteval.pipeline import ParallelismManager, Pipeline, PipelineParameters
    from transformers import AutoTokenizer

    from srlm.evaluate import build_prompt, count_completion_tokens, grade_samples

    g = p.generation
    tok = AutoTokenizer.from_pretrained(model_dir)
    longest = max(
        len(tok(build_prompt(tok, r["problem"], p.chat), add_special_tokens=False)["input_ids"]) for r in rows
    )
    generation_size = min(g.max_new_tokens, p.max_model_length - longest)
    if generation_size < 1:
        raise ValueError(
            f"{bench}: longest prompt has {longest} tokens, max_model_length {p.max_model_length} "
            "leaves no room to generate"
        )
    eos_ids = _eos_ids(model_dir, tok)
    with tempfile.TemporaryDirectory(prefix="srlm-lighteval-") as tmp:
        tmp = Path(tmp)
        (tmp / "data").mkdir()
        (tmp / "data" / "test.jsonl").symlink_to(bench.resolve())
        model_path = _overlay(model_dir, tmp / "model")
        tasks = types.ModuleType("srlm_lighteval_tasks")
        tasks.TASKS_TABLE = [
            task_config(benchmark, tmp / "data", g.n_samples, generation_size, p.grading_timeout_s)
        ]
        gen_params = GenerationParameters(temperature=g.temperature, top_p=g.top_p, repetition_penalty=1.0)
        tracker = EvaluationTracker(output_dir=str(tmp / "out"), save_details=True)
        common = dict(generation_parameters=gen_params, cache_dir=str(tmp / "cache"), system_prompt=None)
        if p.backend == "vllm":
            from lighteval.models.vllm.vllm_model import VLLMModelConfig

            launcher, hf_model = ParallelismManager.VLLM, None
            config = VLLMModelConfig(
                model_name=str(model_path),
                dtype=p.dtype,
                seed=g.seed,
                max_model_length=p.max_model_length,
                gpu_memory_utilization=p.gpu_memory_utilization,
                **common,
            )
        else:
            from lighteval.models.transformers.transformers_model import TransformersModelConfig
            from transformers import AutoModelForCausalLM

            class LocalConfig(TransformersModelConfig):
                def get_model_sha(self):  # a local folder has no hub sha (the default asks the hub)
                    return ""

            device = "cuda" if torch.cuda.is_available() else "cpu"
            launcher = ParallelismManager.ACCELERATE
            hf_model = AutoModelForCausalLM.from_pretrained(model_path, dtype=getattr(torch, p.dtype))
            hf_model.generation_config.update(do_sample=True, top_k=0, repetition_penalty=1.0)
            config = LocalConfig(
                model_name=str(model_path),
                batch_size=p.batch_size,
                dtype=p.dtype,
                device=device,
                max_length=p.max_model_length,
                **common,
            )
        params = PipelineParameters(
            launcher_type=launcher, custom_tasks_directory=tasks, remove_reasoning_tags=False
        )
        torch.manual_seed(g.seed)
        # datasets caches the bench under a key of its (temporary) path: keep that cache in tmp too
        with (
            mock.patch("lighteval.pipeline.Registry", OwnTasksRegistry),
            mock.patch("datasets.config.HF_DATASETS_CACHE", tmp / "datasets"),
        ):
            pipeline = Pipeline(
                tasks=f"{task_name(benchmark)}|0",
                pipeline_parameters=params,
                evaluation_tracker=tracker,
                model_config=config,
                model=hf_model,
            )
        pipeline.model._cache = None  # no sample cache: a retrained model at the same path must not reuse it
        pipeline.model.prompt_manager = SrlmPromptManager(pipeline.model.tokenizer, p.chat)
        pipeline.evaluate()
        pipeline.save_and_push_results()
        reported = tracker.metrics_logger.metric_aggregated[f"{task_name(benchmark)}|0"]
        saved = sorted((tmp / "out" / "details").rglob("details_*.parquet"))
        if len(saved) != 1:
            raise RuntimeError(f"expected one lighteval details file under {tmp / 'out'}, found {saved}")
        frame = pd.read_parquet(saved[0])

    by_id = {str(d["specific"]["id"]): m for d, m in zip(frame["doc"], frame["model_response"], strict=True)}
    missing = [r["id"] for r in rows if str(r["id"]) not in by_id]
    if missing or len(by_id) != len(rows):
        raise RuntimeError(
            f"lighteval details do not match {bench}: missing ids {missing[:5]}, "
            f"{len(by_id)} unique ids for {len(rows)} rows (duplicate ids?)"
        )
    samples = []
    for r in rows:
        resp = by_id[str(r["id"])]
        counts = [count_completion_tokens(list(t), eos_ids, None) for t in resp["output_tokens"]]
        samples.append(list(zip(list(resp["text"]), counts, strict=True)))
    details = grade_samples(rows, samples, p.grading_timeout_s)
    first = list(by_id[str(rows[0]["id"])]["input_tokens"])
    while first and first[0] in eos_ids | {tok.pad_token_id}:  # left padding of the transformers backend
        first.pop(0)
    info = {
        "framework": "lighteval 0.13",
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "generation_size": generation_size,
        "prompt_example": tok.decode(first, skip_special_tokens=False),
        "lighteval": {
            "pass_at_1": reported[PASS_AT_1],
            "stderr": reported.get(f"{PASS_AT_1}_stderr"),
            "not_extractable_rate": reported[NOT_EXTRACTABLE],
        },
    }
    return details, info


def _eos_ids(model_dir: Path, tok) -> set[int]:
    from transformers import GenerationConfig

    try:
        eos = GenerationConfig.from_pretrained(model_dir).eos_token_id
    except OSError:
        eos = None
    ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
    return ids | {tok.eos_token_id}
