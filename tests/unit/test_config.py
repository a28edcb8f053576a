"""Config validation (srlm.config): the runs each table implies, error messages."""

from __future__ import annotations

import copy

import pytest
import yaml

from srlm import config as cfg
from srlm import layout
from tests.conftest import REPO

CONFIG = yaml.safe_load((REPO / "config.yaml").read_text())


def test_table_runs_follow_the_paper():
    t2 = cfg.table_runs(CONFIG, "table2")
    assert len(t2) == 12 and t2[0] == ("qwen2.5-0.5b", "base")
    t3 = cfg.table_runs(CONFIG, "table3")
    assert ("qwen2.5-0.5b-instruct", "kd-lora+rl") in t3 and len(t3) == 12
    trained = {(m, p) for m, c in t2 + t3 for p in layout.prefixes(c)}
    assert len(trained) == 18  # table 3's parents are table 2's rows
    assert len(cfg.table_runs(CONFIG, "table1")) == 6  # cited rows are not runs


def test_paper_config_is_valid():
    cfg.validate(copy.deepcopy(CONFIG))


def bad(mutate) -> str:
    c = copy.deepcopy(CONFIG)
    mutate(c)
    with pytest.raises(cfg.ConfigError) as e:
        cfg.validate(c)
    return str(e.value)


def test_errors_name_the_key():
    assert "stages.rl.learning_rate: '1e-5' is a string" in bad(lambda c: c["stages"]["rl"].update(learning_rate="1e-5"))
    assert "stages.rl.lr: unknown key" in bad(lambda c: c["stages"]["rl"].update(lr=1.0e-5))
    assert "stages.sft.beta: not allowed" in bad(lambda c: c["stages"]["sft"].update(beta=0.1))
    msg = bad(lambda c: c["tables"]["table3"]["sections"][1]["rows"][0].update(chain="kd+ppo"))
    assert "tables.table3.sections.1.rows.0.chain: 'kd+ppo' names undefined stage 'ppo'" in msg
    assert "tables.table2.columns.0: unknown benchmark" in bad(lambda c: c["tables"]["table2"]["columns"].__setitem__(0, "aime"))
    assert "per_device_train_batch_size: must be divisible by num_generations" in bad(
        lambda c: c["stages"]["rl"].update(per_device_train_batch_size=20)
    )
    assert "evaluation.protocol: 'open-r1' is not one of" in bad(lambda c: c["evaluation"].update(protocol="open-r1"))
    assert "evaluation.engine: 'hf' is not one of" in bad(lambda c: c["evaluation"].update(engine="hf"))
    assert "models.qwen3-0.6b-thinking.same_weights_as" in bad(
        lambda c: c["models"]["qwen3-0.6b-thinking"].update(same_weights_as="nope")
    )


def test_overlays_merge_as_snakemake_merges_them(tmp_path):
    """`python -m srlm.config` must judge the configuration Snakemake will run: same merge of the overlays."""
    from snakemake.utils import update_config

    odd = tmp_path / "odd.yaml"
    odd.write_text("stages:\n  sft: {lora: {r: 8, alpha: 16, dropout: 0.0, target_modules: [q_proj]}}\n"
                   "tables: {table2: {columns: [gsm8k]}}\nevaluation: {generation: {seed: 3}}\n")  # fmt: skip
    files = [REPO / "config.yaml", REPO / "config" / "demo.yaml", REPO / "config" / "local-data.yaml", odd]
    want: dict = {}
    for f in files:
        update_config(want, yaml.safe_load(f.read_text()))
    got = cfg.load(files)
    assert got == want
    assert got["stages"]["sft"]["lora"]["r"] == 8 and got["stages"]["sft"]["learning_rate"] == 3.0e-3


def test_yaml_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("models:\n  qwen2.5-0.5b:\n    source: local\n   label: x\n")
    with pytest.raises(cfg.ConfigError, match=r"bad\.yaml:4:\d+: YAML syntax error"):
        cfg.load_yaml(bad)


def test_scheduler_names_are_transformers_own():
    """The schema's lr_scheduler_type names are values transformers accepts (caught here, not on the GPU node)."""
    from transformers import SchedulerType

    names = cfg._validator().schema["properties"]["stages"]["additionalProperties"]["properties"]["lr_scheduler_type"]
    assert set(names["enum"]) <= {s.value for s in SchedulerType}
    assert {st["lr_scheduler_type"] for st in CONFIG["stages"].values()} <= set(names["enum"])
