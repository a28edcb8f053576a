"""srlm.evaluate on a tiny Qwen2 model: sampling is on, saved details regrade to the reported score, the model
folder is untouched, chat-template settings reach the prompt, and the statistics are right."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import numpy as np
import pytest

from srlm import evaluate as ev
from srlm.grading import grade

SYSTEM = "Answer with <answer> tags."
PROBLEMS = [(f"What is {a} plus {b}?", str(a + b)) for a, b in [(2, 3), (4, 5), (1, 7), (6, 2)]]
# Qwen3-style switch: enable_thinking=false pre-fills an empty think block.
THINK_SWITCH = (
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
)


def _params(**over) -> dict:
    p = {
        "backend": "transformers",
        "dtype": "float32",
        "max_model_length": 256,
        "gpu_memory_utilization": 0.9,
        "generation": {"temperature": 0.6, "top_p": 0.95, "max_new_tokens": 16, "n_samples": 3, "seed": 0},
        "batch_size": 8,
        "chat": {"chat_template": True, "enable_thinking": False, "system_prompt": SYSTEM},
        "not_extractable_threshold": 0.5,
        "bootstrap_resamples": 200,
    }
    for k, v in over.items():
        p[k] = {**p[k], **v} if isinstance(v, dict) else v
    return p


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """Tiny Qwen2 (srlm.tiny) with a Qwen3-like template, trained a few steps on the 4 problems, so that
    sampled answers are a mix of right, wrong and unextractable (a random model would only score 0)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from srlm.tiny import build_tiny

    spec = dict(
        vocab_size=300,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        seed=0,
    )
    corpus = [SYSTEM] + [p for p, _ in PROBLEMS] + [f"<answer>{a}</answer>" for _, a in PROBLEMS] * 3
    out = build_tiny(tmp_path_factory.mktemp("tiny") / "model", spec, corpus, seed=0, instruct=True)
    tok = AutoTokenizer.from_pretrained(out)
    tok.chat_template = tok.chat_template.replace(
        "{{- '<|im_start|>assistant\\n' }}", "{{- '<|im_start|>assistant\\n' }}" + THINK_SWITCH
    )
    tok.save_pretrained(out)
    chat = ev.Chat(True, False, SYSTEM)
    seqs = []
    for problem, answer in PROBLEMS:
        prompt = tok(ev.build_prompt(tok, problem, chat), add_special_tokens=False)["input_ids"]
        full = tok(f"<answer>{answer}</answer><|im_end|>", add_special_tokens=False)["input_ids"]
        seqs.append((prompt + full, len(prompt)))
    width = max(len(s) for s, _ in seqs)
    x = torch.tensor([s + [0] * (width - len(s)) for s, _ in seqs])
    labels = torch.tensor([[-100] * n + s[n:] + [-100] * (width - len(s)) for s, n in seqs])
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(out)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        model(input_ids=x, labels=labels).loss.backward()
        opt.step()
        opt.zero_grad()
    model.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def bench(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "toy.jsonl"
    path.write_text(
        "".join(
            json.dumps({"id": f"p{i}", "problem": p, "answer": a}) + "\n" for i, (p, a) in enumerate(PROBLEMS)
        )
    )
    return path


def _tree_hash(folder: Path) -> dict[str, str]:
    return {
        str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(folder.rglob("*"))
        if f.is_file()
    }


def _run(model_dir: Path, bench: Path, tmp_path: Path, params: dict) -> tuple[dict, list[dict]]:
    before = _tree_hash(model_dir)
    out, det = tmp_path / "toy.json", tmp_path / "toy.details.jsonl"
    assert (
        ev.main(
            [
                "--model-dir",
                str(model_dir),
                "--bench",
                str(bench),
                "--params",
                json.dumps(params),
                "--out",
                str(out),
                "--details",
                str(det),
                "--model-name",
                "tiny",
                "--chain",
                "base",
                "--benchmark",
                "toy",
            ]
        )
        == 0
    )
    assert _tree_hash(model_dir) == before, "evaluation changed the model folder"
    return json.loads(out.read_text()), [json.loads(line) for line in det.read_text().splitlines()]


def _check_outputs(summary: dict, details: list[dict]) -> None:
    """Schema, sampling on, and the saved details regrade (srlm.grading) to exactly the reported score."""
    for key in [
        "model",
        "chain",
        "benchmark",
        "backend",
        "n_problems",
        "n_samples",
        "pass_at_1",
        "stderr",
        "ci95",
        "not_extractable_rate",
        "completion_tokens_mean",
        "completion_tokens_total",
        "wall_s",
        "generation",
    ]:
        assert key in summary, key
    assert (summary["n_problems"], summary["n_samples"]) == (4, 3) and len(details) == 12
    assert set(details[0]) >= {"id", "sample", "response", "extracted", "correct", "completion_tokens"}
    by_id: dict[str, list[dict]] = {}
    for d in details:
        by_id.setdefault(d["id"], []).append(d)
    assert any(
        len({d["response"] for d in ds}) > 1 for ds in by_id.values()
    ), "n samples are identical: greedy?"
    gold = dict(zip((f"p{i}" for i in range(4)), (a for _, a in PROBLEMS), strict=True))
    regraded = {k: [grade(d["response"], gold[k], 5.0) for d in ds] for k, ds in by_id.items()}
    for k, ds in by_id.items():
        assert [(g.extracted, g.correct) for g in regraded[k]] == [(d["extracted"], d["correct"]) for d in ds]
    score = float(np.mean([np.mean([g.correct for g in gs]) for gs in regraded.values()]))
    assert score == summary["pass_at_1"]
    assert 0 < score, (
        "the trained tiny model should get some answers right",
        [d["response"] for d in details],
    )
    assert 1 <= summary["completion_tokens_mean"] <= 16
    assert summary["completion_tokens_total"] == sum(d["completion_tokens"] for d in details)


def test_lighteval_engine(model_dir, bench, tmp_path):
    summary, details = _run(model_dir, bench, tmp_path, _params())
    assert summary["engine"] == "lighteval"
    _check_outputs(summary, details)
    assert summary["lighteval"]["pass_at_1"] == summary["pass_at_1"]
    assert summary["lighteval"]["not_extractable_rate"] == summary["not_extractable_rate"]
    # the prompt lighteval fed the model: chat template, system prompt, enable_thinking=false pre-fill
    assert summary["prompt_example"].startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>")
    assert summary["prompt_example"].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    import torch

    assert torch.is_grad_enabled()  # lighteval turns autograd off process-wide; evaluate() restores it


def test_native_engine_raw_prompt(model_dir, bench, tmp_path):
    summary, details = _run(
        model_dir, bench, tmp_path, _params(engine="native", chat={"chat_template": False})
    )
    assert summary["engine"] == "native" and summary["framework"] == "srlm.decode"
    assert summary["prompt_example"] == PROBLEMS[0][0]
    assert summary["n_problems"] == 4 and len(details) == 12
    assert any(len({d["response"] for d in details if d["id"] == k}) > 1 for k in ("p0", "p1", "p2", "p3"))


def test_native_engine_chat(model_dir, bench, tmp_path):
    summary, details = _run(model_dir, bench, tmp_path, _params(engine="native", batch_size="auto"))
    _check_outputs(summary, details)
    assert summary["batch_size"] == 64  # auto on a CPU (speed.eval_batch_size)
    assert summary["prompt_example"].endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")


def test_native_engine_job_does_not_import_scikit_learn(model_dir, bench, tmp_path):
    """The evaluate job (a fresh interpreter, as the rule runs it) keeps transformers from importing scikit-learn
    (~1.4 s per job on a CPU; evaluate._sklearn_hidden), and scikit-learn stays importable afterwards."""
    import subprocess
    import sys

    params = json.dumps(_params(engine="native", batch_size="auto"))
    code = f"""
import json, sys
from pathlib import Path
from srlm import evaluate as ev
p = ev.EvalParams.from_dict(json.loads({params!r}))
summary, _ = ev.evaluate(Path({str(model_dir)!r}), Path({str(bench)!r}), p)
assert summary["framework"] == "srlm.decode" and summary["n_problems"] == 4
print("sklearn-loaded", "sklearn" in sys.modules)
import sklearn
print("sklearn-importable", sklearn.__name__)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "sklearn-loaded False" in out and "sklearn-importable sklearn" in out, out


def test_build_prompt_switches(model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    on = ev.build_prompt(tok, "Q?", ev.Chat(True, True, "S"))
    off = ev.build_prompt(tok, "Q?", ev.Chat(True, False, "S"))
    unset = ev.build_prompt(tok, "Q?", ev.Chat(True, None, ""))
    assert on == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n"
    assert off == on + "<think>\n\n</think>\n\n"
    assert (
        "<|im_start|>user\nQ?" in unset and "<think>" not in unset
    )  # no system prompt given: template default
    assert ev.build_prompt(tok, "Q?", ev.Chat(False, False, "S")) == "Q?"


def test_lighteval_prompt_manager_matches_native(model_dir):
    from lighteval.tasks.requests import Doc
    from transformers import AutoTokenizer

    from srlm.lighteval_tasks import SrlmPromptManager

    tok = AutoTokenizer.from_pretrained(model_dir)
    for chat in (ev.Chat(True, False, SYSTEM), ev.Chat(True, None, SYSTEM), ev.Chat(False, None, SYSTEM)):
        doc = Doc(query="What is 1 plus 1?", choices=["2"], gold_index=0)
        assert SrlmPromptManager(tok, chat).prepare_prompt(doc) == ev.build_prompt(tok, doc.query, chat)


def _d(pid, sample, correct, extracted="1", tokens=10):
    return {
        "id": pid,
        "sample": sample,
        "response": "",
        "extracted": extracted,
        "correct": correct,
        "completion_tokens": tokens,
    }


def test_summarize_hand_made():
    details = [
        _d("a", 0, True),
        _d("a", 1, True),
        _d("b", 0, True),
        _d("b", 1, False, None, 20),
        _d("c", 0, False, None, 30),
        _d("c", 1, False),
    ]
    s = ev.summarize(details, n_samples=2, bootstrap_resamples=2000, seed=0)
    assert s["pass_at_1"] == pytest.approx(0.5)  # per problem 1, 0.5, 0
    assert s["stderr"] == pytest.approx(0.5 / math.sqrt(3))  # sample std of (1, .5, 0) is 0.5
    lo, hi = s["ci95"]
    assert 0.0 <= lo < 0.5 < hi <= 1.0
    assert s["ci95"] == ev.summarize(details, 2, 2000, 0)["ci95"]  # seeded
    assert s["not_extractable_rate"] == pytest.approx(2 / 6)
    assert (s["completion_tokens_total"], s["completion_tokens_mean"]) == (90, 15.0)
    assert ev.summarize(details[:2], 2, 100, 0)["stderr"] == 0.0  # one problem
    with pytest.raises(ValueError, match="expected 3 samples"):
        ev.summarize(details, n_samples=3, bootstrap_resamples=10, seed=0)


def test_params_are_checked():
    with pytest.raises(ValueError, match="unknown key.*'temprature'"):
        ev.EvalParams.from_dict(_params(generation={"temprature": 0.6}))
    with pytest.raises(ValueError, match="backend"):
        ev.EvalParams.from_dict(_params(backend="sglang"))
    with pytest.raises(ValueError, match="batch_size must be a positive integer or 'auto'"):
        ev.EvalParams.from_dict(_params(batch_size="big"))
    p = ev.EvalParams.from_dict(_params())
    assert p.generation.n_samples == 3 and p.chat.enable_thinking is False
