"""KD generation from a teacher endpoint (data.kd.source: generate): fault handling, resumption, the vLLM
server's lifecycle (a stand-in command: no vLLM here), and a real OpenAI-compatible server (transformers)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from srlm.data import distill, generate

from tests.conftest import NO_CLEANING

REPO = Path(__file__).resolve().parents[2]
SYS = "S"
SECRET = "sk-test-7f3a9c"
# camel-ai lives in envs/requirements-distill.txt, not the main env: its client variant carries the `distill`
# marker and runs in that env (`make test-distill`, called by .ci/run); the main run deselects it.
CLIENTS = ["http", pytest.param("camel", marks=pytest.mark.distill)]

RIGHT = {"content": "<think>3 plus 4 is 7.</think>\nSo \\boxed{7}."}
WRONG = {"content": "<think>3 plus 4 is 8.</think>\n\\boxed{8}"}


def answer(content=None, reasoning=None, tokens=5):
    msg = {"role": "assistant", "content": content}
    if reasoning is not None:
        msg["reasoning_content"] = reasoning
    return {"id": "c", "object": "chat.completion", "created": 0, "model": "teacher",
            "choices": [{"index": 0, "finish_reason": "stop", "message": msg}],
            "usage": {"prompt_tokens": 1, "completion_tokens": tokens,
                      "total_tokens": 1 + tokens}}  # fmt: skip


class Fake:
    """OpenAI-compatible stand-in. Each problem (found by its question in the prompt) has a script of replies,
    consumed one per request, the last one repeated: {"status": 500}, {"sleep": s}, {"garbage": 1},
    {"body": raw JSON}, or {"content", "reasoning"} for a completion."""

    def __init__(self, scripts: dict[str, list[dict]], delay: float = 0.0):
        self.scripts, self.delay, self.requests, self.lock = scripts, delay, [], threading.Lock()
        self.inflight = self.max_inflight = 0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                prompt = body["messages"][-1]["content"]
                key = next(q for q in fake.scripts if q in prompt)
                with fake.lock:
                    n = sum(r["key"] == key for r in fake.requests)
                    fake.requests.append({"key": key, "t": time.monotonic(), "body": body,
                                          "auth": self.headers.get("authorization")})  # fmt: skip
                    fake.inflight += 1
                    fake.max_inflight = max(fake.max_inflight, fake.inflight)
                act = fake.scripts[key][min(n, len(fake.scripts[key]) - 1)]
                try:
                    time.sleep(fake.delay + act.get("sleep", 0))
                    if "status" in act:
                        self._send(act["status"], b'{"error": "injected"}')
                    elif "garbage" in act:
                        self._send(200, b"<html>502 Bad Gateway</html>")
                    else:
                        body = act.get("body") or answer(act.get("content"), act.get("reasoning"))
                        self._send(200, json.dumps(body).encode())
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client timed out first
                finally:
                    with fake.lock:
                        fake.inflight -= 1

            def _send(self, status, data):
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self) -> Counter:
        return Counter(r["key"] for r in self.requests)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def settings(endpoint: str, **over) -> dict:
    g = {"client": "http", "endpoint": endpoint, "model": "teacher", "api_key_env": None, "prompt": None,
         "attempts": 3, "concurrency": 2, "requests_per_minute": None, "timeout_s": 0.5, "max_retries": 2,
         "backoff": {"initial_s": 0.01, "factor": 2.0, "max_s": 0.05}, "abort_after_failures": 50,
         "temperature": 0.6, "max_tokens": 64}  # fmt: skip
    return {"data": {"source": "generate", "generate": {**g, **over}}, "system_prompt": SYS, "prompt_training": "r1"}


def problems_file(path: Path, questions: list[str], gold: str = "7") -> Path:
    rows = [
        {"id": f"p{i}", "question": q, "answer": f"3 + 4 = 7\n#### {gold}"} for i, q in enumerate(questions)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def prepare(params: dict, problems: Path, out: Path) -> dict:
    """generate.prepare with its report and partial log beside `out`, where srlm.layout puts them."""
    out = Path(out)
    return generate.prepare(params, problems, out, out.with_name("kd_report.json"), out.with_suffix(".partial.jsonl"))


def records(partial: Path) -> list[dict]:
    return [json.loads(line) for line in partial.read_text().splitlines()[1:]]


@pytest.mark.parametrize("client", CLIENTS)
def test_faults_are_retried_then_recorded_and_rows_match_distill(
    tmp_path, client, monkeypatch, capfd, caplog
):
    scripts = {
        "Q500": [{"status": 500}, {"status": 503}, RIGHT],  # retried twice, then kept
        "Qslow": [{"sleep": 1.5}, RIGHT],  # client timeout (0.5 s), retried, kept
        "Qgarbage": [{"garbage": 1}],  # unparseable every attempt
        "Q429": [{"status": 429}],  # out of retries every attempt
        "Qwrong": [WRONG, RIGHT],  # kept at the second attempt
        "Qsplit": [{"content": "So \\boxed{7}.", "reasoning": "3 plus 4 is 7."}],  # reasoning_content apart
        "Qr1": [{"content": "3 plus 4 is 7.\n</think>\n\n\\boxed{7}"}],  # <think> opened by the chat template
        "Qshape": [{"body": {"object": "chat.completion", "choices": []}}],  # JSON, but no choice
    }
    fake = Fake(scripts)
    probs = problems_file(tmp_path / "problems.jsonl", list(scripts))
    with probs.open("a") as f:  # no gold: never sent
        f.write(json.dumps({"id": "nogold", "question": "Qnogold", "answer": "no final line"}) + "\n")
    monkeypatch.setenv("SRLM_TEST_KEY", SECRET)
    out = tmp_path / "kd" / "train.jsonl"
    params = settings(fake.url, client=client, api_key_env="SRLM_TEST_KEY")
    try:
        generate.main(["--params", json.dumps(params), "--problems", str(probs), "--out", str(out),
                       "--report", str(out.with_name("kd_report.json")),
                       "--partial", str(out.with_suffix(".partial.jsonl"))])  # fmt: skip
    finally:
        fake.close()
    k = 3
    assert fake.count() == {"Q500": 3, "Qslow": 2, "Qgarbage": k, "Q429": k * 3, "Qwrong": 2, "Qsplit": 1,
                            "Qr1": 1, "Qshape": k}  # fmt: skip
    rep = json.loads((tmp_path / "kd" / "kd_report.json").read_text())
    assert (rep["rows_in"], rep["kept"], rep["dropped"]) == (9, 5, 4)
    assert rep["dropped_by_reason"] == {"no_gold": 1, "request_failed": 1, "unparseable": 2}
    assert rep["attempts_by_status"] == {
        "ok": 5,
        "request_failed": k,
        "unparseable": 2 * k,
        "wrong_answer": 1,
    }
    assert rep["attempts"] == len(records(out.with_suffix(".partial.jsonl"))) == 15
    assert rep["retries"] == 2 + 1 + 2 * k
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["id"] for r in rows] == ["kd-0", "kd-1", "kd-4", "kd-5", "kd-6"]
    assert {r["completion"][0]["content"] for r in rows} == {
        "<think>3 plus 4 is 7.</think>\n<answer>\\boxed{7}</answer>"
    }  # the split and the template-opened thinking come out as the others do
    # Both clients send camel-ai's STaR prompt, the same body, and the key only as a header.
    first = fake.requests[0]
    q = first["key"]
    assert first["auth"] == f"Bearer {SECRET}"
    prompt = generate.REASONING_TEMPLATE.format(problem=q, few_shot_examples="")
    assert first["body"] == {"model": "teacher", "messages": [{"role": "user", "content": prompt}],
                             "max_tokens": 64, "temperature": 0.6}  # fmt: skip
    if client == "camel":
        assert generate.CamelTeacher.template() == generate.REASONING_TEMPLATE
    logs = capfd.readouterr()
    assert SECRET not in logs.out + logs.err + caplog.text
    assert all(SECRET not in p.read_text() for p in tmp_path.rglob("*") if p.is_file())
    # The KD stage cannot tell the sources apart: distill.py on the same traces writes the same file.
    kept = {r["id"]: r for r in records(out.with_suffix(".partial.jsonl")) if r["status"] == "ok"}
    src = tmp_path / "camel.jsonl"
    prob_rows = [json.loads(line) for line in probs.read_text().splitlines()]
    src.write_text("".join(json.dumps(generate.camel_row(p, kept.get(p["id"], {}).get("response", ""))) + "\n"
                           for p in prob_rows))  # fmt: skip
    distill.prepare(
        {"data": {"source": "local", "local_path": str(src)}, "system_prompt": SYS, "prompt_training": "r1",
         "clean": NO_CLEANING},
        tmp_path / "d.jsonl",
    )
    assert (tmp_path / "d.jsonl").read_bytes() == out.read_bytes()


def test_missing_key_and_bad_settings_are_named(tmp_path, monkeypatch):
    probs = problems_file(tmp_path / "p.jsonl", ["Q"])
    monkeypatch.delenv("SRLM_NO_SUCH_KEY", raising=False)
    with pytest.raises(ValueError, match="environment variable SRLM_NO_SUCH_KEY is not set"):
        prepare(
            settings("http://127.0.0.1:9/v1", api_key_env="SRLM_NO_SUCH_KEY"), probs, tmp_path / "o.jsonl"
        )
    bad = settings("http://x/v1")
    del bad["data"]["generate"]["timeout_s"]
    with pytest.raises(ValueError, match=r"data.kd.generate: missing keys \['timeout_s'\]"):
        prepare(bad, probs, tmp_path / "o.jsonl")


def test_resume_keeps_finished_attempts_and_drops_a_torn_line(tmp_path):
    # replies that do not depend on how often a problem was asked, so both runs see the same outcomes
    scripts = {"Qa": [RIGHT], "Qb": [WRONG], "Qc": [{"garbage": 1}], "Qd": [RIGHT]}
    probs = problems_file(tmp_path / "p.jsonl", list(scripts))
    out = tmp_path / "train.jsonl"
    partial = out.with_suffix(".partial.jsonl")
    fake = Fake(scripts)
    try:
        prepare(settings(fake.url), probs, out)
        assert sum(fake.count().values()) == 1 + 3 + 3 + 1
        full, done = partial.read_text().splitlines(keepends=True), out.read_bytes()
        # A job killed after four attempts, in the middle of writing the fifth.
        partial.write_text("".join(full[:5]) + full[5][:17])
        out.unlink()
        (tmp_path / "kd_report.json").unlink()
        before = sum(fake.count().values())
        prepare(settings(fake.url), probs, out)
        asked = sum(fake.count().values()) - before
        assert asked == len(full) - 5  # only the missing attempts were asked for
    finally:
        fake.close()
    now = partial.read_text().splitlines(keepends=True)
    assert now[:5] == full[:5] and len(now) == len(full)
    keys = [(r["id"], r["attempt"]) for r in records(partial)]
    assert len(keys) == len(set(keys))
    assert sorted(keys) == sorted((r["id"], r["attempt"]) for r in map(json.loads, full[1:]))
    assert out.read_bytes() == done
    # Finished: a rerun asks nothing (the endpoint is gone) and rewrites the same output.
    prepare(settings("http://127.0.0.1:9/v1"), probs, out)
    assert out.read_bytes() == done
    with pytest.raises(ValueError, match=r"other teacher settings \(temperature\)"):
        prepare(settings("http://127.0.0.1:9/v1", temperature=1.0), probs, out)
    held = generate.Partial(partial, json.loads(now[0])["settings"])
    try:
        with pytest.raises(RuntimeError, match="another job is writing it"):
            prepare(settings("http://127.0.0.1:9/v1"), probs, out)
    finally:
        held.close()


def test_configured_prompt_may_hold_braces(tmp_path):
    fake = Fake({"Qa": [RIGHT]})
    template = "Solve: {problem}\nPut the final answer within \\boxed{}."
    try:
        prepare(settings(fake.url, prompt=template), problems_file(tmp_path / "p.jsonl", ["Qa"]),
                         tmp_path / "o.jsonl")  # fmt: skip
    finally:
        fake.close()
    assert (
        fake.requests[0]["body"]["messages"][0]["content"]
        == "Solve: Qa\nPut the final answer within \\boxed{}."
    )


def test_concurrency_and_rate_limit(tmp_path):
    scripts = {f"Q{i}x": [RIGHT] for i in range(8)}
    probs = problems_file(tmp_path / "p.jsonl", list(scripts))
    fake = Fake(scripts, delay=0.3)
    try:
        prepare(settings(fake.url, concurrency=3, timeout_s=5), probs, tmp_path / "a.jsonl")
    finally:
        fake.close()
    assert len(fake.requests) == 8 and fake.max_inflight == 3
    fake = Fake(scripts)
    try:  # 600 a minute: one start per 0.1 s, so 8 requests span at least 0.7 s (unpaced: a few ms)
        prepare(
            settings(fake.url, concurrency=3, requests_per_minute=600), probs, tmp_path / "b.jsonl"
        )
    finally:
        fake.close()
    starts = sorted(r["t"] for r in fake.requests)
    assert len(starts) == 8 and starts[-1] - starts[0] >= 0.65


def test_dead_endpoint_stops_the_job_and_keeps_the_record(tmp_path):
    probs = problems_file(tmp_path / "p.jsonl", [f"Q{i}" for i in range(5)])
    out = tmp_path / "o.jsonl"
    with pytest.raises(generate.Aborted, match="3 requests in a row failed"):
        prepare(settings("http://127.0.0.1:9/v1", abort_after_failures=3, concurrency=1), probs, out)
    assert [r["status"] for r in records(out.with_suffix(".partial.jsonl"))] == ["request_failed"] * 3
    assert not out.exists()


# ------------------------------------------------------------- the vLLM server's lifecycle (stand-in command)

FAKE_VLLM = r"""
import argparse, json, os, sys, time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
ap = argparse.ArgumentParser()
ap.add_argument("model"); ap.add_argument("--host"); ap.add_argument("--port", type=int)
ap.add_argument("--served-model-name"); ap.add_argument("--tensor-parallel-size")
ap.add_argument("--pid-file"); ap.add_argument("--delay", type=float, default=0)
ap.add_argument("--hang", action="store_true"); ap.add_argument("--die-after", type=int, default=0)
a = ap.parse_args()
with open(a.pid_file + ".tmp", "w") as f:
    json.dump({"pid": os.getpid(), "argv": sys.argv[1:]}, f)
os.replace(a.pid_file + ".tmp", a.pid_file)
n = [0]
class H(BaseHTTPRequestHandler):
    def log_message(self, *x): pass
    def do_GET(self):
        if a.hang: time.sleep(60)
        self.send_response(200); self.end_headers(); self.wfile.write(b"{}")
    def do_POST(self):
        self.rfile.read(int(self.headers["content-length"]))
        n[0] += 1
        open(a.pid_file + ".req", "a").write("x")
        if a.die_after and n[0] > a.die_after: os._exit(7)
        time.sleep(a.delay)
        msg = {"role": "assistant", "content": "<think>3 plus 4 is 7.</think> \\boxed{7}"}
        b = json.dumps({"choices": [{"index": 0, "message": msg}], "usage": {"completion_tokens": 3}})
        self.send_response(200); self.send_header("content-length", str(len(b))); self.end_headers()
        self.wfile.write(b.encode())
ThreadingHTTPServer((a.host, a.port), H).serve_forever()
"""


def vllm_settings(tmp_path: Path, *extra: str, timeout: float = 30, **over) -> tuple[dict, Path]:
    script = tmp_path / "fake_vllm.py"
    script.write_text(FAKE_VLLM)
    pid_file = tmp_path / "server.json"
    v = {"model": "/weights/teacher", "command": f"{sys.executable} {script}", "port": 0, "gpus": 2,
         "extra_args": ["--pid-file", str(pid_file), *extra], "startup_timeout_s": timeout}  # fmt: skip
    return settings("vllm", vllm=v, timeout_s=10, **over), pid_file


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def test_vllm_server_started_then_stopped(tmp_path):
    params, pid_file = vllm_settings(tmp_path)
    probs = problems_file(tmp_path / "p.jsonl", ["Qa", "Qb"])
    rep = prepare(params, probs, tmp_path / "o.jsonl")
    assert rep["kept"] == 2 and rep["teacher"]["vllm_model"] == "/weights/teacher"
    started = json.loads(pid_file.read_text())
    assert started["argv"][:1] == ["/weights/teacher"] and "--served-model-name" in started["argv"]
    assert started["argv"][started["argv"].index("--tensor-parallel-size") + 1] == "2"
    assert gone(started["pid"])


def test_vllm_server_failures_are_named_and_cleaned_up(tmp_path):
    probs = problems_file(tmp_path / "p.jsonl", ["Qa", "Qb", "Qc"])
    params, pid_file = vllm_settings(tmp_path, "--hang", timeout=1)
    with pytest.raises(RuntimeError, match=r"no /health answer in 1 s \(vllm.startup_timeout_s\)"):
        prepare(params, probs, tmp_path / "o.jsonl")
    assert gone(json.loads(pid_file.read_text())["pid"])
    pid_file.unlink()
    params, pid_file = vllm_settings(tmp_path, "--die-after", "1", concurrency=1)
    with pytest.raises(generate.Aborted, match="teacher server exited with code 7"):
        prepare(params, probs, tmp_path / "o.jsonl")
    assert len(records(tmp_path / "o.partial.jsonl")) >= 1  # what was answered before is kept


def test_sigterm_stops_the_vllm_server(tmp_path):
    params, pid_file = vllm_settings(tmp_path, "--delay", "30")
    probs = problems_file(tmp_path / "p.jsonl", ["Qa"])
    cmd = [sys.executable, "-m", "srlm.data.generate", "--params", json.dumps(params),
           "--problems", str(probs), "--out", str(tmp_path / "o.jsonl"), "--report", str(tmp_path / "r.json"),
           "--partial", str(tmp_path / "o.partial.jsonl")]  # fmt: skip
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while not Path(str(pid_file) + ".req").exists():  # the server is up and busy with a request
            assert time.monotonic() < deadline and job.poll() is None, job.stdout.read().decode()
            time.sleep(0.05)
        job.send_signal(signal.SIGTERM)
        assert job.wait(20) == 128 + signal.SIGTERM
    finally:
        job.kill()
    assert gone(json.loads(pid_file.read_text())["pid"])


# ------------------------------------------------------------------ a real OpenAI-compatible server


@pytest.fixture(scope="module")
def tiny_server(tmp_path_factory):
    """`transformers serve` (transformers 5.17, offline) on 127.0.0.1 serving the tiny random model: it
    starts without a model (loaded by the first request naming its folder) while the model is built."""
    from srlm.tiny import build_tiny, default_corpus

    tmp = tmp_path_factory.mktemp("serve")
    spec = yaml.safe_load((REPO / "config.yaml").read_text())["tiny_model"]
    build = threading.Thread(target=build_tiny, args=(tmp / "tiny", spec, default_corpus(SYS, n=40), 0, True))
    build.start()
    port = generate._free_port()
    cmd = [str(Path(sys.executable).parent / "transformers"), "serve", "--host", "127.0.0.1",
           "--port", str(port), "--device", "cpu"]  # fmt: skip
    server = generate.Server(cmd, port)  # started and stopped as the vLLM path does it
    log = (tmp / "serve.log").open("w")
    try:
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp / "hf")}
        server.start(120, env=env, stdout=log, stderr=subprocess.STDOUT)
        build.join()
        assert (tmp / "tiny" / "model.safetensors").exists()
        yield server.url, str(tmp / "tiny")
    finally:
        build.join()
        server.stop()
        log.close()


def test_real_server_killed_midway_then_resumed(tmp_path, tiny_server):
    url, model = tiny_server
    probs = problems_file(tmp_path / "p.jsonl", [f"What is {i} + 4?" for i in range(4)])
    out = tmp_path / "kd" / "train.jsonl"
    partial = out.with_suffix(".partial.jsonl")
    params = settings(url, model=model, attempts=2, concurrency=2, max_tokens=8, timeout_s=60)
    cmd = [sys.executable, "-m", "srlm.data.generate", "--params", json.dumps(params),
           "--problems", str(probs), "--out", str(out), "--report", str(out.with_name("kd_report.json")),
           "--partial", str(out.with_suffix(".partial.jsonl"))]  # fmt: skip
    job = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while not partial.exists() or len(partial.read_text().splitlines()) < 3:  # settings line + two attempts
        assert job.poll() is None and time.monotonic() < deadline, job.stdout.read().decode()[-3000:]
        time.sleep(0.02)
    job.kill()
    job.wait()
    snapshot = partial.read_text()
    before = snapshot[: snapshot.rfind("\n") + 1].splitlines()
    assert not out.exists() and 2 <= len(before) - 1 < 8
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    rep = json.loads((out.parent / "kd_report.json").read_text())
    recs = records(partial)
    keys = [(r["id"], r["attempt"]) for r in recs]
    assert len(keys) == len(set(keys))  # no duplicates
    assert partial.read_text().splitlines()[: len(before)] == before  # nothing finished was lost
    per = Counter(r["id"] for r in recs)
    for p in (f"p{i}" for i in range(4)):  # every problem finished: a kept trace or both attempts recorded
        ok = any(r["status"] == "ok" for r in recs if r["id"] == p)
        assert ok or per[p] == 2
    assert rep["rows_in"] == 4 and rep["kept"] + rep["dropped"] == 4 and rep["attempts"] == len(recs)
    assert sum(rep["attempts_by_status"].values()) == len(recs)
    # A random tiny model answers garbage: most likely nothing is kept; then the job says so, writes no set.
    if rep["kept"]:
        assert done.returncode == 0 and len(out.read_text().splitlines()) == rep["kept"]
    else:
        assert done.returncode == 1 and "no usable trace among 4 problems" in done.stderr and not out.exists()
