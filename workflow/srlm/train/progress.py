"""What a person watching a training job's log sees: a header naming the software, host, devices and scheduler
job, then a progress line per logging step (step/total, elapsed, ETA, loss). Optionally the Trainer's own
reporting integrations (TensorBoard, ...) from the config key `launch.report_to`.

The Trainer's tqdm bar is off (it redraws one line with carriage returns, unreadable in a job log file); this
callback writes plain lines instead, at most one per `every_s` seconds, plus the first and the last step.
"""

from __future__ import annotations

import os
import platform
import socket
import sys
import time
from datetime import timedelta
from importlib import metadata
from pathlib import Path

from transformers import TrainerCallback

LIBRARIES = ("torch", "transformers", "trl", "peft", "accelerate", "deepspeed", "vllm")
# Scheduler variables worth a line: SLURM's job, array task, node list and requeue count.
SCHEDULER_VARS = ("SLURM_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURM_JOB_NODELIST", "SLURM_RESTART_COUNT")


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def devices() -> str:
    import torch

    if torch.cuda.is_available():
        names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        return f"{len(names)} × " + ", ".join(sorted(set(names)))
    return f"CPU ({os.cpu_count()} cores)"


def header(processes: int = 1) -> str:
    """Lines naming what ran where: library versions, host, devices, process count, scheduler job."""
    libs = " ".join(f"{n}={_version(n)}" for n in LIBRARIES)
    job = " ".join(f"{v}={os.environ[v]}" for v in SCHEDULER_VARS if v in os.environ) or "none"
    return "\n".join(
        [
            f"[srlm] python={platform.python_version()} {libs}",
            f"[srlm] host={socket.gethostname()} devices={devices()} processes={processes}",
            f"[srlm] scheduler: {job}",
        ]
    )


def _clock(seconds: float) -> str:
    return str(timedelta(seconds=round(seconds)))


class Progress(TrainerCallback):
    """Prints `step 12/300 (4%) | elapsed 0:01:10 | ETA 0:28:00 | loss 0.81` on the main process. The rate
    counts only the steps of this attempt, so a resumed run's ETA is not fooled by the steps it skipped."""

    def __init__(self, every_s: float = 10.0, out=None, clock=time.monotonic):
        self.every_s, self.out, self.clock = every_s, out, clock
        self.t0 = self.start_step = self.last = None

    def on_train_begin(self, args, state, control, **kw):
        self.t0, self.start_step, self.last = self.clock(), state.global_step, None

    def line(self, step: int, total: int, logs: dict | None) -> str:
        elapsed = self.clock() - self.t0
        done = step - self.start_step
        eta = _clock((total - step) * elapsed / done) if done > 0 and total else "?"
        pct = f" ({100 * step // total}%)" if total else ""
        loss = f" | loss {logs['loss']:.4g}" if logs and isinstance(logs.get("loss"), (int, float)) else ""
        return f"step {step}/{total or '?'}{pct} | elapsed {_clock(elapsed)} | ETA {eta}{loss}"

    def on_log(self, args, state, control, logs=None, **kw):
        if not state.is_world_process_zero or self.t0 is None:
            return
        now, step, total = self.clock(), state.global_step, state.max_steps
        if self.last is None or step >= total or now - self.last >= self.every_s:
            self.last = now
            print(self.line(step, total, logs), file=self.out or sys.stdout, flush=True)


def attach(trainer, report_to: list[str], log_dir: Path, processes: int) -> None:
    """Print the header (main process), add the progress line and the `report_to` integrations. TensorBoard
    writes to `log_dir` (the rule's, beside the job's log: srlm.layout; it outlives the checkpoints in work/)."""
    from transformers.integrations import get_reporting_integration_callbacks

    if trainer.accelerator.is_main_process:
        print(header(processes), flush=True)
    trainer.add_callback(Progress())
    if report_to:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(log_dir)  # read by transformers' TensorBoardCallback
        for callback in get_reporting_integration_callbacks(report_to):
            trainer.add_callback(callback)
