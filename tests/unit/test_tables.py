"""Tables: the paper's numbers render as the paper prints them; our marks are computed from run outputs."""

import copy
import json
from pathlib import Path

import pytest
import yaml
from srlm import grade, interval, layout, tables

# What srlm.grade writes for each protocol (its own text, with the installed math-verify's version).
GRADED_BY = {"paper": grade.graded_by("paper"), "r1": grade.graded_by("r1")}

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


def write_eval(results, model, chain, bench, p, ci=None, not_extractable=0.0, n=40, stderr=0.01,
               protocol="paper", n_samples=1):
    """An evaluation file as srlm.grade writes it; its interval Wilson's over n problems unless given."""
    path = Path(layout.Layout(str(results)).eval_json(model, chain, bench))
    path.parent.mkdir(parents=True, exist_ok=True)
    lo, hi = interval.wilson(p, n) if ci is None else ci
    path.write_text(
        json.dumps(
            {
                "model": model,
                "chain": chain,
                "benchmark": bench,
                "backend": "transformers",
                "protocol": protocol,
                "graded_by": GRADED_BY[protocol],
                "n_problems": n,
                "n_samples": n_samples,
                "pass_at_1": p,
                "stderr": stderr,
                "ci95": [lo, hi],
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


def test_paper_interval_is_wilson_and_does_not_collapse():
    assert tables.paper_ci(0.5, 100) == interval.wilson(0.5, 100)
    lo, hi = tables.paper_ci(0.0, 40)  # the paper's 0.0 on AMC23 (KD (Lora)): up to 3.5 of 40 problems
    assert lo == 0.0 and hi == pytest.approx(0.0876, abs=1e-4)


def test_delta_interval_uses_both_intervals():
    # Two cells at 0/40: the old band 1.96·√(0 + 0) was 0 and marked any gap; this one spans ±8.8 pp.
    lo, hi = tables.delta_ci(0.0, interval.wilson(0.0, 40), 0.0, 40)
    assert (lo, hi) == pytest.approx((-0.0876, 0.0876), abs=1e-4)
    # Newcombe's method 10 from the two intervals: ours 62/100, paper 50% over 100
    ours = interval.wilson(0.62, 100)
    lo, hi = tables.delta_ci(0.62, ours, 0.50, 100)
    assert (lo, hi) == pytest.approx(interval.difference(0.62, ours, 0.50, interval.wilson(0.50, 100)))
    assert lo < 0 < hi  # 12 pp on 100 problems each: within noise
    # a wider interval of ours (several samples, few problems' worth) widens the difference's interval
    wide = tables.delta_ci(0.62, (0.40, 0.80), 0.50, 100)
    assert wide[0] < lo and wide[1] > hi
    # more problems, less noise: 5 pp on 5000 problems is real
    assert tables.delta_ci(0.55, interval.wilson(0.55, 5000), 0.50, 5000)[0] > 0


def test_vs_paper_marks_only_differences_beyond_both_noises(tmp_path):
    spec = small_spec()
    inst = "qwen2.5-0.5b-instruct"  # paper: 6.2, 31.4, 6.3, 5.0, 45.5
    # Ours with the Wilson interval srlm.grade writes (one sample a problem); Δ's interval is Newcombe's from
    # ours and the paper's Wilson interval over as many problems. Marked where it excludes 0.
    write_eval(tmp_path, inst, "base", "olympiadbench", 0.060, n=675)
    write_eval(tmp_path, inst, "base", "math500", 0.250, n=500)
    write_eval(tmp_path, inst, "base", "minerva", 0.020, n=272)
    write_eval(tmp_path, inst, "base", "amc23", 0.150, n=40)
    md = tables.render_vs_paper(spec, declared(spec, tmp_path))
    cells = vs_paper_cells(md, "Qwen2.5-0.5B-Instruct")
    assert cells[1:4] == ["6.0 [4.4, 8.1]", "6.2", "-0.2 [-2.8, +2.4]"]
    assert cells[4:7] == ["25.0 [21.4, 29.0]", "31.4", "-6.4 [-11.9, -0.8] ✗"]
    assert cells[7:10] == ["2.0 [0.9, 4.5]", "6.3", "-4.3 [-8.0, -0.9] ✗"]
    assert cells[10:13] == ["15.0 [7.1, 29.1]", "5.0", "+10.0 [-4.0, +24.5]"]
    assert cells[13:16] == ["-", "45.5", "-"]  # not evaluated: not compared
    assert "2 of 4 compared cells" in md
    assert "Newcombe's hybrid score interval" in md


def test_vs_paper_at_zero_is_not_degenerate(tmp_path):
    """0/40 on AMC23 showed [0.0, 0.0], and against the paper's 0.0 a band of ±0: any gap was 'real'."""
    spec = tables.table_spec(CONFIG, "table2")  # paper: base+KD (Lora) AMC23 0.0, base+KD AMC23 7.5
    base = "qwen2.5-0.5b"
    write_eval(tmp_path, base, "kd-lora", "amc23", 0.0, n=40)
    write_eval(tmp_path, base, "kd", "amc23", 0.0, n=40)
    md = tables.render_vs_paper(spec, declared(spec, tmp_path))
    lora = vs_paper_cells(md, "Qwen2.5-0.5B+KD (Lora)")
    assert lora[10:13] == ["0.0 [0.0, 8.8]", "0.0", "+0.0 [-8.8, +8.8]"]
    # 0 of 40 against 3 of 40 printed: within the noise of 40 problems
    assert vs_paper_cells(md, "Qwen2.5-0.5B+KD")[10:13] == ["0.0 [0.0, 8.8]", "7.5", "-7.5 [-19.9, +2.5]"]
    assert "0 of 2 compared cells" in md


def _instruct_cells(spec, results):
    return vs_paper_cells(tables.render_vs_paper(spec, declared(spec, results)), "Qwen2.5-0.5B-Instruct")


def test_vs_paper_band_grows_with_fewer_problems(tmp_path):
    """The same gap: marked on a large benchmark, not on a small one."""
    spec = small_spec()
    inst = "qwen2.5-0.5b-instruct"
    write_eval(tmp_path / "big", inst, "base", "math500", 0.250, n=5000)
    write_eval(tmp_path / "small", inst, "base", "math500", 0.250, n=40)
    big, small = (_instruct_cells(spec, tmp_path / d)[6] for d in ("big", "small"))
    assert big.endswith("✗") and not small.endswith("✗"), (big, small)


def test_vs_paper_delta_uses_our_interval(tmp_path):
    """Several samples a problem: the interval grade wrote (wider than Wilson over n when the problems
    disagree) is what Δ's interval is built from, not a binomial guess."""
    spec = small_spec()
    inst = "qwen2.5-0.5b-instruct"
    write_eval(tmp_path / "narrow", inst, "base", "math500", 0.250, n=500, n_samples=4, ci=(0.23, 0.27))
    write_eval(tmp_path / "wide", inst, "base", "math500", 0.250, n=500, n_samples=4, ci=(0.15, 0.37))
    narrow, wide = (_instruct_cells(spec, tmp_path / d) for d in ("narrow", "wide"))
    assert narrow[4] == "25.0 [23.0, 27.0]" and narrow[6].endswith("✗")
    assert wide[4] == "25.0 [15.0, 37.0]" and not wide[6].endswith("✗")


def test_our_numbers_say_how_they_were_graded_not_lighteval(tmp_path):
    """The paper's caption says lighteval evaluated its numbers; ours are graded by math-verify (under
    lighteval's settings for protocol paper). Our table says so, from the evaluation files; the paper's
    sentence stays with the paper's numbers."""
    spec = small_spec()
    for b in spec["table"]["columns"]:
        write_eval(tmp_path, "qwen2.5-0.5b-instruct", "base", b, 0.3, protocol="paper")
    ours = tables.render(spec, declared(spec, tmp_path))
    head = ours.split("\n", 1)[0]
    assert "Lighteval framework" not in ours and "evaluated by Lighteval" not in ours
    assert "graded under evaluation protocol `paper` by math-verify " in head
    assert "lighteval's extractive-match settings" in head and "not through lighteval" in head
    assert "over 1 sample per problem" in head and "table3_vs_paper.md" in head
    vs = tables.render_vs_paper(spec, declared(spec, tmp_path))
    assert 'printed value (the paper: "All results are evaluated by Lighteval framework [40].")' in vs
    assert "graded under evaluation protocol `paper` by math-verify " in vs
    # the paper's own rendering keeps its caption whole (the golden tests above)
    paper = tables.render(spec, tables.Inputs({}), "paper")
    assert "All results are evaluated by Lighteval framework [40]." in paper


def test_grading_note_follows_the_files_not_config(tmp_path):
    spec = small_spec()
    for b in spec["table"]["columns"]:
        write_eval(tmp_path, "qwen2.5-0.5b-instruct", "base", b, 0.3, protocol="r1", n_samples=4)
    head = tables.render(spec, declared(spec, tmp_path)).split("\n", 1)[0]
    assert "over 4 samples per problem, graded under evaluation protocol `r1` by math-verify " in head
    assert "<answer>" in head and "protocol `paper`" not in head
    # nothing evaluated yet: nothing claimed
    empty = tables.render(spec, declared(spec, tmp_path / "none")).split("\n", 1)[0]
    assert "Ours: not evaluated yet." in empty and "math-verify" not in empty


def test_table1_cited_rows_keep_the_papers_evaluation_sentence(tmp_path):
    spec = tables.table_spec(CONFIG, "table1")
    md = tables.render(spec, declared(spec, tmp_path))
    said = '(the paper: "All results are evaluated by Lighteval framework [40].").'
    assert "(cited): the paper's numbers for models it cites; not run here " + said in md


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
