"""Why srlm.decode's compiled step is slow inside GRPO (issue 19): the same rollout call (128 GSM8K prompts, GRPO's
sampling) timed under the conditions a trainer adds one by one; the first call far slower than eager is cProfiled.
Prints one JSON line per call.

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


if __name__ == "__main__":
    main()
