"""Training jobs (sft, grpo and what they share in common). This module stays free of torch and transformers:
srlm.health, a local job on the submit host, reads training metrics through it (importing srlm.train.common
costs ~8 s of CPU: transformers, peft, torch)."""

from __future__ import annotations

import json
from pathlib import Path


def read_metrics(path: Path) -> list[dict]:
    """Records of a metrics JSONL; a line cut short by a kill is skipped."""
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out
