"""The tiny end-to-end run (config/demo.yaml) and partial rebuilds planned on top of it.

One session-scoped run of the demo DAG to table2.md in a copy of the workflow; the other tests plan against it.
"""

from __future__ import annotations

import base64
import fnmatch
import html
import json
import os
import re
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import yaml

from srlm import completions, grading
from tests.conftest import copy_workflow, planned_jobs, snakemake

pytestmark = pytest.mark.slow
TARGET = "results/demo/table2.md"


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("demo"))
    snakemake(TARGET, "--cores", "2", "--configfile", "config/demo.yaml", cwd=work)
    return work


def plan_with(work, overlay: dict | None = None) -> str:
    configs = ["config/demo.yaml"]
    if overlay is not None:
        (work / "overlay.yaml").write_text(yaml.safe_dump(overlay))
        configs.append("overlay.yaml")
    return snakemake("-n", TARGET, "--configfile", *configs, cwd=work).stdout


def test_table2_has_the_papers_rows_and_columns(demo):
    text = (demo / TARGET).read_text()
    header = next(line for line in text.splitlines() if line.startswith("| Method"))
    assert [c.strip() for c in header.strip("|").split("|")] == ["Method", "OB", "MATH500", "MINERVA", "AMC23", "GSM8K"]
    for section in ("Baselines", "Training on Base Model", "Training on Instruct Model"):
        assert section in text
    for label in (
        "Qwen2.5-0.5B+KD (Lora)",
        "Qwen2.5-0.5B-Instruct+SFT (Lora)",
        "Qwen2.5-0.5B+RL",
        "Qwen2.5-0.5B-Instruct+RL",
    ):
        assert f"| {label}" in text
    rows = [line for line in text.splitlines() if re.match(r"^\| (\*\*)?Qwen", line)]
    assert len(rows) == 12
    for row in rows:  # every cell holds a number we measured
        cells = [c.strip().strip("*") for c in row.strip("|").split("|")[1:]]
        assert all(re.fullmatch(r"\d+\.\d", c) for c in cells), row


def test_every_cell_was_evaluated_with_sampling(demo):
    evals = sorted((demo / "results/demo/evals").rglob("*.json"))
    assert len(evals) == 60
    first = json.loads(evals[0].read_text())
    assert first["n_samples"] == 2 and first["generation"]["temperature"] == 0.6
    assert 0.0 <= first["pass_at_1"] <= 1.0


BENCHMARKS = ("olympiadbench", "math500", "minerva", "amc23", "gsm8k")


def graded_samples(demo, model: str, chain: str) -> list[tuple[str, dict]]:
    """(sampled text, its grading details) for every sample of one row over the five benchmarks."""
    out = []
    for bench in BENCHMARKS:
        settings, rows = completions.read(demo / f"results/demo/completions/{model}/{chain}/{bench}.jsonl")
        assert settings["protocol"] == "paper"
        texts = {(r["id"], j): s["text"] for r in rows for j, s in enumerate(r["samples"])}
        details = [json.loads(x) for x in (demo / f"results/demo/evals/{model}/{chain}/{bench}.details.jsonl").open()]
        assert len(details) == len(texts) >= 32, bench  # 16-32 problems x 2 samples (config/demo.yaml)
        out += [(texts[d["id"], d["sample"]], d) for d in details]
    return out


def reads_the_box(text: str, detail: dict) -> bool:
    """The paper protocol's grader extracted the sample's own final answer (<answer>\\boxed{N}</answer>)."""
    boxed = grading.boxed_answer(text)
    return boxed is not None and detail["extracted"] is not None and grading.verify(detail["extracted"], boxed)


@pytest.mark.parametrize("model", ["qwen2.5-0.5b", "qwen2.5-0.5b-instruct"])
def test_sft_teaches_the_answer_form_the_paper_grader_reads(demo, model):
    """After SFT the paper protocol's grader reads the boxed answer of >= 90% of the samples; before, of almost
    none (it extracts *some* number from an untrained model's random text, but no box of its own). A training
    target that the grader misreads (a bare <answer>N</answer>: issue 31), or a grader that misses the box,
    fails here."""
    trained = graded_samples(demo, model, "sft")
    base = graded_samples(demo, model, "base")
    read_trained = sum(reads_the_box(t, d) for t, d in trained) / len(trained)
    read_base = sum(reads_the_box(t, d) for t, d in base) / len(base)
    assert read_trained >= 0.9, (read_trained, trained[:3])
    assert read_base <= 0.05, (read_base, base[:3])
    # what is graded correct is what the sample boxed: the right count, read from the box
    correct = [(t, d) for t, d in trained if d["correct"]]
    assert correct and all(reads_the_box(t, d) for t, d in correct), correct[:3]
    # the r1 protocol's grader (the <answer> span, its box if boxed) reads the same answers
    r1_reads = [grading.boxed_answer(t) is not None and grading.extract_answer(t) == grading.boxed_answer(t)
                for t, _ in trained]  # fmt: skip
    assert sum(r1_reads) / len(trained) >= 0.9, trained[:3]


def test_an_sft_row_beats_its_base_row_beyond_the_intervals(demo):
    """The demo's task (one count read back, srlm.data.synthetic level easy) is learnt by SFT: on every benchmark
    the 95% interval of an SFT row lies above its untrained row's. One of the two models suffices: when the tiny
    model starts to read the count back depends on its initialisation (150-300 steps of the demo's 400)."""

    def cell(model: str, chain: str, bench: str) -> dict:
        return json.loads((demo / f"results/demo/evals/{model}/{chain}/{bench}.json").read_text())

    for bench in BENCHMARKS:
        models = ("qwen2.5-0.5b", "qwen2.5-0.5b-instruct")
        rows = {m: (cell(m, "sft", bench), cell(m, "base", bench)) for m in models}
        seen = {m: (s["pass_at_1"], s["ci95"], b["pass_at_1"], b["ci95"]) for m, (s, b) in rows.items()}
        assert any(sft["ci95"][0] > base["ci95"][1] for sft, base in rows.values()), (bench, seen)


def test_lora_stage_is_merged_and_hybrid_reuses_parent(demo):
    models = demo / "results/demo/models/qwen2.5-0.5b"
    assert (models / "kd-lora/model/model.safetensors").is_file()  # full merged weights
    assert (models / "kd-lora/work/adapter/adapter_config.json").is_file()
    summary = json.loads((models / "rl/train_summary.json").read_text())
    assert summary["settings"]["beta"] == 0.04 and summary["settings"]["loss_type"] == "grpo"


def test_nothing_to_do_when_nothing_changed(demo):
    out = plan_with(demo)
    assert "Nothing to be done" in out, out[-2000:]


def test_rl_learning_rate_change_reruns_only_rl_chains(demo):
    jobs = planned_jobs(plan_with(demo, {"stages": {"rl": {"learning_rate": 2.0e-6}}}))
    counts = Counter(r for r, _ in jobs)
    # one generation job per (model, chain) in the demo (config/demo.yaml generate_per), 5 gradings each
    assert counts == {"train_grpo": 2, "check_health": 2, "generate": 2, "grade": 10, "render_table": 1}
    assert all(w["chain"] == "rl" for r, w in jobs if r in ("train_grpo", "check_health", "generate", "grade"))


def test_benchmark_sampling_change_regenerates_whole_chains_in_the_demo(demo):
    """The demo generates per (model, chain): one benchmark's sampling reruns every chain's one generation job,
    which rewrites all five benchmarks, so all are graded again. With config.yaml's one job per benchmark only
    that benchmark's evaluations rerun (tests/workflow/test_plan.py)."""
    jobs = planned_jobs(plan_with(demo, {"benchmarks": {"math500": {"generation": {"temperature": 0.8}}}}))
    counts = Counter(r for r, _ in jobs)
    assert counts == {"generate": 12, "grade": 60, "render_table": 1}
    assert all("benchmark" not in w for r, w in jobs if r == "generate")


# ---------------------------------------------------------------- the report, as a browser shows it

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = (1400, 1000)
# Runs `setup` once the report app has loaded, then measures where some elements are, in the window's
# coordinates: what a user sees in the first viewport, not only what is in the DOM. The measures land in
# <pre id="srlm-probe"> as JSON: {text or #id: {top, bottom, height, inner_height, table_text} | null}.
PROBE = """<script>window.addEventListener("load", () => setTimeout(() => {{
  {setup}
  setTimeout(() => {{
    const box = (el) => {{
      if (!el) return null;
      const r = el.getBoundingClientRect(), table = el.closest("table");
      return {{top: r.top, bottom: r.bottom, height: r.height, inner_height: window.innerHeight,
              table_text: table ? table.textContent : null}};
    }};
    const find = (text) => [...document.body.querySelectorAll("*")]
      .filter((e) => !["SCRIPT", "STYLE"].includes(e.tagName) && e.textContent.includes(text))
      .sort((a, b) => a.textContent.length - b.textContent.length)[0];
    const probe = {{}};
    for (const t of {texts}) probe[t] = box(find(t));
    for (const id of {ids}) probe["#" + id] = box(document.getElementById(id));
    probe.cells = [...document.querySelectorAll("td")].map((td) => td.getBoundingClientRect().height);
    const pre = document.createElement("pre");
    pre.id = "srlm-probe";
    pre.textContent = JSON.stringify(probe);
    document.body.appendChild(pre);
  }}, 500);
}}, 100));</script>"""
# Opens one result of the report the way its eye button does (the report app's own `results` and `app`).
SHOW = """const path = Object.keys(results).find((k) => k.endsWith("{suffix}"));
  app.setView({{navbarMode: "category", category: "{category}", content: "{content}",
               contentPath: results[path].data_uri, resultPath: path}});"""
# Opens a subcategory's list of results in the navigation.
LIST = """app.setView({{navbarMode: "subcategory", category: "{category}", subcategory: "{subcategory}"}});"""


@pytest.fixture(scope="session")
def demo_report(demo):
    """Rule all of the demo (Table 2 with its HTML pages, cost and figures) and its report: README's (and
    `make demo`'s) two commands as written."""
    snakemake("--cores", "2", "--configfile", "config/demo.yaml", cwd=demo)
    snakemake("--report", "results/demo/report.html", "--configfile", "config/demo.yaml", cwd=demo)
    return demo / "results/demo/report.html"


def test_every_file_under_results_is_declared(demo_report):
    """Every file the demo's jobs wrote is a declared output (or inside a declared folder), a declared log or a
    benchmark record, as `snakemake --summary` lists them, or one of the places srlm.layout documents as no
    output: work folders (checkpoints a requeued job resumes from), TensorBoard events beside a log, the KD
    regeneration's partial log, and the report `snakemake --report` writes. A job writing anything else (an
    undeclared report, a folder beside its model) fails here. Runs before the browser test, which adds its own
    probe pages beside the report."""
    from srlm.layout import Layout

    demo, results = demo_report.parents[2], demo_report.parent
    layout = Layout(str(results.relative_to(demo)))
    summary = snakemake("--summary", "--configfile", "config/demo.yaml", cwd=demo).stdout.splitlines()
    header = summary.index(next(line for line in summary if line.startswith("output_file\t")))
    rows = [line.split("\t") for line in summary[header + 1 :] if line.strip()]
    declared = {row[0] for row in rows} | {log for row in rows for log in row[3].split(",") if log != "-"}
    assert layout.table("table2") in declared and layout.log("render_config") in declared, sorted(declared)[:20]
    undeclared_places = [layout.benchmark("*"), f"{layout.work_dir('*', '*')}/*", f"{layout.tensorboard('*')}/*",
                         layout.kd_partial(), f"{layout.results}/report.html"]  # fmt: skip

    def declared_file(path: str) -> bool:
        return any(path == d or path.startswith(d.rstrip("/") + "/") for d in declared) or any(
            fnmatch.fnmatchcase(path, pattern) for pattern in undeclared_places
        )

    written = [str(f.relative_to(demo)) for f in results.rglob("*") if f.is_file()]
    assert len(written) > 200, len(written)  # the demo ran: models, completions, evals, tables, logs
    assert [f for f in written if not declared_file(f)] == []
    assert any(fnmatch.fnmatchcase(f, f"{layout.work_dir('*', '*')}/*") for f in written)  # the allowance is used


def chromium(page: Path, setup: str = "", texts=(), ids=(), screenshot: Path | None = None,
             window: tuple[int, int] = WINDOW) -> tuple[str, dict]:  # fmt: skip
    """(DOM after headless Chromium ran the page's scripts and `setup`, the probe's measures); optionally a
    screenshot of the first viewport."""
    probed = page.with_name(f"probe-{abs(hash((setup, texts, ids)))}.html")
    probed.write_text(page.read_text() + PROBE.format(setup=setup, texts=json.dumps(texts), ids=json.dumps(ids)))
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
           f"--window-size={window[0]},{window[1]}"]  # fmt: skip
    cmd += [f"--screenshot={screenshot}"] if screenshot else ["--dump-dom"]
    proc = subprocess.run([*cmd, probed.as_uri()], capture_output=True, text=True, timeout=300, check=True)
    if screenshot:
        return "", {}
    probe = re.search(r'<pre id="srlm-probe">(.*?)</pre>', proc.stdout, re.DOTALL)
    assert probe, proc.stdout[-3000:]
    return proc.stdout, json.loads(html.unescape(probe.group(1)))


def in_view(box: dict | None) -> bool:
    """The element lies wholly within the first viewport."""
    return box is not None and box["top"] >= 0 and box["bottom"] <= box["inner_height"] and box["height"] > 0


def _iframe_page(dom: str) -> str:
    src = re.search(r'<iframe src="data:text/html;charset=[^;]+;filename=[^;]+;base64,([^"]+)"', dom)
    assert src, dom[-3000:]
    return base64.b64decode(src.group(1)).decode()


@pytest.mark.skipif(
    CHROMIUM is None and not os.environ.get("SRLM_REQUIRE_CHROMIUM"),
    reason="needs Debian's chromium; CI installs it and sets SRLM_REQUIRE_CHROMIUM=1, so there it must run",
)
def test_report_as_a_browser_shows_it(demo_report, tmp_path):
    # The landing page: the description and the rule graph in the first viewport (not centred off-screen).
    intro = ("srlm-repro reproduces", "How a number is made", "On the left.", "This is the demo")
    _, seen = chromium(demo_report, texts=intro + ("Configuration", "Table 2", "All tables"), ids=("rulegraph",))
    for key in (*intro, "Configuration", "Table 2", "All tables"):
        assert in_view(seen[key]), (key, seen[key])
    graph = seen["#rulegraph"]
    assert graph and 0 <= graph["top"] < graph["inner_height"] / 2 and graph["height"] > 300, graph
    # Navigation lists what each result is (its label), not its file path.
    _, listed = chromium(demo_report, LIST.format(category="Table 2", subcategory="Tables"),
                         texts=("Our numbers, in the paper's layout", "Ours vs. the paper, with 95% intervals"))  # fmt: skip
    for label, box in listed.items():
        if label != "cells":
            assert in_view(box) and "results/demo" not in box["table_text"], (label, box)
    # Table 2, its cost page and its figures open in the content pane.
    dom, _ = chromium(demo_report, SHOW.format(suffix="table2.html", category="Table 2", content="html"))
    for sub in ("Tables", "Cost", "Accuracy", "Training curves"):
        assert f">{sub}<" in dom, sub
    page = _iframe_page(dom)
    assert "<table>" in page and "Qwen2.5-0.5B-Instruct+RL" in page and "| Method" not in page
    dom, _ = chromium(demo_report, SHOW.format(suffix="cost/table2.html", category="Table 2", content="html"))
    assert "<table>" in _iframe_page(dom)
    dom, _ = chromium(demo_report, SHOW.format(suffix="table2_accuracy.png", category="Table 2", content="img"))
    assert re.search(r'<img src="data:image/png;charset=[^;]+;filename=table2_accuracy.png;base64,', dom)
    # The configuration has its own page, one row per setting.
    dom, _ = chromium(demo_report, SHOW.format(suffix="config.html", category="Configuration", content="html"))
    assert "<code>launch.report_to</code>" in _iframe_page(dom)
    # Ours vs. the paper (16 columns) at the width of the report's content pane (the window less the navigation):
    # no cell wraps to a second line; the table scrolls sideways instead.
    vs_paper = demo_report.parent / "table2_vs_paper.html"
    _, cells = chromium(vs_paper, texts=("Qwen2.5-0.5B-Instruct+RL",), window=(WINDOW[0] - 350, WINDOW[1]))
    one_line = cells["Qwen2.5-0.5B-Instruct+RL"]["height"]
    assert len(cells["cells"]) > 100 and max(cells["cells"]) <= 1.5 * one_line, (one_line, max(cells["cells"]))
    # The first viewport as a picture (docs/report.png with SRLM_REPORT_SCREENSHOT=docs/report.png).
    shot = Path(os.environ.get("SRLM_REPORT_SCREENSHOT") or tmp_path / "report.png")
    chromium(demo_report, screenshot=shot.resolve())
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
