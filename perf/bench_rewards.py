"""GRPO's accuracy reward on the CPU (issue 19): milliseconds per batch of 128 completions, 8 GSM8K golds × 16
answers (about half right, the wrong ones off by 1, 2 or 10), with grading's parse cache as in training, and with a
cache that keeps nothing (every answer parsed anew, as before 2026-12-06). Prints one JSON line per batch.

    .venv/bin/python perf/bench_rewards.py --data ../shared/data/gsm8k/train.jsonl
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workflow"))


class _KeepsNothing(dict):
    def __setitem__(self, key, value) -> None:
        pass


def main() -> None:
    from srlm import grading, rewards
    from srlm.data.gsm8k import final_answer

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data/gsm8k/train.jsonl", help="GSM8K JSONL (question, answer)")
    ap.add_argument("--batches", type=int, default=8)
    a = ap.parse_args()
    lines = Path(a.data).read_text().splitlines()[: 8 * a.batches]
    golds = [final_answer(json.loads(line)["answer"]) for line in lines]  # the rl dataset's answer column
    reward = rewards.make_accuracy_reward()
    rng = random.Random(0)
    for k in range(a.batches):
        answers = [g for g in golds[8 * k : 8 * k + 8] for _ in range(16)]
        preds = [g if rng.random() < 0.5 else str(int(g) + rng.choice([1, 2, 10])) for g in answers]
        completions = [f"<think>…</think><answer>{p}</answer>" for p in preds]
        row = {"batch": k}
        kept = grading._PARSED
        for mode, cache in (("uncached", _KeepsNothing()), ("cached", kept)):
            grading._PARSED = cache  # read by grading._parse at each call
            t = time.perf_counter()
            got = reward(completions, answer=answers)
            row[f"{mode}_ms"] = round(1e3 * (time.perf_counter() - t), 1)
            row[f"{mode}_mean_reward"] = round(sum(got) / len(got), 3)
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
