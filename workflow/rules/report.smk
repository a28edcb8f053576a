rule render_table:
    input:
        get_table_files,
    output:
        table=report(L.table("{table}"), caption="../report/table.rst", category="Tables"),
        vs_paper=report(L.table_vs_paper("{table}"), caption="../report/table_vs_paper.rst", category="Tables"),
    log:
        "logs/render_table/{table}.log",
    params:
        spec=get_table_spec,
        inputs=get_table_inputs,
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m srlm.tables --spec {params.spec} --inputs {params.inputs} --out {output.table} "
        "--vs-paper {output.vs_paper} > {log} 2>&1"


rule render_cost:
    input:
        get_cost_files,
    output:
        report(L.cost(), caption="../report/cost.rst", category="Cost"),
    log:
        "logs/render_cost.log",
    params:
        spec=get_cost_spec,
        inputs=get_cost_inputs,
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m srlm.cost --spec {params.spec} --inputs {params.inputs} --out {output} > {log} 2>&1"


rule render_figures:
    input:
        get_figure_files,
    output:
        report(
            directory(L.figures()),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category="Figures",
        ),
    log:
        "logs/render_figures.log",
    params:
        spec=get_report_spec,
        inputs=get_figure_inputs,
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m srlm.figures --spec {params.spec} --inputs {params.inputs} --out-dir {output} > {log} 2>&1"
