"""Decoder layers compiled one by one, and cuDNN's SDPA backend off: the trainers' switches on library internals
(called through srlm.speed, which checks the library versions first)."""

from __future__ import annotations


def attention_backends() -> None:
    """Switch off cuDNN's scaled-dot-product-attention backend, which torch 2.11 prefers on Hopper GPUs.

    It builds a new cuDNN graph for every new padded sequence length (2.9 ms of CPU per call in the profile of
    docs/performance.md), and training batches come in many lengths: on an H100, SFT of a 0.5B model went from
    17.1k to 58.3k tokens/s with it off, every loss the same to 1e-4 (bf16). torch then uses its flash or
    memory-efficient kernels. A no-op without CUDA."""
    import torch

    if torch.cuda.is_available():
        torch.backends.cuda.enable_cudnn_sdp(False)


def compile_layers(model) -> int:
    """Compile each decoder layer of `model` (and of any model inside it: PEFT wrappers) with torch.compile,
    dynamic shapes from the start; returns how many (0 under DeepSpeed ZeRO-3, whose parameter-gathering hooks
    on every layer a compiled region cannot hold; call it once the trainer's config exists). Regional
    compilation: the layers share their code, so one compilation serves all of them, and the launch-bound step's
    elementwise kernels (RMSNorm's float32 steps, rotary, SiLU, residual adds) become a few fused kernels per
    layer. The same maths: losses within bf16 noise on an H200, within 1e-4 relative in float32 on a CPU
    (tests/unit/test_speed.py, test_train.py). Compiling happens at the first forward (~20 s for Qwen2.5-0.5B on
    an H200) and once more per grad mode."""
    from transformers.integrations import is_deepspeed_zero3_enabled
    from transformers.modeling_layers import GradientCheckpointingLayer

    if is_deepspeed_zero3_enabled():
        return 0
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    for layer in layers:
        layer.compile(dynamic=True)
    return len(layers)
