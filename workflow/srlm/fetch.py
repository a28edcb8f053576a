"""Put a base model's weights and tokenizer in the workflow's model folder (a local rule, before any GPU job).

source hub: huggingface_hub.snapshot_download (compute nodes may be offline; training then runs with
HF_HUB_OFFLINE=1 against this folder); local: copy of a folder; tiny: built here (srlm.tiny); random: the
architecture of a folder's config.json with random weights and that folder's tokenizer (same compute as the real
model, for throughput measurements where weights cannot be downloaded).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

# What a causal LM needs; skips other formats (pytorch_model.bin, onnx, gguf) that some repos also ship.
ALLOW = ["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja", "*.tiktoken", "LICENSE*"]


def fetch(params: dict, out: Path) -> None:
    source = params["source"]
    if source == "hub":
        from huggingface_hub import snapshot_download

        snapshot_download(params["hub_id"], local_dir=out, allow_patterns=ALLOW)
    elif source == "local":
        shutil.copytree(params["local_path"], out)
    elif source == "tiny":
        from srlm.tiny import build_tiny, default_corpus

        spec = params["tiny"]
        build_tiny(out, spec, default_corpus(params["system_prompt"]), spec["seed_offset"], spec["instruct"])
    elif source == "random":
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        config = AutoConfig.from_pretrained(params["local_path"])
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(config, dtype=getattr(config, "dtype", None) or torch.bfloat16)
        model.save_pretrained(out)
        AutoTokenizer.from_pretrained(params["local_path"]).save_pretrained(out)
    else:
        raise ValueError(f"unknown model source {source!r}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", required=True, help="JSON: the model's config entry (source, hub_id, ...)")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    fetch(json.loads(args.params), args.out)


if __name__ == "__main__":
    main()
