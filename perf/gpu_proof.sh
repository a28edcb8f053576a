#!/usr/bin/env bash
# GPU proof of the training path (issue: training at scale): on a lent GPU machine, run the very shell commands
# of fetch_model, train_sft and train_grpo (as `snakemake -n -p ... --configfile config/gpu-proof.yaml` prints
# them into .gpu/commands.sh) on 1 GPU, then on every GPU of the machine, and reload the saved models.
# Wheels missing from the GPU image (trl, datasets, deepspeed, ...) are carried in .whl/.
set -euo pipefail
OUT=${OUT:-/tmp/gpu-proof}
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/workflow PYTHONUNBUFFERED=1
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
export HF_HOME=$PWD/.cache/hf TORCH_EXTENSIONS_DIR=$PWD/.cache/torch_extensions TOKENIZERS_PARALLELISM=false
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader | tee "$OUT/cards.txt"
python3 -c "import pyarrow, torch, transformers, trl, deepspeed; print('pyarrow', pyarrow.__version__, 'torch', torch.__version__, 'transformers', transformers.__version__, 'trl', trl.__version__, 'deepspeed', deepspeed.__version__)"
NGPU=$(nvidia-smi -L | wc -l)
M=results/gpu/models/qwen2.5-0.5b
LOGS=results/gpu/logs  # config/gpu-proof.yaml's results folder holds its job logs
mkdir -p $LOGS/fetch_model $LOGS/train_sft/qwen2.5-0.5b $LOGS/train_grpo/qwen2.5-0.5b
sed -n 1p .gpu/commands.sh | bash
for n in ${GPU_COUNTS:-1 $NGPU}; do  # GPU_COUNTS="2": only the 2-GPU run
  rm -rf "$M/sft" "$M/sft+rl"
  export CUDA_VISIBLE_DEVICES=$(seq -s, 0 $((n - 1)))
  for i in 2 3; do
    start=$(date +%s); sed -n ${i}p .gpu/commands.sh | bash || { tail -n 40 $LOGS/train_*/qwen2.5-0.5b/*.log; cp -r $LOGS "$OUT/logs"; exit 1; }
    echo "gpus=$n command=$i wall_s=$(( $(date +%s) - start ))" | tee -a "$OUT/walls.txt"
  done
  for c in sft sft+rl; do cp "$M/$c/train_summary.json" "$OUT/summary-$n-gpu-${c/+/_}.json"; done
  cp $LOGS/train_sft/qwen2.5-0.5b/sft.log "$OUT/sft-$n-gpu.log"; cp "$LOGS/train_grpo/qwen2.5-0.5b/sft+rl.log" "$OUT/grpo-$n-gpu.log"
  python3 - "$M/sft+rl/model" <<'PY' | tee -a "$OUT/reload.txt"
import sys, torch
from transformers import AutoModelForCausalLM, AutoTokenizer
m = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.bfloat16).cuda()
t = AutoTokenizer.from_pretrained(sys.argv[1])
ids = t("What is 2+2?", return_tensors="pt").to("cuda")
out = m.generate(**ids, max_new_tokens=8, do_sample=False)
print("reloaded", sys.argv[1], sum(p.numel() for p in m.parameters()), "params; generated", out.shape[1] - ids.input_ids.shape[1], "tokens")
PY
done
