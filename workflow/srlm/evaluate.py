"""Evaluate one model on one benchmark: sample answers, grade them, write the score and per-sample details.

CLI (called by the `evaluate` rule):
    python -m srlm.evaluate --model-dir DIR --bench B.jsonl --params JSON --out B.json
        --details B.details.jsonl --model-name M --chain C --benchmark B

Two engines produce the same outputs (JSON + details JSONL, schemas in .agents/CONTEXT.md):
- "lighteval" (default): lighteval 0.13 runs the generation with its vLLM or transformers backend
  (srlm.lighteval_tasks); the details are read back from its saved details and regraded here.
- "native": batched `model.generate` from transformers, for when lighteval is unwanted or broken.
The statistics (pass@1 with stderr and a bootstrap CI) are computed here from the details, by either engine.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np

DEFAULT_GRADING_TIMEOUT_S = 5.0


@dataclass
class Generation:
    temperature: float = 0.6
    top_p: float = 0.95
    max_new_tokens: int = 32768
    n_samples: int = 1
    seed: int = 0


@dataclass
class Chat:
    chat_template: bool = True
    enable_thinking: bool | None = None
    system_prompt: str = ""


@dataclass
class EvalParams:
    """The rule's `params` JSON; unknown keys are an error so that a typo cannot be silently ignored."""

    backend: str = "transformers"
    dtype: str = "bfloat16"
    max_model_length: int = 32768
    gpu_memory_utilization: float = 0.9
    generation: Generation = field(default_factory=Generation)
    batch_size: int | str = "auto"
    chat: Chat = field(default_factory=Chat)
    not_extractable_threshold: float = 0.5
    bootstrap_resamples: int = 1000
    engine: str = "lighteval"
    grading_timeout_s: float = DEFAULT_GRADING_TIMEOUT_S

    @classmethod
    def from_dict(cls, d: dict) -> EvalParams:
        def build(kind, data, where):
            if not isinstance(data, dict):
                raise ValueError(f"--params: '{where}' must be an object, got {data!r}")
            known = set(kind.__dataclass_fields__)
            unknown = sorted(set(data) - known)
            if unknown:
                raise ValueError(f"--params: unknown key(s) {unknown} in '{where}' (known: {sorted(known)})")
            return data

        d = dict(build(cls, d, "params"))
        if "generation" in d:
            d["generation"] = Generation(**build(Generation, d["generation"], "params.generation"))
        if "chat" in d:
            d["chat"] = Chat(**build(Chat, d["chat"], "params.chat"))
        p = cls(**d)
        if p.backend not in ("transformers", "vllm"):
            raise ValueError(f"--params: backend must be 'transformers' or 'vllm', got {p.backend!r}")
        if p.engine not in ("lighteval", "native"):
            raise ValueError(f"--params: engine must be 'lighteval' or 'native', got {p.engine!r}")
        if p.engine == "native" and p.backend != "transformers":
            raise ValueError("--params: engine 'native' only has the transformers backend")
        if p.dtype not in ("bfloat16", "float16", "float32"):
            raise ValueError(f"--params: dtype must be bfloat16|float16|float32, got {p.dtype!r}")
        if p.batch_size != "auto" and not (isinstance(p.batch_size, int) and p.batch_size >= 1):
            raise ValueError(f"--params: batch_size must be a positive integer or 'auto', got {p.batch_size!r}")
        if p.generation.n_samples < 1:
            raise ValueError("--params: generation.n_samples must be >= 1")
        return p


def read_bench(path: Path) -> list[dict]:
    rows = []
    with open(path) as f:
        for i, line in enumerate(f, 1):
            if not line.strip():
                continue
            row = json.loads(line)
            missing = {"id", "problem", "answer"} - set(row)
            if missing:
                raise ValueError(f"{path}:{i}: row lacks {sorted(missing)}")
            rows.append(row)
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def chat_messages(problem: str, chat: Chat) -> list[dict]:
    msgs = [{"role": "system", "content": chat.system_prompt}] if chat.system_prompt else []
    return msgs + [{"role": "user", "content": problem}]


def build_prompt(tokenizer, problem: str, chat: Chat) -> str:
    """Text the model continues: chat template (system + user turn, generation prompt) or the raw problem."""
    if not chat.chat_template:
        return problem
    kwargs = {} if chat.enable_thinking is None else {"enable_thinking": chat.enable_thinking}
    return tokenizer.apply_chat_template(
        chat_messages(problem, chat), tokenize=False, add_generation_prompt=True, **kwargs
    )


# ---------------------------------------------------------------- statistics
def summarize(details: list[dict], n_samples: int, bootstrap_resamples: int, seed: int) -> dict:
    """pass@1 = mean over samples per problem, then over problems; stderr and a 95% bootstrap CI of that mean
    over problems (numpy percentile bootstrap, seeded)."""
    by_id: dict[str, list[bool]] = {}
    for d in details:
        by_id.setdefault(d["id"], []).append(bool(d["correct"]))
    bad = {k: len(v) for k, v in by_id.items() if len(v) != n_samples}
    if bad:
        raise ValueError(
            f"details: expected {n_samples} samples per problem, got {dict(list(bad.items())[:5])}"
        )
    per_problem = np.array([np.mean(v) for v in by_id.values()], dtype=float)
    n = len(per_problem)
    stderr = float(per_problem.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    rng = np.random.default_rng(seed)
    boot = per_problem[rng.integers(0, n, size=(bootstrap_resamples, n))].mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5]).tolist() if bootstrap_resamples > 0 else (None, None)
    tokens = np.array([d["completion_tokens"] for d in details], dtype=float)
    return {
        "n_problems": n,
        "n_samples": n_samples,
        "pass_at_1": float(per_problem.mean()),
        "stderr": stderr,
        "ci95": [lo, hi],
        "not_extractable_rate": float(np.mean([d["extracted"] is None for d in details])),
        "completion_tokens_mean": float(tokens.mean()),
        "completion_tokens_total": int(tokens.sum()),
    }


def grade_samples(rows: list[dict], samples: list[list[tuple[str, int]]], timeout_s: float) -> list[dict]:
    """Details lines from responses: samples[i][j] = (response, completion_tokens) of problem i, sample j."""
    from srlm.grading import grade

    details = []
    for row, outs in zip(rows, samples, strict=True):
        for j, (text, ntok) in enumerate(outs):
            g = grade(text, str(row["answer"]), timeout_s)
            details.append(
                {
                    "id": str(row["id"]),
                    "sample": j,
                    "response": text,
                    "extracted": g.extracted,
                    "correct": bool(g.correct),
                    "completion_tokens": int(ntok),
                }
            )
    return details


# ---------------------------------------------------------------- native engine (transformers generate)
@contextmanager
def _sklearn_hidden():
    """Import transformers' generation code without scikit-learn, then show it again.

    transformers imports scikit-learn (and with it scipy.stats and pandas) when its generation module loads, for
    one function of assisted generation, which this engine never uses: 1.4 s of the ~8 s a tiny-model evaluation
    takes on a CPU. Hidden only while that module is first imported (sys.modules[name] = None makes
    `find_spec` report it missing); a process that already has either module loaded is left as it is. Checked by
    tests/unit/test_evaluate.py in a fresh interpreter."""
    hide = "sklearn" not in sys.modules and "transformers.generation.utils" not in sys.modules
    if hide:
        sys.modules["sklearn"] = None
    try:
        yield
    finally:
        if hide and sys.modules.get("sklearn", 0) is None:
            del sys.modules["sklearn"]


def count_completion_tokens(seq: list[int], eos_ids: set[int], pad_id: int | None) -> int:
    """Generated tokens up to and including the first EOS (padding after it is not counted)."""
    for k, t in enumerate(seq):
        if t in eos_ids:
            return k + 1
    n = len(seq)
    while n and pad_id is not None and seq[n - 1] == pad_id:
        n -= 1
    return n


def generate_native(
    model_dir: Path, prompts: list[str], p: EvalParams
) -> tuple[list[list[tuple[str, int]]], dict]:
    """Batched sampling, prompts sorted by length (results kept in order), by `srlm.decode` (static KV cache, CUDA
    graphs on a GPU) or, for a model it does not implement, `model.generate`. The model's own generation_config is
    not used (Qwen ships top_k=20, repetition_penalty=1.1): the sampling parameters are exactly those of
    `p.generation`, as with lighteval's vLLM backend."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from srlm import decode

    g = p.generation
    device = "cuda" if torch.cuda.is_available() else "cpu"
    tok = AutoTokenizer.from_pretrained(model_dir, padding_side="left")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    with _sklearn_hidden():  # loading the model class imports transformers' generation code
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=getattr(torch, p.dtype)).to(device).eval()
    eos = (
        model.generation_config.eos_token_id
        if model.generation_config.eos_token_id is not None
        else tok.eos_token_id
    )
    eos_ids = set(eos if isinstance(eos, list) else [eos])
    sampling = decode.Sampling(temperature=g.temperature, top_p=g.top_p, top_k=0)
    engine = "transformers generate" if decode.supported(model) else "srlm.decode"
    enc = [tok(x, add_special_tokens=False)["input_ids"] for x in prompts]
    max_prompt = p.max_model_length - 1
    truncated = sum(len(e) > max_prompt for e in enc)
    enc = [e[-max_prompt:] for e in enc]  # left-truncate like lighteval when a prompt is too long
    order = sorted(range(len(enc)), key=lambda i: -len(enc[i]))
    out: list[list[tuple[str, int]]] = [[] for _ in prompts]
    torch.manual_seed(g.seed)
    for start in range(0, len(order), p.batch_size):
        idx = order[start : start + p.batch_size]
        rows = [enc[i] for i in idx for _ in range(g.n_samples)]
        new = max(1, min(g.max_new_tokens, p.max_model_length - max(map(len, rows))))
        if engine == "srlm.decode":
            gen = decode.generate(model, rows, new, eos_ids=eos_ids, pad_id=tok.pad_token_id, sampling=sampling)
        else:
            gen = _generate_hf(model, tok, rows, new, eos_ids, sampling)
        texts = tok.batch_decode(gen, skip_special_tokens=True)
        for k, i in enumerate(idx):
            for j in range(g.n_samples):
                r = k * g.n_samples + j
                out[i].append((texts[r], len(gen[r])))  # each row already ends at its first EOS
    info = {
        "framework": engine,
        "device": device,
        "truncated_prompts": truncated,
        "prompt_example": tok.decode(enc[0], skip_special_tokens=False),
        "sampling": {"do_sample": True, "top_k": None, "repetition_penalty": 1.0},
    }
    return out, info


def _generate_hf(model, tok, rows: list[list[int]], new: int, eos_ids: set[int], s) -> list[list[int]]:
    """`model.generate` on left-padded rows: each row's tokens up to its first EOS."""
    import torch
    from transformers import GenerationConfig

    cfg = GenerationConfig(
        do_sample=True,
        temperature=s.temperature,
        top_p=s.top_p,
        top_k=0,
        repetition_penalty=1.0,
        max_new_tokens=new,
        eos_token_id=sorted(eos_ids),
        pad_token_id=tok.pad_token_id,
    )
    batch = tok.pad({"input_ids": rows}, return_tensors="pt").to(model.device)
    with torch.no_grad():
        seqs = model.generate(**batch, generation_config=cfg)
    gen = seqs[:, batch["input_ids"].shape[1] :].tolist()
    return [row[: count_completion_tokens(row, eos_ids, None)] for row in gen]


# ---------------------------------------------------------------- main
def auto_batch_size(model_dir: Path, p: EvalParams) -> int:
    """`batch_size: auto`: prompts per generation call from the device and the model's KV-cache size."""
    import torch

    from srlm.train import speed

    # config.json read as it is: AutoConfig would import transformers' generation code (see _sklearn_hidden).
    config = SimpleNamespace(**{"head_dim": None, **json.loads((Path(model_dir) / "config.json").read_text())})
    kv = speed.kv_bytes_per_token(config)
    return speed.eval_batch_size(torch.cuda.is_available(), p.max_model_length, kv, p.generation.n_samples)


def evaluate(
    model_dir: Path, bench: Path, p: EvalParams, benchmark: str = "bench"
) -> tuple[dict, list[dict]]:
    """Run one evaluation; returns (summary without identity fields, details)."""
    from srlm.train.speed import attention_backends

    t0 = time.time()
    rows = read_bench(bench)
    attention_backends()
    if p.batch_size == "auto":
        p = replace(p, batch_size=auto_batch_size(model_dir, p))
    if p.engine == "lighteval":
        import torch

        # lighteval's transformers backend calls torch.set_grad_enabled(False) for the whole process when it
        # is imported (and again per run): give the caller its autograd state back.
        grad = torch.is_grad_enabled()
        try:
            from srlm.lighteval_tasks import run_lighteval

            details, info = run_lighteval(model_dir, bench, rows, p, benchmark)
        finally:
            torch.set_grad_enabled(grad)
    else:
        with _sklearn_hidden():  # the tokenizer classes import transformers' generation code too
            from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(model_dir)
        prompts = [build_prompt(tok, r["problem"], p.chat) for r in rows]
        samples, info = generate_native(model_dir, prompts, p)
        details = grade_samples(rows, samples, p.grading_timeout_s)
    stats = summarize(details, p.generation.n_samples, p.bootstrap_resamples, p.generation.seed)
    stats["not_extractable"] = stats["not_extractable_rate"] > p.not_extractable_threshold
    stats["not_extractable_threshold"] = p.not_extractable_threshold
    if "lighteval" in info:  # lighteval's own score must be what our regrade of its saved details gives
        info["lighteval"]["matches_regrade"] = math.isclose(
            info["lighteval"]["pass_at_1"], stats["pass_at_1"], abs_tol=1e-12
        )
        if not info["lighteval"]["matches_regrade"]:
            print(
                f"WARNING: lighteval pass@1 {info['lighteval']['pass_at_1']} != regraded "
                f"{stats['pass_at_1']} (a grading timeout?)",
                file=sys.stderr,
            )
    summary = {
        "backend": p.backend,
        "engine": p.engine,
        **stats,
        "wall_s": round(time.time() - t0, 3),
        "generation": asdict(p.generation),
        "chat": asdict(p.chat),
        "dtype": p.dtype,
        "max_model_length": p.max_model_length,
        "batch_size": p.batch_size,
        **info,
    }
    return summary, details


def write_outputs(summary: dict, details: list[dict], out: Path, details_path: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    details_path.parent.mkdir(parents=True, exist_ok=True)
    with open(details_path, "w") as f:
        for d in details:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    out.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m srlm.evaluate", description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--bench", type=Path, required=True)
    ap.add_argument("--params", required=True, help="JSON object (see EvalParams)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--details", type=Path, required=True)
    ap.add_argument("--model-name", required=True)
    ap.add_argument("--chain", required=True)
    ap.add_argument("--benchmark", required=True)
    a = ap.parse_args(argv)
    try:
        p = EvalParams.from_dict(json.loads(a.params))
    except json.JSONDecodeError as e:
        ap.error(f"--params is not valid JSON: {e}")
    if not (a.model_dir / "config.json").is_file():
        ap.error(f"--model-dir {a.model_dir}: no config.json (not a save_pretrained folder)")
    summary, details = evaluate(a.model_dir, a.bench, p, a.benchmark)
    summary = {"model": a.model_name, "chain": a.chain, "benchmark": a.benchmark, **summary}
    write_outputs(summary, details, a.out, a.details)
    print(
        f"{a.model_name}/{a.chain}/{a.benchmark}: pass@1={summary['pass_at_1']:.4f} "
        f"(n={summary['n_problems']}x{summary['n_samples']}, {summary['wall_s']:.1f}s)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
