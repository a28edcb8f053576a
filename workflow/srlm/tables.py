"""The paper's Tables 1–3 as Markdown, from config rows and our evaluation JSONs.

Layout (sections, labels, row order, columns, caption) comes from the table's config slice; the caption's
sentence on how the numbers were evaluated is the paper's (`paper_evaluation`), printed only beside the
paper's numbers: beside ours it says how ours were graded, from the evaluation files (`graded_by`,
srlm.grade). Marks on our rows are computed from the run's outputs: ‡ when the health check of a training
stage along the chain says "collapsed" (health.json, srlm.health), † when the row's mean share of
non-extractable answers exceeds the threshold (config `marks`). The "paper" source renders the paper's printed
numbers and marks from config (the golden tests compare it with the paper). Only the files the rule declares
are read (INPUTS.json, a `layout.Layout.inputs` mapping); a run without a declared file shows "-".

    python -m srlm.tables --spec SPEC.json --inputs INPUTS.json --out results/table2.md \
        --vs-paper results/table2_vs_paper.md
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

from srlm import interval, layout
from srlm.data.io import cli, write_text

DAGGER, DDAGGER, CITED = "†", "‡", "(cited)"


def row_label(row: dict, models: dict, stages: dict) -> str:
    """A row's label: its own `label`, else the model's label plus "+<stage label>" per stage of the chain."""
    if row.get("label"):
        return row["label"]
    label = models[row["model"]]["label"]
    label += "".join("+" + stages[s]["label"] for s in layout.stages(row["chain"]))
    return label


def iter_rows(table: dict):
    """(section title, row) for every row of a table slice, in config order."""
    for section in table["sections"]:
        for row in section["rows"]:
            yield section["title"], row


def table_spec(config: dict, name: str) -> dict:
    """The SPEC.json content for one table, built from the whole config (rules and tests share it)."""
    return {
        "name": name,
        "table": config["tables"][name],
        "models": {k: {"label": v["label"]} for k, v in config["models"].items()},
        "stages": {k: {"label": v["label"], "type": v["type"]} for k, v in config["stages"].items()},
        "benchmarks": {k: {"label": v["label"]} for k, v in config["benchmarks"].items()},
        "not_extractable_threshold": config["marks"]["not_extractable_threshold"],
        "evals_dir": layout.Layout.of(config).evals_dir(),
    }


def report_spec(config: dict) -> dict:
    """The SPEC.json content for srlm.figures: every table, labels and marks."""
    spec = table_spec(config, next(iter(config["tables"])))
    del spec["name"], spec["table"]
    return {**spec, "tables": config["tables"]}


def cost_spec(config: dict) -> dict:
    """The SPEC.json content for srlm.cost: every table and the labels (no marks: they cost nothing)."""
    spec = report_spec(config)
    return {k: spec[k] for k in ("tables", "models", "stages", "benchmarks")}


def load_spec(text: str) -> dict:
    """A spec given inline as JSON (what the rules pass) or as the path of a JSON file."""
    return json.loads(text if text.lstrip().startswith("{") else Path(text).read_text())


def read_json(path: Path) -> dict | None:
    """A JSON file's content, or None where it does not exist (a job not run yet)."""
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e


class Inputs:
    """The files a report rule declared (a `layout.Layout.inputs` mapping); the scripts read nothing else."""

    def __init__(self, mapping: dict):
        self.mapping = mapping

    def path(self, kind: str, model: str, chain: str, benchmark: str | None = None) -> Path | None:
        """Where the declared file of this kind is, or None where the rule declared none."""
        node = self.mapping.get(kind, {}).get(model, {}).get(chain)
        if benchmark is not None:
            node = (node or {}).get(benchmark)
        return None if node is None else Path(node)

    def read(self, kind: str, model: str, chain: str, benchmark: str | None = None) -> dict | None:
        """The declared JSON file's content; None where none is declared or it does not exist yet."""
        path = self.path(kind, model, chain, benchmark)
        return None if path is None else read_json(path)


@dataclass
class Row:
    """One rendered row: values in percent (None = "-"), CIs in percent, marks and footnotes."""

    label: str
    values: list[float | None]
    cis: list[tuple[float, float] | None]
    marks: list[str] = field(default_factory=list)
    cited: bool = False
    notes: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _field(evaluation: dict, key: str, path: Path):
    if key not in evaluation:
        raise KeyError(f"{path}: key {key!r} missing")
    return evaluation[key]


def our_row(row: dict, spec: dict, inputs: Inputs) -> Row:
    """A run row from our outputs; marks computed (‡ collapsed training, † non-extractable answers)."""
    label = row_label(row, spec["models"], spec["stages"])
    model, chain = row["model"], row["chain"]
    out = Row(label, [], [])
    rates = []
    for bench in spec["table"]["columns"]:
        path = inputs.path("evals", model, chain, bench)
        ev = inputs.read("evals", model, chain, bench)
        if ev is None:
            out.values.append(None)
            out.cis.append(None)
            out.missing.append(spec["benchmarks"][bench]["label"])
            continue
        out.values.append(100 * _field(ev, "pass_at_1", path))
        lo, hi = _field(ev, "ci95", path)
        out.cis.append((100 * lo, 100 * hi))
        rates.append(_field(ev, "not_extractable_rate", path))
    if rates and sum(rates) / len(rates) > spec["not_extractable_threshold"]:
        out.marks.append(DAGGER)
        out.notes.append(
            f"{DAGGER} {label}: {100 * sum(rates) / len(rates):.0f}% of answers could not be extracted "
            f"(mean over {len(rates)} benchmarks; threshold {100 * spec['not_extractable_threshold']:.0f}%)."
        )
    for prefix in layout.prefixes(chain):
        health = inputs.read("health", model, prefix)
        if health and health.get("status") == "collapsed":
            out.marks.append(DDAGGER)
            out.notes.append(
                f"{DDAGGER} {label}: training of {model}/{prefix} collapsed"
                + (f" ({health['reason']})." if health.get("reason") else ".")
            )
            break
    return out


def paper_row(row: dict, spec: dict) -> Row:
    """A row as the paper prints it: config `paper` values and `paper_marks`."""
    label = row["label"] if row.get("cited") else row_label(row, spec["models"], spec["stages"])
    n = len(spec["table"]["columns"])
    values = row.get("paper") or [None] * n
    if len(values) != n:
        raise ValueError(
            f"tables.{spec['name']}: row {label!r}: `paper` has {len(values)} values, {n} columns"
        )
    marks = [m for m in row.get("paper_marks") or "" if not m.isspace()]
    return Row(label, list(values), [None] * n, marks, cited=bool(row.get("cited")))


def build(spec: dict, inputs: Inputs, source: str = "ours") -> list[tuple[str, list[tuple[Row, Row]]]]:
    """Sections of (shown row, paper row) pairs; cited rows show the paper's numbers in both."""
    if source not in ("ours", "paper"):
        raise ValueError(f"source must be 'ours' or 'paper', not {source!r}")
    sections: dict[str, list] = {}
    for title, row in iter_rows(spec["table"]):
        paper = paper_row(row, spec)
        if source == "paper":
            shown = paper
        elif row.get("cited"):
            shown = Row(paper.label, paper.values, paper.cis, paper.marks, cited=True)
        else:
            shown = our_row(row, spec, inputs)
        sections.setdefault(title, []).append((shown, paper))
    return list(sections.items())


def fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _label(row: Row, cited_mark: bool) -> str:
    return " ".join([row.label, *row.marks] + ([CITED] if row.cited and cited_mark else []))


def _md_table(header: list[str], align: list[str], body: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    return lines + ["| " + " | ".join(cells) + " |" for cells in body]


def _unique_best(values: list[float]) -> float | None:
    """The value to bold in a column: its maximum when one cell alone holds it and it is not zero. A tie or an
    all-zero column (the demo's tiny models) bolds nothing, so bold always singles out one winner."""
    top = max(values, default=0.0)
    return top if top != 0 and values.count(top) == 1 else None


def render(spec: dict, inputs: Inputs, source: str = "ours") -> str:
    """The table in the paper's layout; bold = each column's unique, non-zero maximum where the table's `bold`
    is on."""
    table = spec["table"]
    sections = build(spec, inputs, source)
    cols = table["columns"]
    shown = [[fmt(v) for v in r.values] for _, rows in sections for r, _ in rows]
    best = [_unique_best([float(c[j]) for c in shown if c[j] != "-"]) for j in range(len(cols))]
    body = []
    for title, rows in sections:
        body.append([f"*{title}*"] + [""] * len(cols))
        for r, _ in rows:
            cells = [fmt(v) for v in r.values]
            if table.get("bold"):
                cells = [f"**{c}**" if c != "-" and float(c) == best[j] else c for j, c in enumerate(cells)]
            body.append([_label(r, source == "ours")] + cells)
    header = [table["header"]] + [spec["benchmarks"][c]["label"] for c in cols]
    evaluated = table.get("paper_evaluation")
    if source == "ours":
        evaluated = ours_grading(spec, inputs) + f" With 95% intervals: {spec['name']}_vs_paper.md."
    lines = [" ".join(x for x in (f"**{table['title']}**", table["caption"], evaluated) if x), ""]
    lines += _md_table(header, [":--"] + ["--:"] * len(cols), body)
    notes = _notes(sections, spec, source)
    return "\n".join(lines + ([""] + notes if notes else [])) + "\n"


def _notes(sections, spec, source: str) -> list[str]:
    rows = [r for _, rs in sections for r, _ in rs]
    if source == "paper":
        return ["Numbers and marks as printed in the paper (config `tables." + spec["name"] + "`)."]
    notes = [
        f"Our runs: pass@1 × 100 read from {spec['evals_dir']}. Marks are computed: {DAGGER} = "
        f"mean share of non-extractable answers above {100 * spec['not_extractable_threshold']:.0f}%, "
        f"{DDAGGER} = a training stage of the chain reported status `collapsed`. Unlike the paper, marked "
        "rows keep their numbers."
    ]
    if any(r.cited for r in rows):
        said = spec["table"].get("paper_evaluation")
        notes.append(f"{CITED}: the paper's numbers for models it cites; not run here"
                     + (f" (the paper: \"{said}\")." if said else "."))  # fmt: skip
    for r in rows:
        notes += r.notes
        if r.missing:
            notes.append(f"`-` {r.label}: no evaluation yet for {', '.join(r.missing)}.")
    return ["- " + n for n in notes]


def _ci(r: Row, j: int) -> str:
    if r.values[j] is None:
        return "-"
    if r.cis[j] is None:
        return fmt(r.values[j])
    lo, hi = r.cis[j]
    return f"{r.values[j]:.1f} [{lo:.1f}, {hi:.1f}]"


def paper_ci(p: float, n: int) -> tuple[float, float]:
    """95% interval of a printed pass@1 `p` (a fraction): Wilson, one sample per problem over `n` problems.
    The paper does not say how many samples it scored; its reference harness scores one (docs/fidelity.md)."""
    return interval.wilson(p, n)


def delta_ci(ours: float, ours_ci: tuple[float, float], paper: float, n: int) -> tuple[float, float]:
    """95% interval of ours − paper (fractions): Newcombe's hybrid score interval from our evaluation's
    interval and the paper's Wilson interval (srlm.interval.difference). At 0/40 twice: ±8.8 pp."""
    return interval.difference(ours, ours_ci, paper, paper_ci(paper, n))


def _n_problems(inputs: Inputs, row: dict, bench: str) -> int:
    """The problem count of one evaluated cell (the paper's value is taken over as many)."""
    path = inputs.path("evals", row["model"], row["chain"], bench)
    return _field(inputs.read("evals", row["model"], row["chain"], bench), "n_problems", path)


def ours_grading(spec: dict, inputs: Inputs) -> str:
    """How our numbers in this table were graded, from their evaluation files (never from config: a table
    tells what produced its numbers): protocol, grader and version, samples per problem."""
    how, samples = {}, set()
    for _, row in iter_rows(spec["table"]):
        if row.get("cited"):
            continue
        for bench in spec["table"]["columns"]:
            ev = inputs.read("evals", row["model"], row["chain"], bench)
            if ev is None:
                continue
            path = inputs.path("evals", row["model"], row["chain"], bench)
            how[_field(ev, "protocol", path)] = _field(ev, "graded_by", path)
            samples.add(_field(ev, "n_samples", path))
    if not how:
        return "Ours: not evaluated yet."
    lo, hi = min(samples), max(samples)
    count = f"{lo}" if lo == hi else f"{lo}–{hi}"
    graded = "; ".join(f"under evaluation protocol `{p}` by {g}" for p, g in sorted(how.items()))
    return f"Ours: pass@1 × 100 over {count} sample{'s' if hi > 1 else ''} per problem, graded {graded}."


def render_vs_paper(spec: dict, inputs: Inputs) -> str:
    """Ours with its 95% interval beside the paper's value and the difference Δ with its 95% interval
    (`delta_ci`: the sampling noise of both numbers); ✗ where that interval excludes 0."""
    table, cols = spec["table"], spec["table"]["columns"]
    header = [table["header"]]
    for c in cols:
        name = spec["benchmarks"][c]["label"]
        header += [f"{name} ours [95% CI]", f"{name} paper", f"{name} Δ [95% CI]"]
    header.append("marks ours / paper")
    body, compared, marked = [], 0, 0
    configs = (r for _, r in iter_rows(table))  # build() yields the rows in this order
    for title, pairs in build(spec, inputs, "ours"):
        body.append([f"*{title}*"] + [""] * (3 * len(cols) + 1))
        for ours, paper in pairs:
            row = next(configs)
            cells = [_label(ours, True) if ours.cited else ours.label]
            for j, bench in enumerate(cols):
                o, p = ours.values[j], paper.values[j]
                delta = "-"
                if o is not None and p is not None and not ours.cited:
                    compared += 1
                    lo, hi = delta_ci(o / 100, tuple(c / 100 for c in ours.cis[j]), p / 100,
                                      _n_problems(inputs, row, bench))  # fmt: skip
                    delta = f"{round(o, 1) - p:+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"
                    if lo > 0 or hi < 0:
                        marked += 1
                        delta += " ✗"
                cells += ["-" if ours.cited else _ci(ours, j), fmt(p), delta]
            cells.append(f"{' '.join(ours.marks) or '–'} / {' '.join(paper.marks) or '–'}")
            body.append(cells)
    said = table.get("paper_evaluation")
    lines = [f"**{table['title']}** Ours vs. the paper.", ""]
    lines += _md_table(header, [":--"] + ["--:"] * (3 * len(cols)) + [":-:"], body)
    lines += [
        "",
        f"- {ours_grading(spec, inputs)} Our interval: Wilson's, on the effective count where several "
        "samples share a problem (docs/fidelity.md §5).",
        "- Paper: the printed value" + (f" (the paper: \"{said}\")" if said else "") + ". Δ = ours − paper "
        "(percentage points).",
        (
            "- Both numbers are samples: the bracket is the 95% interval of their difference, Newcombe's "
            "hybrid score interval from our interval and the paper's Wilson interval (the paper's value as "
            "one sample per problem over the benchmark's n problems; the paper does not say how many it "
            "scored). It stays wide where both sit at 0."
        ),
        (
            f"- ✗: the interval of the difference excludes 0 — {marked} of {compared} compared cells. "
            "Unmarked cells agree within sampling noise; were both runs of the same model, about 1 cell in "
            "20 would be marked by chance."
        ),
        (
            f"- Marks: {DAGGER} answers not extractable, {DDAGGER} training collapsed (ours computed, paper's "
            "as printed); – none."
        ),
    ]
    return "\n".join(lines) + "\n"


@cli
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", type=load_spec, required=True, help="JSON (inline or a file): name, table, models, ...")
    p.add_argument("--inputs", type=load_spec, required=True, help="JSON (inline or a file): the declared inputs")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--vs-paper", type=Path, help="also write ours vs. the paper here")
    p.add_argument("--source", choices=["ours", "paper"], default="ours")
    a = p.parse_args(argv)
    spec, inputs = a.spec, Inputs(a.inputs)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    write_text(a.out, render(spec, inputs, a.source))
    if a.vs_paper:
        a.vs_paper.parent.mkdir(parents=True, exist_ok=True)
        write_text(a.vs_paper, render_vs_paper(spec, inputs))


if __name__ == "__main__":
    main()
