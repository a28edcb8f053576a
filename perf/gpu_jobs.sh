# The jobs of perf/gpu_run.sh, one function each (sourced there). They run from the repository root with the carried
# packages installed: $S (/tmp/BUNDLE: site/, data/, shape/, card.txt), $OUT (comes back), $PY, $T0 (the call's
# start), status(), knob NAME DEFAULT (the bundle's knob <B>_NAME).
# shellcheck shell=bash disable=SC2154

# ---------------------------------------------------------------- grids through the rules
# config/qwen25-coder.yaml and config/smollm2.yaml on one GPU. Snakemake is started once in the call that installs
# (or again with <B>_RESTART=1 once it has ended, finished jobs kept), on a copy of the workflow in $S/work, in its
# own process session (setsid): it runs on between calls, so no job is cut at a call's end. Every call then waits
# for it until <B>_CALL_S (560) s after the call's start, a progress line a minute, and brings back what is done;
# later calls carry nothing and wait again, until status.txt says `snakemake rc=`. Knobs: <B>_GPU_JOBS (2:
# snakemake --resources gpu=; one job's start-up, compilation and grading overlap the other's GPU work),
# <B>_TARGETS (empty: rule all), <B>_SNAKEMAKE_ARGS (more arguments, e.g. -n).
# What comes back: snakemake.log, results.tgz (tables, cost, figures, evals, training summaries, metrics and health,
# provenance, logs, timings) and answers.tar.xz (every answer's text and grading; in parts over 15 MiB).
job_qwen25_coder() { grid config/qwen25-coder.yaml results/qwen25-coder; }
job_qwen25_coder_vllm() { grid "config/qwen25-coder.yaml config/qwen25-coder-vllm.yaml" results/qwen25-coder-vllm; }
job_smollm2() { grid config/smollm2.yaml results/smollm2; }

# A command detached from the device calls: started once in its own process session (start_new_session: setsid),
# every descriptor but /dev/null closed (close_fds), so that it outlives the call and holds nothing of the call's
# output open; $S/NAME.{pid,log,rc,start}. Started again only with <B>_RESTART=1, once it has ended.
running() { [ -f "$S/$1.pid" ] && kill -0 "$(cat "$S/$1.pid")" 2>/dev/null; }
start_detached() {  # NAME DIR COMMAND
  local name=$1 dir=$2 cmd=$3
  rm -f "$S/$name.rc"
  date +%s > "$S/$name.start"
  "$PY" - "$dir" "{ $cmd; } > '$S/$name.log' 2>&1; echo \$? > '$S/$name.rc'" > "$S/$name.pid" <<'PY'
import subprocess, sys
null = subprocess.DEVNULL
print(subprocess.Popen(["bash", "-c", sys.argv[2]], cwd=sys.argv[1], start_new_session=True, close_fds=True,
                       stdin=null, stdout=null, stderr=null).pid)
PY
  echo "$name started (pid $(cat "$S/$name.pid"))"
}
startable() { ! running "$1" && { [ ! -f "$S/$1.pid" ] || [ "$(knob RESTART 0)" = 1 ]; }; }
# Wait for it until <B>_CALL_S (560) s after the call's start, a progress line a minute (PROGRESS: a command that
# prints it); status.txt then says `NAME rc=… wall_s=…` or that it is still running.
wait_detached() {  # NAME PROGRESS
  local name=$1 progress=$2 deadline=$(( T0 + $(knob CALL_S 560) )) last=0 wall
  sleep 2
  while running "$name" && [ "$(date +%s)" -lt "$deadline" ]; do
    if [ $(( $(date +%s) - last )) -ge 60 ]; then
      last=$(date +%s)
      echo "$(( last - $(cat "$S/$name.start") )) s: $($progress) $(nvidia-smi \
        --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null)"
    fi
    sleep 5
  done
  wall=$(( $(date +%s) - $(cat "$S/$name.start") ))
  if [ -f "$S/$name.rc" ]; then
    status "$name rc=$(cat "$S/$name.rc") wall_s=$wall"
  else
    status "$name running, wall_s=$wall: $($progress); call again (no carry) to wait for it"
  fi
}

# ../shared/data does not travel: an overlay that points GSM8K and the five benchmarks at the carried copy
# (absolute paths; source local as the grids' own overlays say, and as config.yaml's hub sources need).
device_yaml() {  # FILE
  { echo "data: {gsm8k: {source: local, local_dir: $S/data/gsm8k}}"; echo "benchmarks:"
    for b in olympiadbench math500 minerva amc23 gsm8k; do echo "  $b: {source: local, local_path: $S/data/$b/test.jsonl}"; done
  } > "$1"
}
grid() {  # CONFIG (one overlay or several, space-separated) RESULTS
  local config=$1 R=$2
  export PYTHONPATH=$S/site:$S/work/workflow
  if startable snakemake; then
    mkdir -p "$S/work"
    for f in Snakefile config.yaml config workflow envs profiles; do rm -rf "${S:?}/work/$f" && cp -r "$f" "$S/work/"; done
    device_yaml "$S/work/device.yaml"
    # --scheduler greedy: pulp is not carried.
    start_detached snakemake "$S/work" "'$PY' -m snakemake $(knob TARGETS '') --configfile $config device.yaml \
--cores 16 --resources gpu=$(knob GPU_JOBS 2) --scheduler greedy --keep-going --rerun-incomplete $(knob SNAKEMAKE_ARGS '')"
  fi
  # shellcheck disable=SC2329  # called by wait_detached
  steps() { grep -Eo '[0-9]+ of [0-9]+ steps \([0-9.]+%\) done' "$S/snakemake.log" | tail -1; }
  wait_detached snakemake steps
  grep -E "^(Error|WorkflowError)|error in rule|Exiting because" "$S/snakemake.log" | tail -20
  for t in table2 table3 cost/all; do [ -f "$S/work/$R/$t.md" ] && cat "$S/work/$R/$t.md"; done

  # Bring back what is done (each file at most 16 MiB).
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

# ---------------------------------------------------------------- perf/bench.py on the Qwen2.5-0.5B shape
bench_args() { BARGS=(--model-config "$S/shape/qwen2.5-0.5b" --data "$S/data/gsm8k/train.jsonl" --work /tmp/bw); }

# srlm.decode's GPU checks, then the cases at 256 new tokens (BENCH_CASES, within BENCH_BUDGET_S), evaluation at
# 2,048 new tokens (BENCH_LONG=0: not), profiles (BENCH_PROFILES; set and empty: none; within BENCH_PROFILE_S).
# BENCH_CHECK=0 skips the checks; BENCH_GRPO_STEPS: GRPO steps per case (3). $OUT: decode_check.json, b256/,
# b2048/, profiles/.
job_bench() {
  bench_args
  export PYTHONPATH=$S/site:$PWD/workflow
  if [ "$(knob CHECK 1)" = 1 ]; then
    "$PY" perf/gpu_decode_check.py "${BARGS[@]:0:4}" > "$OUT/decode_check.json" 2> "$OUT/decode_check.err"
    tail -c 3000 "$OUT/decode_check.json"
  fi
  "$PY" perf/bench.py "${BARGS[@]}" --out "$OUT/b256" --eval-prompts 2048 --grpo-steps "$(knob GRPO_STEPS 3)" \
    --budget-s "$(knob BUDGET_S 300)" --cases "$(knob CASES eval-trl,eval-pipe,grpo-trl,grpo-pipe,sft-trl,sft-pipe,sft-pipe-pf)"
  cat "$OUT/b256/table.md"
  if [ "$(knob LONG 1)" = 1 ]; then
    "$PY" perf/bench.py "${BARGS[@]}" --out "$OUT/b2048" --gen-tokens 2048 --eval-prompts 1024 --cases eval-pipe
    cat "$OUT/b2048/table.md"
  fi
  local profiles=${BENCH_PROFILES-sft-profile,eval-profile}
  if [ -n "$profiles" ]; then
    "$PY" perf/bench.py "${BARGS[@]}" --out "$OUT/profiles" --eval-prompts 1024 --grpo-steps "$(knob GRPO_STEPS 3)" \
      --budget-s "$(knob PROFILE_S 150)" --cases "$profiles"
    head -c 4000 "$OUT/profiles/profiles.txt"
  fi
}

# The bench's cases with this tree's code against a baseline tree, interleaved new, base, new, so that drift shows.
# The baseline travels as .baseline (git-ignored), written here by `perf/carry.sh baseline REV` and carried with
# the call that runs ab: run(carry=[".carry/bench/01", ".baseline"], command="bash perf/gpu_run.sh ab"). BENCH_AB_CASES (grpo-pipe), BENCH_GRPO_STEPS (5 here), BENCH_CHECK=1 runs perf/gpu_decode_check.py
# first, BENCH_NEW_CASES: cases of this tree alone afterwards (e.g. grpo-phases). $OUT: ab.md, cases.log.
job_ab() {
  [ -f .baseline/REV ] || { status "no .baseline: perf/carry.sh baseline REV, and carry it with this call"; return 1; }
  bench_args
  BARGS+=(--grpo-steps "$(knob GRPO_STEPS 5)" --eval-prompts 2048)
  echo "baseline $(cat .baseline/REV)" | tee "$OUT/ab.md"
  if [ "$(knob CHECK 0)" = 1 ]; then
    "$PY" perf/gpu_decode_check.py "${BARGS[@]:0:4}" > "$OUT/decode_check.json" 2> "$OUT/decode_check.err"
    tail -c 1500 "$OUT/decode_check.json"
  fi
  local side dir
  for side in new base new2; do
    dir=$PWD; [ $side = base ] && dir=$PWD/.baseline
    (cd "$dir" && "$PY" perf/bench.py "${BARGS[@]}" --out "/tmp/ab/$side" --cases "$(knob AB_CASES grpo-pipe)") \
      > "/tmp/ab-$side.out" 2>&1
    { echo "## $side"; cat "/tmp/ab/$side/table.md"; cat "/tmp/ab/$side/profiles.txt" 2>/dev/null; } | tee -a "$OUT/ab.md"
    cat "/tmp/ab/$side/cases.log" >> "$OUT/cases.log"
  done
  if [ -n "$(knob NEW_CASES '')" ]; then
    "$PY" perf/bench.py "${BARGS[@]}" --out /tmp/ab/more --cases "$(knob NEW_CASES '')" > /tmp/ab-more.out 2>&1
    { echo "## this tree only"; cat /tmp/ab/more/table.md /tmp/ab/more/profiles.txt 2>/dev/null; } | tee -a "$OUT/ab.md"
    cat /tmp/ab/more/cases.log >> "$OUT/cases.log"
  fi
}

# ---------------------------------------------------------------- vLLM 0.26 on the image's torch 2.11 (issue 34)
# The recipe's proof: vLLM and FlashInfer import from the carried packages, and vllm.LLM generates on the
# Qwen2.5-0.5B shape (random weights, bf16, GSM8K prompts); the first engine start compiles FlashInfer's kernels
# (~135 s; ~40 s once ~/.cache holds them on the same machine). $OUT: vllm_check.json.
job_vllm_check() {
  export PYTHONPATH=$S/site:$PWD/workflow
  "$PY" perf/bench.py --model-config "$S/shape/qwen2.5-0.5b" --data "$S/data/gsm8k/train.jsonl" --work /tmp/bw \
    --out "$OUT/check" --eval-prompts 64 --gen-tokens 64 --cases eval-vllm --case-timeout 420
  cat "$OUT/check/table.md"
}

# Issue 34's table on one card (Qwen2.5-0.5B shape, random weights, real GSM8K prompts), each for srlm.decode
# ("pipe"), vLLM and TRL's default: evaluation at 256 and 2,048 new tokens (2,048 / 1,024 prompts); GRPO rollout
# generation, 128 rollouts at 256 and 2,048; a whole GRPO step (pipeline vs TRL + vLLM colocate vs TRL's default).
# More than one call's 10 minutes: it runs detached (like the grids) on a copy of perf/ and workflow/ in
# $S/work, 256 tokens first, then 2,048 (the pipeline's and vLLM's cases first, TRL's last); each call waits
# until VLLM_CALL_S (560) and brings back what is done: b256/ and b2048/ (table.md, results.json, cases.log) and
# bench.log. VLLM_BUDGET_256 (600) and VLLM_BUDGET_2048 (540): seconds after which a run skips its remaining
# cases; VLLM_CASES_256 / VLLM_CASES_2048 override the lists; VLLM_BENCH_ARGS are more bench.py arguments (last);
# VLLM_RESTART=1 starts it again once it has ended.
job_vllm_bench() {
  bench_args
  if startable bench; then
    mkdir -p "$S/work" && rm -rf "$S/work/perf" "$S/work/workflow" "$S/bench" && mkdir -p "$S/bench"
    cp -r perf workflow config.yaml "$S/work/"
    local b="'$PY' perf/bench.py ${BARGS[*]} --case-timeout 420" x
    x=$(knob BENCH_ARGS '')  # more bench.py arguments, last: e.g. --device cpu --tiny --gen-tokens 16 (a CPU dry run)
    start_detached bench "$S/work" "export PYTHONPATH='$S/site'; \
$b --out '$S/bench/b256' --eval-prompts 2048 --grpo-steps 3 --budget-s $(knob BUDGET_256 600) \
--cases $(knob CASES_256 eval-trl,eval-pipe,eval-vllm,rollout-trl,rollout-pipe,rollout-vllm,grpo-trl,grpo-pipe,grpo-vllm) $x; \
$b --out '$S/bench/b2048' --gen-tokens 2048 --eval-prompts 1024 --grpo-steps 2 --budget-s $(knob BUDGET_2048 540) \
--cases $(knob CASES_2048 eval-pipe,eval-vllm,rollout-pipe,rollout-vllm,grpo-pipe,grpo-vllm,eval-trl,rollout-trl,grpo-trl) $x"
  fi
  # shellcheck disable=SC2329  # called by wait_detached
  cases() { grep -Eo '^[a-z]+-[a-z0-9-]+ [0-9]+s' "$S/bench.log" | tail -1; }
  wait_detached bench cases
  local d
  for d in b256 b2048; do
    [ -d "$S/bench/$d" ] || continue
    mkdir -p "$OUT/$d" && cp "$S/bench/$d"/{table.md,results.json,cases.log} "$OUT/$d/" 2>/dev/null
    [ -f "$S/bench/$d/table.md" ] && cat "$S/bench/$d/table.md"
  done
  cp "$S/bench.log" "$OUT/"
}

# ---------------------------------------------------------------- lighteval 0.13 on vLLM 0.26 (issue 34)
# docs/vllm.md's lighteval path on the GPU: `vllm serve` of a model folder (QCV_LE_MODEL; default the qwen25-coder
# grid's converted base model, there once the grid's fetch_model has run) with docs/vllm.md's flags, a served name of
# its own (caches are keyed by it) and --max-model-len 32768; then `lighteval endpoint litellm` with a copy of
# config/lighteval/vllm-serve.yaml (base_url, model_name, cache_dir adjusted) on srlm_math500|0,srlm_gsm8k|0,
# --max-samples QCV_LE_MAX_SAMPLES (100), --save-details, the carried data by an overlay as grid() gives it; then
# perf/lighteval_agree.py: lighteval's extractive_match per sample against srlm.grade's paper grader. Within
# QCV_LE_TIMEOUT (420) s for lighteval; QCV_LE_PORT (8011). $OUT/lighteval: agree.md (the table, lighteval's scores
# and wall time), agree.json, server.log, lighteval.log, model.yaml, out/ (lighteval's results and details).
job_lighteval_check() {
  export PYTHONPATH=$S/site LITELLM_LOCAL_MODEL_COST_MAP=True HF_DATASETS_OFFLINE=1
  local W=$S/lighteval R=$OUT/lighteval port served model pid rc t wall
  port=$(knob LE_PORT 8011)
  model=$(knob LE_MODEL "$S/work/results/qwen25-coder/models/qwen2.5-coder-0.5b-instruct/base/model")
  [ -f "$model/config.json" ] || { status "no model at $model (run the qwen25-coder grid's fetch_model first)"; return 1; }
  served=lighteval-check-$(date +%s)
  rm -rf "$W" && mkdir -p "$W" "$R"
  cp -r workflow config.yaml config "$W/"  # run from a copy's root: the task module checks relative paths there
  device_yaml "$W/device.yaml"
  "$PY" - "$W" "$served" "$port" <<'PY'
import sys, yaml
w, served, port = sys.argv[1:]
cfg = yaml.safe_load(open("config/lighteval/vllm-serve.yaml"))
cfg["model_parameters"].update(model_name=f"openai/{served}", base_url=f"http://127.0.0.1:{port}/v1",
                               cache_dir=f"{w}/cache")
yaml.safe_dump(cfg, open(f"{w}/model.yaml", "w"))
PY
  cp "$W/model.yaml" "$R/"
  local serve=("$PY" -m vllm.entrypoints.openai.api_server --model "$model")  # the tree unpack installs no script
  command -v vllm >/dev/null && serve=(vllm serve "$model")
  "${serve[@]}" --served-model-name "$served" --dtype bfloat16 --max-model-len 32768 --seed 0 \
    --generation-config vllm --host 127.0.0.1 --port "$port" --enable-log-requests > "$R/server.log" 2>&1 &
  pid=$!
  t=$(date +%s)
  until "$PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/v1/models', timeout=5)" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null || [ $(( $(date +%s) - t )) -gt 300 ]; then
      tail -30 "$R/server.log"; kill "$pid" 2>/dev/null; status "vllm serve did not come up"; return 1
    fi
    sleep 3
  done
  echo "vllm serve up in $(( $(date +%s) - t )) s ($served)"
  t=$(date +%s)
  (cd "$W" && SRLM_CONFIGFILES=$W/device.yaml HF_HOME=$W/hf timeout "$(knob LE_TIMEOUT 420)" "$PY" -m lighteval \
    endpoint litellm "$W/model.yaml" "srlm_math500|0,srlm_gsm8k|0" --custom-tasks workflow/srlm/lighteval_tasks.py \
    --max-samples "$(knob LE_MAX_SAMPLES 100)" --output-dir "$W/out" --save-details) > "$R/lighteval.log" 2>&1
  rc=$? wall=$(( $(date +%s) - t ))
  kill "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
  tail -25 "$R/lighteval.log"
  echo "API call failures: $(grep -c 'API call failed' "$R/lighteval.log")"
  cp -r "$W/out" "$R/" 2>/dev/null
  [ "$rc" = 0 ] || { status "lighteval rc=$rc wall_s=$wall"; return 1; }
  "$PY" perf/lighteval_agree.py "$W/out/details" --bench "math500=$S/data/math500/test.jsonl" \
    --bench "gsm8k=$S/data/gsm8k/test.jsonl" --results "$W/out/results" --wall-s "$wall" --json "$R/agree.json" \
    > "$R/agree.md" || { status "lighteval_agree failed"; return 1; }
  cat "$R/agree.md"
  status "lighteval rc=0 wall_s=$wall; agreement: lighteval/agree.md"
}
