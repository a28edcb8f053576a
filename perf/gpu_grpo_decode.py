"""Why srlm.decode's compiled step is slow inside GRPO (issue 19): the same rollout call (128 GSM8K prompts, GRPO's
sampling) timed under the conditions a trainer adds one by one; the first call far slower than eager is cProfiled.
Prints one JSON line per call. --kernels N then profiles one more compiled call with and without CUDA graphs and
prints the N kernels that take the most device time (where a decode step's time goes). --attention V,... then
times a compiled call with each decode attention variant of perf/gpu_decode_attention.py in place of SDPA.

    python perf/gpu_grpo_decode.py --model-config .gpu/qwen2.5-0.5b --data .gpu/gsm8k/train.jsonl
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import pstats
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))


def main() -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from gpu_decode_check import chat_prompts
    from srlm import decode
    from srlm.train import speed

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-config", default=".gpu/qwen2.5-0.5b")
    ap.add_argument("--data", default=".gpu/gsm8k/train.jsonl", help="GSM8K JSONL: the first --rows questions")
    ap.add_argument("--rows", type=int, default=128)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--device", default="cuda", help="cpu: a smoke test")
    ap.add_argument("--conditions", default="eager,compiled,compiled,train,trained,layers,stance,checkpointing")
    ap.add_argument("--kernels", type=int, default=0, help="after the conditions: the top N kernels of a call")
    ap.add_argument("--attention", default="", help="then: compiled calls with these decode attention variants")
    a = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(a.model_config)
    prompts, eos, pad = chat_prompts(tok, a.data, a.rows)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(a.model_config), dtype=torch.bfloat16)
    model = model.to(a.device).eval()
    sync = torch.cuda.synchronize if a.device == "cuda" else lambda: None
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    grpo = decode.Sampling(temperature=1.0, top_p=1.0)
    baseline, profiled = None, False
    from torch._dynamo.utils import counters

    for name in a.conditions.split(","):
        stance = contextlib.nullcontext()
        if name in ("train", "trained", "layers", "stance", "checkpointing"):
            model.train()
        if name == "trained":  # a training step under bf16 autocast first, as the trainer's micro-batches
            ids = torch.tensor([prompts[0][:64]] * 4, device=a.device)
            with torch.autocast(a.device, dtype=torch.bfloat16):
                model(input_ids=ids, labels=ids).loss.backward()
            opt.step()
            opt.zero_grad()
        if name == "layers":  # compiled layers (GRPO's compile_models)
            speed.compile_layers(model)
        if name == "stance":  # rollouts under force_eager (grpo.decode_rollouts until 2026-12-02; call 1's "layers")
            stance = torch.compiler.set_stance("force_eager")
        if name == "checkpointing":
            model.gradient_checkpointing_enable()
            model.gradient_checkpointing_disable()  # as TRL's unwrap_model_for_generation does around rollouts
        compiled = name != "eager"
        frames = dict(counters["frames"])
        sync()
        t = time.perf_counter()
        slow = baseline is not None and not profiled and name != "compiled"
        prof = cProfile.Profile() if slow else None
        with stance, prof or contextlib.nullcontext():
            out = decode.generate(model, prompts, a.new, eos_ids=eos, pad_id=pad, sampling=grpo, compiled=compiled)
            sync()
        dt = time.perf_counter() - t
        n = sum(map(len, out))
        row = dict(condition=name, seconds=round(dt, 3), tokens=n, tokens_per_s=round(n / dt),
                   frames={k: v - frames.get(k, 0) for k, v in counters["frames"].items() if v != frames.get(k, 0)},
                   failed=sorted(decode._COMPILE_FAILED))  # fmt: skip
        print(json.dumps(row), flush=True)
        if name == "eager":
            baseline = dt
        if prof is not None and dt > 3 * baseline:
            profiled = True
            for key in ("cumulative", "tottime"):
                pstats.Stats(prof, stream=sys.stdout).sort_stats(key).print_stats(30)
    if a.kernels:
        kernels(model, prompts, a.new, eos, pad, grpo, a.kernels, sync)
    for name in filter(None, a.attention.split(",")):
        variant(name, model, prompts, a.new, eos, pad, grpo, sync)


def variant(name, model, prompts, new, eos, pad, sampling, sync) -> None:
    """Two compiled calls (the first compiles) with decode attention variant `name` for the one-token steps."""
    import gpu_decode_attention

    from srlm import decode

    fn = {f.__name__: f for f in gpu_decode_attention.VARIANTS}[name]
    kept = decode.attention

    def attention(module, query, key, value, attention_mask, scaling=None, **kwargs):
        if query.shape[2] != 1:
            return kept(module, query, key, value, attention_mask, scaling=scaling, **kwargs)
        width = attention_mask.shape[-1]
        b, heads, _, dim = query.shape
        kv = key.shape[1]
        out = fn(query.reshape(b, kv, heads // kv, dim), key[:, :, :width], value[:, :, :width], attention_mask,
                 scaling)  # fmt: skip
        return out.reshape(b, heads, 1, dim).transpose(1, 2).contiguous(), None

    decode.attention = attention
    torch._dynamo.reset()
    decode._compiled.cache_clear()
    try:
        for call in ("compiles", "timed"):
            sync()
            t = time.perf_counter()
            try:
                out = decode.generate(model, prompts, new, eos_ids=eos, pad_id=pad, sampling=sampling, compiled=True)
                sync()
            except Exception as e:  # noqa: BLE001 - report and go on with the next variant
                print(json.dumps(dict(attention=name, error=f"{type(e).__name__}: {str(e)[:400]}")), flush=True)
                return
            dt = time.perf_counter() - t
            print(json.dumps(dict(attention=name, call=call, seconds=round(dt, 3), tokens=sum(map(len, out)),
                                  failed=sorted(decode._COMPILE_FAILED))), flush=True)  # fmt: skip
    finally:
        decode.attention = kept
        decode._COMPILE_FAILED.clear()


def kernels(model, prompts, new, eos, pad, sampling, top, sync) -> None:
    """One compiled call each way under torch.profiler: wall and summed kernel time per decode step, top kernels."""
    from torch.profiler import ProfilerActivity, profile

    from srlm import decode

    for graphs in (False, True) if model.device.type == "cuda" else (False,):
        sync()
        t = time.perf_counter()
        with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
            out = decode.generate(model, prompts, new, eos_ids=eos, pad_id=pad, sampling=sampling, compiled=True,
                                  cuda_graphs=graphs)  # fmt: skip
            sync()
        wall = time.perf_counter() - t
        steps = max(map(len, out))
        table = prof.key_averages()
        busy = sum(e.self_device_time_total for e in table) / 1e6
        print(json.dumps(dict(cuda_graphs=graphs, steps=steps, wall_s=round(wall, 3), kernel_s=round(busy, 3),
                              kernel_ms_per_step=round(1e3 * busy / steps, 3))), flush=True)  # fmt: skip
        print(table.table(sort_by="self_device_time_total", row_limit=top, max_name_column_width=90), flush=True)


if __name__ == "__main__":
    main()
