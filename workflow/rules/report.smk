rule render_table:
    input:
        get_table_inputs,
    output:
        table=report(f"{R}/{{table}}.md", caption="../report/table.rst", category="Tables"),
        vs_paper=report(f"{R}/{{table}}_vs_paper.md", caption="../report/table_vs_paper.rst", category="Tables"),
    log:
        "logs/render_table/{table}.log",
    params:
        spec=get_table_spec,
        results=lambda w, output: Path(output.table).parent,
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m srlm.tables --spec {params.spec} --results {params.results} --out {output.table} "
        "--vs-paper {output.vs_paper} > {log} 2>&1"


rule render_cost:
    input:
        get_report_inputs,
    output:
        report(f"{R}/cost.md", caption="../report/cost.rst", category="Cost"),
    log:
        "logs/render_cost.log",
    params:
        spec=get_report_spec,
        results=lambda w, output: Path(output[0]).parent,
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m srlm.cost --spec {params.spec} --results {params.results} --benchmarks benchmarks --out {output} > {log} 2>&1"


rule render_figures:
    input:
        get_report_inputs,
    output:
        report(
            directory(f"{R}/figures"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    log:
        "logs/render_figures.log",
    params:
        spec=get_report_spec,
        results=lambda w, output: Path(output[0]).parent,
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m srlm.figures --spec {params.spec} --results {params.results} --out-dir {output} > {log} 2>&1"
