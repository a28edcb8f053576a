"""A training job (SFT or GRPO): its command line, and its run: resume, train, atomic final save, summary.

The TRL trainers do the training; this module only wires them to the workflow's folders:
- checkpoints go to --work-dir (not a Snakemake output, so a requeued job finds them and resumes from the newest
  complete one; the Trainer restores weights, optimizer, scheduler, RNG states and skips the batches already seen);
- the final model appears at --out only when training is complete (written beside it, then renamed);
- a LoRA stage is merged into full weights before saving, so the next stage and evaluation load plain weights
  (its adapter stays in --work-dir/adapter, which is not an output either);
- every start of the job is an attempt: its timing is kept in --work-dir/attempts.json (rewritten after each
  optimizer step, so a kill loses only the time since the last step) and the summary lists all of them, so a
  requeued job's cost counts every attempt; steps, tokens and loss describe the whole training, not the part
  since the last resume.

Its parts: srlm.train.arguments (the Trainer arguments), srlm.train.checkpoints (resume), srlm.train.records
(metrics, attempts, settings used), srlm.train.progress (what the job log shows).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path

from srlm.config import job_params
from srlm.train import progress
from srlm.train.arguments import has_cuda
from srlm.train.checkpoints import job_identity, prepare_resume
from srlm.train.records import Attempts, MetricsLog, used_lora


def parse_args(argv=None, description: str = "") -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--params", required=True, help="JSON: {stage, model, mixed_precision, node_gpus}")
    ap.add_argument("--model", required=True, help="parent model folder")
    ap.add_argument("--data", required=True, help="training JSONL")
    ap.add_argument("--work-dir", required=True, type=Path, help="checkpoints (kept across restarts)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--summary", required=True, type=Path)
    ap.add_argument("--metrics", required=True, type=Path)
    ap.add_argument(
        "--tensorboard-dir",
        required=True,
        type=Path,
        help="where TensorBoard writes its events when --report-to names it (srlm.layout: beside the job's log)",
    )
    ap.add_argument("--model-name", default="")
    ap.add_argument("--chain", default="")
    ap.add_argument(
        "--report-to",
        default=os.environ.get("SRLM_REPORT_TO", ""),
        help="comma-separated transformers integrations (default: $SRLM_REPORT_TO, config launch.report_to, which "
        "the workflow exports to every job); not in --params: loggers do not change the weights, so switching "
        "them must not retrain",
    )
    args = ap.parse_args(argv)
    args.started = time.time()  # the attempt starts here: loading the model is part of its GPU time
    args.params = job_params(args.params, "train")
    return args


def run(trainer, args, stage_type: str, settings: dict) -> None:
    """Train (resuming from the newest complete checkpoint), save the merged model atomically, write metrics
    and summary (what ran; whether the run collapsed is judged by the check_health rule, srlm.health).
    `settings`: extra entries for the summary beside the trainer arguments actually used."""
    work: Path = args.work_dir
    metrics = MetricsLog(work / "metrics.jsonl")
    trainer.add_callback(metrics.callback)
    acc = trainer.accelerator
    progress.attach(trainer, [r for r in args.report_to.split(",") if r], args.tensorboard_dir, acc.num_processes)
    main = acc.is_main_process
    resume = prepare_resume(
        work, metrics.path, job_identity(args, acc.num_processes), main, acc.wait_for_everyone
    )
    if resume:
        print(f"resuming from {resume}", flush=True)
    if main:
        gpus = acc.num_processes if has_cuda() else 0
        attempts = Attempts(work, args.started, acc.num_processes, gpus, resume)
        trainer.add_callback(attempts.callback)
    trainer.train(resume_from_checkpoint=resume)
    model = trainer.model
    lora = used_lora(model)
    tmp = args.out.with_name(args.out.name + ".tmp")
    if main:
        shutil.rmtree(tmp, ignore_errors=True)
    if lora is None:
        trainer.save_model(str(tmp))  # every process: ZeRO-3 gathers the weights; the main process writes
    if not main:
        return
    # LoRA (never under DeepSpeed): the adapter kept in the work dir, merged weights for what follows.
    if lora is not None:
        model.save_pretrained(work / "adapter")
        model.merge_and_unload().save_pretrained(tmp)
        trainer.processing_class.save_pretrained(tmp)
    shutil.rmtree(args.out, ignore_errors=True)
    os.replace(tmp, args.out)
    records = metrics.records()
    shutil.copyfile(metrics.path, args.metrics) if metrics.path.exists() else args.metrics.write_text("")
    # Restored from checkpoints with the step count, so a resumed job counts the steps before its resume too.
    tokens = trainer.state.num_input_tokens_seen or None
    losses = [r["loss"] for r in records if "loss" in r and "step" in r]
    history = attempts.write(completed=True)
    runtime = sum(a["train_s"] for a in history)
    summary = {
        "model": args.model_name,
        "chain": args.chain,
        "stage": args.chain.split("+")[-1],
        "type": stage_type,
        "steps": trainer.state.global_step,
        # Mean of the logged per-step losses over the whole training (metrics.jsonl keeps the steps logged
        # before a resume), i.e. what an uninterrupted run's train_loss is.
        "train_loss": sum(losses) / len(losses) if losses else None,
        "resumed_from": resume,
        # Time inside trainer.train(), summed over attempts (steps redone after a resume count twice).
        "train_runtime_s": round(runtime, 3),
        "processes": trainer.accelerator.num_processes,
        # Tokens of all processes (SFT: non-padding input tokens; GRPO: prompt + completion tokens).
        "num_tokens": tokens,
        "tokens_per_s": round(tokens / runtime, 1) if tokens and runtime else None,
        "peak_gpu_memory_gib": _peak_memory(),
        "settings": {**settings, "lora": lora},
        # Every start of this job, oldest first (timing for the cost of requeued jobs: wall_s × gpus each).
        "attempts": history,
    }
    args.summary.write_text(json.dumps(summary, indent=2, default=str) + "\n")


def _peak_memory() -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None
