"""GPU-hours of the jobs behind Tables 1–3, from Snakemake's benchmark files.

GPU-hours of a job = its wall time (column `s` of benchmarks/<rule>/...tsv, mean over repeats) × the GPUs its
kind of job requests (config `gpus`). A row costs its chain's training jobs (every prefix: "kd+rl" needs the
"kd" and "kd+rl" jobs) plus its evaluations; a table counts each job once, however many rows share it, and the
grand total counts each job once across the tables. Missing benchmark files show as "-" and are listed.

    python -m srlm.cost --spec SPEC.json --results results --benchmarks benchmarks --out results/cost.md
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from srlm.tables import chain_prefixes, load_spec, iter_rows, row_label

TRAIN_RULES = ("train_sft", "train_grpo")


@dataclass(frozen=True)
class Job:
    """One Snakemake job: rule, wildcards, and where its benchmark file is (or would be)."""

    rule: str
    model: str
    chain: str
    benchmark: str | None
    path: Path

    @property
    def kind(self) -> str:
        return "evaluate" if self.rule == "evaluate" else "train"


def wall_seconds(path: Path) -> float | None:
    """Mean of column `s` of a Snakemake benchmark file (one line per repeat); None if the file is absent."""
    if not path.exists():
        return None
    frame = pd.read_csv(path, sep="\t")
    if "s" not in frame.columns or frame.empty:
        raise ValueError(f"{path}: not a Snakemake benchmark file (needs a header with column 's' and a row)")
    return float(frame["s"].mean())


def train_job(bench: Path, model: str, chain: str, stages: dict) -> Job:
    """The training job of one chain; its rule follows the last stage's type (else whichever file exists)."""
    stage = stages.get(chain.split("+")[-1], {})
    rules = {"sft": ["train_sft"], "grpo": ["train_grpo"]}.get(stage.get("type"), list(TRAIN_RULES))
    paths = [bench / r / model / f"{chain}.tsv" for r in rules]
    found = [i for i, p in enumerate(paths) if p.exists()]
    i = found[0] if found else 0
    return Job(rules[i], model, chain, None, paths[i])


def row_jobs(row: dict, columns: list[str], bench: Path, stages: dict) -> list[Job]:
    """Training jobs of every prefix of the row's chain, then one evaluation job per column."""
    model, chain = row["model"], row["chain"]
    jobs = [train_job(bench, model, c, stages) for c in chain_prefixes(chain)]
    return jobs + [
        Job("evaluate", model, chain, b, bench / "evaluate" / model / chain / f"{b}.tsv") for b in columns
    ]


def fmt_h(x: float | None, partial: bool = False) -> str:
    if x is None:
        return "-"
    text = "0" if x == 0 else f"{x:,.2f}" if x >= 0.01 else f"{x:.2g}"
    return ("≥" if partial else "") + text


class Costs:
    """GPU-hours per job, read once."""

    def __init__(self, gpus: dict):
        self.gpus, self.seconds = gpus, {}

    def wall_hours(self, job: Job) -> float | None:
        if job not in self.seconds:
            self.seconds[job] = wall_seconds(job.path)
        s = self.seconds[job]
        return None if s is None else s / 3600

    def gpu_hours(self, job: Job) -> float | None:
        h = self.wall_hours(job)
        return None if h is None else h * self.gpus[job.kind]

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


def render(spec: dict, bench: Path) -> str:
    """cost.md: totals per table and overall, cost per row of each table, and every job."""
    bench, costs = Path(bench), Costs(spec["gpus"])
    per_table: dict[str, list[Job]] = {}
    sections = []
    for name, table in spec["tables"].items():
        rows, jobs = [], []
        for _, row in iter_rows(table):
            if row.get("cited"):
                continue
            rj = row_jobs(row, table["columns"], bench, spec["stages"])
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
                str(spec["gpus"][j.kind]),
                fmt_h(h),
            ]
        )
        if h is None:
            missing.append(str(j.path))
    lines = [
        "# Compute cost of Tables 1–3",
        "",
        "GPU-hours = wall time from Snakemake's benchmark file × GPUs the job requested "
        f"(training: {spec['gpus']['train']}, evaluation: {spec['gpus']['evaluate']}). A row counts every "
        "training job of its chain (shared prefixes included) and its evaluations, so rows of a table add up "
        "to more than the table, which counts each job once. `≥`: some jobs of the sum have no benchmark "
        "file yet; `-`: none has. Cited rows are not run and cost nothing here.",
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
        lines += ["", f"Missing benchmark files ({len(missing)}), shown as `-`:", ""]
        lines += [f"- `{m}`" for m in missing]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", type=load_spec, required=True, help="JSON: tables, models, stages, gpus (inline JSON or a file)")
    p.add_argument("--results", type=Path, help="results folder (unused; kept for a uniform command line)")
    p.add_argument("--benchmarks", type=Path, required=True, help="Snakemake benchmark folder")
    p.add_argument("--out", type=Path, required=True)
    a = p.parse_args(argv)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(render(a.spec, a.benchmarks))


if __name__ == "__main__":
    main()
