"""The trainers' speed settings: extra SFTConfig / GRPOConfig kwargs (the batch split, liger, no checkpointing).

Pure functions of the stage's config slice and the job's process count, so the trainers stay thin and the choices
are unit-tested. Every switch here leaves the training result the same (tests/unit/test_speed.py shows it for SFT):
- the paper's global batch (per-GPU batch × accumulation × 8 GPUs of its node, App. C.2) is kept on any GPU count,
  split into the largest micro-batch that fits; accumulation averages the same loss over the same rows (on CPU the
  stage's own batch is kept: the demo is not the paper);
- no gradient checkpointing (TRL turns it on by default): recomputing activations changes no number, only the time;
- padding-free batches (stage key `padding_free`, on since measured on a GPU): a micro-batch is one flattened row, and
  srlm.speed.packed's attention keeps each sequence to itself (torch's FlashAttention varlen kernel on a GPU) with
  no O(L²) mask; rows are truncated to max_length as TRL would (`truncate_rows`), since TRL does not when
  padding-free;
- liger-kernel's fused RMSNorm/RoPE/SwiGLU where it is installed on a GPU (same maths, fewer kernels), SFT/KD
  (GRPO: measured no faster, perf/bench.py grpo-pipe-liger); only its fused loss where the layers are compiled;
- decoder layers compiled on a GPU (config launch.compile, `compiles`; srlm.speed.compile_layers): 1.6x SFT
  tokens/s on an H200;
- cuDNN's SDPA backend off (srlm.speed.attention_backends): same attention, computed by the flash /
  memory-efficient kernels;
- GRPO: one generation per optimizer step (generation batch = global batch, so rollouts stay on-policy as in the
  paper): on one GPU the whole step's 128 rollouts are one call of `srlm.decode` (srlm.speed.decode), which samples
  what `model.generate` would, 5x faster on an H200. Transformers' continuous batching was measured slower without
  FlashAttention (H100: 2.0k vs 2.5k tokens/s, 72 vs 17 GiB), so it is not switched on.
What reaches into library internals is srlm.speed (one seam, version-checked); evaluation's batch sizing is
srlm.generation's. Measured effect: perf/bench.py, docs/performance.md.
"""

from __future__ import annotations

import importlib.util

# GPUs of the paper's training node (App. C.2): the global batch is defined on it.
PAPER_GPUS = 8
# Largest per-GPU micro-batches (rows) without checkpointing for a 0.5B model. Measured on an 80 GB H100: SFT 32
# GSM8K rows (<= 532 tokens) peak at 18.9 GiB; GRPO 16 rows with 256-token completions at 17.5 GiB (2048-token
# completions, 8x the activations, not measured). Longer KD traces may need a smaller SFT_MAX_MICRO.
# Padding-free SFT/KD (a micro-batch costs only its real tokens): 64 GSM8K rows peak at 20.1 GiB on an H200, and
# the larger micro-batch halves the kernel launches per token of a launch-bound step: 98.3k tokens/s against
# 68.7k at 32 rows (perf/bench.py sft-micro64-pf, 2026-12-01; docs/performance.md).
SFT_MAX_MICRO = 32
SFT_MAX_MICRO_PADDING_FREE = 64
GRPO_MAX_MICRO = 16
# GRPO micro-batches may grow beyond GRPO_MAX_MICRO while rows × max_completion_length stays within this: 32 rows
# of 256-token completions peak at 23.0 GiB with compiled layers on an H200, 2.08 s a step against 2.80 s for 16
# rows eager (perf/bench.py grpo-pipe vs grpo-eager, 2026-12-02); at the paper's 2,048 tokens it leaves
# GRPO_MAX_MICRO.
GRPO_MICRO_TOKENS = 32 * 256
# GRPO compiles its reference model's layers too only from micro-batches of this many rows. Measured on an H200
# (perf/bench.py, 2026-12-02), 128 rollouts of 256 tokens a step: micro 32, policy and reference compiled 2.08 and
# 2.11 s (two calls); micro 16, policy compiled 2.58 s against 2.98 s eager (same call), but policy and reference
# compiled 3.86 and 4.17 s against 2.80 s eager. Why the compiled reference is slow at 16 rows (one group of
# generations per micro-batch on the paper's node) is not known yet.
GRPO_COMPILE_REF_MIN_MICRO = 32
# liger-kernel's switches where the decoder layers are compiled (srlm.speed.compile_layers): its fused linear
# cross-entropy (the LM head and loss, outside the layers) stays; Inductor fuses RMSNorm, rotary and SwiGLU itself,
# and Dynamo cannot trace liger's RMSNorm autograd.Function (AssertionError in torch 2.11, measured).
COMPILED_LIGER = {"rope": False, "rms_norm": False, "swiglu": False}


def compiles(has_cuda: bool, enabled: bool) -> bool:
    """Whether a training job compiles its decoder layers (config launch.compile): on a GPU only. A CPU job (demo,
    tests) stays eager: compiling would cost more than its few steps."""
    return enabled and has_cuda


def paper_global_batch(stage: dict, paper_gpus: int = PAPER_GPUS) -> int:
    """Rows per optimizer step on the paper's node (config: per_device_train_batch_size × accumulation × GPUs)."""
    return stage["per_device_train_batch_size"] * stage["gradient_accumulation_steps"] * paper_gpus


def _global_batch(stage: dict, n_processes: int, has_cuda: bool, node_gpus: int) -> int:
    """GPU jobs keep the global batch of a full node (config gpus.train) on any GPU count; CPU jobs (demo,
    tests) keep the stage's own."""
    return paper_global_batch(stage, node_gpus if has_cuda else n_processes)


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


def has_liger() -> bool:
    return importlib.util.find_spec("liger_kernel") is not None


def sft_speed_args(stage: dict, n_processes: int, has_cuda: bool, *, node_gpus: int, compiled: bool) -> dict:
    """Extra SFTConfig kwargs (override the ones arguments.common_args gives). `compiled`: the job compiles its
    decoder layers (`compiles`), so liger keeps only its fused loss (COMPILED_LIGER).

    Padding-free (the stage's `padding_free`) needs max_length=None in TRL: the trainer must then truncate with
    `truncate_rows` and attend with srlm.speed.packed (`srlm.speed.use_packed(model)`), as srlm.train.sft does.
    """
    padding_free = stage["padding_free"]
    cap = SFT_MAX_MICRO_PADDING_FREE if padding_free else SFT_MAX_MICRO
    micro, accum = split_batch(_global_batch(stage, n_processes, has_cuda, node_gpus), n_processes, cap)
    args: dict = dict(
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accum,
        gradient_checkpointing=False,
    )
    if padding_free:
        args.update(padding_free=True, max_length=None)
    if has_cuda:
        args.update(dataloader_num_workers=2, dataloader_pin_memory=True)
        if has_liger():
            args["use_liger_kernel"] = True
            if compiled:
                args["liger_kernel_config"] = dict(COMPILED_LIGER)
    return args


def truncate_rows(dataset, max_length: int):
    """What TRL 1.16's SFTTrainer does to its tokenized dataset when max_length is set and packing is off (it
    skips it when padding-free, and has no public function for it: written again here, its ~6 lines): keep each
    row's first max_length tokens (truncation_mode keep_start), then drop the rows left without a trained token."""

    def truncate(row):
        return {"input_ids": row["input_ids"][:max_length], "labels": row["labels"][:max_length]}

    dataset = dataset.map(truncate, desc="Truncating")
    return dataset.filter(lambda row: any(t != -100 for t in row["labels"]), desc="Dropping fully masked rows")


def grpo_speed_args(stage: dict, n_processes: int, has_cuda: bool, *, node_gpus: int) -> dict:
    """Extra GRPOConfig kwargs: the paper's global batch in the largest micro-batches, one on-policy generation of
    the whole global batch per optimizer step, no gradient checkpointing."""
    total = _global_batch(stage, n_processes, has_cuda, node_gpus)
    if total % stage["num_generations"]:
        raise ValueError(f"stages: global batch {total} not divisible by num_generations {stage['num_generations']}")
    max_micro = max(GRPO_MAX_MICRO, GRPO_MICRO_TOKENS // stage["max_completion_length"])
    micro, accum = split_batch(total, n_processes, max_micro)
    args: dict = dict(
        per_device_train_batch_size=micro,
        gradient_accumulation_steps=accum,
        # = global batch: generation_batch_size // (micro × processes) == accumulation, one rollout per update.
        generation_batch_size=micro * accum * n_processes,
        gradient_checkpointing=False,
    )
    return args
