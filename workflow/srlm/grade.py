"""The grading job of an evaluation (CPU): verdict per sample, then pass@1 with its noise, from a completions file.

    python -m srlm.grade --completions C.jsonl --bench B.jsonl --params JSON --out B.json --details B.details.jsonl

Grading happens here only, the same way whatever engine sampled: the protocol recorded in the completions file
decides the grader (srlm.prompts). pass@1 = mean over samples per problem, then over problems; its stderr over
problems and its 95% interval (srlm.interval: Wilson, on the effective count where several samples share a
problem); the share of samples with no extractable answer; `graded_by`, what graded it, for the tables' notes.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from srlm import completions, grading, interval
from srlm.data.benchmarks import FORMATS
from srlm.data.io import DataError, cli, read_jsonl, write_json, write_jsonl


def gold_as(gold_format: str) -> str:
    """How the paper's harness reads a benchmark's gold: "latex" or "expr" (srlm.data.benchmarks.Format)."""
    return FORMATS[gold_format].gold_as if gold_format in FORMATS else "latex"


@dataclass(frozen=True)
class Params:
    """Rule params: config `evaluation.grading` plus the benchmark's gold format."""

    timeout_s: float
    gold_format: str


def grader(protocol: str, gold_format: str, timeout_s: float):
    """response, gold -> srlm.grading.Grade, for the protocol the samples were generated under."""
    if protocol == "paper":
        as_ = gold_as(gold_format)
        return lambda text, gold: grading.grade_extractive(text, gold, as_, timeout_s)
    return lambda text, gold: grading.grade(text, gold, timeout_s)


def graded_by(protocol: str) -> str:
    """How samples of this protocol are graded, in words, with the grader's version (the tables cite it)."""
    mv = f"math-verify {importlib.metadata.version('math-verify')}"
    if protocol == "paper":
        return (
            f"{mv} with lighteval's extractive-match settings as the paper's reference harness configures "
            "them (Open-RS [7]: open-r1's MATH query template, no system prompt; the prediction's first "
            "expression or boxed LaTeX answer against the gold read as LaTeX, as an expression for AMC23 and "
            "GSM8K; precision 5), called directly, not through lighteval"
        )
    return f"{mv} on the answer between <answer> and </answer> (R1 system prompt; srlm.grading)"


def summarize(details: list[dict], n_samples: int) -> dict:
    by_id: dict[str, list[bool]] = {}
    for d in details:
        by_id.setdefault(d["id"], []).append(bool(d["correct"]))
    bad = {k: len(v) for k, v in by_id.items() if len(v) != n_samples}
    if bad:
        raise DataError(f"expected {n_samples} samples per problem, got {dict(list(bad.items())[:5])}")
    per_problem = np.array([np.mean(v) for v in by_id.values()], dtype=float)
    n = len(per_problem)
    stderr = float(per_problem.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    tokens = np.array([d["completion_tokens"] for d in details], dtype=float)
    return {
        "n_problems": n,
        "n_samples": n_samples,
        "pass_at_1": float(per_problem.mean()),
        "stderr": stderr,
        "ci95": list(interval.pass_at_1(per_problem.tolist(), n_samples)),
        "not_extractable_rate": float(np.mean([d["extracted"] is None for d in details])),
        "stopped_rate": float(np.mean([d["finish_reason"] == "stop" for d in details])),
        "completion_tokens_mean": float(tokens.mean()),
        "completion_tokens_total": int(tokens.sum()),
    }


def grade(completions_path: Path, bench: Path, p: Params) -> tuple[dict, list[dict]]:
    settings, rows = completions.read(completions_path)
    golds = {str(r["id"]): str(r["answer"]) for r in read_jsonl(bench)}
    ids = [r["id"] for r in rows]
    if sorted(ids) != sorted(golds):
        missing, extra = sorted(set(golds) - set(ids))[:5], sorted(set(ids) - set(golds))[:5]
        raise DataError(f"{completions_path} does not answer {bench}: missing ids {missing}, unknown ids {extra}")
    judge = grader(settings["protocol"], p.gold_format, p.timeout_s)
    details = []
    for r in rows:
        for j, s in enumerate(r["samples"]):
            g = judge(s["text"], golds[r["id"]])
            details.append({
                "id": r["id"], "sample": j, "extracted": g.extracted, "correct": g.correct,
                "completion_tokens": s["tokens"], "finish_reason": s["finish_reason"],
            })  # fmt: skip
    n = settings["sampling"]["n"]
    summary = {
        "protocol": settings["protocol"],
        "graded_by": graded_by(settings["protocol"]),
        **summarize(details, n),
        "engine": settings["engine_used"],
        "generation": settings["sampling"],
        "timing": settings["timing"],
    }
    return summary, details


@cli
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m srlm.grade", description=__doc__.splitlines()[0])
    ap.add_argument("--completions", type=Path, required=True)
    ap.add_argument("--bench", type=Path, required=True)
    ap.add_argument("--params", required=True, help="JSON object (see Params)")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--details", type=Path, required=True)
    ap.add_argument("--label", default="", help="model/chain/benchmark, recorded in the output")
    a = ap.parse_args(argv)
    p = Params(**json.loads(a.params))
    summary, details = grade(a.completions, a.bench, p)
    if a.label:
        model, chain, benchmark = a.label.split("/")
        summary = {"model": model, "chain": chain, "benchmark": benchmark, **summary}
    write_jsonl(a.details, details)
    write_json(a.out, summary)
    print(f"{a.label}: pass@1={summary['pass_at_1']:.4f} (n={summary['n_problems']}x{summary['n_samples']})",
          file=sys.stderr)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
