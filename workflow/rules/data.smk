rule fetch_model:
    output:
        directory(f"{R}/models/{{model}}/base/model"),
    log:
        "logs/fetch_model/{model}.log",
    params:
        spec=get_fetch_params,
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m srlm.fetch --params {params.spec} --out {output} > {log} 2>&1"


rule prepare_gsm8k:
    input:
        bench=expand(f"{R}/data/bench/{{benchmark}}.jsonl", benchmark=BENCHMARKS),
        tokenizer=get_gsm8k_tokenizer,
    output:
        train=f"{R}/data/gsm8k/train.jsonl",
        sft=f"{R}/data/gsm8k/sft.jsonl",
        rl=f"{R}/data/gsm8k/rl.jsonl",
        report=f"{R}/data/gsm8k/prep_report.json",
    log:
        "logs/prepare_gsm8k.log",
    params:
        spec=arg({"data": config["data"]["gsm8k"], "system_prompt": config["prompt"]["system"]}),
        out_dir=lambda w, output: Path(output.train).parent,
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m srlm.data.gsm8k --params {params.spec} --out-dir {params.out_dir} "
        "--bench {input.bench} --tokenizer {input.tokenizer} > {log} 2>&1"


if get_kd_gpus(None) == 0:  # only a vLLM teacher started inside the job needs a GPU node

    localrules:
        prepare_kd,


rule prepare_kd:
    input:
        get_kd_problems,
    output:
        f"{R}/data/kd/train.jsonl",
    log:
        "logs/prepare_kd.log",
    params:
        spec=arg({"data": config["data"]["kd"], "system_prompt": config["prompt"]["system"]}),
        command=get_kd_command,
    resources:
        gpu=get_kd_gpus,
    conda:
        "../../envs/distill.yaml"
    shell:
        "{params.command} --params {params.spec} --out {output} > {log} 2>&1"


rule prepare_benchmark:
    output:
        f"{R}/data/bench/{{benchmark}}.jsonl",
    log:
        "logs/prepare_benchmark/{benchmark}.log",
    params:
        spec=get_benchmark_params,
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m srlm.data.benchmarks --params {params.spec} --out {output} > {log} 2>&1"
