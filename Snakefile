# srlm-repro: the experiment grid of "Effective Learning for Small Reasoning Models" as one DAG.
# Usage and layout: README.md. Configuration: config.yaml (+ overlays in config/).
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/eval.smk"
include: "workflow/rules/report.smk"


localrules:
    all,
    fetch_model,
    prepare_gsm8k,
    prepare_benchmark,
    grade,
    report_gsm8k,
    check_health,
    render_table,
    render_cost,
    render_figures,
    render_config,


rule all:
    input:
        get_all_targets(),
