"""The pipeline's speed settings: extra SFTConfig / GRPOConfig kwargs and evaluation-generation settings.

Pure functions of the stage's config slice and the job's process count, so the trainers stay thin and the choices
are unit-tested. Every switch here leaves the training result the same (tests/unit/test_speed.py shows it for SFT):
- the paper's global batch (per-GPU batch × accumulation × 8 GPUs of its node, App. C.2) is kept on any GPU count,
  split into the largest micro-batch that fits; accumulation averages the same loss over the same rows (on CPU the
  stage's own batch is kept: the demo is not the paper);
- no gradient checkpointing (TRL turns it on by default): recomputing activations changes no number, only the time;
- padding-free batches (stage key `padding_free`, on since measured on a GPU): a micro-batch is one flattened row, and
  srlm.train.packed's attention keeps each sequence to itself (torch's FlashAttention varlen kernel on a GPU) with
  no O(L²) mask; rows are truncated to max_length as TRL would (`truncate_rows`), since TRL does not when
  padding-free;
- liger-kernel's fused RMSNorm/RoPE/SwiGLU where it is installed on a GPU (same maths, fewer kernels), SFT/KD
  (GRPO: measured no faster, perf/bench.py grpo-pipe-liger); only its fused loss where the layers are compiled;
- decoder layers compiled on a GPU (config launch.compile, `compile_layers`): 1.6x SFT tokens/s on an H200;
- cuDNN's SDPA backend off (`attention_backends`): same attention, computed by the flash / memory-efficient kernels;
- GRPO: one generation per optimizer step (generation batch = global batch, so rollouts stay on-policy as in the
  paper): on one GPU the whole step's 128 rollouts are one call of `srlm.decode` (srlm.train.grpo), which samples
  what `model.generate` would, 5x faster on an H200. Transformers' continuous batching was measured slower without
  FlashAttention (H100: 2.0k vs 2.5k tokens/s, 72 vs 17 GiB), so it is not switched on.
Measured effect: perf/bench.py, docs/performance.md.
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
# liger-kernel's switches where the decoder layers are compiled (`compile_layers`): its fused linear
# cross-entropy (the LM head and loss, outside the layers) stays; Inductor fuses RMSNorm, rotary and SwiGLU itself,
# and Dynamo cannot trace liger's RMSNorm autograd.Function (AssertionError in torch 2.11, measured).
COMPILED_LIGER = {"rope": False, "rms_norm": False, "swiglu": False}
# Evaluation on a GPU: throughput grows with the prompts decoded together (srlm.decode with its compiled step, 256
# new tokens, H200: 59.7k tokens/s at 512 rows, 65.2k at 1,024; docs/performance.md), up to EVAL_MAX_BATCH, while
# the static KV cache of a batch whose longest answer may run to max_model_length tokens stays within EVAL_KV_BUDGET.
EVAL_MAX_BATCH = 1024
EVAL_KV_BUDGET = 40 * 2**30


def attention_backends() -> None:
    """Switch off cuDNN's scaled-dot-product-attention backend, which torch 2.11 prefers on Hopper GPUs.

    It builds a new cuDNN graph for every new padded sequence length (2.9 ms of CPU per call in the profile of
    docs/performance.md), and training batches come in many lengths: on an H100, SFT of a 0.5B model went from
    17.1k to 58.3k tokens/s with it off, every loss the same to 1e-4 (bf16). torch then uses its flash or
    memory-efficient kernels. A no-op without CUDA."""
    import torch

    if torch.cuda.is_available():
        torch.backends.cuda.enable_cudnn_sdp(False)


def compiles(has_cuda: bool, enabled: bool = True) -> bool:
    """Whether a training job compiles its decoder layers (config launch.compile): on a GPU only. A CPU job (demo,
    tests) stays eager: compiling would cost more than its few steps."""
    return enabled and has_cuda


def compile_layers(model) -> int:
    """Compile each decoder layer of `model` (and of any model inside it: PEFT wrappers) with torch.compile,
    dynamic shapes from the start; returns how many (0 under DeepSpeed ZeRO-3, whose parameter-gathering hooks
    on every layer a compiled region cannot hold; call it once the trainer's config exists). Regional
    compilation: the layers share their code, so one compilation serves all of them, and the launch-bound step's
    elementwise kernels (RMSNorm's float32 steps, rotary, SiLU, residual adds) become a few fused kernels per
    layer. The same maths: losses within bf16 noise on an H200, within 1e-4 relative in float32 on a CPU
    (tests/unit/test_speed.py, test_train.py). Compiling happens at the first forward (~20 s for Qwen2.5-0.5B on
    an H200) and once more per grad mode."""
    from transformers.integrations import is_deepspeed_zero3_enabled
    from transformers.modeling_layers import GradientCheckpointingLayer

    if is_deepspeed_zero3_enabled():
        return 0
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    for layer in layers:
        layer.compile(dynamic=True)
    return len(layers)


def paper_global_batch(stage: dict, paper_gpus: int = PAPER_GPUS) -> int:
    """Rows per optimizer step on the paper's node (config: per_device_train_batch_size × accumulation × GPUs)."""
    return stage["per_device_train_batch_size"] * stage["gradient_accumulation_steps"] * paper_gpus


def _global_batch(stage: dict, n_processes: int, has_cuda: bool, node_gpus: int = PAPER_GPUS) -> int:
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


def sft_speed_args(
    stage: dict, n_processes: int, has_cuda: bool, node_gpus: int = PAPER_GPUS, compiled: bool = False
) -> dict:
    """Extra SFTConfig kwargs (override the ones common.common_args gives). `compiled`: the job compiles its
    decoder layers (`compiles`), so liger keeps only its fused loss (COMPILED_LIGER).

    Padding-free (the stage's `padding_free`) needs max_length=None in TRL: the trainer must then truncate with
    `truncate_rows` and attend with srlm.train.packed (`packed.use(model)`), as srlm.train.sft does.
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


def grpo_speed_args(stage: dict, n_processes: int, has_cuda: bool, node_gpus: int = PAPER_GPUS) -> dict:
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


def kv_bytes_per_token(config) -> int:
    """KV-cache bytes of one token in bf16 (keys and values of every layer): 12 KiB for Qwen2.5-0.5B."""
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * 2


def eval_batch_size(has_cuda: bool, max_tokens: int, kv_bytes: int, n_samples: int = 1) -> int:
    """Prompts per generation call of the transformers backend for `evaluation.batch_size: auto`: 64 on a CPU; on
    a GPU as many as keep the rows decoded together (prompts × n_samples) within EVAL_MAX_BATCH and their KV cache,
    should every answer run to `max_tokens` (evaluation.max_model_length), within EVAL_KV_BUDGET.
    `kv_bytes`: kv_bytes_per_token(config). (Transformers' continuous batching, `generate_batch`, was measured
    slower without FlashAttention and is not used.)"""
    if not has_cuda:
        return 64
    rows = min(EVAL_MAX_BATCH, EVAL_KV_BUDGET // (max_tokens * kv_bytes))
    return int(max(1, rows // n_samples))
