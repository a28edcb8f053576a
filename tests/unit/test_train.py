"""SFT and GRPO jobs on a tiny model and synthetic data (CPU): resume after a kill, GRPO learning, collapse
flags, LoRA merge, the TRL settings and metrics the summaries record.

Runs call the jobs' main(argv) (the CLI the rules use). A preempted job is a forked child that SIGKILLs itself
inside the Trainer's own checkpoint writer, so it leaves one complete and one half-written checkpoint, the
way a kill at a bad moment does; the restarted job must resume from the complete one and retrace the
uninterrupted run's losses. Learning rates are far above the paper's: the tiny model must move in a few steps.
"""

from __future__ import annotations

import importlib.util
import json
import multiprocessing
import os
import re
import signal
from pathlib import Path

import pytest
import yaml

import torch
from srlm import cost, generation, health, rewards
from srlm.data import gsm8k
from srlm.data.io import read_metrics
from srlm.tables import Inputs
from srlm.tiny import build_tiny, default_corpus
from srlm.train import checkpoints, grpo, sft, speed

from tests.conftest import NO_CLEANING, gsm8k_files

REPO = Path(__file__).resolve().parents[2]

SYS = "Think in <think></think>, answer in <answer></answer>."
CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
# What the tiny runs change in config stages (sizes, steps, learning rates); everything else is config.yaml's.
SFT_TEST = {"max_length": 256, "per_device_train_batch_size": 8, "warmup_ratio": 0.05}
GRPO_TEST = {
    "num_generations": 4,
    "max_completion_length": 32,
    "per_device_train_batch_size": 8,
    "use_vllm": False,
}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """One intra-op thread: faster than two on tiny matrices, identical numerics in every run, safe to fork."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> Path:
    return make_files(tmp_path_factory.mktemp("train"))


def make_files(root: Path) -> Path:
    """Tiny base model, GSM8K-style SFT/RL rows, and a short SFT set (first reasoning line only) for warm-up."""
    build_tiny(root / "base", CONFIG["tiny_model"], default_corpus(SYS))
    data = {"source": "synthetic", "synthetic": {"n_train": 64, "n_test": 8, "seed": 0, "level": "gsm8k"},
            "clean": {**NO_CLEANING, "on_malformed": "error"}}  # fmt: skip
    gsm8k.prepare({"data": data, "system_prompt": SYS, "prompt_training": "r1"}, gsm8k_files(root / "data"))
    with open(root / "data" / "short.jsonl", "w") as f:
        for line in (root / "data" / "sft.jsonl").read_text().splitlines():
            row = json.loads(line)
            first = row["completion"][0]["content"].split("<think>")[1].split("</think>")[0].split("\n")[0]
            row["completion"][0]["content"] = f"<think>{first}</think>\n<answer>\\boxed{{{row['answer']}}}</answer>"
            f.write(json.dumps(row) + "\n")
    return root


def argv(kind: str, stage: dict, model: Path, data: Path, out: Path) -> list[str]:
    params = {"stage": stage, "model": {"eos_token": "<|im_end|>"}, "mixed_precision": "no",
              "compile": CONFIG["launch"]["compile"], "node_gpus": CONFIG["gpus"]["train"]}  # fmt: skip
    return [
        "--params", json.dumps(params), "--model", str(model), "--data", str(data),
        "--work-dir", str(out / "work"), "--out", str(out / "model"), "--summary", str(out / "train_summary.json"),
        "--metrics", str(out / "metrics.jsonl"), "--tensorboard-dir", str(out / "tensorboard"),
        "--model-name", "tiny", "--chain", kind,
    ]  # fmt: skip


def train(kind: str, stage: dict, model: Path, data: Path, out: Path) -> tuple[dict, list[dict]]:
    """Run a job in this process; (summary, metrics records)."""
    (sft if CONFIG["stages"][kind]["type"] == "sft" else grpo).main(argv(kind, stage, model, data, out))
    return json.loads((out / "train_summary.json").read_text()), read_metrics(out / "metrics.jsonl")


def judged(stage: dict, out: Path) -> dict:
    """health.json of a finished run, as the check_health rule computes it from its metrics.jsonl."""
    params = {"health": CONFIG["health"], "rewards": stage.get("rewards")}
    health.main(["--metrics", str(out / "metrics.jsonl"), "--params", json.dumps(params), "--out", str(out / "h.json")])
    return json.loads((out / "h.json").read_text())


def stage_of(kind: str, **over) -> dict:
    base = SFT_TEST if CONFIG["stages"][kind]["type"] == "sft" else GRPO_TEST
    return {**CONFIG["stages"][kind], **base, **over}


def by_step(records: list[dict], key: str = "loss") -> dict[int, float]:
    return {r["step"]: r[key] for r in records if key in r}


@pytest.fixture(scope="module")
def warm(files) -> tuple[Path, dict, list[dict]]:
    """An SFT-warmed model that writes the answer format 57-77% of the time at temperature 1 (seeds 42, 1,
    2; a random model never does, so every GRPO reward ties and the gradient is zero)."""
    stage = stage_of("sft", learning_rate=5e-3, max_steps=96, save_steps=1000)
    out = files / "warm"
    summary, records = train("sft", stage, files / "base", files / "data" / "short.jsonl", out)
    return out / "model", summary, records


# ---------------------------------------------------------------- resume after preemption


def _killed_child(kind: str, args: list[str], kill_at: int) -> None:
    """Forked child: train, and SIGKILL itself while the Trainer writes checkpoint-`kill_at` (weights and
    optimizer written, RNG state and trainer_state.json not yet)."""
    from transformers import Trainer

    def save_rng_then_die(self, output_dir):
        if self.state.global_step == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return save_rng(self, output_dir)

    save_rng = Trainer._save_rng_state
    Trainer._save_rng_state = save_rng_then_die
    (sft if kind == "sft" else grpo).main(args)


def check_resume(kind: str, stage: dict, model: Path, data: Path, root: Path, capsys) -> dict:
    """Uninterrupted run vs a run killed while writing its second checkpoint and restarted."""
    ref_summary, ref = train(kind, stage, model, data, root / "ref")
    assert ref_summary["resumed_from"] is None and ref_summary["steps"] == stage["max_steps"]
    [only] = ref_summary["attempts"]
    assert only["completed"] and only["resumed_from"] is None and only["wall_s"] >= only["train_s"] > 0
    trl_count = max(r["num_tokens"] for r in ref if "num_tokens" in r)  # TRL's own, right when not resumed
    assert ref_summary["num_tokens"] == trl_count > 0
    assert ref_summary["train_loss"] > 0

    out, save = root / "killed", stage["save_steps"]
    child = multiprocessing.get_context("fork").Process(
        target=_killed_child, args=(kind, argv(kind, stage, model, data, out), 2 * save)
    )
    child.start()
    child.join(timeout=300)
    assert child.exitcode == -signal.SIGKILL, f"child ended with {child.exitcode}, not killed"
    work = out / "work"
    assert checkpoints.is_complete(work / f"checkpoint-{save}")
    half = work / f"checkpoint-{2 * save}"
    assert (half / "model.safetensors").is_file() and not checkpoints.is_complete(
        half
    ), "no half-written checkpoint"
    assert not (out / "model").exists() and not (out / "train_summary.json").exists()
    assert checkpoints.last_complete_checkpoint(work) == str(work / f"checkpoint-{save}")

    capsys.readouterr()
    summary, records = train(kind, stage, model, data, out)
    assert f"removing incomplete checkpoint {half}" in capsys.readouterr().out
    assert summary["resumed_from"] == str(work / f"checkpoint-{save}")
    # The summary describes the whole training, as the uninterrupted run's does, not what followed the resume.
    assert summary["steps"] == ref_summary["steps"]
    assert summary["num_tokens"] == ref_summary["num_tokens"]
    assert summary["train_loss"] == pytest.approx(ref_summary["train_loss"], rel=1e-5)
    # Both attempts are recorded: the killed one up to its last finished step, then the one that completed.
    killed, resumed = summary["attempts"]
    assert not killed["completed"] and killed["resumed_from"] is None and killed["train_s"] > 0
    assert resumed["completed"] and resumed["resumed_from"] == summary["resumed_from"]
    assert all(a["wall_s"] >= a["train_s"] and a["processes"] == 1 for a in (killed, resumed))
    assert summary["train_runtime_s"] == pytest.approx(killed["train_s"] + resumed["train_s"], abs=1e-2)
    # The cost table reads this very summary and counts both attempts (a requeued job is not cheaper).
    costs = cost.Costs(Inputs({"train_summary": {"tiny": {kind: str(out / "train_summary.json")}}}))
    job = cost.Job(f"train_{CONFIG['stages'][kind]['type']}", "tiny", kind, None, out / "train_summary.json")
    assert costs.wall_hours(job) == pytest.approx((killed["wall_s"] + resumed["wall_s"]) / 3600)
    gpu_s = sum(a["wall_s"] * a["gpus"] for a in (killed, resumed))
    assert costs.gpu_hours(job) == pytest.approx(gpu_s / 3600)
    assert (out / "model" / "config.json").is_file()
    # Every step logged once; the steps before the checkpoint come from the killed run.
    steps = [r["step"] for r in records if "loss" in r]
    assert steps == list(range(1, stage["max_steps"] + 1))
    # Same batches in the same order, same sampled completions: the resumed losses retrace the reference.
    got, want = by_step(records), by_step(ref)
    for s in range(save + 1, stage["max_steps"] + 1):
        assert got[s] == pytest.approx(want[s], rel=1e-5, abs=1e-7), f"loss at step {s} after resume"
    return {"ref": ref, "resumed": records, "summary": summary, "out": out}


def test_sft_resumes_after_kill(files, capsys):
    # 8 batches an epoch: the checkpoint at step 4 is mid-epoch and the resumed run crosses an epoch boundary.
    stage = stage_of("sft", learning_rate=3e-3, max_steps=12, save_steps=4)
    data = files / "data" / "short.jsonl"
    res = check_resume("sft", stage, files / "base", data, files / "resume-sft", capsys)
    # Run again after it finished (say, killed while writing its summary): it redoes the steps after the last
    # checkpoint before the final one and stops at max_steps, with the same losses.
    summary, records = train("sft", stage, files / "base", data, res["out"])
    assert summary["resumed_from"] == str(res["out"] / "work" / "checkpoint-8")
    assert summary["steps"] == stage["max_steps"] and len(summary["attempts"]) == 3
    assert summary["attempts"][:2] == res["summary"]["attempts"]
    assert summary["num_tokens"] == res["summary"]["num_tokens"]
    assert [r["step"] for r in records if "loss" in r] == list(range(1, stage["max_steps"] + 1))
    assert by_step(records)[12] == pytest.approx(by_step(res["ref"])[12], rel=1e-5)


def test_grpo_resumes_after_kill(files, warm, capsys):
    # use_vllm as in config.yaml: without vLLM installed the job falls back to transformers generation.
    stage = stage_of("rl", learning_rate=1e-3, max_steps=6, save_steps=2,
                     use_vllm=CONFIG["stages"]["rl"]["use_vllm"], vllm_fallback=True)  # fmt: skip
    res = check_resume("rl", stage, warm[0], files / "data" / "rl.jsonl", files / "resume-grpo", capsys)
    got, want = res["resumed"], res["ref"]
    for key in ("rewards/format_reward/mean", "completions/mean_length", "kl"):
        for s in range(stage["save_steps"] + 1, stage["max_steps"] + 1):
            assert by_step(got, key)[s] == pytest.approx(by_step(want, key)[s], abs=1e-3), (key, s)
    assert any(v != 0 for v in by_step(want).values()), "zero losses: nothing was trained"
    settings = res["summary"]["settings"]
    assert settings["vllm_requested"] == stage["use_vllm"]
    assert settings["use_vllm"] == (stage["use_vllm"] and importlib.util.find_spec("vllm") is not None)
    assert settings["generation_engine"] == ("vllm" if settings["use_vllm"] else "srlm.decode")


def test_use_vllm_without_vllm_is_an_error_unless_the_fallback_is_allowed():
    stage = {"use_vllm": True, "vllm_fallback": False}
    if importlib.util.find_spec("vllm") is not None:
        assert generation.vllm_choice(stage) is True
        return
    with pytest.raises(RuntimeError, match="vllm is not installed"):
        generation.vllm_choice(stage)
    assert generation.vllm_choice({**stage, "vllm_fallback": True}) is False
    assert generation.vllm_choice({"use_vllm": False}) is False


def _checkpoints(work: Path, states: dict) -> None:
    for n, state in states.items():
        (work / f"checkpoint-{n}").mkdir(parents=True)
        if state is not None:
            text = state if isinstance(state, str) else json.dumps(state)
            (work / f"checkpoint-{n}" / "trainer_state.json").write_text(text)


def test_resume_point_skips_incomplete_and_final_checkpoints(tmp_path):
    work, metrics = tmp_path / "work", tmp_path / "work" / "metrics.jsonl"
    ident = {"params": {"stage": {"learning_rate": 1e-3}}, "processes": 1}
    checkpoints.prepare_resume(work, metrics, ident, main_process=True)  # a fresh job records what it is
    _checkpoints(work, {
        2: {"global_step": 2, "max_steps": 10},
        4: {"global_step": 4, "max_steps": 10},
        6: None,  # killed before trainer_state.json
        8: '{"global_step": 8, "log_hi',  # killed while writing it
        9: {"global_step": 8, "max_steps": 10},  # not this checkpoint's state
    })  # fmt: skip
    (work / "checkpoint-x").mkdir()
    lines = [json.dumps({"step": s, "loss": 1.0}) for s in range(1, 9)]
    metrics.write_text("\n".join(lines) + '\n{"step": 9, "lo')
    assert checkpoints.prepare_resume(work, metrics, ident, main_process=True) == str(work / "checkpoint-4")
    assert sorted(p.name for p in work.glob("checkpoint-*")) == [
        "checkpoint-2",
        "checkpoint-4",
        "checkpoint-x",
    ]
    assert [r["step"] for r in read_metrics(metrics)] == [1, 2, 3, 4]
    # A final checkpoint is passed over (the Trainer would run a step past max_steps from it).
    _checkpoints(work, {10: {"global_step": 10, "max_steps": 10}})
    assert checkpoints.last_complete_checkpoint(work) == str(work / "checkpoint-4")
    # Another job's leftovers (here: another learning rate) are never resumed.
    other = {"params": {"stage": {"learning_rate": 2e-3}}, "processes": 1}
    assert checkpoints.prepare_resume(work, metrics, other, main_process=True) is None
    assert not list(work.glob("checkpoint-*")) and read_metrics(metrics) == []
    assert json.loads((work / "job.json").read_text()) == other


# ---------------------------------------------------------------- GRPO: learning, settings, metrics, health


def format_rate(model: Path, data: Path, stage: dict) -> float:
    """Share of completions in the paper's format: 4 samples of each RL prompt (256) at the stage's
    temperature and length, sampling seed 0, through the project's generation interface."""
    from transformers import AutoTokenizer

    prompts = [json.loads(line)["prompt"] for line in data.read_text().splitlines()]
    rendered = AutoTokenizer.from_pretrained(model).apply_chat_template(
        prompts, add_generation_prompt=True, tokenize=True, return_dict=True
    )
    ids = rendered["input_ids"]
    engine = generation.load("srlm.decode", model, dtype="float32", max_model_length=1024, batch_size=64,
                             gpu_memory_utilization=0.9, seed=0, compile_decode=False)
    sampling = generation.Sampling(stage["temperature"], 1.0, 0, stage["max_completion_length"], n=4, seed=0)
    ok = [rewards.format_ok(c.text) for outs in engine.generate(ids, sampling) for c in outs]
    return sum(ok) / len(ok)


# 8 generations a prompt: a group where every sample ties on format (zero advantage) is rare (4 left a quarter
# of the groups without signal and the effect drowned in the noise, issue 20).
GRPO_RUN = {
    "learning_rate": 1e-3, "warmup_ratio": 0.25, "max_steps": 64, "save_steps": 1000,
    "per_device_train_batch_size": 16, "max_completion_length": 48, "num_generations": 8,
}  # fmt: skip


@pytest.fixture(scope="module")
def grpo_run(files, warm):
    stage = stage_of("rl", **GRPO_RUN)
    summary, records = train("rl", stage, warm[0], files / "data" / "rl.jsonl", files / "grpo")
    return stage, summary, records


def test_grpo_raises_format_reward(files, warm, grpo_run):
    # Judged on 256 fixed-seed samples of the warm and of the trained model, not on the per-step logs (16
    # samples a step swing by ±0.5: with 4 generations the logged rise was -0.02 -> 0.14 or -0.22 -> -0.13 by
    # seed, issue 20). Failures of the format after / before, measured 2026-12-01 over seeds 42 and 1-9 (warm-up
    # and GRPO), torch threads 1: 64 GRPO steps x0.25 0.21 0.36 0.44 0.32 0.23 0.35 0.20 0.49 0.26 (x0.31 ± 0.10);
    # at 32 steps the spread was too wide for a bar (x0.42-1.12, seeds 5 and 8 at x0.99 and x1.12). Sampling
    # noise of one rate (same model, sampling seeds 0-5): warm 0.56-0.64, trained 0.78-0.82, so no learning
    # reads as x1.0 ± 0.1. The bar, failures x0.75 or fewer, is 4 sd above the runs and 2.5 sd below no
    # learning. Measured by perf/grpo_variation.py (removed: it imported this module; git show 6ee31b4:perf/...).
    stage, _, _ = grpo_run
    data = files / "data" / "rl.jsonl"
    before, after = format_rate(warm[0], data, stage), format_rate(files / "grpo" / "model", data, stage)
    assert 0.1 < before < 0.9, f"the warm model should get the format right sometimes, not always: {before}"
    assert 1 - after <= 0.75 * (1 - before), f"format rate {before:.3f} -> {after:.3f}"


def test_rollout_prompts_render_as_trl_renders_each(files):
    """grpo.prompt_token_ids renders each distinct prompt once (the sampler repeats each num_generations times)
    and gives every row the ids TRL's own rendering gives it, chat prompts and plain text alike."""
    from types import SimpleNamespace

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(files / "base")
    rows = [json.loads(x) for x in (files / "data" / "rl.jsonl").read_text().splitlines()[:3]]
    chats = [rows[i]["prompt"] for i in (0, 0, 1, 2, 1, 0)]
    rendered = []

    class Spy:  # the tokenizer, counting the prompts it renders
        def __getattr__(self, name):
            return getattr(tok, name)

        def apply_chat_template(self, conversations, **kw):
            rendered.extend(conversations)
            return tok.apply_chat_template(conversations, **kw)

        def __call__(self, texts, **kw):
            rendered.extend(texts)
            return tok(texts, **kw)

    trainer = SimpleNamespace(processing_class=Spy(), chat_template=None, chat_template_kwargs={})
    ids = grpo.prompt_token_ids(chats, trainer)
    want = [tok.apply_chat_template(c, add_generation_prompt=True, tokenize=True, return_dict=True)["input_ids"]
            for c in chats]  # fmt: skip
    assert ids == want and len(rendered) == 3 and ids[0] is not ids[1]
    assert len({tuple(x) for x in ids}) == 3
    rendered.clear()
    texts = ["a b", "c", "a b"]
    assert grpo.prompt_token_ids(texts, trainer) == [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    assert rendered == ["a b", "c"]


def assert_objective_pinned(used, stage: dict) -> None:
    """`used` (trainer arguments, as an object or a summary's settings) holds every objective setting the stage
    config gives and every one eq. (3) fixes (srlm.train.grpo.EQ3)."""
    get = used.get if isinstance(used, dict) else lambda k: getattr(used, k)
    want = {**{k: stage[k] for k in grpo.CONFIG_KEYS}, **grpo.EQ3}
    assert {k: get(k) for k in want} == want
    # The settings that differ from TRL 1.16's defaults are among them.
    assert want["use_bias_correction_kl"] is False and want["vllm_importance_sampling_correction"] is False


def test_grpo_summary_pins_trl_settings(grpo_run):
    """srlm.decode rollout path: the settings read back from the trainer that ran are the config's."""
    stage, summary, _ = grpo_run
    assert summary["type"] == "grpo" and summary["steps"] == stage["max_steps"]
    s = summary["settings"]
    assert_objective_pinned(s, stage)
    for key in ("use_vllm", "learning_rate", "lr_scheduler_type"):
        assert s[key] == stage[key], key
    assert s["rewards"] == stage["rewards"] and s["lora"] is None
    assert s["generation_engine"] == "srlm.decode"  # no vLLM here: rollouts through the static-cache sampler


def assert_same_run(records: list[dict], base: list[dict], steps: int = 3) -> None:
    """Two GRPO runs of `steps` steps: the same rollouts (rewards), and loss, grad_norm and kl step by step within
    1e-4 (float32: other kernels round differently)."""
    assert by_step(records, "reward") == by_step(base, "reward")
    for key in ("loss", "grad_norm", "kl"):
        got, want = by_step(records, key), by_step(base, key)
        assert len(got) == steps and got == pytest.approx(want, rel=1e-4, abs=1e-7), key


def test_compiled_layers_train_grpo_as_eager(files, warm, monkeypatch):
    """config launch.compile (GPU jobs), forced on here: the decoder layers of the policy and of the reference
    model compiled give the eager run's rollouts, rewards and losses, step by step. The rollouts are asked to
    compile srlm.decode's step too (which a CPU declines: its steps run the compiled layers eagerly)."""
    from srlm.generation import hf

    stage = stage_of("rl", max_steps=3, save_steps=1000)
    data = files / "data" / "rl.jsonl"
    eager, eager_records = train("rl", stage, warm[0], data, files / "grpo-eager")
    asked, init = [], hf.TransformersEngine.__init__

    def spy(self, *args, compile_decode=False, **kwargs):
        asked.append(compile_decode)
        init(self, *args, compile_decode=compile_decode, **kwargs)

    monkeypatch.setattr(hf.TransformersEngine, "__init__", spy)
    monkeypatch.setattr(speed, "compiles", lambda has_cuda, enabled=True: enabled)
    # The reference's layers too (a GPU job compiles them from micro-batches of 32 rows; these have 8).
    monkeypatch.setattr(speed, "GRPO_COMPILE_REF_MIN_MICRO", 1)
    compiled, records = train("rl", stage, warm[0], data, files / "grpo-compiled")
    layers = CONFIG["tiny_model"]["num_hidden_layers"]
    assert eager["settings"]["compiled_layers"] == 0
    assert compiled["settings"]["compiled_layers"] == 2 * layers  # policy and reference (beta > 0)
    assert asked and set(asked) == {True}
    assert_same_run(records, eager_records)


def test_maskless_attention_trains_grpo_as_sdpa(files, warm, monkeypatch):
    """rl stage key maskless_attention: policy and reference through srlm.speed.packed's shifted attention give
    the SDPA run's rollouts, rewards and losses, step by step (the rows it moved were padded); the summary says
    which ran."""
    from srlm.speed import packed

    stage = stage_of("rl", max_steps=3, save_steps=1000, maskless_attention=False)
    data = files / "data" / "rl.jsonl"
    base, base_records = train("rl", stage, warm[0], data, files / "grpo-sdpa")
    padded, shifted_attention = [], packed.shifted_attention

    def spy(module, query, key, value, attention_mask, **kwargs):
        if attention_mask is not None and attention_mask.dim() == 2:
            padded.append(not bool(attention_mask.all()))
        return shifted_attention(module, query, key, value, attention_mask, **kwargs)

    monkeypatch.setattr(packed, "shifted_attention", spy)
    shifted, records = train("rl", dict(stage, maskless_attention=True), warm[0], data, files / "grpo-maskless")
    assert any(padded)
    assert (base["settings"]["maskless_attention"], shifted["settings"]["maskless_attention"]) == (False, True)
    assert_same_run(records, base_records)


def test_vllm_path_config_pins_the_objective(tmp_path):
    """vLLM rollout path: GRPOTrainer cannot be built without vLLM (it starts the engine), but GRPOConfig can.
    The config a cluster job (8 processes on GPUs) builds holds the same objective settings as the tested path;
    the trainer reads them from it (TRL 1.16 grpo_trainer: args.use_bias_correction_kl in the loss,
    args.vllm_importance_sampling_* in __init__)."""
    from trl import GRPOConfig

    stage = CONFIG["stages"]["rl"]
    assert stage["use_vllm"], "config.yaml's rl stage is expected to ask for vLLM"
    kwargs = grpo.config_kwargs(  # "no" mixed precision: GRPOConfig refuses bf16 without a GPU
        stage, tmp_path, "no", use_vllm=True, n_processes=8, has_cuda=True, node_gpus=8
    )
    args = GRPOConfig(**kwargs)
    assert args.use_vllm is True and args.vllm_mode == stage["vllm_mode"]
    assert_objective_pinned(args, stage)
    # TRL 1.16's own defaults would change the objective: the pins are not no-ops.
    default = GRPOConfig(output_dir=str(tmp_path), bf16=False, use_vllm=True)
    assert default.use_bias_correction_kl is True and default.vllm_importance_sampling_correction is True


def test_grpo_metrics_log(grpo_run):
    stage, _, records = grpo_run
    keys = ["loss", "grad_norm", "learning_rate", "completions/mean_length", "kl", "clip_ratio/region_mean"]
    for name in ("format_reward", "accuracy_reward"):
        keys += [f"rewards/{name}/mean", f"rewards/{name}/std"]
    steps = [r for r in records if "loss" in r]
    assert [r["step"] for r in steps] == list(range(1, stage["max_steps"] + 1))
    for r in steps:
        missing = [k for k in keys if k not in r]
        assert not missing, f"step {r['step']} lacks {missing}"
    assert max(r["kl"] for r in steps) > 0, "the policy never left the reference model"


def test_sft_summary_records_the_loss_settings(warm):
    """The SFT settings read back from the trainer: stage values and the loss pins of srlm.train.sft."""
    s, stage = warm[1]["settings"], stage_of("sft", learning_rate=5e-3, max_steps=96, save_steps=1000)
    for key in ("learning_rate", "num_train_epochs", "lr_scheduler_type", "seed"):
        assert s[key] == stage[key], key
    assert s["warmup_steps"] == pytest.approx(stage["warmup_ratio"])
    assert (s["loss_type"], s["completion_only_loss"], s["packing"]) == ("nll", True, False)
    assert s["average_tokens_across_devices"] is True and s["truncation_mode"] == "keep_start"


def test_healthy_runs_are_ok(files, warm, grpo_run):
    assert "status" not in warm[1]  # the training job writes what ran; check_health judges it
    assert judged(stage_of("sft"), files / "warm") == {"model": "", "chain": "", "status": "ok", "reason": None}
    # The tiny model's accuracy reward stays at its minimum: never learned, which is not a collapse.
    verdict = judged(grpo_run[0], files / "grpo")
    assert verdict["status"] == "ok", verdict["reason"]


def test_absurd_learning_rate_collapses_grpo(files, warm):
    stage = stage_of("rl", learning_rate=0.1, max_steps=8, save_steps=1000)
    train("rl", stage, warm[0], files / "data" / "rl.jsonl", files / "collapse-grpo")
    verdict = judged(stage, files / "collapse-grpo")
    assert verdict["status"] == "collapsed"
    assert verdict["reason"].startswith("format_reward fell from"), verdict["reason"]


@pytest.mark.parametrize("padding_free, reason", [(False, "non-finite"), (True, "gradient norm 0")])
def test_absurd_learning_rate_collapses_sft(files, padding_free, reason):
    # Padded batches: the gradient turns NaN at step 3 (loss 1.1e7). Padding-free, the same losses to step 3 but a
    # finite gradient, then the loss stays flat with zero gradients (health's SFT rule (4)).
    stage = stage_of("sft", learning_rate=1e3, max_steps=8, save_steps=1000, padding_free=padding_free)
    out = files / f"collapse-sft-{padding_free}"
    train("sft", stage, files / "base", files / "data" / "short.jsonl", out)
    verdict = judged(stage, out)
    assert verdict["status"] == "collapsed"
    assert verdict["reason"].startswith(reason), verdict["reason"]


# ---------------------------------------------------------------- LoRA


def test_lora_merged_and_adapter_generate_the_same(files, warm):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    stage = stage_of("sft-lora", learning_rate=1e-2, max_steps=6, save_steps=1000)
    out = files / "lora"
    summary, _ = train("sft-lora", stage, warm[0], files / "data" / "short.jsonl", out)
    assert summary["settings"]["lora"]["r"] == stage["lora"]["r"]
    assert summary["settings"]["lora"]["alpha"] == stage["lora"]["alpha"]
    tok = AutoTokenizer.from_pretrained(out / "model", padding_side="left")
    rows = [json.loads(line) for line in (files / "data" / "rl.jsonl").read_text().splitlines()[:6]]
    enc = tok.apply_chat_template([r["prompt"] for r in rows], add_generation_prompt=True, padding=True,
                                  return_tensors="pt", return_dict=True)  # fmt: skip

    def greedy(model):
        with torch.no_grad():
            ids = model.eval().generate(**enc, max_new_tokens=24, do_sample=False)
        return tok.batch_decode(ids[:, enc["input_ids"].shape[1] :])

    merged = greedy(AutoModelForCausalLM.from_pretrained(out / "model"))
    adapter = greedy(
        PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(warm[0]), out / "work" / "adapter")
    )
    parent = greedy(AutoModelForCausalLM.from_pretrained(warm[0]))
    assert merged == adapter
    assert merged != parent, "the adapter changed nothing: the comparison proves nothing"


# ---------------------------------------------------------------- what the job log shows


def test_job_log_has_header_progress_and_tensorboard_events(files, capsys, monkeypatch):
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", "")  # restored after the test; the job sets its own
    out = files / "logged"
    stage = stage_of("sft", max_steps=3, save_steps=1000)
    args = argv("sft", stage, files / "base", files / "data" / "sft.jsonl", out)
    monkeypatch.setenv("SRLM_REPORT_TO", "tensorboard")  # what the workflow exports to every job
    sft.main(args)
    log = capsys.readouterr().out
    assert re.search(r"^\[srlm\] python=.* transformers=\d", log, re.MULTILINE)
    assert re.search(r"^\[srlm\] host=\S+ devices=.* processes=1$", log, re.MULTILINE)
    clock = r"\d+:\d\d:\d\d"
    assert re.search(rf"^step 1/3 \(33%\) \| elapsed {clock} \| ETA {clock} \| loss ", log, re.MULTILINE)
    assert re.search(rf"^step 3/3 \(100%\) \| elapsed {clock} \| ETA 0:00:00", log, re.MULTILINE)
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
