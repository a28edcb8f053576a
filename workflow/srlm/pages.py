"""The report's pages: each Markdown table as a standalone HTML page, and where each output sits in
`snakemake --report`.

Snakemake 9.27's report shows a `.md` result as plain preformatted text (its MIME type, text/markdown, falls to
the viewer's text case) and an `.html` result as a page in a frame; so every table is written twice: Markdown
for reading in a terminal or on GitHub, HTML for the report. The conversion is Python-Markdown's `tables`
extension (column alignment, bold cells) plus a small stylesheet.

    python -m srlm.pages results/table2.md results/table2_vs_paper.md   # writes table2.html, ...
    python -m srlm.pages --config CONFIG_JSON --out results/config.html  # the report's Configuration page

The report's navigation lists each result by its `labels` (what it is), not by its file path: labeller().
"""

from __future__ import annotations

import argparse
import html
import json
import re
from pathlib import Path

from srlm.data.io import cli, write_text

# Cells do not wrap: a wide table (ours vs. the paper: 16 columns) scrolls sideways with its row labels kept in
# view (sticky first column) instead of squeezing "0.0 [0.0, 6.2]" onto three lines.
CSS = """
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 1.2em; color: #222; }
table { border-collapse: separate; border-spacing: 0; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; white-space: nowrap; background: #fff; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
th:first-child, td:first-child { position: sticky; left: 0; z-index: 1; }
td strong { color: #000; }
td em { color: #555; }
"""


def html_page(md_text: str, title: str) -> str:
    """A standalone HTML page with the Markdown rendered (tables as <table>)."""
    import markdown  # here, not at import: the workflow imports this module to plan, which needs no renderer

    body = markdown.markdown(md_text, extensions=["tables"])
    return (
        f'<!doctype html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{CSS}</style></head>\n<body>\n{body}\n</body></html>\n"
    )


def config_rows(config: dict, prefix: str = "") -> list[tuple[str, str]]:
    """(dotted key, value as YAML writes a scalar or flow list) of every setting; `tables` (the paper's rows and
    printed numbers, shown by the tables themselves) left out."""
    rows = []
    for key, value in config.items():
        if not prefix and key == "tables":
            continue
        if isinstance(value, dict) and value:
            rows += config_rows(value, f"{prefix}{key}.")
        else:
            rows.append((f"{prefix}{key}", value if isinstance(value, str) else json.dumps(value)))
    return rows


def config_page(config: dict) -> str:
    """The configuration as a two-column HTML page: one row per setting."""
    body = "".join(
        f"<tr><td><code>{html.escape(k)}</code></td><td><code>{html.escape(v)}</code></td></tr>\n"
        for k, v in config_rows(config)
    )
    return (
        '<!doctype html>\n<html><head><meta charset="utf-8"><title>Configuration</title>'
        f"<style>{CSS} td code {{ white-space: pre-wrap; }}</style></head>\n<body>\n"
        "<p><strong>Configuration</strong> this run was built with: <code>config.yaml</code> with the overlays given "
        "by <code>--configfile</code>, one row per setting. The tables' rows and the paper's printed numbers "
        "(key <code>tables</code>) are in the tables themselves.</p>\n"
        f"<table>\n<tr><th>Key</th><th>Value</th></tr>\n{body}</table>\n</body></html>\n"
    )


def write_html(md_path: Path) -> Path:
    """`x.md` -> `x.html` beside it."""
    md_path = Path(md_path)
    out = md_path.with_suffix(".html")
    write_text(out, html_page(md_path.read_text(), md_path.stem))
    return out


def _table_title(table: str) -> str:
    """table2 -> "Table 2" (a report category per table)."""
    return re.sub(r"^table(\d+)$", r"Table \1", table)


def category(wildcards) -> str:
    """Report category: one per table (its table, comparison, cost and figures); "All tables" for the cost
    of every configured table together."""
    w = dict(wildcards.items())
    scope = w.get("table") or w.get("scope")
    return "All tables" if scope == "all" else _table_title(scope)


def subcategory(wildcards) -> str:
    w = dict(wildcards.items())
    if "name" in w:
        return "Accuracy" if w["name"].endswith("_accuracy") else "Training curves"
    return "Cost" if "scope" in w else "Tables"


def labeller(config: dict):
    """`report(labels=...)`: what the report's navigation lists for a result instead of its file path."""
    model_labels = {k: m["label"] for k, m in config["models"].items()}

    def labels(wildcards) -> dict:
        w = dict(wildcards.items())
        if "name" in w:  # a figure: {table}_accuracy or train_{model}_{chain}
            name = w["name"]
            if name.endswith("_accuracy"):
                return {"Figure": "Accuracy per benchmark, ours and the paper's"}
            model = max((m for m in model_labels if name.startswith(f"train_{m}_")), key=len, default=None)
            if model is None:
                return {"Figure": name}
            return {"Figure": f"Training curves: {model_labels[model]}, {name[len(f'train_{model}_'):]}"}
        if "scope" in w:
            return {"Page": "GPU-hours, each job once" if w["scope"] == "all" else "GPU-hours of its jobs"}
        return {"Page": "Settings this report was built with"}

    return labels


@cli
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("md", nargs="*", type=Path, help="Markdown files; each gets an .html beside it")
    p.add_argument("--config", type=json.loads, help="JSON: the run's config, written as a page to --out")
    p.add_argument("--out", type=Path, help="the configuration page (with --config)")
    args = p.parse_args(argv)
    if args.config is not None:
        if args.out is None:
            p.error("--config needs --out")
        write_text(args.out, config_page(args.config))
    for path in args.md:
        write_html(path)


if __name__ == "__main__":
    main()
