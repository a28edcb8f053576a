"""The speed layer: everything that reaches into torch's and transformers' internals, behind one seam.

Trainers and generation call only the functions below; the modules of this package hold the code:
- `decode`: the static-cache sampler (CUDA graphs, grouped decode attention, compiled step) behind the
  "srlm.decode" generation engine and GRPO's rollouts;
- `packed`: padding-free attention for SFT/KD and the shifted (maskless) attention of GRPO's padded batches;
- `layers`: regional compilation of decoder layers, cuDNN's SDPA backend off.
They rely on private names and behaviours (`config._attn_implementation`, `_forward_pre_hooks`, `repeat_kv`,
`sdpa_attention_forward`, `masking_utils`, `GradientCheckpointingLayer`, the model class's `forward`), which a
library release may change without notice. So the layer names the versions it was proven on (PROVEN) and checks
the installed ones once per process and device (`active`): on others it warns and every function here takes the
plain path, the libraries' own (transformers' `model.generate` and SDPA with its masks, eager layers, torch's
default attention kernels), which computes the same numbers more slowly.

Interface: `active(device)`, `device_of(model)`; training: `attention_backends()`, `compile_layers(model)`,
`use_packed(model, backend)`, `use_shifted(*models)`; generation: `decode_unsupported(model, ...)`,
`generate(model, prompts, ...)`, `distinct(keys)`.
"""

from __future__ import annotations

import warnings
from functools import cache

# The versions (major.minor) the layer was proven on, per device type.
# cuda: every GPU measurement and check of docs/performance.md, docs/gpu-proof.md and docs/real-weights.md ran on
#   torch 2.11.0+cu130 with transformers 5.17.0 (H100 / H200: tokens equal to model.generate's, losses within bf16
#   noise, the speed-ups measured there).
# cpu: the exact-equality tests that CI and the demo run (tests/unit/test_decode.py, test_packed.py,
#   test_speed.py, test_train.py) on envs/requirements-cpu.txt: torch 2.13.0, transformers 5.17.0.
# A new version is proven by running those on it (on a GPU: perf/bench.py and perf/gpu_decode_check.py in one call
# against the previous commit) and adding it here.
PROVEN: dict[str, dict[str, tuple[str, ...]]] = {
    "cuda": {"torch": ("2.11",), "transformers": ("5.17",)},
    "cpu": {"torch": ("2.13",), "transformers": ("5.17",)},
}


def _minor(version: str) -> str:
    """'2.11.0+cu130' -> '2.11'."""
    return ".".join(version.split("+")[0].split(".")[:2])


def check(versions: dict[str, str], device: str, proven: dict = PROVEN) -> str:
    """"fast" if every library of `proven[device]` is installed at a proven version (`versions`: name -> version
    string), else "plain", with a warning that names what differs. A pure function of its arguments."""
    want = proven.get(device)
    if want is None:
        off = [f"device {device!r} (proven: {sorted(proven)})"]
    else:
        off = [
            f"{lib} {versions.get(lib)} (proven: {', '.join(ok)})"
            for lib, ok in want.items()
            if _minor(versions.get(lib) or "") not in ok
        ]
    if off:
        warnings.warn(
            f"srlm.speed: not proven on {'; '.join(off)}: the plain path of the libraries runs instead (same "
            "numbers, slower). Prove the version and add it to srlm.speed.PROVEN (docs/architecture.md).",
            stacklevel=2,
        )
        return "plain"
    return "fast"


def installed() -> dict[str, str]:
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__}


@cache
def active(device: str) -> bool:
    """Whether the speed layer runs on this device type ("cuda", "cpu") with the installed libraries (checked and,
    where unproven, warned about once per process and device)."""
    return check(installed(), device) == "fast"


def compute_device(placed: str, cuda_available: bool) -> str:
    """The device type a model computes on: where its weights are (`placed`), but "cuda" for weights still on the
    CPU in a process with a GPU. The jobs switch the layer on before the Trainer moves the model to the GPU (SFT's
    packed attention must be set before SFTTrainer reads the attention implementation; GRPO picks its rollout
    engine before it builds the trainer); judged by the placement, a GPU job took the CPU's verdict and the plain
    path (docs/real-weights.md, 2026-12-07: SFT 10x slower, rollouts by model.generate)."""
    return "cuda" if placed == "cpu" and cuda_available else placed


def device_of(model) -> str:
    """compute_device of `model` in this process."""
    import torch

    return compute_device(next(model.parameters()).device.type, torch.cuda.is_available())


# Training.


def attention_backends() -> None:
    """cuDNN's SDPA backend off on a GPU (layers.attention_backends); plain: torch's own choice."""
    import torch

    if torch.cuda.is_available() and active("cuda"):
        from srlm.speed import layers

        layers.attention_backends()


def compile_layers(model) -> int:
    """Compile each decoder layer of `model` (layers.compile_layers); how many. Plain: none (eager)."""
    if not active(device_of(model)):
        return 0
    from srlm.speed import layers

    return layers.compile_layers(model)


def use_packed(model, backend: str | None = None) -> bool:
    """Padding-free batches attend through packed.ATTENTION (`backend`: its kernel, None = by device); whether it
    was switched on. Plain: transformers' SDPA, which builds the block-diagonal mask of the flattened batch."""
    if not active(device_of(model)):
        return False
    from srlm.speed import packed

    packed.use(model, backend)
    return True


def use_shifted(*models) -> bool:
    """GRPO's policy and reference attend through packed.SHIFTED (no padding mask); whether they do. Plain:
    SDPA with the padding mask."""
    if not models or not active(device_of(models[0])):
        return False
    from srlm.speed import packed

    packed.use_shifted(*models)
    return True


# Generation.


def decode_unsupported(model, **settings) -> str | None:
    """None if `generate` can sample from this model with these settings (repetition_penalty, min_p), else why not
    (the caller takes transformers' `model.generate`)."""
    if not active(device_of(model)):
        return "srlm.speed is not proven on these library versions (warned above)"
    from srlm.speed import decode as sampler

    return sampler.supported(model, **settings)


def generate(model, prompts, max_new_tokens, **kwargs) -> list[list[int]]:
    """decode.generate: one completion (token ids up to its first EOS) per prompt."""
    from srlm.speed import decode as sampler

    return sampler.generate(model, prompts, max_new_tokens, **kwargs)


def distinct(keys) -> tuple[list[int], list[int]]:
    """decode.distinct: (lead, copy_of) of rows that share a key (GRPO's repeated prompts share one prefill)."""
    from srlm.speed import decode as sampler

    return sampler.distinct(keys)
