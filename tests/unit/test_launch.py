"""srlm.launch: process count from the job's allocation, and the accelerate command built from it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from srlm import launch

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),  # nothing says: let torch decide
        ({"CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"}, 8),
        ({"CUDA_VISIBLE_DEVICES": "2,5", "SLURM_GPUS_ON_NODE": "8"}, 2),  # what the processes will see wins
        ({"CUDA_VISIBLE_DEVICES": ""}, 0),
        ({"CUDA_VISIBLE_DEVICES": "NoDevFiles"}, 0),
        ({"SLURM_GPUS_ON_NODE": "4"}, 4),
        ({"SLURM_GPUS_ON_NODE": "", "SLURM_JOB_GPUS": "0,1,2"}, 3),
        ({"SLURM_JOB_GPUS": "4,5,6,7"}, 4),
        ({"SLURM_GPUS": "8"}, None),  # a per-job count says nothing about this node
    ],
)
def test_allocated_gpus(env, expected):
    assert launch.allocated_gpus(env) == expected


@pytest.mark.parametrize(
    ("env", "visible", "expected"),
    [
        ({"CUDA_VISIBLE_DEVICES": "0,1,2,3"}, 4, 4),
        ({"SLURM_GPUS_ON_NODE": "4"}, 8, 4),  # 4-GPU allocation on an 8-GPU node
        ({"CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"}, 0, 0),  # fake GPUs of the CI cluster / CPU torch
        ({}, 2, 2),  # workstation outside SLURM: every GPU torch sees
        ({}, 0, 0),
    ],
)
def test_usable_gpus(env, visible, expected):
    assert launch.usable_gpus(env, visible) == expected


def test_gpu_command_with_deepspeed():
    args = launch.accelerate_args(8, "envs/deepspeed/zero2.json", "bf16", ["-m", "srlm.train.grpo"])
    assert args[args.index("--num_processes") + 1] == "8"
    assert args[args.index("--deepspeed_config_file") + 1] == "envs/deepspeed/zero2.json"
    assert "--use_deepspeed" in args and "--cpu" not in args and "--multi_gpu" not in args
    assert args[args.index("--mixed_precision") + 1] == "bf16"


def test_lora_stage_without_deepspeed_uses_ddp():
    args = launch.accelerate_args(4, None, "bf16", ["-m", "srlm.train.sft"])
    assert "--multi_gpu" in args and "--use_deepspeed" not in args
    assert args[args.index("--num_processes") + 1] == "4"


def test_multi_node_counts_all_processes_and_names_the_rendezvous():
    args = launch.accelerate_args(8, "zero3.json", "bf16", ["-m", "m"], machines=2, rank=1, main_ip="gpu001")
    assert args[args.index("--num_processes") + 1] == "16"
    assert args[args.index("--num_machines") + 1] == "2"
    assert args[args.index("--machine_rank") + 1] == "1"
    assert args[args.index("--main_process_ip") + 1] == "gpu001"


def test_parse_requires_separator():
    with pytest.raises(SystemExit):
        launch.parse(["--deepspeed", "x.json", "-m", "srlm.train.sft"])
    args = launch.parse(["--mixed-precision", "no", "--", "-m", "srlm.train.sft", "--params", "{}"])
    assert args.command == ["-m", "srlm.train.sft", "--params", "{}"] and args.mixed_precision == "no"


def test_outside_slurm_is_one_node():
    assert launch.slurm_job_nodes({}) == 1


def test_launch_runs_module_on_cpu_under_fake_allocation(tmp_path):
    """End to end: 8 GPUs 'allocated' but none usable (as on the CI cluster) -> one CPU process runs."""
    script = tmp_path / "probe.py"
    script.write_text(
        "import os, json\n"
        "print(json.dumps({k: os.environ.get(k) for k in ('WORLD_SIZE', 'OMP_NUM_THREADS', 'ACCELERATE_USE_CPU')}))\n"
    )
    env = {
        "PATH": "/usr/bin:/bin",
        "CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7",
        "PYTHONPATH": f"{tmp_path}:{ROOT / 'workflow'}",
        "OMP_NUM_THREADS": "3",
    }
    cmd = [
        sys.executable,
        "-m",
        "srlm.launch",
        "--deepspeed",
        "envs/deepspeed/zero2.json",
        "--",
        "-m",
        "probe",
    ]
    out = subprocess.run(cmd, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    # The module itself, started directly (no accelerate launcher, no DeepSpeed), with the rule's threads.
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen == {"WORLD_SIZE": None, "OMP_NUM_THREADS": "3", "ACCELERATE_USE_CPU": None}
    assert "8 GPUs allocated but torch sees 0" in out.stderr and "one CPU process" in out.stderr
    assert "deepspeed" not in out.stderr.split("one CPU process:")[1]


@pytest.mark.parametrize("name", ["zero2", "zero3"])
def test_deepspeed_configs_leave_batch_and_precision_to_the_trainer(name):
    cfg = json.loads((ROOT / "envs" / "deepspeed" / f"{name}.json").read_text())
    assert cfg["zero_optimization"]["stage"] == int(name[-1])
    for key in (
        "train_micro_batch_size_per_gpu",
        "gradient_accumulation_steps",
        "train_batch_size",
        "gradient_clipping",
    ):
        assert cfg[key] == "auto", key
    assert cfg["bf16"]["enabled"] == "auto"
    assert "optimizer" not in cfg and "scheduler" not in cfg  # the Trainer's cosine schedule is used
