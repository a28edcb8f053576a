"""A hostile user's inputs: malformed config overlays and broken data files must stop at the entry point,
before any job, with one message naming the key or file:line, and no Python traceback.

Configs go through `python -m srlm.config` (the validation the Snakefile runs before planning, the overlay
merged onto config.yaml as Snakemake merges it), called in this process because every Snakemake start costs
seconds; a few go through `snakemake -n` itself. Data files go through the CLIs the rules run.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from srlm import config as cfg

from tests.conftest import REPO, gsm8k_argv, snakemake

LORA = "stages.sft-lora.lora"


def overlay(obj) -> str:
    return yaml.safe_dump(obj)


# (overlay YAML, text the message must contain). Paths are relative to the working directory (the repository).
BAD_CONFIGS = [
    # sources that name nothing, or a path that is not there
    (overlay({"models": {"qwen2.5-0.5b": {"source": "local"}}}),
     "models.qwen2.5-0.5b: 'local_path' is a required"),
    (overlay({"models": {"qwen2.5-0.5b": {"source": "local", "local_path": "no/such/model"}}}),
     "models.qwen2.5-0.5b.local_path: no folder 'no/such/model'"),
    (overlay({"models": {"qwen2.5-0.5b": {"source": "local", "local_path": "workflow"}}}),
     "models.qwen2.5-0.5b.local_path: folder 'workflow' has no config.json"),
    (overlay({"models": {"qwen2.5-0.5b": {"source": "random", "local_path": "no/such/model"}}}),
     "models.qwen2.5-0.5b.local_path: no folder"),
    (overlay({"models": {"m2": {"label": "M", "source": "hub", "chat_template": True, "eos_token": "x"}}}),
     "models.m2: 'hub_id' is a required property"),
    (overlay({"benchmarks": {"math500": {"source": "local"}}}),
     "benchmarks.math500.local_path: not set (needed when source is local)"),
    (overlay({"benchmarks": {"math500": {"source": "local", "local_path": "no/such.jsonl"}}}),
     "benchmarks.math500.local_path: no file 'no/such.jsonl'"),
    (overlay({"benchmarks": {"aime": {"label": "A", "source": "hub", "format": "math500",
                                       "generation": {}}}}),
     "benchmarks.aime.hub_id: not set (needed when source is hub)"),
    (overlay({"benchmarks": {"math500": {"source": "synthetic", "synthetic": {"n": 8, "level": "gsm8k"}}}}),
     "benchmarks.math500.synthetic: lacks seed"),
    (overlay({"data": {"gsm8k": {"source": "local"}}}), "data.gsm8k.local_dir: not set"),
    (overlay({"data": {"gsm8k": {"source": "local", "local_dir": "no/such/dir"}}}),
     "data.gsm8k.local_dir: no folder 'no/such/dir'"),
    (overlay({"data": {"gsm8k": {"source": "local", "local_dir": "workflow"}}}),
     "data.gsm8k.local_dir: folder 'workflow' has no train.jsonl, test.jsonl"),
    (overlay({"data": {"kd": {"source": "local"}}}), "data.kd.local_path: not set"),
    (overlay({"launch": {"deepspeed": "envs/deepspeed/zero9.json"}}), "launch.deepspeed: no file"),
    # numbers that are each valid but not together
    (overlay({"evaluation": {"max_model_length": 1024}}),
     "evaluation.generation.max_new_tokens: 32768 exceeds evaluation.max_model_length (1024)"),
    (overlay({"benchmarks": {"amc23": {"generation": {"max_new_tokens": 40000}}}}),
     "benchmarks.amc23.generation.max_new_tokens: 40000 exceeds"),
    (overlay({"stages": {"sft": {"max_steps": 0}}}), "stages.sft.max_steps: 0 trains nothing"),
    (overlay({"tiny_model": {"num_attention_heads": 3}}), "tiny_model.num_attention_heads: must divide"),
    (overlay({"stages": {"rl": {"per_device_train_batch_size": 20}}}),
     "stages.rl.per_device_train_batch_size: must be divisible by num_generations"),
    (overlay({"tables": {"table2": {"columns": ["math500", "math500", "minerva", "amc23", "gsm8k"]}}}),
     "tables.table2.columns.1: 'math500' listed twice"),
    # the LoRA block (a oneOf null | object): the offending field, not "lora is not of type 'null'"
    (overlay({"stages": {"sft-lora": {"lora": {"r": 0}}}}), f"{LORA}.r: 0 is less than the minimum of 1"),
    (overlay({"stages": {"sft-lora": {"lora": {"r": "16"}}}}), f"{LORA}.r: '16' is a string, expected int"),
    (overlay({"stages": {"sft-lora": {"lora": {"dropout": 1.5}}}}), f"{LORA}.dropout: 1.5 is greater than"),
    (overlay({"stages": {"sft-lora": {"lora": {"rank": 8}}}}), f"{LORA}.rank: unknown key"),
    (overlay({"stages": {"sft-lora": {"lora": "yes"}}}), f"{LORA}: 'yes' is none of: null, object"),
    # types, unknown keys, keys a stage type does not take, references
    (overlay({"stages": {"rl": {"learning_rate": "1e-5"}}}), "stages.rl.learning_rate: '1e-5' is a string"),
    (overlay({"stages": {"rl": {"lr": 1.0e-5}}}), "stages.rl.lr: unknown key"),
    (overlay({"stages": {"sft": {"beta": 0.1}}}), "stages.sft.beta: not allowed for a stage of type 'sft'"),
    (overlay({"evaluation": {"engine": "native"}}), "evaluation.engine: 'native' is not one of"),
    (overlay({"evaluation": {"batch_size": 0}}), "evaluation.batch_size: 0 is less than the minimum of 1 or"),
    (overlay({"data": {"gsm8k": {"clean": {"on_malformed": "skip"}}}}), "gsm8k.clean.on_malformed: 'skip'"),
    (overlay({"data": {"gsm8k": {"clean": {"tokenizer_model": "gpt2"}}}}),
     "data.gsm8k.clean.tokenizer_model: unknown model 'gpt2'"),
    (overlay({"tables": {"table3": {"sections": [{"title": "x", "rows": [
        {"model": "qwen2.5-0.5b", "chain": "kd+ppo", "paper": [None] * 5}]}]}}}),
     "tables.table3.sections.0.rows.0.chain: 'kd+ppo' names undefined stage 'ppo'"),
    # numbers a job would refuse (or misread) only on the compute node: integers given as floats, NaN and
    # infinities (they pass every minimum and maximum), values outside what the libraries accept
    (overlay({"stages": {"sft": {"per_device_train_batch_size": 2.0}}}),
     "stages.sft.per_device_train_batch_size: 2.0 is not of type 'integer'"),
    (overlay({"gpus": {"train": 8.0}}), "gpus.train: 8.0 is not of type 'integer'"),
    (overlay({"evaluation": {"batch_size": 16.0}}), "evaluation.batch_size: 16.0 is not an integer"),
    (overlay({"evaluation": {"generation": {"n_samples": 4.0}}}), "evaluation.generation.n_samples: 4.0 is not"),
    (overlay({"health": {"min_rise": float("nan")}}), "health.min_rise: nan is not a finite number"),
    (overlay({"marks": {"not_extractable_threshold": float("nan")}}), "marks.not_extractable_threshold: nan is"),
    (overlay({"evaluation": {"generation": {"temperature": float("inf")}}}),
     "evaluation.generation.temperature: inf is not a finite number"),
    (overlay({"stages": {"sft": {"num_train_epochs": float("inf")}}}), "stages.sft.num_train_epochs: inf is not"),
    (overlay({"stages": {"sft": {"seed": -1}}}), "stages.sft.seed: -1 is less than the minimum of 0"),
    (overlay({"evaluation": {"generation": {"seed": 2**40}}}),
     "evaluation.generation.seed: 1099511627776 is greater"),
    (overlay({"stages": {"sft": {"lr_scheduler_type": "cosine_warmup"}}}),
     "stages.sft.lr_scheduler_type: 'cosine_warmup' is not one of"),
    (overlay({"stages": {"sft-lora": {"lora": {"target_modules": []}}}}),
     f"{LORA}.target_modules: [] should be non-empty"),
    (overlay({"gpus": {"evaluate": 1000}}), "gpus.evaluate: 1000 is greater than the maximum of 64"),
    (overlay({"evaluation": {"generation": {"n_samples": 10**6}}}),
     "evaluation.generation.n_samples: 1000000 is greater than the maximum of 1024"),
    (overlay({"evaluation": {"gpu_memory_utilization": 0}}), "evaluation.gpu_memory_utilization: 0 is less than"),
    # names a file system cannot hold, and tables that name what is not there or say one thing twice
    (overlay({"models": {"m" * 300: {"label": "M", "source": "tiny", "chat_template": True, "eos_token": "x",
                                          "instruct": False}}}),
     "models: 'mmmm"),
    (overlay({"stages": {"s" * 65: {"label": "S"}}}), "is too long"),
    (overlay({"targets": ["table" + "9" * 300]}), "targets.0: 'table999"),
    (overlay({"targets": ["table9"]}), "targets.0: 'table9' is not a table of `tables` (table1, table2, table3)"),
    (overlay({"models": {"qwen3-0.6b": {"label": "Qwen2.5-0.5B"}}}),
     "models.qwen3-0.6b.label: 'Qwen2.5-0.5B' is also the label of models.qwen2.5-0.5b"),
    (overlay({"stages": {"kd": {"label": "SFT"}}}), "stages.kd.label: 'SFT' is also the label of stages.sft"),
    (overlay({"tables": {"table3": {"sections": [{"title": "x", "rows": [
        {"model": "qwen2.5-0.5b", "chain": "sft", "paper": [None] * 5},
        {"model": "qwen2.5-0.5b", "chain": "sft", "paper": [None] * 5}]}]}}}),
     "tables.table3.sections.0.rows.1: the same model and chain as tables.table3.sections.0.rows.0"),
    (overlay({"tables": {"table3": {"sections": [{"title": "x", "rows": [
        {"model": "qwen2.5-0.5b", "chain": "sft", "paper": [None] * 5},
        {"model": "qwen2.5-0.5b", "chain": "kd", "label": "Qwen2.5-0.5B+SFT", "paper": [None] * 5}]}]}}}),
     "tables.table3.sections.0.rows.1: label 'Qwen2.5-0.5B+SFT' is also that of row 0 of its section"),
    # a key given twice in one file: YAML keeps the last one, silently
    ("stages:\n  sft: {seed: 1}\n  rl: {seed: 2}\n  sft: {seed: 3}\n",
     "bad.yaml:4:3: YAML error: key 'sft' given twice (first at line 2)"),
    # a results folder Snakemake would read as a pattern (spaces and shell syntax are fine: test_injection.py)
    (overlay({"results": "out/{model}"}), "results: 'out/{model}' does not match"),
    # files that are not a YAML mapping
    ("stages:\n  rl: {learning_rate: 1.0e-5\n", "bad.yaml:3:1: YAML syntax error"),
    ("stages:\n\trl: {}\n", "bad.yaml:2:1: YAML syntax error"),
    ("- a list\n", "bad.yaml: expected a mapping of config keys, got list"),
    # a template Snakemake would evaluate as Python when loading the file (the Snakefile's re-read stops the
    # run after the fact; `python -m srlm.config` catches it before any code runs)
    ("__use_yte__: true\nresults: ?f'out'\n", "bad.yaml: __use_yte__: this workflow's config files are plain YAML"),
]  # fmt: skip


@pytest.mark.parametrize("text,message", BAD_CONFIGS, ids=[m.split(":")[0] for _, m in BAD_CONFIGS])
def test_bad_config_named_before_planning(text, message, tmp_path, monkeypatch, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    monkeypatch.chdir(REPO)  # where snakemake runs: relative paths in the config start here
    with pytest.raises(SystemExit) as stop:
        cfg.main(["--configfile", str(bad)])
    said = str(stop.value.code) + capsys.readouterr().err
    assert stop.value.code not in (0, None)
    assert message in said, said
    assert "Traceback" not in said


def test_good_configs_pass(monkeypatch, capsys):
    """The guard against a check that rejects everything: the shipped config and overlays are valid here."""
    monkeypatch.chdir(REPO)
    shared_data = (REPO.parent / "shared" / "data").is_dir()  # config/local-data.yaml's files (our machines)
    for overlays in ([], ["config/demo.yaml"], *([["config/local-data.yaml"]] if shared_data else [])):
        cfg.main(["--configfile", *overlays])
        assert capsys.readouterr().out.strip() == "configuration is valid"


def test_snakemake_stops_before_any_job(tmp_path):
    """The same check inside Snakemake: exit status 1 before the plan, the message alone. A YAML syntax error
    in an overlay is Snakemake's own (it parses overlays before any workflow code): no file and line there,
    which is why `python -m srlm.config` exists; it still stops before any job."""
    missing = tmp_path / "missing.yaml"
    missing.write_text(overlay({"models": {"qwen2.5-0.5b": {"source": "local", "local_path": "no/such/m"}}}))
    broken = tmp_path / "broken.yaml"
    broken.write_text("stages:\n  rl: {learning_rate: 1.0e-5\n")
    twice = tmp_path / "twice.yaml"  # Snakemake's loader keeps the last; the Snakefile re-reads its files
    twice.write_text("stages:\n  sft: {seed: 1}\n  sft: {seed: 2}\n")
    undefined = tmp_path / "undefined.yaml"  # was InputFunctionException ... KeyError, with a traceback
    undefined.write_text("targets: [table9]\n")
    cases = ((missing, "models.qwen2.5-0.5b.local_path: no folder"), (broken, "not valid JSON or YAML"),
             (twice, "twice.yaml:3:3: YAML error: key 'sft' given twice (first at line 2)"),
             (undefined, "targets.0: 'table9' is not a table of `tables`"))  # fmt: skip
    for path, message in cases:
        target = [] if path == undefined else ["results/table2.md"]  # rule all: the config's targets
        proc = snakemake("-n", *target, "--configfile", str(path), check=False)
        text = proc.stdout + proc.stderr
        assert proc.returncode != 0 and message in text, text[-3000:]
        assert "Job stats" not in text and "Traceback" not in text and 'File "' not in text, text[-3000:]


# ---------------------------------------------------------------- broken data files, through the rules' CLIs

Q = "Tom has 3 apples and buys 2 more. How many apples does he have?"
GOOD_TRAIN = json.dumps({"question": Q, "answer": "3 + 2 = 5\n#### 5"})
GOOD_TEST = json.dumps({"question": "What is 2 + 2?", "answer": "2 + 2 = 4\n#### 4"})
MATH = json.dumps({"problem": "What is 1 + 1?", "answer": "2", "unique_id": "a"})


def lines(*rows: str | bytes) -> bytes:
    return b"".join((r if isinstance(r, bytes) else r.encode()) + b"\n" for r in rows)


def bench(content: bytes, fmt: str = "math500") -> tuple[str, dict[str, bytes], list[str]]:
    params = {"name": "b", "source": "local", "local_path": "b.jsonl", "format": fmt}
    argv = ["--params", json.dumps(params), "--out", "out.jsonl"]
    return "srlm.data.benchmarks", {"b.jsonl": content}, argv


def gsm8k(train: bytes, test: bytes = lines(GOOD_TEST), on_malformed="error", bench_file=None):
    clean = {"dedup": False, "decontaminate": None, "on_malformed": on_malformed}
    data = {"source": "local", "local_dir": "gsm8k", "clean": clean}
    files = {"gsm8k/train.jsonl": train, "gsm8k/test.jsonl": test}
    argv = []
    if bench_file is not None:  # benchmark files come exactly when decontamination is on
        data["clean"]["decontaminate"] = {"ngram": 13, "threshold": 0.5}
        files["bench.jsonl"] = bench_file
        argv += ["--bench", "bench.jsonl"]
    params = {"data": data, "system_prompt": "S", "prompt_training": "r1"}
    argv = ["--params", json.dumps(params), *gsm8k_argv("out"), *argv]
    return "srlm.data.gsm8k", files, argv


SETTINGS = json.dumps({"settings": {"protocol": "r1", "sampling": {"n": 1}, "engine_used": "x", "timing": {}}})
COMPLETION = json.dumps({"id": "a", "samples": [{"text": "<answer>2</answer>", "tokens": 3, "finish_reason": "stop"}]})


def grade(content: bytes):
    params = {"timeout_s": 5.0, "gold_format": "math500"}
    argv = ["--completions", "c.jsonl", "--bench", "b.jsonl", "--params", json.dumps(params),
            "--out", "out.json", "--details", "out.details.jsonl"]  # fmt: skip
    bench_rows = lines(json.dumps({"id": "a", "problem": "1 + 1?", "answer": "2"}))
    return "srlm.grade", {"c.jsonl": content, "b.jsonl": bench_rows}, argv


def kd(content: bytes):
    params = {"data": {"source": "local", "local_path": "kd.jsonl"}, "system_prompt": "S", "prompt_training": "r1",
              "clean": {"dedup": False, "decontaminate": None}}  # fmt: skip
    argv = ["--params", json.dumps(params), "--out", "out.jsonl", "--report", "report.json"]
    return "srlm.data.distill", {"kd.jsonl": content}, argv


BAD_DATA = {
    "bench-not-utf8": (bench(lines(MATH, b'{"problem": "caf\xe9", "answer": "1", "unique_id": "b"}')),
                       "b.jsonl:2: not UTF-8"),
    "bench-invalid-json": (bench(lines(MATH, '{"problem": "P", "answer": ')), "b.jsonl:2: invalid JSON"),
    "bench-not-an-object": (bench(lines(MATH, "[1, 2]")), "b.jsonl:2: expected a JSON object, got list"),
    "bench-empty": (bench(b""), "b.jsonl: no rows (empty file)"),
    "bench-blank-lines-only": (bench(b"\n  \n"), "b.jsonl: no rows"),
    "bench-no-answer": (bench(lines(MATH, MATH, '{"problem": "P", "unique_id": "c"}')),
                        "b.jsonl:3 (id c): empty or missing gold answer"),
    "bench-problem-not-text": (bench(lines('{"problem": 7, "answer": "2", "unique_id": "a"}')),
                               "b.jsonl:1 (id a): empty or missing problem"),
    "bench-answer-wrong-type": (bench(lines('{"question": "Q", "answer": 5}'), "gsm8k"),
                                "b.jsonl:1 (id 0): cannot read the gold answer"),
    "bench-amc-null-answer": (bench(lines('{"problem": "P", "answer": null, "id": 3}'), "amc23"),
                              "b.jsonl:1 (id 3): empty or missing gold answer"),
    "bench-duplicate-id": (bench(lines(MATH, MATH.replace('"a"', '"z"'), MATH)),
                           "b.jsonl:3: id 'a' already used at b.jsonl:1"),
    "gsm8k-empty-train": (gsm8k(b""), "gsm8k/train.jsonl: no rows (empty file)"),
    "gsm8k-empty-test": (gsm8k(lines(GOOD_TRAIN), b""), "gsm8k/test.jsonl: no rows (empty file)"),
    "gsm8k-not-utf8": (gsm8k(lines(GOOD_TRAIN, b'{"question": "\xff\xfe", "answer": "#### 1"}')),
                       "gsm8k/train.jsonl:2: not UTF-8"),
    "gsm8k-truncated-line": (gsm8k(lines(GOOD_TRAIN), lines(GOOD_TEST, '{"question": "Q", "ans')),
                             "gsm8k/test.jsonl:2: invalid JSON"),
    "gsm8k-no-final-answer": (gsm8k(lines(GOOD_TRAIN, json.dumps({"question": Q, "answer": "5"}))),
                              "gsm8k/train.jsonl:2: no '####'"),
    "gsm8k-question-not-text": (gsm8k(lines(json.dumps({"question": ["Q"], "answer": "#### 1"}), GOOD_TRAIN)),
                                "gsm8k/train.jsonl:1: empty or missing 'question'"),
    "gsm8k-all-rows-dropped": (gsm8k(lines(json.dumps({"question": Q, "answer": "5"})), on_malformed="drop"),
                               "no train rows left after cleaning"),
    "gsm8k-empty-decontamination-benchmark": (gsm8k(lines(GOOD_TRAIN), bench_file=b""),
                                              "bench.jsonl: no rows (empty benchmark file)"),
    # golds no response can ever match, and a valid JSON string that is no text (a lone surrogate)
    "bench-fullwidth-gold": (bench(lines('{"problem": "P", "answer": "\uff11\uff12", "unique_id": "a"}')),
                             "b.jsonl:1 (id a): gold answer '\uff11\uff12' cannot be graded: digits other than 0-9"),
    "bench-nan-gold": (bench(lines(MATH, '{"problem": "P", "answer": "NaN", "unique_id": "b"}')),
                       "b.jsonl:2 (id b): gold answer 'NaN' cannot be graded: NaN"),
    "bench-amc-nan-gold": (bench(lines('{"problem": "P", "answer": NaN, "id": 3}'), "amc23"),
                           "b.jsonl:1 (id 3): gold answer 'nan' cannot be graded: not a number"),
    "bench-gsm8k-fullwidth-gold": (bench(lines(json.dumps({"question": "Q", "answer": "#### \uff15"})), "gsm8k"),
                                   "b.jsonl:1 (id 0): cannot read the gold answer: final answer"),
    "gsm8k-fullwidth-final-answer": (gsm8k(lines(GOOD_TRAIN, json.dumps({"question": Q, "answer": "#### \uff15"}))),
                                     "gsm8k/train.jsonl:2: final answer '\uff15' is not a number"),
    "bench-lone-surrogate": (bench(lines(MATH, '{"problem": "P \\ud800", "answer": "1", "unique_id": "b"}')),
                             "b.jsonl:2: a lone surrogate \\ud800 in a string"),
    "gsm8k-lone-surrogate": (gsm8k(lines(GOOD_TRAIN, '{"question": "Q \\udfff", "answer": "#### 1"}')),
                             "gsm8k/train.jsonl:2: a lone surrogate \\udfff"),
    # the grading job: a completions file cut short, or one whose rows are not completions
    "grade-truncated-completions": (grade(lines(SETTINGS, COMPLETION, '{"id": "b", "samp')),
                                    "c.jsonl:3: invalid JSON"),
    "grade-row-without-samples": (grade(lines(SETTINGS, '{"id": "a"}')), "c.jsonl:2: not a completions row"),
    "grade-not-completions": (grade(lines(COMPLETION)), "c.jsonl:1: not a completions file"),
    # one KD case: srlm.data.distill imports math-verify (seconds); the reading is the shared srlm.data.io's
    "kd-not-utf8": (kd(lines(b'{"problem": "\xc3\x28"}')), "kd.jsonl:1: not UTF-8"),
}  # fmt: skip


def run_cli(module: str, files: dict[str, bytes], argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    for name, content in files.items():
        (cwd / name).parent.mkdir(parents=True, exist_ok=True)
        (cwd / name).write_bytes(content)
    cmd = [sys.executable, "-m", module, *argv]
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("case", BAD_DATA)
def test_broken_data_file_named(case, tmp_path):
    (module, files, argv), message = BAD_DATA[case]
    proc = run_cli(module, files, argv, tmp_path)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    err = proc.stderr.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err  # one line, no traceback
    assert not list(tmp_path.glob("out*")), "a failed step wrote an output"
    assert not list(tmp_path.rglob("*.tmp")), "a failed step left a temporary file"


def test_malformed_rows_dropped_are_counted(tmp_path):
    """on_malformed: drop keeps going and counts every dropped row, by file:line, in cleaning.json (which the
    report_gsm8k rule turns into prep_report.json)."""
    bad = json.dumps({"question": Q, "answer": "no final line"})
    module, files, argv = gsm8k(lines(GOOD_TRAIN, bad, GOOD_TRAIN.replace("Tom", "Ann")), on_malformed="drop")
    proc = run_cli(module, files, argv, tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((tmp_path / "out" / "cleaning.json").read_text())
    assert report["rows_in"] == 3 and report["malformed"] == 1 and report["rows_out"] == 2
    assert report["malformed_rows"] == ["gsm8k/train.jsonl:2: no '####' line in answer: 'no final line'"]


def test_failed_grading_keeps_the_previous_result(tmp_path):
    """Every entry point writes to a temporary file and renames it: a run that fails (here a completions file
    cut short) leaves the previous evaluation as it was. (Inside a Snakemake run, Snakemake itself removes a
    rerun job's outputs before it starts: docs/security.md.)"""
    module, files, argv = grade(lines(SETTINGS, COMPLETION))
    assert run_cli(module, files, argv, tmp_path).returncode == 0
    before = (tmp_path / "out.json").read_bytes()
    assert json.loads(before)["pass_at_1"] == 1.0
    module, files, argv = grade(lines(SETTINGS, COMPLETION[:-5]))
    proc = run_cli(module, files, argv, tmp_path)
    assert proc.returncode == 1 and proc.stderr.startswith("error: c.jsonl:2: invalid JSON"), proc.stderr
    assert (tmp_path / "out.json").read_bytes() == before
    assert not list(tmp_path.rglob("*.tmp"))
