"""What SFT and GRPO jobs share: arguments, checkpoint resume, metrics log, atomic final save, summary.

The TRL trainers do the training; this module only wires them to the workflow's folders:
- checkpoints go to --work-dir (not a Snakemake output, so a requeued job finds them and resumes);
- the final model appears at --out only when training is complete (written beside it, then renamed);
- a LoRA stage is merged into full weights before saving, so the next stage and evaluation load plain weights.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import time
from pathlib import Path

from srlm import health


def parse_args(argv=None, description: str = "") -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--params", required=True, help="JSON: {stage, model, mixed_precision}")
    ap.add_argument("--model", required=True, help="parent model folder")
    ap.add_argument("--data", required=True, help="training JSONL")
    ap.add_argument("--work-dir", required=True, type=Path, help="checkpoints (kept across restarts)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--summary", required=True, type=Path)
    ap.add_argument("--metrics", required=True, type=Path)
    ap.add_argument("--model-name", default="")
    ap.add_argument("--chain", default="")
    args = ap.parse_args(argv)
    args.params = json.loads(args.params)
    return args


def last_complete_checkpoint(work_dir: Path) -> str | None:
    """Newest checkpoint-N that was written to the end (the Trainer writes trainer_state.json last)."""
    if not work_dir.is_dir():
        return None
    done = [p for p in work_dir.glob("checkpoint-*") if (p / "trainer_state.json").is_file()]
    done = [p for p in done if p.name.split("-")[-1].isdigit()]
    return str(max(done, key=lambda p: int(p.name.split("-")[-1]))) if done else None


def common_args(stage: dict, work_dir: Path, mixed_precision: str) -> dict:
    """TrainingArguments shared by SFTConfig and GRPOConfig, from the stage's config slice."""
    return dict(
        output_dir=str(work_dir),
        learning_rate=stage["learning_rate"],
        num_train_epochs=stage["num_train_epochs"],
        max_steps=stage["max_steps"],
        per_device_train_batch_size=stage["per_device_train_batch_size"],
        gradient_accumulation_steps=stage["gradient_accumulation_steps"],
        lr_scheduler_type=stage["lr_scheduler_type"],
        warmup_steps=float(stage["warmup_ratio"]),  # transformers 5: a float < 1 is a ratio
        save_strategy="steps",
        save_steps=stage["save_steps"],
        save_total_limit=2,
        logging_steps=1,
        seed=stage["seed"],
        data_seed=stage["seed"],
        bf16=mixed_precision == "bf16",
        fp16=mixed_precision == "fp16",
        report_to="none",
        disable_tqdm=True,
    )


def lora_config(lora: dict | None):
    if not lora:
        return None
    from peft import LoraConfig

    return LoraConfig(
        r=lora["r"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=lora["target_modules"],
        task_type="CAUSAL_LM",
    )


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
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]


def truncate_metrics(path: Path, step: int) -> None:
    """Drop records after `step` (a resumed run logs those steps again)."""
    if path.exists():
        keep = [ln for ln in path.read_text().splitlines() if ln.strip() and json.loads(ln)["step"] <= step]
        path.write_text("".join(ln + "\n" for ln in keep))


def run(trainer, args, stage: dict, stage_type: str, settings: dict, health_cfg: dict | None = None) -> None:
    """Train (resuming if a checkpoint exists), save the merged model atomically, write metrics and summary."""
    work: Path = args.work_dir
    metrics = MetricsLog(work / "metrics.jsonl")
    trainer.add_callback(metrics.callback)
    resume = last_complete_checkpoint(work)
    if resume:
        truncate_metrics(metrics.path, int(resume.split("-")[-1]))
        print(f"resuming from {resume}", flush=True)
    t0 = time.time()
    trainer.train(resume_from_checkpoint=resume)
    runtime = time.time() - t0
    if not trainer.accelerator.is_main_process:
        return
    model = trainer.model
    if hasattr(model, "merge_and_unload"):  # LoRA: adapters kept beside, merged weights for what follows
        model.save_pretrained(args.out.parent / "adapter")
        model = model.merge_and_unload()
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    trainer.processing_class.save_pretrained(tmp)
    shutil.rmtree(args.out, ignore_errors=True)
    os.replace(tmp, args.out)
    records = metrics.records()
    shutil.copyfile(metrics.path, args.metrics) if metrics.path.exists() else args.metrics.write_text("")
    status, reason = health.assess(records, stage_type, health_cfg or {})
    tokens = max((r["num_tokens"] for r in records if "num_tokens" in r), default=None)
    summary = {
        "model": args.model_name,
        "chain": args.chain,
        "stage": args.chain.split("+")[-1],
        "type": stage_type,
        "status": status,
        "reason": reason,
        "steps": trainer.state.global_step,
        "resumed_from": resume,
        "train_runtime_s": round(runtime, 3),
        "processes": trainer.accelerator.num_processes,
        # Tokens seen by the model on the main process's count (TRL's num_tokens is gathered across processes).
        "num_tokens": tokens,
        "tokens_per_s": round(tokens / runtime, 1) if tokens else None,
        "peak_gpu_memory_gib": _peak_memory(),
        "settings": settings,
    }
    args.summary.write_text(json.dumps(summary, indent=2, default=_jsonable) + "\n")


def _peak_memory() -> float | None:
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2) if torch.cuda.is_available() else None


def _jsonable(x):
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return str(x)
