"""README's lighteval command, run through lighteval's own CLI (in .venv-vllm, where lighteval is: `make test-vllm`).

The command is read from README.md, not copied here, and run as written but for what CI cannot have: the hub
model becomes a tiny local one (float32, its own context length, on the CPU) and, through $SRLM_CONFIGFILES
(README's local-data form), the benchmark a small local file; --max-samples and --output-dir keep the run short and in
a temporary folder. Everything else (the task name, --custom-tasks by path, chat template, sampling) is the
README's, run from the repository's root as README says.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import yaml

from tests.conftest import REPO

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


def readme_lighteval_commands() -> list[str]:
    """The lighteval commands of README.md's bash blocks, continuation lines joined."""
    blocks = re.findall(r"```bash\n(.*?)```", (REPO / "README.md").read_text(), re.DOTALL)
    lines = [c for b in blocks for c in b.replace("\\\n", " ").splitlines()]
    return [c.strip() for c in lines if re.match(r"^\s*(\w+=\S+\s+)*lighteval ", c)]


def test_readme_lighteval_command_runs(tmp_path):
    from srlm.tiny import build_tiny

    commands = readme_lighteval_commands()
    assert len(commands) == 2, commands  # from the hub, and from local files
    argv = shlex.split(commands[0])
    assert argv[:2] == ["lighteval", "accelerate"] and argv[3] == "srlm_math500|0", argv
    model = build_tiny(tmp_path / "tiny", CONFIG["tiny_model"], ["What is 1 plus 1?", "<answer>2</answer>"] * 3,
                       seed=0, instruct=True)  # fmt: skip
    args = argv[2]
    assert "override_chat_template=true" in args and "generation_parameters={temperature:0.6,top_p:0.95}" in args
    args = re.sub(r"model_name=[^,]+", f"model_name={model}", args)
    args = args.replace("dtype=bfloat16", "dtype=float32").replace("max_length=32768", "max_length=256")
    args += ",device=cpu"
    rows = [{"problem": f"What is {i} plus 1?", "answer": str(i + 1), "unique_id": f"p{i}"} for i in range(3)]
    bench = tmp_path / "math500.jsonl"
    bench.write_text("".join(json.dumps(r) + "\n" for r in rows))
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"benchmarks": {"math500": {"source": "local", "local_path": str(bench),
                                                                  "generation": {"max_new_tokens": 16}}}}))  # fmt: skip
    cmd = [str(Path(sys.executable).parent / "lighteval"), "accelerate", args, *argv[3:]]
    cmd += ["--max-samples", "2", "--output-dir", str(tmp_path / "out")]
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # srlm comes from the task module's path
    env.update(SRLM_CONFIGFILES=str(overlay), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               HF_HOME=str(tmp_path / "hf"))  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    results = json.loads(next((tmp_path / "out").rglob("results_*.json")).read_text())
    scores = results["results"]["srlm_math500|0"]
    assert 0.0 <= scores["extractive_match"] <= 1.0, scores
    assert results["config_tasks"]["srlm_math500|0"]["evaluation_splits"] == ["test"]
