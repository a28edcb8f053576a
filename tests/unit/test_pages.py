"""Report pages: Markdown tables become HTML tables; the report's landing page renders the config as a table."""

import json
import re
from pathlib import Path

import yaml
from docutils.core import publish_parts
from jinja2 import Environment
from snakemake.iocontainers import Wildcards
from srlm import pages

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())

MD = """**Table 2: Comparison.** OB represents OlympiadBench.

| Method | OB | GSM8K |
|:--|--:|--:|
| *Baselines* |  |  |
| Qwen2.5-0.5B † | **1.0** | 0.0 |

- † Qwen2.5-0.5B: 90% of answers not extractable.
"""


def test_markdown_table_becomes_an_html_table(tmp_path):
    md = tmp_path / "table2.md"
    md.write_text(MD)
    page = pages.write_html(md).read_text()
    assert (tmp_path / "table2.html").is_file()
    assert page.startswith("<!doctype html>") and "<title>table2</title>" in page
    assert re.search(r"<th[^>]*>Method</th>\s*<th[^>]*>OB</th>", page)
    assert re.search(r'<td style="text-align: right;"><strong>1.0</strong></td>', page)
    assert '<td style="text-align: left;"><em>Baselines</em></td>' in page
    assert "<li>† Qwen2.5-0.5B: 90% of answers not extractable.</li>" in page
    assert "|" not in page.split("<body>")[1]  # no Markdown syntax left over


def test_report_categories_group_outputs_by_table():
    assert pages.category(Wildcards(fromdict={"table": "table2"})) == "Table 2"
    assert pages.category(Wildcards(fromdict={"scope": "all"})) == "All tables"
    assert pages.subcategory(Wildcards(fromdict={"scope": "table3"})) == "Cost"
    figs = {"scope": "table2", "name": "table2_accuracy"}
    assert pages.subcategory(Wildcards(fromdict=figs)) == "Accuracy"
    figs["name"] = "train_qwen2.5-0.5b_kd+rl"
    assert pages.subcategory(Wildcards(fromdict=figs)) == "Training curves"


def landing_page(config: dict) -> str:
    """workflow.rst as Snakemake renders it (Jinja with its settings, then docutils), warnings as errors."""

    class Snakemake:
        pass

    Snakemake.config = config
    env = Environment(trim_blocks=True, lstrip_blocks=True)  # snakemake.report's settings
    rst = env.from_string((ROOT / "workflow/report/workflow.rst").read_text()).render(snakemake=Snakemake)
    return publish_parts(rst, writer_name="html", settings_overrides={"halt_level": 2})["html_body"]


def test_landing_page_is_a_short_description():
    """The landing page sits beside the rule graph in a column Snakemake centres vertically: it must fit one
    screen (tests/workflow/test_demo.py checks that in Chromium), so the config has its own page."""
    html = landing_page(CONFIG)
    text = " ".join(re.sub(r"<[^>]+>", "", html).split())
    assert "How a number is made" in text and "more than 50% of a row" in text
    assert "<table" not in html and "This is the demo" not in text
    assert len(text.split()) < 330
    demo = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    assert "This is the demo" in landing_page({**CONFIG, "models": demo["models"]})


def test_config_page_has_one_row_per_setting(tmp_path):
    out = tmp_path / "config.html"
    pages.main(["--config", json.dumps(CONFIG), "--out", str(out)])
    rows = dict(re.findall(r"<tr><td><code>([^<]+)</code></td><td><code>([^<]*)</code></td></tr>", out.read_text()))
    assert {"results", "launch.report_to", "evaluation.generation.temperature", "targets"} <= set(rows)
    assert rows["launch.report_to"] == "[]" and rows["evaluation.generation.temperature"] == "0.6"
    assert "prompt.system" in rows and not any(r.startswith("tables") for r in rows)
    assert len(rows) > 50


def test_report_navigation_lists_what_each_result_is():
    label = pages.labeller(CONFIG)
    assert label(Wildcards(fromdict={"scope": "table2", "name": "table2_accuracy"})) == {
        "Figure": "Accuracy per benchmark, ours and the paper's"
    }
    curves = label(Wildcards(fromdict={"scope": "table2", "name": "train_qwen2.5-0.5b-instruct_kd-lora+rl"}))
    assert curves == {"Figure": "Training curves: Qwen2.5-0.5B-Instruct, kd-lora+rl"}
    assert label(Wildcards(fromdict={"scope": "all"})) == {"Page": "GPU-hours, each job once"}
