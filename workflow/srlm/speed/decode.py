"""Sampling from a causal LM without vLLM, fast: static KV cache, grouped-query decode attention, CUDA graphs.

`model.generate` spends 30-50 ms a decode step on a 0.5B model whatever the batch (docs/performance.md): Python and
kernel launches for 24 layers, plus, once compiled with a static cache, transformers' SDPA path copying every
layer's keys and values 7× (Qwen2.5's 14 query heads share 2 KV heads, and SDPA's GQA mode is off when a padding
mask is given). This module decodes with the same transformers model and the same sampling rules, and removes both:
- decode attention groups the query heads of one KV head into one SDPA call (q [B, kv, group, d] against the cache
  [B, kv, L, d]): exactly the same sums, no copies; it attends only to the cache's filled part, rounded up to
  `window` positions;
- each decode step (model forward, sampling, bookkeeping) is captured once per attention window as a CUDA graph and
  replayed, so a step costs one launch from Python;
- optionally (`compiled`) the decode step's model forward goes through `torch.compile` (dynamic shapes: one
  compilation per process and model mode serves every batch, window and cache size): under a CUDA graph, each of
  the ~40 elementwise kernels per layer (RMSNorm's float32 steps, rotary, SiLU, residuals) still costs a few
  microseconds, which Inductor's fused kernels remove. Measured on an H200 (docs/performance.md): compiling takes
  about a minute once per process, then evaluation decodes 1.2x faster at 512 rows (1.7x at 64) and GRPO's 128
  rollouts 1.5x; config evaluation.compile_decode and, for GRPO, launch.compile turn it on. Layers compiled on their
  own (srlm.speed.compile_layers) are inlined into the compiled step and run eagerly in the other steps;
- sampling (temperature, top-k, top-p of srlm.generation.Sampling, as transformers' logits warpers do it) draws
  with the exponential race argmax(p / E), E ~ Exp(1), which is a draw from p without a host sync; top-p by
  rejection (`sample`) rather than sorting the vocabulary of every row.
Works for any model whose layers are full attention through transformers' AttentionInterface (Qwen2, Qwen2.5,
Qwen3); on CPU it runs the same steps eagerly. `supported` says when to fall back to `model.generate`.
"""

from __future__ import annotations

import functools
import math
import warnings
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F

if TYPE_CHECKING:  # the one sampling type; only its temperature, top_p and top_k are read here
    from srlm.generation import Sampling

ATTENTION = "srlm_static"
# Prompts are left-padded to a multiple of this (fewer distinct shapes, aligned masks).
PROMPT_MULTIPLE = 64
# Attention window granularity: a decode step attends to the first multiple of WINDOW cache positions that holds
# every token so far (one CUDA graph per window).
WINDOW = 256
# Decode steps between checks (one host sync) of whether every row has finished.
CHECK_EVERY = 16


def supported(model, *, repetition_penalty: float = 1.0, min_p: float | None = None) -> str | None:
    """None if `generate` can serve this model and these settings, else why not (the caller falls back)."""
    config = model.config
    if repetition_penalty != 1.0 or min_p is not None:
        return "repetition_penalty / min_p are not implemented here"
    if getattr(config, "is_encoder_decoder", False):
        return "encoder-decoder model"
    types = set(getattr(config, "layer_types", None) or ["full_attention"])
    if types != {"full_attention"} or getattr(config, "use_sliding_window", False):
        return f"layer types {sorted(types)}: only full attention is implemented"
    return None


def attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """transformers attention function (registered as ATTENTION). `key`/`value` are the whole static cache
    [B, kv, L, d]; `attention_mask` is this module's boolean mask [B, 1, q, W] (True = attend), W <= L."""
    width = attention_mask.shape[-1]
    key, value = key[:, :, :width], value[:, :, :width]
    b, heads, q_len, dim = query.shape
    kv_heads = key.shape[1]
    group = heads // kv_heads
    if q_len == 1:  # decode: the group's query heads are the "positions" of one SDPA call per KV head
        out = F.scaled_dot_product_attention(
            query.reshape(b, kv_heads, group, dim), key, value, attn_mask=attention_mask, scale=scaling
        ).reshape(b, heads, 1, dim)
    else:  # prefill (once per call): plain SDPA over the repeated heads
        from transformers.integrations.sdpa_attention import repeat_kv

        key, value = repeat_kv(key, group), repeat_kv(value, group)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, scale=scaling)
    return out.transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(ATTENTION, attention)  # idempotent: the same function under the same name


@contextmanager
def _attention_of(model, name: str):
    before = model.config._attn_implementation  # read only: transformers has no public getter
    model.set_attn_implementation(name)
    try:
        yield
    finally:
        model.set_attn_implementation(before)


def _scaled(logits: torch.Tensor, temperature: float, top_k: int) -> torch.Tensor:
    """Float32 logits after temperature, everything outside the top k at -inf (top_k 0: none)."""
    logits = logits.float() / temperature
    if 0 < top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    return logits


def filter_logits(logits: torch.Tensor, s: Sampling) -> torch.Tensor:
    """Float32 logits with everything outside top-k / the top-p nucleus at -inf, after temperature: the same
    tokens transformers' Temperature/TopK/TopP warpers keep (top-p: smallest set whose probability reaches p,
    at least one token)."""
    logits = _scaled(logits, s.temperature, s.top_k)
    if s.top_p < 1.0:
        ascending, order = torch.sort(logits, dim=-1, stable=True)  # ties kept by token id, as `sample` does
        drop = ascending.softmax(-1).cumsum(-1) <= 1 - s.top_p
        drop[..., -1] = False
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    return logits


def _race(probs: torch.Tensor) -> torch.Tensor:
    """One draw per row of `probs` (unnormalised is fine) without a host sync: the exponential race
    argmax(p / E), E ~ Exp(1)."""
    return (probs / torch.empty_like(probs).exponential_()).argmax(-1)


def redraw_rows(batch: int, top_p: float) -> int:
    """Rows per step that `sample` re-draws through the sorted nucleus: twice the expected number of draws that
    fall outside it (at most 1 - top_p of the rows), plus 32. More than that in one step has probability below
    1e-18 whatever the batch and top_p (Chernoff bound); `sample` counts the rows beyond it."""
    return min(batch, 32 + math.ceil(2 * (1 - top_p) * batch))


def first_draw(
    logits: torch.Tensor, uniform: torch.Tensor, temperature: float, top_p: float, top_k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`sample`'s first round: a draw per row from the temperature/top-k distribution (the exponential race with
    E = -log(uniform)), and whether it missed the top-p nucleus. Elementwise work and row reductions only, which
    torch.compile fuses into a few passes over the logits on a GPU (`_first_draw`)."""
    x = _scaled(logits, temperature, top_k)
    w = torch.exp(x - x.amax(-1, keepdim=True))  # unnormalised probabilities
    token = (w / -torch.log(uniform)).argmax(-1)
    if top_p >= 1.0:  # the nucleus is the whole distribution: nothing misses it
        return token, torch.zeros_like(token, dtype=torch.bool)
    chosen = w.gather(-1, token[:, None])
    ids = torch.arange(w.shape[-1], device=w.device)
    after = (w > chosen) | ((w == chosen) & (ids > token[:, None]))  # after it in a stable ascending sort
    return token, torch.where(after, w, 0.0).sum(-1) >= top_p * w.sum(-1)


_COMPILE_FAILED: set[str] = set()  # what failed to compile in this process: run eagerly from then on


@functools.cache
def _compiled(fn, dynamic: bool):
    return torch.compile(fn, dynamic=dynamic)


def _maybe_compiled(fn, what: str, *args, dynamic: bool = False, **kwargs):
    """fn(*args, **kwargs) through torch.compile (each new shape compiles on its first call, which `generate` makes
    outside any CUDA-graph capture), or eagerly if compiling `what` failed before or fails now."""
    if what not in _COMPILE_FAILED:
        try:
            return _compiled(fn, dynamic)(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 - no compiler on the machine: the same function, eager
            warnings.warn(f"srlm.decode: torch.compile of the {what} failed ({type(e).__name__}: {e}); eager")
            _COMPILE_FAILED.add(what)
    return fn(*args, **kwargs)


def _first_draw(logits: torch.Tensor, *args) -> tuple[torch.Tensor, torch.Tensor]:
    """first_draw, compiled for CUDA tensors (one compilation per shape); eager on a CPU."""
    if not logits.is_cuda:
        return first_draw(logits, *args)
    return _maybe_compiled(first_draw, "sampling", logits, *args)


def sample(logits: torch.Tensor, s: Sampling, overflow: torch.Tensor | None = None) -> torch.Tensor:
    """One token per row ([B] long), distributed as transformers' warpers + multinomial sampling would draw it.

    Top-p without sorting the vocabulary for every row (at 512 rows × 151,936 logits the sort and its scatter
    cost more than the model's forward): rejection sampling. Draw from the temperature/top-k distribution; the
    draw is in the nucleus iff the probability strictly above it is < top_p (the same tokens as transformers'
    ascending cumulative sum; tied probabilities ordered by token id, as a stable sort does: bf16 logits tie
    often), and an accepted draw is then a draw from the nucleus. Rows whose draw fell outside
    (a fraction <= 1 - top_p of them on average) draw anew from the sorted nucleus, at most `redraw_rows` rows a
    step: the result is exact unless more rows than that missed, which `overflow` (a counter tensor) counts."""
    if s.temperature == 0:
        return logits.argmax(-1)
    batch = logits.shape[0]
    fix = redraw_rows(batch, s.top_p)
    if s.top_p < 1.0 and fix >= batch:  # few rows: sort them all
        return _race(filter_logits(logits, s).softmax(-1))
    uniform = torch.rand(logits.shape, device=logits.device)
    if s.top_p >= 1.0:  # no nucleus (GRPO's rollouts): the first draw is the draw (two fused passes on a GPU where
        # the float32 conversion, temperature, softmax and race took six, 0.39 ms of a 3.3 ms step at 128 rows)
        return _first_draw(logits, uniform, s.temperature, 1.0, s.top_k)[0]
    token, missed = _first_draw(logits, uniform, s.temperature, s.top_p, s.top_k)
    rows = torch.argsort(missed.to(torch.uint8), descending=True, stable=True)[:fix]  # the missed rows first
    again = _race(filter_logits(logits.index_select(0, rows), s).softmax(-1))
    token = token.index_copy(0, rows, torch.where(missed[rows], again, token[rows]))
    if overflow is not None:
        overflow += (missed.sum() - fix).clamp(min=0)
    return token


def _submodule_hooks(model) -> bool:
    """Whether a layer of the model carries forward hooks (DeepSpeed ZeRO-3 gathers parameters that way): such a
    forward cannot be recorded into a CUDA graph. The top module's own hooks are skipped by calling `forward`
    (DeepSpeed's engine puts a timer there that synchronizes the device)."""
    return any(m._forward_pre_hooks or m._forward_hooks for m in model.modules() if m is not model)


def distinct(keys) -> tuple[list[int], list[int]]:
    """(lead, copy_of): the index of each distinct key's first occurrence, in first-seen order, and for every
    index its key's place in `lead`; keys[lead[copy_of[i]]] == keys[i]."""
    place: dict = {}
    lead, copy_of = [], []
    for i, key in enumerate(keys):
        j = place.setdefault(key, len(place))
        if j == len(lead):
            lead.append(i)
        copy_of.append(j)
    return lead, copy_of


def _round_up(n: int, k: int) -> int:
    return -(-n // k) * k


class _Run:
    """State of one `generate` call: static tensors that every step (eager or replayed graph) updates in place."""

    def __init__(self, model, prompts, max_new_tokens, eos_ids, pad_id, s: Sampling, compiled: bool):
        from transformers import StaticCache

        dev = model.device
        self.model, self.s, self.compiled = model, s, compiled
        b = len(prompts)
        self.prompt_width = width = _round_up(max(len(p) for p in prompts), PROMPT_MULTIPLE)
        self.capacity = width + max_new_tokens
        ids = torch.full((b, width), pad_id, dtype=torch.long)
        real = torch.zeros((b, width), dtype=torch.bool)
        for i, p in enumerate(prompts):
            ids[i, width - len(p) :] = torch.tensor(p, dtype=torch.long)
            real[i, width - len(p) :] = True
        # Rows with the same prompt (GRPO's num_generations, evaluation's n samples) share one prefill (`prefill`);
        # copy_of is None when every prompt is distinct.
        lead, copy_of = distinct(map(tuple, prompts))
        self.lead = torch.tensor(lead, device=dev)
        self.copy_of = torch.tensor(copy_of, device=dev) if len(lead) < b else None
        self.prompt_ids, real = ids.to(dev), real.to(dev)
        self.prompt_pos = (real.long().cumsum(-1) - 1).clamp(min=0)
        # Key mask of the whole cache (True = a real token); the pad slots of the prompts stay False. The cache and
        # its mask hold one position more than a window reaches, so that every window is a strict part of them (a
        # window that was the whole cache would be a contiguous mask of the cache's length, and the compiled step
        # would be compiled again for it).
        self.mask = torch.zeros((b, 1, 1, self.capacity + 1), dtype=torch.bool, device=dev)
        self.mask[:, 0, 0, :width] = real
        causal = torch.ones((width, width), dtype=torch.bool, device=dev).tril()
        # Every prompt position sees itself, so no query row of the padding is all-masked (SDPA would give NaN).
        self.prefill_mask = causal & (real[:, None, None, :] | torch.eye(width, dtype=torch.bool, device=dev))
        self.cache = StaticCache(config=model.config, max_cache_len=self.capacity + 1)
        self.eos = torch.tensor(sorted(eos_ids), device=dev)
        self.pad = pad_id
        self.out = torch.full((b, max_new_tokens), pad_id, dtype=torch.long, device=dev)
        self.token = torch.zeros((b, 1), dtype=torch.long, device=dev)
        self.pos = real.long().sum(-1, keepdim=True)  # position of the token fed at the next step
        self.slot = torch.tensor([width], device=dev)  # its cache index
        self.col = torch.zeros((1,), dtype=torch.long, device=dev)  # its column in `out`
        self.done = torch.zeros((b,), dtype=torch.bool, device=dev)
        self.overflow = torch.zeros((), dtype=torch.long, device=dev)  # draws `sample` could not redo

    def _emit(self, logits: torch.Tensor) -> None:
        new = sample(logits, self.s, self.overflow)
        new = torch.where(self.done, torch.full_like(new, self.pad), new)
        self.out.index_copy_(1, self.col, new[:, None])
        self.done |= torch.isin(new, self.eos)
        self.token.copy_(new[:, None])
        self.col += 1

    def _forward(self, ids, mask, positions, cache, compiled: bool) -> torch.Tensor:
        """The model on `ids` (writing their keys and values into `cache`): the last position's logits."""
        # The class's forward: accelerate's mixed precision replaces the instance's `forward` with an autocast
        # wrapper (and generate() below leaves autocast off; see there).
        forward = type(self.model).forward
        inputs = dict(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            past_key_values=cache,
            use_cache=True,
            logits_to_keep=1,
        )
        if compiled:
            out = _maybe_compiled(forward, "decode step", self.model, dynamic=True, **inputs)
        else:
            # Layers compiled on their own (a GRPO policy's) run eagerly: with the static cache each layer's graph
            # would be specialized on its layer index, one compilation per layer.
            with torch.compiler.set_stance("force_eager"):
                out = forward(self.model, **inputs)
        return out.logits[:, -1]

    def prefill(self) -> None:
        """The prompts into the cache, and the first tokens. Rows that share a prompt share its prefill: the
        distinct prompts run through a cache of their own, whose keys and values then fill every row of the
        cache (GRPO's 128 rows are 8 prompts × 16: its prefill took 73 ms a rollout call on an H100)."""
        rows = self.copy_of
        if rows is None:
            self._emit(self._forward(self.prompt_ids, self.prefill_mask, self.prompt_pos, self.cache, False))
            return
        from transformers import StaticCache

        lead = self.lead
        once = StaticCache(config=self.model.config, max_cache_len=self.prompt_width)
        logits = self._forward(self.prompt_ids[lead], self.prefill_mask[lead], self.prompt_pos[lead], once, False)
        for i, layer in enumerate(once.layers):  # Cache.update: as if every row had been prefilled
            self.cache.update(layer.keys.index_select(0, rows), layer.values.index_select(0, rows), i)
        self._emit(logits.index_select(0, rows))

    def step(self, window: int) -> None:
        """Feed `token` at cache index `slot`, attending to the first `window` cache positions."""
        self.mask.index_fill_(-1, self.slot, True)
        self._emit(self._forward(self.token, self.mask[..., :window], self.pos, self.cache, self.compiled))
        self.pos += 1
        self.slot += 1

    def window(self, step: int) -> int:
        """Attention window of decode step `step` (1-based: step 1 feeds the prefill's token)."""
        return min(self.capacity, _round_up(self.prompt_width + step, WINDOW))

    def results(self) -> list[list[int]]:
        """Each row's tokens up to and including its first EOS (all max_new_tokens if none)."""
        out = self.out.tolist()
        if missed := int(self.overflow):
            warnings.warn(
                f"srlm.decode: {missed} tokens drawn outside the top-p nucleus (decode.redraw_rows)"
            )
        eos = set(self.eos.tolist())
        rows = []
        for row in out:
            end = next((k + 1 for k, t in enumerate(row) if t in eos), len(row))
            rows.append(row[:end])
        return rows


@torch.no_grad()
def generate(
    model,
    prompts: list[list[int]],
    max_new_tokens: int,
    *,
    eos_ids,
    pad_id: int,
    sampling: Sampling,
    cuda_graphs: bool | None = None,
    compiled: bool = False,
) -> list[list[int]]:
    """Sample one completion per prompt (token ids, unpadded; repeat a prompt for several samples). Each
    completion ends at its first EOS (included) or after max_new_tokens. `cuda_graphs`: default on for CUDA
    unless a layer has forward hooks; `compiled`: the decode step's forward through torch.compile."""
    if not prompts or max_new_tokens < 1:
        return [[] for _ in prompts]
    _register()
    if cuda_graphs is None:
        cuda_graphs = model.device.type == "cuda" and not _submodule_hooks(model)
    # Decode in the weights' own dtype, outside any autocast (a trainer's mixed precision): under bf16 autocast,
    # transformers' rotary step keeps float32 keys of float32 weights while values come out bf16, and the static
    # cache, typed by the first keys, refuses the values (index_copy_: Float and BFloat16).
    with _attention_of(model, ATTENTION), torch.autocast(model.device.type, enabled=False):
        run = _Run(model, prompts, max_new_tokens, set(eos_ids), pad_id, sampling, compiled)
        run.prefill()
        graphs: dict[int, torch.cuda.CUDAGraph | None] = {}
        pool = torch.cuda.graph_pool_handle() if cuda_graphs else None
        for step in range(1, max_new_tokens):
            if step % CHECK_EVERY == 0 and bool(run.done.all()):
                break
            window = run.window(step)
            # Steps that run uncaptured: the first (it warms up the kernels) and, when compiled, the first of each
            # window (it compiles what a new shape needs, which cannot happen during a capture).
            if not cuda_graphs or step == 1 or (compiled and window not in graphs):
                run.step(window)
                graphs[window] = None
                continue
            graph = graphs.get(window)
            if graph is None:
                graph = graphs[window] = capture(functools.partial(run.step, window), pool)  # recorded, not run
            graph.replay()
        return run.results()


_CAPTURE_STREAMS: dict[int, torch.cuda.Stream] = {}


def capture(fn, pool) -> torch.cuda.CUDAGraph:
    """A CUDA graph of fn() (recorded, not run), captured as `torch.cuda.graph` does it (on a side stream, from
    memory pool `pool`) but without its device sync and `empty_cache`: inside a trainer, emptying the cache hands
    back every block the training step had cached (cudaFree synchronizes), and the next forward allocates them
    again, twice per rollout call. thread_local: CUDA calls of other threads (a trainer's pin-memory thread) may
    go on meanwhile."""
    graph = torch.cuda.CUDAGraph()
    device = torch.cuda.current_device()
    if device not in _CAPTURE_STREAMS:
        _CAPTURE_STREAMS[device] = torch.cuda.Stream(device)
    stream = _CAPTURE_STREAMS[device]
    stream.wait_stream(torch.cuda.current_stream())  # ordered after the work queued before (no device sync)
    with torch.cuda.stream(stream):
        graph.capture_begin(pool=pool, capture_error_mode="thread_local")
        try:
            fn()
        finally:
            graph.capture_end()
    torch.cuda.current_stream().wait_stream(stream)
    return graph
