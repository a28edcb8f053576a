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
    converged: also flagged.
Thresholds come from config `health:`; DEFAULTS are used where a key is absent.
"""

from __future__ import annotations

import math

DEFAULTS = {
    # Fraction of the logged steps at the end of training that rule (2) averages (and its window length).
    "tail_fraction": 0.25,
    # Rules (2) and (3) need at least this many logged values of a reward.
    "min_logs": 4,
    # Rule (2) applies once the reward's best was this fraction of (correct - incorrect) above its minimum.
    "min_rise": 0.25,
    # Rule (2): collapsed when the tail mean lost more than this fraction of the best's height above the minimum.
    "drop_fraction": 0.5,
}


def _finite(x) -> bool:
    return isinstance(x, (int, float)) and math.isfinite(x)


def settings(cfg: dict | None) -> dict:
    """Config `health` over DEFAULTS; an unknown key is an error (checked before training starts)."""
    unknown = set(cfg or {}) - set(DEFAULTS)
    if unknown:
        raise ValueError(f"health: unknown key(s) {sorted(unknown)} (known: {sorted(DEFAULTS)})")
    return {**DEFAULTS, **(cfg or {})}


def assess(records: list[dict], cfg: dict | None, rewards: dict | None = None) -> tuple[str, str | None]:
    """("ok", None) or ("collapsed", reason) for a run's metrics records.

    cfg: config `health` (keys of DEFAULTS); rewards: {metrics key of a reward's mean: {"correct", "incorrect"}}
    (GRPO only; None for SFT).
    """
    c = settings(cfg)
    for r in records:
        for key in ("loss", "grad_norm"):
            if key in r and not _finite(r[key]):
                return "collapsed", f"non-finite {key} ({r[key]}) at step {r.get('step')}"
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
