"""Shared helpers: where the repository and the real data are, and how to run Snakemake on the workflow."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The real public data (GSM8K, the five benchmarks, the Qwen2.5 tokenizer; see its MANIFEST.md). It is not part of
# the repository: ../shared/data beside the checkout on the project's machines, anywhere else via SRLM_DATA.
REAL_DATA = Path(os.environ.get("SRLM_DATA") or REPO.parent / "shared" / "data").resolve()
REAL_DATA_MISSING = (
    f"real data not found at {REAL_DATA}: these tests read the public GSM8K/benchmark files "
    "(put them at ../shared/data beside the repository, or set SRLM_DATA to their folder)"
)
# config data.gsm8k.clean's steps, both off, as the data jobs' params hold them (GSM8K's add on_malformed).
# Jobs keep no fallbacks (docs/architecture.md, "Defaults"): a test that calls a data job states every key.
NO_CLEANING = {"dedup": False, "decontaminate": None}
# Files a copy of the workflow needs (outputs and caches are left behind).
WORKFLOW_FILES = ["Snakefile", "config.yaml", "config", "workflow", "envs", "profiles"]


def snakemake(*args: str, cwd: Path = REPO, check: bool = True, timeout: int = 1800) -> subprocess.CompletedProcess:
    """Run the snakemake of this interpreter's environment, with that environment's python on PATH."""
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    cmd = [sys.executable, "-m", "snakemake", *args]
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}")
    return proc


def gsm8k_files(folder: str | Path) -> dict[str, Path]:
    """srlm.data.gsm8k's outputs in one folder (its `out` argument), named as srlm.layout names them."""
    from srlm.data.gsm8k import FILES
    from srlm.layout import Layout

    return {name: Path(folder) / Path(Layout(".").gsm8k(name)).name for name in FILES}


def gsm8k_argv(folder: str | Path) -> list[str]:
    """The same files as srlm.data.gsm8k's command-line flags (--train PATH ... --cleaning PATH)."""
    return [arg for name, path in gsm8k_files(folder).items() for arg in (f"--{name}", str(path))]


def planned_jobs(output: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job in a dry-run's output."""
    jobs, rule = [], None
    for line in output.splitlines():
        m = re.match(r"^(?:local)?rule (\w+):$", line.strip())
        if m:
            if rule is not None:
                jobs.append((rule, {}))
            rule = m.group(1)
            continue
        m = re.match(r"^wildcards: (.*)$", line.strip())
        if m and rule is not None:
            jobs.append((rule, dict(kv.split("=", 1) for kv in m.group(1).split(", "))))
            rule = None
        elif line.startswith("Job stats") and rule is not None:
            jobs.append((rule, {}))
            rule = None
    return jobs


def job_counts(output: str) -> Counter:
    return Counter(rule for rule, _ in planned_jobs(output))


def copy_workflow(dest: Path) -> Path:
    for name in WORKFLOW_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


@pytest.fixture(scope="session")
def repo() -> Path:
    return REPO


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked `real_data` need REAL_DATA. Without it they are reported as skipped with the reason, unless
    SRLM_REQUIRE_DATA=1 (CI, where the data is) makes its absence a failure: there they must run."""
    if item.get_closest_marker("real_data") and not REAL_DATA.is_dir():
        if os.environ.get("SRLM_REQUIRE_DATA") == "1":
            pytest.fail(f"SRLM_REQUIRE_DATA=1 but {REAL_DATA_MISSING}", pytrace=False)
        pytest.skip(REAL_DATA_MISSING)
