"""srlm.decode: the static-cache sampler gives transformers' own results.

Greedy decoding must equal `model.generate` token for token (left-padded prompts of different lengths, attention
windows crossed, EOS honoured), for Qwen2 and Qwen3 layers; sampling must keep exactly the tokens transformers'
temperature / top-k / top-p warpers keep and draw from their distribution. The models are random, small and
initialised with a large spread so that greedy paths are diverse (the tiny trained model repeats one token).
On CPU the steps run eagerly; perf/gpu_decode_check.py checks the CUDA-graph replay against them on a GPU.
"""

from __future__ import annotations

import pytest
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM
from transformers.generation.logits_process import (
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
)

from srlm.generation import Sampling
from srlm.speed import decode

VOCAB, PAD = 300, 0


def _model(kind: str):
    torch.manual_seed(0)
    common = dict(vocab_size=VOCAB, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, initializer_range=0.5,
                  max_position_embeddings=512, tie_word_embeddings=True)  # fmt: skip
    if kind == "qwen3":
        return Qwen3ForCausalLM(Qwen3Config(head_dim=16, **common)).eval()
    return Qwen2ForCausalLM(Qwen2Config(**common)).eval()


def _prompts(lengths=(5, 70, 1, 33, 64, 65)) -> list[list[int]]:
    g = torch.Generator().manual_seed(1)
    return [torch.randint(3, VOCAB, (n,), generator=g).tolist() for n in lengths]


def _reference(model, prompts, new: int, eos: list[int]) -> list[list[int]]:
    """model.generate, greedy, left padding; each row cut after its first EOS."""
    width = max(map(len, prompts))
    ids = torch.full((len(prompts), width), PAD)
    mask = torch.zeros_like(ids)
    for i, p in enumerate(prompts):
        ids[i, width - len(p) :], mask[i, width - len(p) :] = torch.tensor(p), 1
    out = model.generate(input_ids=ids, attention_mask=mask, do_sample=False, max_new_tokens=new,
                         eos_token_id=eos, pad_token_id=PAD)[:, width:].tolist()  # fmt: skip
    return [r[: next((k + 1 for k, t in enumerate(r) if t in eos), len(r))] for r in out]


@pytest.mark.parametrize("kind", ["qwen2", "qwen3"])
def test_greedy_equals_generate_across_windows(kind, monkeypatch):
    monkeypatch.setattr(decode, "PROMPT_MULTIPLE", 16)
    monkeypatch.setattr(decode, "WINDOW", 8)  # 40 new tokens cross five attention windows
    model, prompts = _model(kind), _prompts()
    ours = decode.generate(
        model, prompts, 40, eos_ids=[2], pad_id=PAD, sampling=Sampling(temperature=0)
    )
    ref = _reference(model, prompts, 40, [2])
    assert ours == ref
    assert all(len(set(r)) > 5 for r in ref)  # diverse paths, not one repeated token


@pytest.mark.parametrize("kind", ["qwen2", "qwen3"])
def test_rows_sharing_a_prompt_share_its_prefill(kind, monkeypatch):
    """GRPO's rollouts repeat each prompt: the prefill runs the model on the distinct prompts only (3 rows of 7),
    and every row still decodes as model.generate does with each row prefilled on its own; sampled rows of one
    prompt draw apart."""
    monkeypatch.setattr(decode, "PROMPT_MULTIPLE", 16)
    monkeypatch.setattr(decode, "WINDOW", 8)
    model, base = _model(kind), _prompts()
    prompts = [base[i] for i in (1, 0, 1, 3, 0, 1, 3)]
    ref = _reference(model, prompts, 40, [2])
    batches, forward = [], type(model).forward

    def spy(self, input_ids=None, **kw):
        batches.append(tuple(input_ids.shape))
        return forward(self, input_ids=input_ids, **kw)

    monkeypatch.setattr(type(model), "forward", spy)
    ours = decode.generate(model, prompts, 40, eos_ids=[2], pad_id=PAD, sampling=Sampling(temperature=0))
    assert batches[0] == (3, 80) and {b for b, _ in batches[1:]} == {7}
    assert ours == ref
    torch.manual_seed(0)
    sampled = decode.generate(model, [base[0]] * 6, 12, eos_ids=[], pad_id=PAD, sampling=Sampling(1.0))
    assert len({tuple(r) for r in sampled}) == 6


def test_compiled_step_gives_the_same_tokens(monkeypatch):
    """The decode step through torch.compile (the default on CUDA; here Inductor's CPU backend, forced): greedy
    tokens still equal model.generate's across windows, and one compilation with dynamic shapes serves another
    batch size and prompt width. A failed compile would fall back to eager steps: the test requires it did not."""
    monkeypatch.setattr(decode, "PROMPT_MULTIPLE", 16)
    monkeypatch.setattr(decode, "WINDOW", 8)
    monkeypatch.setattr(decode, "_COMPILE_FAILED", set())
    model, prompts = _model("qwen2"), _prompts()
    greedy = Sampling(temperature=0)
    for rows in (prompts, prompts[1:4]):
        ours = decode.generate(model, rows, 24, eos_ids=[2], pad_id=PAD, sampling=greedy, compiled=True)
        assert decode._COMPILE_FAILED == set()
        assert ours == _reference(model, rows, 24, [2])


def test_compiled_step_takes_in_compiled_layers(monkeypatch):
    """A GRPO policy on a GPU: its layers compiled on their own (speed.compile_layers) and the decode step compiled.
    One compilation serves the whole step (the layers inlined, not one graph per layer index, which the static
    cache would force on layers compiled apart), the prefill runs them eagerly, and greedy tokens still equal
    model.generate's."""
    from torch._dynamo.utils import counters

    from srlm import speed

    monkeypatch.setattr(decode, "PROMPT_MULTIPLE", 16)
    monkeypatch.setattr(decode, "WINDOW", 8)
    monkeypatch.setattr(decode, "_COMPILE_FAILED", set())
    model, prompts = _model("qwen2"), _prompts()
    ref = _reference(model, prompts, 24, [2])
    assert speed.compile_layers(model) == 2
    torch._dynamo.reset()
    counters.clear()
    ours = decode.generate(model, prompts, 24, eos_ids=[2], pad_id=PAD, sampling=Sampling(temperature=0),
                           compiled=True)  # fmt: skip
    assert decode._COMPILE_FAILED == set()
    assert counters["frames"]["ok"] == 1
    assert ours == ref


def test_rows_stop_at_their_first_eos():
    model, prompts = _model("qwen2"), _prompts()
    free = decode.generate(
        model, prompts, 30, eos_ids=[], pad_id=PAD, sampling=Sampling(temperature=0)
    )
    eos = free[0][3]  # row 0 would emit this token 4th: make it the EOS
    ours = decode.generate(
        model, prompts, 30, eos_ids=[eos], pad_id=PAD, sampling=Sampling(temperature=0)
    )
    assert ours[0] == free[0][: free[0].index(eos) + 1] and len(ours[0]) <= 4
    assert ours == _reference(model, prompts, 30, [eos])
    assert any(len(r) == 30 for r in ours)  # rows without that token run to max_new_tokens


@pytest.mark.parametrize(
    "s",
    [
        Sampling(0.6, 0.95, 0),
        Sampling(1.0, 0.5, 0),
        Sampling(0.7, 1.0, 20),
        Sampling(1.3, 0.9, 50),
        Sampling(1.0, 0.0, 0),
    ],  # fmt: skip
)
def test_filter_keeps_what_transformers_warpers_keep(s):
    logits = torch.randn(16, VOCAB, generator=torch.Generator().manual_seed(2)) * 3
    ref = TemperatureLogitsWarper(s.temperature)(None, logits.clone())
    if s.top_k:
        ref = TopKLogitsWarper(s.top_k)(None, ref)
    if s.top_p < 1:
        ref = TopPLogitsWarper(s.top_p)(None, ref)
    ours = decode.filter_logits(logits, s)
    assert torch.equal(torch.isinf(ours), torch.isinf(ref))
    assert torch.allclose(ours[~torch.isinf(ours)], ref[~torch.isinf(ref)])
    assert 0 < (~torch.isinf(ours)).sum(-1).min() and (
        s.top_p == 1 and not s.top_k or torch.isinf(ours).any()
    )


@pytest.mark.parametrize(
    "s, rows",
    [
        (Sampling(0.6, 0.9, 0), 1000),  # rejection: misses re-drawn, up to 232 rows a step
        (Sampling(1.0, 0.7, 0), 1000),
        (Sampling(0.8, 0.95, 20), 1000),  # top-k, then top-p of the renormalised top-k distribution
        (Sampling(0.6, 0.9, 0), 16),  # few rows: the sorted nucleus for all of them
        (Sampling(1.0, 1.0, 0), 1000),  # no truncation (GRPO's rollouts)
        (Sampling(0.7, 1.0, 20), 1000),  # top-k only
        (Sampling(1.0, 0.8, 0), 1000),  # ties (below): the nucleus takes part of a tied group
    ],  # fmt: skip
)
def test_sampling_draws_from_the_filtered_distribution(s, rows):
    torch.manual_seed(3)
    logits = torch.randn(1, 50) * 2
    if s.top_p == 0.8:  # 5 groups of 10 equal logits; the nucleus: the top group and 7 tokens of the next
        logits = (torch.arange(50) // 10).float()[None]
        kept = decode.filter_logits(logits, s).isfinite()[0].nonzero().flatten()
        assert torch.equal(kept, torch.arange(33, 50))
    p = decode.filter_logits(logits, s).softmax(-1)[0]
    overflow = torch.zeros((), dtype=torch.long)
    draws = torch.cat([decode.sample(logits.expand(rows, -1), s, overflow) for _ in range(20_000 // rows)])
    freq = torch.bincount(draws, minlength=50).float() / draws.numel()
    assert (freq[p == 0] == 0).all()  # never outside the nucleus
    assert 0.5 * (freq - p).abs().sum() < 0.03  # total variation at the noise level of 20,000 draws
    assert int(overflow) == 0
    assert torch.equal(decode.sample(logits, Sampling(temperature=0)), logits.argmax(-1))


def test_draws_that_could_not_be_redrawn_are_counted(monkeypatch):
    """With room to re-draw one row a step, the draws that missed the nucleus stay; the counter says how many."""
    monkeypatch.setattr(decode, "redraw_rows", lambda batch, top_p: 1)
    torch.manual_seed(4)
    logits = torch.arange(50.0)[None] * 1e-3  # nearly uniform: top-p 0.5 keeps 25 tokens, half the draws miss
    s = Sampling(1.0, 0.5, 0)
    outside = ~torch.isfinite(decode.filter_logits(logits, s)[0])
    overflow = torch.zeros((), dtype=torch.long)
    draws = decode.sample(logits.expand(400, -1), s, overflow)
    assert int(overflow) == int(outside[draws].sum()) > 100


def test_supported_names_what_it_cannot_do():
    model = _model("qwen2")
    assert decode.supported(model) is None
    assert "repetition_penalty" in decode.supported(model, repetition_penalty=1.1)
    model.config.layer_types = ["sliding_attention", "full_attention"]
    assert "sliding_attention" in decode.supported(model)


def test_decoding_under_accelerates_mixed_precision_uses_the_weights_dtype():
    """A float32 model prepared by accelerate for bf16 mixed precision without DeepSpeed (its `forward` wrapped
    in autocast, as for GRPO rollouts) decodes as the plain model does; it used to stop at the static cache
    (index_copy_: Float and BFloat16, seen on an H200 with SmolLM2, 2026-11-30)."""
    from accelerate import Accelerator

    model, prompts = _model("qwen2"), _prompts()
    greedy = Sampling(temperature=0)
    plain = decode.generate(model, prompts, 20, eos_ids=[2], pad_id=PAD, sampling=greedy)
    prepared = Accelerator(mixed_precision="bf16", cpu=True).prepare(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert decode.generate(prepared, prompts, 20, eos_ids=[2], pad_id=PAD, sampling=greedy) == plain
