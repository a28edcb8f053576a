"""The report's pages: each Markdown table as a standalone HTML page, and where each output sits in
`snakemake --report`.

Snakemake 9.27's report shows a `.md` result as plain preformatted text (its MIME type, text/markdown, falls to
the viewer's text case) and an `.html` result as a page in a frame; so every table is written twice: Markdown
for reading in a terminal or on GitHub, HTML for the report. The conversion is Python-Markdown's `tables`
extension (column alignment, bold cells) plus a small stylesheet.

    python -m srlm.pages results/table2.md results/table2_vs_paper.md   # writes table2.html, ...
"""

from __future__ import annotations

import argparse
import html
import re
from pathlib import Path

from srlm.data.io import cli, write_text

CSS = """
body { font-family: system-ui, sans-serif; font-size: 14px; margin: 1.2em; color: #222; }
table { border-collapse: collapse; margin: 0.8em 0; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f0f0f0; }
tr:nth-child(even) td { background: #fafafa; }
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


@cli
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("md", nargs="+", type=Path, help="Markdown files; each gets an .html beside it")
    for path in p.parse_args(argv).md:
        write_html(path)


if __name__ == "__main__":
    main()
