"""STAND-IN for the lead's generation interface (issue 13), written from the brief's contract so that the vLLM
engine can be built and tested before it lands on main. Drop this file in favour of main's when merging."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Sampling:
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0
    max_new_tokens: int = 256
    n: int = 1
    seed: int | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    tokens: int
    finish_reason: str


class Engine(Protocol):
    def generate(self, prompts: list[str], sampling: Sampling) -> list[list[Completion]]: ...


def load(name: str, model_dir, *, dtype="auto", max_model_length=None, batch_size=None,
         gpu_memory_utilization=None) -> Engine:  # fmt: skip
    if name == "vllm":
        from srlm.generation.vllm import VLLMEngine

        return VLLMEngine(model_dir, dtype=dtype, max_model_length=max_model_length, batch_size=batch_size,
                          gpu_memory_utilization=gpu_memory_utilization)  # fmt: skip
    raise ValueError(f"engine {name!r}: only 'vllm' in this stand-in")
