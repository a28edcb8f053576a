"""Start a training module with `accelerate launch`, one process per GPU of the job's allocation.

    python -m srlm.launch [--deepspeed CONFIG] [--mixed-precision bf16|no] -- -m srlm.train.sft ARGS...

The process count is not a config value: it is read from what SLURM (or the user) gave this job, so the same
rule runs on 8- and 4-GPU nodes and on a CPU. GPUs are counted from CUDA_VISIBLE_DEVICES, else
SLURM_GPUS_ON_NODE, else SLURM_JOB_GPUS (any may be unset), and capped by the devices torch can open; with
no usable GPU the module runs directly as one CPU process, without DeepSpeed.

Multi-node jobs (SLURM allocation of several nodes, submitted with the plugin's `mpi` resource so that the
command runs in the batch step): the launcher re-runs itself through `srun`, one task per node, and each
task starts accelerate with its machine rank. accelerate/DeepSpeed do the rest; nothing here is a launcher
of its own.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence

from srlm.data.io import cli

MAIN_PORT = "29500"


def _count_list(value: str) -> int:
    """Devices in a comma list such as '0,1,2' (SLURM writes 'NoDevFiles' when it has no device files)."""
    items = [v for v in value.split(",") if v.strip()]
    return 0 if items == ["NoDevFiles"] else len(items)


def allocated_gpus(env: Mapping[str, str]) -> int | None:
    """GPUs this job (on this node) was given, or None when nothing says so (not under SLURM, no CUDA_VISIBLE_DEVICES)."""
    if "CUDA_VISIBLE_DEVICES" in env:
        return _count_list(env["CUDA_VISIBLE_DEVICES"])
    on_node = env.get("SLURM_GPUS_ON_NODE", "").strip()
    if on_node.isdigit():
        return int(on_node)
    if env.get("SLURM_JOB_GPUS", "").strip():
        return _count_list(env["SLURM_JOB_GPUS"])
    return None


def usable_gpus(env: Mapping[str, str], visible: int) -> int:
    """GPUs to start processes on: the allocation, capped by the `visible` devices torch can open.

    The cap matters where SLURM hands out GPUs that do not exist for torch (CPU-only torch, the CI cluster's
    fake GPUs): training then falls back to one CPU process instead of failing at NCCL start-up.
    """
    allocated = allocated_gpus(env)
    return visible if allocated is None else min(allocated, visible)


def torch_gpu_count() -> int:
    import torch

    return torch.cuda.device_count()


def slurm_job_nodes(env: Mapping[str, str]) -> int:
    """Nodes of the SLURM job around us (1 outside SLURM). Asked of slurmctld: the executor's job step
    drops SLURM_NNODES from the environment."""
    job = env.get("SLURM_JOB_ID")
    if not job or not shutil.which("scontrol"):
        return 1
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", job], check=False, capture_output=True, text=True
    ).stdout
    fields = dict(f.split("=", 1) for f in out.split() if "=" in f)
    return int(fields.get("NumNodes", "1").split("-")[0] or 1)


def first_node(env: Mapping[str, str]) -> str:
    """Host name of the job's first node (the rendezvous host of a multi-node run)."""
    out = subprocess.run(
        ["scontrol", "show", "hostnames", env["SLURM_JOB_NODELIST"]],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()[0]


def cpu_threads(env: Mapping[str, str]) -> int:
    """Threads of the CPU process: the rule's OMP_NUM_THREADS, else the cores this process may use."""
    value = env.get("OMP_NUM_THREADS", "")
    return int(value) if value.isdigit() and int(value) > 0 else len(os.sched_getaffinity(0))


def accelerate_args(
    gpus: int,
    deepspeed: str | None,
    mixed_precision: str,
    command: Sequence[str],
    machines: int = 1,
    rank: int = 0,
    main_ip: str | None = None,
) -> list[str]:
    """Arguments after `accelerate launch` for `gpus` (>= 1) GPUs per machine on `machines`."""
    args = [
        "--num_processes",
        str(gpus * machines),
        "--num_machines",
        str(machines),
        "--mixed_precision",
        mixed_precision,
        "--dynamo_backend",
        "no",
    ]
    if machines > 1:
        args += [
            "--machine_rank",
            str(rank),
            "--main_process_ip",
            main_ip or "",
            "--main_process_port",
            MAIN_PORT,
            "--same_network",
        ]
    if deepspeed:
        args += ["--use_deepspeed", "--deepspeed_config_file", deepspeed]
        if machines > 1:
            args += ["--deepspeed_multinode_launcher", "standard"]
    elif gpus * machines > 1:
        args += ["--multi_gpu"]
    return [*args, *command]


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m srlm.launch", description=__doc__.split("\n")[0])
    parser.add_argument("--deepspeed", default=None, help="DeepSpeed JSON config (GPU runs only)")
    parser.add_argument("--mixed-precision", default="bf16", choices=["no", "fp16", "bf16"])
    argv = list(argv)
    if "--" not in argv:
        parser.error("separate the launched command with '--', e.g. -- -m srlm.train.sft ARGS")
    cut = argv.index("--")
    args = parser.parse_args(argv[:cut])
    args.command = argv[cut + 1 :]
    if not args.command:
        parser.error("nothing to launch after '--'")
    return args


@cli
def main(argv: Sequence[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse(argv)
    env = os.environ
    step_nodes = env.get("SLURM_STEP_NUM_NODES")
    if step_nodes is None and (n := slurm_job_nodes(env)) > 1:
        # Batch step of a multi-node job: run one launcher per node.
        srun = ["srun", f"--nodes={n}", f"--ntasks={n}", "--ntasks-per-node=1"]
        os.execvp("srun", [*srun, sys.executable, "-m", "srlm.launch", *argv])
    nodes = int(step_nodes or 1)
    gpus = usable_gpus(env, torch_gpu_count())
    allocated = allocated_gpus(env)
    if allocated and gpus < allocated:
        print(
            f"srlm.launch: {allocated} GPUs allocated but torch sees {gpus}; using {gpus or 'the CPU'}",
            file=sys.stderr,
        )
    if gpus == 0:
        # One CPU process: started directly, as `accelerate launch --cpu` would only start it from one more
        # interpreter importing torch and accelerate (~3 s a training job). Precision: the job's own params.
        os.environ["OMP_NUM_THREADS"] = str(cpu_threads(env))
        cmd = [sys.executable, *args.command]
        print("srlm.launch: no usable GPU, one CPU process:", " ".join(cmd), file=sys.stderr, flush=True)
        os.execv(sys.executable, cmd)
    rank = int(env.get("SLURM_NODEID", "0"))
    main_ip = first_node(env) if nodes > 1 else None
    launch = accelerate_args(
        gpus,
        args.deepspeed,
        args.mixed_precision,
        args.command,
        machines=nodes,
        rank=rank,
        main_ip=main_ip,
    )
    os.environ["OMP_NUM_THREADS"] = str(max(1, cpu_threads(env) // gpus))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", *launch]
    print("srlm.launch:", " ".join(cmd), file=sys.stderr, flush=True)
    os.execv(sys.executable, cmd)


if __name__ == "__main__":
    main()
