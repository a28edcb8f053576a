"""Tables: the paper's numbers render as the paper prints them; our marks are computed from run outputs."""

import copy
import json
from pathlib import Path

import pytest
import yaml
from srlm import layout, tables

ROOT = Path(__file__).resolve().parents[2]
CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())

# The paper's Table 2 (paper text, "Table 2:"), in our Markdown layout. One deliberate difference: bold marks
# the column maximum everywhere, so MINERVA's 8.5 is bold here while the paper leaves it plain.
TABLE2 = """\
**Table 2: Comparison of different training strategies.** OB represents OlympiadBench. † represents that \
we can not extract answer from model's response. Dash (-) represents unavailable official results. All \
results are evaluated by Lighteval framework [40].

| Method | OB | MATH500 | MINERVA | AMC23 | GSM8K |
|:--|--:|--:|--:|--:|--:|
| *Baselines* |  |  |  |  |  |
| Qwen2.5-0.5B † | - | - | - | - | - |
| Qwen2.5-0.5B-Instruct | 6.2 | 31.4 | 6.3 | 5.0 | 45.5 |
| *Training on Base Model* |  |  |  |  |  |
| Qwen2.5-0.5B+KD | 3.3 | 10.0 | 1.8 | 7.5 | 18.7 |
| Qwen2.5-0.5B+KD (Lora) | 2.2 | 7.6 | 2.5 | 0.0 | 9.7 |
| Qwen2.5-0.5B+SFT | 3.7 | 9.2 | 1.4 | 5.0 | 21.6 |
| Qwen2.5-0.5B+SFT (Lora) | 0.7 | 1.2 | 0.3 | 2.5 | 2.1 |
| Qwen2.5-0.5B+RL | 5.2 | 23.6 | 4.4 | 5.0 | 34.2 |
| *Training on Instruct Model* |  |  |  |  |  |
| Qwen2.5-0.5B-Instruct+KD | 3.7 | 15.2 | 3.3 | 2.5 | 42.3 |
| Qwen2.5-0.5B-Instruct+KD (Lora) | 3.0 | 16.6 | 1.8 | **10.0** | 40.0 |
| Qwen2.5-0.5B-Instruct+SFT | 2.4 | 12.2 | 2.9 | 5.0 | 30.9 |
| Qwen2.5-0.5B-Instruct+SFT (Lora) | 3.7 | 14.8 | 2.9 | 7.5 | 31.4 |
| Qwen2.5-0.5B-Instruct+RL | **7.6** | **32.4** | **8.5** | 7.5 | **54.0** |

Numbers and marks as printed in the paper (config `tables.table2`).
"""

TABLE3 = """\
**Table 3: Comparison of different hybrid training strategies.** OB represents OlympiadBench. † represents \
that we can not extract answer from model's response. ‡ represents that the model fails to converge the \
reward curve during RL training, resulting in training collapse. Dash (-) represents unavailable official \
results. All results are evaluated by Lighteval framework [40].

| Method | OB | MATH500 | MINERVA | AMC23 | GSM8K |
|:--|--:|--:|--:|--:|--:|
| *Baselines* |  |  |  |  |  |
| Qwen2.5-0.5B † | - | - | - | - | - |
| Qwen2.5-0.5B-Instruct | 6.2 | 31.4 | 6.3 | 5.0 | 45.5 |
| *Hybrid Training on Base Model* |  |  |  |  |  |
| Qwen2.5-0.5B+KD+RL | 3.3 | 10.6 | 2.2 | 0.0 | 29.6 |
| Qwen2.5-0.5B+KD (Lora)+RL | 1.8 | 4.4 | 0.7 | 5.0 | 2.8 |
| Qwen2.5-0.5B+SFT+RL ‡ | - | - | - | - | - |
| Qwen2.5-0.5B+SFT (Lora)+RL | 0.5 | 1.0 | 1.1 | 0.0 | 1.2 |
| *Hybrid Training on Instruct Model* |  |  |  |  |  |
| Qwen2.5-0.5B-Instruct+KD+RL ‡ | - | - | - | - | - |
| Qwen2.5-0.5B-Instruct+KD (Lora)+RL | 4.6 | 19.4 | 3.7 | 5.0 | 47.9 |
| Qwen2.5-0.5B-Instruct+SFT+RL | 3.1 | 13.8 | 4.8 | **10.0** | 45.5 |
| Qwen2.5-0.5B-Instruct+SFT (Lora)+RL | 2.2 | 16.0 | 3.7 | 5.0 | 44.3 |
| *Direct RL Training on Instruct Model* |  |  |  |  |  |
| Qwen2.5-0.5B+RL | 5.2 | 23.6 | 4.4 | 5.0 | 34.2 |
| Qwen2.5-0.5B-Instruct+RL | **7.6** | **32.4** | **8.5** | 7.5 | **54.0** |

Numbers and marks as printed in the paper (config `tables.table3`).
"""


@pytest.mark.parametrize("name,expected", [("table2", TABLE2), ("table3", TABLE3)])
def test_paper_numbers_render_as_printed(name, expected, tmp_path):
    assert tables.render(tables.table_spec(CONFIG, name), tables.Inputs({}), source="paper") == expected


def declared(spec, results) -> tables.Inputs:
    """What the render_table rule declares for this spec's table (common.smk builds it the same way)."""
    rows = [r for _, r in tables.iter_rows(spec["table"]) if not r.get("cited")]
    cells = [(r["model"], r["chain"], b) for r in rows for b in spec["table"]["columns"]]
    return tables.Inputs(layout.Layout(str(results)).inputs(cells, ["evals", "health"]))


def write_eval(results, model, chain, bench, p, ci=(None, None), not_extractable=0.0, n=40, stderr=0.01):
    path = Path(layout.Layout(str(results)).eval_json(model, chain, bench))
    path.parent.mkdir(parents=True, exist_ok=True)
    lo, hi = ci
    path.write_text(
        json.dumps(
            {
                "model": model,
                "chain": chain,
                "benchmark": bench,
                "backend": "transformers",
                "n_problems": n,
                "n_samples": 1,
                "pass_at_1": p,
                "stderr": stderr,
                "ci95": [p - 0.02 if lo is None else lo, p + 0.02 if hi is None else hi],
                "not_extractable_rate": not_extractable,
                "completion_tokens_mean": 10.0,
                "completion_tokens_total": 400,
                "wall_s": 1.0,
                "generation": {},
            }
        )
    )


def write_health(results, model, chain, status, reason=None):
    path = Path(layout.Layout(str(results)).health(model, chain))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"model": model, "chain": chain, "status": status, "reason": reason}))


def small_spec():
    """Table 3 cut to the baselines and the base model's hybrids, columns as in config."""
    spec = tables.table_spec(CONFIG, "table3")
    spec["table"] = copy.deepcopy(spec["table"])
    spec["table"]["sections"] = spec["table"]["sections"][:2]
    return spec


def test_marks_are_computed_from_run_outputs(tmp_path):
    spec, cols = small_spec(), CONFIG["tables"]["table3"]["columns"]
    base, inst = "qwen2.5-0.5b", "qwen2.5-0.5b-instruct"
    for b in cols:
        write_eval(tmp_path, base, "base", b, 0.01, not_extractable=0.9)  # † (paper marks it too)
        write_eval(tmp_path, inst, "base", b, 0.30)
        write_eval(tmp_path, base, "kd+rl", b, 0.12, not_extractable=0.1)
        write_eval(tmp_path, base, "sft+rl", b, 0.05)
    write_health(tmp_path, base, "kd", "ok")
    write_health(tmp_path, base, "kd+rl", "ok")
    write_health(tmp_path, base, "sft", "collapsed", "loss became NaN")  # prefix collapsed -> ‡ on sft+rl
    write_health(tmp_path, base, "sft+rl", "ok")
    write_eval(tmp_path, base, "kd-lora+rl", "gsm8k", 0.40)  # only one benchmark: the others are "-"
    md = tables.render(spec, declared(spec, tmp_path))
    lines = md.splitlines()
    assert "| Qwen2.5-0.5B † | 1.0 | 1.0 | 1.0 | 1.0 | 1.0 |" in lines
    assert "| Qwen2.5-0.5B+KD+RL | 12.0 | 12.0 | 12.0 | 12.0 | 12.0 |" in lines
    assert "| Qwen2.5-0.5B+SFT+RL ‡ | 5.0 | 5.0 | 5.0 | 5.0 | 5.0 |" in lines
    assert "| Qwen2.5-0.5B+KD (Lora)+RL | - | - | - | - | **40.0** |" in lines
    # Ours: the column maximum is bold, whatever the paper bolded.
    assert "| Qwen2.5-0.5B-Instruct | **30.0** | **30.0** | **30.0** | **30.0** | 30.0 |" in lines
    # No outputs at all: every value "-", no marks, and a footnote per missing row.
    assert "| Qwen2.5-0.5B+SFT (Lora)+RL | - | - | - | - | - |" in lines
    assert "- `-` Qwen2.5-0.5B+KD (Lora)+RL: no evaluation yet for OB, MATH500, MINERVA, AMC23." in lines
    assert any(
        "‡ Qwen2.5-0.5B+SFT+RL: training of qwen2.5-0.5b/sft collapsed (loss became NaN)" in x for x in lines
    )
    assert any(x.startswith("- † Qwen2.5-0.5B: 90% of answers") for x in lines)


def test_bold_marks_only_a_unique_nonzero_column_maximum(tmp_path):
    spec, cols = small_spec(), CONFIG["tables"]["table3"]["columns"]
    base, inst = "qwen2.5-0.5b", "qwen2.5-0.5b-instruct"
    values = {  # per row: OB, MATH500 tie at 20.0, MINERVA all zero, AMC23 unique 5.0, GSM8K unique 0.5
        (base, "base"): [0.10, 0.20, 0.0, 0.0, 0.0],
        (inst, "base"): [0.05, 0.20, 0.0, 0.05, 0.005],
        (base, "kd+rl"): [0.01, 0.10, 0.0, 0.0, 0.0],
    }
    for (model, chain), ps in values.items():
        for b, p in zip(cols, ps):
            write_eval(tmp_path, model, chain, b, p)
    lines = tables.render(spec, declared(spec, tmp_path)).splitlines()
    assert "| Qwen2.5-0.5B | **10.0** | 20.0 | 0.0 | 0.0 | 0.0 |" in lines
    assert "| Qwen2.5-0.5B-Instruct | 5.0 | 20.0 | 0.0 | **5.0** | **0.5** |" in lines
    assert "| Qwen2.5-0.5B+KD+RL | 1.0 | 10.0 | 0.0 | 0.0 | 0.0 |" in lines


def test_threshold_is_strict_and_from_spec(tmp_path):
    spec = small_spec()
    for b in spec["table"]["columns"]:
        write_eval(tmp_path, "qwen2.5-0.5b", "base", b, 0.1, not_extractable=0.5)
    assert "| Qwen2.5-0.5B | **10.0** |" in tables.render(spec, declared(spec, tmp_path))
    spec["not_extractable_threshold"] = 0.4
    assert "| Qwen2.5-0.5B † | **10.0** |" in tables.render(spec, declared(spec, tmp_path))


def test_layout_comes_from_config(tmp_path):
    spec = small_spec()
    spec["table"]["sections"][0]["title"] = "Renamed"
    spec["table"]["sections"][0]["rows"].reverse()
    spec["table"]["sections"][0]["rows"][0]["label"] = "Custom label"
    spec["stages"]["rl"]["label"] = "GRPO"
    md = tables.render(spec, tables.Inputs({}), source="paper")
    assert "| *Renamed* |  |  |  |  |  |\n| Custom label | **6.2** |" in md
    assert "| Qwen2.5-0.5B+KD+GRPO |" in md


def test_table1_cited_rows_are_marked_and_keep_the_papers_numbers(tmp_path):
    spec = tables.table_spec(CONFIG, "table1")
    md = tables.render(spec, declared(spec, tmp_path))
    assert "| Qwen2.5-7B-Instruct (cited) | 38.2 | 75.2 | 35.2 | 55.0 | 90.6 |" in md
    assert "| Qwen2.5-0.5B-Instruct | - | - | - | - | - |" in md  # run rows: ours, none yet
    assert "**" not in md.split("\n", 1)[1]  # Table 1: bold is off


def vs_paper_cells(md: str, label: str) -> list[str]:
    row = next(x for x in md.splitlines() if x.startswith(f"| {label} |"))
    return [c.strip() for c in row.strip("|").split("|")]


def test_paper_stderr_is_binomial():
    assert tables.paper_stderr(0.5, 100) == pytest.approx(0.05)
    assert tables.paper_stderr(0.314, 500) == pytest.approx((0.314 * 0.686 / 500) ** 0.5)
    assert tables.paper_stderr(0.0, 40) == 0.0


def test_differs_uses_the_noise_of_both_numbers():
    # Paper 50% over 100 problems (s = 5 pp), ours with s = 5 pp: band 1.96 × 7.07 = 13.9 pp.
    out, band = tables.differs(0.62, 0.05, 0.50, 100)
    assert band == pytest.approx(1.959964 * (0.05**2 + 0.05**2) ** 0.5) and not out
    # The same 12 pp outside our own CI (1.96 × 5 = 9.8 pp) but inside the combined band: not a difference.
    assert 0.12 > 1.96 * 0.05
    assert tables.differs(0.64, 0.05, 0.50, 100)[0]  # 14 pp > 13.9 pp
    # More problems, less paper noise: a 5 pp gap on 5000 problems with a tight estimate of ours is real.
    assert tables.differs(0.55, 0.005, 0.50, 5000)[0]
    # Exactly equal numbers never differ, even with no noise at all.
    assert not tables.differs(0.0, 0.0, 0.0, 40)[0]


def test_vs_paper_marks_only_differences_beyond_both_noises(tmp_path):
    spec = small_spec()
    inst = "qwen2.5-0.5b-instruct"  # paper: 6.2, 31.4, 6.3, 5.0, 45.5
    # OB (675 problems): 6.0 vs 6.2, band 1.96 × √(.062·.938/675 + .009²) = 2.5 pp: not marked.
    # MATH500 (500): 25.0 vs 31.4, band 1.96 × √(.314·.686/500 + .019²) = 5.5 pp < 6.4: marked.
    # MINERVA (272): 2.0 vs 6.3, band 1.96 × √(.063·.937/272 + .0085²) = 3.3 pp < 4.3: marked.
    # AMC23 (40): 15.0 vs 5.0, band 1.96 × √(.05·.95/40 + .0565²) = 13.0 pp > 10.0: not marked.
    write_eval(tmp_path, inst, "base", "olympiadbench", 0.060, ci=(0.050, 0.070), n=675, stderr=0.009)
    write_eval(tmp_path, inst, "base", "math500", 0.250, ci=(0.212, 0.288), n=500, stderr=0.019)
    write_eval(tmp_path, inst, "base", "minerva", 0.020, ci=(0.005, 0.035), n=272, stderr=0.0085)
    write_eval(tmp_path, inst, "base", "amc23", 0.150, ci=(0.040, 0.260), n=40, stderr=0.0565)
    md = tables.render_vs_paper(spec, declared(spec, tmp_path))
    cells = vs_paper_cells(md, "Qwen2.5-0.5B-Instruct")
    assert cells[1:4] == ["6.0 [5.0, 7.0]", "6.2", "-0.2 ± 2.5"]
    assert cells[4:7] == ["25.0 [21.2, 28.8]", "31.4", "-6.4 ± 5.5 ✗"]
    assert cells[7:10] == ["2.0 [0.5, 3.5]", "6.3", "-4.3 ± 3.3 ✗"]
    assert cells[10:13] == ["15.0 [4.0, 26.0]", "5.0", "+10.0 ± 13.0"]
    assert cells[13:16] == ["-", "45.5", "-"]  # not evaluated: not compared
    assert "2 of 4 compared cells" in md
    assert "s_paper = √(p(1−p)/n)" in md


def test_vs_paper_band_grows_with_fewer_problems(tmp_path):
    """The same gap and the same stderr of ours: marked on a large benchmark, not on a small one."""
    spec = small_spec()
    inst = "qwen2.5-0.5b-instruct"
    write_eval(tmp_path / "big", inst, "base", "math500", 0.250, n=5000, stderr=0.006)
    write_eval(tmp_path / "small", inst, "base", "math500", 0.250, n=40, stderr=0.006)
    big = vs_paper_cells(tables.render_vs_paper(spec, declared(spec, tmp_path / "big")), "Qwen2.5-0.5B-Instruct")[6]
    small = vs_paper_cells(tables.render_vs_paper(spec, declared(spec, tmp_path / "small")), "Qwen2.5-0.5B-Instruct")[6]
    assert big.endswith("✗") and not small.endswith("✗"), (big, small)


def test_vs_paper_names_a_file_without_noise_fields(tmp_path):
    spec = small_spec()
    path = Path(layout.Layout(str(tmp_path)).eval_json("qwen2.5-0.5b-instruct", "base", "math500"))
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"pass_at_1": 0.3, "ci95": [0.2, 0.4], "not_extractable_rate": 0, "stderr": 0.02}))
    with pytest.raises(KeyError, match="math500.json.*n_problems"):
        tables.render_vs_paper(spec, declared(spec, tmp_path))


def test_cli_writes_both_views(tmp_path):
    spec_file = tmp_path / "spec.json"
    spec = tables.table_spec(CONFIG, "table2")
    spec_file.write_text(json.dumps(spec))
    out, vs = tmp_path / "out" / "table2.md", tmp_path / "out" / "table2_vs_paper.md"
    tables.main(
        [
            "--spec",
            str(spec_file),
            "--inputs",
            json.dumps(declared(spec, tmp_path / "results").mapping),
            "--out",
            str(out),
            "--vs-paper",
            str(vs),
        ]
    )
    assert out.read_text().startswith("**Table 2: Comparison of different training strategies.**")
    assert "| Qwen2.5-0.5B-Instruct+RL | - | - |" in out.read_text()
    assert "ours [95% CI]" in vs.read_text()


def test_malformed_eval_names_the_file(tmp_path):
    path = Path(layout.Layout(str(tmp_path)).eval_json("qwen2.5-0.5b", "base", "gsm8k"))
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"ci95": [0, 1], "not_extractable_rate": 0}))
    with pytest.raises(KeyError, match="gsm8k.json.*pass_at_1"):
        tables.render(small_spec(), declared(small_spec(), tmp_path))


def test_undeclared_files_do_not_change_a_table(tmp_path):
    """The table reads only its rule's declared inputs: renaming any other file changes nothing."""
    spec, cols = small_spec(), CONFIG["tables"]["table3"]["columns"]
    base = "qwen2.5-0.5b"
    for b in cols:
        write_eval(tmp_path, base, "kd+rl", b, 0.12)
        write_eval(tmp_path, base, "sft+rl", b, 0.05)
        write_eval(tmp_path, base, "ppo", b, 0.99)  # a run no row names
    write_health(tmp_path, base, "sft", "collapsed", "loss became NaN")
    for chain in ("kd", "kd+rl", "sft+rl"):  # what the training job writes: not a table input
        (tmp_path / "models" / base / chain).mkdir(parents=True, exist_ok=True)
        (tmp_path / "models" / base / chain / "train_summary.json").write_text(json.dumps({"status": "collapsed"}))
    inputs = declared(spec, tmp_path)
    before = tables.render(spec, inputs), tables.render_vs_paper(spec, inputs)
    assert "| Qwen2.5-0.5B+SFT+RL ‡ |" in before[0] and "| Qwen2.5-0.5B+KD+RL | **12.0** |" in before[0]
    undeclared = [p for p in tmp_path.rglob("*") if p.is_file() and str(p) not in layout.files(inputs.mapping)]
    assert len(undeclared) == 5 + 3
    for p in undeclared:
        p.rename(p.with_name("renamed-" + p.name))
    assert (tables.render(spec, inputs), tables.render_vs_paper(spec, inputs)) == before
