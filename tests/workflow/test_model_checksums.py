"""A model folder damaged after its job wrote it (issue 32): a truncated checkpoint stops planning, naming the
file; one zeroed in place (same size) stops the job that reads it, naming the file, instead of being evaluated
or trained on silently. Runs the demo config's cheap jobs: one tiny model and the GSM8K data report that reads
its tokenizer."""

from __future__ import annotations

from tests.conftest import copy_workflow, snakemake

DEMO = ("--configfile", "config/demo.yaml")
MODEL = "results/demo/models/qwen2.5-0.5b/base/model"
REPORT = "results/demo/data/gsm8k/prep_report.json"


def test_damaged_model_is_named_not_used(tmp_path):
    wf = copy_workflow(tmp_path)
    snakemake(REPORT, "--cores", "2", *DEMO, cwd=wf)
    weights = wf / MODEL / "model.safetensors"
    assert (wf / MODEL / "CHECKSUMS.json").is_file()

    # Same size, different bytes: only the hash sees it. The job that reads the model stops and names the file.
    data = weights.read_bytes()
    weights.write_bytes(data[:4096] + bytes(65536) + data[4096 + 65536 :])
    proc = snakemake(REPORT, "--cores", "1", "--forcerun", "report_gsm8k", *DEMO, cwd=wf, check=False)
    log = (wf / "results/demo/logs/report_gsm8k.log").read_text()  # the demo logs under its results
    assert proc.returncode != 0
    assert f"{MODEL}/model.safetensors: content changed" in log and "Traceback" not in log, log

    # Truncated: planning itself stops (a dry run used to say "Nothing to be done").
    weights.write_bytes(data[: len(data) // 2])
    proc = snakemake("-n", REPORT, *DEMO, cwd=wf, check=False)
    text = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"{MODEL}/model.safetensors: {len(data) // 2} bytes" in text, text[-2000:]
    assert "Traceback" not in text
