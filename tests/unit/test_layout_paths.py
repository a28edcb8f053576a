"""srlm.layout is the one owner of the results folder's names: no other module of the package composes a path
under it. An AST scan of every string (f-string parts included) outside layout.py for the names layout owns;
a hit is either moved into layout.py or listed below with the reason it is not a results path."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "workflow" / "srlm"
# Names of results folders and files (srlm.layout): a string equal to one of them, or holding one with a "/".
NAMES = {"models", "model", "work", "adapter", "tensorboard", "data", "gsm8k", "kd", "bench", "completions", "evals",
         "logs", "benchmarks", "figures", "cost", "train_summary.json", "metrics.jsonl", "health.json",
         "kd_report.json", "cleaning.json", "prep_report.json", "train.jsonl", "test.jsonl", "sft.jsonl", "rl.jsonl",
         "config.html"}  # fmt: skip
FRAGMENTS = (".partial.jsonl", "*/*", "_vs_paper")
# (module, string): why it is not a results path layout must own.
ALLOWED = {
    # inside --work-dir, which the rule hands the job (layout.work_dir); the job names what it keeps there
    ("train/job.py", "adapter"): "a LoRA stage's adapter, in the job's work dir",
    ("train/job.py", "metrics.jsonl"): "the running metrics log in the job's work dir (copied to --metrics)",
    # the names GSM8K's own files have in the hub's and a local copy's layout (data.gsm8k.local_dir), not ours
    ("data/gsm8k.py", "gsm8k"): "the hub's dataset id and row ids (gsm8k-train-N)",
    ("data/benchmarks.py", "gsm8k"): "a benchmark's format key",
    ("data/synthetic.py", "gsm8k"): "the synthetic generator's level and ids",
    ("data/generate.py", "chat/completions"): "the OpenAI-compatible endpoint's URL path",
    ("figures.py", "completions/mean_length"): "a GRPO metric's name",
    ("tables.py", "_vs_paper.md."): "a caption's sentence naming the comparison page",
    (
        "lighteval_tasks.py",
        "test.jsonl",
    ): "lighteval's dataset folder under .cache/, not results (no job runs it)",
}


def hits(source: str) -> set[str]:
    """Strings of `source` that name a results path: an operand of `/` or of with_name() that is one of NAMES, a
    path-like string (a "/", no space) with one of NAMES as a part, or any string holding one of FRAGMENTS."""
    out = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
            operands = [node.left, node.right]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "with_name":
            operands = node.args
        else:
            operands = []
        out |= {o.value for o in operands if isinstance(o, ast.Constant) and o.value in NAMES}
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            s = node.value
            if (
                " " not in s
                and "\n" not in s
                and ("/" in s and set(s.split("/")) & NAMES or any(f in s for f in FRAGMENTS))
            ):
                out.add(s)
    return out


def test_no_module_but_layout_names_a_results_path():
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(PACKAGE))
        if rel == "layout.py":
            continue
        for s in hits(path.read_text()):
            if (rel, s) not in ALLOWED:
                found.setdefault(rel, []).append(s)
    assert found == {}, "compose these paths in srlm.layout (or allow them here, saying why): " + repr(found)


def test_the_scan_finds_what_it_looks_for():
    assert hits('p = run / "adapter"') == {"adapter"}
    assert hits('glob("*/*/work")') == {"*/*/work"}
    assert hits('f"{root}/models/{m}/{c}/train_summary.json"') == {"/models/", "/train_summary.json"}
    assert hits('out.with_suffix(".partial.jsonl")') == {".partial.jsonl"}
    assert hits('"""A docstring naming models/ and work/ and train.partial.jsonl."""') == set()
    assert hits('print("no trained model found")') == set()
