rule evaluate:
    input:
        model=get_eval_model,
        bench=f"{R}/data/bench/{{benchmark}}.jsonl",
    output:
        result=f"{R}/evals/{{model}}/{{chain}}/{{benchmark}}.json",
        details=f"{R}/evals/{{model}}/{{chain}}/{{benchmark}}.details.jsonl",
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
