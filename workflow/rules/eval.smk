rule evaluate:
    input:
        model=get_eval_model,
        bench=L.bench("{benchmark}"),
    output:
        result=L.eval_json("{model}", "{chain}", "{benchmark}"),
        details=L.eval_details("{model}", "{chain}", "{benchmark}"),
    log:
        "logs/evaluate/{model}/{chain}/{benchmark}.log",
    benchmark:
        "benchmarks/evaluate/{model}/{chain}/{benchmark}.tsv"
    params:
        spec=get_eval_params,
    threads: 1
    resources:
        gpu=config["gpus"]["evaluate"],
    conda:
        "../../envs/eval.yaml"
    shell:
        "export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 OMP_NUM_THREADS={threads}; "
        "python -m srlm.evaluate --model-dir {input.model} --bench {input.bench} --params {params.spec} "
        "--out {output.result} --details {output.details} --model-name {wildcards.model} "
        "--chain {wildcards.chain} --benchmark {wildcards.benchmark} > {log} 2>&1"
