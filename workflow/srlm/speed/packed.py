"""Padding-free (packed) attention for SFT/KD: each sequence of a flattened batch attends only to itself.

TRL's `SFTConfig(padding_free=True)` collator concatenates the rows of a micro-batch into one row, with
`position_ids` restarting at 0 for every sequence, no `attention_mask`, and the boundaries as `cu_seq_lens_q/k`
(cumulative lengths, int32) and `max_length_q/k`; the model passes these through to every attention call. This
module registers an attention function (transformers' AttentionInterface, name ATTENTION) that computes causal
attention within each sequence without building the O(L²) block-diagonal mask transformers' SDPA path needs:
- "varlen": torch's FlashAttention varlen kernel (`torch.nn.attention.varlen.varlen_attn`; CUDA, bf16/fp16);
- "flex": torch's flex attention with a document-causal block mask (compiled on CUDA);
- "segments": one causal SDPA call per sequence (any device; the CPU default and the fallback).
The padded path (a 2D padding mask, a KV cache) is transformers' own SDPA, unchanged, so a model switched to
ATTENTION computes what "sdpa" computes for every input. tests/unit/test_packed.py checks losses and gradients
against padded batches; perf/bench.py (sft-pipe-pf vs sft-pipe, padded) measures the speed.

GRPO's batches stay padded (TRL 1.16 builds them: left-padded prompt, completion, right padding). For them the
attention function SHIFTED (`use_shifted`, rl stage key `maskless_attention`) moves each row's tokens to its start,
so that causal attention needs no mask (transformers' SDPA path then runs torch's flash kernel instead of the
memory-efficient kernel a padding mask forces), and moves the outputs back.
"""

from __future__ import annotations

import inspect
from functools import cache

import torch
import torch.nn.functional as F

ATTENTION = "srlm_packed"
SHIFTED = "srlm_shifted"
BACKENDS = ("varlen", "flex", "segments")
# None: "varlen" for bf16/fp16 on CUDA where torch has it, else "segments". Set by use(); read per call.
_backend: str | None = None
# The last (cu_seq_lens tensor, flex block mask): every layer of one forward gets the same tensor object; holding
# it keeps its id from being reused by another batch's tensor.
_block_mask_cache: list = [None, None]
# Whether varlen_attn's enable_gqa worked (else KV heads are repeated to the query heads' count).
_native_gqa = [True]


@cache
def _varlen():
    """torch's varlen_attn and the keyword arguments its signature takes for causal GQA, or None. The signature
    changed across torch releases (2.10: is_causal; later: window_size, enable_gqa), so it is read, not assumed."""
    try:
        from torch.nn.attention.varlen import varlen_attn
    except ImportError:
        return None
    params = inspect.signature(varlen_attn).parameters
    causal = {"window_size": (-1, 0)} if "window_size" in params else {"is_causal": True}
    return varlen_attn, causal, "enable_gqa" in params, "scale" in params


def has_varlen() -> bool:
    return _varlen() is not None


def _segments(query: torch.Tensor, kwargs: dict) -> tuple[torch.Tensor, int]:
    """(cu_seq_lens int32 on query's device, longest sequence) of the flattened batch: the collator's, or derived
    from position_ids as transformers does (a new sequence wherever the position does not grow by 1)."""
    cu = kwargs.get("cu_seq_lens_q")
    if cu is not None:
        longest = kwargs.get("max_length_q")
        return cu.to(query.device, torch.int32), int(longest if longest is not None else cu.diff().max())
    b, _, t, _ = query.shape
    pos = kwargs.get("position_ids")
    if pos is None:
        pos = torch.arange(t, device=query.device)[None]
    pos = pos.to(query.device).expand(b, t)
    start = torch.ones_like(pos, dtype=torch.bool)
    start[:, 1:] = pos.diff(dim=-1) != 1
    starts = start.flatten().nonzero().flatten()
    cu = torch.cat([starts, starts.new_tensor([b * t])]).to(torch.int32)
    return cu, int(cu.diff().max())


def _expand_kv(x: torch.Tensor, group: int) -> torch.Tensor:
    """[tokens, kv_heads, d] -> [tokens, kv_heads × group, d], query head h reading KV head h // group (repeat_kv)."""
    if group == 1:
        return x
    n, kv, d = x.shape
    return x[:, :, None].expand(n, kv, group, d).reshape(n, kv * group, d)


def _run_varlen(q, k, v, cu, longest, scale):
    fn, causal, gqa, has_scale = _varlen()
    kw = dict(causal)
    if has_scale:
        kw["scale"] = scale
    elif scale is not None and abs(scale - q.shape[-1] ** -0.5) > 1e-12:
        raise ValueError("this torch's varlen_attn takes no scale; the model's is not 1/sqrt(head_dim)")
    group = q.shape[1] // k.shape[1]
    if gqa and group > 1 and _native_gqa[0]:
        try:
            return fn(q, k, v, cu, cu, longest, longest, enable_gqa=True, **kw)
        except RuntimeError as e:  # e.g. torch's cuDNN varlen backend: "GQA is not supported"
            if "GQA" not in str(e):
                raise
            _native_gqa[0] = False
    return fn(q, _expand_kv(k, group), _expand_kv(v, group), cu, cu, longest, longest, **kw)


def _run_segments(q, k, v, cu, longest, scale):
    bounds = cu.tolist()
    group = q.shape[1] // k.shape[1]
    outs = [
        F.scaled_dot_product_attention(
            q[s:e].transpose(0, 1), k[s:e].transpose(0, 1), v[s:e].transpose(0, 1),
            is_causal=True, scale=scale, enable_gqa=group > 1,
        ).transpose(0, 1)
        for s, e in zip(bounds[:-1], bounds[1:])
    ]  # fmt: skip
    return torch.cat(outs)


@cache
def _flex():
    from torch.nn.attention.flex_attention import flex_attention

    # Eager flex attention materialises the scores (a correctness reference); compiled it is a fused kernel.
    return torch.compile(flex_attention, dynamic=True) if torch.cuda.is_available() else flex_attention


def _run_flex(q, k, v, cu, longest, scale):
    from torch.nn.attention.flex_attention import create_block_mask

    if _block_mask_cache[0] is not cu:
        n = q.shape[0]
        doc = torch.repeat_interleave(torch.arange(cu.numel() - 1, device=q.device), cu.diff(), output_size=n)

        def document_causal(b, h, qi, ki):
            return (doc[qi] == doc[ki]) & (qi >= ki)

        _block_mask_cache[:] = [cu, create_block_mask(document_causal, None, None, n, n, device=q.device)]
    out = _flex()(
        q.transpose(0, 1)[None], k.transpose(0, 1)[None], v.transpose(0, 1)[None],
        block_mask=_block_mask_cache[1], scale=scale, enable_gqa=q.shape[1] != k.shape[1],
    )  # fmt: skip
    return out[0].transpose(0, 1)


def default_backend(cuda: bool, dtype: torch.dtype) -> str:
    """The packed kernel used when none was chosen: varlen for bf16/fp16 on CUDA where torch has it."""
    return "varlen" if cuda and dtype in (torch.bfloat16, torch.float16) and has_varlen() else "segments"


def backend_for(query: torch.Tensor) -> str:
    return _backend if _backend is not None else default_backend(query.is_cuda, query.dtype)


def attention(
    module, query, key, value, attention_mask, scaling=None, dropout=0.0, sliding_window=None, **kwargs
):
    """transformers attention function. query [B, H, T, d], key/value [B, H_kv, T_kv, d]; returns [B, T, H, d].
    Packed (no padding mask, no cache: T == T_kv): causal attention within each sequence of the flattened batch.
    Anything else is transformers' SDPA with the mask it built (mask_function below)."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    b, heads, t, dim = query.shape
    if attention_mask is not None or t != key.shape[2] or t == 1:
        return sdpa_attention_forward(
            module, query, key, value, attention_mask, dropout=dropout, scaling=scaling, sliding_window=sliding_window,
            **kwargs,
        )  # fmt: skip
    if sliding_window is not None or dropout:
        raise ValueError(f"{ATTENTION}: sliding-window attention and attention dropout are not implemented")
    cu, longest = _segments(query, kwargs)
    q = query.transpose(1, 2).reshape(b * t, heads, dim)
    k = key.transpose(1, 2).reshape(b * t, key.shape[1], dim)
    v = value.transpose(1, 2).reshape(b * t, value.shape[1], dim)
    run = {"varlen": _run_varlen, "flex": _run_flex, "segments": _run_segments}[backend_for(query)]
    return run(q, k, v, cu, longest, scaling).reshape(b, t, heads, dim), None


def mask_function(*args, attention_mask=None, **kwargs):
    """Mask builder registered with AttentionMaskInterface for ATTENTION: transformers' SDPA mask where a padding
    mask exists (the padded path); none for packed batches, whose boundaries come from cu_seq_lens."""
    if attention_mask is None:
        return None
    from transformers.masking_utils import sdpa_mask

    return sdpa_mask(*args, attention_mask=attention_mask, **kwargs)


def register(backend: str | None = None) -> None:
    """Register ATTENTION with transformers (idempotent) and pick its packed kernel (None: by device, dtype)."""
    global _backend
    from transformers import AttentionInterface, AttentionMaskInterface

    if backend is not None and backend not in BACKENDS:
        raise ValueError(f"packed attention backend {backend!r}: expected one of {BACKENDS}")
    if backend == "varlen" and not has_varlen():
        raise ValueError("this torch has no torch.nn.attention.varlen.varlen_attn")
    _backend = backend
    AttentionInterface.register(ATTENTION, attention)
    AttentionMaskInterface.register(ATTENTION, mask_function)


def use(model, backend: str | None = None) -> None:
    """Switch `model` (before a PEFT wrapper is put on it) to ATTENTION. The name is not saved with the model's
    config (transformers leaves the attention implementation out of config.json)."""
    register(backend)
    model.set_attn_implementation(ATTENTION)


def shifted_attention(module, query, key, value, attention_mask, **kwargs):
    """transformers attention function (SHIFTED). With a 2D padding mask [B, T] (from `shifted_mask`), whose
    tokens are one contiguous run per row as in TRL's GRPO batches, each row is shifted left so that its run
    starts at position 0: the padding then lies after every token, causal attention needs no mask, and the
    outputs are shifted back. A token attends to the same keys as under the padded mask (its run, up to itself;
    rotary attention depends on relative positions only). Padding positions get values of no use, as on the
    padded path. Anything else is transformers' SDPA with the mask it built."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    if attention_mask is None or attention_mask.dim() != 2:
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    t = query.shape[2]
    first = attention_mask.int().argmax(-1)[:, None]  # each row's first token (argmax: the first maximum)
    steps = torch.arange(t, device=query.device)[None]
    forward, back = (steps + first).clamp(max=t - 1), (steps - first).clamp(min=0)  # [B, T]

    def shift(x: torch.Tensor, idx: torch.Tensor, dim: int) -> torch.Tensor:  # x[b, ..., idx[b, j], ...]
        view = [1] * x.dim()
        view[0], view[dim] = x.shape[0], t
        return x.gather(dim, idx.view(view).expand(x.shape))

    q, k, v = (shift(x, forward, 2) for x in (query, key, value))  # [B, H, T, d]
    out, _ = sdpa_attention_forward(module, q, k, v, None, **kwargs)  # [B, T, H, d], causal
    return shift(out, back, 1), None


def shifted_mask(*args, attention_mask=None, q_length=None, kv_length=None, q_offset=0, kv_offset=0, **kwargs):
    """Mask builder registered for SHIFTED: the 2D padding mask itself for a forward without a cache (queries are
    every key) and plain causal attention; transformers' SDPA mask otherwise (a KV cache, other mask patterns)."""
    from transformers.masking_utils import causal_mask_function, sdpa_mask

    whole = q_length == kv_length and q_offset == 0 and kv_offset == 0
    if (
        attention_mask is not None and attention_mask.dim() == 2 and whole and attention_mask.shape[1] == kv_length
        and kwargs.get("mask_function", causal_mask_function) is causal_mask_function
    ):  # fmt: skip
        return attention_mask.bool()
    return sdpa_mask(*args, attention_mask=attention_mask, q_length=q_length, kv_length=kv_length, q_offset=q_offset,
                     kv_offset=kv_offset, **kwargs)  # fmt: skip


def use_shifted(*models) -> None:
    """Switch models (a GRPO policy and its reference) to SHIFTED (registered here, idempotent)."""
    from transformers import AttentionInterface, AttentionMaskInterface

    AttentionInterface.register(SHIFTED, shifted_attention)
    AttentionMaskInterface.register(SHIFTED, shifted_mask)
    for model in models:
        model.set_attn_implementation(SHIFTED)
