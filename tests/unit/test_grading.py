"""Grading of model responses against gold answers in the formats the benchmarks really use."""

import json
import threading
import time

import pytest
from srlm.grading import MAX_ANSWER_CHARS, Grade, extract_answer, grade, last_boxed, verify

from tests.conftest import REAL_DATA as DATA

THINK = "<think>Let me work it out step by step.</think>\n"


def ans(text: str) -> str:
    return f"{THINK}<answer>{text}</answer>"


CASES = [
    # GSM8K: golds are integers, some with thousands separators ("1,600" after '####').
    (ans("1600"), "1600", True),
    (ans("72"), "72", True),  # open-r1's LaTeX-only reward scores this 0
    (ans("1,600"), "1600", True),
    (ans("$1,600"), "1600", True),
    (ans("\\$1,600"), "1,600", True),
    (ans("1600 dollars"), "1,600", True),
    (ans("The answer is 1600."), "1600", True),
    (ans("x = 72"), "72", True),
    (ans("\\boxed{72}"), "72", True),
    (ans("1601"), "1600", False),
    (ans("16"), "1600", False),
    (ans("160"), "1,600", False),
    (ans("-3"), "-3", True),
    (ans("3"), "-3", False),
    (THINK + "So the total is \\boxed{72}.", "72", True),  # no answer tags: last box
    (THINK + "The answer is \\boxed 72.", "72", True),
    (THINK + "\\fbox{72}", "72", True),
    ("<answer>70</answer> Wait, I made an error. <answer>72</answer>", "72", True),  # last span counts
    ("<answer>72</answer> Hmm, no. <answer>70</answer>", "72", False),
    (THINK + "The answer is 72.", "72", False),  # nothing extractable
    (ans(""), "72", False),
    (THINK + "<answer>72", "72", False),  # cut off before </answer>, no box
    (THINK + "\\boxed{7", "7", False),  # cut off inside the box
    # AMC23: float golds ("27.0"), normalized to "27" upstream.
    (ans("27"), "27.0", True),
    (ans("27.0"), "27", True),
    (ans("27.5"), "27", False),
    (ans("-1"), "-1.0", True),
    (ans("1"), "-1.0", False),
    # MATH500: LaTeX golds.
    (ans("\\frac{14}{3}"), "\\frac{14}{3}", True),
    (ans("14/3"), "\\frac{14}{3}", True),
    (ans("\\dfrac{14}{3}"), "\\frac{14}{3}", True),
    (ans("4.6666667"), "\\frac{14}{3}", True),
    (ans("4.67"), "\\frac{14}{3}", False),  # math-verify compares floats to 6 decimal places
    (ans("\\frac{3}{14}"), "\\frac{14}{3}", False),
    (ans("0.5"), "\\frac{1}{2}", True),
    (ans("\\frac12"), "\\frac{1}{2}", True),
    (ans("\\boxed{\\frac{1}{2}}"), "\\frac{1}{2}", True),
    (ans("So the probability is \\boxed{\\frac{1}{3}}."), "\\frac{1}{2}", False),
    (ans("-\\frac{35}{9}"), "-\\frac{35}{9}", True),
    (ans("\\frac{35}{9}"), "-\\frac{35}{9}", False),
    (ans("(3, \\frac{\\pi}{2})"), "\\left( 3, \\frac{\\pi}{2} \\right)", True),
    (ans("\\left(3,\\frac{\\pi}{2}\\right)"), "\\left( 3, \\frac{\\pi}{2} \\right)", True),
    (ans("(\\frac{\\pi}{2}, 3)"), "\\left( 3, \\frac{\\pi}{2} \\right)", False),
    (ans("C"), "\\text{(C)}", True),
    (ans("(C)"), "\\text{(C)}", True),
    (ans("\\textbf{(C)}"), "\\text{(C)}", True),
    (ans("D"), "\\text{(C)}", False),
    (ans("Evelyn"), "\\text{Evelyn}", True),
    (ans("Navin"), "\\text{Evelyn}", False),
    (ans("(3, 4]"), "(3,4]", True),
    (ans("(3, 4)"), "(3,4]", False),
    (ans("[-2,7]"), "x \\in [-2,7]", True),
    (ans("(-2,7]"), "x \\in [-2,7]", False),
    # math-verify turns an inequality into a set only when the GOLD is the inequality.
    (ans("-2 \\le x \\le 7"), "x \\in [-2,7]", False),
    (ans("30"), "30^\\circ", True),
    (ans("30^\\circ"), "30^\\circ", True),
    (ans("30°"), "30^\\circ", True),
    (ans("30 degrees"), "30^\\circ", True),
    (ans("60^\\circ"), "30^\\circ", False),
    (ans("\\frac{\\pi}{6}"), "30^\\circ", False),  # math-verify keeps degrees and radians apart
    (ans("\\frac{270}{7}"), "\\frac{270}7\\text{ degrees}", True),
    (ans("10080"), "10,\\!080", True),
    (ans("\\$32,348"), "\\$32,\\!348", True),
    (ans("32,347"), "\\$32,\\!348", False),
    (ans("5.4"), "5.4 \\text{ cents}", True),
    (ans("864"), "864 \\mbox{ inches}^2", True),
    (ans("\\sqrt{20}"), "2\\sqrt{5}", True),
    (ans("2"), "2\\sqrt{5}", False),
    (ans("6-5i"), "6 - 5i", True),
    (ans("6+5i"), "6 - 5i", False),
    (ans("3x + x^3 - 6"), "x^3+3x-6", True),
    (ans("x^3+3x+6"), "x^3+3x-6", False),
    (ans("1+\\sqrt{19}, 1-\\sqrt{19}"), "1 \\pm \\sqrt{19}", True),
    (ans("1+\\sqrt{19}"), "1 \\pm \\sqrt{19}", False),
    (
        ans("\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}"),
        "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}",
        True,
    ),
    (
        ans("\\begin{pmatrix} 1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}"),
        "\\begin{pmatrix} -1/3 \\\\ 2/3 \\\\ 5/3 \\end{pmatrix}",
        False,
    ),
    (ans("2x+3"), "y = 2x + 3", True),
    (ans("y = 2x - 3"), "y = 2x + 3", False),
    # Percentages (OlympiadBench "62.5%", "$8 \\%$"): with or without the sign, or as a fraction.
    (ans("62.5\\%"), "62.5%", True),
    (ans("62.5"), "62.5%", True),
    (ans("0.625"), "62.5%", True),
    (ans("6.25"), "62.5%", False),
    (ans("8\\%"), "$8 \\%$", True),
    (ans("80\\%"), "$8 \\%$", False),
    # Minerva: scientific notation in both spellings.
    (ans("8.7 \\times 10^{8}"), "8.7e8", True),
    (ans("870000000"), "8.7e8", True),
    (ans("8.7e9"), "8.7e8", False),
    (ans("1.3e-5"), "1.3 \\times 10^{-5}", True),
    (ans("0.000013"), "1.3 \\times 10^{-5}", True),
    (ans("1.4 \\times 10^{-5}"), "1.3 \\times 10^{-5}", False),
    (ans("1.325e-27"), "2.88e-19", False),  # tiny values: plain math-verify rounds the difference to 0
    (ans("4.5 \\times 10^{33}"), "4.5e33", True),
    (ans("41.8"), "41.8", True),
    (ans("41.9"), "41.8", False),
    (ans("\\frac{2\\pi}{\\omega}"), "2 \\pi / \\omega", True),
    (ans("1/(s+a)"), "\\frac{1}{s+a}", True),
    (ans("\\frac{1}{s-a}"), "\\frac{1}{s+a}", False),
    (ans("2 cm"), "2", False),  # bare unit abbreviations read as variables c*m; "2 \\text{ cm}" works
    (ans("2 \\text{ cm}"), "2", True),
    # OlympiadBench: "$...$" golds, several answers joined by commas.
    (ans("$\\frac{1}{2}$"), "$\\frac{1}{2}$", True),
    (ans("0.5"), "$\\frac{1}{2}$", True),
    (ans("69, 84"), "$69$,$84$", True),
    (ans("84, 69"), "$69$,$84$", True),
    (ans("69"), "$69$,$84$", False),
    (ans("69 and 84"), "$69$,$84$", False),  # a bare "and" list reads as prose: only the last number counts
    (ans("2^{1009}"), "$2^{1009}$", True),
    (ans("2^{1008}"), "$2^{1009}$", False),
    (ans("f(x) = x + 1"), "$f(x)=x+1$", True),
    (ans("x+2"), "$f(x)=x+1$", False),
    (ans("(1,8,19), (4,5,7), (2,7,13)"), "$(1,8,19), (2,7,13), (4,5,7)$", True),
    (ans("(1,8,19), (2,7,13)"), "$(1,8,19), (2,7,13), (4,5,7)$", False),
    (ans("90^\\circ, 60^\\circ"), "$90^{\\circ}$,$60^{\\circ}$", True),
]


@pytest.mark.parametrize(("response", "gold", "expected"), CASES)
def test_grade_table(response, gold, expected):
    assert grade(response, gold).correct is expected


def test_table_is_balanced():
    assert len(CASES) >= 60 and sum(not c for _, _, c in CASES) >= 40


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (ans("72"), "72"),
        ("<answer>  1,600 \n</answer>", "1,600"),
        ("<answer>So \\boxed{3}.</answer>", "3"),
        ("<answer>\\boxed{1} or \\boxed{2}</answer>", "2"),
        ("<answer>1</answer> then <answer>2</answer>", "2"),
        ("<answer>a<answer>b</answer>", "b"),
        ("\\boxed{4} and later <answer>5", "4"),  # unclosed answer tag: fall back to the last box
        ("\\boxed{4} <answer>5</answer>", "5"),  # an answer span wins over a box outside it
        ("<answer></answer>", None),
        ("<answer>  </answer>", None),
        ("<answer>\\boxed{}</answer>", None),
        ("The answer is 72", None),
        ("", None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("a \\boxed{1} b \\fbox{2}", "2"),
        ("\\boxed{\\left\\{1, 2\\right\\}} end", "\\left\\{1, 2\\right\\}"),
        ("\\boxed{a{b{c}}d}", "a{b{c}}d"),
        ("\\boxed 5$", "5"),
        ("\\boxed {7}", "7"),
        ("x \\boxed{5", None),
        ("\\boxedx{3}", None),
        ("no box", None),
    ],
)
def test_last_boxed(text, expected):
    assert last_boxed(text) == expected


def test_grade_reports_extraction():
    assert grade(ans("9"), "9") == Grade("9", True)
    assert grade(ans("8"), "9") == Grade("8", False) and grade(ans("8"), "9").extractable
    assert not grade("no answer at all", "9").extractable


def test_hostile_expression_times_out_false():
    """9^(9^9) makes sympy's comparison run for minutes; math-verify's timeout must cut it off."""
    start = time.monotonic()
    assert verify("9^{9^{9}}", "5", timeout_s=1) is False
    elapsed = time.monotonic() - start
    assert 0.9 < elapsed < 4.0, elapsed  # it did hit the 1 s timeout, and parse + compare stayed bounded
    assert verify("5", "5", timeout_s=1) is True  # the alarm handler was restored


def test_overlong_answer_is_false_quickly():
    """math-verify's regex scan (uninterruptible C) is superlinear; long "answers" are refused up front."""
    prose = "the answer is $x$ so we get 3 + 4 = 7 and \\frac{1}{2} then ( [ { " * 400
    assert len(prose) > MAX_ANSWER_CHARS
    start = time.monotonic()
    assert verify(prose + " 7", "7") is False
    assert time.monotonic() - start < 0.5


def test_each_answer_is_parsed_once_while_kept(monkeypatch):
    """GRPO verifies 16 completions against each gold, and completions repeat answers: an answer string is parsed
    once and its parse reused (same verdicts), until PARSED_MAX newer answers have pushed it out."""
    from srlm import grading

    monkeypatch.setattr(grading, "_PARSED", {})
    monkeypatch.setattr(grading, "PARSED_MAX", 3)
    parsed, parse = [], grading.math_verify.parse
    monkeypatch.setattr(grading.math_verify, "parse", lambda text, **kw: parsed.append(text) or parse(text, **kw))
    pairs = [("18", "18"), ("20", "18"), ("\\frac{36}{2}", "18"), ("18", "18"), ("25", "18"), ("18", "18")]
    assert [verify(pred, gold) for pred, gold in pairs] == [True, False, True, True, False, True]
    # "18", "20" and "\frac{36}{2}" fill the cache; "25" pushes "18" out, which the last pair parses again.
    assert parsed == ["\\boxed{18}", "\\boxed{20}", "\\boxed{\\frac{36}{2}}", "\\boxed{25}", "\\boxed{18}"]
    assert list(grading._PARSED) == ["\\frac{36}{2}", "25", "18"]


def test_verify_refuses_worker_threads():
    errors = []

    def work():
        try:
            verify("1", "1")
        except RuntimeError as err:
            errors.append(err)

    worker = threading.Thread(target=work)
    worker.start()
    worker.join()
    assert errors and "main thread" in str(errors[0])


def _golds(name):
    rows = [json.loads(line) for line in (DATA / name / "test.jsonl").read_text().splitlines()]
    if name == "gsm8k":
        return [r["answer"].split("####")[-1].strip() for r in rows]
    if name == "amc23":
        return [str(r["answer"]) for r in rows]
    if name == "olympiadbench":
        return [", ".join(r["final_answer"]) for r in rows]
    return [r["answer"] for r in rows]


@pytest.mark.real_data
@pytest.mark.parametrize("name", ["gsm8k", "math500", "amc23", "olympiadbench"])
def test_real_golds_grade_against_themselves(name):
    """Every 20th real gold, written as the model would, is correct; an integer gold plus one is not."""
    golds = _golds(name)[::20]
    assert golds, f"no rows in {DATA / name / 'test.jsonl'}"
    wrong = [g for g in golds if not grade(ans(g), g).correct]
    assert not wrong
    for g in golds:
        plain = g.replace(",", "").replace("$", "").removesuffix(".0")
        if plain.lstrip("-").isdigit():
            assert not grade(ans(str(int(plain) + 1)), g).correct, g
