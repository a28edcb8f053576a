"""Training-collapse detection from a run's metrics log (the ‡ of the paper's Table 3).

A run is "collapsed" when (1) its loss or gradient norm becomes non-finite, or, for GRPO, (2) a reward sits at
its minimum value over the last part of training, or (3) the accuracy reward falls far below its peak.
Thresholds come from config; the defaults below are used where a key is absent.
"""

from __future__ import annotations

import math

DEFAULTS = {
    # Fraction of the logged steps at the end of training that rules (2) and (3) look at.
    "tail_fraction": 0.25,
    # Rule (2): mean of the tail within this distance of the reward's minimum value.
    "pinned_tolerance": 0.05,
    # Rule (3): tail mean of the accuracy reward below peak - this × (peak - minimum).
    "accuracy_drop": 0.5,
}
REWARD_KEYS = {
    "format": "rewards/format_reward/mean",
    "accuracy": "rewards/accuracy_reward/mean",
}


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def assess(records: list[dict], stage_type: str, cfg: dict) -> tuple[str, str | None]:
    """Return ("ok", None) or ("collapsed", reason) for a run's metrics records."""
    c = {**DEFAULTS, **{k: v for k, v in cfg.items() if k in DEFAULTS}}
    for r in records:
        for key in ("loss", "grad_norm"):
            if key in r and not _finite(r[key]):
                return "collapsed", f"non-finite {key} ({r[key]}) at step {r['step']}"
    if stage_type != "grpo":
        return "ok", None
    minima = cfg.get("reward_minimum", {})
    for name, key in REWARD_KEYS.items():
        series = [r[key] for r in records if _finite(r.get(key))]
        if len(series) < 4:
            continue
        tail = series[-max(1, int(len(series) * c["tail_fraction"])) :]
        tail_mean = sum(tail) / len(tail)
        low = minima.get(name, min(series))
        if name in minima and tail_mean <= low + c["pinned_tolerance"]:
            return "collapsed", f"{name} reward pinned at its minimum {low} over the last {len(tail)} logs"
        peak = max(series)
        if name == "accuracy" and peak > low and tail_mean < peak - c["accuracy_drop"] * (peak - low):
            return "collapsed", f"accuracy reward fell from peak {peak:.3f} to {tail_mean:.3f} (last {len(tail)} logs)"
    return "ok", None
