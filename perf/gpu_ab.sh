#!/usr/bin/env bash
# A/B on one lent GPU, one call: perf/bench.py's GRPO cases with this tree's code against a baseline tree
# (.baseline: `perf/gpu_ab.sh prepare [REV]` writes REV's workflow/, perf/ and config.yaml there, HEAD by default),
# interleaved new, base, new, so that drift shows. Then perf/gpu_grpo_decode.py --phases (this tree).
#   run(carry=[".carry/bench", ".baseline"], "bash perf/gpu_ab.sh")   ($OUT: ab.md, phases.jsonl, logs)
# AB_CASES (grpo-pipe), AB_STEPS (5), AB_PHASES (3 calls; 0: none), AB_CHECK=1 runs perf/gpu_decode_check.py first,
# AB_NEW_CASES: bench cases of this tree alone after the A/B (grpo-phases).
set -uo pipefail
if [ "${1:-}" = prepare ]; then
  rm -rf .baseline && mkdir .baseline && git archive "${2:-HEAD}" workflow perf config.yaml | tar -x -C .baseline
  git rev-parse "${2:-HEAD}" > .baseline/REV
  exit
fi
OUT=${OUT:-/tmp/ab}
mkdir -p "$OUT" /tmp/ab
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  .carry/bench/whl/*.whl
export PYTHONPATH=/tmp/site TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1
G=$PWD/.carry/bench/gpu
# 2,048 evaluation prompts: two calls of 1,024, the first (with the compilation) left out of the timing
ARGS=(--model-config $G/qwen2.5-0.5b --data $G/gsm8k/train.jsonl --work /tmp/bw --grpo-steps "${AB_STEPS:-5}"
      --eval-prompts 2048)
CASES=${AB_CASES:-grpo-pipe}
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
  echo "baseline $(cat .baseline/REV)"; } | tee "$OUT/ab.md"
if [ "${AB_CHECK:-0}" = 1 ]; then
  python3 perf/gpu_decode_check.py --model-config $G/qwen2.5-0.5b --data $G/gsm8k/train.jsonl \
    > "$OUT/decode_check.json" 2> /tmp/ab/decode_check.err
  tail -c 1500 "$OUT/decode_check.json"
fi
for side in new base new2; do
  dir=$PWD; [ $side = base ] && dir=$PWD/.baseline
  (cd "$dir" && python3 perf/bench.py "${ARGS[@]}" --out /tmp/ab/$side --cases "$CASES") > /tmp/ab/$side.out 2>&1
  { echo "## $side"; cat /tmp/ab/$side/table.md; } | tee -a "$OUT/ab.md"
  cat /tmp/ab/$side/profiles.txt >> "$OUT/ab.md" 2>/dev/null
  cat /tmp/ab/$side/cases.log >> "$OUT/cases.log"
done
if [ -n "${AB_NEW_CASES:-}" ]; then  # cases of this tree only (grpo-phases), after the A/B
  python3 perf/bench.py "${ARGS[@]}" --out /tmp/ab/more --cases "$AB_NEW_CASES" > /tmp/ab/more.out 2>&1
  { echo "## this tree only"; cat /tmp/ab/more/table.md /tmp/ab/more/profiles.txt; } | tee -a "$OUT/ab.md"
  cat /tmp/ab/more/cases.log >> "$OUT/cases.log"
fi
if [ "${AB_PHASES:-3}" != 0 ]; then
  PYTHONPATH=/tmp/site:$PWD/perf python3 perf/gpu_grpo_decode.py --model-config $G/qwen2.5-0.5b \
    --data $G/gsm8k/train.jsonl --conditions compiled --phases "${AB_PHASES:-3}" \
    > "$OUT/phases.jsonl" 2> /tmp/ab/phases.err
  cat "$OUT/phases.jsonl"; tail -c 3000 /tmp/ab/phases.err
fi
