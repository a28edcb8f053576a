#!/usr/bin/env bash
# GPU proof of the evaluation path (issue: evaluation with lighteval): on a lent GPU machine, evaluate a
# Qwen2.5-0.5B-shaped model (random weights, real tokenizer) on MATH500 with lighteval's transformers backend,
# n = 2 samples per problem, a short generation length, through the rules' own commands. Prints problems/s and
# generated tokens/s. Wheels missing from the GPU image are carried in .whl/ and .whl-eval/ (lighteval's closure).
set -euo pipefail
OUT=${OUT:-/tmp/gpu-eval-proof}; mkdir -p "$OUT"
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl .whl-eval/*.whl
export PYTHONPATH=/tmp/site:$PWD/workflow PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1
export HF_HOME=$PWD/.cache/hf TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/card.txt"
R=results/gpu-eval
python3 -m srlm.fetch --params '{"source": "random", "local_path": ".gpu/qwen2.5-0.5b"}' --out $R/model
python3 -m srlm.data.benchmarks --params '{"name": "math500", "source": "local", "local_path": ".gpu/math500.jsonl", "format": "math500"}' --out $R/math500.jsonl
SYS=$(python3 -c "import yaml; print(yaml.safe_load(open('config.yaml'))['prompt']['system'])")
for engine in lighteval native; do
  P=$(python3 -c "import json,sys; print(json.dumps({'backend': 'transformers', 'engine': sys.argv[2], 'dtype': 'bfloat16', 'max_model_length': 4096, 'gpu_memory_utilization': 0.9, 'generation': {'temperature': 0.6, 'top_p': 0.95, 'max_new_tokens': ${MAX_NEW:-128}, 'n_samples': 2, 'seed': 0}, 'batch_size': ${BATCH:-128}, 'bootstrap_resamples': 1000, 'chat': {'chat_template': True, 'enable_thinking': None, 'system_prompt': sys.argv[1]}}))" "$SYS" $engine)
  start=$(date +%s.%N)
  python3 -m srlm.evaluate --model-dir $R/model --bench $R/math500.jsonl --params "$P" --out "$OUT/math500-$engine.json" --details $R/details-$engine.jsonl --model-name qwen2.5-0.5b-random --chain base --benchmark math500 2>&1 | tail -3
  python3 - "$OUT/math500-$engine.json" "$start" <<'PY' | tee -a "$OUT/summary.txt"
import json, sys, time
r = json.load(open(sys.argv[1])); job = time.time() - float(sys.argv[2])
print(f"{r.get('engine')}: {r['n_problems']} problems x {r['n_samples']} samples, {r['completion_tokens_total']} generated tokens; "
      f"eval wall {r['wall_s']:.1f} s -> {r['n_problems'] / r['wall_s']:.2f} problems/s, {r['completion_tokens_total'] / r['wall_s']:.0f} gen tokens/s; "
      f"whole job {job:.1f} s; pass@1 {r['pass_at_1']:.3f}, not extractable {r['not_extractable_rate']:.2f}")
PY
done
