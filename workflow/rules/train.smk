# One job = one stage of one chain, on one node; `srlm.launch` starts one process per GPU of the allocation.
# Checkpoints live in work/ (not an output, so a requeued job finds them and resumes).


rule train_sft:
    input:
        model=get_parent_model,
        data=get_train_data,
    output:
        model=directory(f"{R}/models/{{model}}/{{chain}}/model"),
        summary=f"{R}/models/{{model}}/{{chain}}/train_summary.json",
        metrics=f"{R}/models/{{model}}/{{chain}}/metrics.jsonl",
    wildcard_constraints:
        chain=CHAIN_SFT,
    log:
        "logs/train_sft/{model}/{chain}.log",
    benchmark:
        "benchmarks/train_sft/{model}/{chain}.tsv"
    params:
        spec=get_train_params,
        deepspeed=get_deepspeed,
        mp=config["launch"]["mixed_precision"],
        work=f"{R}/models/{{model}}/{{chain}}/work",
    threads: 1
    resources:
        gpu=config["gpus"]["train"],
    conda:
        "../../envs/train.yaml"
    shell:
        "export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 OMP_NUM_THREADS={threads}; "
        "python -m srlm.launch {params.deepspeed} --mixed-precision {params.mp} -- -m srlm.train.sft --params {params.spec} "
        "--model {input.model} --data {input.data} --work-dir {params.work} --out {output.model} "
        "--summary {output.summary} --metrics {output.metrics} "
        "--model-name {wildcards.model} --chain {wildcards.chain} > {log} 2>&1"


rule train_grpo:
    input:
        model=get_parent_model,
        data=get_train_data,
    output:
        model=directory(f"{R}/models/{{model}}/{{chain}}/model"),
        summary=f"{R}/models/{{model}}/{{chain}}/train_summary.json",
        metrics=f"{R}/models/{{model}}/{{chain}}/metrics.jsonl",
    wildcard_constraints:
        chain=CHAIN_GRPO,
    log:
        "logs/train_grpo/{model}/{chain}.log",
    benchmark:
        "benchmarks/train_grpo/{model}/{chain}.tsv"
    params:
        spec=get_train_params,
        deepspeed=get_deepspeed,
        mp=config["launch"]["mixed_precision"],
        work=f"{R}/models/{{model}}/{{chain}}/work",
    threads: 1
    resources:
        gpu=config["gpus"]["train"],
    conda:
        "../../envs/train.yaml"
    shell:
        "export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 OMP_NUM_THREADS={threads}; "
        "python -m srlm.launch {params.deepspeed} --mixed-precision {params.mp} -- -m srlm.train.grpo --params {params.spec} "
        "--model {input.model} --data {input.data} --work-dir {params.work} --out {output.model} "
        "--summary {output.summary} --metrics {output.metrics} "
        "--model-name {wildcards.model} --chain {wildcards.chain} > {log} 2>&1"
