#!/usr/bin/env bash
# Issue 19 (performance round two) on one lent GPU, one call: srlm.decode's checks and sampling times, then
# perf/bench.py's cases at 256 new tokens (SFT padded vs padding-free and its attention kernels, GRPO, evaluation),
# evaluation at 2,048 new tokens, and profiles. Prepare with perf/bench_carry.sh, then
#   run(carry=[".carry/bench"], "bash perf/gpu_round2.sh")       ($OUT: decode_check.json, b256/, b2048/)
# ROUND2_CHECK=0 skips perf/gpu_decode_check.py; ROUND2_CASES overrides the 256-token cases (within
# ROUND2_BUDGET_S seconds); ROUND2_LONG=0 skips the 2,048-token run; ROUND2_PROFILES (torch.profiler cases, within
# ROUND2_PROFILE_S seconds; set and empty: none) runs last; ROUND2_GRPO_STEPS: GRPO steps per case (3).
set -uo pipefail
OUT=${OUT:-/tmp/round2}
mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .carry/bench/whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/workflow TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
G=.carry/bench/gpu
ARGS=(--model-config $G/qwen2.5-0.5b --data $G/gsm8k/train.jsonl --work /tmp/bw)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/card.txt"
python3 -c "import torch, transformers, trl; print('torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__)" | tee -a "$OUT/card.txt"
if [ "${ROUND2_CHECK:-1}" = 1 ]; then
  python3 perf/gpu_decode_check.py "${ARGS[@]:0:4}" > "$OUT/decode_check.json" 2> "$OUT/decode_check.err"
  tail -c 3000 "$OUT/decode_check.json"
fi
CASES=${ROUND2_CASES:-eval-trl,eval-pipe,grpo-trl,grpo-pipe,sft-trl,sft-pipe,sft-pipe-pf}
python3 perf/bench.py "${ARGS[@]}" --out "$OUT/b256" --eval-prompts 2048 --grpo-steps "${ROUND2_GRPO_STEPS:-3}" --budget-s "${ROUND2_BUDGET_S:-300}" --cases "$CASES"
cat "$OUT/b256/table.md"
if [ "${ROUND2_LONG:-1}" = 1 ]; then
  python3 perf/bench.py "${ARGS[@]}" --out "$OUT/b2048" --gen-tokens 2048 --eval-prompts 1024 --cases eval-pipe
  cat "$OUT/b2048/table.md"
fi
PROFILES=${ROUND2_PROFILES-sft-profile,eval-profile}  # set and empty: none
if [ -n "$PROFILES" ]; then
  python3 perf/bench.py "${ARGS[@]}" --out "$OUT/profiles" --eval-prompts 1024 --grpo-steps "${ROUND2_GRPO_STEPS:-3}" \
    --budget-s "${ROUND2_PROFILE_S:-150}" --cases "$PROFILES"
  head -c 4000 "$OUT/profiles/profiles.txt"
fi
