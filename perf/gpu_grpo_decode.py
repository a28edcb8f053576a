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
    from srlm import speed
    from srlm.generation import Sampling
    from srlm.speed import decode

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model-config", default=".gpu/qwen2.5-0.5b")
    ap.add_argument("--data", default=".gpu/gsm8k/train.jsonl", help="GSM8K JSONL: the first --rows questions")
    ap.add_argument("--rows", type=int, default=128)
    ap.add_argument("--new", type=int, default=256)
    ap.add_argument("--distinct", type=int, default=0, help="N: the first N questions, each repeated to --rows rows "
                    "(GRPO's 8 × 16); 0: --rows distinct questions")
    ap.add_argument("--device", default="cuda", help="cpu: a smoke test")
    ap.add_argument("--conditions", default="eager,compiled,compiled,train,trained,layers,stance,checkpointing")
    ap.add_argument("--kernels", type=int, default=0, help="after the conditions: the top N kernels of a call")
    ap.add_argument("--attention", default="", help="then: compiled calls with these decode attention variants")
    ap.add_argument("--phases", type=int, default=0, help="then: N compiled calls timed part by part, with "
                    "decode.capture and with torch.cuda.graph's own capture (device sync + empty_cache)")
    a = ap.parse_args()
    tok = AutoTokenizer.from_pretrained(a.model_config)
    prompts, eos, pad = chat_prompts(tok, a.data, a.distinct or a.rows)
    if a.distinct:
        prompts = [p for p in prompts for _ in range(a.rows // a.distinct)]
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(a.model_config), dtype=torch.bfloat16)
    model = model.to(a.device).eval()
    sync = torch.cuda.synchronize if a.device == "cuda" else lambda: None
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6)
    grpo = Sampling(temperature=1.0, top_p=1.0)
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
    if a.phases:
        phases(model, prompts, a.new, eos, pad, grpo, a.phases, sync)


def phases(model, prompts, new, eos, pad, sampling, calls, sync) -> None:
    """Compiled calls with a device sync around each part of srlm.decode.generate: seconds per call of the setup,
    prefill, uncaptured steps, captures, replays and results; the rest of the call is the loop's own host work.
    Each way of capturing: decode.capture, then torch.cuda.graph as decode used it until 2026-12-06. Between calls
    a training-sized allocation is made and freed, as a trainer's step leaves cached blocks behind."""
    from srlm.speed import decode

    kept = {k: getattr(decode._Run, k) for k in ("__init__", "prefill", "step", "results")}
    replay, capture = torch.cuda.CUDAGraph.replay, decode.capture
    parts: dict[str, list[float]] = {}

    def timed(name, fn):
        def run(*args, **kw):
            recording = torch.cuda.is_current_stream_capturing()  # no device sync is allowed then
            if not recording:
                sync()
            t = time.perf_counter()
            out = fn(*args, **kw)
            if not recording:
                sync()
            key = "step recorded" if recording else name
            parts.setdefault(key, []).append(time.perf_counter() - t)
            return out

        return run

    def graph_capture(fn, pool):  # decode's capture before 2026-12-06
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=pool, capture_error_mode="thread_local"):
            fn()
        return graph

    try:
        for k, fn in kept.items():
            setattr(decode._Run, k, timed(k, fn))
        torch.cuda.CUDAGraph.replay = timed("replay", replay)
        for way, fn in (("decode.capture", capture), ("torch.cuda.graph", graph_capture)):
            decode.capture = timed("capture", fn)
            for call in range(calls):
                junk = torch.empty(8 << 30, dtype=torch.uint8, device=model.device)  # 8 GiB cached, then free
                del junk
                parts.clear()
                sync()
                t = time.perf_counter()
                out = decode.generate(model, prompts, new, eos_ids=eos, pad_id=pad, sampling=sampling, compiled=True)
                sync()
                wall = time.perf_counter() - t
                row = {k: [len(v), round(sum(v), 4)] for k, v in parts.items()}
                outer = sum(v for k, (n, v) in row.items() if k not in ("step", "step recorded"))
                row["step"] = row.get("step", [0, 0.0])  # uncaptured steps (inside no capture)
                print(json.dumps(dict(capture=way, call=call, wall_s=round(wall, 4), tokens=sum(map(len, out)),
                                      parts=row, loop_host_s=round(wall - outer - row["step"][1], 4))), flush=True)
    finally:
        for k, fn in kept.items():
            setattr(decode._Run, k, fn)
        torch.cuda.CUDAGraph.replay, decode.capture = replay, capture


def variant(name, model, prompts, new, eos, pad, sampling, sync) -> None:
    """Two compiled calls (the first compiles) with decode attention variant `name` for the one-token steps."""
    import gpu_decode_attention

    from srlm.speed import decode

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

    from srlm.speed import decode

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
