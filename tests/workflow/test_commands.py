"""Every command README.md and the config headers give a user, run as written or as its dry run (`-n`).

The commands are extracted from the files, not copied here: each must be listed in HOW with how it is exercised,
so a new or changed command fails `test_every_command_is_exercised` until it is. Modes:
  run      as written (a copy of the workflow where it writes files);
  dry      with `-n` appended: a full run trains models (GPUs, or minutes of CPU); the plan checks the targets,
           config and rules resolve;
  elsewhere: the named test runs it (the demo, the lighteval CLI, SLURM, CI's own make targets);
  no       with the reason (a command that follows a log forever, starts a server or deletes a user's files).
Commands reading the real data (../shared/data beside the checkout) must plan where it is, and elsewhere stop
with the message that says where to get it (docs/data.md).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, WORKFLOW_FILES, copy_workflow

DEMO = "tests/workflow/test_demo.py (demo_report)"
CI = ".ci/run (CI runs it)"
LIGHTEVAL = "tests/vllm/test_lighteval_cli.py (make test-vllm)"
SLURM = "tests/slurm/test_slurm.py (make test-slurm: a real one-node cluster) and tests/workflow/test_profile.py"
FINISHED = "needs a finished run of its config (GPUs); the same command on the demo's config: " + DEMO
HOW = {
    # README.md
    "make demo": ("run", "make -n demo: its two commands, README's; the demo itself: " + DEMO),
    "time make demo": ("run", "as make demo"),
    "make test": ("elsewhere", CI),
    "make test-distill": ("elsewhere", CI),
    "make check-locks": ("elsewhere", CI),
    "make test-vllm": ("elsewhere", CI),
    "make test-slurm": ("elsewhere", CI),
    "make .venv-vllm/.installed": ("elsewhere", CI + ", as make test-vllm's prerequisite"),
    "source .venv/bin/activate": ("run", "in bash, then snakemake --version from it"),
    "source .venv-vllm/bin/activate": ("elsewhere", LIGHTEVAL),
    "snakemake --cores 2 --configfile config/demo.yaml": ("dry", "the full run: " + DEMO),
    "snakemake --report results/demo/report.html --configfile config/demo.yaml": ("elsewhere", DEMO),
    "snakemake --report results/report.html": ("elsewhere", FINISHED),
    "snakemake --report": ("elsewhere", FINISHED),
    "snakemake --report results/smollm2/report.html --configfile config/smollm2.yaml": ("elsewhere", FINISHED),
    "snakemake -n": ("run", "the paper's grid, rule all"),
    "snakemake -n results/table2.md": ("run", ""),
    "snakemake -n results/table3.md": ("run", ""),
    "snakemake results/table2.md --forcerun results/models/qwen2.5-0.5b/sft/model": ("dry", ""),
    "snakemake --configfile config/smollm2.yaml --cores 16 --resources gpu=2": ("dry", "real data"),
    "snakemake results/table2.md --profile profiles/slurm": ("elsewhere", SLURM),
    "snakemake results/table1.md results/table2.md results/table3.md --profile profiles/slurm": ("elsewhere", SLURM),
    "snakemake --profile profiles/slurm": ("elsewhere", SLURM),
    'mkdir -p ~/.config/snakemake && ln -s "$PWD/profiles/slurm" ~/.config/snakemake/slurm': ("elsewhere", SLURM),
    "make graphs": ("run", "in a copy; needs graphviz"),
    "snakemake results/table3.md --dag dot > dag.dot && dot -Tsvg dag.dot -o dag.svg": ("run", "in a copy"),
    "make clean-demo": ("elsewhere", "tests/workflow/test_docs.py (clean-demo removes only the demo)"),
    "python -m srlm.config --configfile FILE...": ("run", "FILE... = config/demo.yaml"),
    "tail -f results/logs/train_grpo/qwen2.5-0.5b/rl.log": ("no", "follows a log until interrupted"),
    "tensorboard --logdir results/logs": ("no", "starts a server"),
    "rm -rf results/models/*/*/work": ("no", "deletes a run's checkpoints; the automatic form: test_cleanup.py"),
    # config headers
    "snakemake results/table2.md --configfile config/local-data.yaml": ("dry", "real data"),
    "snakemake results/smollm2/table2.md results/smollm2/table3.md --configfile config/smollm2.yaml --cores 16 "
    "--resources gpu=2": ("dry", "real data"),
    "snakemake --configfile config/qwen25-coder.yaml --cores 16 --resources gpu=2 --scheduler greedy": (
        "dry",
        "real data; the run itself: perf/gpu_run.sh qwen25-coder on one H100 (docs/real-weights.md)",
    ),
    "snakemake --configfile config/qwen25-coder.yaml config/qwen25-coder-vllm.yaml --cores 16 --resources gpu=1 "
    "--scheduler greedy": ("dry", "real data; the run itself: perf/gpu_run.sh qwen25-coder-vllm on one GPU (docs/vllm.md)"),
}
STARTS = ("snakemake ", "make ", "python -m srlm.config ", "time ", "source ", "tail ", "tensorboard ", "rm ",
          "mkdir ", "lighteval ", "SRLM_")  # fmt: skip


def readme_commands() -> list[str]:
    """Each line of README's bash blocks (continuations joined, comments dropped) and each inline `command`
    of its prose that is a whole command (a program and at least one argument)."""
    text = (REPO / "README.md").read_text()
    out = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.DOTALL):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line:
                out.append(" ".join(line.split()))
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    for span in re.findall(r"`([^`\n]+)`", prose):
        if span.startswith(STARTS) and " " in span:
            out.append(span)
    return list(dict.fromkeys(out))


def header_commands() -> list[str]:
    """Commands in the leading comment block of each config file: `#   snakemake ...` lines (indented, as shell
    examples), continuation lines joined."""
    out = []
    for f in sorted((REPO / "config").glob("*.yaml")):
        header = []
        for line in f.read_text().splitlines():
            if not line.startswith("#"):
                break
            header.append(line)
        joined = "\n".join(header).replace("\\\n#", " ")
        for m in re.finditer(r"^#\s{2,}((?:snakemake|make|python) .*)$", joined, re.MULTILINE):
            out.append(" ".join(re.sub(r"\s+#.*$", "", m.group(1)).split()))
    return out


COMMANDS = list(dict.fromkeys(readme_commands() + header_commands()))
BACKENDS = ("lighteval accelerate", "lighteval vllm")
IS_LIGHTEVAL = re.compile(r"^(SRLM_\w+=\S+ )?lighteval (accelerate|vllm) ")


def how(command: str) -> tuple[str, str]:
    if IS_LIGHTEVAL.match(command):
        return ("elsewhere", LIGHTEVAL)
    if command in BACKENDS:
        return ("no", "names a backend in prose")
    return HOW[command]


def test_every_command_is_exercised():
    assert len(COMMANDS) > 25
    unlisted = [c for c in COMMANDS if not IS_LIGHTEVAL.match(c) and c not in HOW and c not in BACKENDS]
    assert not unlisted, f"say in HOW how these are exercised: {unlisted}"
    gone = [c for c in HOW if c not in COMMANDS]
    assert not gone, f"no longer in README.md or a config header: {gone}"
    assert sum(bool(IS_LIGHTEVAL.match(c)) for c in COMMANDS) == 2


def env() -> dict:
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def shell(command: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(["bash", "-c", command], cwd=cwd, env=env(), capture_output=True, text=True, timeout=900)
    if check:
        assert proc.returncode == 0, f"{command}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc


def copy(tmp_path: Path) -> Path:
    work = tmp_path / "work"
    work.mkdir()
    copy_workflow(work)
    for name in ("Makefile", "images"):
        src = REPO / name
        shutil.copytree(src, work / name) if src.is_dir() else shutil.copy2(src, work / name)
    return work


RUNNABLE = [c for c in COMMANDS if how(c)[0] in ("run", "dry")]


@pytest.mark.parametrize("command", RUNNABLE)
def test_command(command, tmp_path):
    mode, _ = how(command)
    real_data = "real data" in how(command)[1]
    if command in ("make demo", "time make demo"):
        recipe = shell("make -n --assume-old .venv/.installed demo", REPO).stdout
        assert "snakemake --cores 2 --configfile config/demo.yaml\n" in recipe
        assert "snakemake --report results/demo/report.html --configfile config/demo.yaml\n" in recipe
        return
    if command == "source .venv/bin/activate":
        if Path(sys.prefix).resolve() != (REPO / ".venv").resolve():
            pytest.skip("runs where the tests run in the repository's .venv (make test)")
        assert "snakemake" in shell(f"{command} && command -v snakemake", REPO).stdout
        return
    if command == "python -m srlm.config --configfile FILE...":
        out = shell("python -m srlm.config --configfile config/demo.yaml", REPO).stdout
        assert "configuration is valid" in out
        return
    if command == "make graphs":
        if shutil.which("dot") is None:
            pytest.fail("needs graphviz's dot (CI installs it)")
        work = copy(tmp_path)
        shell(f"make --assume-old {sys.prefix}/.installed VENV={sys.prefix} graphs", work)
        drawn = (work / "images/rulegraph.svg").read_text()  # edge order varies from run to run; the rules not
        rules = re.compile(r">([a-z_0-9]+)</text>")
        assert set(rules.findall(drawn)) == set(rules.findall((REPO / "images/rulegraph.svg").read_text()))
        return
    if mode == "run" and ">" in command:  # writes files: in a copy
        if shutil.which("dot") is None:
            pytest.fail("needs graphviz's dot (CI installs it)")
        work = copy(tmp_path)
        shell(command, work)
        assert (work / "dag.svg").read_text().lstrip().startswith("<?xml")
        return
    assert command.startswith("snakemake "), command
    argv = command.split()
    if mode == "dry":
        argv.append("-n")
    has_data = (REPO.parent / "shared" / "data").is_dir()
    proc = shell(" ".join(argv), REPO, check=not real_data or has_data)
    if real_data and not has_data:
        assert proc.returncode != 0 and "docs/data.md" in proc.stdout + proc.stderr
    else:
        assert "Job stats" in proc.stdout or "Nothing to be done" in proc.stdout, proc.stdout[-2000:]


def test_copied_workflow_files_exist():
    """copy() above copies what conftest names plus the Makefile and the pictures."""
    assert all((REPO / f).exists() for f in WORKFLOW_FILES)
