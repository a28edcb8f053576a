"""Synthetic GSM8K-style problems: deterministic, arithmetic right, varied, thousands separators present."""

import re

from srlm.data import synthetic
from srlm.data.gsm8k import final_answer


def test_deterministic_and_purpose_dependent():
    assert synthetic.gsm8k_rows(50, 3) == synthetic.gsm8k_rows(50, 3)
    assert synthetic.camel_rows(20, 3) == synthetic.camel_rows(20, 3)
    assert synthetic.gsm8k_rows(50, 3) != synthetic.gsm8k_rows(50, 4)
    assert synthetic.gsm8k_rows(5, 3, "gsm8k-test") != synthetic.gsm8k_rows(5, 3, "gsm8k-train")


def test_calculations_and_answers_are_right():
    rows = synthetic.gsm8k_rows(400, 0)
    for r in rows:
        calcs = re.findall(r"<<([^=<>]+)=([^<>]+)>>", r["answer"])
        assert calcs
        for expr, value in calcs:
            assert eval(expr) == float(value), (expr, value)  # only digits and + - * / here
        assert float(calcs[-1][1]) == float(final_answer(r["answer"]))
    finals = [int(final_answer(r["answer"])) for r in rows]
    assert all(f >= 0 for f in finals) and sum(f >= 1000 for f in finals) > 20
    assert any(re.search(r"#### \d{1,3},\d{3}", r["answer"]) for r in rows)
    # every template is used, and questions are distinct
    assert len({r["question"] for r in rows}) == 400
    markers = ["change", "times as old", "an hour. The", "collected", "usually costs", "hours of", "mph",
               "in stock", "split"]  # fmt: skip
    assert len(markers) == len(synthetic.TEMPLATES)
    assert all(any(m in r["question"] for r in rows) for m in markers)


def test_vocab_slices_are_disjoint():
    slices = [synthetic.Vocab.for_purpose(p) for p in synthetic.PURPOSES]
    for field in ("names", "items", "shops", "machines", "vehicles", "jobs"):
        seen = [w for s in slices for w in getattr(s, field)]
        assert len(seen) == len(set(seen)) and all(getattr(s, field) for s in slices), field
