"""KD traces regenerated from a teacher (data.kd.source: generate), the alternative to the hub's
camel-ai/gsm8k_distilled: GSM8K train problems go to a teacher behind an OpenAI-compatible endpoint, either an
external URL (API key read from the environment variable named by data.kd.generate.api_key_env, never written
anywhere) or a `vllm serve` started here on the job's GPUs and always stopped (finally, atexit, SIGTERM).

Requests go through camel-ai (client: camel; its ChatAgent and OpenAI-compatible backend with the prompt of
its STaR pipeline; distill environment, envs/requirements-distill.txt) or through the small httpx client below
(client: http; the same request body) where camel-ai is not installed. camel-ai's pipeline loop is not used:
it truncates its output file at start (no resumption), rewrites it whole per problem, compares boxed answers
as strings, and retries every exception, unparseable bodies included.

Each problem gets up to `attempts` samples; one is kept when srlm.data.distill.convert accepts it (its boxed
answer after </think> math-verifies against the gold), so both KD sources give identical rows. Timeouts,
connection errors, HTTP 429 and 5xx are retried with back-off; a body that cannot be parsed, another 4xx, or a
request out of retries is recorded as a failed attempt, never a crash.

Resumable: every attempt is appended to --partial (train.partial.jsonl) as it arrives, flushed
and fsynced, under an exclusive lock. A restarted job drops a torn last line, skips finished problems (a kept
trace, or `attempts` recorded attempts) and continues the others. The output and --report are written
only once every problem is finished, from the partial file alone, so a rerun rewrites them byte for byte.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import fcntl
import json
import os
import queue
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from srlm.config import job_params
from srlm.data.distill import convert, gold_answer
from srlm.data.io import cli, dumps_line, read_jsonl, write_json, write_jsonl

# camel-ai 0.2.90 SelfImprovingCoTPipeline.REASONING_TEMPLATE (its STaR pipeline, which made gsm8k_distilled),
# used when data.kd.generate.prompt is null; the camel client reads it from camel itself (a test compares).
REASONING_TEMPLATE = """Let's solve this step by step:
Problem: {problem}
1. First, let's understand what we're asked
2. Let's break this down into parts
3. Let's solve each part systematically
4. Finally, let's verify our solution

{few_shot_examples}

Please show your complete reasoning process."""

KEYS = ["client", "endpoint", "model", "api_key_env", "prompt", "attempts", "concurrency",
        "requests_per_minute", "timeout_s", "max_retries", "backoff", "abort_after_failures", "temperature",
        "max_tokens"]  # fmt: skip
VLLM_KEYS = ["model", "command", "port", "gpus", "extra_args", "startup_timeout_s"]


class Retryable(Exception):
    """Timeout, connection error, HTTP 429 or 5xx: the same request may succeed after a pause."""

    def __init__(self, msg: str, retry_after: float | None = None):
        super().__init__(msg)
        self.retry_after = retry_after


class Failed(Exception):
    """A request that repeating cannot fix; `status` goes into its record (unparseable|request_failed)."""

    def __init__(self, status: str, msg: str):
        super().__init__(msg)
        self.status = status


class Aborted(RuntimeError):
    """The teacher is gone (server exited, or many failed requests in a row): stop, keep what was recorded."""


def trace_text(content: str | None, reasoning: str | None) -> str:
    """The teacher's answer as one `<think>…</think> rest` text, however the server delivered the thinking.

    vLLM's reasoning parsers and DeepSeek's API return it apart in `reasoning_content`; R1-style chat
    templates open <think> in the prompt, so the generated text starts inside the block and only closes it.
    """
    content = content or ""
    if reasoning and "<think>" not in content:
        return f"<think>{reasoning}</think>\n{content}"
    if "</think>" in content and "<think>" not in content.split("</think>", 1)[0]:
        return "<think>" + content
    return content


def _retry_after(headers) -> float | None:
    try:
        return float(headers.get("retry-after"))
    except (TypeError, ValueError):
        return None


class HttpTeacher:
    """POST /chat/completions with httpx: the request camel-ai's OpenAI-compatible backend sends."""

    def __init__(self, url: str, model: str, api_key: str | None, g: dict):
        auth = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.client = httpx.AsyncClient(base_url=url.rstrip("/") + "/", headers=auth, timeout=g["timeout_s"])
        self.model, self.g = model, g

    async def ask(self, prompt: str) -> tuple[str, int | None]:
        body = {"model": self.model, "messages": [{"role": "user", "content": prompt}],
                "max_tokens": self.g["max_tokens"], "temperature": self.g["temperature"]}  # fmt: skip
        try:
            r = await self.client.post("chat/completions", json=body)
        except httpx.TimeoutException:
            raise Retryable("timeout") from None
        except httpx.TransportError as e:
            raise Retryable(f"connection error ({type(e).__name__})") from None
        except httpx.RequestError as e:  # e.g. a body that does not decode
            raise Failed("unparseable", f"{type(e).__name__}: {e}") from None
        if r.status_code == 429 or r.status_code >= 500:
            raise Retryable(f"HTTP {r.status_code}", _retry_after(r.headers))
        if r.status_code >= 400:
            raise Failed("request_failed", f"HTTP {r.status_code}: {r.text[:200]}")
        try:
            data = r.json()
            msg = data["choices"][0]["message"]
            content, reasoning = msg.get("content"), msg.get("reasoning_content") or msg.get("reasoning")
            if not isinstance(content, (str, type(None))) or not isinstance(reasoning, (str, type(None))):
                raise TypeError("message content is not a string")
            tokens = (data.get("usage") or {}).get("completion_tokens")
        except (ValueError, KeyError, IndexError, TypeError, AttributeError) as e:
            raise Failed("unparseable", f"{type(e).__name__}: body {r.text[:200]!r}") from None
        return trace_text(content, reasoning), tokens if isinstance(tokens, int) else None

    async def close(self) -> None:
        await self.client.aclose()


class CamelTeacher:
    """camel-ai's ChatAgent on its OpenAI-compatible backend, one agent per worker thread (agents keep state).

    Its own retries are off (openai max_retries=0, one ChatAgent attempt): the retry policy is the one here. A
    token counter that needs no download replaces tiktoken's (offline nodes); the thinking stays in the text.
    """

    def __init__(self, url: str, model: str, api_key: str | None, g: dict):
        from camel.agents import ChatAgent
        from camel.models import ModelFactory
        from camel.types import ModelPlatformType
        from camel.utils import BaseTokenCounter

        class CharCounter(BaseTokenCounter):  # ~4 characters a token, for camel's context bookkeeping
            def count_tokens_from_messages(self, messages):
                return sum(len(str(m.get("content") or "")) for m in messages) // 4

            def encode(self, text):
                return list(text.encode())

            def decode(self, ids):
                return bytes(ids).decode(errors="replace")

        self.agents: queue.SimpleQueue = queue.SimpleQueue()
        for _ in range(g["concurrency"]):
            backend = ModelFactory.create(
                ModelPlatformType.OPENAI_COMPATIBLE_MODEL, model, url=url, api_key=api_key or "none",
                model_config_dict={"max_tokens": g["max_tokens"], "temperature": g["temperature"]},
                token_counter=CharCounter(), timeout=g["timeout_s"], max_retries=0,
            )  # fmt: skip
            backend._extract_thinking_from_response = False  # the documented switch crashes
            self.agents.put(ChatAgent(model=backend, retry_attempts=1))
        self.pool = ThreadPoolExecutor(g["concurrency"], thread_name_prefix="camel")

    @staticmethod
    def template() -> str:
        from camel.datagen import SelfImprovingCoTPipeline

        return SelfImprovingCoTPipeline.REASONING_TEMPLATE

    async def ask(self, prompt: str) -> tuple[str, int | None]:
        return await asyncio.get_running_loop().run_in_executor(self.pool, self._ask, prompt)

    def _ask(self, prompt: str) -> tuple[str, int | None]:
        agent = self.agents.get()
        try:
            agent.reset()  # as SelfImprovingCoTPipeline.generate_reasoning_trace does for each problem
            resp = agent.step(prompt)
            tokens = (resp.info.get("usage") or {}).get("completion_tokens")
            if not resp.msgs:  # camel drops a choice whose content is empty (its reasoning_content too)
                return "", tokens
            msg = resp.msgs[0]
            return trace_text(msg.content, getattr(msg, "reasoning_content", None)), tokens
        except Exception as e:  # noqa: BLE001 - classified: nothing from the teacher may crash the job
            raise self._classify(e) from None
        finally:
            self.agents.put(agent)

    @staticmethod
    def _classify(e: Exception) -> Exception:
        import openai
        from camel.models.model_manager import ModelProcessingError

        if isinstance(e, openai.APITimeoutError):
            return Retryable("timeout")
        if isinstance(e, openai.APIConnectionError):
            return Retryable(f"connection error ({type(e).__name__})")
        if isinstance(e, openai.APIStatusError):
            if e.status_code == 429 or e.status_code >= 500:
                return Retryable(f"HTTP {e.status_code}", _retry_after(e.response.headers))
            return Failed("request_failed", f"HTTP {e.status_code}: {str(e)[:200]}")
        if isinstance(e, ModelProcessingError) and "429" in str(e):  # ChatAgent wraps a RateLimitError
            return Retryable("HTTP 429")
        if isinstance(e, (ValueError, TypeError, KeyError, IndexError, AttributeError, RuntimeError)):
            return Failed("unparseable", f"{type(e).__name__}: {str(e)[:200]}")
        return Failed("request_failed", f"{type(e).__name__}: {str(e)[:200]}")

    async def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class Pacer:
    """Spaces request starts 60/requests_per_minute seconds apart across all workers (None: no limit)."""

    def __init__(self, rpm: float | None):
        self.gap, self.next = (60.0 / rpm if rpm else 0.0), 0.0

    async def wait(self) -> None:
        if self.gap:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + self.gap  # no await before this: the loop runs one worker at a time
            await asyncio.sleep(start - now)


async def attempt(teacher, pacer: Pacer, prompt: str, g: dict) -> dict:
    """One sample: the request, retried with back-off on Retryable errors; its record but id/attempt."""
    b, last = g["backoff"], None
    for retry in range(g["max_retries"] + 1):
        if retry:
            pause = b["initial_s"] * b["factor"] ** (retry - 1)
            await asyncio.sleep(min(b["max_s"], max(pause, last.retry_after or 0.0)))
        await pacer.wait()
        try:
            text, tokens = await teacher.ask(prompt)
            return _rec(None, text, None, retry, tokens)
        except Failed as e:
            return _rec(e.status, None, str(e), retry, None)
        except Retryable as e:
            last = e
    return _rec("request_failed", None, f"{last} (after {g['max_retries']} retries)", g["max_retries"], None)


def _rec(status, response, error, retries, completion_tokens) -> dict:
    return {"status": status, "response": response, "error": error, "retries": retries,
            "completion_tokens": completion_tokens}  # fmt: skip


class Partial:
    """The append-only attempt log: a settings line, then one record per attempt; exclusive while open."""

    def __init__(self, path: Path, settings: dict):
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self.f = open(path, "a+b")  # noqa: SIM115 - held for the whole job (lock)
        try:
            fcntl.flock(self.f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self.f.close()
            raise RuntimeError(f"{path}: another job is writing it") from None
        self.f.seek(0)
        data = self.f.read()
        if data and not data.endswith(b"\n"):  # killed while writing: the last line is incomplete
            data = data[: data.rfind(b"\n") + 1]
            self.f.truncate(len(data))
        self.records: dict[str, list[dict]] = {}
        lines = data.decode("utf-8").splitlines()
        for lineno, line in enumerate(lines, 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{lineno}: invalid JSON ({e.msg}); fix or delete the line") from None
            if lineno == 1:
                if row.get("settings") != settings:
                    diff = sorted(k for k in {**settings, **(row.get("settings") or {})}
                                  if (row.get("settings") or {}).get(k) != settings.get(k))  # fmt: skip
                    raise ValueError(f"{path}: made with other teacher settings ({', '.join(diff)}); "
                                     "delete it to start over")  # fmt: skip
                continue
            self.records.setdefault(row["id"], []).append(row)
        if not lines:
            self._write({"settings": settings})

    def _write(self, row: dict) -> None:
        self.f.write(dumps_line(row).encode("utf-8"))
        self.f.flush()
        os.fsync(self.f.fileno())

    def append(self, rec: dict) -> None:
        self._write(rec)
        self.records.setdefault(rec["id"], []).append(rec)

    def close(self) -> None:
        self.f.close()


def finished(recs: list[dict], k: int) -> bool:
    return any(r["status"] == "ok" for r in recs) or len(recs) >= k


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A teacher server process: `vllm serve` on the job's GPUs (CUDA_VISIBLE_DEVICES from the scheduler)."""

    def __init__(self, cmd: list[str], port: int):
        self.cmd, self.port, self.url = cmd, port, f"http://127.0.0.1:{port}/v1"
        self.proc: subprocess.Popen | None = None

    @classmethod
    def vllm(cls, v: dict, served_name: str) -> Server:
        port = v["port"] or _free_port()
        cmd = [*shlex.split(v["command"]), v["model"], "--host", "127.0.0.1", "--port", str(port),
               "--served-model-name", served_name, "--tensor-parallel-size", str(v["gpus"]),
               *map(str, v["extra_args"] or [])]  # fmt: skip
        return cls(cmd, port)

    def start(self, timeout_s: float, **popen) -> None:
        """Start it in its own process group, wait for /health to answer 200; raise on exit or timeout."""
        print(f"starting: {shlex.join(self.cmd)}", file=sys.stderr, flush=True)
        self.proc = subprocess.Popen(self.cmd, start_new_session=True, **popen)
        atexit.register(self.stop)
        deadline = time.monotonic() + timeout_s
        while True:
            self.check()
            try:
                wait = min(5.0, max(0.5, deadline - time.monotonic()))
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=wait).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"{self.cmd[0]}: no /health answer in {timeout_s} s (vllm.startup_timeout_s)"
                )
            time.sleep(0.5)

    def check(self) -> None:
        if self.proc is not None and self.proc.poll() is not None:
            raise Aborted(
                f"the teacher server exited with code {self.proc.returncode} ({shlex.join(self.cmd)})"
            )

    def stop(self) -> None:
        """SIGTERM to the whole group (vLLM's workers too), SIGKILL after 30 s; safe to call twice."""
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, sig)
            try:
                p.wait(wait)
                return
            except subprocess.TimeoutExpired:
                continue


def _sigterm(signum, frame):
    raise SystemExit(128 + signum)  # runs the finally blocks (server stop) a plain SIGTERM skips


@contextlib.contextmanager
def teacher_endpoint(g: dict):
    """(base URL, API key, server or None) of the configured endpoint; a started server stops on any exit."""
    if g["endpoint"] != "vllm":
        key = None
        if g["api_key_env"]:
            key = os.environ.get(g["api_key_env"])
            if not key:
                raise ValueError(
                    f"data.kd.generate.api_key_env: environment variable {g['api_key_env']} is not set"
                )
        yield g["endpoint"], key, None
        return
    server = Server.vllm(g["vllm"], g["model"])
    previous = signal.signal(signal.SIGTERM, _sigterm)
    try:
        server.start(g["vllm"]["startup_timeout_s"])
        yield server.url, None, server
    finally:
        server.stop()
        signal.signal(signal.SIGTERM, previous)


def load_problems(path: str | Path) -> list[dict]:
    """GSM8K rows {id, question, answer} (results/data/gsm8k/train.jsonl); ids must be unique."""
    rows = read_jsonl(path)
    seen = Counter(str(r.get("id")) for r in rows)
    dup = [i for i, n in seen.items() if n > 1]
    if dup or "None" in seen:
        raise ValueError(
            f"{path}: every row needs a unique 'id' (duplicated or missing: {dup[:5] or ['id']})"
        )
    return rows


def render(template: str, question: str) -> str:
    """The user turn: {problem} filled in (camel's template also has an empty {few_shot_examples}); not
    str.format, so a prompt may hold other braces ("put the answer in \\boxed{}")."""
    return template.replace("{few_shot_examples}", "").replace("{problem}", question.strip())


def camel_row(problem: dict, response: str) -> dict:
    """The camel-ai/gsm8k_distilled shape distill.convert verifies."""
    return {"problem": problem.get("question"), "reasoning_solution": response,
            "groud_truth_solution": problem.get("answer")}  # fmt: skip


def check_settings(g: dict) -> None:
    missing = [k for k in KEYS if k not in g]
    if g.get("endpoint") == "vllm":
        missing += [f"vllm.{k}" for k in VLLM_KEYS if k not in (g.get("vllm") or {})]
    if missing:
        raise ValueError(f"data.kd.generate: missing keys {missing}")
    if g["client"] not in ("camel", "http"):
        raise ValueError(f"data.kd.generate.client: {g['client']!r} (camel|http)")
    for k in ("attempts", "concurrency", "abort_after_failures"):
        if not isinstance(g[k], int) or g[k] < 1:
            raise ValueError(f"data.kd.generate.{k}: {g[k]!r} must be an integer >= 1")


async def run(todo, problems, log: Partial, teacher, g: dict, system_prompt: str, template: str, server, form="r1"):
    """Workers take problems off a queue and sample until one trace is kept or `attempts` are recorded."""
    jobs: asyncio.Queue = asyncio.Queue()
    for i in todo:
        jobs.put_nowait(i)
    pacer, fails = Pacer(g["requests_per_minute"]), [0]

    async def worker():
        while not jobs.empty():
            i = jobs.get_nowait()
            p = problems[i]
            prompt = render(template, p["question"])
            while not finished(log.records.get(p["id"], []), g["attempts"]):
                if server:
                    server.check()
                rec = await attempt(teacher, pacer, prompt, g)
                if rec["status"] is None:  # verified here, in the main thread (math-verify uses SIGALRM)
                    rec["status"] = convert(camel_row(p, rec["response"]), i, system_prompt, form)[1] or "ok"
                n = len(log.records.get(p["id"], []))  # one worker per problem: no other writer
                log.append({"id": p["id"], "attempt": n, **rec})
                fails[0] = fails[0] + 1 if rec["status"] == "request_failed" else 0
                if fails[0] >= g["abort_after_failures"]:
                    if server:
                        server.check()
                    raise Aborted(f"{fails[0]} requests in a row failed (last: {rec['error']}); "
                                  f"finished attempts are kept in {log.path}: rerun to resume")  # fmt: skip

    try:
        async with asyncio.TaskGroup() as tg:
            for _ in range(min(g["concurrency"], len(todo))):
                tg.create_task(worker())
    except* Aborted as eg:
        raise eg.exceptions[0] from None
    finally:
        await teacher.close()


def prepare(params: dict, problems_path: str | Path, out: str | Path, report: str | Path, partial: str | Path) -> dict:
    data, system_prompt = params["data"], params["system_prompt"]
    form = params["prompt_training"]  # config prompt.training
    g = data.get("generate")
    if not isinstance(g, dict):
        raise ValueError("data.kd.generate must be set when data.kd.source is generate")
    check_settings(g)
    out = Path(out)
    problems = load_problems(problems_path)
    template = g["prompt"] or (CamelTeacher.template() if g["client"] == "camel" else REASONING_TEMPLATE)
    settings = {"model": g["model"], "prompt": template, "temperature": g["temperature"],
                "max_tokens": g["max_tokens"]}  # fmt: skip
    log = Partial(Path(partial), settings)
    try:
        usable = [i for i, p in enumerate(problems)
                  if isinstance(p.get("question"), str) and p["question"].strip()
                  and gold_answer(p.get("answer")) is not None]  # fmt: skip
        todo = [i for i in usable if not finished(log.records.get(problems[i]["id"], []), g["attempts"])]
        print(
            f"{len(usable)} problems, {len(usable) - len(todo)} finished before, {len(todo)} to do",
            file=sys.stderr,
        )
        if todo:
            with teacher_endpoint(g) as (url, key, server):
                teacher = (CamelTeacher if g["client"] == "camel" else HttpTeacher)(url, g["model"], key, g)
                asyncio.run(run(todo, problems, log, teacher, g, system_prompt, template, server, form))
        return finish(problems, log, g, system_prompt, out, Path(report), form)
    finally:
        log.close()


def finish(
    problems: list[dict], log: Partial, g: dict, system_prompt: str, out: Path, report_path: Path, form: str = "r1"
) -> dict:
    """train.jsonl (kept traces in problem order, via distill.convert) and kd_report.json, from the log."""
    kept, dropped, statuses = [], [], Counter()
    retries = tokens = 0
    for i, p in enumerate(problems):
        recs = log.records.get(p["id"], [])
        if not recs:  # never requested: no question or no gold
            dropped.append({"id": p["id"], "reason": convert(camel_row(p, ""), i, system_prompt, form)[1]})
            continue
        if not finished(recs, g["attempts"]):
            raise RuntimeError(f"problem {p['id']} unfinished after the run (internal error)")
        recs = recs[: next((n + 1 for n, r in enumerate(recs) if r["status"] == "ok"), len(recs))]
        statuses.update(r["status"] for r in recs)
        retries += sum(r["retries"] for r in recs)
        tokens += sum(r["completion_tokens"] or 0 for r in recs)
        if recs[-1]["status"] == "ok":
            kept.append(convert(camel_row(p, recs[-1]["response"]), i, system_prompt, form)[0])
        else:
            dropped.append({"id": p["id"], "reason": recs[-1]["status"]})
    report = {
        "source": "generate",
        "teacher": {
            "client": g["client"],
            "endpoint": g["endpoint"],
            "model": g["model"],
            **({"vllm_model": g["vllm"]["model"]} if g["endpoint"] == "vllm" else {}),
        },
        "rows_in": len(problems),
        "kept": len(kept),
        "dropped": len(dropped),
        "dropped_by_reason": dict(sorted(Counter(d["reason"] for d in dropped).items())),
        "dropped_rows": dropped,
        "attempts": sum(statuses.values()),
        "attempts_by_status": dict(sorted(statuses.items())),
        "retries": retries,
        "completion_tokens": tokens,
    }
    write_json(report_path, report)
    if not kept:
        raise ValueError(
            f"KD generation: no usable trace among {len(problems)} problems "
            f"({report['attempts_by_status']}); see {report_path}"
        )
    if None in kept:
        raise RuntimeError("a trace recorded as ok no longer verifies (internal error)")
    write_jsonl(out, kept)
    return report


@cli
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", required=True, help='JSON: {"data": <config data.kd>, "system_prompt": str}')
    ap.add_argument("--problems", required=True, help="GSM8K rows {id, question, answer} (gsm8k/train.jsonl)")
    ap.add_argument("--out", required=True, help="train.jsonl")
    ap.add_argument("--report", required=True, help="kd_report.json: what was kept and dropped, and why")
    ap.add_argument("--partial", required=True, help="every attempt as it arrives (a restarted job resumes from it)")
    a = ap.parse_args(argv)
    rep = prepare(job_params(a.params, "kd"), a.problems, a.out, a.report, a.partial)
    print(json.dumps({k: v for k, v in rep.items() if k != "dropped_rows"}))


if __name__ == "__main__":
    main()
