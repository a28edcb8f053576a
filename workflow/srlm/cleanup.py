"""Disk: delete the resumable checkpoints (work/) of training runs that finished.

Each training job keeps its checkpoints in results/models/<model>/<chain>/work/ so that a requeued job resumes;
once the run's final model is written they only take space (full optimizer states: several times the model).
With config `launch.keep_checkpoints: false` the workflow calls this when a run of Snakemake succeeds. It is
not a job parameter, so switching it never reruns a training.
"""

from __future__ import annotations

import shutil
from pathlib import Path


def remove_checkpoints(models_dir: Path) -> list[Path]:
    """Delete work/ of every run whose final model and train_summary.json exist; the folders removed.
    (Snakemake deletes a job's outputs before it runs, so a run being retrained has no model/ here.)"""
    removed = []
    for work in sorted(Path(models_dir).glob("*/*/work")):
        run = work.parent
        if (run / "model").is_dir() and (run / "train_summary.json").is_file():
            shutil.rmtree(work)
            removed.append(work)
    return removed
