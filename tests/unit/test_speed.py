"""srlm.train.speed: the speed settings keep the paper's global batch, and leave SFT's losses unchanged.

The loss check trains a tiny model for a few steps twice on CPU, with the plain settings (padded batches of 8) and
with the speed settings that apply on CPU (padding-free rows attended by srlm.speed.packed, the batch split
into micro-batches of 4 × 2 accumulation steps), and compares the loss of every optimizer step.
"""

from __future__ import annotations

import json

import pytest
import yaml

from srlm import generation
from srlm.train import arguments, sft, speed
from tests.conftest import REPO

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
NODE_GPUS = CONFIG["gpus"]["train"]  # the rules pass config gpus.train as node_gpus


@pytest.mark.parametrize("stage_key", ["sft", "kd", "sft-lora", "rl"])
@pytest.mark.parametrize("n_processes", [1, 2, 4, 8])
def test_gpu_args_keep_paper_global_batch(stage_key, n_processes):
    stage = CONFIG["stages"][stage_key]
    if stage["type"] == "grpo":
        args = speed.grpo_speed_args(stage, n_processes, True, node_gpus=NODE_GPUS)
    else:
        args = speed.sft_speed_args(stage, n_processes, True, node_gpus=NODE_GPUS, compiled=False)
    glob = args["per_device_train_batch_size"] * args["gradient_accumulation_steps"] * n_processes
    assert glob == speed.paper_global_batch(stage) == stage["per_device_train_batch_size"] * 8
    assert args["gradient_checkpointing"] is False
    if stage["type"] == "grpo":  # one on-policy generation per optimizer step
        assert args["generation_batch_size"] == glob
        assert args["generation_batch_size"] % stage["num_generations"] == 0


def test_cpu_keeps_stage_batch_and_split():
    stage = dict(CONFIG["stages"]["sft"], per_device_train_batch_size=4, gradient_accumulation_steps=2)
    args = speed.sft_speed_args(stage, 1, False, node_gpus=NODE_GPUS, compiled=False)
    assert args["per_device_train_batch_size"] * args["gradient_accumulation_steps"] == 8
    assert speed.split_batch(64, 1, 32) == (32, 2)
    assert speed.split_batch(24, 1, 16) == (12, 2)
    with pytest.raises(ValueError, match="not divisible by 3 processes"):
        speed.split_batch(64, 3, 32)


def test_padding_free_is_the_stages_switch():
    stage = CONFIG["stages"]["sft"]
    assert stage["padding_free"] is True  # measured faster on a GPU, the same losses (docs/performance.md)
    for has_cuda in (False, True):
        args = speed.sft_speed_args(stage, 1, has_cuda, node_gpus=NODE_GPUS, compiled=False)
        assert args["padding_free"] is True and args["max_length"] is None  # srlm.train.sft truncates instead
        # One GPU runs the node's 64 rows as one micro-batch padding-free, as 32 × 2 padded (a CPU: the stage's 8).
        split = (64, 1) if has_cuda else (8, 1)
        assert (args["per_device_train_batch_size"], args["gradient_accumulation_steps"]) == split
        # Off: a job's params leave the key out (srlm.config.without_defaults) and its loader puts it back false.
        args = speed.sft_speed_args(dict(stage, padding_free=False), 1, has_cuda, node_gpus=NODE_GPUS, compiled=False)
        assert "padding_free" not in args and "max_length" not in args  # the config's max_length stays
        split = (32, 2) if has_cuda else (8, 1)
        assert (args["per_device_train_batch_size"], args["gradient_accumulation_steps"]) == split


def test_eval_batch_bounded_by_kv_memory():
    kv = 2 * 24 * 2 * 64 * 2  # Qwen2.5-0.5B: 12 KiB a token
    long = generation.eval_batch_size(True, 32768, kv)
    assert long * 32768 * kv <= generation.EVAL_KV_BUDGET < (long + 1) * 32768 * kv
    assert generation.eval_batch_size(True, 32768, kv, n_samples=4) == long // 4  # rows = prompts × samples
    assert generation.eval_batch_size(True, 512, kv) == generation.EVAL_MAX_BATCH
    assert generation.eval_batch_size(True, 512, kv, n_samples=1000) == 1
    assert generation.eval_batch_size(False, 32768, kv) == 64


def test_compile_switch_and_grpo_micro_batches(monkeypatch):
    assert speed.compiles(True, True) and not speed.compiles(False, True) and not speed.compiles(True, False)
    stage = CONFIG["stages"]["sft"]
    monkeypatch.setattr(speed, "has_liger", lambda: True)  # as on the GPU image
    # Compiled layers keep only liger's fused loss (Dynamo cannot trace its RMSNorm); eager ones all its kernels.
    compiled = speed.sft_speed_args(stage, 1, True, node_gpus=NODE_GPUS, compiled=True)
    assert compiled["use_liger_kernel"] and compiled["liger_kernel_config"] == speed.COMPILED_LIGER
    assert "liger_kernel_config" not in speed.sft_speed_args(stage, 1, True, node_gpus=NODE_GPUS, compiled=False)
    rl = CONFIG["stages"]["rl"]
    split = {n: speed.grpo_speed_args(dict(rl, max_completion_length=n), 1, True, node_gpus=NODE_GPUS)
             for n in (256, 1024, 2048)}  # fmt: skip
    got = {n: (a["per_device_train_batch_size"], a["gradient_accumulation_steps"]) for n, a in split.items()}
    # Micro-batches within GRPO_MICRO_TOKENS completion tokens, never below GRPO_MAX_MICRO rows.
    assert got == {256: (32, 4), 1024: (16, 8), 2048: (16, 8)}


def _sft_losses(model_dir, data_path, out_dir, extra: dict, compiled: bool = False, lora=None) -> list[float]:
    import torch
    from datasets import load_dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    args = dict(
        output_dir=str(out_dir), max_steps=4, learning_rate=1e-3, lr_scheduler_type="constant", logging_steps=1,
        save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True, bf16=False, seed=0, data_seed=0,
        per_device_train_batch_size=8, gradient_accumulation_steps=1, max_length=1024,
        completion_only_loss=True, eos_token="<|im_end|>", gradient_checkpointing=True,
    )
    args.update(extra)
    data = load_dataset("json", data_files=str(data_path), split="train")
    trainer = sft.make_trainer(model, args, 1024, compiled=compiled, train_dataset=data, processing_class=tok,
                               peft_config=arguments.lora_config(lora))  # fmt: skip
    assert trainer.compiled_layers == (model.config.num_hidden_layers if compiled else 0)
    # Padding-free rows attend through srlm.speed.packed (proven on this CPU's libraries), padded ones through SDPA.
    assert trainer.packed_attention == bool(extra.get("padding_free"))
    trainer.train()
    return [r["loss"] for r in trainer.state.log_history if "loss" in r]


def test_speed_args_keep_sft_losses(tmp_path):
    from srlm.data import synthetic
    from srlm.data.gsm8k import cot_completion
    from srlm.tiny import build_tiny, default_corpus

    system = CONFIG["prompt"]["system"]
    model_dir = build_tiny(tmp_path / "model", CONFIG["tiny_model"], default_corpus(system, n=100), instruct=True)
    rows = synthetic.gsm8k_rows(32, 0)
    data = tmp_path / "sft.jsonl"
    data.write_text("".join(
        json.dumps({
            "prompt": [{"role": "system", "content": system}, {"role": "user", "content": r["question"]}],
            "completion": [{"role": "assistant", "content": cot_completion(r["answer"])}],
        }) + "\n"
        for r in rows
    ))
    stage = dict(CONFIG["stages"]["sft"], per_device_train_batch_size=8, gradient_accumulation_steps=1,
                 max_length=1024, padding_free=True)
    fast = speed.sft_speed_args(stage, 1, False, node_gpus=NODE_GPUS, compiled=False)
    assert fast["padding_free"] and fast["gradient_checkpointing"] is False
    micro, accum = speed.split_batch(8, 1, 4)  # exercise accumulation too: 4 rows × 2 steps
    fast.update(per_device_train_batch_size=micro, gradient_accumulation_steps=accum)

    plain = _sft_losses(model_dir, data, tmp_path / "plain", {})
    quick = _sft_losses(model_dir, data, tmp_path / "fast", fast)
    assert len(plain) == len(quick) == 4
    assert plain[0] > plain[-1]  # it trains: the comparison is not between two flat lines
    assert quick == pytest.approx(plain, rel=1e-4), (plain, quick)  # a wrong batch is off by ~1e-2
    # The decoder layers compiled (config launch.compile; GPU jobs only, forced here): the same losses, and the
    # compiler did build graphs (Dynamo's own counter: nothing public says so).
    import torch._dynamo

    torch._dynamo.utils.counters.clear()
    built = _sft_losses(model_dir, data, tmp_path / "compiled", fast, compiled=True)
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0
    assert built == pytest.approx(plain, rel=1e-4), (plain, built)
    # LoRA stages too (PEFT's layers inside the compiled ones; no LoRA dropout, so that the runs can be equal).
    lora = dict(CONFIG["stages"]["sft-lora"]["lora"], dropout=0.0)
    adapters = _sft_losses(model_dir, data, tmp_path / "lora", fast, lora=lora)
    assert _sft_losses(model_dir, data, tmp_path / "lora-c", fast, compiled=True, lora=lora) == pytest.approx(
        adapters, rel=1e-4
    )
