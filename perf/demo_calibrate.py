"""Calibrate the demo's SFT stage fast: a raw torch loop with the SFT loss (completion tokens only) on the demo's
tiny model and data, evaluated every EVERY steps on 64 synthetic GSM8K-format problems x 2 samples under the paper
protocol (or PROTO=r1). Prints the share of samples whose paper-grader extraction is their own boxed answer
("boxed") and pass@1 ("correct"). Used for config/demo.yaml (docs/performance.md "The demo").

    OMP_NUM_THREADS=1 .venv/bin/python perf/demo_calibrate.py /tmp/cal STEPS LR BATCH

Environment: TINY (JSON, tiny_model overrides of config.yaml's), SYN (synthetic options, default level easy),
TRAIN_FORM (prompt.training: r1 | paper, default paper), SEED (data order), NTRAIN, EVERY, PROTO.
"""

import json
import os
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "workflow"))

import torch  # noqa: E402
import yaml  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from srlm import generation, grading, prompts  # noqa: E402
from srlm.data import benchmarks, gsm8k  # noqa: E402
from srlm.generation.hf import TransformersEngine  # noqa: E402
from srlm.tiny import build_tiny, default_corpus  # noqa: E402

torch.manual_seed(0)
out, steps, lr, bs = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
config = yaml.safe_load((ROOT / "config.yaml").read_text())
spec = dict(config["tiny_model"], **json.loads(os.environ.get("TINY", "{}")))
syn = json.loads(os.environ.get("SYN", '{"level": "easy"}'))
system = config["prompt"]["system"]
if not (out / "base").exists():
    build_tiny(out / "base", spec, default_corpus(system), instruct=True)
    data = {"source": "synthetic", "synthetic": {"n_train": int(os.environ.get("NTRAIN", 3200)), "n_test": 8,
                                                 "seed": 0, **syn}}  # fmt: skip
    gsm8k.prepare({"data": data, "system_prompt": system,
                   "prompt_training": os.environ.get("TRAIN_FORM", "paper")},
                  {n: out / "data" / f"{n}.json{'' if n == 'cleaning' else 'l'}" for n in gsm8k.FILES})  # fmt: skip
tok = AutoTokenizer.from_pretrained(out / "base")
model = AutoModelForCausalLM.from_pretrained(out / "base")
rows = []
for r in map(json.loads, (out / "data" / "sft.jsonl").open()):
    prompt = tok.apply_chat_template(r["prompt"], tokenize=False, add_generation_prompt=True)
    full = tok(prompt + r["completion"][0]["content"] + "<|im_end|>", add_special_tokens=False)["input_ids"]
    rows.append((full, len(tok(prompt, add_special_tokens=False)["input_ids"])))
print("tokens a row", sum(len(f) for f, _ in rows) / len(rows), flush=True)
bench = benchmarks.prepare({"name": "gsm8k", "source": "synthetic", "format": "gsm8k",
                            "synthetic": {"n": 64, "seed": 105, **syn}})  # fmt: skip
eos = {tok.convert_tokens_to_ids("<|im_end|>")}


def evaluate(tag: str) -> None:
    model.eval()
    engine = TransformersEngine(model, tok, "srlm.decode", eos_ids=eos, max_model_length=1024, batch_size=64)
    proto = os.environ.get("PROTO", "paper")
    ids = [tok(prompts.render(tok, prompts.messages(r["problem"], proto, system)), add_special_tokens=False)
           ["input_ids"] for r in bench]  # fmt: skip
    outs = engine.generate(ids, generation.Sampling(0.6, 0.95, 0, 64, n=2, seed=0))
    n = boxed = correct = 0
    for r, o in zip(bench, outs):
        for c in o:
            g = grading.grade_extractive(c.text, r["answer"], "expr")
            b = grading.boxed_answer(c.text)
            n += 1
            boxed += b is not None and g.extracted is not None and grading.verify(g.extracted, b)
            correct += g.correct
    print(f"{tag} boxed={boxed / n:.2f} correct={correct / n:.2f} | {outs[1][0].text[:100]!r}", flush=True)
    model.train()


evaluate("step 0")
opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
rng, t0 = random.Random(int(os.environ.get("SEED", 0))), time.time()
for s in range(1, steps + 1):
    batch = rng.sample(rows, bs)
    length = max(len(f) for f, _ in batch)
    ids = torch.full((bs, length), tok.pad_token_id)
    labels, att = torch.full((bs, length), -100), torch.zeros((bs, length), dtype=torch.long)
    for i, (f, k) in enumerate(batch):
        ids[i, : len(f)], labels[i, k : len(f)], att[i, : len(f)] = torch.tensor(f), torch.tensor(f[k:]), 1
    loss = model(input_ids=ids, attention_mask=att, labels=labels).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad()
    if s % int(os.environ.get("EVERY", 50)) == 0:
        print(f"step {s} loss {loss.item():.3f} t={time.time() - t0:.0f}s", flush=True)
        evaluate(f"step {s}")
