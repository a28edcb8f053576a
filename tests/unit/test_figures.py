"""Figures: every declared PNG is written, is a real non-blank image, and plots what was logged."""

import json
import math
from pathlib import Path

import matplotlib.image as mpimg
import yaml
from srlm import figures, layout, tables

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())


def spec():
    """Table 3's first two sections: runs kd, kd+rl, kd-lora, kd-lora+rl, sft, sft+rl, sft-lora, ..."""
    s = tables.report_spec(CONFIG)
    t3 = dict(CONFIG["tables"]["table3"], sections=CONFIG["tables"]["table3"]["sections"][:2])
    s["tables"] = {"table3": t3}
    return s


def declared(s, results) -> tables.Inputs:
    """What the render_figures rule declares (common.smk builds it the same way)."""
    cells = [
        (r["model"], r["chain"], b)
        for t in s["tables"].values()
        for _, r in tables.iter_rows(t)
        if not r.get("cited")
        for b in t["columns"]
    ]
    return tables.Inputs(layout.Layout(str(results)).inputs(cells, ["evals", "health", "metrics"]))


def write_metrics(results, model, chain, rows):
    path = Path(layout.Layout(str(results)).metrics(model, chain))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def grpo_rows(n):
    return [
        {
            "step": i,
            "loss": 0.01 * i,
            "grad_norm": 1.0,
            "learning_rate": 1e-6,
            "kl": 0.001 * i,
            "rewards/format_reward/mean": -1 + 2 * i / n,
            "rewards/format_reward/std": 0.1,
            "rewards/accuracy_reward/mean": -1 + i / n,
            "completions/mean_length": 100 + i,
        }
        for i in range(1, n + 1)
    ] + [{"train_runtime": 10.0, "step": n}]


def assert_real_png(path):
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = mpimg.imread(path)
    assert img.shape[0] > 100 and img.shape[1] > 100
    assert img[..., :3].std() > 0.01  # not a blank canvas


def test_all_declared_figures_are_written(tmp_path):
    results = tmp_path / "results"
    s = spec()
    base = "qwen2.5-0.5b"
    write_metrics(results, base, "kd", [{"step": i, "loss": 2 / i} for i in range(1, 20)])
    write_metrics(results, base, "kd+rl", grpo_rows(30))
    for b in s["tables"]["table3"]["columns"]:
        path = Path(layout.Layout(str(results)).eval_json(base, "kd+rl", b))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"pass_at_1": 0.1, "ci95": [0.05, 0.15], "not_extractable_rate": 0.0}))
    written = figures.write_all(s, declared(s, results), tmp_path / "figures")
    assert sorted(p.name for p in written) == sorted(figures.figure_names(s))
    assert sorted(p.name for p in (tmp_path / "figures").iterdir()) == sorted(figures.figure_names(s))
    assert {
        "train_qwen2.5-0.5b_kd.png",
        "train_qwen2.5-0.5b_kd+rl.png",
        "table3_accuracy.png",
        "train_qwen2.5-0.5b_sft-lora+rl.png",
    } <= set(figures.figure_names(s))
    for p in written:  # runs without metrics.jsonl get a figure that says so
        assert_real_png(p)


def test_series_reads_trl_names_and_tolerates_gaps():
    rows = grpo_rows(5)
    rows[2].pop("kl")
    rows[3]["kl"] = math.nan
    key, x, y = figures.series(rows, ["kl"])
    assert key == "kl" and x == [1, 2, 5]
    key, x, y = figures.series(rows, ["completions/mean_length", "completion_length"])
    assert key == "completions/mean_length" and y == [101, 102, 103, 104, 105]
    # A reward function named otherwise is still found by its word; the std series is not taken.
    renamed = [{"step": 1, "rewards/my_format_check/std": 0.2, "rewards/my_format_check/mean": 0.5}]
    assert (
        figures.series(renamed, dict(figures.GRPO_PANELS)["format reward"])[0]
        == "rewards/my_format_check/mean"
    )
    assert figures.series(rows, ["entropy"]) == (None, [], [])


def test_cli(tmp_path):
    (tmp_path / "spec.json").write_text(json.dumps(spec()))
    figures.main(
        [
            "--inputs",
            json.dumps(declared(spec(), tmp_path / "r").mapping),
            "--spec",
            str(tmp_path / "spec.json"),
            "--out-dir",
            str(tmp_path / "f"),
        ]
    )
    assert_real_png(tmp_path / "f" / "table3_accuracy.png")


def _drawn(monkeypatch):
    """The figures srlm.figures draws, kept open for inspection."""
    kept = []
    monkeypatch.setattr(figures.plt, "close", kept.append)
    return kept


def test_few_steps_get_integer_ticks(tmp_path, monkeypatch):
    results, kept = tmp_path / "results", _drawn(monkeypatch)
    write_metrics(results, "qwen2.5-0.5b", "kd", [{"step": i, "loss": 2 / i} for i in (1, 2, 3)])
    s = spec()
    figures.training_figure(s, declared(s, results), "qwen2.5-0.5b", "kd", tmp_path / "kd.png")
    ax = kept[0].axes[0]
    lo, hi = ax.get_xlim()
    ticks = [t for t in ax.get_xticks() if lo <= t <= hi]
    assert ticks and all(float(t).is_integer() for t in ticks)


def test_zero_and_tiny_bars_are_labelled_and_visible(tmp_path, monkeypatch):
    results, kept = tmp_path / "results", _drawn(monkeypatch)
    s = spec()
    for b, p in zip(s["tables"]["table3"]["columns"], [0.0, 0.0, 0.001, 0.0, 0.0]):
        path = Path(layout.Layout(str(results)).eval_json("qwen2.5-0.5b", "kd+rl", b))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"pass_at_1": p, "ci95": [0.0, p], "not_extractable_rate": 0.0}))
    figures.accuracy_figure(s, declared(s, results), "table3", tmp_path / "acc.png")
    ax = kept[0].axes[0]
    assert [t.get_text() for t in ax.texts if t.get_text()] == ["0.0", "0.0", "0.1", "0.0", "0.0"]
    bottom, top = ax.get_ylim()
    assert bottom < 0 and top >= 1.0  # zero bars just above the axis line; a 0-1 scale at least
