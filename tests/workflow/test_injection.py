"""Config values that reach a shell command are data, never code (issue 32): a hostile `results` folder (with a
space, `$(...)`, backquotes and `;`), a hostile DeepSpeed config path and a hostile workflow folder must each
land in the command as one intact argument, and no command may run what they hold.

Three checks: every field of every rule's `shell:` is quoted (a static scan, so a new rule cannot forget); the
exact commands `snakemake -n -p` prints for the whole demo grid keep each hostile value one token, and running
every one of them with a stand-in `python` creates no marker; the cheap jobs (data, a tiny model, its sampling
and grading) really run under the hostile config and create no marker.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import yaml

from tests.conftest import REPO, copy_workflow, snakemake

RESULTS = "r $(touch M_results);`touch M_results2`"
DEEPSPEED = "ds$(touch M_ds)/z`touch M_ds2`;.json"
BENCH = "m500 $(touch M_bench)'`touch M_bench2`.jsonl"


def shell_fields():
    """(rule file, field) of every {field} in a shell: string of the rules."""
    for smk in sorted((REPO / "workflow" / "rules").glob("*.smk")):
        for block in re.findall(r"^    shell:\n((?:        .*\n)+)", smk.read_text(), flags=re.M):
            for field in re.findall(r"(?<!\{)\{([^{}]+)\}(?!\})", block):
                yield smk.name, field


def test_every_shell_field_is_quoted():
    fields = list(shell_fields())
    assert len(fields) > 40  # the scan found the rules' commands
    unquoted = [(f, x) for f, x in fields if not x.endswith(":q")]
    assert not unquoted, f"shell fields without :q (quote them; a list param is quoted argument by argument): {unquoted}"


def hostile_workflow(tmp_path: Path) -> Path:
    wf = Path(tmp_path, "wf $(touch M_dir)")
    wf.mkdir()
    copy_workflow(wf)
    ds = wf / DEEPSPEED
    ds.parent.mkdir(parents=True)
    ds.write_text((REPO / "envs" / "deepspeed" / "zero2.json").read_text())
    bench = wf / BENCH  # a data file whose name is shell syntax (it reaches the job inside a JSON param)
    bench.write_text("".join(json.dumps({"problem": f"What is {i} + 1?", "answer": str(i + 1), "unique_id": str(i)})
                             + "\n" for i in range(4)))  # fmt: skip
    (wf / "hostile.yaml").write_text(
        yaml.safe_dump(
            {
                "results": RESULTS,
                "launch": {"deepspeed": DEEPSPEED},
                "prompt": {"system": "It's $(touch M_prompt) `touch M_prompt2`"},
                "benchmarks": {"math500": {"source": "local", "local_path": BENCH}},
                # the KD command line (regenerated traces) only appears for this source; planned, not run
                "data": {"kd": {"source": "generate"}},
            }
        )
    )
    return wf


def markers(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("M_*"))


def test_hostile_values_stay_one_argument_and_run_nothing(tmp_path):
    wf = hostile_workflow(tmp_path)
    configs = ("--configfile", "config/demo.yaml", "hostile.yaml")
    out = snakemake("-n", "-p", *configs, cwd=wf).stdout  # rule all: the demo's Table 2, cost, figures
    # KD rows of the other sources are decontaminated against the benchmark files: their paths (under the hostile
    # `results`) follow --bench on the KD command line.
    (wf / "kd.yaml").write_text(yaml.safe_dump({"data": {"kd": {"source": "synthetic"}}}))
    out += snakemake("-n", "-p", f"{RESULTS}/data/kd/train.jsonl", *configs, "kd.yaml", cwd=wf).stdout
    commands = [line.removeprefix("Shell command: ") for line in out.splitlines()
                if line.startswith("Shell command: ") and line != "Shell command: None"]  # fmt: skip
    rules = set(re.findall(r"^(?:local)?rule (\w+):$", out, flags=re.M))
    assert {"fetch_model", "prepare_kd", "train_sft", "train_grpo", "generate", "grade", "render_table"} <= rules
    assert len(commands) > 40, out[-3000:]
    distill = [shlex.split(c) for c in commands if "srlm.data.distill" in c]
    assert distill and distill[0].count("--bench") == 1
    benches = distill[0][distill[0].index("--bench") + 1:distill[0].index("--params")]
    assert len(benches) == 5 and all(b.startswith(RESULTS + "/data/bench/") for b in benches), distill
    deepspeed_seen = 0
    for cmd in commands:
        for token in shlex.split(cmd):
            if token.startswith("{"):  # a JSON param: one token that must parse (paths inside are data)
                json.loads(token)
            elif "M_results" in token:
                assert token.startswith(RESULTS + "/"), (token, cmd)
            elif "M_ds" in token:  # the flag (the configuration page's JSON holds the path too, as data)
                assert token == DEEPSPEED, (token, cmd)
                deepspeed_seen += 1
    assert deepspeed_seen  # the full-weight trainings pass it

    # Each printed command, run by bash with a `python` that does nothing: the shell's own expansions happen.
    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "python").write_text("#!/bin/sh\nexit 0\n")
    (stub / "python").chmod(0o755)
    env = {**os.environ, "PATH": f"{stub}{os.pathsep}{os.environ['PATH']}"}
    for cmd in commands:
        tokens = shlex.split(cmd)
        for log in [tokens[i + 1] for i, t in enumerate(tokens[:-1]) if t == ">"]:  # under the results folder
            (wf / log).parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["bash", "-c", cmd], cwd=wf, env=env, check=True, timeout=60)
    assert markers(tmp_path) == []


def test_cheap_jobs_run_under_hostile_values(tmp_path):
    """Data preparation, a tiny model, its sampling and one grading really run with a `results` folder that
    holds a space and shell syntax: they succeed, write under that very folder, and run nothing else."""
    wf = hostile_workflow(tmp_path)
    target = f"{RESULTS}/evals/qwen2.5-0.5b/base/math500.json"
    snakemake(target, f"{RESULTS}/data/gsm8k/train.jsonl", "--cores", "2",
              "--configfile", "config/demo.yaml", "hostile.yaml", cwd=wf)  # fmt: skip
    assert json.loads((wf / target).read_text())["n_problems"] == 4  # the benchmark file with the odd name
    assert markers(tmp_path) == []
