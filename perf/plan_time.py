"""How long `snakemake -n` takes to plan a grid, as the grid grows (issue 19's planning goal: a 10-model ×
20-chain × 5-benchmark grid, ~1,000 evaluation jobs, in < 10 s).

    python perf/plan_time.py [--sizes 1x2,4x8,10x20] [--repeats 3]

For each MODELSxCHAINS it writes an overlay of config.yaml with that many model entries (copies of Qwen2.5-0.5B)
and one table of that many chains over the five benchmarks, then times the dry run of that table (best of
--repeats; Snakemake's own start-up included, also printed alone as `snakemake --version`).
Prints one line per size: jobs planned and seconds.
"""

from __future__ import annotations

import argparse
import itertools
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


def timed(cmd: list[str], repeats: int) -> tuple[float, str]:
    best, out = float("inf"), ""
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=True).stdout
        best = min(best, time.perf_counter() - t0)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1x2,4x8,10x20")
    ap.add_argument("--repeats", type=int, default=3)
    a = ap.parse_args()
    sm = [sys.executable, "-m", "snakemake"]
    startup, _ = timed([*sm, "--version"], a.repeats)
    print(f"snakemake --version: {startup:.2f} s")
    for size in a.sizes.split(","):
        m, c = map(int, size.split("x"))
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", dir=REPO / "perf", delete=False) as f:
            yaml.safe_dump(overlay(m, c), f)
        try:
            secs, out = timed([*sm, "results/table9.md", "-n", "--quiet", "rules", "--configfile", "config.yaml",
                               f.name], a.repeats)  # fmt: skip
        finally:
            Path(f.name).unlink()
        total = next((line.split()[-1] for line in out.splitlines() if line.startswith("total")), "?")
        print(f"{m} models x {c} chains x 5 benchmarks: {total} jobs planned in {secs:.2f} s")


if __name__ == "__main__":
    main()
