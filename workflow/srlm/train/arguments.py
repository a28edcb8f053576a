"""The Trainer arguments of a job: what SFTConfig and GRPOConfig share, from the stage's config slice, the LoRA
config, and the facts about the machine they depend on (processes, CUDA, compiled layers)."""

from __future__ import annotations

import os
from pathlib import Path

from srlm.train import speed


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
    """Whether this job compiles its decoder layers (speed.compiles): config launch.compile."""
    return speed.compiles(has_cuda(), params["compile"])


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
