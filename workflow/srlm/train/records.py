"""What a training job records: every log record (metrics.jsonl), every attempt's timing (attempts.json), and
the settings the trainer actually used, for the summary."""

from __future__ import annotations

import datetime
import enum
import json
import os
import time
from pathlib import Path

from srlm.data.io import read_metrics


class MetricsLog:
    """TrainerCallback appending every log record (loss, lr, rewards, KL, ...) to a JSONL file."""

    def __init__(self, path: Path):
        from transformers import TrainerCallback

        self.path = path
        log = self

        class _CB(TrainerCallback):
            def on_log(self, args, state, control, logs=None, **kw):
                if state.is_world_process_zero and logs:
                    with open(log.path, "a") as f:
                        f.write(json.dumps({"step": state.global_step, **logs}) + "\n")

        self.callback = _CB()

    def records(self) -> list[dict]:
        return read_metrics(self.path)


class Attempts:
    """This job's attempts, oldest first: earlier ones from work_dir/attempts.json, then the running one,
    whose record is rewritten after every optimizer step (main process only; the file goes with the work dir
    when another job's checkpoints are cleared)."""

    def __init__(self, work_dir: Path, started: float, processes: int, gpus: int, resumed_from: str | None):
        from transformers import TrainerCallback

        self.path = Path(work_dir) / "attempts.json"
        try:
            self.earlier = json.loads(self.path.read_text())
        except (OSError, ValueError):
            self.earlier = []
        self.started, self.train_started = started, None
        utc = datetime.datetime.fromtimestamp(started, datetime.UTC)
        self.current = {
            "started": utc.isoformat(timespec="seconds"),
            "wall_s": 0.0,
            "train_s": 0.0,
            "gpus": gpus,
            "processes": processes,
            "resumed_from": resumed_from,
            "completed": False,
        }
        attempts = self

        class _CB(TrainerCallback):
            def on_train_begin(self, args, state, control, **kw):
                attempts.train_started = time.time()

            def on_step_end(self, args, state, control, **kw):
                if state.is_world_process_zero:
                    attempts.write()

        self.callback = _CB()
        self.write()

    def write(self, completed: bool = False) -> list[dict]:
        now = time.time()
        self.current.update(wall_s=round(now - self.started, 3), completed=completed)
        if self.train_started is not None:
            self.current["train_s"] = round(now - self.train_started, 3)
        all_ = [*self.earlier, self.current]
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_text(json.dumps(all_, indent=1) + "\n")
        os.replace(tmp, self.path)  # a kill mid-write leaves the previous record, never half of one
        return all_


def used_settings(trainer, keys) -> dict:
    """The values of `keys` as the trainer's arguments hold them (after the config's own normalisation)."""
    out = {}
    for k in keys:
        v = getattr(trainer.args, k)
        out[k] = v.value if isinstance(v, enum.Enum) else v
    return out


def used_lora(model) -> dict | None:
    """LoRA settings of a PEFT model as PEFT applied them (target module names resolved), else None."""
    cfg = getattr(model, "peft_config", {}).get("default")
    if cfg is None:
        return None
    modules = cfg.target_modules
    return {
        "r": cfg.r,
        "alpha": cfg.lora_alpha,
        "dropout": cfg.lora_dropout,
        "target_modules": sorted(modules) if isinstance(modules, (set, list, tuple)) else modules,
    }
