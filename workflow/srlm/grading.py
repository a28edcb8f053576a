"""Answer extraction and math grading shared by the GRPO accuracy reward and the evaluation.

math-verify does the maths (LaTeX/expression parsing with sympy, equivalence checks, timeouts).
Written by hand is only what it does not do: finding the answer in a `<think>…</think><answer>…</answer>`
response, and routing an extracted answer string to the right math-verify parse (a bare `\\frac{14}{3}` is
invisible to its LaTeX regexes unless boxed; open-r1's LaTeX-only parse scores `<answer>72</answer>` as 0).
"""

from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass
from decimal import Decimal

import math_verify
from math_verify import ExprExtractionConfig, LatexExtractionConfig

# Longest benchmark gold is ~200 characters. math-verify's regex scan (C code that SIGALRM cannot interrupt)
# grows faster than linearly: ~0.3 s at 1,000 characters of prose, minutes at 10,000: longer answers fail.
MAX_ANSWER_CHARS = 1000

_LATEX = [LatexExtractionConfig()]
_EXPR = [ExprExtractionConfig()]
_LATEX_EXPR = [LatexExtractionConfig(), ExprExtractionConfig()]

_BOX_CMD = re.compile(r"\\(?:boxed|fbox)(?![A-Za-z])")
# 8.7e8, 8.7 \times 10^{8}, 1.3\cdot10^-5 (mantissa, exponent)
_SCI = re.compile(
    r"(?<![\w.])(-?\d+(?:\.\d+)?)(?:[eE]|\s*\\(?:times|cdot)\s*10\s*\^\s*)\{?([-+]?\d+)\}?(?![\w.])"
)
_PERCENT = re.compile(r"\s*\\?%")
_MATH_DELIM = re.compile(r"(?<!\\)\$|\\\(|\\\[|\\boxed|\\fbox")
_TEXT_GROUP = re.compile(r"\\(?:text|textbf|textit|mbox|mathrm|mathbf|operatorname|begin|end)\s*\{[^{}]*\}")
_COMMAND = re.compile(r"\\[A-Za-z]+")
_WORD = re.compile(r"[A-Za-z]{3,}")
_TRAILING_WORDS = re.compile(r"^(?P<head>.*?\S)(?:\s+[A-Za-z]{2,})+$", re.DOTALL)


def last_boxed(text: str) -> str | None:
    """Content of the last `\\boxed{…}`/`\\fbox{…}` (balanced braces) or `\\boxed 5`; None if none/cut off."""
    matches = list(_BOX_CMD.finditer(text))
    if not matches:
        return None
    i = matches[-1].end()
    while i < len(text) and text[i] in " \t":
        i += 1
    if i < len(text) and text[i] == "{":
        depth = 0
        for j in range(i, len(text)):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    return text[i + 1 : j]
        return None  # unbalanced: the answer was cut off
    token = re.match(r"[^\s$]+", text[i:])
    return token.group(0) if token and i > matches[-1].end() else None


def answer_span(text: str) -> str | None:
    """Content of the last `<answer>…</answer>` span, or None."""
    end = text.rfind("</answer>")
    start = text.rfind("<answer>", 0, end) if end >= 0 else -1
    return text[start + len("<answer>") : end] if start >= 0 else None


def boxed_answer(text: str) -> str | None:
    """The final answer in the training form `<answer>\\boxed{N}</answer>`: the last box of the last answer span,
    else the last box of the text (what the paper protocol's extractive match reads first: boxed matches have
    priority there, and a bare `<answer>N</answer>` is invisible to it). None if there is no complete box."""
    span = answer_span(text)
    boxed = last_boxed(span) if span is not None else None
    if boxed is None:
        boxed = last_boxed(text)
    return boxed.strip() or None if boxed is not None else None


def extract_answer(text: str) -> str | None:
    """Final answer of a response: last `<answer>` span (its boxed content if boxed), else the last box."""
    span = answer_span(text)
    if span is not None:
        boxed = last_boxed(span)
        answer = boxed if boxed is not None else span
    else:
        answer = last_boxed(text)
    if answer is None:
        return None
    answer = answer.strip()
    return answer or None


def _exact_sci(m: re.Match) -> str:
    """`8.7e8` -> `870000000`, `1.3 \\times 10^{-5}` -> `\\frac{13}{1000000}`: exact numbers, because
    math-verify reads the e-form as 8.7*e*8, finds float 8.7*10**8 != 870000000, and rounds
    2.88e-19 - 1.3e-27 to 0."""
    sign, digits, exp = Decimal(m[1]).as_tuple()
    mantissa, exp = ("-" if sign else "") + "".join(map(str, digits)), exp + int(m[2])
    if abs(exp) > 400:  # keep hostile exponents (1e999999999) out of string building
        return m[0]
    return str(int(mantissa) * 10**exp) if exp >= 0 else f"\\frac{{{int(mantissa)}}}{{{10**-exp}}}"


def _normalize(s: str) -> str:
    """Fix forms math-verify misreads: trailing full stop, scientific notation, the degree sign."""
    s = s.strip().rstrip(".").strip()
    s = _SCI.sub(_exact_sci, s)
    return s.replace("°", "^\\circ").replace("\\degree", "^\\circ")


def _is_prose(s: str) -> bool:
    """True if words of 3+ letters remain outside LaTeX commands, `\\text{}`, `\\begin{}` ("Answer is 7")."""
    return bool(_WORD.search(_COMMAND.sub(" ", _TEXT_GROUP.sub(" ", s))))


def _attempts(s: str) -> list[tuple[str, list]]:
    """Parse attempts for one answer string, most specific first."""
    # Delimited LaTeX ("$3$, $5$"), boxed, or a currency "$" ("$1,600"): math-verify finds the maths itself.
    if _MATH_DELIM.search(s):
        return [(s, _LATEX_EXPR), (s, _EXPR)]
    if _is_prose(s):
        head = _TRAILING_WORDS.match(s)
        # Maths then unit words ("1,600 dollars", "\frac{270}7 degrees"): drop the words.
        if head and not _is_prose(head["head"]):
            return [("\\boxed{" + head["head"] + "}", _LATEX), (s, _LATEX_EXPR)]
        return [(s, _LATEX_EXPR), ("\\boxed{" + s + "}", _LATEX)]
    # A bare answer is LaTeX as a whole (boxing it lets math-verify see "\frac{14}{3}", "[-2, 7)", "3, 5, 7");
    # the expression parser is the fallback for what LaTeX cannot parse.
    return [("\\boxed{" + s + "}", _LATEX), (s, _EXPR)]


# Answers parsed to sympy objects, by answer string (at most PARSED_MAX, the oldest dropped first). A GRPO step
# verifies 16 completions against each gold and many completions give the same answer: parsing was 87% of
# `verify`'s time. What timed out or parsed to strings only is parsed again next time.
_PARSED: dict[str, list] = {}
PARSED_MAX = 4096


def _parse(s: str, deadline: float) -> list:
    """First attempt that yields a sympy object (with math-verify's string fallback), else any strings."""
    if (hit := _PARSED.get(s)) is not None:
        return hit
    fallback: list = []
    for text, config in _attempts(_normalize(s)):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        parsed = math_verify.parse(text, extraction_config=config, parsing_timeout=max(1, math.ceil(left)))
        if any(not isinstance(p, str) for p in parsed):
            if len(_PARSED) >= PARSED_MAX:
                del _PARSED[next(iter(_PARSED))]
            _PARSED[s] = parsed
            return parsed
        fallback = fallback or parsed
    return fallback


def _verify_once(pred: str, gold: str, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    gold_parsed = _parse(gold, deadline)
    pred_parsed = _parse(pred, deadline)
    if not gold_parsed or not pred_parsed:
        return False
    return bool(math_verify.verify(gold_parsed, pred_parsed, timeout_seconds=max(1, math.ceil(timeout_s))))


def verify(pred: str, gold: str, timeout_s: float = 5.0) -> bool:
    """True if `pred` (an extracted answer) equals `gold` mathematically; False on any failure or timeout.

    A percentage may be given with or without its sign ("62.5" for "62.5%"); math-verify alone reads 62.5% as
    0.625 only. Answers over MAX_ANSWER_CHARS are wrong without parsing. Timeouts are math-verify's own
    SIGALRM ones (whole seconds, main thread only): parsing both strings shares one `timeout_s` budget (each
    parse call gets what is left, rounded up) and the comparison gets another, so a hostile expression costs
    a few `timeout_s` at most instead of hanging.
    """
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(
            "srlm.grading.verify must run in the main thread (math-verify uses SIGALRM timeouts)"
        )
    if not pred.strip() or not gold.strip() or len(pred) > MAX_ANSWER_CHARS:
        return False
    pairs = [(pred, gold)]
    if _PERCENT.search(pred) or _PERCENT.search(gold):
        pairs.append((_PERCENT.sub("", pred), _PERCENT.sub("", gold)))
    try:
        return any(_verify_once(p, g, timeout_s) for p, g in pairs)
    except Exception:  # noqa: BLE001 - any parser/sympy failure means "not verified"
        return False


@dataclass(frozen=True)
class Grade:
    """Result of grading one response: the extracted answer (None = not extractable) and its correctness."""

    extracted: str | None
    correct: bool

    @property
    def extractable(self) -> bool:
        return self.extracted is not None


def grade(response: str, gold: str, timeout_s: float = 5.0) -> Grade:
    """Extract the final answer of `response` and verify it against `gold`."""
    extracted = extract_answer(response)
    return Grade(extracted, extracted is not None and verify(extracted, gold, timeout_s))


# The paper's harness (srlm.prompts "paper"): lighteval's extractive match as Open-RS configures it.
PAPER_PRED = [ExprExtractionConfig(), LatexExtractionConfig(boxed_match_priority=0)]
PAPER_GOLD = {"latex": [LatexExtractionConfig()], "expr": [ExprExtractionConfig()]}
PAPER_PRECISION = 5


def grade_extractive(response: str, gold: str, gold_as: str = "latex", timeout_s: float = 5.0) -> Grade:
    """Open-RS's `extractive_match` on one sample: the prediction is the first expression or LaTeX answer found
    (boxed first, first-match fallback), the gold is read as LaTeX (MATH-500, Minerva, OlympiadBench: `latex_gold`)
    or as an expression (AMC23, GSM8K: `expr_gold`), compared at 5 decimal places. lighteval 0.13 computes it with
    its vendored copy of math-verify; math-verify itself is called here (importing lighteval's metrics takes ~10×
    longer than math-verify, for every grading job). Extracted None = nothing parseable (the paper's †)."""
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError("srlm.grading must run in the main thread (math-verify uses SIGALRM timeouts)")
    t = max(1, math.ceil(timeout_s))
    try:
        text = "\\boxed{" + gold.strip().strip("$") + "}" if gold_as == "latex" else gold
        golds = math_verify.parse(text, extraction_config=PAPER_GOLD[gold_as], parsing_timeout=t) or [gold]
        preds = math_verify.parse(response, extraction_config=PAPER_PRED, parsing_timeout=t)
    except Exception:  # noqa: BLE001 - a parser failure means "nothing extracted"
        return Grade(None, False)
    if not preds:
        return Grade(None, False)
    try:
        ok = bool(math_verify.verify(golds, preds, precision=PAPER_PRECISION, timeout_seconds=t))
    except Exception:  # noqa: BLE001 - any sympy failure means "not verified"
        ok = False
    return Grade(str(preds[-1]), ok)
