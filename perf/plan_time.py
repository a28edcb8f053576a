"""How long `snakemake -n` takes to plan a grid, as the grid grows (issue 19's planning goal: a 10-model ×
20-chain × 5-benchmark grid, ~1,000 evaluation jobs, in < 10 s).

    python perf/plan_time.py [--sizes 1x2,4x8,10x20] [--repeats 3] [--keep DIR]

For each MODELSxCHAINS it writes an overlay of config.yaml with that many model entries (copies of Qwen2.5-0.5B)
and one table of that many chains over the five benchmarks, then times the dry run of that table (best of
--repeats; Snakemake's own start-up included, also printed alone as `snakemake --version`).
Prints one line per size: jobs planned, wall seconds, CPU seconds (user + system of the best run: what the run
itself costs, less sensitive than wall time to other processes on a shared box) and the 1-minute load average
when it ended. --keep DIR leaves the overlays there (plan-MxC.yaml), e.g. to profile one:
    python -m cProfile -o plan.prof -m snakemake results/table9.md -n --quiet rules \
        --configfile config.yaml DIR/plan-10x20.yaml
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]


def chains(n: int) -> list[str]:
    """n distinct chains of the config's stages, shortest first (sft, ..., sft+rl, ..., kd+sft+rl, ...)."""
    stages = ["sft", "sft-lora", "kd", "kd-lora", "rl"]
    out = []
    for k in itertools.count(1):
        out += ["+".join(c) for c in itertools.product(stages, repeat=k)]
        if len(out) >= n:
            return out[:n]


def overlay(n_models: int, n_chains: int) -> dict:
    base = yaml.safe_load((REPO / "config.yaml").read_text())["models"]["qwen2.5-0.5b"]
    models = {f"m{i}": {**base, "label": f"M{i}"} for i in range(n_models)}
    rows = [{"model": m, "chain": c, "paper": [None] * 5} for m in models for c in chains(n_chains)]
    table = {
        "title": "Plan-time grid", "caption": "", "header": "Model", "bold": False,
        "columns": ["olympiadbench", "math500", "minerva", "amc23", "gsm8k"],
        "sections": [{"title": "grid", "rows": rows}],
    }  # fmt: skip
    return {"models": models, "tables": {"table9": table}}


def timed(cmd: list[str], repeats: int) -> tuple[float, float, str]:
    """Best wall seconds of `repeats` runs, that run's CPU seconds, and its stdout."""
    best, cpu, out = float("inf"), 0.0, ""
    for _ in range(repeats):
        r0, t0 = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout
        wall, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_CHILDREN)
        if wall < best:
            best, cpu = wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
    return best, cpu, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1x2,4x8,10x20")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--keep", type=Path, help="write the overlays into this folder and leave them there")
    a = ap.parse_args()
    sm = [sys.executable, "-m", "snakemake"]
    startup, cpu, _ = timed([*sm, "--version"], a.repeats)
    print(f"snakemake --version: {startup:.2f} s, {cpu:.2f} s CPU, load {os.getloadavg()[0]:.1f}")
    for size in a.sizes.split(","):
        m, c = map(int, size.split("x"))
        if a.keep:
            a.keep.mkdir(parents=True, exist_ok=True)
            path = a.keep.resolve() / f"plan-{m}x{c}.yaml"
            path.write_text(yaml.safe_dump(overlay(m, c)))
        else:
            with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=REPO / "perf", delete=False) as f:
                yaml.safe_dump(overlay(m, c), f)
            path = Path(f.name)
        try:
            secs, cpu, out = timed([*sm, "results/table9.md", "-n", "--quiet", "rules", "--configfile",
                                    "config.yaml", str(path)], a.repeats)  # fmt: skip
        finally:
            if not a.keep:
                path.unlink()
        total = next((line.split()[-1] for line in out.splitlines() if line.startswith("total")), "?")
        print(f"{m} models x {c} chains x 5 benchmarks: {total} jobs planned in {secs:.2f} s "
              f"({cpu:.2f} s CPU, load {os.getloadavg()[0]:.1f})")  # fmt: skip


if __name__ == "__main__":
    main()
