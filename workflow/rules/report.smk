# Tables, cost and figures: cheap CPU rules that judge what the GPU rules wrote. Every table and cost page is
# written as Markdown and as HTML (srlm.pages): `snakemake --report` shows the HTML pages.


rule render_table:
    input:
        get_table_inputs,
    output:
        table=f"{R}/{{table}}.md",
        vs_paper=f"{R}/{{table}}_vs_paper.md",
        table_html=report(
            f"{R}/{{table}}.html", caption="../report/table.rst", category=get_report_category, subcategory="Tables"
        ),
        vs_paper_html=report(
            f"{R}/{{table}}_vs_paper.html",
            caption="../report/table_vs_paper.rst",
            category=get_report_category,
            subcategory="Tables",
        ),
    log:
        "logs/render_table/{table}.log",
    params:
        spec=get_table_spec,
        results=lambda w, output: Path(output.table).parent,
    conda:
        "../../envs/data.yaml"
    shell:
        "(python -m srlm.tables --spec {params.spec} --results {params.results} --out {output.table} "
        "--vs-paper {output.vs_paper} && python -m srlm.pages {output.table} {output.vs_paper}) > {log} 2>&1"


# One cost page per table (cost/table2.md) and one for all configured tables (cost/all.md, each job once).
rule render_cost:
    input:
        get_report_inputs,
    output:
        md=f"{R}/cost/{{scope}}.md",
        html=report(
            f"{R}/cost/{{scope}}.html", caption="../report/cost.rst", category=get_report_category, subcategory="Cost"
        ),
    log:
        "logs/render_cost/{scope}.log",
    params:
        spec=get_report_spec,
        results=lambda w, output: Path(output.md).parent.parent,
    conda:
        "../../envs/data.yaml"
    shell:
        "(python -m srlm.cost --spec {params.spec} --results {params.results} --benchmarks benchmarks "
        "--out {output.md} && python -m srlm.pages {output.md}) > {log} 2>&1"


# Per table: its accuracy bars and the training curves of every run behind its rows.
rule render_figures:
    input:
        get_report_inputs,
    output:
        report(
            directory(f"{R}/figures/{{scope}}"),
            patterns=["{name}.png"],
            caption="../report/figures.rst",
            category=get_report_category,
            subcategory=get_report_subcategory,
        ),
    log:
        "logs/render_figures/{scope}.log",
    params:
        spec=get_report_spec,
        results=lambda w, output: Path(output[0]).parent.parent,
    conda:
        "../../envs/data.yaml"
    shell:
        "python -m srlm.figures --spec {params.spec} --results {params.results} --out-dir {output} > {log} 2>&1"
