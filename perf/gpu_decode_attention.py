"""Decode attention of srlm.decode on a GPU (issue 19): microseconds per call of the ways to attend one query token
per row against the static cache, each through torch.compile(dynamic=True) and timed as a replayed CUDA graph, and
each one's largest error against float64 attention. Qwen2.5-0.5B's heads: 14 query heads over 2 KV heads, d 64.
Prints one JSON line per (variant, window).

    python perf/gpu_decode_attention.py --rows 128
"""

from __future__ import annotations

import argparse
import json

import torch
import torch.nn.functional as F


def sdpa(q, k, v, mask, scale):  # srlm.decode until now: SDPA with a boolean mask (memory-efficient kernel)
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)


def matmul_bf16(q, k, v, mask, scale):  # transformers' eager attention: bf16 scores, float32 softmax
    s = torch.matmul(q, k.transpose(-1, -2)) * scale
    s = s.float().masked_fill(~mask, float("-inf")).softmax(-1).to(v.dtype)
    return torch.matmul(s, v)


def reduction_fp32(q, k, v, mask, scale):  # float32 throughout, as reductions Inductor can fuse
    s = (q.float()[:, :, :, None, :] * k.float()[:, :, None, :, :]).sum(-1) * scale
    p = s.masked_fill(~mask, float("-inf")).softmax(-1)
    return (p[..., None] * v.float()[:, :, None, :, :]).sum(-2).to(v.dtype)


def bmm_fp32_out(q, k, v, mask, scale):  # bf16 operands, float32 results (cuBLAS out_dtype)
    b, h, g, d = q.shape
    s = torch.bmm(q.reshape(b * h, g, d), k.reshape(b * h, -1, d).transpose(1, 2), out_dtype=torch.float32)
    p = (s.reshape(b, h, g, -1) * scale).masked_fill(~mask, float("-inf")).softmax(-1)
    return torch.bmm(p.to(v.dtype).reshape(b * h, g, -1), v.reshape(b * h, -1, d)).reshape(b, h, g, d)


def flex(q, k, v, mask, scale):  # flex attention's decoding kernel (GQA heads grouped by the kernel), mask as score_mod
    from torch.nn.attention.flex_attention import flex_attention

    b, h, g, d = q.shape
    keep = mask[:, 0, 0]

    def masked(score, bi, hi, qi, ki):
        return torch.where(keep[bi, ki], score, float("-inf"))

    out = flex_attention(q.reshape(b, h * g, 1, d), k, v, score_mod=masked, scale=scale, enable_gqa=True)
    return out.reshape(b, h, g, d)


VARIANTS = (sdpa, matmul_bf16, reduction_fp32, bmm_fp32_out, flex)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=128)
    ap.add_argument("--windows", default="256,512,1024,2304")
    a = ap.parse_args()
    b, kv, group, d = a.rows, 2, 7, 64
    scale = d**-0.5
    for w in map(int, a.windows.split(",")):
        torch.manual_seed(0)
        q = torch.randn(b, kv, group, d, device="cuda", dtype=torch.bfloat16)
        k = torch.randn(b, kv, w, d, device="cuda", dtype=torch.bfloat16) * 2
        v = torch.randn(b, kv, w, d, device="cuda", dtype=torch.bfloat16)
        mask = torch.rand(b, 1, 1, w, device="cuda") < 0.9
        mask[..., 0] = True
        ref = sdpa(q.double(), k.double(), v.double(), mask, scale)
        for fn in VARIANTS:
            row = dict(variant=fn.__name__, rows=b, window=w)
            try:
                f = torch.compile(fn, dynamic=True)
                for _ in range(3):
                    out = f(q, k, v, mask, scale)
                torch.cuda.synchronize()
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    for _ in range(20):
                        out = f(q, k, v, mask, scale)
                graph.replay()
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(10):
                    graph.replay()
                end.record()
                torch.cuda.synchronize()
                row.update(us=round(start.elapsed_time(end) * 1000 / 200, 2),
                           max_err=float((out.double() - ref).abs().max()))  # fmt: skip
            except Exception as e:  # noqa: BLE001 - report and go on with the next variant
                row["error"] = f"{type(e).__name__}: {str(e)[:300]}"
            print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
