#!/usr/bin/env bash
# Prepare, on this machine, what perf/bench.py and perf/gpu_decode_check.py need on a lent GPU machine (no
# network there), in .carry/bench/ (git-ignored, ~12 MiB): the wheels missing from the GPU image, and the
# Qwen2.5-0.5B config + tokenizer and GSM8K train of ../shared/data. Then, on the GPU machine:
#   run(carry=[".carry/bench"], "bash perf/gpu_round2.sh")
set -euo pipefail
cd "$(dirname "$0")/.."
C=.carry/bench
rm -rf "$C" && mkdir -p "$C/whl" "$C/gpu/qwen2.5-0.5b" "$C/gpu/gsm8k"
# Python 3.12 wheels (the GPU image's Python); the image has torch, transformers, accelerate, peft, pyarrow,
# pandas, xxhash, fsspec, sympy (/work/.library/device/KINDS.md).
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux2014_x86_64 -d "$C/whl" \
  trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19 liger-kernel==0.8.5 math-verify==0.5.2 \
  latex2sympy2-extended==1.0.6 antlr4-python3-runtime==4.13.2
cp ../shared/data/qwen2.5-0.5b-instruct-tokenizer/* "$C/gpu/qwen2.5-0.5b/"
cp ../shared/data/qwen2.5-0.5b-config/config.json "$C/gpu/qwen2.5-0.5b/"  # the base model's architecture
cp ../shared/data/gsm8k/train.jsonl "$C/gpu/gsm8k/"
du -sh "$C"
