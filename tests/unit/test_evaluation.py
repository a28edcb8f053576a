"""Evaluation as two jobs on a tiny Qwen2 model: srlm.completions samples (raw, through srlm.generation) and
srlm.grade judges; prompts follow the protocol; the engines agree. lighteval's agreement with the pipeline is
tests/vllm/test_lighteval_tasks.py (lighteval lives in .venv-vllm, not in the demo's environment)."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pytest

from srlm import completions, grade, grading, interval, prompts
from srlm.generation import Sampling
from srlm.generation import hf as generation_hf

SYSTEM = "Answer with <answer> tags."
PROBLEMS = [(f"What is {a} plus {b}?", str(a + b)) for a, b in [(2, 3), (4, 5), (1, 7), (6, 2)]]
# Qwen3-style switch: enable_thinking=false pre-fills an empty think block.
THINK_SWITCH = (
    "{%- if enable_thinking is defined and enable_thinking is false %}"
    "{{- '<think>\\n\\n</think>\\n\\n' }}{%- endif %}"
)


def _params(**over) -> dict:
    p = {
        "protocol": "r1",
        "engine": "srlm.decode",
        "dtype": "float32",
        "max_model_length": 256,
        "gpu_memory_utilization": 0.9,
        "batch_size": 8,
        "compile_decode": False,
        "generation": {"temperature": 0.6, "top_p": 0.95, "max_new_tokens": 16, "n_samples": 3, "seed": 0},
        "chat": {"chat_template": True, "enable_thinking": False, "system_prompt": SYSTEM},
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
    seqs = []
    for problem, answer in PROBLEMS:
        text = prompts.render(tok, prompts.messages(problem, "r1", SYSTEM), enable_thinking=False)
        prompt = tok(text, add_special_tokens=False)["input_ids"]
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


def _tree_hash(folder: Path) -> dict[str, str]:
    return {str(f.relative_to(folder)): hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted(folder.rglob("*"))}


def _generate(model_dir: Path, bench: Path, out: Path, params: dict) -> tuple[dict, list[dict]]:
    before = _tree_hash(model_dir)
    assert completions.main(["--model-dir", str(model_dir), "--bench", str(bench), "--params",
                             json.dumps(params), "--out", str(out)]) == 0  # fmt: skip
    assert _tree_hash(model_dir) == before, "generation wrote into the model folder"
    return completions.read(out)


def _grade(comp: Path, bench: Path, tmp_path: Path, **over) -> tuple[dict, list[dict]]:
    params = {"timeout_s": 5.0, "gold_format": "gsm8k", **over}
    out, det = tmp_path / "toy.json", tmp_path / "toy.details.jsonl"
    assert grade.main(["--completions", str(comp), "--bench", str(bench), "--params", json.dumps(params),
                       "--out", str(out), "--details", str(det), "--label", "tiny/sft/toy"]) == 0  # fmt: skip
    return json.loads(out.read_text()), [json.loads(x) for x in det.read_text().splitlines()]


@pytest.fixture(scope="module")
def sampled(model_dir, bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("gen") / "toy.jsonl"
    return out, *_generate(model_dir, bench, out, _params())


def test_completions_file_is_raw_and_complete(sampled):
    _, settings, rows = sampled
    assert settings["engine_used"] == "srlm.decode" and settings["protocol"] == "r1"
    assert settings["sampling"] == {"temperature": 0.6, "top_p": 0.95, "top_k": 0, "max_new_tokens": 16, "n": 3,
                                    "seed": 0}  # fmt: skip
    assert settings["timing"]["gpus"] == 0 and settings["timing"]["wall_s"] > 0
    assert [r["id"] for r in rows] == ["p0", "p1", "p2", "p3"]
    for r, (problem, _) in zip(rows, PROBLEMS, strict=True):
        # the exact text the model continued: chat template, system prompt, enable_thinking=false pre-fill
        assert r["prompt"] == (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{problem}<|im_end|>\n"
                               "<|im_start|>assistant\n<think>\n\n</think>\n\n")  # fmt: skip
        assert len(r["samples"]) == 3
        for s in r["samples"]:
            assert 1 <= s["tokens"] <= 16 and s["finish_reason"] in ("stop", "length")
            assert (s["finish_reason"] == "length") == (s["tokens"] == 16 and "<|im_end|>" not in s["text"])
    # sampling is on: some problem got different answers
    assert any(len({s["text"] for s in r["samples"]}) > 1 for r in rows)


def test_grading_job(sampled, bench, tmp_path):
    path, _, rows = sampled
    summary, details = _grade(path, bench, tmp_path)
    assert (summary["model"], summary["chain"], summary["benchmark"]) == ("tiny", "sft", "toy")
    assert summary["n_problems"] == 4 and summary["n_samples"] == 3 and len(details) == 12
    gold = dict((f"p{i}", a) for i, (_, a) in enumerate(PROBLEMS))
    texts = {(r["id"], j): s["text"] for r in rows for j, s in enumerate(r["samples"])}
    for d in details:  # each verdict is srlm.grading's on the raw sample
        g = grading.grade(texts[d["id"], d["sample"]], gold[d["id"]])
        assert (d["extracted"], d["correct"]) == (g.extracted, g.correct)
    per = [sum(d["correct"] for d in details if d["id"] == k) / 3 for k in gold]
    assert summary["pass_at_1"] == pytest.approx(sum(per) / 4)
    # the tiny model was trained on these answers: some right, and not everything right (sampling at T 0.6)
    assert 0 < summary["pass_at_1"] < 1
    assert summary["completion_tokens_total"] == sum(s["tokens"] for r in rows for s in r["samples"])
    assert summary["ci95"] == list(interval.pass_at_1(per, 3)) and summary["graded_by"].startswith("math-verify ")
    assert "<answer>" in summary["graded_by"] and "lighteval" not in summary["graded_by"]


def test_grading_refuses_completions_of_another_benchmark(sampled, tmp_path):
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"id": "q9", "problem": "?", "answer": "1"}) + "\n")
    with pytest.raises(SystemExit, match=r"^error: .* missing ids \['q9'\]"):  # one line, no traceback
        _grade(sampled[0], other, tmp_path)


def test_engines_agree_on_greedy_tokens(model_dir, bench, tmp_path):
    """srlm.decode and transformers' generate give the same greedy tokens (float32)."""
    greedy = {"temperature": 0.0, "n_samples": 1, "max_new_tokens": 24}
    texts = {}
    for engine in ("srlm.decode", "transformers"):
        settings, rows = _generate(model_dir, bench, tmp_path / f"{engine}.jsonl",
                                   _params(engine=engine, generation=greedy))  # fmt: skip
        assert settings["engine_used"] == engine
        texts[engine] = [(s["text"], s["tokens"]) for r in rows for s in r["samples"]]
    assert texts["srlm.decode"] == texts["transformers"]


@pytest.mark.parametrize("name", ["srlm.decode", "transformers"])
def test_token_ids_only_sample_the_same_without_texts(model_dir, name):
    """Engine.generate(texts=False) (GRPO's rollouts, which TRL detokenizes itself): the same seeded samples,
    text None; with texts the text is the tokens' decoding."""
    engine = generation_hf.load_transformers(name, model_dir, dtype="float32", max_model_length=128, batch_size=8)
    prompts, s = [[5, 6, 7], [8, 9], [5, 6, 7]], Sampling(temperature=1.0, max_new_tokens=12, n=2, seed=4)
    full, bare = engine.generate(prompts, s), engine.generate(prompts, s, texts=False)
    assert [[c.token_ids for c in cs] for cs in bare] == [[c.token_ids for c in cs] for cs in full]
    assert [[c.finish_reason for c in cs] for cs in bare] == [[c.finish_reason for c in cs] for cs in full]
    assert {c.text for cs in bare for c in cs} == {None}
    decoded = [engine.tokenizer.decode(c.token_ids, skip_special_tokens=True) for cs in full for c in cs]
    assert [c.text for cs in full for c in cs] == decoded


def test_one_job_samples_several_benchmarks_as_separate_jobs_would(model_dir, bench, tmp_path):
    """evaluation.generate_per: chain: one engine, one file per benchmark, each equal to its own job's file."""
    pa, pb = _params(), _params(generation={"max_new_tokens": 8, "seed": 3})
    alone = [_generate(model_dir, bench, tmp_path / f"{k}.jsonl", p) for k, p in (("a", pa), ("b", pb))]
    argv = ["--model-dir", str(model_dir)]
    for k, p in (("a", pa), ("b", pb)):
        argv += ["--bench", str(bench), "--params", json.dumps(p), "--out", str(tmp_path / f"both-{k}.jsonl")]
    assert completions.main(argv) == 0
    both = [completions.read(tmp_path / f"both-{k}.jsonl") for k in "ab"]
    for (s1, rows1), (s2, rows2) in zip(alone, both, strict=True):
        assert rows1 == rows2
        assert {**s1, "timing": None} == {**s2, "timing": None}
        assert s2["timing"]["wall_s"] > 0
    assert alone[0][1] != alone[1][1]  # the two settings sample differently
    with pytest.raises(SystemExit):  # one engine per job: only `generation` may differ
        completions.main(argv[:-6] + ["--bench", str(bench), "--params", json.dumps(_params(dtype="bfloat16")),
                                      "--out", str(tmp_path / "c.jsonl")])  # fmt: skip
    with pytest.raises(SystemExit):
        completions.main(argv[:-2])


def test_compile_decode_reaches_the_sampler_and_a_cpu_decodes_eagerly(model_dir, bench, tmp_path, monkeypatch):
    """config evaluation.compile_decode travels from the rule's params to srlm.decode; on a CPU it is not used
    (compiling takes minutes there), and an engine built without the setting decodes eagerly."""
    from srlm.speed import decode

    seen, plain = [], decode.generate

    def spy(*args, **kw):
        seen.append(kw.get("compiled"))
        return plain(*args, **kw)

    monkeypatch.setattr(decode, "generate", spy)
    greedy = {"temperature": 0.0, "n_samples": 1, "max_new_tokens": 8}
    _generate(model_dir, bench, tmp_path / "on.jsonl", _params(compile_decode=True, generation=greedy))
    assert seen and set(seen) == {False}
    seen.clear()
    engine = generation_hf.load_transformers("srlm.decode", model_dir, dtype="float32", max_model_length=64,
                                             batch_size=8)  # fmt: skip
    engine.generate([[5, 6, 7]], Sampling(temperature=0.0, max_new_tokens=4))
    assert seen == [False]
    seen.clear()
    hand = generation_hf.TransformersEngine(engine.model, engine.tokenizer, "srlm.decode", eos_ids=engine.eos_ids,
                                            max_model_length=64, batch_size=8)  # fmt: skip
    hand.generate([[5, 6, 7]], Sampling(temperature=0.0, max_new_tokens=4))
    assert seen == [False]


def test_protocol_prompts(model_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    paper = prompts.render(tok, prompts.messages("Q?", "paper", SYSTEM))
    # no system prompt of ours: the template's own default (as Qwen2.5's), then open-r1's query template
    assert SYSTEM not in paper
    assert paper.startswith("<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
                            "Solve the following math problem efficiently and clearly.")  # fmt: skip
    assert "I hope it is correct" in paper and paper.endswith("\n\nQ?<|im_end|>\n<|im_start|>assistant\n")
    r1 = prompts.render(tok, prompts.messages("Q?", "r1", "S"))
    assert r1 == "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nQ?<|im_end|>\n<|im_start|>assistant\n"
    assert prompts.render(tok, prompts.messages("Q?", "r1", "S"), enable_thinking=False) == r1 + "<think>\n\n</think>\n\n"
    assert prompts.render(tok, prompts.messages("Q?", "r1", "S"), chat_template=False) == "S\n\nQ?"
    with pytest.raises(ValueError, match="protocol"):
        prompts.messages("Q?", "open-r1")


def test_paper_protocol_grading(sampled, bench, tmp_path):
    """The paper protocol's verdicts come from the extractive match, whatever the prompt was."""
    path, settings, rows = sampled
    paper = tmp_path / "paper.jsonl"
    completions.write(paper, {**settings, "protocol": "paper"}, rows)
    summary, details = _grade(paper, bench, tmp_path)
    assert summary["protocol"] == "paper"
    # the tables cite this: what graded the numbers, never "lighteval ran"
    assert "lighteval's extractive-match settings" in summary["graded_by"]
    assert "not through lighteval" in summary["graded_by"]
    gold = dict((f"p{i}", a) for i, (_, a) in enumerate(PROBLEMS))
    texts = {(r["id"], j): s["text"] for r in rows for j, s in enumerate(r["samples"])}
    for d in details:
        g = grading.grade_extractive(texts[d["id"], d["sample"]], gold[d["id"]], "expr")
        assert (d["extracted"], d["correct"]) == (g.extracted, g.correct)


def test_params_are_checked():
    with pytest.raises(ValueError, match=r"unknown key.*'temprature'"):
        completions.Params.from_json(json.dumps({**_params(), "temprature": 0.6}))


def _d(pid, sample, correct, extracted="1", tokens=10, finish="stop"):
    return {"id": pid, "sample": sample, "extracted": extracted, "correct": correct, "completion_tokens": tokens,
            "finish_reason": finish}  # fmt: skip


def test_summarize_hand_made():
    details = [
        _d("a", 0, True),
        _d("a", 1, True),
        _d("b", 0, True),
        _d("b", 1, False, None, 20, "length"),
        _d("c", 0, False, None, 30),
        _d("c", 1, False),
    ]
    s = grade.summarize(details, n_samples=2)
    assert s["pass_at_1"] == pytest.approx(0.5)  # per problem 1, 0.5, 0
    assert s["stderr"] == pytest.approx(0.5 / math.sqrt(3))  # sample std of (1, .5, 0) is 0.5
    # p(1-p)/stderr² = 0.25 / (0.25/3) = 3 problems' worth (within [3, 6]): Wilson at n = 3
    assert s["ci95"] == pytest.approx(list(interval.wilson(0.5, 3)))
    lo, hi = s["ci95"]
    assert 0.0 < lo < 0.5 < hi < 1.0
    assert s["not_extractable_rate"] == pytest.approx(2 / 6) and s["stopped_rate"] == pytest.approx(5 / 6)
    assert (s["completion_tokens_total"], s["completion_tokens_mean"]) == (90, 15.0)
    one = grade.summarize(details[:2], 2)  # one problem, both right: no noise estimate, yet an interval
    assert one["stderr"] == 0.0 and one["ci95"] == pytest.approx(list(interval.wilson(1.0, 1)))
    assert one["ci95"][0] < 0.25
    with pytest.raises(ValueError, match="expected 3 samples"):
        grade.summarize(details, n_samples=3)


def test_summarize_interval_does_not_collapse_at_0_or_n():
    """A cell at 0/40 (AMC23 in docs/real-weights.md) showed [0.0, 0.0]; Wilson's bound is z²/(n+z²) = 8.8%."""
    zeros = [_d(f"p{i}", 0, False) for i in range(40)]
    lo, hi = grade.summarize(zeros, 1)["ci95"]
    assert lo == 0.0 and hi == pytest.approx(0.0876, abs=5e-5)
    ones = [_d(f"p{i}", 0, True) for i in range(40)]
    lo, hi = grade.summarize(ones, 1)["ci95"]
    assert hi == 1.0 and lo == pytest.approx(1 - 0.0876, abs=5e-5)
    # 4 samples a problem, all wrong: 160 samples, but the problems are the unit: the same 8.8%, not 2.3%
    clustered = [_d(f"p{i}", j, False) for i in range(40) for j in range(4)]
    assert grade.summarize(clustered, 4)["ci95"] == pytest.approx([0.0, 0.0876], abs=5e-5)


def test_summarize_clustered_samples():
    """Several samples a problem: the interval is as wide as the problems make it. Samples of a problem that
    all agree are worth one sample each (design effect m); samples that vary within problems are worth more."""
    # 10 of 40 problems right in all 4 samples, the rest wrong in all 4: 40 problems' worth of evidence
    agree = [_d(f"p{i}", j, i < 10) for i in range(40) for j in range(4)]
    s = grade.summarize(agree, 4)
    assert s["pass_at_1"] == 0.25 and s["ci95"] == pytest.approx(list(interval.wilson(0.25, 40)))
    # every problem right in exactly 1 of its 4 samples: no spread between problems, all 160 samples count
    spread = [_d(f"p{i}", j, j == 0) for i in range(40) for j in range(4)]
    s2 = grade.summarize(spread, 4)
    assert s2["pass_at_1"] == 0.25 and s2["ci95"] == pytest.approx(list(interval.wilson(0.25, 160)))
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(s2["ci95"]) < 0.6 * width(s["ci95"])
