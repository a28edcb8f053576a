"""The generation job of an evaluation (GPU): sample answers for one benchmark, write them raw, judge nothing.

    python -m srlm.completions --model-dir DIR --bench B.jsonl --params JSON --out C.jsonl [--bench … --params …
        --out …]…

Several --bench/--params/--out triples (config evaluation.generate_per: chain) sample each benchmark in turn
from one engine, loaded once; their params may differ only in `generation`. Each file's timing is its own
sampling time plus an equal share of the engine's start-up, so the files' times add up to the job's.

The completions file (JSON lines) is the only thing grading reads: line 1 is {"settings": …} (engine, sampling,
protocol, chat settings, dtype, lengths, device, timing), then one line per problem:
{"id", "prompt": the exact text the model continued, "samples": [{"text", "tokens", "finish_reason"}, …]}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from srlm import prompts
from srlm.data.io import DataError, cli, read_jsonl, read_jsonl_numbered, write_jsonl


@dataclass(frozen=True)
class Chat:
    chat_template: bool
    enable_thinking: bool | None
    # none under the paper protocol: the rule leaves it out there, so that prompt.system does not rerun it
    system_prompt: str = ""
    # models.<m>.eos_token: a sample ends there too (the base model's own EOS never closes a ChatML turn)
    end_of_turn: str | None = None


@dataclass(frozen=True)
class Params:
    """The rule's params (config `evaluation`, the benchmark's generation overrides, the model's chat settings).
    Validated by the config schema before planning; unknown keys are still refused here (a typo in a hand call)."""

    protocol: str
    engine: str
    dtype: str
    max_model_length: int
    gpu_memory_utilization: float
    batch_size: int | str
    generation: dict
    compile_decode: bool
    chat: Chat

    @classmethod
    def from_json(cls, text: str) -> Params:
        d = json.loads(text)
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"--params: unknown key(s) {unknown}")
        return cls(**{**d, "chat": Chat(**d["chat"])})

    def sampling(self):
        from srlm.generation import Sampling

        g = self.generation
        return Sampling(
            temperature=g["temperature"], top_p=g["top_p"], top_k=0,  # evaluation has no top-k (no such config key)
            max_new_tokens=g["max_new_tokens"], n=g["n_samples"], seed=g["seed"],
        )  # fmt: skip


def write(path: Path, settings: dict, rows: list[dict]) -> None:
    write_jsonl(path, [{"settings": settings}, *rows])


def read(path: Path) -> tuple[dict, list[dict]]:
    """(settings, rows) of a completions file; DataError naming file:line for what grading could not use."""
    lines = read_jsonl_numbered(path)
    if not lines or not isinstance(lines[0][1].get("settings"), dict):
        raise DataError(f"{path}:1: not a completions file (first line must be {{'settings': ...}})")
    settings = lines[0][1]["settings"]
    for key in ("protocol", "sampling", "engine_used", "timing"):
        if key not in settings:
            raise DataError(f"{path}:1: settings lack {key!r}")
    for lineno, row in lines[1:]:
        samples = row.get("samples")
        if "id" not in row or not isinstance(samples, list) or not all(
            isinstance(s, dict) and isinstance(s.get("text"), str) and {"tokens", "finish_reason"} <= s.keys()
            for s in samples
        ):
            raise DataError(f"{path}:{lineno}: not a completions row (id, samples of text/tokens/finish_reason)")
    return settings, [row for _, row in lines[1:]]


def load_engine(model_dir: Path, p: Params):
    from srlm import generation

    return generation.load(
        p.engine, model_dir, dtype=p.dtype, max_model_length=p.max_model_length, batch_size=p.batch_size,
        gpu_memory_utilization=p.gpu_memory_utilization, seed=p.generation["seed"], compile_decode=p.compile_decode,
        end_of_turn=p.chat.end_of_turn,
    )  # fmt: skip


def _problems(bench: Path) -> list[dict]:
    rows = read_jsonl(bench)
    if not rows:
        raise ValueError(f"{bench}: no problems")
    return rows


def sample(engine, rows: list[dict], p: Params, start_s: float = 0.0) -> tuple[dict, list[dict]]:
    """(settings, rows) of a completions file: every problem of `rows` sampled by `engine` under `p`; the
    timing counts `start_s` seconds of start-up on top of the sampling."""
    import torch

    t0 = time.time() - start_s
    tok = engine.tokenizer
    texts = [
        prompts.render(
            tok, prompts.messages(r["problem"], p.protocol, p.chat.system_prompt),
            chat_template=p.chat.chat_template, enable_thinking=p.chat.enable_thinking,
        )
        for r in rows
    ]  # fmt: skip
    ids = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    sampling = p.sampling()
    outs = engine.generate(ids, sampling)
    out_rows = [
        {
            "id": str(r["id"]),
            "prompt": text,
            "samples": [{"text": c.text, "tokens": c.tokens, "finish_reason": c.finish_reason} for c in samples],
        }
        for r, text, samples in zip(rows, texts, outs, strict=True)
    ]
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    settings = {
        **asdict(p),
        "sampling": asdict(sampling),
        "engine_used": engine.name,
        "truncated_prompts": sum(len(i) > p.max_model_length - 1 for i in ids),
        "device": "cuda" if gpus else "cpu",
        "timing": {"wall_s": round(time.time() - t0, 3), "gpus": gpus},
    }
    return settings, out_rows


@cli
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m srlm.completions", description=__doc__.splitlines()[0])
    ap.add_argument("--model-dir", type=Path, required=True)
    ap.add_argument("--bench", type=Path, required=True, action="append", help="repeatable, with --params, --out")
    ap.add_argument("--params", required=True, action="append", help="JSON object (see Params)")
    ap.add_argument("--out", type=Path, required=True, action="append")
    a = ap.parse_args(argv)
    if not len(a.bench) == len(a.params) == len(a.out):
        ap.error(f"{len(a.bench)} --bench, {len(a.params)} --params, {len(a.out)} --out: give one of each per file")
    params = [Params.from_json(x) for x in a.params]
    engine_keys = [replace(x, generation={}) for x in params]
    if any(k != engine_keys[0] for k in engine_keys):
        ap.error("--params: one job samples from one engine; the params may differ only in `generation`")
    prompts.check(params[0].protocol)
    if not (a.model_dir / "config.json").is_file():
        ap.error(f"--model-dir {a.model_dir}: no config.json (not a save_pretrained folder)")
    t0 = time.time()
    problems = [_problems(b) for b in a.bench]
    engine = load_engine(a.model_dir, params[0])
    start = (time.time() - t0) / len(a.bench)
    for rows, p, out in zip(problems, params, a.out, strict=True):
        settings, done = sample(engine, rows, p, start_s=start)
        write(out, settings, done)
        n = sum(len(r["samples"]) for r in done)
        print(f"{out}: {len(done)} prompts, {n} samples, {settings['engine_used']}, "
              f"{settings['timing']['wall_s']:.1f}s", file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sys.exit(main())
