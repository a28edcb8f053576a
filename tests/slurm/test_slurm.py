"""The cluster path: the demo DAG to table2.md through a real one-node SLURM with profiles/slurm-ci.

`tests/slurm/cluster.sh start` runs slurmctld + slurmd on localhost (8 fake GPUs, no accounting database);
the module's fixture starts it and stops it by PID. Every claim is checked against SLURM's own job records
(`scontrol show job`, kept for MinJobAge=3600 s), not against Snakemake's word. Needs root and
Debian's slurm-wlm + munge (`tests/slurm/cluster.sh install`), as in .ci/run.

The DAG is the demo's whole Table 2 (12 rows × 5 benchmarks: 2 tiny models, 10 training jobs, 60 evaluations).
To fit 10 minutes on 2 cores, training stops after 4 steps, training jobs ask for 2 of the node's 8 GPUs
(gpus.train) so several run at once, generation jobs sample with srlm.decode and grading jobs run on the submit host,
and profiles/slurm-ci groups the 5 evaluations of one (model, chain) into one SLURM job. Which Snakemake jobs a
SLURM job ran is read from the batch script slurmctld keeps for it (`scontrol write batch_script`: the
`--target-jobs` of the Snakemake it started), so "every job exactly once" is checked per Snakemake job.
The dry run of the real profiles/slurm on the paper's grid needs the plugin, not SLURM.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO, copy_workflow, job_counts, planned_jobs, snakemake
from tests.workflow.test_profile import stand_in_conda

CLUSTER = Path(__file__).with_name("cluster.sh")
TARGET = "results/demo/table2.md"
STEPS = 4
OVERLAY = "slurm-ci.yaml"
CI_PROFILE = yaml.safe_load((REPO / "profiles/slurm-ci/config.yaml").read_text())
# rule -> group id template of profiles/slurm-ci (`groups: ["generate=eval_{model}_{chain}"]`)
GROUPS = dict(entry.split("=", 1) for entry in CI_PROFILE.get("groups", []))


def run_env() -> dict:
    """This interpreter's environment first on PATH: SLURM jobs inherit it (sbatch --export=ALL)."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def records() -> dict[str, dict]:
    """SLURM's record of every job slurmctld knows, by job id."""
    out = subprocess.run(["scontrol", "show", "job", "-o"], capture_output=True, text=True, check=True).stdout
    jobs = {}
    for line in out.splitlines():
        fields = dict(re.findall(r"(\S+?)=(\S*)", line))
        if "JobId" in fields:
            jobs[fields["JobId"]] = fields
    return jobs


def run_id(log: str) -> str:
    """The plugin's run id, which is the SLURM job name of every job of that Snakemake run."""
    return re.search(r"SLURM run ID: (\S+)", log).group(1)


def jobs_of(run: str) -> list[dict]:
    return [r for r in records().values() if r["JobName"] == run]


Job = tuple[str, tuple[tuple[str, str], ...]]  # (rule, sorted wildcards): one Snakemake job


def key(rule: str, wildcards: dict) -> Job:
    return rule, tuple(sorted(wildcards.items()))


@functools.cache  # a job id's batch script never changes: read it once
def targets(job_id: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of the Snakemake jobs that a SLURM job ran: the `--target-jobs` of the Snakemake command
    in its batch script, as slurmctld keeps it (`rule:name=value,...` each; our values contain no commas)."""
    script = subprocess.run(
        ["scontrol", "write", "batch_script", job_id, "-"], capture_output=True, text=True, check=True
    ).stdout
    words = shlex.split(next(line for line in script.splitlines() if "--target-jobs" in line))
    jobs = []
    for word in words[words.index("--target-jobs") + 1 :]:
        if word.startswith("--"):
            break
        rule, _, wildcards = word.partition(":")
        jobs.append((rule, dict(kv.split("=", 1) for kv in wildcards.split(",")) if wildcards else {}))
    return jobs


def members(rec: dict) -> list[Job]:
    return [key(rule, w) for rule, w in targets(rec["JobId"])]


def comment(rule: str, wildcards: dict) -> str:
    """How the plugin labels a job in SLURM (sbatch --comment)."""
    return f"rule_{rule}_wildcards_{'_'.join(wildcards.values())}" if wildcards else f"rule_{rule}"


def label(jobs: list[tuple[str, dict]]) -> str:
    """How the plugin labels the SLURM job of `jobs`: comment() for one job of an ungrouped rule; for a group job
    `rule_<group id>_<rules>` (the group id of profiles/slurm-ci with the members' wildcards filled in)."""
    rules = sorted({rule for rule, _ in jobs})
    if not set(rules) & set(GROUPS):
        assert len(jobs) == 1, jobs
        return comment(*jobs[0])
    (group,) = {GROUPS[rule].format(**w) for rule, w in jobs}
    return f"rule_{group}_{'_'.join(rules)}"


def resource(rule: str, name: str, attempt: int) -> int:
    """A resource of profiles/slurm-ci for one attempt (the profile's values are Python expressions)."""
    value = CI_PROFILE["set-resources"].get(rule, {}).get(name, CI_PROFILE["default-resources"][name])
    return eval(str(value), {"attempt": attempt})


def minutes(limit: str) -> int:
    """SLURM's TimeLimit ('00:15:00', '1-00:00:00') in minutes."""
    days, _, hms = limit.rpartition("-")
    h, m, s = (int(x) for x in hms.split(":"))
    return int(days or 0) * 1440 + h * 60 + m + (s > 0)


def ci_overlay(work: Path) -> dict:
    """2-GPU training jobs of STEPS optimizer steps (the cluster path is under test here, not learning), native
    evaluation engine, one generation job per benchmark as on a cluster (the demo's one per (model, chain) would
    leave profiles/slurm-ci's groups nothing to group)."""
    config = yaml.safe_load((work / "config.yaml").read_text())
    return {
        "gpus": {"train": 2, "evaluate": 1},
        "stages": {name: {"max_steps": STEPS, "save_steps": STEPS} for name in config["stages"]},
        "evaluation": {"engine": "srlm.decode", "generate_per": "benchmark"},
    }


def squeue() -> list[tuple[str, str, str]]:
    out = subprocess.run(
        ["squeue", "-h", "-t", "PENDING,RUNNING", "-o", "%i|%k|%T"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return [tuple(line.split("|")) for line in out.split()]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    if os.geteuid() != 0 or not shutil.which("slurmctld"):
        pytest.fail(
            "the SLURM test needs root and slurm-wlm + munge: run `tests/slurm/cluster.sh install` as root"
        )
    env = {**os.environ, "SRLM_SLURM_DIR": str(tmp_path_factory.mktemp("slurm-state"))}
    try:  # stop also what a failed start left running
        subprocess.run([CLUSTER, "start"], env=env, check=True, timeout=120)
        yield env["SRLM_SLURM_DIR"]
    finally:
        subprocess.run([CLUSTER, "stop"], env=env, check=True, timeout=120)


@pytest.fixture(scope="module")
def runs(cluster, tmp_path_factory):
    """Phase 1: the DAG with one training job scancel'led twice (first try and retry); phase 2: the rerun."""
    work = copy_workflow(tmp_path_factory.mktemp("slurm-work"))
    (work / OVERLAY).write_text(yaml.safe_dump(ci_overlay(work)))
    args = [TARGET, "--profile", "profiles/slurm-ci", "--configfile", "config/demo.yaml", OVERLAY]
    plan = planned_jobs(snakemake("-n", *args, cwd=work).stdout)

    log1 = work / "phase1.log"
    with log1.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "snakemake", *args],
            cwd=work,
            env=run_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        cancelled, victim = [], None
        try:
            while len(cancelled) < 2 and proc.poll() is None:
                for job, label, state in squeue():
                    first = victim is None and label.startswith("rule_train") and state == "RUNNING"
                    if first or (victim and label == victim and job not in cancelled):
                        victim = label
                        subprocess.run(["scancel", job], check=True)
                        cancelled.append(job)
                        break
                time.sleep(0.3)
            proc.wait(timeout=1500)  # the demo DAG: 150 jobs, 70 of them local
        finally:
            if proc.poll() is None:  # timed out: stop it (its jobs go with the cluster)
                proc.kill()
                proc.wait()
    table_after_phase1 = (work / TARGET).exists()
    assert len(cancelled) == 2, (
        f"no training job seen running, or its retry never came:\n{log1.read_text()[-3000:]}"
    )

    rerun = snakemake(*args, "--rerun-incomplete", cwd=work, check=False, timeout=900)
    log2 = rerun.stdout + rerun.stderr
    return {
        "work": work,
        "plan": plan,
        "log1": log1.read_text(),
        "rc1": proc.returncode,
        "cancelled": cancelled,
        "victim": victim,
        "table_after_phase1": table_after_phase1,
        "rerun": rerun,
        "log2": log2,
        "local_rules": set(re.findall(r"^localrule (\w+):", log1.read_text() + log2, re.MULTILINE)),
    }


def remote(runs) -> Counter:
    """The planned Snakemake jobs that are not local rules (each once)."""
    return Counter(key(rule, w) for rule, w in runs["plan"] if rule not in runs["local_rules"])


def victim_job(runs) -> Job:
    (job,) = members(records()[runs["cancelled"][0]])
    return job


def cell_jobs(runs) -> set[Job]:
    """The cancelled training job and the evaluations that need its model."""
    victim = victim_job(runs)
    cell = dict(victim[1])
    return {victim} | {
        key(rule, w)
        for rule, w in runs["plan"]
        if rule == "generate" and (w["model"], w["chain"]) == (cell["model"], cell["chain"])
    }


def ran(recs: list[dict]) -> Counter:
    """Snakemake jobs of the COMPLETED SLURM jobs among `recs`, counted once per SLURM job that ran them."""
    return Counter(job for r in recs if r["JobState"] == "COMPLETED" for job in members(r))


@pytest.mark.slurm
def test_cancelled_job_fails_its_cell_only(runs):
    log, (first, retry) = runs["log1"], runs["cancelled"]
    for job in (first, retry):
        assert f"SLURM-job '{job}' failed, SLURM status is: 'CANCELLED'" in log
    assert runs["rc1"] != 0 and not runs["table_after_phase1"]
    # keep-going: in the first run every other job completed (once).
    expected = remote(runs) - Counter(cell_jobs(runs))
    assert len(cell_jobs(runs)) > 1 and ran(jobs_of(run_id(log))) == expected


@pytest.mark.slurm
def test_retry_doubles_runtime_and_memory(runs):
    jobs = records()
    first, retry = (jobs[j] for j in runs["cancelled"])
    assert first["JobState"] == retry["JobState"] == "CANCELLED"
    assert first["Comment"] == retry["Comment"] == runs["victim"]
    rule = victim_job(runs)[0]
    assert members(first) == members(retry) == [victim_job(runs)]
    for attempt, rec in ((1, first), (2, retry)):
        assert rec["MinMemoryNode"] == f"{resource(rule, 'mem_mb', attempt)}M"
        assert minutes(rec["TimeLimit"]) == resource(rule, "runtime", attempt)


@pytest.mark.slurm
def test_every_non_local_job_went_through_sbatch_once(runs):
    assert runs["rerun"].returncode == 0, runs["log2"][-6000:]
    local_rules = runs["local_rules"]
    assert local_rules >= {"fetch_model", "prepare_benchmark", "render_table"}
    assert not local_rules & {"train_sft", "train_grpo", "generate"}
    done = ran(jobs_of(run_id(runs["log1"])) + jobs_of(run_id(runs["log2"])))
    assert done == remote(runs)  # each exactly once: the rerun redid nothing that had finished


@pytest.mark.slurm
def test_evaluations_of_one_model_ran_as_one_job(runs):
    """profiles/slurm-ci's groups: one SLURM job per (model, chain) holds its 5 evaluations and nothing else;
    training jobs stay one per job. Every SLURM job carries the plugin's label of what it ran."""
    assert GROUPS == {"generate": "eval_{model}_{chain}"}
    evaluations = {}
    for rule, w in runs["plan"]:
        if rule == "generate":
            evaluations.setdefault((w["model"], w["chain"]), set()).add(key(rule, w))
    assert len(evaluations) == 12 and {len(v) for v in evaluations.values()} == {5}
    for run in (run_id(runs["log1"]), run_id(runs["log2"])):
        for rec in jobs_of(run):
            jobs = targets(rec["JobId"])
            assert rec["Comment"] == label(jobs), rec
            if jobs[0][0] == "generate":
                cell = {(w["model"], w["chain"]) for _, w in jobs}
                assert len(cell) == 1 and set(members(rec)) == evaluations[cell.pop()], rec
            else:
                assert len(jobs) == 1, rec


@pytest.mark.slurm
def test_rerun_submits_only_the_failed_cell(runs):
    rerun = jobs_of(run_id(runs["log2"]))
    assert Counter(job for r in rerun for job in members(r)) == Counter(cell_jobs(runs))
    table = (runs["work"] / TARGET).read_text()
    rows = [line for line in table.splitlines() if re.match(r"^\| (\*\*)?Qwen", line)]
    assert len(rows) == 12 and all(line.count("|") == 7 for line in rows)  # label + 5 benchmark columns


@pytest.mark.slurm
def test_jobs_asked_for_the_configured_resources(runs):
    overlay = yaml.safe_load((runs["work"] / OVERLAY).read_text())
    threads = CI_PROFILE["set-threads"]
    phase1 = jobs_of(run_id(runs["log1"]))
    trained = Counter(job for r in phase1 for job in members(r) if job[0].startswith("train_"))
    planned = Counter(key(rule, w) for rule, w in runs["plan"] if rule.startswith("train_"))
    assert trained == planned + Counter([victim_job(runs)])  # the cancelled job twice (try and retry)
    assert {rule for rule, _ in runs["plan"]} >= {"train_sft", "train_grpo", "generate"}
    for rec in phase1:
        jobs = members(rec)
        (rule,) = {rule for rule, _ in jobs}
        attempt = 2 if rec["JobId"] == runs["cancelled"][1] else 1
        kind = "train" if rule.startswith("train_") else "evaluate"
        # The rule's gpu resource (config gpus.<kind>) became sbatch --gpus=<n>; a group job of evaluations asks
        # for what one of them needs (one node per group: they run one after the other), for their summed runtime.
        assert rec.get("TresPerJob") == f"gres:gpu:{overlay['gpus'][kind]}", rec
        assert rec["NumNodes"] == "1" and rec["NumCPUs"] == str(threads[rule]), rec
        assert rec["MinMemoryNode"] == f"{resource(rule, 'mem_mb', attempt)}M", rec
        assert minutes(rec["TimeLimit"]) == len(jobs) * resource(rule, "runtime", attempt), rec
        assert rec["Partition"] == CI_PROFILE["default-resources"]["slurm_partition"]


def test_real_profile_plans_table2_as_documented(tmp_path):
    """`snakemake results/table2.md --profile slurm` after docs/slurm.md's install line plans the paper's
    Table 2 with one-node jobs asking for config.yaml's GPU counts (needs the plugin, not SLURM)."""
    (tmp_path / "work").mkdir()
    work = copy_workflow(tmp_path / "work")
    xdg = tmp_path / "xdg"
    (xdg / "snakemake").mkdir(parents=True)
    (xdg / "snakemake" / "slurm").symlink_to(REPO / "profiles" / "slurm")
    stand_in_conda(tmp_path / "bin", tmp_path / "conda-calls.log")  # the profile deploys with conda
    env = {**run_env(), "XDG_CONFIG_HOME": str(xdg)}
    env["PATH"] = f"{tmp_path / 'bin'}{os.pathsep}{env['PATH']}"
    cmd = [sys.executable, "-m", "snakemake", "-n", "results/table2.md", "--profile", "slurm"]
    proc = subprocess.run(cmd, check=False, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    counts = job_counts(out)
    assert counts["train_sft"] == 8 and counts["train_grpo"] == 2 and counts["generate"] == 60, counts
    assert counts["render_table"] == 1
    blocks = re.split(r"\n(?=\[.*\]\n(?:local)?rule )", out)
    train = [b for b in blocks if re.search(r"^rule train_(sft|grpo):", b, re.MULTILINE)]
    generate = [b for b in blocks if re.search(r"^rule generate:", b, re.MULTILINE)]
    assert len(train) == 10 and len(generate) == 60
    for block in train:
        assert re.search(r"resources: .*\bgpu=8\b", block) and re.search(r"\bnodes=1\b", block), block
        assert "slurm_partition=<partition>" in block and "slurm_account=<account>" in block, block
    for block in generate:
        assert re.search(r"resources: .*\bgpu=1\b", block) and re.search(r"\bnodes=1\b", block), block
