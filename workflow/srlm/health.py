"""Training-collapse detection from a run's metrics log (the ‡ of the paper's Table 3).

A run is "collapsed" when
(1) its loss or gradient norm becomes non-finite (any stage), or
(2) a GRPO reward falls far below its best level and stays there: over the last part of training its mean is
    below best - drop_fraction × (best - minimum). "Best" is the reward before the first update (the first log)
    or its best mean over any window of tail length, whichever is higher; a reward whose best never rose
    min_rise × (correct - incorrect) above its minimum is left alone: it never learned (an untrained model's
    accuracy), it did not collapse; but
(3) a GRPO run in which every reward stays at its minimum from the first log to the last never had a learning
    signal (all completions tie, the gradient is zero: a model that never writes the answer format) and never
    converged: also flagged;
(4) an SFT/KD run whose gradient norm is exactly 0 in every log of its last part (tail_fraction, at least
    min_logs logs) while its loss is positive: the weights have stopped moving on a loss that is not solved
    (e.g. activations saturated by a far too large learning rate; the loss stays finite and flat). Not for GRPO,
    where a zero gradient also follows from every group tying, success included (beta 0).
Thresholds: config `health` (tail_fraction, min_logs, min_rise, drop_fraction; meanings and values in
config.yaml, all required by the schema: no defaults here).

The check is a cheap rule of its own (check_health: metrics.jsonl -> health.json), not part of the training
job, so changing a threshold re-judges finished runs without retraining them:

    python -m srlm.health --metrics metrics.jsonl --params '{"health": {...}, "rewards": {...} | null}' \
        --out health.json --model-name M --chain C
"""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

# not srlm.train: a cheap rule must not import transformers
from srlm.data.io import cli, read_metrics, write_text


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def reward_series(stage_rewards: dict | None) -> dict | None:
    """{metrics key of a reward's batch mean: {"correct", "incorrect"}} for a GRPO stage's `rewards` config
    (TRL logs each reward function's mean as rewards/<function name>/mean; srlm.rewards names the function of
    reward `x` x_reward). None for an SFT stage."""
    if stage_rewards is None:
        return None
    return {
        f"rewards/{name}_reward/mean": {"correct": v["correct"], "incorrect": v["incorrect"]}
        for name, v in stage_rewards.items()
    }


def assess(records: list[dict], c: dict, rewards: dict | None = None) -> tuple[str, str | None]:
    """("ok", None) or ("collapsed", reason) for a run's metrics records.

    c: config `health` (validated: every key present); rewards: {metrics key of a reward's mean: {"correct",
    "incorrect"}} (GRPO only, see reward_series; None for SFT).
    """
    for r in records:
        for key in ("loss", "grad_norm"):
            if key in r and not _finite(r[key]):
                return "collapsed", f"non-finite {key} ({r[key]}) at step {r.get('step')}"
    if rewards is None:
        logged = [r for r in records if _finite(r.get("grad_norm")) and _finite(r.get("loss"))]
        tail = logged[-max(c["min_logs"], int(len(logged) * c["tail_fraction"])) :]
        if len(logged) >= c["min_logs"] and all(r["grad_norm"] == 0 and r["loss"] > 0 for r in tail):
            return "collapsed", (
                f"gradient norm 0 with loss {tail[-1]['loss']:.4g} in each of the last {len(tail)} of "
                f"{len(logged)} logs: the weights stopped moving"
            )
    floor = []
    for key, values in (rewards or {}).items():
        series = [r[key] for r in records if _finite(r.get(key))]
        if len(series) < c["min_logs"]:
            continue
        if max(series) <= values["incorrect"]:
            floor.append(f"{_name(key)} {values['incorrect']:g}")
        low, span = values["incorrect"], values["correct"] - values["incorrect"]
        w = max(1, int(len(series) * c["tail_fraction"]))
        means = [sum(series[i : i + w]) / w for i in range(len(series) - w + 1)]
        best, tail = max(series[0], *means), means[-1]
        if best - low < c["min_rise"] * span:
            continue
        if tail < best - c["drop_fraction"] * (best - low):
            return "collapsed", (
                f"{_name(key)} fell from {best:.3f} to {tail:.3f} over the last {w} of {len(series)} logs "
                f"(minimum {low:g})"
            )
    if floor and len(floor) == len(rewards):
        return (
            "collapsed",
            f"every reward stayed at its minimum ({', '.join(floor)}) in every log: no learning signal",
        )
    return "ok", None


def _name(key: str) -> str:
    """'format_reward' from TRL's 'rewards/format_reward/mean'."""
    return key.split("/")[1] if key.count("/") == 2 else key


@cli
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--metrics", type=Path, required=True, help="a training run's metrics.jsonl")
    p.add_argument("--params", type=json.loads, required=True, help='JSON: {"health": {...}, "rewards": ...}')
    p.add_argument("--out", type=Path, required=True, help="health.json")
    p.add_argument("--model-name", default="")
    p.add_argument("--chain", default="")
    a = p.parse_args(argv)
    status, reason = assess(read_metrics(a.metrics), a.params["health"], reward_series(a.params["rewards"]))
    result = {"model": a.model_name, "chain": a.chain, "status": status, "reason": reason}
    write_text(a.out, json.dumps(result, indent=2) + "\n")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
