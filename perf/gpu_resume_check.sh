#!/usr/bin/env bash
# 2-GPU DeepSpeed check of kill + resume for srlm.train.sft / grpo (issue: training at scale — resume after preemption under DeepSpeed).
set -uo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD/workflow PYTHONUNBUFFERED=1 NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1
export NVSHMEM_DISABLE_NVLS=1 HF_HOME=/tmp/hf TORCH_EXTENSIONS_DIR=/tmp/tx TOKENIZERS_PARALLELISM=false
W=/tmp/rc; rm -rf $W; mkdir -p $W
nvidia-smi -L
python3 - <<'PY'
import json, yaml
from srlm.tiny import build_tiny, default_corpus
from srlm.data import gsm8k
SYS = "Think in <think></think>, answer in <answer></answer>."
c = yaml.safe_load(open("config.yaml"))
build_tiny("/tmp/rc/base", c["tiny_model"], default_corpus(SYS))
gsm8k.prepare({"data": {"source": "synthetic", "synthetic": {"n_train": 256, "n_test": 8, "seed": 0}}, "system_prompt": SYS}, {n: f"/tmp/rc/data/{n}.json" + ("" if n == "cleaning" else "l") for n in gsm8k.FILES})
sft = {**c["stages"]["sft"], "learning_rate": 3e-3, "max_steps": 24, "save_steps": 4, "max_length": 256, "per_device_train_batch_size": 8, "warmup_ratio": 0.05}
rl = {**c["stages"]["rl"], "learning_rate": 1e-4, "max_steps": 8, "save_steps": 2, "num_generations": 4, "max_completion_length": 48, "per_device_train_batch_size": 8}
for k, s in (("sft", sft), ("grpo", rl)):
    open(f"/tmp/rc/{k}.params", "w").write(json.dumps({"stage": s, "model": {"eos_token": "<|im_end|>"}, "mixed_precision": "bf16"}))
PY
cmd() {  # kind model data dir -> CMD
  CMD=(python3 -m srlm.launch --deepspeed envs/deepspeed/zero2.json --mixed-precision bf16 -- -m srlm.train.$1
    --params "$(cat $W/$1.params)" --model $2 --data $3 --work-dir $W/$4/work --out $W/$4/model
    --summary $W/$4/s.json --metrics $W/$4/m.jsonl --model-name t --chain $1)
}
launch() { cmd "$@"; "${CMD[@]}" >> $W/$4.log 2>&1; }
for kind in sft grpo; do
  if [ $kind = sft ]; then M=$W/base; D=$W/data/sft.jsonl; else M=$W/sft-ref/model; D=$W/data/rl.jsonl; fi
  t=$(date +%s); launch $kind $M $D $kind-ref; echo "$kind ref rc=$? wall=$(( $(date +%s) - t ))s"
  cmd $kind $M $D $kind-k; setsid "${CMD[@]}" >> $W/$kind-k.log 2>&1 & pid=$!
  first=$([ $kind = sft ] && echo 8 || echo 2)
  until [ -f $W/$kind-k/work/checkpoint-$first/trainer_state.json ] || ! kill -0 $pid 2>/dev/null; do sleep 0.05; done
  kill -9 -- -$pid; pkill -9 -f "srlm.train.$kind" || true; wait $pid 2>/dev/null  # all workers, as a preemption does
  sleep 2; echo "left after kill: $(pgrep -g $pid | wc -l)"
  echo "$kind killed: $(ls $W/$kind-k/work | tr '\n' ' ') model? $(ls -d $W/$kind-k/model 2>/dev/null)"
  launch $kind $M $D $kind-k; echo "$kind resumed rc=$?"; grep -h "resuming\|removing\|starting over" $W/$kind-k.log
done
python3 - <<'PY' | tee $OUT/report.txt
import json
for k in ("sft", "grpo"):
    def L(d):
        return {r["step"]: r for r in map(json.loads, open(f"/tmp/rc/{d}/m.jsonl")) if "loss" in r}
    ref, res = L(f"{k}-ref"), L(f"{k}-k")
    s, sr = json.load(open(f"/tmp/rc/{k}-k/s.json")), json.load(open(f"/tmp/rc/{k}-ref/s.json"))
    print(k, "ref", {x: sr[x] for x in ("steps", "processes", "resumed_from")})
    print(k, "resumed", {x: s[x] for x in ("steps", "processes", "resumed_from")})
    print(k, "steps logged", sorted(res) == list(range(1, sr["steps"] + 1)))
    start = int(s["resumed_from"].rsplit("-", 1)[1]) if s["resumed_from"] else 0
    print(k, "loss diffs after", start, [(st, round(ref[st]["loss"], 5), round(abs(ref[st]["loss"] - res[st]["loss"]), 6)) for st in sorted(ref) if st > start])
PY
for kind in sft grpo; do tail -5 $W/$kind-k.log; done
cp $W/sft-k.log $W/grpo-k.log $OUT/ 2>/dev/null
