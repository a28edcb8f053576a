"""Figures of the report: training curves per run and accuracy bars per table (matplotlib, Agg backend).

Per training run (every prefix of every table's chains): GRPO runs show the format and accuracy rewards, loss,
KL and completion length over steps; SFT/KD runs show the loss. Per table: pass@1 per benchmark, one bar per
row with its 95% CI, and the paper's value as a marker. Names are fixed (see figure_names) so rules can
declare them; a run without metrics.jsonl still gets a figure that says so. Only the files the rule declares
are read (INPUTS.json, a `layout.Layout.inputs` mapping of evals, health and metrics files).

    python -m srlm.figures --spec SPEC.json --inputs INPUTS.json --out-dir results/figures
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

from srlm import layout
from srlm.data.io import cli, read_metrics
from srlm.tables import Inputs, fmt, iter_rows, load_spec, our_row, row_label

# Panels of a GRPO run: title and the metric keys that may hold it (TRL 1.x first, older names after).
GRPO_PANELS = [
    ("format reward", ["rewards/format_reward/mean", "rewards/format_reward", "format"]),
    ("accuracy reward", ["rewards/accuracy_reward/mean", "rewards/accuracy_reward", "accuracy"]),
    ("loss", ["loss"]),
    ("KL", ["kl"]),
    ("completion length (tokens)", ["completions/mean_length", "completion_length"]),
]
SFT_PANELS = [("loss", ["loss"])]


def runs(spec: dict) -> list[tuple[str, str]]:
    """Distinct (model, chain) training runs behind all tables, in table order."""
    out = {}
    for table in spec["tables"].values():
        for _, row in iter_rows(table):
            for prefix in [] if row.get("cited") else layout.prefixes(row["chain"]):
                out[(row["model"], prefix)] = None
    return list(out)


def figure_names(spec: dict) -> list[str]:
    """File names srlm.figures writes into --out-dir (for the rule's declared outputs)."""
    return [f"train_{m}_{c}.png" for m, c in runs(spec)] + [f"{t}_accuracy.png" for t in spec["tables"]]


def series(rows: list[dict], keys: list[str]) -> tuple[str | None, list[float], list[float]]:
    """(key used, steps, values) for the first key with numeric values; "format"/"accuracy" match any
    `rewards/...<word>...` key (reward functions may be named otherwise)."""
    present = {k for r in rows for k in r}
    for key in keys:
        if key in present:
            cands = [key]
        elif "/" not in key:
            cands = sorted(
                k for k in present if k.startswith("rewards/") and key in k and not k.endswith("std")
            )
        else:
            cands = []
        for k in cands:
            pts = [
                (r.get("step", i + 1), r[k])
                for i, r in enumerate(rows)
                if isinstance(r.get(k), (int, float)) and not math.isnan(r[k])
            ]
            if pts:
                return k, [p[0] for p in pts], [p[1] for p in pts]
    return None, [], []


def training_figure(spec: dict, inputs: Inputs, model: str, chain: str, out: Path) -> None:
    """Curves of one run; panels whose metric was not logged say so."""
    path = inputs.path("metrics", model, chain)
    health = inputs.read("health", model, chain)
    rows = read_metrics(path) if path else []
    grpo = spec["stages"][layout.last_stage(chain)]["type"] == "grpo"
    panels = GRPO_PANELS if grpo else SFT_PANELS
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(max(7.0, 4.2 * ncols), 3.8 * nrows), squeeze=False)
    for ax, (title, keys) in zip(axes.flat, panels):
        key, x, y = series(rows, keys)
        ax.set_title(title if key is None else f"{title}\n({key})", fontsize=9)
        ax.set_xlabel("step")
        if key is None:
            ax.text(
                0.5,
                0.5,
                "not logged" if rows else f"no metrics yet:\n{path}",
                ha="center",
                va="center",
                transform=ax.transAxes,
                fontsize=8,
                wrap=True,
            )
            ax.set_xticks([])
            ax.set_yticks([])
        else:
            ax.plot(x, y, marker="." if len(x) < 50 else None)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # 3 steps: ticks 1, 2, 3, never 1.5
            ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    label = row_label({"model": model, "chain": chain}, spec["models"], spec["stages"])
    status = (health or {}).get("status", "no health.json")
    reason = f": {health['reason']}" if health and health.get("reason") else ""
    color = "red" if status == "collapsed" else None
    fig.suptitle(f"{label}\n{model}/{chain}: {status}{reason}", color=color, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def accuracy_figure(spec: dict, inputs: Inputs, name: str, out: Path) -> None:
    """Grouped bars: one group per benchmark, one bar per run row (pass@1 × 100 ± 95% CI), paper as ×."""
    table = spec["tables"][name]
    tspec = {**spec, "name": name, "table": table}
    rows = []
    for _, row in iter_rows(table):
        if not row.get("cited"):
            r = our_row(row, tspec, inputs)
            rows.append((r, row))
    labels = [r.label for r, _ in rows]
    cols = table["columns"]
    width = 0.8 / max(1, len(rows))
    fig, ax = plt.subplots(figsize=(max(8.0, 0.18 * len(rows) * len(cols) + 4), 5))
    cmap = plt.get_cmap("tab20")
    for i, (r, row) in enumerate(rows):
        xs = [j - 0.4 + width * (i + 0.5) for j in range(len(cols))]
        name_i = " ".join([r.label, *r.marks])
        if labels.count(r.label) > 1:
            name_i += f" [{row['chain']}]"
        have = [j for j, v in enumerate(r.values) if v is not None]
        err = [[r.values[j] - r.cis[j][0] for j in have], [r.cis[j][1] - r.values[j] for j in have]]
        bars = ax.bar(
            [xs[j] for j in have],
            [r.values[j] for j in have],
            width,
            yerr=err,
            capsize=1.5,
            color=cmap(i % 20),
            edgecolor=cmap(i % 20),  # a zero bar stays visible as a line at 0
            linewidth=1.2,
            label=name_i,
            error_kw={"elinewidth": 0.7},
        )
        ax.bar_label(bars, labels=[fmt(r.values[j]) for j in have], fontsize=6, rotation=90, padding=2)
        paper = [(xs[j], v) for j, v in enumerate(row.get("paper") or []) if v is not None]
        if paper:
            ax.scatter(
                *zip(*paper),
                marker="x",
                color="black",
                s=14,
                zorder=3,
                label=None if "paper" in ax.get_legend_handles_labels()[1] else "paper",
            )
    ax.set_xticks(range(len(cols)), [spec["benchmarks"][c]["label"] for c in cols])
    ax.set_ylabel("pass@1 (%)")
    top = max(1.0, ax.get_ylim()[1]) * 1.15  # room for the value labels; near-zero tables keep a 0-1 scale
    ax.set_ylim(-0.02 * top, top)  # zero bars sit just above the axis line, not on it
    ax.axhline(0, color="grey", linewidth=0.5, zorder=0)
    ax.set_title(f"{table['title']} — ours (bars, 95% CI) vs. the paper (×)", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    if rows:
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.text(0.5, 0.5, "no run rows in this table", ha="center", transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def write_all(spec: dict, inputs: Inputs, out_dir: Path) -> list[Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for model, chain in runs(spec):
        written.append(out_dir / f"train_{model}_{chain}.png")
        training_figure(spec, inputs, model, chain, written[-1])
    for name in spec["tables"]:
        written.append(out_dir / f"{name}_accuracy.png")
        accuracy_figure(spec, inputs, name, written[-1])
    return written


@cli
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--spec", type=load_spec, required=True, help="JSON: tables, models, stages, benchmarks, ... (inline JSON or a file)")
    p.add_argument("--inputs", type=load_spec, required=True, help="JSON (inline or a file): the declared inputs")
    p.add_argument("--out-dir", type=Path, required=True)
    a = p.parse_args(argv)
    write_all(a.spec, Inputs(a.inputs), a.out_dir)


if __name__ == "__main__":
    main()
