"""What a new user reads must match what the workflow does: the committed rule graph and `make graphs`."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, copy_workflow, snakemake


def test_committed_rulegraph_names_every_rule():
    """images/rulegraph.svg (README) is drawn by `make graphs`; a rule added or renamed without redrawing it fails
    here instead of leaving a stale picture."""
    rules = set(snakemake("--list-rules").stdout.split())
    drawn = set(re.findall(r">([a-z_0-9]+)</text>", (REPO / "images/rulegraph.svg").read_text()))
    assert "generate" in rules and "all" in rules
    assert drawn == rules, f"redraw with `make graphs`: missing {rules - drawn}, gone {drawn - rules}"


def test_make_graphs_without_graphviz_fails_cleanly_and_keeps_the_picture(tmp_path):
    """No `dot` on PATH: `make graphs` says what to install and leaves the committed picture intact (it used to
    truncate it to 0 bytes through the shell redirection of a failing pipe)."""
    (tmp_path / "work").mkdir()
    work = copy_workflow(tmp_path / "work")
    shutil.copy2(REPO / "Makefile", work / "Makefile")
    (work / "images").mkdir()
    picture = work / "images/rulegraph.svg"
    shutil.copy2(REPO / "images/rulegraph.svg", picture)
    before = picture.read_bytes()
    bin_dir = tmp_path / "bin"  # the commands the recipe may call, without graphviz
    bin_dir.mkdir()
    for tool in ("sh", "mkdir", "mv", "rm"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    venv = Path(sys.prefix)
    env = {**os.environ, "PATH": str(bin_dir)}
    proc = subprocess.run(
        [shutil.which("make"), "--assume-old", f"{venv}/.installed", f"VENV={venv}", "graphs"],
        cwd=work, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert shutil.which("dot", path=f"{venv}/bin{os.pathsep}{bin_dir}") is None
    assert proc.returncode != 0
    assert "graphviz" in proc.stderr and "not installed" in proc.stderr, proc.stderr
    assert picture.read_bytes() == before


def test_snakemake_lint_is_clean():
    """`snakemake --lint` (the Snakemake workflow catalog's check) finds nothing: it exits 1 on any lint."""
    proc = snakemake("--lint", check=False)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert "good condition" in proc.stdout + proc.stderr


def test_real_data_overlay_without_the_data_says_where_to_get_it(tmp_path):
    """README step 2 in a clone without ../shared/data: the run stops before planning, names each missing file
    and points to docs/data.md (in the repository), which says where the files come from and their format."""
    (tmp_path / "clone").mkdir()
    work = copy_workflow(tmp_path / "clone")
    proc = snakemake("--configfile", "config/smollm2.yaml", "--cores", "16", "--resources", "gpu=2", "-n",
                     cwd=work, check=False)  # fmt: skip
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in text
    assert "benchmarks.math500.local_path: no file '../shared/data/math500/test.jsonl'" in text, text[-2000:]
    assert "docs/data.md says where to download each one" in text
    data_doc = (REPO / "docs/data.md").read_text()
    for fmt in ("gsm8k", "math500", "minerva", "amc23", "olympiadbench"):
        assert f"(`{fmt}`" in data_doc, fmt  # each format's fields are documented


def test_demo_logs_live_under_its_results_and_clean_demo_removes_only_them(tmp_path):
    """Every job of the demo logs and times itself under results/demo, so `make clean-demo` (rm -rf results/demo)
    removes all of the demo and nothing of a real run: its outputs, logs, timings and Snakemake's metadata."""
    plan = snakemake("-n", "--configfile", "config/demo.yaml").stdout
    logs = re.findall(r"^\s*log: (\S+)", plan, re.MULTILINE)
    timings = re.findall(r"^\s*benchmark: (\S+)", plan, re.MULTILINE)
    assert len(logs) > 100 and timings
    assert all(p.startswith("results/demo/logs/") for p in logs), [p for p in logs if "results/demo/" not in p]
    assert all(p.startswith("results/demo/benchmarks/") for p in timings)
    real = ["results/table2.md", "results/logs/train_sft/qwen2.5-0.5b/sft.log",
            "results/benchmarks/train_sft/qwen2.5-0.5b/sft.tsv", ".snakemake/metadata/x", "logs/old.log"]  # fmt: skip
    for f in [*real, "results/demo/table2.md", "results/demo/logs/grade/x.log"]:
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("x")
    shutil.copy2(REPO / "Makefile", tmp_path / "Makefile")
    subprocess.run([shutil.which("make"), "clean-demo"], cwd=tmp_path, check=True, capture_output=True, timeout=60)
    assert not (tmp_path / "results/demo").exists()
    assert all((tmp_path / f).is_file() for f in real)


def test_snakemake_files_are_snakefmt_clean():
    """`snakefmt --check` (the Snakemake workflow catalog's formatter; settings in pyproject.toml) passes."""
    snakefmt = Path(sys.executable).parent / "snakefmt"
    proc = subprocess.run([str(snakefmt), "--check", "Snakefile", "workflow/rules"], cwd=REPO,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, f"run `snakefmt Snakefile workflow/rules`:\n{proc.stderr[-3000:]}"
