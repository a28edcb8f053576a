"""GPU check of srlm.decode on the Qwen2.5-0.5B shape (random init): its CUDA-graph replay gives the same tokens as
its eager steps (greedy, bf16: same kernels, so identical); its compiled decode step (Inductor's fused kernels, so
bf16 roundings differ) agrees with them until a near-tie; and it agrees with `model.generate` (greedy, float32,
different attention kernels: identical until a near-tie of the random model's flat logits). Prints JSON.

    python perf/gpu_decode_check.py   # defaults: where gpu_run.sh files the bench bundle (/tmp/bench)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))


def main() -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from srlm.generation import Sampling
    from srlm.speed import decode

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-config", default="/tmp/bench/shape/qwen2.5-0.5b")
    ap.add_argument("--data", default="/tmp/bench/data/gsm8k/train.jsonl")
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--new", type=int, default=300, help="new tokens: > 256 crosses an attention window")
    ap.add_argument("--device", default="cuda", help="cpu: a smoke test (no CUDA graphs)")
    a = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(a.model_config)
    prompts, eos, pad = chat_prompts(tok, a.data, a.rows)
    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(a.model_config)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16).to(a.device).eval()
    greedy = Sampling(temperature=0)
    cuda = a.device == "cuda"
    out = {"card": torch.cuda.get_device_name() if cuda else "cpu", "rows": len(prompts), "new_tokens": a.new}
    runs = {}
    variants = {
        "eager": (False, False),
        "graphs": (True, False),
        "compiled": (True, True),
        "compiled again": (True, True),
    }
    for name, (graphs, compiled) in variants.items() if cuda else [("eager", (False, False))]:
        torch.cuda.synchronize() if cuda else None
        t = time.perf_counter()
        runs[name] = decode.generate(
            model,
            prompts,
            a.new,
            eos_ids=eos,
            pad_id=pad,
            sampling=greedy,
            cuda_graphs=graphs,
            compiled=compiled,
        )
        torch.cuda.synchronize() if cuda else None
        out[f"seconds {name}"] = time.perf_counter() - t  # "compiled": compilation included
    if cuda:
        out["graphs_equal_eager"] = runs["graphs"] == runs["eager"]
        out["compile_failed"] = sorted(decode._COMPILE_FAILED)
        out["compiled_vs_eager"] = agreement(runs["compiled"], runs["eager"])
        out["compiled_again_equal_compiled"] = runs["compiled again"] == runs["compiled"]
        # Rows that share a prompt share its prefill (16 prompts × 4, CUDA graphs): each row against the graphs
        # run of its prompt alone (bf16: the prefill's batch differs, so identical until a near-tie).
        shared = decode.generate(model, [p for p in prompts[:16] for _ in range(4)], a.new, eos_ids=eos,
                                 pad_id=pad, sampling=greedy, cuda_graphs=True)  # fmt: skip
        out["shared_prefill_vs_graphs"] = agreement(shared, [r for r in runs["graphs"][:16] for _ in range(4)])
    out["generated_tokens"] = sum(map(len, runs["eager"]))

    model = model.float()
    ours = decode.generate(model, prompts, a.new, eos_ids=eos, pad_id=pad, sampling=greedy)
    tok.padding_side = "left"
    batch = tok.pad({"input_ids": prompts}, return_tensors="pt").to(a.device)
    with torch.no_grad():
        ref = model.generate(
            **batch,
            do_sample=False,
            max_new_tokens=a.new,
            eos_token_id=eos,
            pad_token_id=pad,
            top_k=None,
            top_p=None,
            temperature=None,
        )[:, batch["input_ids"].shape[1] :].tolist()
    ref = [r[: next((k + 1 for k, t in enumerate(r) if t in eos), len(r))] for r in ref]
    out["fp32_vs_generate"] = agreement(ours, ref)

    # Sampling: draws of 1,000 rows at a time (the rejection path of decode.sample, with its re-draws) follow the
    # filtered distribution (token frequencies of one row's logits).
    logits = torch.randn(1, 2000, device=a.device) * 2
    s = Sampling(temperature=0.6, top_p=0.95)
    p = decode.filter_logits(logits, s).softmax(-1)[0]
    overflow = torch.zeros((), dtype=torch.long, device=a.device)
    draws = torch.cat([decode.sample(logits.expand(1000, -1), s, overflow) for _ in range(20)])
    freq = torch.bincount(draws, minlength=2000).float() / draws.numel()
    out["sampling_total_variation"] = float(0.5 * (freq - p).abs().sum())
    ref = torch.bincount(torch.multinomial(p, draws.numel(), replacement=True), minlength=2000).float()
    out["multinomial_total_variation"] = float(0.5 * (ref / draws.numel() - p).abs().sum())  # the noise level
    out["sampling_outside_nucleus"] = int((freq[p == 0] > 0).sum())
    out["sampling_overflow"] = int(overflow)
    if cuda:
        out["sample_ms"] = sample_times(decode, model.config.vocab_size, s)
    print(json.dumps(out))


def chat_prompts(tok, data: str, rows: int) -> tuple[list[list[int]], list[int], int]:
    """The first `rows` GSM8K questions as chat prompts (token ids), the EOS ids and the pad id."""
    questions = [json.loads(x)["question"] for x in Path(data).read_text().splitlines()[:rows]]
    prompts = [tok.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True) for q in questions]
    prompts = [p if isinstance(p, list) else p["input_ids"] for p in prompts]
    return prompts, [tok.convert_tokens_to_ids("<|im_end|>"), tok.eos_token_id], tok.pad_token_id


def agreement(ours: list[list[int]], ref: list[list[int]]) -> dict:
    """Rows identical, and where rows first differ (median, min; a row's length if never)."""
    first = [
        next((k for k, (x, y) in enumerate(zip(o, r)) if x != y), min(len(o), len(r)))
        for o, r in zip(ours, ref, strict=True)
    ]
    return {
        "rows_identical": sum(o == r for o, r in zip(ours, ref)),
        "first_difference_median": sorted(first)[len(first) // 2],
        "first_difference_min": min(first),
    }


def sample_times(decode, vocab: int, s) -> dict:
    """Milliseconds of one decode.sample call on bf16 logits [B, vocab]: the rejection path against the sort of
    the whole vocabulary (redraw_rows = B), for flat logits (a random model's: std 0.6) and peaked ones (std 4)."""
    times = {}
    own = decode.redraw_rows
    for rows in (128, 512, 1024):
        for spread in (0.6, 4.0):
            logits = (torch.randn(rows, vocab, device="cuda") * spread).bfloat16()
            for name, fix in (("rejection", own), ("sort", lambda batch, top_p: batch)):
                decode.redraw_rows = fix
                for _ in range(3):
                    decode.sample(logits, s)
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(20):
                    decode.sample(logits, s)
                end.record()
                torch.cuda.synchronize()
                times[f"{name} B={rows} std={spread}"] = round(start.elapsed_time(end) / 20, 3)
    decode.redraw_rows = own
    return times


if __name__ == "__main__":
    main()
