#!/usr/bin/env bash
# Issue 19 (performance round two) on one lent GPU, one call: srlm.decode's checks and sampling times, then
# perf/bench.py's cases at 256 new tokens (SFT padded vs padding-free and its attention kernels, GRPO, evaluation),
# evaluation at 2,048 new tokens, and profiles. Prepare with perf/bench_carry.sh, then
#   run(carry=[".carry/bench"], "bash perf/gpu_round2.sh")       ($OUT: decode_check.json, b256/, b2048/)
# ROUND2_CASES overrides the 256-token cases; ROUND2_LONG=0 skips the 2,048-token run.
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
python3 perf/gpu_decode_check.py "${ARGS[@]:0:4}" > "$OUT/decode_check.json" 2> "$OUT/decode_check.err"
tail -c 3000 "$OUT/decode_check.json"
CASES=${ROUND2_CASES:-eval-pipe,grpo-pipe,sft-pipe,sft-pipe-pf,sft-pipe-pf-segments,sft-pipe-pf-flex,grpo-profile,eval-profile}
python3 perf/bench.py "${ARGS[@]}" --out "$OUT/b256" --eval-prompts 2048 --grpo-steps 3 --budget-s 420 --cases "$CASES"
cat "$OUT/b256/table.md"
if [ "${ROUND2_LONG:-1}" = 1 ]; then
  python3 perf/bench.py "${ARGS[@]}" --out "$OUT/b2048" --gen-tokens 2048 --eval-prompts 1024 --cases eval-pipe
  cat "$OUT/b2048/table.md"
fi
