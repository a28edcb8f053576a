# Tables, cost and figures: cheap CPU rules that judge what the GPU rules wrote. Every table and cost page is
# written as Markdown and as HTML (srlm.pages): `snakemake --report` shows the HTML pages, by table.


rule render_table:
    input:
        get_table_files,
    output:
        table=L.table("{table}"),
        vs_paper=L.table_vs_paper("{table}"),
        table_html=report(
            L.html(L.table("{table}")),
            caption="../report/table.rst",
            category=get_report_category,
            subcategory="Tables",
            labels={"Page": "Our numbers, in the paper's layout"},
        ),
        vs_paper_html=report(
            L.html(L.table_vs_paper("{table}")),
            caption="../report/table_vs_paper.rst",
            category=get_report_category,
            subcategory="Tables",
            labels={"Page": "Ours vs. the paper, with 95% intervals"},
        ),
    log:
        L.log("render_table/{table}"),
    conda:
        "../../envs/data.yaml"
    params:
        spec=get_table_spec,
        inputs=get_table_inputs,
    shell:
        "(python -m srlm.tables --spec {params.spec:q} --inputs {params.inputs:q} --out {output.table:q} "
        "--vs-paper {output.vs_paper:q} && python -m srlm.pages {output.table:q} {output.vs_paper:q}) > {log:q} 2>&1"


# One cost page per table and one for all tables of config `targets` (scope "all", each job once).
rule render_cost:
    input:
        get_cost_files,
    output:
        md=L.cost("{scope}"),
        html=report(
            L.html(L.cost("{scope}")),
            caption="../report/cost.rst",
            category=get_report_category,
            subcategory="Cost",
            labels=get_report_labels,
        ),
    log:
        L.log("render_cost/{scope}"),
    conda:
        "../../envs/data.yaml"
    params:
        spec=get_cost_spec,
        inputs=get_cost_inputs,
    shell:
        "(python -m srlm.cost --spec {params.spec:q} --inputs {params.inputs:q} --out {output.md:q} "
        "&& python -m srlm.pages {output.md:q}) > {log:q} 2>&1"


# Per table: its accuracy bars and the training curves of every run behind its rows.
rule render_figures:
    input:
        get_figure_files,
    output:
        report(
            directory(L.figures("{scope}")),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category=get_report_category,
            subcategory=get_report_subcategory,
            labels=get_report_labels,
        ),
    log:
        L.log("render_figures/{scope}"),
    conda:
        "../../envs/data.yaml"
    params:
        spec=get_report_spec,
        inputs=get_figure_inputs,
    shell:
        "python -m srlm.figures --spec {params.spec:q} --inputs {params.inputs:q} --out-dir {output:q} > {log:q} 2>&1"


# The configuration the run used, as the report's own page (category Configuration): the landing page keeps
# to the description and the rule graph. Its params are the whole config, so the page follows every change.
rule render_config:
    output:
        report(
            L.config_page(),
            caption="../report/config.rst",
            category="Configuration",
            subcategory="Settings",
            labels=get_report_labels,
        ),
    log:
        L.log("render_config"),
    conda:
        "../../envs/data.yaml"
    params:
        spec=arg({k: v for k, v in config.items() if k != "tables"}),
    shell:
        "python -m srlm.pages --config {params.spec:q} --out {output:q} > {log:q} 2>&1"
