"""GPU-hours of the jobs behind Tables 1–3, from the timing records the jobs write themselves.

A training job's record is its train_summary.json `attempts` (one entry per attempt, requeues included:
`wall_s`, `gpus`); a generation job's is the `timing` ({"wall_s", "gpus"}) its evaluation JSON carries over
from the completions file. GPU-hours of a job = sum over its attempts of wall time × GPUs used. A row costs
its chain's training jobs (every prefix: "kd+rl" needs the "kd" and "kd+rl" jobs) plus its evaluations; a table
counts each job once, however many rows share it, and the grand total counts each job once across the tables.
Jobs without a record (not run yet, or a record without timing) show as "-" and are listed. Only the files
the rule declares are read (INPUTS.json, a `layout.Layout.inputs` mapping of evals and train_summary files).

    python -m srlm.cost --spec SPEC.json --inputs INPUTS.json --out results/cost.md
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from srlm import layout
from srlm.data.io import cli, write_text
from srlm.tables import Inputs, iter_rows, load_spec, row_label

EVAL_RULE = "generate"  # the GPU job of an evaluation; grading is a CPU rule and costs no GPU time


@dataclass(frozen=True)
class Job:
    """One GPU job: rule, wildcards, and the declared file holding its timing record."""

    rule: str
    model: str
    chain: str
    benchmark: str | None
    path: Path | None

    @property
    def kind(self) -> str:
        return "evaluate" if self.rule == EVAL_RULE else "train"


def attempts(job: Job, record: dict | None) -> list[dict] | None:
    """[{"wall_s", "gpus"}, ...] of a job from its record; None where there is none (yet)."""
    if record is None:
        return None
    found = record.get("attempts") if job.kind == "train" else [record["timing"]] if "timing" in record else None
    if found is None:
        return None
    bad = [a for a in found if not (isinstance(a.get("wall_s"), (int, float)) and isinstance(a.get("gpus"), int))]
    if bad:
        raise ValueError(f"{job.path}: a timing record needs a number wall_s and an integer gpus, got {bad[0]}")
    return found


def row_jobs(row: dict, columns: list[str], inputs: Inputs, stages: dict) -> list[Job]:
    """Training jobs of every prefix of the row's chain, then one evaluation job per column."""
    model, chain = row["model"], row["chain"]
    rule = {"sft": "train_sft", "grpo": "train_grpo"}
    jobs = [
        Job(rule[stages[layout.last_stage(c)]["type"]], model, c, None, inputs.path("train_summary", model, c))
        for c in layout.prefixes(chain)
    ]
    return jobs + [Job(EVAL_RULE, model, chain, b, inputs.path("evals", model, chain, b)) for b in columns]


def fmt_h(x: float | None, partial: bool = False) -> str:
    if x is None:
        return "-"
    text = "0" if x == 0 else f"{x:,.2f}" if x >= 0.01 else f"{x:.2g}"
    return ("≥" if partial else "") + text


class Costs:
    """Timing records per job, read once from the declared files."""

    def __init__(self, inputs: Inputs):
        self.inputs, self.records = inputs, {}

    def attempts(self, job: Job) -> list[dict] | None:
        if job not in self.records:
            kind = "train_summary" if job.kind == "train" else "evals"
            self.records[job] = attempts(job, self.inputs.read(kind, job.model, job.chain, job.benchmark))
        return self.records[job]

    def wall_hours(self, job: Job) -> float | None:
        a = self.attempts(job)
        return None if a is None else sum(x["wall_s"] for x in a) / 3600

    def gpu_hours(self, job: Job) -> float | None:
        a = self.attempts(job)
        return None if a is None else sum(x["wall_s"] * x["gpus"] for x in a) / 3600

    def gpus(self, job: Job) -> str:
        """GPUs the job used ("8, 4" where requeued attempts got different allocations)."""
        a = self.attempts(job)
        return "-" if a is None else ", ".join(str(g) for g in dict.fromkeys(x["gpus"] for x in a))

    def total(self, jobs, kind: str | None = None) -> str:
        """Sum over distinct jobs (of one kind); "≥" when some lack benchmark files, "-" when all do."""
        vals = [self.gpu_hours(j) for j in dict.fromkeys(jobs) if kind in (None, j.kind)]
        known = [v for v in vals if v is not None]
        if not vals:
            return fmt_h(0.0)
        return fmt_h(sum(known), partial=len(known) < len(vals)) if known else "-"


def _md(header: list[str], rows: list[list[str]], text_cols: int = 1) -> list[str]:
    align = [":--"] * text_cols + ["--:"] * (len(header) - text_cols)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    return lines + ["| " + " | ".join(r) + " |" for r in rows]


def render(spec: dict, inputs: Inputs) -> str:
    """cost.md: totals per table and overall, cost per row of each table, and every job."""
    costs = Costs(inputs)
    per_table: dict[str, list[Job]] = {}
    sections = []
    for name, table in spec["tables"].items():
        rows, jobs = [], []
        for _, row in iter_rows(table):
            if row.get("cited"):
                continue
            rj = row_jobs(row, table["columns"], inputs, spec["stages"])
            jobs += rj
            label = row_label(row, spec["models"], spec["stages"])
            n_train = sum(j.kind == "train" for j in rj)
            rows.append(
                [label, str(n_train), costs.total(rj, "train"), costs.total(rj, "evaluate"), costs.total(rj)]
            )
        rows.append(
            [
                "**Table (each job once)**",
                str(sum(j.kind == "train" for j in dict.fromkeys(jobs))),
                costs.total(jobs, "train"),
                costs.total(jobs, "evaluate"),
                costs.total(jobs),
            ]
        )
        per_table[name] = jobs
        sections += ["", f"## {table['title']}", ""]
        sections += _md(
            [table["header"], "training jobs", "training GPU-h", "evaluation GPU-h", "row GPU-h"], rows
        )
    all_jobs = [j for jobs in per_table.values() for j in jobs]
    summary = [
        [spec["tables"][n]["title"], costs.total(j, "train"), costs.total(j, "evaluate"), costs.total(j)]
        for n, j in per_table.items()
    ]
    summary.append(
        [
            "**All tables (each job once)**",
            costs.total(all_jobs, "train"),
            costs.total(all_jobs, "evaluate"),
            costs.total(all_jobs),
        ]
    )
    job_rows, missing = [], []
    for j in dict.fromkeys(all_jobs):
        h = costs.gpu_hours(j)
        job_rows.append(
            [
                j.rule,
                j.model,
                j.chain,
                j.benchmark or "",
                fmt_h(costs.wall_hours(j)),
                costs.gpus(j),
                fmt_h(h),
            ]
        )
        if h is None:
            missing.append(str(j.path) if j.path else f"{j.rule} {j.model}/{j.chain} {j.benchmark or ''}".strip())
    lines = [
        f"# Compute cost of {scope_title(list(spec['tables']))}",
        "",
        "GPU-hours = wall time × GPUs used, summed over a job's attempts, from the timing records the jobs "
        "write (training: train_summary.json `attempts`; evaluation: the generation's `timing` in the "
        "evaluation JSON). A row counts every "
        "training job of its chain (shared prefixes included) and its evaluations, so rows of a table add up "
        "to more than the table, which counts each job once. `≥`: some jobs of the sum have no timing "
        "record yet; `-`: none has. Cited rows are not run and cost nothing here.",
        "",
        "## Totals",
        "",
        *_md(["table", "training GPU-h", "evaluation GPU-h", "GPU-h"], summary),
        *sections,
        "",
        "## Jobs",
        "",
        *_md(["rule", "model", "chain", "benchmark", "wall time (h)", "GPUs", "GPU-h"], job_rows, 4),
    ]
    if missing:
        lines += ["", f"Missing timing records ({len(missing)}), shown as `-`:", ""]
        lines += [f"- `{m}`" for m in missing]
    return "\n".join(lines) + "\n"


def scope_title(tables: list[str]) -> str:
    """What a cost page covers, by its tables' keys: ["table2"] -> "Table 2", ["table1", "table2", "table3"] ->
    "Tables 1, 2 and 3" (keys not of the form tableN are named as they are)."""
    names = [t.removeprefix("table") if t.startswith("table") and t[5:].isdigit() else t for t in tables]
    if not all(n.isdigit() for n in names):
        return ", ".join(tables)
    return f"Table {names[0]}" if len(names) == 1 else f"Tables {', '.join(names[:-1])} and {names[-1]}"


@cli
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", type=load_spec, required=True, help="JSON: tables, models, stages (inline JSON or a file)")
    p.add_argument("--inputs", type=load_spec, required=True, help="JSON (inline or a file): the declared inputs")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_text(a.out, render(a.spec, Inputs(a.inputs)))


if __name__ == "__main__":
    main()
