rule fetch_model:
    output:
        directory(L.model_dir("{model}", layout.BASE)),
    log:
        L.log("fetch_model/{model}"),
    conda:
        "../../envs/data.yaml"
    params:
        spec=get_fetch_params,
    shell:
        "(python -m srlm.fetch --params {params.spec:q} --out {output:q} "
        "&& python -m srlm.checksums write {output:q}) > {log:q} 2>&1"


# --bench lists the benchmarks to decontaminate against; none (config data.gsm8k.clean.decontaminate: null) = off.
rule prepare_gsm8k:
    input:
        bench=get_decontamination_benchmarks,
    output:
        train=L.gsm8k("train"),
        test=L.gsm8k("test"),
        sft=L.gsm8k("sft"),
        rl=L.gsm8k("rl"),
        cleaning=L.gsm8k("cleaning"),
    log:
        L.log("prepare_gsm8k"),
    conda:
        "../../envs/data.yaml"
    params:
        spec=get_gsm8k_params,
    shell:
        "python -m srlm.data.gsm8k --params {params.spec:q} --train {output.train:q} --test {output.test:q} "
        "--sft {output.sft:q} --rl {output.rl:q} --cleaning {output.cleaning:q} "
        "--bench {input.bench:q} > {log:q} 2>&1"


# The data report: what cleaning did plus token-length statistics of the SFT rows (report-only settings, so a
# change to them re-renders this file and trains nothing).
rule report_gsm8k:
    input:
        cleaning=L.gsm8k("cleaning"),
        sft=L.gsm8k("sft"),
        tokenizer=get_gsm8k_tokenizer,
    output:
        L.gsm8k("prep_report"),
    log:
        L.log("report_gsm8k"),
    conda:
        "../../envs/data.yaml"
    params:
        max_length=get_gsm8k_report_params,
    shell:
        "(python -m srlm.checksums verify {input.tokenizer:q} && "
        "python -m srlm.data.prep_report --cleaning {input.cleaning:q} --sft {input.sft:q} "
        "--tokenizer {input.tokenizer:q} --max-length {params.max_length:q} --out {output:q}) > {log:q} 2>&1"


if get_kd_gpus(None) == 0:  # only a vLLM teacher started inside the job needs a GPU node

    localrules:
        prepare_kd,


rule prepare_kd:
    input:
        get_kd_problems,
    output:
        data=L.kd_data(),
        report=L.kd_report(),
    log:
        L.log("prepare_kd"),
    conda:
        "../../envs/distill.yaml"
    resources:
        gpu=get_kd_gpus,
    params:
        spec=get_kd_params,
        command=get_kd_command,
    shell:
        "{params.command:q} --params {params.spec:q} --out {output.data:q} --report {output.report:q} > {log:q} 2>&1"


rule prepare_benchmark:
    output:
        L.bench("{benchmark}"),
    log:
        L.log("prepare_benchmark/{benchmark}"),
    conda:
        "../../envs/data.yaml"
    params:
        spec=get_benchmark_params,
    shell:
        "python -m srlm.data.benchmarks --params {params.spec:q} --out {output:q} > {log:q} 2>&1"
