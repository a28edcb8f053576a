# One job = one stage of one chain, on one node; `srlm.launch` starts one process per GPU of the allocation.
# Checkpoints live in work/ (not an output, so a requeued job finds them and resumes; a LoRA stage's adapter too).
# Training jobs write what ran (weights, metrics.jsonl, train_summary.json); check_health judges it on a CPU.
# TensorBoard events (config launch.report_to) go beside the job's log, where nothing deletes them on a rerun. Every job that reads a model
# folder verifies its checksum manifest first, and every job that writes one writes the manifest last
# (srlm.checksums).


rule train_sft:
    input:
        model=get_parent_model,
        data=get_train_data,
    output:
        model=directory(L.model_dir("{model}", "{chain}")),
        summary=L.train_summary("{model}", "{chain}"),
        metrics=L.metrics("{model}", "{chain}"),
    log:
        L.log("train_sft/{model}/{chain}"),
    benchmark:
        L.benchmark("train_sft/{model}/{chain}")
    wildcard_constraints:
        chain=CHAIN_SFT,
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        gpu=config["gpus"]["train"],
    params:
        spec=get_train_params,
        deepspeed=get_deepspeed,
        mp=config["launch"]["mixed_precision"],
        work=L.work_dir("{model}", "{chain}"),
        tensorboard=L.tensorboard("train_sft/{model}/{chain}"),
    shell:
        "export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 OMP_NUM_THREADS={threads:q}; "
        "(python -m srlm.checksums verify {input.model:q} && "
        "python -m srlm.launch {params.deepspeed:q} --mixed-precision {params.mp:q} -- -m srlm.train.sft --params {params.spec:q} "
        "--model {input.model:q} --data {input.data:q} --work-dir {params.work:q} --out {output.model:q} "
        "--summary {output.summary:q} --metrics {output.metrics:q} --tensorboard-dir {params.tensorboard:q} "
        "--model-name {wildcards.model:q} --chain {wildcards.chain:q} "
        "&& python -m srlm.checksums write {output.model:q}) > {log:q} 2>&1"


rule train_grpo:
    input:
        model=get_parent_model,
        data=get_train_data,
    output:
        model=directory(L.model_dir("{model}", "{chain}")),
        summary=L.train_summary("{model}", "{chain}"),
        metrics=L.metrics("{model}", "{chain}"),
    log:
        L.log("train_grpo/{model}/{chain}"),
    benchmark:
        L.benchmark("train_grpo/{model}/{chain}")
    wildcard_constraints:
        chain=CHAIN_GRPO,
    conda:
        "../../envs/train.yaml"
    threads: 1
    resources:
        gpu=config["gpus"]["train"],
    params:
        spec=get_train_params,
        deepspeed=get_deepspeed,
        mp=config["launch"]["mixed_precision"],
        work=L.work_dir("{model}", "{chain}"),
        tensorboard=L.tensorboard("train_grpo/{model}/{chain}"),
    shell:
        "export HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 OMP_NUM_THREADS={threads:q}; "
        "(python -m srlm.checksums verify {input.model:q} && "
        "python -m srlm.launch {params.deepspeed:q} --mixed-precision {params.mp:q} -- -m srlm.train.grpo --params {params.spec:q} "
        "--model {input.model:q} --data {input.data:q} --work-dir {params.work:q} --out {output.model:q} "
        "--summary {output.summary:q} --metrics {output.metrics:q} --tensorboard-dir {params.tensorboard:q} "
        "--model-name {wildcards.model:q} --chain {wildcards.chain:q} "
        "&& python -m srlm.checksums write {output.model:q}) > {log:q} 2>&1"


# The ‡ of the tables: did the run collapse? A cheap judgment over the run's metrics, so its thresholds
# (config `health`) re-judge finished runs and never retrain them.
rule check_health:
    input:
        L.metrics("{model}", "{chain}"),
    output:
        L.health("{model}", "{chain}"),
    log:
        L.log("check_health/{model}/{chain}"),
    wildcard_constraints:
        chain=rf"{CHAIN_SFT}|{CHAIN_GRPO}",
    conda:
        "../../envs/data.yaml"
    params:
        spec=get_health_params,
    shell:
        "python -m srlm.health --metrics {input:q} --params {params.spec:q} --out {output:q} "
        "--model-name {wildcards.model:q} --chain {wildcards.chain:q} > {log:q} 2>&1"
