"""What SFT and GRPO jobs share: arguments, checkpoint resume, metrics log, atomic final save, summary.

The TRL trainers do the training; this module only wires them to the workflow's folders:
- checkpoints go to --work-dir (not a Snakemake output, so a requeued job finds them and resumes from the newest
  complete one; the Trainer restores weights, optimizer, scheduler, RNG states and skips the batches already seen);
- the final model appears at --out only when training is complete (written beside it, then renamed);
- a LoRA stage is merged into full weights before saving, so the next stage and evaluation load plain weights;
- every start of the job is an attempt: its timing is kept in --work-dir/attempts.json (rewritten after each
  optimizer step, so a kill loses only the time since the last step) and the summary lists all of them, so a
  requeued job's cost counts every attempt; steps, tokens and loss describe the whole training, not the part
  since the last resume.
"""

from __future__ import annotations

import argparse
import datetime
import enum
import json
import os
import shutil
import time
from pathlib import Path

from srlm.data.io import read_metrics
from srlm.train import progress, speed


def parse_args(argv=None, description: str = "") -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--params", required=True, help="JSON: {stage, model, mixed_precision, node_gpus}")
    ap.add_argument("--model", required=True, help="parent model folder")
    ap.add_argument("--data", required=True, help="training JSONL")
    ap.add_argument("--work-dir", required=True, type=Path, help="checkpoints (kept across restarts)")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--summary", required=True, type=Path)
    ap.add_argument("--metrics", required=True, type=Path)
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
    args.params = json.loads(args.params)
    return args


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
        # Tokens counted in the Trainer state, which checkpoints restore: TRL's SFT num_tokens restarts at 0
        # on resume. GRPO counts prompt + completion tokens in that state itself (a second count would add).
        include_num_input_tokens_seen="non_padding" if stage["type"] == "sft" else "no",
    )


def world_size() -> int:
    """Processes accelerate started for this job (1 outside a launcher)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def compiles(params: dict) -> bool:
    """Whether this job compiles its decoder layers (speed.compiles): config launch.compile, which the job's params
    hold only when it is off."""
    return speed.compiles(has_cuda(), params.get("compile", True))


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


def truncate_metrics(path: Path, step: int) -> None:
    """Keep the records up to `step` (a resumed run logs the later steps again)."""
    if path.exists():
        keep = [r for r in read_metrics(path) if r.get("step", 0) <= step]
        path.write_text("".join(json.dumps(r) + "\n" for r in keep))


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


def run(trainer, args, stage_type: str, settings: dict) -> None:
    """Train (resuming from the newest complete checkpoint), save the merged model atomically, write metrics
    and summary (what ran; whether the run collapsed is judged by the check_health rule, srlm.health).
    `settings`: extra entries for the summary beside the trainer arguments actually used."""
    work: Path = args.work_dir
    metrics = MetricsLog(work / "metrics.jsonl")
    trainer.add_callback(metrics.callback)
    acc = trainer.accelerator
    tensorboard = args.summary.parent / "tensorboard"
    progress.attach(trainer, [r for r in args.report_to.split(",") if r], tensorboard, acc.num_processes)
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
    if (
        lora is not None
    ):  # LoRA (never under DeepSpeed): adapters kept beside, merged weights for what follows
        model.save_pretrained(args.out.parent / "adapter")
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
