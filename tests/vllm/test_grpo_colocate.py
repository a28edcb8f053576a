"""TRL 1.16 GRPO with use_vllm=True, vllm_mode="colocate" on vLLM's CPU build: the project's trainer class
(GRPOTrainer as srlm.train.grpo builds it) with rollouts from a vLLM engine in the training process, and TRL's own weight sync
(VLLMGeneration.sync_weights, which loads each parameter into the engine's model) reaching the engine.

One engine start. Server mode cannot sync weights on a CPU (TRL raises NotImplementedError: its weight transfer
is vLLM's NCCL engine), docs/vllm.md. Nor can colocate mode on processors with AVX512-BF16, where vLLM's CPU build
drops the linear weights it packs for oneDNN (srlm.generation.vllm.cpu_weight_sync_blocker): there these tests
check that TRL's sync fails as that says and that the job refuses, or falls back when allowed, before starting.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from srlm import generation
from srlm.generation.vllm import cpu_weight_sync_blocker
from srlm.tiny import build_tiny, default_corpus
from srlm.train import grpo

from tests.vllm.test_engine import CONFIG, SYS


# Why TRL's colocated sync cannot work on this processor, or None (srlm.generation.vllm).
BLOCKED = cpu_weight_sync_blocker()


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    root = tmp_path_factory.mktemp("grpo-vllm")
    folder = build_tiny(root / "tiny", CONFIG["tiny_model"], default_corpus(SYS))
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": f"What is {i} + {i}?"}]} for i in range(8)])

    def length_reward(completions, **kw):  # any reward that differs within a group gives a gradient
        return [float(len(c[0]["content"]) % 3) for c in completions]

    args = GRPOConfig(
        output_dir=str(root / "work"), per_device_train_batch_size=4, num_generations=4, max_completion_length=8,
        max_steps=2, learning_rate=1e-2, beta=0.0, loss_type="dapo", use_cpu=True, report_to=[], logging_steps=1,
        use_vllm=True, vllm_mode="colocate", vllm_gpu_memory_utilization=0.1, vllm_max_model_length=256,
        save_strategy="no",
    )  # fmt: skip
    trainer = GRPOTrainer(model=model, args=args, train_dataset=data, processing_class=tok,
                          reward_funcs=[length_reward])  # fmt: skip
    if BLOCKED:  # TRL's first sync (before the first rollout) finds the packed layers without their weights
        with pytest.raises(AttributeError, match="weight_loader"):
            trainer.train()
        return trainer, before
    trainer.train()
    return trainer, before


def engine_model(trainer):
    # The object TRL's colocate sync itself writes into (vllm_generation.py, sync_weights): vLLM has no public
    # getter for the in-process model's tensors.
    return trainer.vllm_generation.llm.llm_engine.model_executor.driver_worker.model_runner.model


def test_grpo_colocate_trains_with_vllm_rollouts(trained):
    trainer, before = trained
    assert generation.rollout_engine(trainer.model, trainer.args) == "vllm"
    if BLOCKED:  # the fixture saw TRL's sync fail, before the first rollout: no step was taken
        assert trainer.state.global_step == 0
        return
    assert trainer.state.global_step == 2
    logged = [r for r in trainer.state.log_history if "completions/mean_length" in r]
    assert len(logged) == 2 and all(0 < r["completions/mean_length"] <= 8 for r in logged)
    moved = float((trainer.model.model.embed_tokens.weight - before["model.embed_tokens.weight"]).abs().max())
    assert moved > 1e-4, "no weight changed: nothing was trained"


def test_trl_weight_sync_reaches_the_engine(trained):
    trainer, before = trained
    if BLOCKED:  # why it cannot: the engine's linear layers hold no weight any more (embeddings keep theirs)
        layer = engine_model(trainer).model.layers[0].self_attn.qkv_proj
        assert layer.weight.numel() == 0 and not hasattr(layer.weight, "weight_loader")
        return
    ours = trainer.model.model.embed_tokens.weight.detach()
    trainer.vllm_generation.sync_weights()  # what TRL runs before each rollout once the weights moved
    theirs = dict(engine_model(trainer).named_parameters())["model.embed_tokens.weight"].detach()
    theirs = theirs[: ours.shape[0]]  # vLLM pads the vocabulary rows (516 -> 576)
    # TRL builds the engine without a dtype: vLLM's CPU backend runs this float32 model in bfloat16, and the
    # sync casts the trained float32 weights to it.
    assert torch.equal(theirs, ours.to(theirs.dtype))
    assert not torch.equal(theirs, before["model.embed_tokens.weight"].to(theirs.dtype))


def test_the_grpo_job_runs_colocated_vllm(tmp_path):
    """The job the train_grpo rule runs (python -m srlm.train.grpo, in its own process as under the rule: one
    vLLM engine per process), config.yaml's rl stage with use_vllm: true."""
    from srlm.data import gsm8k

    from tests.conftest import NO_CLEANING, gsm8k_files
    from tests.unit.test_train import GRPO_TEST, argv

    build_tiny(tmp_path / "base", CONFIG["tiny_model"], default_corpus(SYS))
    data = {"source": "synthetic", "synthetic": {"n_train": 16, "n_test": 4, "seed": 0, "level": "gsm8k"},
            "clean": {**NO_CLEANING, "on_malformed": "error"}}  # fmt: skip
    gsm8k.prepare({"data": data, "system_prompt": SYS, "prompt_training": "r1"}, gsm8k_files(tmp_path / "data"))
    stage = {**CONFIG["stages"]["rl"], **GRPO_TEST, "use_vllm": True, "vllm_fallback": False, "max_steps": 1,
             "save_steps": 1, "max_completion_length": 8}  # fmt: skip
    args = argv("rl", stage, tmp_path / "base", tmp_path / "data" / "rl.jsonl", tmp_path / "out")
    # Without the rendezvous variables TRL set in this process for the module's engine (its port is taken).
    env = {k: v for k, v in os.environ.items()
           if k not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "LOCAL_RANK", "WORLD_SIZE")}  # fmt: skip
    job = [sys.executable, "-m", "srlm.train.grpo"]
    if BLOCKED:  # refused before any engine starts, with the reason; allowed to fall back, it trains
        run = subprocess.run([*job, *args], timeout=1800, env=env, capture_output=True, text=True)
        assert run.returncode != 0 and BLOCKED in run.stderr, run.stderr[-3000:]
        args = argv("rl", {**stage, "vllm_fallback": True}, tmp_path / "base", tmp_path / "data" / "rl.jsonl",
                    tmp_path / "out")  # fmt: skip
    subprocess.run([*job, *args], check=True, timeout=1800, env=env)
    settings = json.loads((tmp_path / "out" / "train_summary.json").read_text())["settings"]
    engine = "srlm.decode" if BLOCKED else "vllm"
    assert settings["use_vllm"] is (not BLOCKED) and settings["generation_engine"] == engine
