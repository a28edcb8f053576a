"""Evaluation benchmarks (§3.4) normalized to rows {"id", "problem", "answer"} (answer: the gold string).

One reader per raw format; each accepts both the local files of ../shared/data (see its MANIFEST.md) and the
hub datasets named in config.yaml, which name their fields differently:
  olympiadbench  local/Hothan: question, final_answer (list of "$...$")  -> "$" removed, joined with ", "
  math500        problem, answer, unique_id
  minerva        local: problem, solution (gold = last \\boxed{}), idx;  math-ai/minervamath: question, answer
  amc23          local: problem, answer (float 27.0 -> "27"), id;  math-ai/amc23: question, answer
  gsm8k          question, answer (text after "####", commas removed)

A new benchmark is config (`benchmarks.<name>`, docs/howto.md) plus, when its rows are laid out unlike these, one
entry of FORMATS: how to read a row's gold answer, its id field and how graders read the gold.
"""

from __future__ import annotations

import argparse
import json
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from srlm.config import job_params
from srlm.data.io import PLAIN_NUMBER, DataError, cli, read_jsonl_numbered, write_jsonl

_DOLLAR = re.compile(r"(?<!\\)\$")


def _first(row: dict, *keys: str):
    for k in keys:
        if row.get(k) is not None:
            return row[k]
    return None


def _number(x) -> str:
    """27.0 -> '27', 2.5 -> '2.5', '27' -> '27' (AMC answers are stored as floats)."""
    if isinstance(x, (int, float)) and not isinstance(x, bool):
        return str(int(x)) if float(x).is_integer() else repr(float(x))
    return str(x).strip() if x is not None else ""


def _gsm8k_gold(row: dict) -> str:
    from srlm.data.gsm8k import final_answer

    return final_answer(row["answer"])


def _minerva_gold(row: dict) -> str:
    if row.get("solution"):
        from srlm.grading import last_boxed

        return last_boxed(row["solution"]) or ""
    ans = row.get("answer")
    return ", ".join(map(str, ans)) if isinstance(ans, list) else str(ans or "")


def _olympiadbench_gold(row: dict) -> str:
    fa = _first(row, "final_answer", "answer")
    parts = fa if isinstance(fa, list) else [fa] if fa else []
    return ", ".join(_DOLLAR.sub("", str(p)).strip() for p in parts if p is not None)


@dataclass(frozen=True)
class Format:
    """One raw layout of benchmark rows (config `benchmarks.<name>.format`). The problem is the row's `problem`
    or else `question` field, whatever the format.
    gold: the gold answer of a row; id_field: the row's own id (else its position); gold_as: how the paper
    protocol's grader reads the gold, "latex" (as a \\boxed{} answer) or "expr" (a plain number or expression;
    the paper's harness (Open-RS) reads AMC23 so, GSM8K's golds are plain numbers); numeric: every gold is a
    plain number (ungradable() refuses any other)."""

    gold: Callable[[dict], str]
    id_field: str = "id"
    gold_as: str = "latex"
    numeric: bool = False


FORMATS: dict[str, Format] = {
    "olympiadbench": Format(_olympiadbench_gold),
    "math500": Format(lambda row: str(row.get("answer") or ""), id_field="unique_id"),
    "minerva": Format(_minerva_gold, id_field="idx"),
    "amc23": Format(lambda row: _number(row.get("answer")), gold_as="expr", numeric=True),
    "gsm8k": Format(_gsm8k_gold, gold_as="expr", numeric=True),
}


def _gold(row: dict, fmt: str) -> str:
    if fmt not in FORMATS:
        raise ValueError(f"unknown benchmark format {fmt!r} ({'|'.join(FORMATS)})")
    return FORMATS[fmt].gold(row)


_NAN = re.compile(r"[+-]?nan", re.IGNORECASE)


def ungradable(answer: str, fmt: str) -> str | None:
    """Why no response can ever match this gold, or None: a numeric benchmark's gold that is not a plain
    number, NaN, or digits other than 0-9 (full-width "１２": the grader's parsers read ASCII digits only)."""
    if FORMATS[fmt].numeric and not PLAIN_NUMBER.fullmatch(answer):
        return "not a number"
    if _NAN.fullmatch(answer):
        return "NaN"
    odd = sorted({c for c in answer if unicodedata.category(c) == "Nd" and not "0" <= c <= "9"})
    if odd:
        return f"digits other than 0-9 ({', '.join(f'U+{ord(c):04X}' for c in odd)})"
    return None


def normalize(row: dict, fmt: str, index: int, origin: str | None = None) -> dict:
    """{"id", "problem", "answer"} of one raw row; DataError naming the row (`origin`: file:line, else
    "<fmt> row <index>") if problem or answer is empty or of the wrong type."""
    origin = origin or f"{fmt} row {index}"
    native = FORMATS[fmt].id_field if fmt in FORMATS else "id"
    rid = str(row[native]) if row.get(native) is not None else str(index)
    problem = _first(row, "problem", "question")
    try:
        answer = _gold(row, fmt).strip()
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise DataError(f"{origin} (id {rid}): cannot read the gold answer: {e}") from None
    if not answer:
        raise DataError(f"{origin} (id {rid}): empty or missing gold answer")
    why = ungradable(answer, fmt)
    if why:
        raise DataError(f"{origin} (id {rid}): gold answer {answer!r} cannot be graded: {why}")
    if not isinstance(problem, str) or not problem.strip():
        raise DataError(f"{origin} (id {rid}): empty or missing problem")
    return {"id": rid, "problem": problem.strip(), "answer": answer}


def load_raw(params: dict) -> list[tuple[str, dict]]:
    """(origin, raw row) pairs of one benchmark for params.source hub | local | synthetic; origin is file:line
    (1-based) for a local file, dataset[split][index] for the hub."""
    src, name = params["source"], params["name"]
    if src == "hub":
        import datasets

        ds = datasets.load_dataset(params["hub_id"], params.get("hub_config"), split=params["hub_split"])
        return [(f"{params['hub_id']}[{params['hub_split']}][{i}]", dict(r)) for i, r in enumerate(ds)]
    if src == "local":
        if not params.get("local_path"):
            raise ValueError(f"benchmarks.{name}.local_path must be set when source is local")
        path = params["local_path"]
        return [(f"{path}:{ln}", r) for ln, r in read_jsonl_numbered(path, nonempty=True)]
    if src == "synthetic":
        from srlm.data.synthetic import benchmark_rows

        syn = params.get("synthetic") or {}
        if "n" not in syn or "seed" not in syn:
            raise ValueError(f"benchmarks.{name}.synthetic needs n and seed when source is synthetic")
        rows = benchmark_rows(params["format"], syn["n"], syn["seed"], syn["level"])
        return [(f"synthetic[{i}]", r) for i, r in enumerate(rows)]
    raise ValueError(f"benchmarks.{name}.source: unknown source {src!r} (hub|local|synthetic)")


def prepare(params: dict) -> list[dict]:
    """Normalized rows; an empty benchmark is an error (a 0-row benchmark scores nothing and decontaminates
    nothing), and so is an id shared by two rows."""
    raw = load_raw(params)
    if not raw:
        raise DataError(f"benchmarks.{params.get('name')}: no rows")
    rows = [normalize(r, params["format"], i, origin) for i, (origin, r) in enumerate(raw)]
    seen: dict[str, str] = {}
    for (origin, _), r in zip(raw, rows):
        if r["id"] in seen:
            raise DataError(f"{origin}: id {r['id']!r} already used at {seen[r['id']]}")
        seen[r["id"]] = origin
    return rows


@cli
def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--params", required=True, help='JSON: config benchmarks.<name> plus "name"')
    ap.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    rows = prepare(job_params(a.params, "benchmark"))
    write_jsonl(a.out, rows)
    print(json.dumps({"out": a.out, "rows": len(rows)}))


if __name__ == "__main__":
    main()
