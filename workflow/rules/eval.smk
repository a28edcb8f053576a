# An evaluation is two jobs: `generate` samples answers on a GPU and writes them raw; `grade` judges them on the
# submit host. A grading or reporting change reruns only the cheap half. config evaluation.generate_per: one
# `generate` job per (model, chain, benchmark), or per (model, chain) over every benchmark (one engine start).


if config["evaluation"]["generate_per"] == "chain":

    rule generate:
        input:
            model=get_eval_model,
            bench=[L.bench(b) for b in BENCHMARKS],
        output:
            [L.completions("{model}", "{chain}", b) for b in BENCHMARKS],
        log:
            "logs/generate/{model}/{chain}.log",
        benchmark:
            "benchmarks/generate/{model}/{chain}.tsv"
        params:
            each=get_generate_all_args,
        threads: 1
        resources:
            gpu=config["gpus"]["evaluate"],
        conda:
            "../../envs/eval.yaml"
        shell:
            "export HF_HUB_OFFLINE=1 OMP_NUM_THREADS={threads}; "
            "python -m srlm.completions --model-dir {input.model} {params.each} > {log} 2>&1"

else:

    rule generate:
        input:
            model=get_eval_model,
            bench=L.bench("{benchmark}"),
        output:
            L.completions("{model}", "{chain}", "{benchmark}"),
        log:
            "logs/generate/{model}/{chain}/{benchmark}.log",
        benchmark:
            "benchmarks/generate/{model}/{chain}/{benchmark}.tsv"
        params:
            spec=get_generate_params,
        threads: 1
        resources:
            gpu=config["gpus"]["evaluate"],
        conda:
            "../../envs/eval.yaml"
        shell:
            "export HF_HUB_OFFLINE=1 OMP_NUM_THREADS={threads}; "
            "python -m srlm.completions --model-dir {input.model} --bench {input.bench} --params {params.spec} "
            "--out {output} > {log} 2>&1"


rule grade:
    input:
        completions=L.completions("{model}", "{chain}", "{benchmark}"),
        bench=L.bench("{benchmark}"),
    output:
        result=L.eval_json("{model}", "{chain}", "{benchmark}"),
        details=L.eval_details("{model}", "{chain}", "{benchmark}"),
    log:
        "logs/grade/{model}/{chain}/{benchmark}.log",
    params:
        spec=get_grade_params,
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m srlm.grade --completions {input.completions} --bench {input.bench} --params {params.spec} "
        "--out {output.result} --details {output.details} "
        "--label {wildcards.model}/{wildcards.chain}/{wildcards.benchmark} > {log} 2>&1"
