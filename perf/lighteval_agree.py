"""lighteval's per-sample verdicts against the grade rule's, on the same completions (issue 34; docs/vllm.md).

Reads the details of a `lighteval endpoint litellm ... --save-details` run of the project's tasks (paper protocol:
metric `extractive_match`) and the benchmark files the tasks were built from, grades each detail's response text
with `srlm.grade.grader("paper", format, timeout)` (the grade rule's grader) against the row's gold, and prints a
Markdown table: samples, agree / disagree, lighteval's and srlm.grade's accuracy per task, then every disagreeing
sample (id, both extracted answers, gold). Exit 0 whatever the agreement (the table is the result).

    python perf/lighteval_agree.py OUT_DIR/details --bench math500=PATH --bench gsm8k=PATH \
        [--results OUT_DIR/results] [--wall-s S] [--timeout S]

A detail's row is found by its query (srlm.prompts' paper query of the row's problem, as the task module builds
it); its id is the pipeline's (srlm.data.benchmarks.normalize). The format and the timeout default to config.yaml's
(benchmarks.NAME.format, evaluation.grading.timeout_s). `agreement()` is the same, for a test.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

from srlm import prompts  # noqa: E402
from srlm.data.benchmarks import load_raw, normalize  # noqa: E402
from srlm.grade import grader  # noqa: E402

METRIC = "extractive_match"


def details_file(details: Path, name: str) -> Path:
    """The newest details parquet of task srlm_NAME|0 under DETAILS (lighteval nests it by model and date)."""
    found = sorted(details.rglob(f"details_srlm_{name}|*.parquet"), key=lambda p: p.stat().st_mtime)
    if not found:
        raise FileNotFoundError(f"no details of srlm_{name} under {details}")
    return found[-1]


def agreement(details: Path, benches: dict[str, tuple[str, str]], timeout_s: float) -> list[dict]:
    """Per task: {task, n, agree, lighteval, ours, disagree: [{id, gold, lighteval, ours, lighteval_extracted,
    ours_extracted}]}; benches: NAME -> (benchmark file, format)."""
    out = []
    for name, (path, fmt) in benches.items():
        rows = [normalize(r, fmt, i) for i, (_, r) in enumerate(load_raw({"name": name, "source": "local",
                                                                            "local_path": str(path)}))]  # fmt: skip
        by_query = {prompts.query(r["problem"], "paper"): r for r in rows}
        grade = grader("paper", fmt, timeout_s)
        frame = pd.read_parquet(details_file(details, name))
        task = {"task": name, "n": 0, "agree": 0, "lighteval": 0, "ours": 0, "disagree": []}
        for doc, metric, response in zip(frame["doc"], frame["metric"], frame["model_response"], strict=True):
            row = by_query[doc["query"]]
            theirs = bool(metric[METRIC])
            ours = grade(response["text"][0], row["answer"])
            task["n"] += 1
            task["lighteval"] += theirs
            task["ours"] += ours.correct
            if theirs == ours.correct:
                task["agree"] += 1
            else:
                extracted = (doc.get("specific") or {}).get("extracted_predictions")
                task["disagree"].append({"id": row["id"], "gold": row["answer"], "lighteval": theirs,
                                         "ours": ours.correct, "ours_extracted": ours.extracted,
                                         "lighteval_extracted": None if extracted is None else list(extracted)})  # fmt: skip
        out.append(task)
    return out


def scores(results: Path) -> dict[str, float]:
    """lighteval's extractive_match per benchmark from the newest results_*.json under RESULTS."""
    (path, *_) = sorted(results.rglob("results_*.json"), key=lambda p: -p.stat().st_mtime)
    res = json.loads(path.read_text())["results"]
    return {k.split("|")[0].removeprefix("srlm_"): v[METRIC] for k, v in res.items() if k.startswith("srlm_")}


def markdown(tasks: list[dict], reported: dict[str, float] | None = None, wall_s: float | None = None) -> str:
    lines = ["| task | samples | agree | disagree | lighteval acc | srlm.grade acc | lighteval's reported score |",
             "|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for t in tasks:
        n = max(t["n"], 1)
        rep = "" if not reported or t["task"] not in reported else f"{reported[t['task']]:.4f}"
        lines.append(f"| {t['task']} | {t['n']} | {t['agree']} | {len(t['disagree'])} | {t['lighteval'] / n:.4f} "
                     f"| {t['ours'] / n:.4f} | {rep} |")  # fmt: skip
    if wall_s is not None:
        lines += ["", f"lighteval's run: {wall_s:.0f} s wall"]
    bad = [(t["task"], d) for t in tasks for d in t["disagree"]]
    if bad:
        lines += ["", "| task | id | gold | lighteval | extracted (lighteval) | srlm.grade | extracted (srlm.grade) |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        lines += [f"| {task} | {d['id']} | `{d['gold']}` | {d['lighteval']} | `{d['lighteval_extracted']}` "
                  f"| {d['ours']} | `{d['ours_extracted']}` |" for task, d in bad]  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("details", type=Path)
    ap.add_argument("--bench", action="append", required=True, help="NAME=PATH[:FORMAT] (format: config.yaml's)")
    ap.add_argument("--results", type=Path, help="lighteval's results folder: its scores in the table")
    ap.add_argument("--wall-s", type=float)
    ap.add_argument("--timeout", type=float, help="grading timeout (config.yaml's evaluation.grading.timeout_s)")
    ap.add_argument("--json", type=Path, help="also write the per-task records here")
    a = ap.parse_args(argv)
    config = yaml.safe_load((ROOT / "config.yaml").read_text())
    benches = {}
    for spec in a.bench:
        name, _, rest = spec.partition("=")
        path, _, fmt = rest.partition(":")
        benches[name] = (path, fmt or config["benchmarks"][name]["format"])
    timeout = a.timeout if a.timeout is not None else config["evaluation"]["grading"]["timeout_s"]
    tasks = agreement(a.details, benches, timeout)
    if a.json:
        a.json.write_text(json.dumps(tasks, indent=1, default=str))
    print(markdown(tasks, scores(a.results) if a.results else None, a.wall_s), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
