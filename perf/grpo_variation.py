"""Run-to-run variation of test_train.py's GRPO learning test (issue 20): one seed and thread count per call.

    OMP_NUM_THREADS=T python perf/grpo_variation.py ROOT SEED T ['{"name": {stage overrides}}']

Warm-up SFT and GRPO as the `warm` and `grpo_run` fixtures, with `seed` for both, then the test's measure: the
format rate of 256 fixed-seed samples of the warm and of the trained model. Prints one JSON line per run, with
wall and user-CPU seconds. ROOT holds the tiny model and data (built once) and the runs.
"""

import json
import resource
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.unit import test_train as T

root, seed, threads = Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
runs = json.loads(sys.argv[4]) if len(sys.argv) > 4 else {"fixture": {}}
torch.set_num_threads(threads)
if not (root / "data" / "short.jsonl").exists():
    T.make_files(root)
data, tag = root / "data" / "rl.jsonl", f"s{seed}-t{threads}"
warm = root / f"warm-{tag}"
if not (warm / "model").exists():
    stage = T.stage_of("sft", learning_rate=5e-3, max_steps=96, save_steps=1000, seed=seed)
    T.train("sft", stage, root / "base", root / "data" / "short.jsonl", warm)
for name, over in runs.items():
    t, cpu = time.time(), resource.getrusage(resource.RUSAGE_SELF).ru_utime
    stage = T.stage_of("rl", **{**T.GRPO_RUN, "seed": seed, **over})
    out = root / f"grpo-{tag}-{name}"
    T.train("rl", stage, warm / "model", data, out)
    before, after = T.format_rate(warm / "model", data, stage), T.format_rate(out / "model", data, stage)
    print(json.dumps({
        "seed": seed, "threads": threads, "run": name, "before": before,
        "after": after, "failures_ratio": (1 - after) / (1 - before), "wall_s": round(time.time() - t),
        "user_s": round(resource.getrusage(resource.RUSAGE_SELF).ru_utime - cpu),
    }), flush=True)  # fmt: skip
