"""Checkpoint resume of a training job: which checkpoint in --work-dir is complete, whether the work dir belongs to
this job, and the metrics records to drop when a job resumes. --work-dir is not a Snakemake output, so a
requeued job finds its checkpoints and resumes from the newest complete one (the Trainer restores weights,
optimizer, scheduler, RNG states and skips the batches already seen).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from srlm.data.io import read_metrics


def _step(checkpoint: Path) -> int | None:
    n = checkpoint.name.removeprefix("checkpoint-")
    return int(n) if n.isdigit() else None


def _state(checkpoint: Path) -> dict | None:
    """trainer_state.json of a complete checkpoint, else None. The Trainer writes it after weights, optimizer,
    scheduler and RNG states, so a kill mid-write leaves it absent, truncated or naming another step."""
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return None
    return state if state.get("global_step") == _step(checkpoint) else None


def is_complete(checkpoint: Path) -> bool:
    return _state(checkpoint) is not None


def last_complete_checkpoint(work_dir: Path) -> str | None:
    """Newest complete checkpoint-N in work_dir to resume from, or None.

    A final checkpoint (global_step == max_steps) is passed over: the Trainer runs one step before it checks
    for the end, so resuming there would train one step too many (transformers 5.17, max_steps runs); the
    previous checkpoint recomputes the same last steps."""
    done = []
    for p in Path(work_dir).glob("checkpoint-*"):
        state = _state(p) if _step(p) is not None else None
        if state and state["global_step"] < state.get("max_steps", float("inf")):
            done.append(p)
    return str(max(done, key=_step)) if done else None


def job_identity(args, processes: int) -> dict:
    """What a checkpoint is only valid for: the job's parameters, the process
    count (ZeRO shards optimizer state per process), and the parent model and data files as found on disk."""

    def files(path: Path) -> list:
        paths = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        return [[str(p), p.stat().st_size, p.stat().st_mtime_ns] for p in paths]

    return {
        "params": args.params,
        "processes": processes,
        "model": files(Path(args.model)),
        "data": files(Path(args.data)),
    }


def prepare_resume(
    work_dir: Path, metrics_path: Path, identity: dict, main_process: bool, wait=None
) -> str | None:
    """Checkpoint to resume from. The main process first empties a work dir left by another job (changed
    config, parent model or data: its checkpoints must not be resumed), deletes half-written checkpoints (so
    checkpoint rotation never counts them) and drops metrics logged after the resume point (those steps run
    again); `wait` (a barrier) then lets every process pick the same checkpoint."""
    work_dir, record = Path(work_dir), Path(work_dir) / "job.json"
    if main_process:
        ident = json.dumps(identity, sort_keys=True)
        left = work_dir.is_dir() and any(work_dir.iterdir())
        if left and (not record.exists() or record.read_text() != ident):
            print(f"{work_dir} holds another job's checkpoints: starting over", flush=True)
            shutil.rmtree(work_dir)
        for p in work_dir.glob("checkpoint-*"):
            if _step(p) is not None and not is_complete(p):
                print(f"removing incomplete checkpoint {p}", flush=True)
                shutil.rmtree(p, ignore_errors=True)
        work_dir.mkdir(parents=True, exist_ok=True)
        record.write_text(ident)
    if wait:
        wait()
    resume = last_complete_checkpoint(work_dir)
    if main_process:
        truncate_metrics(metrics_path, _step(Path(resume)) if resume else 0)
    return resume


def truncate_metrics(path: Path, step: int) -> None:
    """Keep the records up to `step` (a resumed run logs the later steps again)."""
    if path.exists():
        keep = [r for r in read_metrics(path) if r.get("step", 0) <= step]
        path.write_text("".join(json.dumps(r) + "\n" for r in keep))
