"""Disk: delete the resumable checkpoints (work/) of training runs that finished.

Each training job keeps its checkpoints in its work folder (srlm.layout `work_dir`) so that a requeued job resumes;
once the run's final model is written they only take space (full optimizer states: several times the model).
With config `launch.keep_checkpoints: false` the workflow calls this when a run of Snakemake succeeds. It is
not a job parameter, so switching it never reruns a training.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from snakemake.io import glob_wildcards

from srlm.layout import Layout


def remove_checkpoints(layout: Layout) -> list[Path]:
    """Delete the work folder of every run whose final model and train_summary.json exist; the folders removed.
    (Snakemake deletes a job's outputs before it runs, so a run being retrained has no model here.)"""
    found = glob_wildcards(layout.work_dir("{model,[^/]+}", "{chain,[^/]+}"))
    removed = []
    for model, chain in sorted(set(zip(found.model, found.chain))):
        work = Path(layout.work_dir(model, chain))
        done = Path(layout.model_dir(model, chain)).is_dir() and Path(layout.train_summary(model, chain)).is_file()
        if done and work.is_dir():
            shutil.rmtree(work)
            removed.append(work)
    return removed
