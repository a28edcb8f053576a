"""The pipeline's speed settings: extra SFTConfig / GRPOConfig kwargs and evaluation-generation settings.

Pure functions of the stage's config slice and the job's process count, so the trainers stay thin and the choices
are unit-tested. Every switch here leaves the training result the same (tests/unit/test_speed.py shows it for SFT):
- the paper's global batch (per-GPU batch × accumulation × 8 GPUs of its node, App. C.2) is kept on any GPU count,
  split into the largest micro-batch that fits; accumulation averages the same loss over the same rows (on CPU the
  stage's own batch is kept: the demo is not the paper);
- no gradient checkpointing (TRL turns it on by default): recomputing activations changes no number, only the time;
- padding-free batches only where the attention kernel handles packed rows without an L² mask (FlashAttention,
  or CPU where the rows are short), and only when no row is longer than max_length (TRL then skips truncation);
- liger-kernel's fused RMSNorm/RoPE/SwiGLU where it is installed on a GPU (same maths, fewer kernels);
- GRPO: one generation per optimizer step (generation batch = global batch, so rollouts stay on-policy as in the
  paper), generated with transformers' continuous batching (paged KV cache) instead of padded `generate`.
Measured effect: perf/bench.py, docs/performance.md.
"""

from __future__ import annotations

import importlib.util

# GPUs of the paper's training node (App. C.2): the global batch is defined on it.
PAPER_GPUS = 8
# Largest per-GPU micro-batches (rows) measured to fit an 80 GB card without checkpointing for a 0.5B model with
# GSM8K-length rows (SFT: rows of <= ~1k tokens; GRPO: prompt + 2048 completion tokens, policy + reference).
SFT_MAX_MICRO = 32
GRPO_MAX_MICRO = 16
# Continuous-batching engine for GRPO rollouts: TRL's default KV-cache share (0.5 of free memory) leaves room for
# the backward pass; CUDA graphs for the decode steps remove the per-token Python/launch overhead.
GRPO_CB_CONFIG = {"max_memory_percent": 0.5, "use_cuda_graph": True}
EVAL_CB_CONFIG = {"max_memory_percent": 0.8, "use_cuda_graph": True}


def paper_global_batch(stage: dict, paper_gpus: int = PAPER_GPUS) -> int:
    """Rows per optimizer step on the paper's node (config: per_device_train_batch_size × accumulation × GPUs)."""
    return stage["per_device_train_batch_size"] * stage["gradient_accumulation_steps"] * paper_gpus


def _global_batch(stage: dict, n_processes: int, has_cuda: bool) -> int:
    """GPU jobs keep the paper's global batch on any GPU count; CPU jobs (demo, tests) keep the stage's own."""
    return paper_global_batch(stage, PAPER_GPUS if has_cuda else n_processes)


def split_batch(global_batch: int, n_processes: int, max_micro: int) -> tuple[int, int]:
    """(micro-batch, accumulation steps) with micro × accumulation × n_processes == global_batch, micro largest."""
    if n_processes < 1 or global_batch % n_processes:
        raise ValueError(
            f"global batch {global_batch} (config stages.*: per_device_train_batch_size × "
            f"gradient_accumulation_steps × {PAPER_GPUS}) is not divisible by {n_processes} processes"
        )
    per_gpu = global_batch // n_processes
    micro = max(d for d in range(1, min(per_gpu, max_micro) + 1) if per_gpu % d == 0)
    return micro, per_gpu // micro


def has_flash_attention() -> bool:
    return importlib.util.find_spec("flash_attn") is not None


def has_liger() -> bool:
    return importlib.util.find_spec("liger_kernel") is not None


def sft_speed_args(stage: dict, n_processes: int, has_cuda: bool, longest_tokens: int | None = None) -> dict:
    """Extra SFTConfig kwargs (override the ones common.common_args gives).

    `longest_tokens`: length of the longest tokenized row (prompt + completion) of the training set, if known;
    padding-free needs max_length=None, which is safe only when no row would have been truncated.
    """
    micro, accum = split_batch(_global_batch(stage, n_processes, has_cuda), n_processes, SFT_MAX_MICRO)
    args: dict = dict(
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accum,
        gradient_checkpointing=False,
    )
    fits = longest_tokens is not None and longest_tokens <= stage["max_length"]
    # On a GPU without FlashAttention, SDPA needs a dense block-diagonal mask over the flattened batch (O(L²)):
    # slower than the padding it saves.
    if fits and (not has_cuda or has_flash_attention()):
        args.update(padding_free=True, max_length=None)
    if has_cuda:
        args.update(dataloader_num_workers=2, dataloader_pin_memory=True)
        if has_liger():
            args["use_liger_kernel"] = True
    return args


def grpo_speed_args(stage: dict, n_processes: int, has_cuda: bool, use_vllm: bool = False) -> dict:
    """Extra GRPOConfig kwargs: the paper's global batch, one on-policy generation per optimizer step, and
    continuous-batching generation where vLLM is absent."""
    total = _global_batch(stage, n_processes, has_cuda)
    if total % stage["num_generations"]:
        raise ValueError(f"stages: global batch {total} not divisible by num_generations {stage['num_generations']}")
    micro, accum = split_batch(total, n_processes, GRPO_MAX_MICRO)
    args: dict = dict(
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accum,
        # = global batch: generation_batch_size // (micro × processes) == accumulation, one rollout per update.
        generation_batch_size=micro * accum * n_processes,
        gradient_checkpointing=False,
    )
    if has_cuda and not use_vllm:
        args.update(
            use_transformers_continuous_batching=True,
            transformers_continuous_batching_config=dict(GRPO_CB_CONFIG),
        )
    return args


def eval_generation_args(has_cuda: bool) -> dict:
    """Transformers-backend evaluation: on a GPU all prompts go to one continuous-batching call
    (`model.generate_batch(prompt_ids, generation_config=..., continuous_batching_config=ContinuousBatchingConfig(
    **continuous_batching_config))`); on CPU, padded `model.generate` in batches of `batch_size`."""
    if has_cuda:
        return {"batch_size": None, "continuous_batching_config": dict(EVAL_CB_CONFIG)}
    return {"batch_size": 64, "continuous_batching_config": None}
