"""One generation interface for evaluation samples and GRPO rollouts, with interchangeable engines.

    engine = generation.load("auto", model_dir, dtype="bfloat16", max_model_length=32768, batch_size="auto",
                             gpu_memory_utilization=0.95, seed=0, compile_decode=False)
    outs = engine.generate(prompt_ids, Sampling(temperature=0.6, top_p=0.95, max_new_tokens=2048, n=4))
    outs[i][j].text, outs[i][j].token_ids, outs[i][j].finish_reason      # prompt i, sample j

Prompts are token ids (the caller renders and tokenises them once, so every engine sees the same tokens).
Engines (chosen in one place, `choose`):
- "vllm": vLLM's offline engine (`generation.vllm`; the cluster's engine, vLLM's CPU build in tests);
- "srlm.decode": the project's static-cache sampler over the transformers model (`srlm.speed.decode`, through
  the speed seam `srlm.speed`);
- "transformers": transformers' `model.generate`, for models or settings srlm.decode does not implement, and where
  srlm.speed is not proven on the installed library versions (it warns).
"auto" picks vLLM where it is installed and a GPU is present, else srlm.decode where it applies, else transformers.
The model's own generation_config never leaks in (Qwen ships top_k=20, repetition_penalty=1.1): sampling is
exactly `Sampling`, as with vLLM's explicit SamplingParams.

This package owns, for evaluation and GRPO's rollouts alike: the engine choice (`choose`, `rollout_engine`,
`vllm_choice`), the sampling parameters (`Sampling`, the one type: srlm.speed.decode reads its temperature, top_p
and top_k) and the batch sizing of the transformers engines (`eval_batch_size`). It imports nothing of srlm.train
(tests/unit/test_speed_seam.py).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from srlm import speed

ENGINES = ("vllm", "srlm.decode", "transformers")
# Evaluation on a GPU: throughput grows with the prompts decoded together (srlm.decode with its compiled step, 256
# new tokens, H200: 59.7k tokens/s at 512 rows, 65.2k at 1,024; docs/performance.md), up to EVAL_MAX_BATCH, while
# the static KV cache of a batch whose longest answer may run to max_model_length tokens stays within EVAL_KV_BUDGET.
EVAL_MAX_BATCH = 1024
EVAL_KV_BUDGET = 40 * 2**30


@dataclass(frozen=True)
class Sampling:
    """temperature 0 = greedy; top_k 0 = off; n samples per prompt; seed seeds the engine's sampler (None: the
    caller's RNG state decides, as in training, where a checkpoint restores it)."""

    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    n: int = 1
    seed: int | None = 0


@dataclass(frozen=True)
class Completion:
    """One sample: its tokens up to and including the EOS that ended it, its text (special tokens dropped) and
    why it ended: "stop" (an EOS) or "length" (max_new_tokens or the model's context)."""

    token_ids: list[int] = field(repr=False)
    text: str | None  # None where the caller asked for token ids only (Engine.generate's texts)
    finish_reason: str

    @property
    def tokens(self) -> int:
        return len(self.token_ids)


class Engine(Protocol):
    name: str
    tokenizer: Any  # the model folder's tokenizer (transformers' or vLLM's, the same files): prompts render with it

    def generate(self, prompts: list[list[int]], sampling: Sampling, *, texts: bool = True) -> list[list[Completion]]:
        """`sampling.n` completions per prompt, in prompt order; with texts False, token ids only (text None)."""
        ...


class EngineUnavailable(RuntimeError):
    """The requested engine cannot run here (not installed, or the model is not supported)."""


def vllm_installed() -> bool:
    return importlib.util.find_spec("vllm") is not None


def choose(requested: str, *, model=None, has_cuda: bool | None = None) -> str:
    """The engine that will run: `requested` itself (but "transformers" for "srlm.decode" where srlm.speed is not
    proven on the installed libraries), or for "auto" the fastest one available here."""
    if requested not in (*ENGINES, "auto"):
        raise ValueError(f"generation engine must be one of {['auto', *ENGINES]}, got {requested!r}")
    if requested == "vllm" and not vllm_installed():
        raise EngineUnavailable("engine 'vllm' was asked for, but vLLM is not installed in this environment")
    if requested == "srlm.decode" and model is not None and not speed.active(speed.device_of(model)):
        return "transformers"  # srlm.speed warned: not proven on these library versions
    if requested != "auto":
        return requested
    if has_cuda is None:
        import torch

        has_cuda = torch.cuda.is_available()
    if has_cuda and vllm_installed():
        return "vllm"
    return "srlm.decode" if model is None or speed.decode_unsupported(model) is None else "transformers"


def rollout_engine(model, config) -> str:
    """Who samples GRPO's rollouts (`config`: the trainer's GRPOConfig): TRL's vLLM path, srlm.decode (through
    TRL's public `rollout_func`), or TRL's own `model.generate` for settings srlm.decode does not implement."""
    if config.use_vllm:
        return "vllm"
    if config.use_transformers_paged or config.generation_kwargs:
        return "transformers generate"
    why = speed.decode_unsupported(model, repetition_penalty=config.repetition_penalty, min_p=config.min_p)
    return "transformers generate" if why else "srlm.decode"


def vllm_choice(stage: dict) -> bool:
    """Whether TRL generates GRPO's rollouts with vLLM: use_vllm where vLLM is installed and, colocated on a CPU,
    can take TRL's weight sync (srlm.generation.vllm.cpu_weight_sync_blocker); else an error, unless the stage's
    vllm_fallback allows srlm.decode rollouts (the summary's generation_engine says which ran)."""
    if not stage["use_vllm"]:
        return False
    import torch

    why = None
    if not vllm_installed():
        why = "vllm is not installed in this environment: build the cluster environment (envs/train.yaml, docs/vllm.md)"
    elif not torch.cuda.is_available() and stage["vllm_mode"] == "colocate":
        from srlm.generation.vllm import cpu_weight_sync_blocker

        why = cpu_weight_sync_blocker()
    if why is None:
        return True
    if not stage["vllm_fallback"]:
        raise RuntimeError(
            f"use_vllm is true but {why}: set the stage's use_vllm: false, or vllm_fallback: true to sample the "
            "rollouts with srlm.decode instead"
        )
    print(f"{why}: GRPO rollouts by srlm.decode (vllm_fallback: true)", flush=True)
    return False


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


def wrap(
    model, tokenizer, name: str, *, eos_ids, max_model_length: int, batch_size: int | str | None = None,
    compile_decode: bool = False,
) -> Engine:
    """An engine over a model already in memory (GRPO's policy, unwrapped for generation): srlm.generation.hf's
    TransformersEngine, "srlm.decode" or "transformers"; batch_size None: all prompts in one call."""
    from srlm.generation.hf import TransformersEngine

    return TransformersEngine(
        model, tokenizer, name, eos_ids=eos_ids, max_model_length=max_model_length, batch_size=batch_size,
        compile_decode=compile_decode,
    )  # fmt: skip


def load(
    name: str,
    model_dir: Path,
    *,
    dtype: str,
    max_model_length: int,
    batch_size: int | str,
    gpu_memory_utilization: float,
    seed: int,
    compile_decode: bool,
    end_of_turn: str | None = None,
) -> Engine:
    """An engine over the weights in `model_dir` (a save_pretrained folder). `end_of_turn` (config
    models.<m>.eos_token) ends a sample too, besides the model's own EOS tokens: a base model's generation config
    names only <|endoftext|>, which never closes a ChatML turn."""
    if name == "vllm" or (name == "auto" and choose("auto") == "vllm"):
        from srlm.generation.vllm import VLLMEngine

        return VLLMEngine(
            model_dir,
            dtype=dtype,
            max_model_length=max_model_length,
            gpu_memory_utilization=gpu_memory_utilization,
            seed=seed,
            end_of_turn=end_of_turn,
        )
    from srlm.generation.hf import load_transformers

    return load_transformers(
        name, model_dir, dtype=dtype, max_model_length=max_model_length, batch_size=batch_size,
        compile_decode=compile_decode, end_of_turn=end_of_turn,
    )  # fmt: skip
