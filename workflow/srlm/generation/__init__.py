"""One generation interface for evaluation samples and GRPO rollouts, with interchangeable engines.

    engine = generation.load("auto", model_dir, dtype="bfloat16", max_model_length=32768, batch_size="auto",
                             gpu_memory_utilization=0.95, seed=0, compile_decode=False)
    outs = engine.generate(prompt_ids, Sampling(temperature=0.6, top_p=0.95, max_new_tokens=2048, n=4))
    outs[i][j].text, outs[i][j].token_ids, outs[i][j].finish_reason      # prompt i, sample j

Prompts are token ids (the caller renders and tokenises them once, so every engine sees the same tokens).
Engines (chosen in one place, `choose`):
- "vllm": vLLM's offline engine (`generation.vllm`; the cluster's engine, vLLM's CPU build in tests);
- "srlm.decode": the project's static-cache sampler over the transformers model (`srlm.decode`);
- "transformers": transformers' `model.generate`, for models or settings srlm.decode does not implement.
"auto" picks vLLM where it is installed and a GPU is present, else srlm.decode where it applies, else transformers.
The model's own generation_config never leaks in (Qwen ships top_k=20, repetition_penalty=1.1): sampling is
exactly `Sampling`, as with vLLM's explicit SamplingParams.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

ENGINES = ("vllm", "srlm.decode", "transformers")


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
    """The engine that will run: `requested` itself, or for "auto" the fastest one available here."""
    if requested not in (*ENGINES, "auto"):
        raise ValueError(f"generation engine must be one of {['auto', *ENGINES]}, got {requested!r}")
    if requested == "vllm" and not vllm_installed():
        raise EngineUnavailable("engine 'vllm' was asked for, but vLLM is not installed in this environment")
    if requested != "auto":
        return requested
    if has_cuda is None:
        import torch

        has_cuda = torch.cuda.is_available()
    if has_cuda and vllm_installed():
        return "vllm"
    from srlm import decode

    return "srlm.decode" if model is None or decode.supported(model) is None else "transformers"


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
