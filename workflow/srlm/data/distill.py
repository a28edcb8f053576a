"""Knowledge-distillation set (§3.3 "Knowledge Distillation"): DeepSeek-R1 traces of
camel-ai/gsm8k_distilled converted to the SFT schema, keeping only traces whose \\boxed{} answer
math-verifies against the gold.

The completion is "<think>{the trace's <think> content}</think>\\n<answer>{gold}</answer>": the text
the teacher wrote after </think> is dropped, and the answer tag holds the gold string (equal to the boxed
answer by the check above, without the LaTeX/units a boxed value may carry). The kept rows are then
deduplicated and decontaminated against the benchmarks like GSM8K's train split (params "clean" = config
data.gsm8k.clean's dedup and decontaminate; --bench; srlm.data.clean). --report (kd_report.json) counts
kept rows, each drop reason and what cleaning dropped.
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from pathlib import Path

from srlm.config import job_params
from srlm.data.clean import clean as clean_rows
from srlm.data.io import DataError, cli, format_completion, sft_row, write_json, write_jsonl
from srlm.grading import last_boxed, verify

_THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


def gold_answer(ground_truth: str) -> str | None:
    """Gold from groud_truth_solution: its last \\boxed{} or its '#### N' line, commas of numbers removed."""
    ans = last_boxed(ground_truth or "")
    if ans is None and "####" in (ground_truth or ""):
        ans = ground_truth.rsplit("####", 1)[1]
    if ans is None:
        return None
    ans = ans.strip()
    if any(c.isdigit() and not c.isascii() for c in ans):  # "１２": no grader reads it, so no gold (issue 32)
        return None
    return ans.replace(",", "") if re.fullmatch(r"-?[\d,]+(\.\d+)?", ans, re.ASCII) else ans or None


def convert(row: dict, index: int, system_prompt: str, form: str = "r1") -> tuple[dict | None, str | None]:
    """(SFT row, None) for a usable trace, else (None, drop reason); `form`: config prompt.training."""
    problem, trace = row.get("problem"), row.get("reasoning_solution") or ""
    if not isinstance(problem, str) or not problem.strip():
        return None, "no_problem"
    gold = gold_answer(row.get("groud_truth_solution"))
    if gold is None:
        return None, "no_gold"
    think = _THINK.search(trace)
    if think is None or not think.group(1).strip():
        return None, "no_think"
    boxed = last_boxed(trace[think.end() :])
    if boxed is None:
        return None, "no_boxed"
    if not verify(boxed, gold):
        return None, "wrong_answer"
    return sft_row(
        f"kd-{index}", system_prompt, problem.strip(), format_completion(think.group(1), gold), gold, form
    ), None


def load_raw(data: dict) -> list[dict]:
    src = data.get("source")
    if src == "hub":
        import datasets

        return [dict(r) for r in datasets.load_dataset(data["hub_id"], split="train")]
    if src == "synthetic":
        from srlm.data.synthetic import camel_rows

        syn = data["synthetic"]
        return camel_rows(syn["n_train"], syn["seed"], level=syn["level"])
    if src == "local":  # a JSONL file in the camel schema (tests, offline copies)
        from srlm.data.io import read_jsonl

        if not data.get("local_path"):
            raise ValueError("data.kd.local_path must be set when source is local")
        return read_jsonl(data["local_path"], nonempty=True)
    raise ValueError(f"data.kd.source: unknown source {src!r} (hub|synthetic|local)")


def prepare(params: dict, out: str | Path, bench_files: list[str] = ()) -> dict:
    """Convert, then clean (params "clean": {dedup, decontaminate}) against `bench_files`."""
    data, system_prompt = params["data"], params["system_prompt"]
    form = params["prompt_training"]  # config prompt.training
    raw = load_raw(data)
    kept, reasons = [], Counter()
    dropped, questions = [], []
    for i, row in enumerate(raw):
        sft, why = convert(row, i, system_prompt, form)
        if sft is None:
            reasons[why] += 1
            dropped.append({"index": i, "reason": why})
        else:
            kept.append(sft)
            questions.append({"id": sft["id"], "question": row["problem"].strip()})
    converted = len(kept)
    clean_ids, cleaning = clean_rows(questions, params["clean"], bench_files)
    clean_ids = {q["id"] for q in clean_ids}
    kept = [r for r in kept if r["id"] in clean_ids]
    gone = {d["index"] for d in dropped}
    report = {
        "source": data["source"],
        "rows_in": len(raw),
        "converted": converted,
        **cleaning,
        "kept": len(kept),
        "dropped": len(dropped),
        "dropped_by_reason": dict(sorted(reasons.items())),
        "dropped_rows": dropped,
        # rows where the dataset's own boxed_answer_success flag disagrees with our verification
        "flag_disagrees": sum(
            1
            for i, r in enumerate(raw)
            if "boxed_answer_success" in r and bool(r["boxed_answer_success"]) == (i in gone)
        ),
    }
    if not kept:
        counts = {k: report[k] for k in ("converted", "duplicates", "contaminated")}
        raise DataError(f"KD data: no usable trace among {len(raw)} rows ({dict(reasons)}; {counts})")
    write_jsonl(out, kept)
    return report


@cli
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--params", required=True, help='JSON: {"data": <config data.kd>, "system_prompt": str, "clean": ...}'
    )
    ap.add_argument("--out", required=True, help="train.jsonl")
    ap.add_argument("--report", required=True, help="kd_report.json: what was kept and dropped, and why")
    ap.add_argument(
        "--bench", nargs="*", default=[], help="normalized benchmark JSONL files to decontaminate against"
    )
    a = ap.parse_args(argv)
    rep = prepare(job_params(a.params, "kd"), a.out, a.bench)
    write_json(a.report, rep)
    print(json.dumps({k: v for k, v in rep.items() if not isinstance(v, list)}))


if __name__ == "__main__":
    main()
