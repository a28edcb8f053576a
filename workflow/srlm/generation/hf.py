"""The transformers-side engines: the project's static-cache sampler ("srlm.decode": srlm.speed.decode, through
the seam srlm.speed) and `model.generate`."""

from __future__ import annotations

from pathlib import Path

import torch

from srlm import speed
from srlm.generation import Completion, Sampling, choose, eval_batch_size, kv_bytes_per_token


class TransformersEngine:
    """Batched sampling with a transformers model, prompts sorted by length (results in prompt order).

    name: "srlm.decode" or "transformers" (`model.generate`); batch_size: prompts per call, "auto" (sized by
    srlm.generation.eval_batch_size), or None (all at once, as GRPO rollouts of one step); compile_decode:
    srlm.decode's decode step through torch.compile on a GPU (config evaluation.compile_decode; GRPO's
    launch.compile)."""

    def __init__(
        self, model, tokenizer, name: str, *, eos_ids, max_model_length: int, batch_size: int | str | None,
        compile_decode: bool = False,
    ):
        if name == "srlm.decode" and (why := speed.decode_unsupported(model)):
            raise ValueError(f"srlm.decode cannot sample from this model: {why}")
        self.model, self.tokenizer, self.name = model, tokenizer, name
        self.eos_ids = set(eos_ids)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else min(self.eos_ids)
        self.max_model_length, self.batch_size = max_model_length, batch_size
        # A CPU decodes eagerly: compiling costs minutes there and was not measured to pay.
        self.compiled = compile_decode and model.device.type == "cuda"

    def generate(self, prompts: list[list[int]], sampling: Sampling, *, texts: bool = True) -> list[list[Completion]]:
        """Completions of each prompt, in prompt order; texts False leaves each Completion's text None (a caller
        that detokenizes itself, as TRL's GRPOTrainer does with rollouts, saves the work)."""
        max_prompt = self.max_model_length - 1
        prompts = [p[-max_prompt:] for p in prompts]  # left-truncated, as vLLM and lighteval do
        order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
        size = self.batch_size or max(1, len(prompts))
        if size == "auto":  # config evaluation.batch_size: by device and KV-cache size
            kv = kv_bytes_per_token(self.model.config)
            size = eval_batch_size(self.model.device.type == "cuda", self.max_model_length, kv, sampling.n)
        out: list[list[Completion]] = [[] for _ in prompts]
        if sampling.seed is not None:
            torch.manual_seed(sampling.seed)
        for start in range(0, len(order), size):
            idx = order[start : start + size]
            rows = [prompts[i] for i in idx for _ in range(sampling.n)]
            new = max(1, min(sampling.max_new_tokens, self.max_model_length - max(map(len, rows))))
            gen = self._sample(rows, new, sampling)
            text = self.tokenizer.batch_decode(gen, skip_special_tokens=True) if texts else [None] * len(gen)
            for r, ids in enumerate(gen):
                reason = "stop" if ids and ids[-1] in self.eos_ids else "length"
                out[idx[r // sampling.n]].append(Completion(ids, text[r], reason))
        return out

    @torch.no_grad()
    def _sample(self, rows: list[list[int]], new: int, s: Sampling) -> list[list[int]]:
        """Each row's tokens up to and including its first EOS."""
        if self.name == "srlm.decode":
            return speed.generate(
                self.model, rows, new, eos_ids=self.eos_ids, pad_id=self.pad_id, sampling=s, compiled=self.compiled
            )
        from transformers import GenerationConfig

        config = GenerationConfig(
            do_sample=s.temperature > 0,
            temperature=s.temperature if s.temperature > 0 else None,
            top_p=s.top_p if s.temperature > 0 else None,
            top_k=0 if s.temperature > 0 else None,
            repetition_penalty=1.0,
            max_new_tokens=new,
            eos_token_id=sorted(self.eos_ids),
            pad_token_id=self.pad_id,
        )
        batch = self.tokenizer.pad({"input_ids": rows}, return_tensors="pt", padding_side="left")
        seqs = self.model.generate(**batch.to(self.model.device), generation_config=config)
        gen = seqs[:, batch["input_ids"].shape[1] :].tolist()
        return [row[: next((k + 1 for k, t in enumerate(row) if t in self.eos_ids), len(row))] for row in gen]


def eos_ids(model, tokenizer, end_of_turn: str | None = None) -> set[int]:
    """The model's end-of-turn tokens: its generation_config's EOS (a list for Qwen), the tokenizer's, and
    `end_of_turn` (config models.<m>.eos_token) when given."""
    eos = model.generation_config.eos_token_id
    ids = set(eos if isinstance(eos, list) else [eos]) if eos is not None else set()
    ids |= {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    return ids | ({token_id(tokenizer, end_of_turn)} if end_of_turn else set())


def token_id(tokenizer, token: str) -> int:
    """The id of one token of the vocabulary; ValueError naming it if the tokenizer does not have it."""
    tid = tokenizer.convert_tokens_to_ids(token)
    if tid is None or tid == tokenizer.unk_token_id or tokenizer.convert_ids_to_tokens(tid) != token:
        raise ValueError(f"end-of-turn token {token!r} (models.<m>.eos_token) is not in the model's vocabulary")
    return tid


def load_transformers(
    name: str, model_dir: Path, *, dtype: str, max_model_length: int, batch_size: int | str,
    compile_decode: bool = False, end_of_turn: str | None = None,
) -> TransformersEngine:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    device = "cuda" if torch.cuda.is_available() else "cpu"
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, dtype)).to(device).eval()
    name = choose(name, model=model, has_cuda=device == "cuda")
    return TransformersEngine(
        model, tokenizer, name, eos_ids=eos_ids(model, tokenizer, end_of_turn), max_model_length=max_model_length,
        batch_size=batch_size, compile_decode=compile_decode,
    )  # fmt: skip
