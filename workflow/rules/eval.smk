# An evaluation is two jobs: `generate` samples answers on a GPU and writes them raw; `grade` judges them on the
# submit host. A grading or reporting change reruns only the cheap half. config evaluation.generate_per: one
# `generate` job per (model, chain, benchmark), or per (model, chain) over every benchmark (one engine start).


# The benchmarks one `generate` job samples, and the name of its log and benchmark record.
_PER_CHAIN = config["evaluation"]["generate_per"] == "chain"
GENERATE_BENCHMARKS = list(BENCHMARKS) if _PER_CHAIN else ["{benchmark}"]
GENERATE_JOB = "{model}/{chain}" if _PER_CHAIN else "{model}/{chain}/{benchmark}"


rule generate:
    input:
        model=get_eval_model,
        bench=[L.bench(b) for b in GENERATE_BENCHMARKS],
    output:
        [L.completions("{model}", "{chain}", b) for b in GENERATE_BENCHMARKS],
    log:
        L.log(f"generate/{GENERATE_JOB}"),
    benchmark:
        L.benchmark(f"generate/{GENERATE_JOB}")
    conda:
        "../../envs/eval.yaml"
    threads: 1
    resources:
        gpu=config["gpus"]["evaluate"],
    params:
        each=get_generate_args,
    shell:
        "export HF_HUB_OFFLINE=1 OMP_NUM_THREADS={threads:q}; "
        "(python -m srlm.checksums verify {input.model:q} && "
        "python -m srlm.completions --model-dir {input.model:q} {params.each:q}) > {log:q} 2>&1"


rule grade:
    input:
        completions=L.completions("{model}", "{chain}", "{benchmark}"),
        bench=L.bench("{benchmark}"),
    output:
        result=L.eval_json("{model}", "{chain}", "{benchmark}"),
        details=L.eval_details("{model}", "{chain}", "{benchmark}"),
    log:
        L.log("grade/{model}/{chain}/{benchmark}"),
    conda:
        "../../envs/data.yaml"
    params:
        spec=get_grade_params,
    shell:
        "python -m srlm.grade --completions {input.completions:q} --bench {input.bench:q} --params {params.spec:q} "
        "--out {output.result:q} --details {output.details:q} "
        "--label {wildcards.model:q}/{wildcards.chain:q}/{wildcards.benchmark:q} > {log:q} 2>&1"
