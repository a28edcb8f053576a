"""srlm.layout: the chain syntax and where each output lives."""

from __future__ import annotations

import pytest
import yaml
from srlm import layout

from tests.conftest import REPO

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


def test_chain_parsing_and_parents():
    assert layout.stages("base") == []
    assert layout.stages("kd-lora+rl") == ["kd-lora", "rl"]
    assert layout.parent("kd-lora+rl") == "kd-lora"
    assert layout.parent("rl") == "base"
    assert layout.last_stage("sft-lora+rl") == "rl"
    assert layout.prefixes("kd+rl") == ["kd", "kd+rl"]
    assert layout.prefixes("base") == []
    with pytest.raises(ValueError):
        layout.parent("base")
    with pytest.raises(ValueError):
        layout.last_stage("base")


def test_untrained_entries_that_share_weights_share_one_download():
    lay = layout.Layout.of(CONFIG)
    assert lay.model_dir("qwen3-0.6b-thinking", "base") == "results/models/qwen3-0.6b/base/model"
    assert lay.model_dir("qwen3-0.6b-thinking", "rl") == "results/models/qwen3-0.6b-thinking/rl/model"
    assert lay.model_dir("qwen2.5-0.5b", "base") == "results/models/qwen2.5-0.5b/base/model"


def test_paths_are_snakemake_patterns_when_given_wildcards():
    lay = layout.Layout("results/demo")
    assert lay.eval_json("{model}", "{chain}", "{benchmark}") == "results/demo/evals/{model}/{chain}/{benchmark}.json"
    assert lay.completions("m", "kd+rl", "gsm8k") == "results/demo/completions/m/kd+rl/gsm8k.jsonl"
    assert lay.health("m", "kd") == "results/demo/models/m/kd/health.json"
    assert lay.gsm8k("sft") == "results/demo/data/gsm8k/sft.jsonl"
    assert lay.gsm8k("prep_report") == "results/demo/data/gsm8k/prep_report.json"
    assert lay.table("table2") == "results/demo/table2.md"


def test_report_inputs_name_every_cell_and_every_trained_prefix_once():
    lay = layout.Layout("r")
    cells = [("m", "kd+rl", "gsm8k"), ("m", "kd+rl", "math500"), ("m", "kd", "gsm8k"), ("m", "base", "gsm8k")]
    inputs = lay.inputs(cells, ["evals", "health"])
    assert inputs["evals"]["m"]["kd+rl"] == {"gsm8k": "r/evals/m/kd+rl/gsm8k.json", "math500": "r/evals/m/kd+rl/math500.json"}
    assert inputs["health"] == {"m": {"kd": "r/models/m/kd/health.json", "kd+rl": "r/models/m/kd+rl/health.json"}}
    assert len(layout.files(inputs)) == 4 + 2
    with pytest.raises(ValueError, match="unknown input kind"):
        lay.inputs(cells, ["benchmarks"])


def test_chain_patterns_match_whole_chains_by_their_last_stage():
    import re

    grpo = layout.chain_pattern(["kd", "kd-lora", "rl"], ["rl"])
    assert re.fullmatch(grpo, "kd-lora+rl") and re.fullmatch(grpo, "rl")
    assert not re.fullmatch(grpo, "kd-lora") and not re.fullmatch(grpo, "rl+kd")
    assert not re.fullmatch(layout.chain_pattern(["kd"], []), "kd")
