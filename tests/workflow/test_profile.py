"""profiles/slurm deploys every rule in its conda environment (issue 14): planned with the real profile, the
paper's Table 2 builds envs/train.yaml for training, envs/eval.yaml for generation and envs/data.yaml for the
local rules; without conda the documented escape (`--sdm env-modules`) plans the same jobs.

Even a dry run under `software-deployment-method: conda` asks conda for its version, settings and prefix. CI has
no conda (no conda channel is reachable here), so a stand-in on PATH answers those three queries the way conda
24 does; it cannot create an environment, and a dry run never asks it to.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, copy_workflow, job_counts

CONDA_INFO = {"conda_version": "24.11.3", "platform": "linux-64", "channels": [], "envs_dirs": []}
CONDA_CONFIG = {"get": {"channel_priority": "strict"}, "success": True, "warnings": []}


def stand_in_conda(bin_dir: Path, calls: Path) -> None:
    root = bin_dir.parent / "conda-root"
    info = json.dumps({**CONDA_INFO, "root_prefix": str(root), "conda_prefix": str(root)})
    script = f"""#!/bin/sh
echo "$*" >> {calls}
case "$1 $2" in
  "--version "*) echo "conda {CONDA_INFO["conda_version"]}" ;;
  "info --json") echo '{info}' ;;
  "config --get") echo '{json.dumps(CONDA_CONFIG)}' ;;
  *) echo "stand-in conda: '$*' is not a dry run's query" >&2; exit 2 ;;
esac
"""
    bin_dir.mkdir(parents=True)
    (bin_dir / "conda").write_text(script)
    (bin_dir / "conda").chmod(0o755)


def plan(work: Path, path: str, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": os.pathsep.join([path, str(Path(sys.executable).parent), "/usr/bin", "/bin"])}
    cmd = [sys.executable, "-m", "snakemake", "-n", "results/table2.md", "--profile", "profiles/slurm", *extra]
    return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=600, check=False)


def test_slurm_profile_deploys_each_rules_conda_env(tmp_path):
    (tmp_path / "work").mkdir()
    work = copy_workflow(tmp_path / "work")
    calls = tmp_path / "conda-calls.log"
    stand_in_conda(tmp_path / "bin", calls)
    proc = plan(work, str(tmp_path / "bin"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    for name in ("train", "eval", "data"):
        assert f"Conda environment envs/{name}.yaml will be created." in out, out[-3000:]
    assert job_counts(out)["train_sft"] == 8 and job_counts(out)["generate"] == 60
    assert calls.read_text().strip(), "the profile did not ask conda anything: conda is not the deployment method"


def test_without_conda_the_profile_says_so_and_env_modules_plans_the_same_jobs(tmp_path):
    (tmp_path / "work").mkdir()
    work = copy_workflow(tmp_path / "work")
    empty = tmp_path / "no-conda"
    empty.mkdir()
    refused = plan(work, str(empty))
    assert refused.returncode != 0 and "conda" in refused.stderr, refused.stderr[-2000:]
    proc = plan(work, str(empty), "--sdm", "env-modules")
    assert proc.returncode == 0, proc.stderr[-3000:]
    counts = job_counts(proc.stdout + proc.stderr)
    assert (counts["train_sft"], counts["train_grpo"], counts["generate"]) == (8, 2, 60), counts


def test_env_files_name_no_path_of_the_checkout():
    """--sdm conda copies each env file into .snakemake/conda/<hash>.yaml before building it: a relative path or
    an editable install (`-e ..`) inside it would resolve there, not in the checkout."""
    for f in sorted((REPO / "envs").glob("*.yaml")):
        text = f.read_text()
        assert not re.search(r"^\s*-\s*(-e\s|\.\.?/|file:)", text, re.MULTILINE), f
